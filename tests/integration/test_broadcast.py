"""The test-broadcast builder: real clips in, a video with exact truth out (clean and camera view)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from adbreak.broadcast import build_broadcast, load_broadcast
from adbreak.broadcast.builder import plan_broadcast, truth_segments
from adbreak.broadcast.clips import CLIPS, POOLS, get_pool
from adbreak.broadcast.logo import logo_for
from adbreak.segments import read_segments

pytestmark = pytest.mark.slow

SEED = 11
DURATION = 132.0  # seed 11 gives 2 breaks and a 21% ad share
FPS = 25
SIZE = (480, 270)  # smaller than the default 960x540 to keep the test quick; nothing here depends on it


def _ad_share(segments) -> float:
    return sum(s.duration for s in segments if s.label == "ad") / segments[-1].end


def _decode_gray(path: Path, wanted: set[int] | None = None) -> tuple[int, dict[int, np.ndarray], float]:
    """Frame count, the wanted frames as grayscale (Y plane), and the stream's end time in seconds."""
    frames: dict[int, np.ndarray] = {}
    n = 0
    end = 0.0
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        for f in c.decode(stream):
            if wanted is None or n in wanted:
                frames[n] = f.to_ndarray(format="gray")
            end = max(end, float(f.pts * stream.time_base) + 1 / FPS)
            n += 1
    return n, frames, end


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    out = tmp_path_factory.mktemp("broadcast")
    info = build_broadcast(out, "clean", seed=SEED, duration_s=DURATION, pool="train", fps=FPS, size=SIZE)
    return info, json.loads(info.meta.read_text())


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
    breaks = [s for s in segs if s.label == "ad"]
    assert len(breaks) >= 2
    assert 0.20 <= _ad_share(segs) <= 0.30
    # the plays in the metadata tile the frames and agree with the truth
    plays = meta["plays"]
    assert plays[0]["start_frame"] == 0 and sum(p["frames"] for p in plays) == meta["frames"]
    for a, b in zip(plays, plays[1:], strict=False):
        assert a["start_frame"] + a["frames"] == b["start_frame"]
    for p in plays:
        label = "program" if p["kind"] == "program" else "ad"
        mid = (p["start"] + p["end"]) / 2
        assert next(s for s in segs if s.start <= mid < s.end).label == label
        if p["kind"] != "black":
            assert CLIPS[p["clip"]].role == p["kind"]
    # every break starts and ends with a black separator of 0.4-1.0 s
    for i, p in enumerate(plays):
        if p["kind"] == "black":
            assert 0.4 - 1e-9 <= p["frames"] / FPS <= 1.0 + 1e-9
        if p["kind"] == "ad":
            assert plays[i - 1]["kind"] == "black" and plays[i + 1]["kind"] == "black"


