"""``adbreak scan RECORDING`` on a real built recording (issue 14): the real scanner (coarse to fine on two worker
processes) and the real command in a new process. Accuracy against the built truth; ``--json``; sidecars beside the
recording, each read back by its reader (Comskip's ``.txt`` as comskip.c writes it), with the recording's time;
``--out-dir``, ``--formats``, ``--full``; a one-line error and a non-zero exit on bad input; a sidecar a user
edited is kept; an out-dir that cannot be written gives one line and no file.

One recording per test session (``tests/scan_support.py``), scanned once per way of scanning (module fixtures)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from adbreak import exports
from adbreak.metrics import evaluate_segments
from adbreak.scan import DEFAULT_FORMATS, SIDECAR_FORMATS
from adbreak.segments import is_ad
from tests import scan_support as ss
from tests.support import BUNDLED_MEDIA, missing_service

pytestmark = pytest.mark.slow


SIDECAR_SUFFIXES = [SIDECAR_FORMATS[f][1] for f in DEFAULT_FORMATS]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> ss.Built:
    return ss.built_recording(tmp_path_factory)


# ------------------------------------------------------------------------------------------- the scanner itself
@pytest.fixture(scope="module")
def api_scan(built, tmp_path_factory):  # noqa: ANN201
    """``scan_recording`` on the recording, with what the decision step was given recorded (``assemble``'s
    arguments and columns) for the tests of how the passes' values meet on the grid."""
    from adbreak.scan import scan_recording, scanner

    seen: dict = {}
    real = scanner.assemble

    def spy(n, fps, **kwargs):  # noqa: ANN001, ANN202
        t, cols = real(n, fps, **kwargs)
        seen.update(kwargs, n=n, fps=fps, cols={k: v.copy() for k, v in cols.items()})
        return t, cols

    rec = ss.copy_to(built.video, tmp_path_factory.mktemp("scan-api"), f"{ss.NAME}.mp4")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(scanner, "assemble", spy)
        started = time.perf_counter()
        result = scan_recording(rec, workers=2)
        wall = time.perf_counter() - started
    return result, seen, wall


def test_the_scan_finds_the_breaks_of_the_built_recording(built, api_scan):
    result, _, wall = api_scan
    metrics = evaluate_segments(built.truth, result.segments)
    assert metrics["accuracy"] >= 0.98, (metrics, result.segments, built.truth)
    assert metrics["missed_breaks"] == 0 and metrics["false_breaks"] == 0, metrics
    assert metrics["flaps"] == 0, metrics
    for brk in ss.full_breaks(built.truth):
        assert ss.ad_overlap(result.segments, brk.start, brk.end) >= 0.9 * brk.duration, (brk, result.segments)
    ss.assert_tiles(result.segments, built.duration_s, tol=0.05)
    assert result.mode == "fast" and result.warnings == [] and result.gaps == [], result
    assert result.fps == pytest.approx(built.fps)
    assert result.info["audio"] is True and result.info["logo"] is True, result.info
    assert 0 < result.frames_analysed < built.duration_s * 5 * 0.7, result.frames_analysed  # windows, not all of it
    assert {"probe", "coarse", "fine", "decide", "total"} <= set(result.timings)
    assert result.timings["total"] <= wall + 0.5


def test_boundaries_land_on_the_exact_frame_of_the_separator(built, api_scan):
    """The truth's breaks begin on their first black frame and end after their last: the scan's boundaries are
    snapped to decoded frames, so most of them are exact to the frame."""
    result, _, _ = api_scan
    truth_bounds = [s.end for s in built.truth[:-1]]
    got_bounds = [s.end for s in result.segments[:-1]]
    assert len(got_bounds) == len(truth_bounds), result.segments
    errors = [abs(g - t) for g, t in zip(got_bounds, truth_bounds, strict=True)]
    assert max(errors) <= 1.0, errors
    assert sum(e <= 0.5 / built.fps for e in errors) >= len(errors) - 1, errors


