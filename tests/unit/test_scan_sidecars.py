"""The sidecar files of a scan (adbreak/scan/sidecars.py) and its JSON (adbreak/scan/result.py): every format
written next to the recording (or in an out-dir), each read back by its reader, Comskip's ``.txt`` as comskip.c
writes it; atomic; given the recording's modification time, so a sidecar a user edited later is kept unless
``force``; nothing written when one is kept or rendering fails."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from adbreak import atomic, exports
from adbreak.errors import AdbreakError
from adbreak.scan import (
    DEFAULT_FORMATS,
    SIDECAR_FORMATS,
    ScanResult,
    SidecarEdited,
    parse_formats,
    sidecar_paths,
    write_sidecars,
)
from adbreak.segments import Segment

NAME = "The Show (2026) S01E02"
DURATION = 1800.0
SEGMENTS = [Segment(0.0, 600.04, "program"), Segment(600.04, 732.52, "ad"), Segment(732.52, 1500.0, "program"),
            Segment(1500.0, 1620.36, "ad"), Segment(1620.36, DURATION, "program")]
RECORDING_MTIME_NS = 1_795_430_000_123_456_789  # 2026-11-23, with nanoseconds


@pytest.fixture
def recording(tmp_path) -> Path:
    rec = tmp_path / "TV" / f"{NAME}.ts"
    rec.parent.mkdir()
    rec.write_bytes(b"\x47" * 188 * 4)  # the writer only looks at the file's times
    os.utime(rec, ns=(RECORDING_MTIME_NS, RECORDING_MTIME_NS))
    return rec


def result_for(rec: Path, segments: list[Segment] = SEGMENTS, *, duration: float = DURATION,
               fps: float = 29.97) -> ScanResult:
    return ScanResult(recording=rec, duration_s=duration, fps=fps, segments=list(segments), mode="fast",
                      frames_analysed=1234, timings={"probe": 0.01234, "total": 12.3456},
                      gaps=[(100.04444, 103.5)], warnings=["damaged recording: 3 corrupt packets skipped"],
                      info={"container": "mpegts", "audio": True})


def temp_files(folder: Path) -> list[str]:
    """What :func:`adbreak.atomic.atomic_path` leaves while writing: ``.NAME.xxxx.suffix``."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def assert_close(got: list[Segment], want: list[Segment], tol: float) -> None:
    assert [s.label for s in got] == [s.label for s in want], (got, want)
    for g, w in zip(got, want, strict=True):
        assert abs(g.start - w.start) <= tol and abs(g.end - w.end) <= tol, (g, w, tol)


# --------------------------------------------------------------------------------------------------- formats
def test_parse_formats_keeps_the_order_drops_repeats_and_spaces():
    assert parse_formats("edl,txt") == ("edl", "txt")
    assert parse_formats(" csv , edl,csv,") == ("csv", "edl")
    assert parse_formats(["ffmeta", "edl"]) == ("ffmeta", "edl")
    assert parse_formats(",".join(DEFAULT_FORMATS)) == DEFAULT_FORMATS == tuple(SIDECAR_FORMATS)


@pytest.mark.parametrize(("text", "match"), [
    ("", "no sidecar format given"),
    (" , ,", "no sidecar format given"),
    ([], "no sidecar format given"),
    ("edl,xyz", "unknown sidecar format xyz"),
    ("EDL", "unknown sidecar format EDL"),
    ("comskip", "unknown sidecar format comskip"),  # the exports' name; the sidecar is "txt"
    ("srt,vtt", "unknown sidecar format srt, vtt"),
])
def test_parse_formats_refuses_with_one_line_naming_the_choices(text, match):
    with pytest.raises(AdbreakError, match=match) as err:
        parse_formats(text)
    assert "\n" not in str(err.value)
    if "unknown" in match:
        assert "choose from edl, txt, ffmeta, csv" in str(err.value)


# ------------------------------------------------------------------------------------------------------ paths
def test_sidecars_go_beside_the_recording_named_after_it():
    paths = sidecar_paths("/rec/TV/The.Show.S01E02.ts")
    assert list(paths) == list(DEFAULT_FORMATS)
    assert {k: str(v) for k, v in paths.items()} == {
        "edl": "/rec/TV/The.Show.S01E02.edl", "txt": "/rec/TV/The.Show.S01E02.txt",
        "ffmeta": "/rec/TV/The.Show.S01E02.ffmeta", "csv": "/rec/TV/The.Show.S01E02.csv"}


def test_sidecar_paths_with_an_out_dir_a_basename_and_some_formats():
    assert sidecar_paths("/rec/show.mkv", ["txt"], out_dir="/out") == {"txt": Path("/out/show.txt")}
    got = sidecar_paths(Path("/rec/show.mkv"), "csv,edl", out_dir=Path("/out"), basename="other")
    assert got == {"csv": Path("/out/other.csv"), "edl": Path("/out/other.edl")}
    assert sidecar_paths("show.ts", ["edl"]) == {"edl": Path("show.edl")}
    with pytest.raises(AdbreakError, match="unknown sidecar format"):
        sidecar_paths("/rec/show.ts", ["mp4"])