def test_video_frames_match_truth(clean):
    info, meta = clean
    plays = meta["plays"]
    black_frames = {p["start_frame"] + p["frames"] // 2 for p in plays if p["kind"] == "black"}
    program_frames = {
        p["start_frame"] + k * (p["frames"] - 1) // 2 for p in plays if p["kind"] == "program" for k in range(3)
    }
    ad_frames = {p["start_frame"] + p["frames"] // 2 for p in plays if p["kind"] == "ad"}
    n, frames, end = _decode_gray(info.video, black_frames | program_frames | ad_frames)
    assert n == meta["frames"] == round(DURATION * FPS)
    assert end == pytest.approx(DURATION, abs=0.5 / FPS)
    with av.open(str(info.video)) as c:
        assert c.streams.video[0].average_rate == FPS
        assert (c.streams.video[0].width, c.streams.video[0].height) == SIZE

    logo = logo_for(*SIZE)
    x0, y0, x1, y1 = logo.box
    assert meta["logo"]["box"] == [x0, y0, x1, y1]
    strokes = logo.stroke_mask()

    def logo_level(img: np.ndarray) -> float:
        return float(img[y0:y1, x0:x1][strokes].mean())

    for i in black_frames:
        assert frames[i].mean() < 8, f"frame {i} in a separator is not black"
    for i in program_frames:
        assert frames[i].mean() > 20, f"program frame {i} looks black"
        assert logo_level(frames[i]) > 120, f"program frame {i} has no logo"
    for i in ad_frames:
        assert frames[i].mean() > 20, f"ad frame {i} looks black"
        # every catalogued ad is 4:3, so the logo's corner is a black bar on ads: no logo there
        assert logo_level(frames[i]) < 60, f"ad frame {i} shows the logo"


def test_same_seed_same_truth(clean, tmp_path):
    info, meta = clean
    again = build_broadcast(tmp_path, "again", seed=SEED, duration_s=DURATION, pool="train", fps=FPS, size=(160, 90))
    assert again.truth.read_bytes() == info.truth.read_bytes()
    assert json.loads(again.meta.read_text())["plays"] == meta["plays"]
    other = truth_segments(
        plan_broadcast(get_pool("train"), round(DURATION * FPS), FPS, np.random.default_rng(SEED + 1)), FPS
    )
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
    n_clean, clean_frames, _ = _decode_gray(info.video, picks)
    n_cam, cam_frames, _ = _decode_gray(cam.video, picks)
    assert n_cam == n_clean
    for i in picks:
        assert np.abs(cam_frames[i].astype(int) - clean_frames[i]).mean() > 10


def test_interrupted_build_leaves_no_files(tmp_path, monkeypatch):
    import adbreak.broadcast.builder as builder

    real = builder.iter_source_frames

    def failing(clip, indices):
        for i, item in enumerate(real(clip, indices)):
            if i == 30:
                raise KeyboardInterrupt  # as if the user pressed Ctrl-C mid-build
            yield item

    monkeypatch.setattr(builder, "iter_source_frames", failing)
    with pytest.raises(KeyboardInterrupt):
        build_broadcast(tmp_path / "out", "broken", seed=1, duration_s=120, size=(160, 90))
    assert not list((tmp_path / "out").iterdir())


def test_pools_plan_realistic_broadcasts():
    """Planning only (no video): structure holds over many seeds, for short and 30-minute broadcasts, both pools."""
    for pool in POOLS:
        for duration, (lo, hi) in ((150, (2, 2)), (1800, (5, 7))):
            for seed in range(20):
                plays = plan_broadcast(get_pool(pool), duration * FPS, FPS, np.random.default_rng(seed))
                segs = truth_segments(plays, FPS)
                breaks = [s for s in segs if s.label == "ad"]
                assert lo <= len(breaks) <= hi, (pool, duration, seed)
                assert 0.18 <= _ad_share(segs) <= 0.32, (pool, duration, seed)
                assert segs[0].label == segs[-1].label == "program"
                if duration == 1800:
                    assert all(60 <= s.duration <= 240 for s in segs if s.label == "program"), (pool, seed)
                spots = [p for p in plays if p.kind == "ad"]
                assert all(10 * FPS <= p.frames <= 45 * FPS and p.frames % (5 * FPS) == 0 for p in spots)
                assert {p.spot for p in spots} <= {s.name for s in get_pool(pool).spots}


def test_pools_are_disjoint_in_time():
    train, heldout = POOLS["train"], POOLS["heldout"]
    for a in train.program + train.spots:
        for b in heldout.program + heldout.spots:
            if a.clip == b.clip:
                assert a.end_s <= b.start_s or b.end_s <= a.start_s, (a, b)


def test_cli_help_and_one_line_errors(tmp_path):
    run = [sys.executable, "-m", "adbreak.broadcast"]
    ok = subprocess.run([*run, "--help"], capture_output=True, text=True, check=False)
    assert ok.returncode == 0 and "--pool" in ok.stdout
    for bad in (["--duration", "10"], ["--duration", "300", "--fps", "0"], ["--duration", "300", "--size", "9x9"]):
        r = subprocess.run(
            [*run, str(tmp_path), "--name", "x", "--seed", "1", *bad, "--quiet"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert r.returncode != 0
        assert r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not list(tmp_path.iterdir()), "a failed build leaves no files"