def test_the_logo_is_held_between_the_windows_where_nothing_changed(api_scan):
    """timeline.assemble: "between two known logo values that agree, with no window between them, the logo is held".
    Between two planned windows lies a stretch of one show or one spot; its intra frames agree, so its grid frames
    carry the logo (the fusion's block statistics see the stretch whole)."""
    _, seen, _ = api_scan
    key_k = np.asarray(seen["key_k"])
    key_logo = np.asarray(seen["key_values"]["logo"])
    n, fps = seen["n"], seen["fps"]
    max_gap = max(1, int(round(seen["max_hold_s"] * fps)))
    window_frames = np.zeros(n, bool)
    for ks, _values in seen["windows"]:
        ks = np.asarray(ks, np.int64)
        window_frames[ks[(ks >= 0) & (ks < n)]] = True
    logo = seen["cols"]["logo"]
    unheld = []
    for (i, a), (j, b) in zip(zip(key_k[:-1], key_logo[:-1], strict=True), zip(key_k[1:], key_logo[1:], strict=True),
                              strict=True):
        if not (0 <= i < j < n) or j - i > max_gap or not (np.isfinite(a) and np.isfinite(b)):
            continue
        if abs(a - b) >= 0.25 or window_frames[i + 1:j].any():
            continue  # the logo changed, or a window (with values of its own) lies between
        if not np.isfinite(logo[i + 1:j]).all():
            unheld.append((round(float(i) / fps, 1), round(float(j) / fps, 1)))
    assert unheld == [], f"logo not held between agreeing intra frames (s): {unheld}"


# ------------------------------------------------------------------------------------------------ the command
@pytest.fixture(scope="module")
def cli_default(built, tmp_path_factory):  # noqa: ANN201
    """``adbreak scan REC --json`` with the recording alone in a DVR-like folder."""
    folder = tmp_path_factory.mktemp("scan-cli") / "TV" / "Evening News"
    rec = ss.copy_to(built.video, folder, f"{ss.NAME}.mp4")
    proc, data = ss.scan_json(rec, cwd=folder.parent)
    return rec, proc, data


def test_json_has_the_segments_timings_and_files(built, cli_default):
    rec, proc, data = cli_default
    assert {"recording", "duration_s", "fps", "mode", "segments", "ad_breaks", "ad_s", "timings", "gaps",
            "warnings", "info", "files"} <= set(data)
    segments = ss.segments_of(data)
    ss.assert_tiles(segments, data["duration_s"])
    assert data["duration_s"] == pytest.approx(built.duration_s, abs=0.05)
    assert evaluate_segments(built.truth, segments)["accuracy"] >= 0.98
    assert data["ad_breaks"] == sum(is_ad(s.label) for s in segments) >= 1
    assert data["ad_s"] == pytest.approx(sum(s.duration for s in segments if is_ad(s.label)), abs=0.01)
    assert {"probe", "coarse", "fine", "decide", "total"} <= set(data["timings"])
    assert all(v >= 0 for v in data["timings"].values())
    assert data["files"] == [str(rec.with_suffix(sfx)) for sfx in SIDECAR_SUFFIXES]
    assert data["mode"] == "fast" and data["gaps"] == [] and data["warnings"] == []
    assert ss.warnings_of(proc) == []


def test_the_command_and_the_scanner_agree(cli_default, api_scan):
    _, _, data = cli_default
    result, _, _ = api_scan
    got, want = ss.segments_of(data), result.segments
    assert [s.label for s in got] == [s.label for s in want]
    assert all(abs(g.end - w.end) <= 0.01 for g, w in zip(got, want, strict=True))


def test_sidecars_appear_beside_the_recording_and_read_back(built, cli_default):
    rec, _, data = cli_default
    segments = ss.segments_of(data)
    assert ss.listing(rec.parent) == sorted([rec.name, *(rec.with_suffix(s).name for s in SIDECAR_SUFFIXES)])
    for fmt in DEFAULT_FORMATS:
        exports_fmt, suffix = SIDECAR_FORMATS[fmt]
        path = rec.with_suffix(suffix)
        back = exports.parse(exports_fmt, path.read_text(encoding="utf-8"), duration=data["duration_s"])
        tol = exports.precision(exports_fmt, data["fps"])
        assert [s.label for s in back] == [s.label for s in segments], (fmt, back)
        for b, s in zip(back, segments, strict=True):
            assert abs(b.start - s.start) <= tol and abs(b.end - s.end) <= tol, (fmt, b, s)
        assert path.stat().st_mtime_ns == rec.stat().st_mtime_ns, fmt  # "ours": a rescan may replace it


def test_the_comskip_txt_is_comskips(cli_default):
    rec, _, data = cli_default
    lines = rec.with_suffix(".txt").read_text().split("\n")
    fps100 = round(data["fps"] * 100)
    frames = round(data["duration_s"] * fps100 / 100)
    assert lines[0] == f"FILE PROCESSING COMPLETE {frames:6d} FRAMES AT {fps100:4d}"  # comskip.c's %6li, %4i
    assert lines[1] == "-" * 19
    ads = [s for s in ss.segments_of(data) if is_ad(s.label)]
    rate = fps100 / 100
    assert lines[2:] == [f"{round(s.start * rate)}\t{round(s.end * rate)}" for s in ads] + [""]


