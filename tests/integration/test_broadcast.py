"""The test-broadcast builder: real files out (clean and camera view, sound, difficulties, second channel)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from adbreak.broadcast import build_broadcast, load_broadcast
from adbreak.broadcast.audio import EDGE_SILENCE_S, PROGRAM_DBFS, SAMPLE_RATE
from adbreak.broadcast.clips import get_pool
from adbreak.broadcast.logo import logo_for
from adbreak.broadcast.plan import plan_broadcast, sample_at, truth_segments
from adbreak.broadcast.reader import plane_views
from adbreak.broadcast.render import Renderer, i420_planes
from adbreak.segments import read_segments

pytestmark = pytest.mark.slow

SEED = 11
DURATION = 132.0  # seed 11 gives 2 breaks and a 21% ad share
FPS = 25
SIZE = (480, 270)  # smaller than the default 960x540 to keep the test quick; nothing here depends on it
HARD = frozenset({"no_black", "promos", "cold_open", "loud"})  # seed 0, 150 s: a promo first in a break, two spots
# back to back, a cold open
CH2 = frozenset({"fades", "transparent"})  # heldout seed 4, 132 s: a break of two spots, dissolves all round


# ================================================================================================ helpers
def _ad_share(segments) -> float:
    return sum(s.duration for s in segments if s.label == "ad") / segments[-1].end


def _i420(frame: av.VideoFrame) -> np.ndarray:
    y, u, v = plane_views(frame)
    return np.concatenate([y.ravel(), u.ravel(), v.ravel()]).reshape(-1, y.shape[1])


def _scan(path: Path, wanted: set[int] = frozenset()) -> tuple[np.ndarray, np.ndarray, dict[int, np.ndarray], float]:
    """Per-frame luma mean and standard deviation of every frame, the wanted frames (I420), the video's end time."""
    means, stds, frames = [], [], {}
    end = 0.0
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
        for n, f in enumerate(c.decode(stream)):
            y = plane_views(f)[0]
            means.append(float(y.mean()))
            stds.append(float(y.std()))
            if n in wanted:
                frames[n] = _i420(f)
            end = max(end, float(f.pts * stream.time_base) + 1 / FPS)
    return np.array(means), np.array(stds), frames, end