# ------------------------------------------------------------------------------------------------------ write
def test_every_format_is_written_and_reads_back_through_its_reader(recording):
    written = write_sidecars(result_for(recording))
    folder = recording.parent
    assert written == [folder / f"{NAME}{SIDECAR_FORMATS[f][1]}" for f in DEFAULT_FORMATS]
    assert sorted(p.name for p in folder.iterdir()) == sorted([recording.name, *(p.name for p in written)])
    ads_only = SEGMENTS  # ad and program only: every format carries them whole
    for fmt, path in zip(DEFAULT_FORMATS, written, strict=True):
        exports_fmt = SIDECAR_FORMATS[fmt][0]
        back = exports.parse(exports_fmt, path.read_text(encoding="utf-8"), duration=DURATION)
        assert_close(back, ads_only, exports.precision(exports_fmt, 29.97))


def test_the_comskip_txt_is_what_comskip_c_writes(recording):
    """comskip.c: ``"FILE PROCESSING COMPLETE %6li FRAMES AT %4i\\n"`` (frames, fps * 100), a line of 19 dashes,
    then ``"%i\\t%i\\n"`` start and end frame of each commercial."""
    (txt,) = write_sidecars(result_for(recording, fps=29.97), ["txt"])
    assert txt.suffix == ".txt"
    text = txt.read_text(encoding="utf-8")
    lines = text.split("\n")
    assert lines[0] == f"FILE PROCESSING COMPLETE {round(DURATION * 29.97):6d} FRAMES AT {2997:4d}"
    assert lines[1] == "-------------------"
    assert lines[2:] == [f"{round(600.04 * 29.97)}\t{round(732.52 * 29.97)}",
                         f"{round(1500.0 * 29.97)}\t{round(1620.36 * 29.97)}", ""]
    assert all(re.fullmatch(r"\d+\t\d+", ln) for ln in lines[2:-1])
    segments, fps = exports.parse_comskip(text)
    assert fps == 29.97
    assert_close(segments, SEGMENTS, exports.precision("comskip", 29.97))


def test_the_comskip_txt_counts_frames_at_the_recordings_own_rate(recording):
    (txt,) = write_sidecars(result_for(recording, fps=25.0), ["txt"])
    assert txt.read_text().splitlines()[0] == "FILE PROCESSING COMPLETE  45000 FRAMES AT 2500"
    assert txt.read_text().splitlines()[2] == "15001\t18313"


def test_a_recording_without_ad_breaks_gives_files_that_say_so(recording):
    result = result_for(recording, [Segment(0.0, DURATION, "program")])
    paths = dict(zip(DEFAULT_FORMATS, write_sidecars(result), strict=True))
    assert paths["edl"].read_text() == ""
    assert paths["txt"].read_text().splitlines()[2:] == []
    for fmt, path in paths.items():
        exports_fmt = SIDECAR_FORMATS[fmt][0]
        assert exports.parse(exports_fmt, path.read_text(), duration=DURATION) == [Segment(0.0, DURATION, "program")]


def test_out_dir_and_basename_put_the_files_elsewhere_and_nothing_beside_the_recording(recording, tmp_path):
    out = tmp_path / "cutlists" / "new"  # made when missing
    written = write_sidecars(result_for(recording), ["edl", "csv"], out_dir=out, basename="show")
    assert written == [out / "show.edl", out / "show.csv"]
    assert sorted(p.name for p in out.iterdir()) == ["show.csv", "show.edl"]
    assert sorted(p.name for p in recording.parent.iterdir()) == [recording.name]


def test_written_files_carry_the_recordings_modification_time(recording):
    for path in write_sidecars(result_for(recording)):
        assert path.stat().st_mtime_ns == RECORDING_MTIME_NS, path


def test_a_rescan_replaces_its_own_files(recording):
    first = write_sidecars(result_for(recording))
    shorter = [Segment(0.0, 600.0, "program"), Segment(600.0, 700.0, "ad"), Segment(700.0, DURATION, "program")]
    again = write_sidecars(result_for(recording, shorter))
    assert again == first
    assert first[0].read_text() == "600.000\t700.000\t3\n"


def test_a_sidecar_older_than_the_recording_belongs_to_an_earlier_recording_and_is_replaced(recording):
    edl = recording.with_suffix(".edl")
    edl.write_text("1.000\t2.000\t3\n")
    old = RECORDING_MTIME_NS - 86_400 * 10**9
    os.utime(edl, ns=(old, old))
    write_sidecars(result_for(recording))
    assert edl.read_text() == "600.040\t732.520\t3\n1500.000\t1620.360\t3\n"


