"""The broadcast-structure cues on made frames and made sounds: black/uniform frames and dips, cuts, aspect changes,
silence and loudness, and the CueSet that runs them."""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
import pytest

from edge.cues import (
    AUDIO_RATE,
    DEFAULT_CUES,
    AspectConfig,
    AspectCue,
    BlackConfig,
    BlackCue,
    CueSet,
    CutConfig,
    CutCue,
    ScreenFrame,
    SilenceConfig,
    SilenceCue,
)
from edge.cues.base import DecayedHistogram

W, H = 640, 360  # the analysis size: frames made at it skip the resize
DT = 0.2  # 5 analysed frames a second


def texture(seed: int, width: int = W + 400, lo: int = 30, hi: int = 220) -> np.ndarray:
    """Picture-like luma, ``width`` wide (pan across it): a layout of large light and dark areas (its own per seed)
    under smooth random blobs with plenty of detail."""
    import cv2

    rng = np.random.default_rng(seed)
    layout = cv2.resize(rng.random((3, max(2, width // 160))), (width, H), interpolation=cv2.INTER_LINEAR)
    blobs = cv2.resize(rng.random((H // 8, width // 8)), (width, H), interpolation=cv2.INTER_CUBIC)
    return np.clip(lo + (hi - lo) * (0.6 * layout + 0.4 * blobs), 0, 255).astype(np.uint8)


@functools.cache
def _optics() -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    r2 = ((xx - W / 2) / (W / 2)) ** 2 + ((yy - H / 2) / (H / 2)) ** 2  # 2 in the corners
    vignette = 1.0 - 0.22 * r2 / 2
    glare = 22.0 * np.exp(-(((xx - 0.3 * W) / (0.28 * W)) ** 2 + ((yy - 0.22 * H) / (0.17 * W)) ** 2))
    return vignette, glare


def camera(luma: np.ndarray, rng: np.random.Generator, black: float = 35.0, white: float = 225.0) -> np.ndarray:
    """What a cheap camera filming the TV in a dim room sees of ``luma``: the screen's black raised to grey,
    vignetting, glare on the glass, sensor noise."""
    vignette, glare = _optics()
    out = (black + luma.astype(np.float64) / 255.0 * (white - black)) * vignette + glare
    out += rng.normal(0.0, 3.5, out.shape)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def flat(level: float) -> np.ndarray:
    return np.full((H, W), level, np.uint8)


def pillarbox(picture: np.ndarray, bar: float = 0.0) -> np.ndarray:
    """``picture`` (H x W) squeezed to 4:3 in the middle of the 16:9 frame, ``bar``-level bars either side."""
    import cv2

    inner = H * 4 // 3
    out = np.full((H, W), bar, np.uint8)
    x = (W - inner) // 2
    out[:, x : x + inner] = cv2.resize(picture, (inner, H), interpolation=cv2.INTER_AREA)
    return out


def run(cue, lumas, t0: float = 0.0, audio=None) -> list[dict[str, float]]:
    return [cue.update(ScreenFrame.from_gray(t0 + i * DT, img, audio)) for i, img in enumerate(lumas)]


def programme(n: int, seed: int = 0, step: int = 4) -> list[np.ndarray]:
    """``n`` frames of one shot panning ``step`` pixels a frame."""
    tex = texture(seed, W + n * step + 1)
    return [tex[:, i * step : i * step + W] for i in range(n)]


# ---------------------------------------------------------------------------------------------------- black / dip


def test_limited_range_black_scores_black_and_programme_does_not():
    cue = BlackCue()
    values = run(cue, programme(50) + [flat(16)] * 3 + programme(10, seed=1))
    assert max(v["black"] for v in values[:50]) < 0.02
    assert all(v["black"] > 0.97 for v in values[50:53])
    assert max(v["black"] for v in values[53:]) < 0.02


def test_black_through_a_camera_is_grey_and_still_black():
    rng = np.random.default_rng(0)
    frames = [camera(f, rng) for f in programme(50)] + [camera(flat(0), rng) for _ in range(3)]
    frames += [camera(f, rng) for f in programme(10, seed=1)]
    black_screen = ScreenFrame.from_gray(0, frames[50]).small
    assert 34 <= black_screen.mean() <= 40  # a dim room films black at luma 36-38
    assert np.percentile(black_screen, 98) - np.percentile(black_screen, 2) > 20  # glare and vignetting
    cue = BlackCue()
    values = run(cue, frames)
    assert max(v["black"] for v in values[:50]) < 0.02
    assert all(v["black"] > 0.9 for v in values[50:53])
    assert max(v["black"] for v in values[53:]) < 0.02
    assert cue.black_spread > 15  # learned from the camera's black: wider than a clean source's


def test_blacks_level_and_spread_are_learned_from_the_source():
    ramp = np.tile(np.linspace(16, 46, H)[:, None], (1, W)).astype(np.uint8)  # dim and smooth, 30 levels of spread
    clean = BlackCue()
    run(clean, programme(30) + [flat(16)] * 3)
    assert clean.darkest == pytest.approx(16, abs=1) and clean.black_spread < 2
    assert clean.update(ScreenFrame.from_gray(7.0, ramp))["black"] < 0.05  # not what black is on this source
    rng = np.random.default_rng(11)
    filmed = BlackCue()
    values = run(filmed, [camera(f, rng) for f in programme(30)] + [camera(flat(0), rng) for _ in range(3)])
    assert 30 <= filmed.darkest <= 40 and filmed.black_spread > 20
    assert min(v["black"] for v in values[30:]) > 0.9  # the camera's black spreads as much, and is black


def test_a_dark_scene_is_not_black():
    rng = np.random.default_rng(1)
    dark = [(f.astype(np.float64) * 0.3).astype(np.uint8) for f in programme(30)]  # a night scene, mean ~37
    for frames in (dark, [camera(f, rng) for f in dark]):
        values = run(BlackCue(), frames)
        assert max(v["black"] for v in values) < 0.05


@pytest.mark.parametrize("rgb", [(235, 235, 235), (20, 40, 200), (128, 128, 128)], ids=["white", "blue", "grey"])
def test_uniform_colour_cards_count_as_black(rgb):
    card = np.tile(np.uint8(rgb), (H, W, 1))
    cue = BlackCue()
    run(cue, programme(30))
    assert cue.update(ScreenFrame.from_rgb(6.0, card))["black"] > 0.95
    # and through a camera: vignetting spreads a bright card over ~50 levels, still a card
    rng = np.random.default_rng(2)
    cue = BlackCue()
    run(cue, [camera(f, rng) for f in programme(30)] + [camera(flat(0), rng)])
    luma = ScreenFrame.from_rgb(0, card).gray
    assert cue.update(ScreenFrame.from_gray(6.4, camera(luma, rng)))["black"] > 0.85


def test_a_smooth_gradient_is_not_uniform():
    ramp = np.tile(np.linspace(40, 210, H)[:, None], (1, W)).astype(np.uint8)  # a sky: no detail, many levels
    cue = BlackCue()
    values = run(cue, programme(20) + [flat(16)] + [ramp] * 3)
    assert values[20]["black"] > 0.97
    assert max(v["black"] for v in values[21:]) < 0.05


def test_black_is_a_soft_score_falling_with_detail():
    rng = np.random.default_rng(3)
    cue = BlackCue()
    run(cue, programme(20) + [flat(16)])
    pattern = texture(10, W, 0, 255).astype(np.float64) - 127.5
    scores = []
    for i, amplitude in enumerate(np.linspace(0, 40, 41)):  # a picture faintly appearing on black
        img = np.clip(16 + amplitude * pattern / 127.5 + rng.normal(0, 0.5, (H, W)), 0, 255).astype(np.uint8)
        scores.append(cue.update(ScreenFrame.from_gray(5 + i * DT, img))["black"])
    assert scores[0] > 0.95 and scores[-1] < 0.05
    assert any(0.1 < s < 0.9 for s in scores)  # a ramp, not a switch
    assert all(b <= a + 0.02 for a, b in zip(scores, scores[1:], strict=False))  # more detail, less black


def test_a_fade_to_a_quarter_dips_at_its_bottom_and_recovers():
    shot = programme(40)
    gains = [1.0, 0.7, 0.45, 0.25, 0.45, 0.7, 1.0]
    fade = [(shot[-1].astype(np.float64) * g).astype(np.uint8) for g in gains]
    for through_camera in (False, True):
        rng = np.random.default_rng(4)
        frames = shot + fade + programme(10, seed=1)
        if through_camera:
            frames = [camera(f, rng) for f in frames]
        values = run(BlackCue(), frames)
        dips = [v["dip"] for v in values[40:47]]
        assert max(v["dip"] for v in values[1:40]) < 0.05
        assert dips[3] > 0.9 and dips[3] == max(dips)  # 1 at the bottom
        assert dips[0] < 0.05 and dips[-1] < 0.05
        assert 0.05 < dips[2] < dips[3]  # soft on the way down
        assert max(v["black"] for v in values[40:47]) < 0.05  # a fade that does not reach black
        assert max(v["dip"] for v in values[47:]) < 0.05


def test_a_drop_that_stays_stops_dipping():
    shot = programme(30)
    dark = [(f.astype(np.float64) * 0.25).astype(np.uint8) for f in programme(20, seed=2)]
    values = run(BlackCue(), shot + dark)
    assert values[30]["dip"] > 0.9  # the first darker frame is a drop ...
    assert max(v["dip"] for v in values[40:]) < 0.05  # ... but a scene that stays dark is no dip
    assert math.isnan(values[0]["dip"])  # no recent level on the first frame


def test_black_config_is_frozen_and_validated():
    with pytest.raises(dataclasses.FrozenInstanceError):
        BlackConfig().max_detail = 3.0  # type: ignore[misc]
    for bad in ({"dip_ratio": 1.5}, {"floor_quantile": 0.0}, {"memory_s": 0}, {"spread_slack": -1.0}):
        with pytest.raises(ValueError):
            BlackConfig(**bad)


def test_black_reset_forgets_the_source():
    rng = np.random.default_rng(5)
    cue = BlackCue()
    run(cue, [camera(flat(0), rng)] * 5)
    assert cue.darkest > 30
    cue.reset()
    assert math.isnan(cue.darkest) and cue.black_spread == cue.config.spread_prior
    assert math.isnan(cue.update(ScreenFrame.from_gray(0, flat(16)))["dip"])


# ---------------------------------------------------------------------------------------------------- cut


def test_a_hard_cut_fires_and_steady_motion_does_not():
    for step in (4, 24):  # slow and fast pans
        cue = CutCue()
        values = run(cue, programme(40, seed=0, step=step) + programme(10, seed=7, step=step))
        assert math.isnan(values[0]["cut"])
        assert max(v["cut"] for v in values[1:40]) < 0.1
        assert values[40]["cut"] > 0.9
        assert max(v["cut"] for v in values[41:]) < 0.1


def test_very_fast_motion_is_judged_against_its_own_level():
    pan = programme(40, seed=0, step=80)  # an eighth of the width a frame: changes beyond min_change
    assert max(v["cut"] for v in run(CutCue(), pan)[1:]) < 0.1
    unnormalised = CutCue(CutConfig(ratio=1.0))  # the threshold is min_change alone
    assert max(v["cut"] for v in run(unnormalised, pan)[1:]) > 0.5


def test_a_cut_through_a_camera_fires():
    rng = np.random.default_rng(6)
    frames = [camera(f, rng) for f in programme(30, step=8) + programme(5, seed=3, step=8)]
    values = run(CutCue(), frames)
    assert max(v["cut"] for v in values[1:30]) < 0.1
    assert values[30]["cut"] > 0.9


def test_noise_on_a_still_picture_is_no_cut():
    rng = np.random.default_rng(7)
    still = texture(8, W)
    frames = [np.clip(still + rng.normal(0, 3, still.shape), 0, 255).astype(np.uint8) for _ in range(30)]
    assert max(v["cut"] for v in run(CutCue(), frames)[1:]) < 0.05


def test_cut_score_is_soft_and_reset_forgets():
    shot = programme(21, step=4)
    other = texture(9, W)
    scores = []
    for a in np.linspace(0.0, 1.0, 11):  # the last frame moves part way towards another picture
        cue = CutCue()
        last = (shot[-1] * (1 - a) + other * a).astype(np.uint8)
        scores.append(run(cue, [*shot[:-1], last])[-1]["cut"])
    assert scores[0] < 0.05 and scores[-1] > 0.9
    assert any(0.1 < x < 0.9 for x in scores)
    assert all(b >= a - 0.02 for a, b in zip(scores, scores[1:], strict=False))
    cue.reset()
    assert math.isnan(cue.update(ScreenFrame.from_gray(0, shot[0]))["cut"])
    with pytest.raises(ValueError):
        CutConfig(ratio=0.5)
    with pytest.raises(ValueError):
        CutConfig(levels=12)


# ---------------------------------------------------------------------------------------------------- aspect


def test_bars_of_a_pillarbox_and_a_letterbox():
    cue = AspectCue()
    assert cue.bars(ScreenFrame.from_gray(0, texture(0, W))) == (0, 0)
    assert cue.bars(ScreenFrame.from_gray(0, pillarbox(texture(0, W)))) == (20, 0)  # 4:3 in 16:9: 1/8 each side
    letter = np.zeros((H, W), np.uint8)
    rows = round(H * (1 - (16 / 9) / 2.35) / 2)
    letter[rows : H - rows] = texture(1, W)[rows : H - rows]
    assert cue.bars(ScreenFrame.from_gray(0, letter)) == (0, round(90 * rows / H))
    assert cue.bars(ScreenFrame.from_gray(0, flat(16))) is None  # no active picture
    one_side = texture(2, W)
    one_side[:, :100] = 0  # a dark edge on one side only is not a pillarbox
    assert cue.bars(ScreenFrame.from_gray(0, one_side)) == (0, 0)


@pytest.mark.parametrize("through_camera", [False, True], ids=["clean", "camera"])
def test_a_pillarboxed_ad_inside_a_widescreen_programme_changes_the_aspect(through_camera):
    rng = np.random.default_rng(8)
    wide = programme(100)  # 20 s of 16:9
    boxed = [pillarbox(f) for f in programme(60, seed=3)]  # 12 s of a 4:3 ad
    frames = wide + [flat(0)] * 2 + boxed
    if through_camera:
        frames = [camera(f, rng) for f in frames]
    cue = AspectCue(AspectConfig(hold_s=20.0))
    values = [v["aspect"] for v in run(cue, frames)]
    warmup = int(cue.config.min_history_s / DT)
    assert all(math.isnan(v) for v in values[:warmup])  # not enough history yet
    assert max(values[warmup:100]) < 0.05
    assert math.isnan(values[100]) and math.isnan(values[101])  # black frames: no active picture
    assert values[101 + 3] > 0.95  # the 4:3 ad is seen once it fills the recent second
    assert min(values[104:130]) > 0.95


def test_the_held_aspect_follows_a_lasting_change():
    cue = AspectCue(AspectConfig(hold_s=10.0))
    values = [v["aspect"] for v in run(cue, programme(75) + [pillarbox(f) for f in programme(150, seed=4)])]
    assert values[80] > 0.95
    assert values[-1] < 0.05  # 30 s later (three half-lives) 4:3 is what holds


def test_aspect_config_is_validated():
    with pytest.raises(ValueError):
        AspectConfig(min_picture=1.0)
    with pytest.raises(ValueError):
        AspectConfig(hold_s=0)


# ---------------------------------------------------------------------------------------------------- audio


def tone(seconds: float, amplitude: float = 0.5, freq: float = 440.0, start: float = 0.0) -> np.ndarray:
    t = start + np.arange(round(seconds * AUDIO_RATE)) / AUDIO_RATE
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def feed(cue: SilenceCue, audio: np.ndarray, chunk_s: float = DT, t0: float = 0.0) -> list[tuple[float, dict]]:
    """``audio`` cut into per-frame chunks as a source hands it out; (frame time, values) per frame."""
    n = round(chunk_s * AUDIO_RATE)
    image = flat(100)
    out = []
    for i in range(0, audio.size, n):
        t = t0 + (i + n) / AUDIO_RATE
        out.append((t, cue.update(ScreenFrame.from_gray(t, image, audio[i : i + n]))))
    return out


@pytest.mark.parametrize("chunk_s", [0.2, 0.04], ids=["5fps", "25fps"])
def test_a_gap_of_silence_between_tones_is_silence(chunk_s):
    audio = np.concatenate([tone(3.0), np.zeros(round(0.3 * AUDIO_RATE), np.float32), tone(3.0, start=3.3)])
    cue = SilenceCue()
    cue_window = cue.config.window_s
    values = feed(cue, audio, chunk_s)
    silent = [(t, v["silence"]) for t, v in values if v["silence"] > 0.5]
    assert silent and all(3.0 < t <= 3.3 + chunk_s + 1e-9 for t, _ in silent)
    assert min(s for _, s in silent) > 0.95
    assert sum(1 for _, s in silent) >= round(0.3 / chunk_s) - 1
    assert math.isnan(values[0][1]["silence"]) == (chunk_s < cue_window)  # no whole window heard yet
    assert max(v["silence"] for t, v in values[1:] if not 3.0 < t <= 3.3 + chunk_s + 1e-9) < 0.05


def test_a_louder_section_raises_loudness():
    audio = np.concatenate([tone(10.0, 0.1), tone(5.0, 0.4, start=10.0), tone(5.0, 0.1, start=15.0)])
    values = feed(SilenceCue(), audio)
    typical = [v["loudness"] for t, v in values if 5.0 < t <= 10.0]
    louder = [v["loudness"] for t, v in values if 11.0 < t <= 15.0]  # +12 dB, once the 1 s window is full
    assert all(0.4 < x < 0.6 for x in typical)
    assert min(louder) > 0.9
    assert all(math.isnan(v["loudness"]) for t, v in values if t < 1.9)  # no typical level yet
    assert max(v["silence"] for _, v in values) < 0.05


def test_silence_is_relative_to_the_source_and_under_an_absolute_floor():
    rng = np.random.default_rng(9)

    def noise(seconds: float, dbfs: float) -> np.ndarray:
        return (10 ** (dbfs / 20) * rng.standard_normal(round(seconds * AUDIO_RATE))).astype(np.float32)

    # a loud programme's -60 dBFS noise floor between spots is silence
    values = feed(SilenceCue(), np.concatenate([noise(5, -12), noise(0.4, -60), noise(2, -12)]))
    assert max(v["silence"] for t, v in values if 5.2 <= t <= 5.4) > 0.95
    # a programme at -45 dBFS is not silence, nor is a -50 dBFS passage of it (only 5 dB under typical)
    values = feed(SilenceCue(), np.concatenate([noise(5, -45), noise(0.4, -50), noise(2, -45)]))
    assert max(v["silence"] for _, v in values) < 0.05
    # -40 dBFS in a loud programme: well below typical, but above the absolute floor
    values = feed(SilenceCue(), np.concatenate([noise(5, -10), noise(0.4, -40), noise(2, -10)]))
    assert max(v["silence"] for _, v in values) < 0.05


def test_no_audio_is_unknown_never_silence_and_empty_audio_repeats():
    cue = SilenceCue()
    image = flat(50)
    none = cue.update(ScreenFrame.from_gray(0.2, image, None))
    assert math.isnan(none["silence"]) and math.isnan(none["loudness"])
    empty = cue.update(ScreenFrame.from_gray(0.4, image, np.zeros(0, np.float32)))
    assert math.isnan(empty["silence"]) and math.isnan(empty["loudness"])  # nothing heard yet
    feed(cue, tone(3.0), t0=0.4)
    quiet = cue.update(ScreenFrame.from_gray(3.6, image, np.zeros(3200, np.float32)))
    assert quiet["silence"] > 0.95
    assert cue.update(ScreenFrame.from_gray(3.8, image, np.zeros(0, np.float32))) == quiet  # carries the last window
    none = cue.update(ScreenFrame.from_gray(4.0, image, None))
    assert math.isnan(none["silence"]) and math.isnan(none["loudness"])
    cue.reset()
    assert math.isnan(cue.update(ScreenFrame.from_gray(0, image, np.zeros(0, np.float32)))["silence"])
    with pytest.raises(ValueError):
        SilenceConfig(max_silence_db=5.0)


# ---------------------------------------------------------------------------------------------------- CueSet


def test_cue_set_runs_every_cue_and_returns_every_value():
    cues = CueSet()
    assert [type(c) for c in cues.cues] == list(DEFAULT_CUES)
    assert cues.names == ("black", "dip", "cut", "aspect", "silence", "loudness")
    first = cues.update(ScreenFrame.from_gray(0.0, flat(16), np.zeros(3200, np.float32)))
    assert tuple(first) == cues.names
    assert first["black"] > 0.95 and first["silence"] > 0.95
    assert math.isnan(first["cut"]) and math.isnan(first["aspect"])
    values = [cues.update(ScreenFrame.from_gray(0.2 * (i + 1), f, tone(0.2))) for i, f in enumerate(programme(20))]
    assert max(v["black"] for v in values) < 0.05 and max(v["silence"] for v in values) < 0.05
    after_cut = cues.update(ScreenFrame.from_gray(4.2, texture(5, W), tone(0.2)))
    assert after_cut["cut"] > 0.9 and max(v["cut"] for v in values) < 0.1
    cues.reset()
    assert math.isnan(cues.update(ScreenFrame.from_gray(0.0, flat(16)))["cut"])
    with pytest.raises(ValueError, match="same value name"):
        CueSet([BlackCue(), BlackCue()])


def test_decayed_histogram_quantiles_follow_the_recent_past():
    h = DecayedHistogram(0, 100, 100, half_life_s=10.0)
    assert math.isnan(h.quantile(0.5))
    for i in range(100):
        h.add(20.0, i * 0.1)
    assert h.quantile(0.5) == pytest.approx(20.5, abs=0.01)
    for i in range(400):  # 40 s of a new value: four half-lives
        h.add(np.array([70.0]), 10 + i * 0.1)
    assert h.quantile(0.5) == pytest.approx(70.5, abs=0.05)
    assert 20 <= h.quantile(0.01) < 21  # the old value is still the low tail
    h.add(float("nan"), 60.0)
    assert h.weight == pytest.approx(h.counts.sum())