@pytest.fixture(scope="module")
def cli_full(built, tmp_path_factory):  # noqa: ANN201
    """``adbreak scan REC --full --out-dir OUT --formats edl --json``."""
    root = tmp_path_factory.mktemp("scan-cli-full")
    rec = ss.copy_to(built.video, root / "recordings", "show.mp4")
    out = root / "cutlists"
    proc, data = ss.scan_json(rec, "--full", "--out-dir", out, "--formats", "edl")
    return rec, out, proc, data


def test_out_dir_and_one_format_write_only_that_file_there(cli_full):
    rec, out, _, data = cli_full
    assert ss.listing(out) == ["show.edl"]
    assert ss.listing(rec.parent) == ["show.mp4"]
    assert data["files"] == [str(out / "show.edl")]
    back = exports.parse_edl((out / "show.edl").read_text(), duration=data["duration_s"])
    got = ss.segments_of(data)
    assert [s.label for s in back] == [s.label for s in got]
    assert all(abs(b.end - g.end) <= 0.001 for b, g in zip(back, got, strict=True))


def test_full_gives_the_same_segments_as_coarse_to_fine(built, cli_full, cli_default):
    _, _, _, full = cli_full
    _, _, fast = cli_default
    assert full["mode"] == "full" and fast["mode"] == "fast"
    assert full["frames_analysed"] >= built.duration_s * 5 - 5
    got, want = ss.segments_of(full), ss.segments_of(fast)
    assert [s.label for s in got] == [s.label for s in want], (got, want)
    for g, w in zip(got, want, strict=True):
        assert abs(g.start - w.start) <= 0.5 and abs(g.end - w.end) <= 0.5, (g, w)
    assert evaluate_segments(built.truth, got)["accuracy"] >= 0.98


