"""``adbreak-comskip`` called exactly as comchap and comcut (github.com/BrettSheleski/comchap) call Comskip: the real
installed executable in a new process, on a real built recording; the files it writes are parsed back and the exit
code checked.

comchap:  ``$comskipPath --ini="$comskipini" "$infile"``, then reads ``${infile%.*}.edl`` (tab-separated, first two
          fields) and fails when it is missing; it never looks at the exit code.
comcut:   ``$comskipPath $comskipoutput --ini="$comskipini" "$infile"`` with ``comskipoutput=--output=$workdir`` when
          ``--work-dir`` is given, then reads ``$workdir/<name>.edl``.
Both first write ``output_edl=1`` into the ini (``~/.comskip.ini``) when it lacks that line.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from adbreak import exports
from adbreak.segments import Segment
from tests.support import BUNDLED_MEDIA

NAME = "Evening News (2026) S01E02"  # a DVR's name: spaces and parentheses, quoted by the scripts
DURATION_S = 120.0


def executable() -> Path:
    exe = Path(sys.executable).with_name("adbreak-comskip")
    if not exe.is_file():
        found = shutil.which("adbreak-comskip")
        if found is None:
            pytest.fail("adbreak-comskip is not installed: pip install -e . (pyproject's [project.scripts])")
        exe = Path(found)
    return exe


def comskip(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(executable()), *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    from adbreak.broadcast import build_broadcast

    root = tmp_path_factory.mktemp("comskip-dropin")
    info = build_broadcast(root, "rec", seed=7, duration_s=DURATION_S, pool="heldout", size=(640, 360))
    return Path(info.video)


@pytest.fixture
def recording(built, tmp_path) -> Path:
    """The built recording, alone in a folder of its own under a DVR-like name."""
    folder = tmp_path / "TV" / "Evening News"
    folder.mkdir(parents=True)
    rec = folder / f"{NAME}.mp4"
    shutil.copy2(built, rec)
    return rec


@pytest.fixture
def comchap_ini(tmp_path) -> Path:
    ini = tmp_path / "home" / ".comskip.ini"
    ini.parent.mkdir()
    ini.write_text("output_edl=1\n")  # what comchap/comcut write when ~/.comskip.ini is missing
    return ini


def edl_breaks(path: Path) -> list[tuple[float, float]]:
    """What comchap's loop reads (``IFS=$'\\t' read -r -a line``: fields 0 and 1), checked with our parser too."""
    text = path.read_text()
    exports.parse_edl(text, duration=DURATION_S + 1.0)
    return [(float(line.split("\t")[0]), float(line.split("\t")[1])) for line in text.splitlines() if line]


def assert_exit_matches(proc: subprocess.CompletedProcess[str], breaks: list) -> None:
    """Comskip's codes: 0 when it found commercials, 1 when none."""
    want = 0 if breaks else 1
    assert proc.returncode == want, (proc.returncode, proc.stdout, proc.stderr)
    last = proc.stdout.splitlines()[-1]
    assert last == ("Commercials were found." if breaks else "Commercials were not found.")


def assert_same_breaks(edl: list[tuple[float, float]], txt: Path, fps: float = 25.0) -> None:
    segs, txt_fps = exports.parse_comskip(txt.read_text())
    assert txt_fps == fps  # the video's own frame rate (the builder's 25)
    ads = [(s.start, s.end) for s in segs if s.label == "ad"]
    assert len(ads) == len(edl)
    for (a, b), (c, d) in zip(ads, edl, strict=True):
        assert abs(a - c) <= 0.5 / fps + 1e-3 and abs(b - d) <= 0.5 / fps + 1e-3


def test_comchap_call(recording, comchap_ini):
    proc = comskip(f"--ini={comchap_ini}", recording, cwd=recording.parent.parent)
    folder = recording.parent
    edl, txt = folder / f"{NAME}.edl", folder / f"{NAME}.txt"
    assert sorted(p.name for p in folder.iterdir()) == sorted([recording.name, edl.name, txt.name]), proc.stderr
    breaks = edl_breaks(edl)
    assert_exit_matches(proc, breaks)
    assert_same_breaks(breaks, txt)
    for a, b in breaks:
        assert 0 <= a < b <= DURATION_S + 0.01