def test_a_sidecar_edited_after_the_recording_is_kept_and_nothing_at_all_is_written(recording):
    edl = recording.with_suffix(".edl")
    edited = "0.000\t30.000\t3\n# cut the intro too\n600.040\t732.520\t3\n"
    edl.write_text(edited)  # written now: newer than the recording
    with pytest.raises(SidecarEdited, match=re.escape(f"{NAME}.edl")) as err:
        write_sidecars(result_for(recording))
    assert "\n" not in str(err.value) and "--force" in str(err.value)
    assert isinstance(err.value, AdbreakError)  # the CLI's one-line error
    assert edl.read_text() == edited
    assert sorted(p.name for p in recording.parent.iterdir()) == sorted([recording.name, edl.name])


def test_every_edited_sidecar_is_named(recording):
    for suffix in (".txt", ".csv"):
        recording.with_suffix(suffix).write_text("mine\n")
    with pytest.raises(SidecarEdited, match=re.escape(f"{NAME}.txt, {NAME}.csv")):
        write_sidecars(result_for(recording))


def test_an_edited_sidecar_of_a_format_not_asked_for_does_not_matter(recording):
    recording.with_suffix(".txt").write_text("mine\n")
    (edl,) = write_sidecars(result_for(recording), ["edl"])
    assert edl.exists() and recording.with_suffix(".txt").read_text() == "mine\n"


def test_force_replaces_an_edited_sidecar(recording):
    edl = recording.with_suffix(".edl")
    edl.write_text("0.000\t30.000\t3\n")
    written = write_sidecars(result_for(recording), force=True)
    assert edl in written
    assert edl.read_text() == "600.040\t732.520\t3\n1500.000\t1620.360\t3\n"
    assert edl.stat().st_mtime_ns == RECORDING_MTIME_NS  # ours again: the next scan may replace it


def test_segments_that_do_not_render_write_nothing(recording):
    gap = [Segment(0.0, 600.0, "program"), Segment(700.0, DURATION, "ad")]  # a hole: not a tiling
    with pytest.raises(exports.ExportError):
        write_sidecars(result_for(recording, gap))
    assert sorted(p.name for p in recording.parent.iterdir()) == [recording.name]


def test_a_failure_while_writing_leaves_no_temporary_file_and_no_half_file(recording, monkeypatch):
    calls = []
    real_fsync = os.fsync

    def failing_fsync(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 2:  # the second file: the disk is full
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(atomic.os, "fsync", failing_fsync)
    with pytest.raises(AdbreakError, match="cannot write .*No space left"):
        write_sidecars(result_for(recording))
    folder = recording.parent
    assert temp_files(folder) == []
    txt = recording.with_suffix(".txt")
    assert not txt.exists()  # the file that failed: not there at all, never half of it
    edl = recording.with_suffix(".edl")
    if edl.exists():  # the one before it: whole
        assert edl.read_text() == "600.040\t732.520\t3\n1500.000\t1620.360\t3\n"


def test_a_failure_keeps_the_previous_file_whole(recording, monkeypatch):
    edl = recording.with_suffix(".edl")
    edl.write_text("1.000\t2.000\t3\n")
    os.utime(edl, ns=(RECORDING_MTIME_NS, RECORDING_MTIME_NS))  # the previous scan's

    def failing_replace(src, dst):  # noqa: ANN001
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(atomic.os, "replace", failing_replace)
    with pytest.raises(AdbreakError, match="cannot write .*Input/output error"):
        write_sidecars(result_for(recording), ["edl"])
    assert edl.read_text() == "1.000\t2.000\t3\n"
    assert temp_files(recording.parent) == []


# ------------------------------------------------------------------------------------------------------- JSON
def test_the_json_of_a_result_rounds_counts_and_serialises(recording):
    data = result_for(recording).to_json()
    assert json.loads(json.dumps(data)) == data
    assert data["recording"] == str(recording)
    assert data["duration_s"] == 1800.0 and data["fps"] == 29.97 and data["mode"] == "fast"
    assert data["frames_analysed"] == 1234
    assert data["segments"][1] == {"start": 600.04, "end": 732.52, "label": "ad"}
    assert [s["label"] for s in data["segments"]] == ["program", "ad", "program", "ad", "program"]
    assert data["ad_breaks"] == 2
    assert data["ad_s"] == pytest.approx((732.52 - 600.04) + (1620.36 - 1500.0), abs=1e-3)
    assert data["timings"] == {"probe": 0.012, "total": 12.346}
    assert data["gaps"] == [[100.044, 103.5]]
    assert data["warnings"] == ["damaged recording: 3 corrupt packets skipped"]
    assert data["info"] == {"container": "mpegts", "audio": True}
    assert "thumbnails" not in data


def test_the_json_of_a_result_without_breaks(recording):
    result = ScanResult(recording=recording, duration_s=5.28, fps=25.0, segments=[Segment(0.0, 5.28, "program")],
                        mode="full", frames_analysed=27)
    data = result.to_json()
    assert data["ad_breaks"] == 0 and data["ad_s"] == 0 and data["gaps"] == [] and data["warnings"] == []
    assert result.ad_breaks == []