def _audio(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        a = c.streams.audio[0]
        assert a.codec_context.name == "aac" and a.codec_context.sample_rate == SAMPLE_RATE and a.channels == 1
        return np.concatenate([f.to_ndarray()[0] for f in c.decode(a)])


def _db(x: np.ndarray) -> float:
    return 20 * math.log10(max(1e-9, float(np.sqrt(np.mean(np.asarray(x, np.float64) ** 2)))))


def _plays(meta: dict):
    """The builder's plays for a built broadcast, re-planned from its metadata (checked against the metadata)."""
    rng = np.random.default_rng(meta["seed"])
    plays = plan_broadcast(
        get_pool(meta["pool"]), meta["frames"], meta["fps"], rng, frozenset(meta["difficulties"]), meta["channel"]
    )
    assert [p.to_dict(meta["fps"]) for p in plays] == meta["plays"]
    return plays


def _clean_picture(plays, i: int, size: tuple[int, int]) -> np.ndarray:
    """Frame ``i`` of a broadcast as rendered before any logo (I420)."""
    r = Renderer(size, FPS)
    p = next(p for p in plays if p.start_frame <= i < p.end_frame)
    j = i - p.start_frame
    for s in p.shots:
        if j < s.frames:
            break
        j -= s.frames
    next(iter(r.frames(s, j, 1, always=True)))
    return r.buf.copy()


def _logo_score(decoded: np.ndarray, clean: np.ndarray, logo, size: tuple[int, int]) -> tuple[float, float]:
    """How much of ``logo``'s expected change over the logo-less picture the decoded frame shows (1: all of it, 0:
    none), and the size of that change (RMS levels over the box)."""
    w, h = size
    expected = clean.copy()
    logo.apply_yuv(*i420_planes(expected, w, h))
    x0, y0, x1, y1 = logo.box
    d, e = [], []
    for img, out in ((decoded, d), (expected, e)):
        for k, plane in enumerate(i420_planes(img, w, h)):
            q = 1 if k == 0 else 2
            ref = i420_planes(clean, w, h)[k][y0 // q : y1 // q, x0 // q : x1 // q].astype(np.float64)
            out.append((plane[y0 // q : y1 // q, x0 // q : x1 // q] - ref).ravel())
    dv, ev = np.concatenate(d), np.concatenate(e)
    return float(dv @ ev / (ev @ ev)), float(np.sqrt(np.mean(ev**2)))


def _build(tmp_path_factory, name: str, **kw):
    out = tmp_path_factory.mktemp(name)
    info = build_broadcast(out, name, fps=FPS, size=SIZE, **kw)
    return info, json.loads(info.meta.read_text())


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    return _build(tmp_path_factory, "clean", seed=SEED, duration_s=DURATION, pool="train")


@pytest.fixture(scope="module")
def hard(tmp_path_factory):
    return _build(tmp_path_factory, "hard", seed=0, duration_s=150.0, pool="train", difficulties=HARD)


@pytest.fixture(scope="module")
def ch2(tmp_path_factory):
    return _build(tmp_path_factory, "ch2", seed=4, duration_s=132.0, pool="heldout", difficulties=CH2, channel="ch2")


# ================================================================================================ default broadcast
def test_truth_tiles_the_duration_with_frame_exact_boundaries(clean):
    info, meta = clean
    segs = read_segments(info.truth)
    assert segs[0].start == 0.0 and segs[-1].end == pytest.approx(DURATION, abs=1e-9)
    assert info.duration_s == DURATION and meta["frames"] == round(DURATION * FPS)
    for a, b in zip(segs, segs[1:], strict=False):
        assert a.end == b.start and a.label != b.label
    assert segs[0].label == "program" and segs[-1].label == "program"
    for s in segs:
        assert abs(s.end * FPS - round(s.end * FPS)) < 1e-6, "boundaries fall on frame times"
    assert [(s.start, s.end, s.label) for s in segs] == [(s.start, s.end, s.label) for s in info.segments]
    assert load_broadcast(info.video.parent, "clean") == info
    assert load_broadcast(info.video.parent, "missing") is None
    assert (info.difficulties, info.channel, info.audio) == (frozenset(), "ch1", True)
    assert (meta["difficulties"], meta["channel"]) == ([], "ch1")
    breaks = [s for s in segs if s.label == "ad"]
    assert len(breaks) >= 2
    assert 0.20 <= _ad_share(segs) <= 0.30
    # the plays in the metadata tile the frames and agree with the truth
    plays = meta["plays"]
    assert plays[0]["start_frame"] == 0 and sum(p["frames"] for p in plays) == meta["frames"]
    for a, b in zip(plays, plays[1:], strict=False):
        assert a["start_frame"] + a["frames"] == b["start_frame"]
    pool = get_pool("train")
    for p in plays:
        label = "program" if p["kind"] == "program" else "ad"
        mid = (p["start"] + p["end"]) / 2
        assert next(s for s in segs if s.start <= mid < s.end).label == label
        for s in p.get("shots", []):
            if p["kind"] == "program":
                assert s.get("clip") in {e.clip for e in pool.program} or s.get("photo") in pool.photos
    # every break starts and ends with a black separator of 0.4-1.0 s
    for i, p in enumerate(plays):
        if p["kind"] == "black":
            assert 0.4 - 1e-9 <= p["frames"] / FPS <= 1.0 + 1e-9
        if p["kind"] == "ad":
            assert plays[i - 1]["kind"] == "black" and plays[i + 1]["kind"] == "black"
    with av.open(str(info.video)) as c:
        assert "difficulties=none" in c.metadata["comment"] and "pool=train" in c.metadata["comment"]


def test_video_frames_match_truth(clean):
    info, meta = clean
    plays = _plays(meta)
    black = {p.start_frame + p.frames // 2 for p in plays if p.kind == "black"}
    program = {p.start_frame + k * (p.frames - 1) // 2 for p in plays if p.kind == "program" for k in range(3)}
    ads = {p.start_frame + k * (p.frames - 1) // 3 for p in plays if p.kind == "ad" for k in (1, 2)}
    means, stds, frames, end = _scan(info.video, program | ads)
    assert len(means) == meta["frames"] == round(DURATION * FPS)
    assert end == pytest.approx(DURATION, abs=0.5 / FPS)
    with av.open(str(info.video)) as c:
        assert c.streams.video[0].average_rate == FPS
        assert (c.streams.video[0].width, c.streams.video[0].height) == SIZE
    logo = logo_for(*SIZE)
    assert meta["logo"]["box"] == list(logo.box) and meta["logo"]["corner"] == "top-right"
    for i in black:
        assert means[i] < 20 and stds[i] < 2, f"frame {i} in a separator is not black"
    in_separator = np.zeros(len(means), bool)
    for p in plays:
        if p.kind == "black":
            in_separator[p.start_frame : p.end_frame] = True
    assert not ((means < 20) & (stds < 2) & ~in_separator).any(), "a black frame outside the separators"
    for i in program | ads:
        score, size = _logo_score(frames[i], _clean_picture(plays, i, SIZE), logo, SIZE)
        if size < 8:  # too bright a background to tell
            continue
        if i in program:
            assert score > 0.7, f"program frame {i} has no logo ({score:.2f})"
        else:
            assert score < 0.3, f"ad frame {i} shows the logo ({score:.2f})"


def test_audio_is_speech_and_louder_music_with_silent_separators(clean):
    info, meta = clean
    x = _audio(info.video)
    total = sample_at(meta["frames"], FPS)
    assert meta["audio"]["samples"] == total and total <= len(x) <= total + 1024
    sr = SAMPLE_RATE
    margin = int(0.03 * sr)  # the codec smears a transition over a few ms
    levels: dict[str, list[float]] = {"speech": [], "music": []}
    for it in meta["audio_items"]:
        a, b = it["start_sample"], it["start_sample"] + it["samples"]
        if it["kind"] == "silence":
            assert _db(x[a + margin : b - margin]) < -60, f"separator at {it['start']} s is not silent"
            continue
        edge = int(0.3 * sr)
        level = _db(x[a + edge : b - edge])
        assert level == pytest.approx(it["level_dbfs"], abs=1.0)
        levels[it["kind"]].append(level)
        if it["kind"] == "music":  # spots open and close with silence
            assert _db(x[a + margin : a + int(EDGE_SILENCE_S * sr)]) < -50
            assert _db(x[b - int(EDGE_SILENCE_S * sr) : b - margin]) < -50
    assert levels["speech"] and levels["music"]
    assert np.mean(levels["speech"]) == pytest.approx(PROGRAM_DBFS, abs=1.0)
    assert np.mean(levels["music"]) - np.mean(levels["speech"]) == pytest.approx(5.0, abs=1.0)


def test_same_seed_same_truth_and_sound(clean, tmp_path):
    info, meta = clean
    again = build_broadcast(tmp_path, "again", seed=SEED, duration_s=DURATION, pool="train", fps=FPS, size=(160, 90))
    assert again.truth.read_bytes() == info.truth.read_bytes()
    ameta = json.loads(again.meta.read_text())
    assert ameta["plays"] == meta["plays"] and ameta["audio_items"] == meta["audio_items"]
    assert np.array_equal(_audio(again.video), _audio(info.video))
    rng = np.random.default_rng(SEED + 1)
    other = truth_segments(plan_broadcast(get_pool("train"), round(DURATION * FPS), FPS, rng), FPS)
    assert other != list(info.segments)


def test_camera_view_same_truth_different_picture(clean, tmp_path):
    info, meta = clean
    cam = build_broadcast(
        tmp_path, "cam", seed=SEED, duration_s=DURATION, pool="train", fps=FPS, size=SIZE, camera=True
    )
    assert cam.truth.read_bytes() == info.truth.read_bytes()
    cmeta = json.loads(cam.meta.read_text())
    assert cmeta["plays"] == meta["plays"]
    corners = np.array(cmeta["screen_corners"], float)
    assert corners.shape == (4, 2)
    (tlx, tly), (trx, try_), (brx, bry), (blx, bly) = corners
    assert tlx < trx and blx < brx and tly < bly and try_ < bry, "order TL, TR, BR, BL"
    assert tly != try_ and tlx != blx, "the screen is seen at an angle, not axis-aligned"
    assert corners.min() >= 0 and corners[:, 0].max() <= SIZE[0] - 1 and corners[:, 1].max() <= SIZE[1] - 1
    picks = {p["start_frame"] + p["frames"] // 2 for p in meta["plays"]}
    _, _, clean_frames, _ = _scan(info.video, picks)
    means, _, cam_frames, _ = _scan(cam.video, picks)
    assert len(means) == meta["frames"]
    h = SIZE[1]
    for i in picks:
        assert np.abs(cam_frames[i][:h].astype(int) - clean_frames[i][:h]).mean() > 10
    assert np.array_equal(_audio(cam.video), _audio(info.video)), "the camera view has the same sound"


def test_interrupted_build_leaves_no_files(tmp_path, monkeypatch):
    import adbreak.broadcast.reader as reader

    real = reader.iter_source_frames

    def failing(clip, indices):
        for i, item in enumerate(real(clip, indices)):
            if i == 30:
                raise KeyboardInterrupt  # as if the user pressed Ctrl-C mid-build
            yield item

    monkeypatch.setattr(reader, "iter_source_frames", failing)
    with pytest.raises(KeyboardInterrupt):
        build_broadcast(tmp_path / "out", "broken", seed=1, duration_s=120, size=(160, 90))
    assert not list((tmp_path / "out").iterdir())


# ================================================================================================ difficulties
def test_no_black_promos_cold_open_loud(hard):
    info, meta = hard
    plays = _plays(meta)
    assert info.difficulties == HARD and set(meta["difficulties"]) == HARD
    assert not [p for p in plays if p.kind in ("black", "dim")]
    promos = [p for p in plays if p.kind == "promo"]
    cold = [p for i, p in enumerate(plays) if p.kind == "program" and not p.logo and plays[i - 1].kind != "program"]
    assert promos and cold
    promo_frames = {p.start_frame + k * (p.frames - 1) // 4 for p in promos for k in range(1, 4)}
    cold_frames = {p.start_frame + k * FPS for p in cold for k in (1, 2, 3, 4)}
    after_cold = set()
    for p in cold:
        i = plays.index(p)
        while plays[i].kind == "program" and not plays[i].logo:
            i += 1
        after_cold |= {plays[i].start_frame + k * FPS for k in (1, 2)}
    means, stds, frames, _ = _scan(info.video, promo_frames | cold_frames | after_cold)
    assert not ((means < 24) & (stds < 4)).any(), "no_black: no black frame anywhere"
    logo = logo_for(*SIZE)
    for group, want in ((promo_frames, True), (cold_frames, False), (after_cold, True)):
        for i in group:
            score, size = _logo_score(frames[i], _clean_picture(plays, i, SIZE), logo, SIZE)
            if size < 8:
                continue
            assert (score > 0.7) if want else (score < 0.3), (i, score)
    # sound: a short silence at every junction inside a break, and ads at program loudness
    x = _audio(info.video)
    sr = SAMPLE_RATE
    for a, b in zip(plays, plays[1:], strict=False):
        if b.kind in ("ad", "promo"):
            j = sample_at(b.start_frame, FPS)
            gap = x[j + int(0.01 * sr) : j + int(0.08 * sr)]
            assert _db(gap) < -50, f"no silence where {a.kind} cuts into {b.kind} at {b.start_frame / FPS} s"
    levels: dict[str, list[float]] = {}
    for it in meta["audio_items"]:
        a, b = it["start_sample"] + int(0.3 * sr), it["start_sample"] + it["samples"] - int(0.3 * sr)
        levels.setdefault(it["kind"], []).append(_db(x[a:b]))
    assert abs(np.mean(levels["music"] + levels["promo"]) - np.mean(levels["speech"])) < 1.0
    assert meta["audio"]["ad_dbfs"] == meta["audio"]["program_dbfs"]


def test_fades_and_second_channel_transparent_logo(ch2):
    info, meta = ch2
    plays = _plays(meta)
    assert info.channel == "ch2" and info.difficulties == CH2 and info.pool == "heldout"
    dims = [p for p in plays if p.kind == "dim"]
    assert dims and not [p for p in plays if p.kind == "black"]
    program = {p.start_frame + k * (p.frames - 1) // 2 for p in plays if p.kind == "program" for k in range(3)}
    darkest = {p.start_frame + p.frames // 2 - 1 for p in dims}
    around = {p.start_frame - 1 for p in dims} | {p.end_frame for p in dims}
    means, stds, frames, _ = _scan(info.video, program | darkest | around)
    assert stds.min() > 2, f"a uniform frame at {int(stds.argmin())}"
    assert not ((means < 24) & (stds < 4)).any(), "fades: no black frame"
    for p in dims:  # the dissolve darkens the picture to about its dim level, never to black
        i = p.start_frame + p.frames // 2 - 1
        before = means[p.start_frame - 1] - 16
        assert means[i] - 16 < 0.55 * before + 3, (p.start_frame, means[i], before)
    # the logo: ch2's, in the bottom-left corner, faint; nothing in ch1's corner
    logo, opaque, other = logo_for(*SIZE, "ch2", True), logo_for(*SIZE, "ch2"), logo_for(*SIZE, "ch1")
    assert meta["logo"]["box"] == list(logo.box) and meta["logo"]["corner"] == "bottom-left"
    assert meta["logo"]["alpha"] == logo.alpha_max < 0.3
    scores, vs_opaque, ch1 = [], [], []
    for i in program:
        clean_pic = _clean_picture(plays, i, SIZE)
        score, size = _logo_score(frames[i], clean_pic, logo, SIZE)
        if size >= 4:
            scores.append(score)
            vs_opaque.append(_logo_score(frames[i], clean_pic, opaque, SIZE)[0])
        score, size = _logo_score(frames[i], clean_pic, other, SIZE)
        if size >= 8:
            ch1.append(score)
    assert len(scores) >= 6 and np.median(scores) > 0.7
    assert np.median(vs_opaque) == pytest.approx(logo.alpha_max / opaque.alpha_max, abs=0.15)
    assert ch1 and max(ch1) < 0.3
    # dissolves are silent
    x = _audio(info.video)
    for it in meta["audio_items"]:
        if it["kind"] == "silence":
            a, b = it["start_sample"], it["start_sample"] + it["samples"]
            assert _db(x[a + int(0.03 * SAMPLE_RATE) : b - int(0.03 * SAMPLE_RATE)]) < -60


# ================================================================================================ command line
def test_cli_help_and_one_line_errors(tmp_path):
    run = [sys.executable, "-m", "adbreak.broadcast"]
    ok = subprocess.run([*run, "--help"], capture_output=True, text=True, check=False)
    assert ok.returncode == 0 and "--pool" in ok.stdout and "--difficulty" in ok.stdout and "--channel" in ok.stdout
    for bad in (
        ["--duration", "10"],
        ["--duration", "300", "--fps", "0"],
        ["--duration", "300", "--size", "9x9"],
        ["--duration", "300", "--difficulty", "no_black,bogus"],
        ["--duration", "300", "--channel", "ch9"],
    ):
        r = subprocess.run(
            [*run, str(tmp_path), "--name", "x", "--seed", "1", *bad, "--quiet"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert r.returncode != 0
        assert r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not list(tmp_path.iterdir()), "a failed build leaves no files"


def test_cli_builds_every_difficulty_for_the_second_channel(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "adbreak.broadcast", str(tmp_path), "--name", "all", "--seed", "3", "--duration", "90",
         "--pool", "heldout", "--difficulty", "all", "--channel", "ch2", "--size", "160x90", "--quiet"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    meta = json.loads((tmp_path / "all.json").read_text())
    assert set(meta["difficulties"]) == {"no_black", "fades", "promos", "cold_open", "loud", "transparent"}
    assert meta["channel"] == "ch2" and meta["logo"]["transparent"] is True
    info = load_broadcast(tmp_path, "all")
    assert info is not None and info.channel == "ch2" and len(info.difficulties) == 6
    with av.open(str(info.video)) as c:
        assert {s.type for s in c.streams} == {"video", "audio"}
        assert "channel=ch2" in c.metadata["comment"] and "cold_open" in c.metadata["comment"]