def test_comcut_call_with_work_dir(recording, comchap_ini, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    proc = comskip(f"--output={work}", f"--ini={comchap_ini}", recording, cwd=tmp_path)
    assert sorted(p.name for p in work.iterdir()) == [f"{NAME}.edl", f"{NAME}.txt"], proc.stderr
    assert sorted(p.name for p in recording.parent.iterdir()) == [recording.name]  # nothing beside the recording
    breaks = edl_breaks(work / f"{NAME}.edl")
    assert_exit_matches(proc, breaks)
    assert_same_breaks(breaks, work / f"{NAME}.txt")


def test_adbreak_comskip_subcommand_with_comskip_options(recording, tmp_path):
    """``adbreak comskip`` with Comskip's other forms: ``--ini FILE``, OUTDIR, ``--output-filename``, an ini with
    comments choosing ffmeta only, and options Comskip has that adbreak ignores (one warning each)."""
    ini = tmp_path / "comskip.ini"
    ini.write_text("; Comskip ini\n[Output Control]\noutput_default = 0 ; no .txt\noutput_ffmeta=1\n"
                   "output_vdr=1\n")
    out = tmp_path / "cutlists"
    proc = subprocess.run([sys.executable, "-m", "adbreak.cli", "comskip", "--ini", str(ini), "-t", "--hwassist",
                           "--verbose=10", str(recording), str(out), "--output-filename", "show"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert sorted(p.name for p in out.iterdir()) == ["show.ffmeta"], proc.stderr
    warnings = [ln for ln in proc.stderr.splitlines() if ln.startswith("adbreak comskip: warning: ")]
    assert sum("ignored" in w for w in warnings) == 4, proc.stderr  # --ts, --hwassist, --verbose, output_vdr
    chapters = exports.parse_ffmetadata((out / "show.ffmeta").read_text())
    assert chapters[0].start == 0 and abs(chapters[-1].end - DURATION_S) < 0.05
    breaks = [s for s in chapters if s.label == "ad"]
    assert proc.returncode == (0 if breaks else 1), proc.stderr


def test_a_recording_without_breaks(tmp_path, comchap_ini):
    clip = tmp_path / "clip.mp4"
    shutil.copy2(BUNDLED_MEDIA / "bigbuckbunny.mp4", clip)  # 5.3 s of one cartoon shot: no separator, no sound
    proc = comskip(f"--ini={comchap_ini}", clip, cwd=tmp_path)
    breaks = edl_breaks(tmp_path / "clip.edl")
    assert_exit_matches(proc, breaks)  # today none (exit 1); the scan decides, the code must follow the files
    segs, _ = exports.parse_comskip((tmp_path / "clip.txt").read_text())
    assert segs[-1].end == pytest.approx(5.28, abs=0.1) and all(isinstance(s, Segment) for s in segs)


@pytest.mark.parametrize("kind", ["not-a-video", "missing"])
def test_unreadable_recordings_exit_255_and_write_nothing(tmp_path, comchap_ini, kind):
    rec = tmp_path / "show.ts"
    if kind == "not-a-video":
        rec.write_text("this is not a transport stream\n" * 100)
    proc = comskip(f"--ini={comchap_ini}", rec, cwd=tmp_path)
    assert proc.returncode == 255, (proc.stdout, proc.stderr)
    errors = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(errors) == 1 and errors[0].startswith("adbreak-comskip: error: "), proc.stderr
    assert not (tmp_path / "show.edl").exists() and not (tmp_path / "show.txt").exists()


def test_a_bad_command_line_exits_2(tmp_path):
    proc = comskip("--no-such-option", "x.ts", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "--no-such-option" in proc.stderr
