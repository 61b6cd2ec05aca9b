"""`adbreak export` as a user runs it: a new process reading a real migrated SQLite file that the real store filled;
files written atomically; bad input gives one line on stderr and exit code 2, and writes nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from adbreak import exports
from adbreak.segments import Segment
from server import db
from server.db import make_engine, make_sessionmaker
from server.store import SegmentStore
from tests.export_support import history
from tests.support import media, missing_service, run_cli

T0 = 1763892000.0  # 2025-11-23T10:00:00Z
T1 = T0 + 86400.0
CHANGES = [(0.0, "program"), (600.0, "ad"), (732.5, "program"), (1800.0, "ad"), (1830.25, "program")]
WANT = [Segment(0, 600, "program"), Segment(600, 732.5, "ad"), Segment(732.5, 3600, "program")]


def one_line_error(proc, match: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("adbreak export: error: ") and match in lines[0], lines[0]


@pytest.fixture(scope="module")
def database(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("exportdb") / "adbreak.db"
    url = f"sqlite:///{path}"
    db.upgrade(url)
    engine = make_engine(url)
    store = SegmentStore(make_sessionmaker(engine))
    history(store, "tv1", T0, CHANGES[:3] + [(1800.0 + 3600, "ad")])  # the second break is after the range
    history(store, "kitchen", T0, [(0.0, "program")])
    history(store, "cam", T1, [(0.0, "program"), (3.0, "ad"), (6.5, "program"), (60.0, "ad")])
    engine.dispose()
    return path


def export(database: Path, *args: str, cwd: Path | None = None):
    return run_cli("export", "--db", database, "--device", "tv1", "--start", "2025-11-23T10:00:00Z",
                   "--end", str(T0 + 3600), *args, cwd=cwd)


def test_help():
    proc = run_cli("export", "--help")
    assert proc.returncode == 0 and "usage: adbreak export" in proc.stdout and "comskip" in proc.stdout


@pytest.mark.parametrize("fmt", exports.FORMATS)
def test_every_format_written_and_readable(database, tmp_path, fmt):
    out = tmp_path / f"out.{fmt}"
    proc = export(database, "--format", fmt, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{out}: 3 segments, 1 ad break over 3600.0 s ({fmt})"
    got = exports.parse(fmt, out.read_text(), duration=3600.0)
    assert [s.label for s in got] == [s.label for s in WANT]
    tol = exports.precision(fmt)
    assert all(abs(g.start - w.start) <= tol and abs(g.end - w.end) <= tol for g, w in zip(got, WANT, strict=True))
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temporary file left


def test_default_name_in_the_working_folder_and_into_a_folder(database, tmp_path):
    proc = export(database, "--format", "edl", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "tv1_20251123T100000Z.edl").read_text() == "600.000\t732.500\t3\n"
    folder = tmp_path / "sub"
    folder.mkdir()
    proc = export(database, "--format", "comskip", "--fps", "25", "--out", folder)
    assert proc.returncode == 0, proc.stderr
    assert (folder / "tv1_20251123T100000Z.txt").read_text() == (
        "FILE PROCESSING COMPLETE  90000 FRAMES AT 2500\n-------------------\n15000\t18312\n")


def test_a_database_url_works_too(database, tmp_path):
    proc = run_cli("export", "--db", f"sqlite:///{database}", "--device", "kitchen", "--start", str(T0),
                   "--end", str(T0 + 10), "--out", tmp_path / "k.csv")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "k.csv").read_text() == "start,end,label\n0.000,10.000,program\n"


def test_errors_are_one_line_and_write_nothing(database, tmp_path):
    out = tmp_path / "x.csv"
    one_line_error(run_cli("export", "--db", tmp_path / "missing.db", "--device", "tv1", "--start", str(T0),
                           "--end", str(T0 + 10), "--out", out), "does not exist")
    assert not (tmp_path / "missing.db").exists()
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    one_line_error(run_cli("export", "--db", empty, "--device", "tv1", "--start", str(T0), "--end", str(T0 + 10),
                           "--out", out), "run `adbreak db upgrade`")
    one_line_error(export(database, "--device", "nosuch", "--out", out),
                   "unknown device 'nosuch' (known: cam, kitchen, tv1)")
    one_line_error(run_cli("export", "--db", database, "--device", "tv1", "--start", "yesterday", "--end", str(T0),
                           "--out", out), "--start 'yesterday' is neither epoch seconds nor an ISO 8601 time")
    one_line_error(run_cli("export", "--db", database, "--device", "tv1", "--start", str(T0), "--end", str(T0),
                           "--out", out), "end must be after start")
    one_line_error(export(database, "--fps", "25", "--out", out), "--fps applies to --format comskip only")
    one_line_error(run_cli("export", "--db", database, "--device", "tv1", "--start", str(T0 - 7200),
                           "--end", str(T0 - 3600), "--out", out), "no stored segment overlaps the range")
    proc = export(database, "--format", "srt", "--out", out)
    assert proc.returncode == 2 and "invalid choice: 'srt'" in proc.stderr
    proc = export(database, "--format", "comskip", "--fps", "0.5", "--out", out)
    assert proc.returncode == 2 and "fps must be a number between 1 and 240" in proc.stderr
    assert not out.exists()


# ---------------------------------------------------------------------------------------------------- real FFmpeg
def require_ffmpeg() -> None:
    if shutil.which("ffmpeg") and shutil.which("ffprobe"):
        return
    if os.environ.get("CI"):
        pytest.fail("ffmpeg and ffprobe are needed (apt-get install ffmpeg)")
    missing_service("ffmpeg/ffprobe not installed")


def chapters_of(video: Path, chapters: Path, tmp_path: Path) -> list[tuple[float, float, str]]:
    """Mux ``chapters`` into a copy of ``video`` with FFmpeg, then read them back with ffprobe."""
    out = tmp_path / f"{chapters.stem}.mkv"
    proc = subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(video), "-i", str(chapters), "-map_metadata", "1",
                           "-c", "copy", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_chapters", "-of", "json", str(out)], capture_output=True,
                           text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr
    return [(float(c["start_time"]), float(c["end_time"]), c["tags"]["title"])
            for c in json.loads(probe.stdout)["chapters"]]


def test_ffmpeg_muxes_the_exported_chapters(database, tmp_path):
    require_ffmpeg()
    clip = media("bikes")  # 10 s
    chapters = tmp_path / "chapters.txt"
    proc = run_cli("export", "--db", database, "--device", "cam", "--start", str(T1), "--end", str(T1 + 10),
                   "--format", "ffmetadata", "--out", chapters)
    assert proc.returncode == 0, proc.stderr
    got = chapters_of(clip, chapters, tmp_path)
    want = [(0.0, 3.0, "Program"), (3.0, 6.5, "Ad break"), (6.5, 10.0, "Program")]
    assert [g[2] for g in got] == [w[2] for w in want], got
    assert all(abs(g[0] - w[0]) < 1e-3 and abs(g[1] - w[1]) < 1e-3 for g, w in zip(got, want, strict=True)), got


def test_ffmpeg_reads_our_escaping_of_odd_labels(tmp_path):
    require_ffmpeg()
    labels = ["program", "news=live;#1", "back\\slash", "two\nlines", "ad"]
    segments = [Segment(i * 2.0, i * 2.0 + 2.0, label) for i, label in enumerate(labels)]
    chapters = tmp_path / "odd.txt"
    chapters.write_text(exports.render("ffmetadata", segments, 10.0))
    got = chapters_of(media("bikes"), chapters, tmp_path)
    assert [g[2] for g in got] == ["Program", "news=live;#1", "back\\slash", "two\nlines", "Ad break"]
    assert exports.parse("ffmetadata", chapters.read_text()) == segments
