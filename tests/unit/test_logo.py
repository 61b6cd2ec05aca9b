"""edge.logo: the channel logo learned from made frames (moving textures, a drawn logo, ad stretches without it)."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.cues.base import ScreenFrame
from edge.logo import LogoConfig, LogoCue, LogoLearner

W, H = 640, 360
PROGRAM_S, AD_S = 90.0, 30.0  # 75% program, like a broadcast


def is_program(t: float) -> bool:
    return (t % (PROGRAM_S + AD_S)) < PROGRAM_S


def program_seconds(t: float) -> float:
    """Seconds of program shown in [0, t)."""
    cycle = PROGRAM_S + AD_S
    return (t // cycle) * PROGRAM_S + min(t % cycle, PROGRAM_S)


def texture(rng: np.random.Generator, lo: int, hi: int, size: tuple[int, int] = (1000, 700)) -> np.ndarray:
    """A random picture: smooth blobs at two scales plus sharp rectangles, circles and lines, luma in [lo, hi]."""
    w, h = size
    img = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), 18)
    img += 0.5 * cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), 4)
    img = (img - img.min()) / (img.max() - img.min())
    img = (lo + img * (hi - lo)).astype(np.uint8)
    for _ in range(60):
        c = int(rng.integers(lo, hi + 1))
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        kind = rng.integers(0, 3)
        if kind == 0:
            cv2.rectangle(img, (x, y), (x + int(rng.integers(10, 120)), y + int(rng.integers(10, 90))), c, -1)
        elif kind == 1:
            cv2.circle(img, (x, y), int(rng.integers(5, 50)), c, -1, cv2.LINE_AA)
        else:
            cv2.line(img, (x, y), (int(rng.integers(0, w)), int(rng.integers(0, h))), c, 2, cv2.LINE_AA)
    return img


def logo_alpha(text: str, corner: str, alpha: float) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A broadcast-style logo (rounded outline around a call sign) as a (H, W) float32 alpha map, and its box."""
    w, h = 58, 30
    m = np.zeros((h, w), np.uint8)
    cv2.rectangle(m, (2, 2), (w - 3, h - 3), 255, 2, cv2.LINE_AA)
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_DUPLEX, 0.5, 1)
    cv2.putText(m, text, ((w - tw) // 2, (h + th) // 2), cv2.FONT_HERSHEY_DUPLEX, 0.5, 255, 1, cv2.LINE_AA)
    x0 = {"tr": W - 22 - w, "tl": 24, "bl": 24, "br": W - 22 - w}[corner]
    y0 = {"tr": 18, "tl": 20, "bl": H - 20 - h, "br": H - 20 - h}[corner]
    a = np.zeros((H, W), np.float32)
    a[y0 : y0 + h, x0 : x0 + w] = m.astype(np.float32) / 255.0 * alpha
    return a, (x0, y0, x0 + w, y0 + h)


@dataclass
class Scene:
    """Frames of made content: program scenes move over program textures, ads over other ones; a scene lasts
    3-8 s; the logo (an alpha map) is blended in white on program frames only."""

    seed: int = 0
    lo: int = 20
    hi: int = 235
    camera: bool = False
    static: float = 0.0  # share of program scenes that are one fixed shot of the same place (a studio)
    rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        self.program = [texture(self.rng, self.lo, self.hi) for _ in range(4)]
        self.ads = [texture(self.rng, self.lo, self.hi) for _ in range(3)]
        self.scene_end = -1.0
        self.noise = np.rint(self.rng.normal(0, 3.0, (H + 64, W + 64))).astype(np.int16)

    def frame(self, t: float, logo: np.ndarray | None, program: bool, extra: np.ndarray | None = None) -> np.ndarray:
        if t >= self.scene_end or program != self.scene_program:
            self.scene_program = program
            self.scene_end = t + float(self.rng.uniform(3, 8))
            self.tex = self.program[self.rng.integers(0, 4)] if program else self.ads[self.rng.integers(0, 3)]
            self.start = (float(self.rng.uniform(0, 300)), float(self.rng.uniform(0, 300)), t)
            self.v = self.rng.uniform(-25, 25, 2)
            if program and self.rng.random() < self.static:
                self.tex, self.start, self.v = self.program[0], (150.0, 150.0, t), np.zeros(2)
                self.scene_end = t + float(self.rng.uniform(10, 30))
            self.gamma = float(self.rng.uniform(0.8, 1.25))
        x0, y0, t0 = self.start
        x = int(np.clip(x0 + self.v[0] * (t - t0), 0, self.tex.shape[1] - W))
        y = int(np.clip(y0 + self.v[1] * (t - t0), 0, self.tex.shape[0] - H))
        img = self.tex[y : y + H, x : x + W].astype(np.float32)
        for a in (logo if program else None, extra):
            if a is not None:
                img += (255.0 - img) * a
        img = np.clip(img + 0.5, 0, 255).astype(np.uint8)
        if self.camera:  # optics, a TV's gamma, flicker and sensor noise
            img = cv2.GaussianBlur(img, (0, 0), 1.2)
            gain = 1.0 + 0.04 * math.sin(2.0 * t)
            lut = np.clip(255.0 * (np.arange(256) / 255.0) ** self.gamma * gain + 0.5, 0, 255).astype(np.uint8)
            ox, oy = (int(v) for v in self.rng.integers(0, 64, 2))
            noisy = cv2.LUT(img, lut).astype(np.int16) + self.noise[oy : oy + H, ox : ox + W]
            img = np.clip(noisy, 0, 255).astype(np.uint8)
        return img


def screen(t: float, gray: np.ndarray) -> ScreenFrame:
    return ScreenFrame(t, gray, cv2.resize(gray, (160, 90), interpolation=cv2.INTER_AREA))


def run(
    learner: LogoLearner,
    scene: Scene,
    logo: np.ndarray | None,
    t0: float,
    t1: float,
    fps: float = 5.0,
    extra: np.ndarray | None = None,
    program=is_program,
) -> list[tuple[float, float, bool]]:
    """Feed frames for [t0, t1); returns (t, presence, program) per frame."""
    out = []
    for i in range(int(round((t1 - t0) * fps))):
        t = t0 + i / fps
        p = program(t)
        out.append((t, learner.update(screen(t, scene.frame(t, logo, p, extra))), p))
    return out


def agreement(rows: list[tuple[float, float, bool]]) -> float:
    """Share of frames whose presence (> 0.5) agrees with program / ad; UNKNOWN counts as a miss."""
    return sum((not math.isnan(p)) and (p > 0.5) == prog for _, p, prog in rows) / len(rows)


def iou(a, b) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    i = ix * iy
    return i / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - i)


# ------------------------------------------------------------------------------------------------ learning


def test_learns_the_logo_within_two_minutes_and_presence_follows_it():
    """Half the program scenes are one fixed shot (a studio): its edges persist too, but only while it is on."""
    alpha, box = logo_alpha("TV5", "tr", 0.6)
    scene = Scene(seed=1, static=0.5)
    learner = LogoLearner()
    rows = run(learner, scene, alpha, 0.0, 400.0)
    assert learner.learned_at_t is not None
    assert program_seconds(learner.learned_at_t) <= 120.0
    # the box is the logo's, without the fixed shot's edges around it (the refinement cut them off)
    assert iou(learner.box, box) >= 0.85, (learner.box, box)
    assert learner.mask is not None and learner.mask.shape == (
        learner.box[3] - learner.box[1],
        learner.box[2] - learner.box[0],
    )
    # NaN until learned, then a value in [0, 1] on every frame
    before = [p for t, p, _ in rows if t < learner.learned_at_t]
    after = [(t, p, prog) for t, p, prog in rows if t >= 130.0]  # learned, and one ad break seen
    assert before and all(math.isnan(p) for p in before)
    assert all(0.0 <= p <= 1.0 for _, p, _ in after)
    assert agreement(after) >= 0.97
    with_logo = [p for _, p, prog in after if prog]
    without = [p for _, p, prog in after if not prog]
    assert np.mean(with_logo) >= 0.8 and np.mean(without) <= 0.2


def test_transparent_logo_over_bright_content():
    """A white logo at alpha 0.25 over bright scenes (luma 150-235) changes the picture by 5-26 levels."""
    alpha, box = logo_alpha("TV5", "tr", 0.25)
    scene = Scene(seed=2, lo=150, hi=235)
    learner = LogoLearner()
    rows = run(learner, scene, alpha, 0.0, 400.0)
    assert learner.learned_at_t is not None and program_seconds(learner.learned_at_t) <= 120.0
    assert iou(learner.box, box) >= 0.5, (learner.box, box)
    after = [r for r in rows if r[0] >= 130.0]
    assert agreement(after) >= 0.9
    with_logo = [p for _, p, prog in after if prog]
    without = [p for _, p, prog in after if not prog]
    assert np.mean(with_logo) - np.mean(without) >= 0.5


def test_through_a_camera():
    """Blur, gamma, flicker and sensor noise: the edge threshold follows the corner's noise."""
    alpha, box = logo_alpha("TV5", "tr", 0.6)
    scene = Scene(seed=3, camera=True)
    learner = LogoLearner()
    rows = run(learner, scene, alpha, 0.0, 400.0)
    assert learner.learned_at_t is not None and program_seconds(learner.learned_at_t) <= 120.0
    assert iou(learner.box, box) >= 0.5, (learner.box, box)
    assert agreement([r for r in rows if r[0] >= 130.0]) >= 0.95


def test_noise_alone_is_no_logo():
    """Camera noise and moving content without any logo: nothing is learned, presence stays UNKNOWN."""
    scene = Scene(seed=4, camera=True)
    learner = LogoLearner()
    rows = run(learner, scene, None, 0.0, 900.0, fps=2.0)
    assert learner.box is None and learner.mask is None and learner.learned_at_t is None
    assert all(math.isnan(p) for _, p, _ in rows)


def test_channel_change_is_relearned():
    """The logo moves to another corner with another call sign: the old one is absent far longer than an ad
    break, the new one forms, and the learner switches to it."""
    cfg = LogoConfig()
    old, old_box = logo_alpha("TV5", "tr", 0.6)
    new, new_box = logo_alpha("ARTE", "bl", 0.5)
    scene = Scene(seed=5)
    learner = LogoLearner(cfg)
    run(learner, scene, old, 0.0, 400.0, fps=2.0)
    assert iou(learner.box, old_box) >= 0.6
    first_learned = learner.learned_at_t
    rows = run(learner, scene, new, 400.0, 400.0 + cfg.relearn_absent_s + 300.0, fps=2.0)
    assert learner.learned_at_t > first_learned + cfg.relearn_absent_s
    assert iou(learner.box, new_box) >= 0.5, (learner.box, new_box)
    # at first the old logo is just absent (as in a long break): presence says "no logo"
    early = [p for t, p, prog in rows if t < 400.0 + cfg.doubt_absent_s - 10.0]
    assert not any(math.isnan(p) for p in early) and np.mean(early) < 0.2
    # absent far longer than a break while another logo has formed: UNKNOWN until the switch
    doubt = [
        p for t, p, _ in rows if 400.0 + cfg.doubt_absent_s + 2 * cfg.background_search_s < t < learner.learned_at_t
    ]
    assert len(doubt) > 100 and all(math.isnan(p) for p in doubt)
    # after the switch: presence follows the new logo
    after = [r for r in rows if r[0] >= learner.learned_at_t + 60.0]
    assert agreement(after) >= 0.9


def test_reset_forgets():
    alpha, _ = logo_alpha("TV5", "tr", 0.6)
    scene = Scene(seed=6)
    learner = LogoLearner()
    run(learner, scene, alpha, 0.0, 120.0, fps=2.0)
    assert learner.box is not None
    learner.reset()
    assert learner.box is None and learner.learned_at_t is None
    assert math.isnan(learner.update(screen(121.0, scene.frame(121.0, alpha, True))))


def test_a_new_stream_keeps_the_logo_and_a_new_screen_shape_forgets_it():
    alpha, box = logo_alpha("TV5", "tr", 0.6)
    scene = Scene(seed=15)
    learner = LogoLearner()
    run(learner, scene, alpha, 0.0, 150.0, fps=2.0)
    learned = learner.box
    assert learned is not None
    # stream time starts again (another file, a reconnect): what was learned stays, presence goes on
    rows = run(learner, scene, alpha, 0.0, 60.0, fps=2.0)
    assert learner.box == learned and agreement(rows) >= 0.95
    # a screen of another shape (another source, new screen corners): the corners moved, learning starts again
    square = np.zeros((480, 640), np.uint8)
    assert math.isnan(learner.update(screen(61.0, square)))
    assert learner.box is None


# ------------------------------------------------------------------------------------------------ dropping


def test_a_logo_that_never_leaves_is_dropped():
    """A clock that is on the screen through program and ads alike says nothing about ads: after the drop window
    it is UNKNOWN (the other cues decide), never a confident 'program'."""
    cfg = LogoConfig(drop_window_s=600.0)
    clock, clock_box = logo_alpha("12:30", "bl", 0.8)
    scene = Scene(seed=7)
    learner = LogoLearner(cfg)
    rows = run(learner, scene, None, 0.0, 900.0, fps=1.0, extra=clock)
    assert learner.box is not None and iou(learner.box, clock_box) >= 0.5
    assert learner.dropped
    late = [p for t, p, _ in rows if t >= learner.learned_at_t + cfg.drop_window_s + cfg.search_interval_s]
    assert late and all(math.isnan(p) for p in late)


def test_an_always_on_mark_gives_way_to_the_real_logo():
    """A static caption beside a real logo: once the caption is found to be there all the time, the learner
    looks elsewhere and uses the real logo."""
    cfg = LogoConfig(drop_window_s=600.0)
    caption, _ = logo_alpha("LIVE NOW", "bl", 0.9)
    alpha, box = logo_alpha("TV5", "tr", 0.45)
    scene = Scene(seed=8)
    learner = LogoLearner(cfg)
    rows = run(learner, scene, alpha, 0.0, 1500.0, fps=1.0, extra=caption)
    assert iou(learner.box, box) >= 0.5, learner.box
    assert not learner.dropped
    assert agreement([r for r in rows if r[0] >= 1300.0]) >= 0.9


def test_a_rare_logo_is_dropped():
    """Present in far less than 35% of the window (program is 15% here): useless, UNKNOWN."""
    cfg = LogoConfig(drop_window_s=600.0)
    alpha, _ = logo_alpha("TV5", "tr", 0.6)
    scene = Scene(seed=9)
    learner = LogoLearner(cfg)

    def rare(t: float) -> bool:  # a long program stretch to learn it, then 15% program
        return t < 150.0 or (t % 100.0) < 15.0

    rows = run(learner, scene, alpha, 0.0, 1000.0, fps=1.0, program=rare)
    assert learner.box is not None and learner.dropped
    assert all(math.isnan(p) for t, p, _ in rows if t >= 980.0)


# ------------------------------------------------------------------------------------------------ state


def test_state_is_saved_and_loaded(tmp_path: Path):
    path = tmp_path / "logo.npz"
    alpha, box = logo_alpha("TV5", "tr", 0.6)
    scene = Scene(seed=10)
    learner = LogoLearner(state_path=path)
    run(learner, scene, alpha, 0.0, 300.0, fps=2.0)
    assert learner.box is not None
    assert path.exists()  # saved when the mask was learned, without waiting for close()
    learner.close()
    again = LogoLearner(state_path=path)
    assert again.box == learner.box
    assert np.array_equal(again.mask, learner.mask)
    assert again.learned_at_t == learner.learned_at_t
    # known at once after the restart (a new stream: time starts at 0 again)
    on = again.update(screen(0.0, scene.frame(0.0, alpha, True)))
    off = again.update(screen(0.5, scene.frame(0.5, alpha, False)))
    assert on > 0.5 > off
    assert not list(tmp_path.glob("*.corrupt-*"))


def test_state_is_saved_periodically(tmp_path: Path):
    """Learning progress reaches the file at most every ``save_interval_s`` (not only on close), atomically."""
    path = tmp_path / "logo.npz"
    cfg = LogoConfig(save_interval_s=60.0)
    alpha, _ = logo_alpha("TV5", "tr", 0.6)
    scene = Scene(seed=14)
    learner = LogoLearner(cfg, state_path=path)
    run(learner, scene, alpha, 0.0, 100.0, fps=2.0)
    assert learner.box is not None and path.exists()

    def saved_samples() -> int:
        with np.load(path) as z:
            return json.loads(str(z["meta"]))["samples"]

    saved = [saved_samples()]
    for t0 in range(100, 400, 10):
        run(learner, scene, alpha, t0, t0 + 10, fps=2.0)
        saved.append(saved_samples())
    writes = sorted(set(saved))
    steps = np.diff(writes)
    assert len(writes) >= 4 and steps.min() >= 55  # every ~60 s of samples, not on every one
    assert 400 - writes[-1] <= 70  # and it keeps going
    assert [p.name for p in tmp_path.iterdir()] == ["logo.npz"]  # no temporary files left behind


def test_corrupt_state_is_set_aside(tmp_path: Path, caplog):
    path = tmp_path / "logo.npz"
    path.write_bytes(b"PK\x03\x04 this is not a zip file")
    with caplog.at_level(logging.WARNING, logger="edge.logo.learner"):
        learner = LogoLearner(state_path=path)
    aside = list(tmp_path.glob("logo.npz.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"PK\x03\x04 this")
    assert not path.exists()
    assert any("unreadable" in r.message for r in caplog.records)
    # and it keeps running: learns from scratch and saves a good state
    alpha, box = logo_alpha("TV5", "tr", 0.6)
    run(learner, Scene(seed=11), alpha, 0.0, 200.0, fps=2.0)
    assert learner.box is not None and iou(learner.box, box) >= 0.6
    learner.close()
    assert LogoLearner(state_path=path).box == learner.box


@pytest.mark.parametrize("damage", ["truncate", "wrong-shape"])
def test_damaged_state_is_set_aside(tmp_path: Path, damage: str):
    path = tmp_path / "logo.npz"
    alpha, _ = logo_alpha("TV5", "tr", 0.6)
    learner = LogoLearner(state_path=path)
    run(learner, Scene(seed=12), alpha, 0.0, 120.0, fps=2.0)
    learner.close()
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:200])
    else:
        with np.load(path) as z:
            arrays = dict(z)
        arrays["sign_x"] = arrays["sign_x"][:-1]
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)
    fresh = LogoLearner(state_path=path)
    assert fresh.box is None
    assert len(list(tmp_path.glob("logo.npz.corrupt-*"))) == 1


def test_cue_protocol():
    cue = LogoCue()
    alpha, _ = logo_alpha("TV5", "tr", 0.6)
    scene = Scene(seed=13)
    values = [cue.update(screen(t / 2, scene.frame(t / 2, alpha, True))) for t in range(10)]
    assert cue.names == ("logo",) and all(set(v) == {"logo"} and math.isnan(v["logo"]) for v in values)
    cue.reset()
    cue.close()


@pytest.mark.parametrize(
    "bad", [{"corner_w": 0.8}, {"sample_interval_s": 0.0}, {"drop_low": 0.9, "drop_high": 0.5}, {"edge_min": -1.0}]
)
def test_config_is_checked(bad: dict):
    with pytest.raises(ValueError):
        LogoConfig(**bad)