# ------------------------------------------------------------------------------------------------- bad input
@pytest.fixture(scope="module")
def bad_inputs(built, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("scan-bad")
    text = root / "notes.mp4"
    text.write_text("start,end,label\n0.000,10.000,program\n")
    data = built.video.read_bytes()
    cut = root / "cut.mp4"  # the builder's MP4 keeps its index (moov) at the end: cut off, nothing decodes
    cut.write_bytes(data[: int(len(data) * 0.7)])
    junk = root / "junk.ts"
    junk.write_bytes(np.random.default_rng(1).integers(0, 256, 400_000, dtype=np.uint8).tobytes())
    empty = root / "empty.ts"
    empty.write_bytes(b"")
    return {"missing": root / "nowhere.ts", "text": text, "cut_mp4": cut, "junk": junk, "empty": empty}


@pytest.mark.parametrize(("which", "match"), [
    ("missing", "not found"),
    ("text", "notes.mp4"),
    ("cut_mp4", "cut.mp4"),
    ("junk", "junk.ts"),
    ("empty", "empty.ts"),
])
def test_bad_recordings_give_one_line_and_a_non_zero_exit(bad_inputs, which, match, tmp_path):
    path = bad_inputs[which]
    before = ss.listing(path.parent)
    proc = ss.run_scan(path, "--out-dir", tmp_path / "out", timeout=120)
    line = ss.one_line_error(proc)
    assert match in line, line
    assert proc.stdout == ""
    assert not (tmp_path / "out").exists()
    assert ss.listing(path.parent) == before


def test_a_file_with_no_video_stream_gives_one_line(built, tmp_path):
    audio = tmp_path / "radio.m4a"
    exe = ss.ffmpeg()
    if exe is None:
        missing_service("no FFmpeg program to make an audio-only file")
    subprocess.run([exe, "-nostdin", "-v", "error", "-i", str(built.video), "-vn", "-c", "copy", "-t", "20",
                    str(audio)], check=True, timeout=60)
    line = ss.one_line_error(ss.run_scan(audio, timeout=120))
    assert "no video" in line, line
    assert ss.listing(tmp_path) == ["radio.m4a"]


@pytest.mark.parametrize(("options", "match"), [
    (["--formats", "edl,xyz"], "unknown sidecar format xyz; choose from edl, txt, ffmeta, csv"),
    (["--formats", ""], "no sidecar format given; choose from edl, txt, ffmeta, csv"),
    (["--workers", "0"], "--workers must be at least 1"),
])
def test_bad_options_give_one_line_before_any_scanning(built, tmp_path, options, match):
    rec = ss.copy_to(built.video, tmp_path, "show.mp4")
    started = time.perf_counter()
    proc = ss.run_scan(rec, *options, timeout=120)
    line = ss.one_line_error(proc)
    assert match in line, line
    assert time.perf_counter() - started < 15  # refused up front, not after a scan
    assert ss.listing(tmp_path) == ["show.mp4"]


# ------------------------------------------------------------------------------- sidecars from the command line
@pytest.fixture
def clip(tmp_path) -> Path:
    """A 5 s real clip without sound (fast to scan) for the tests of what the command writes."""
    return ss.copy_to(BUNDLED_MEDIA / "bigbuckbunny.mp4", tmp_path / "rec", "clip.mp4")


def test_an_edited_sidecar_is_kept_with_one_line_and_force_replaces_it(clip):
    proc = ss.run_scan(clip, "-q", timeout=120)
    assert proc.returncode == 0, proc.stderr
    names = ss.listing(clip.parent)
    assert names == sorted(["clip.mp4", *(f"clip{s}" for s in SIDECAR_SUFFIXES)])
    edl = clip.with_suffix(".edl")
    edl.write_text("0.000\t2.000\t3\n")  # the user marks something by hand
    others = {p: p.read_bytes() for p in clip.parent.iterdir() if p not in (edl, clip)}
    for p in others:  # make every other sidecar look like an earlier scan's: any rewrite would show
        os.utime(p, ns=(1, 1))
    proc = ss.run_scan(clip, "-q", timeout=120)
    line = ss.one_line_error(proc)
    assert "clip.edl" in line and "--force" in line, line
    assert edl.read_text() == "0.000\t2.000\t3\n"
    assert all(p.stat().st_mtime_ns == 1 and p.read_bytes() == b for p, b in others.items())  # none rewritten
    assert ss.listing(clip.parent) == names
    proc = ss.run_scan(clip, "-q", "--force", timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert edl.read_text() == ""  # the scan's own file: no ad break in the clip
    assert edl.stat().st_mtime_ns == clip.stat().st_mtime_ns


def test_a_rescan_replaces_its_own_sidecars(clip):
    for _ in range(2):
        proc = ss.run_scan(clip, "-q", timeout=120)
        assert proc.returncode == 0, proc.stderr
    assert ss.listing(clip.parent) == sorted(["clip.mp4", *(f"clip{s}" for s in SIDECAR_SUFFIXES)])


@contextlib.contextmanager
def read_only(folder: Path):  # noqa: ANN201
    """``folder`` made read-only: mode 0555, and for root (who ignores modes) the immutable attribute."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o555)
    immutable = False
    if os.geteuid() == 0 and shutil.which("chattr"):
        immutable = subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0
    try:
        probe = folder / ".probe"
        try:
            probe.write_text("x")
        except OSError:
            pass
        else:
            probe.unlink()
            pytest.skip("cannot make a read-only folder here (root without chattr)")
        yield folder
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], capture_output=True)
        folder.chmod(0o755)


def test_a_read_only_out_dir_gives_one_line_and_no_file(clip, tmp_path):
    with read_only(tmp_path / "out") as out:
        proc = ss.run_scan(clip, "--out-dir", out, timeout=120)
        line = ss.one_line_error(proc)
        assert "out" in line, line
        assert ss.listing(out) == []
    assert ss.listing(clip.parent) == ["clip.mp4"]


def test_an_out_dir_that_cannot_be_made_gives_one_line_and_no_file(clip, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    proc = ss.run_scan(clip, "--out-dir", blocker / "out", timeout=120)
    line = ss.one_line_error(proc)
    assert "a-file" in line, line
    assert ss.listing(tmp_path) == sorted(["a-file", "rec"]) and ss.listing(clip.parent) == ["clip.mp4"]


def test_segments_of_the_clip_tile_it(clip):
    proc, data = ss.scan_json(clip, "--no-files")
    assert data["files"] == [] and ss.listing(clip.parent) == ["clip.mp4"]
    ss.assert_tiles(ss.segments_of(data), data["duration_s"])
    assert data["mode"] == "full"  # no sound: every frame analysed
    assert [s.label for s in ss.segments_of(data)] == ["program"]


def test_no_recording_gives_one_line():
    line = ss.one_line_error(ss.run_scan(timeout=60))
    assert "RECORDING" in line, line
