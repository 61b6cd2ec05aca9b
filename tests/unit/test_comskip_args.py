"""``adbreak-comskip`` (adbreak/scan/comskip.py) without decoding: Comskip's command line, its ini file, where the
files go and the exit codes, with the scan replaced by a fixed result."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from adbreak import exports
from adbreak.errors import AdbreakError
from adbreak.scan import comskip
from adbreak.scan.comskip import (
    EXIT_FOUND,
    EXIT_INPUT,
    EXIT_NONE,
    EXIT_OUTPUT,
    EXIT_USAGE,
    ComskipCall,
    UsageError,
    find_ini,
    output_location,
    parse_args,
    read_ini,
    settings_from_ini,
)
from adbreak.scan.result import ScanResult
from adbreak.segments import Segment

DURATION = 120.0
FPS = 29.97
WITH_ADS = [Segment(0, 26.48, "program"), Segment(26.48, 43.4, "ad"), Segment(43.4, DURATION, "program")]
NO_ADS = [Segment(0, DURATION, "program")]


# ---------------------------------------------------------------------------------------------------- command line
@pytest.mark.parametrize("argv", [
    ["--ini=/x/comskip.ini", "rec.ts"],
    ["--ini", "/x/comskip.ini", "rec.ts"],
    ["rec.ts", "--ini=/x/comskip.ini"],
    ["--in=/x/comskip.ini", "rec.ts"],  # getopt takes an unambiguous abbreviation
])
def test_ini_forms(argv):
    call = parse_args(argv)
    assert call.ini == Path("/x/comskip.ini") and call.recording == Path("rec.ts") and call.warnings == []


def test_comchap_and_comcut_command_lines():
    # comchap: $comskipPath --ini="$comskipini" "$infile"
    call = parse_args(["--ini=/home/u/.comskip.ini", "/tv/Show (2024).mkv"])
    assert call.recording == Path("/tv/Show (2024).mkv") and call.output is None
    # comcut --work-dir=/tmp/w: $comskipPath $comskipoutput --ini="$comskipini" "$infile", comskipoutput=--output=/tmp/w
    call = parse_args(["--output=/tmp/w", "--ini=/home/u/.comskip.ini", "/tv/show.ts"])
    assert call.output == Path("/tmp/w") and call.ini == Path("/home/u/.comskip.ini")


def test_output_filename_and_outdir():
    call = parse_args(["--output", "/o", "--output-filename", "name", "rec.ts", "/cut"])
    assert (call.output, call.output_filename, call.cutlist_dir) == (Path("/o"), "name", Path("/cut"))
    call = parse_args(["rec.ts", "--output-filename=name", "/cut"])  # options between the positionals
    assert call.cutlist_dir == Path("/cut") and call.output_filename == "name"


def test_honoured_options_give_no_warning():
    call = parse_args(["-q", "--threads", "3", "--playnice", "rec.ts"])
    assert call.quiet and call.threads == 3 and call.playnice and call.warnings == []
    assert parse_args(["--quiet", "-n", "rec.ts"]).playnice


def test_ignored_options_warn_once_each():
    call = parse_args(["-t", "--hwassist", "-v5", "--detectmethod", "255", "--pid=1e1", "--logo", "l.txt",
                       "--csvout", "--zpcut", "rec.ts"])
    assert len(call.warnings) == 8, call.warnings
    assert any(w.startswith("--ts ignored") for w in call.warnings)
    assert any(w.startswith("--verbose=5 ignored") for w in call.warnings)
    assert any(w.startswith("--detectmethod=255 ignored") for w in call.warnings)
    assert all("\n" not in w for w in call.warnings)


def test_short_flags_bundle_as_getopt():
    call = parse_args(["-tqm", "-v", "10", "rec.ts"])
    assert call.quiet and len(call.warnings) == 3  # --ts, --demux, --verbose


@pytest.mark.parametrize("argv, words", [
    ([], "FILE is missing"),
    (["--ini=x"], "FILE is missing"),
    (["--bogus", "rec.ts"], "unrecognized arguments: --bogus"),
    (["--out=/x", "rec.ts"], "ambiguous option"),
    (["--verbose=loud", "rec.ts"], "invalid int value"),
    (["--threads", "0", "rec.ts"], "--threads must be 1 or more"),
    (["a.ts", "dir", "third"], "unrecognized arguments: third"),
    (["--ini"], "expected one argument"),
])
def test_malformed_calls_are_usage_errors(argv, words):
    with pytest.raises(UsageError, match=words) as info:
        parse_args(argv)
    assert info.value.exit_code == EXIT_USAGE == 2
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------------------------------- the ini file
def test_read_ini_comments_spaces_quotes_sections():
    text = (
        "[Main Settings]\n"
        "; output_edl=0 in a comment\n"
        "# output_ffmeta=0 in another\n"
        "detect_method=111\n"
        "  output_edl = 1   ; on\n"
        "output_ffmeta=1#x\n"
        'windowtitle="Comskip - %s"\n'
        "output_edl=0\n"  # a later duplicate: the first wins, as Comskip's strstr
        "junk line without equals\n"
    )
    values = read_ini(text)
    assert values["output_edl"] == "1"
    assert values["detect_method"] == "111"
    assert values["windowtitle"] == "Comskip - %s"
    assert comskip.ini_number(values["output_ffmeta"]) == 1.0


def test_defaults_without_an_ini_are_txt_only():
    assert settings_from_ini({}).formats == ("txt",)


def test_comchaps_ini_gives_edl_and_txt():
    # comchap/comcut write "output_edl=1" into ~/.comskip.ini when it is missing
    s = settings_from_ini(read_ini("output_edl=1\n"))
    assert s.formats == ("txt", "edl") and s.warnings == []


@pytest.mark.parametrize("text, formats", [
    ("output_default=0\noutput_edl=1\n", ("edl",)),
    ("output_ffmeta=1\n", ("txt", "ffmeta")),
    ("output_default=0\noutput_edl=1\noutput_ffmeta=1\n", ("edl", "ffmeta")),
    ("output_txt=0\noutput_edl=1\n", ("edl",)),  # the name for Comskip's output_default
    ("output_default=1\noutput_txt=0\n", ("txt",)),  # Comskip's own key wins
    ("output_edl=-1\n", ("txt",)),  # FindNumber's "> -1": -1 keeps the default
    ("output_edl=yes\n", ("txt",)),  # atof("yes") == 0
    ("output_edl=2\n", ("txt", "edl")),
    ("output_edl=0.5\n", ("txt", "edl")),
])
def test_output_keys_choose_the_files(text, formats):
    assert settings_from_ini(read_ini(text)).formats == formats


def test_other_outputs_warn_once_each():
    s = settings_from_ini(read_ini("output_vdr=1\noutput_chapters=1\noutput_zoomplayer_cutlist=0\n"
                                   "output_debugwindow=1\noutput_console=1\n"))
    assert len(s.warnings) == 2 and all("ignored" in w for w in s.warnings)


@pytest.mark.parametrize("text, action, warned", [
    ("", 3, False),
    ("edl_skip_field=0\n", 0, False),
    ("edl_skip_field=3\n", 3, False),
    ("edl_skip_field=7\n", 3, True),
])
def test_edl_skip_field(text, action, warned):
    s = settings_from_ini(read_ini(text))
    assert s.edl_action == action and bool(s.warnings) == warned


def test_thread_count_and_adbreak_keys(tmp_path):
    s = settings_from_ini(read_ini(f'thread_count=4\nadbreak_model="{tmp_path}"\nadbreak_full=1\n'))
    assert (s.threads, s.model, s.full) == (4, tmp_path, True)
    assert comskip.workers_for(ComskipCall(Path("r.ts")), s) == 4
    assert comskip.workers_for(ComskipCall(Path("r.ts"), threads=3), s) == 3
    assert comskip.workers_for(ComskipCall(Path("r.ts"), threads=3, playnice=True), s) == 1
    assert comskip.workers_for(ComskipCall(Path("r.ts")), settings_from_ini({})) == 2


def test_find_ini_order(tmp_path):
    rec_dir, cwd = tmp_path / "rec", tmp_path / "cwd"
    rec_dir.mkdir()
    cwd.mkdir()
    rec = rec_dir / "show.ts"
    given = tmp_path / "given.ini"
    # nothing anywhere: Comskip's defaults
    path, warnings = find_ini(ComskipCall(rec), cwd)
    assert path is None and len(warnings) == 1
    (cwd / "comskip.ini").write_text("output_edl=1\n")
    assert find_ini(ComskipCall(rec), cwd)[0] == cwd / "comskip.ini"
    (rec_dir / "comskip.ini").write_text("output_edl=1\n")
    assert find_ini(ComskipCall(rec), cwd) == (rec_dir / "comskip.ini", [])
    # --ini: that file; missing, Comskip falls back to the current folder's (not the recording's)
    path, warnings = find_ini(ComskipCall(rec, ini=given), cwd)
    assert path == cwd / "comskip.ini" and "not found" in warnings[0]
    given.write_text("output_ffmeta=1\n")
    assert find_ini(ComskipCall(rec, ini=given), cwd) == (given, [])


# ---------------------------------------------------------------------------------------------------- where
@pytest.mark.parametrize("kw, want", [
    ({}, ("/tv", "Show.S01E01")),
    ({"output_filename": "x"}, ("/tv", "Show.S01E01")),  # Comskip: no effect without --output / OUTDIR
    ({"output": Path("/w")}, ("/w", "Show.S01E01")),
    ({"output": Path("/w"), "output_filename": "x"}, ("/w", "x")),
    ({"output": Path("/w"), "cutlist_dir": Path("/c")}, ("/c", "Show.S01E01")),
    ({"cutlist_dir": Path("/c"), "output_filename": "x"}, ("/c", "x")),
])
def test_output_location(kw, want):
    folder, name = output_location(ComskipCall(Path("/tv/Show.S01E01.ts"), **kw))
    assert (str(folder), name) == want


# ---------------------------------------------------------------------------------------------------- running it
@pytest.fixture
def recording(tmp_path) -> Path:
    rec = tmp_path / "tv" / "show.ts"
    rec.parent.mkdir()
    rec.write_bytes(b"\x47" * 188)
    os.utime(rec, (1_700_000_000, 1_700_000_000))
    return rec


def fake_scan(monkeypatch, segments, seen=None):
    def scan(recording, **kw):
        if seen is not None:
            seen.update(kw, recording=Path(recording))
        return ScanResult(recording=Path(recording), duration_s=DURATION, fps=FPS, segments=list(segments),
                          mode="fast", frames_analysed=100, timings={"total": 1.5})

    monkeypatch.setattr("adbreak.scan.scan_recording", scan)


def run(argv, cwd: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = comskip.run([str(a) for a in argv], stdout=out, stderr=err, cwd=cwd)
    return code, out.getvalue(), err.getvalue()


def test_found_writes_the_ini_files_and_exits_0(monkeypatch, recording, tmp_path):
    seen: dict = {}
    fake_scan(monkeypatch, WITH_ADS, seen)
    ini = tmp_path / "c.ini"
    ini.write_text("output_edl=1\noutput_ffmeta=1\nthread_count=1\n")
    code, out, err = run(["--ini", ini, recording], tmp_path)
    assert code == EXIT_FOUND == 0, err
    assert "Commercials were found." in out and err == ""
    assert seen["workers"] == 1 and seen["recording"] == recording
    folder = recording.parent
    assert sorted(p.name for p in folder.iterdir()) == ["show.edl", "show.ffmeta", "show.ts", "show.txt"]
    segs, fps = exports.parse_comskip((folder / "show.txt").read_text())
    assert fps == FPS and [s.label for s in segs] == ["program", "ad", "program"]
    assert abs(segs[1].start - 26.48) < 0.02
    edl = exports.parse("edl", (folder / "show.edl").read_text(), duration=DURATION)
    assert [(round(s.start, 2), s.label) for s in edl] == [(0, "program"), (26.48, "ad"), (43.4, "program")]
    assert exports.parse("ffmetadata", (folder / "show.ffmeta").read_text())[1].label == "ad"


def test_none_found_exits_1_with_an_empty_edl(monkeypatch, recording, tmp_path):
    fake_scan(monkeypatch, NO_ADS)
    ini = tmp_path / "c.ini"
    ini.write_text("output_edl=1\n")
    code, out, _ = run(["--ini=" + str(ini), "-q", recording], tmp_path)
    assert code == EXIT_NONE == 1
    assert out == "Commercials were not found.\n"  # --quiet: Comskip's last line only
    assert (recording.parent / "show.edl").read_text() == ""  # comchap: "No commercials found", not an error
    segs, _ = exports.parse_comskip((recording.parent / "show.txt").read_text())
    assert [s.label for s in segs] == ["program"] and abs(segs[0].end - DURATION) < 0.1


def test_output_dir_and_filename(monkeypatch, recording, tmp_path):
    fake_scan(monkeypatch, WITH_ADS)
    (tmp_path / "comskip.ini").write_text("output_default=0\noutput_edl=1\n")  # found in the current folder
    work = tmp_path / "work"
    code, _, err = run(["--output=" + str(work), "--output-filename", "renamed", recording], tmp_path)
    assert code == 0, err
    assert sorted(p.name for p in work.iterdir()) == ["renamed.edl"]
    assert sorted(p.name for p in recording.parent.iterdir()) == ["show.ts"]


def test_output_filename_alone_warns_and_keeps_the_name(monkeypatch, recording, tmp_path):
    fake_scan(monkeypatch, WITH_ADS)
    code, _, err = run(["--output-filename", "renamed", recording], tmp_path)
    assert code == 0
    assert "--output-filename has no effect" in err
    assert "no ini file found" in err
    assert sorted(p.name for p in recording.parent.iterdir()) == ["show.ts", "show.txt"]


def test_edl_action_from_the_ini(monkeypatch, recording, tmp_path):
    fake_scan(monkeypatch, WITH_ADS)
    ini = tmp_path / "c.ini"
    ini.write_text("output_edl=1\nedl_skip_field=0\n")
    assert run(["--ini", ini, recording], tmp_path)[0] == 0
    edl = recording.parent / "show.edl"
    assert edl.read_text() == "26.480\t43.400\t0\n"
    assert edl.stat().st_mtime == recording.stat().st_mtime  # still adbreak's own (a rescan replaces it)
    assert run(["--ini", ini, recording], tmp_path)[0] == 0


def test_ignored_options_warn_on_stderr(monkeypatch, recording, tmp_path):
    fake_scan(monkeypatch, WITH_ADS)
    code, _, err = run(["-t", "--hwassist", "--verbose=10", recording], tmp_path)
    assert code == 0
    lines = [ln for ln in err.splitlines() if "ignored" in ln]
    assert len(lines) == 3 and all(ln.startswith("adbreak-comskip: warning: ") for ln in lines)


def test_an_edited_sidecar_is_kept_and_the_others_written(monkeypatch, recording, tmp_path):
    fake_scan(monkeypatch, WITH_ADS)
    ini = tmp_path / "c.ini"
    ini.write_text("output_edl=1\n")
    edl = recording.parent / "show.edl"
    edl.write_text("1.000\t2.000\t3\n")  # newer than the recording: a user's
    code, _, err = run(["--ini", ini, recording], tmp_path)
    assert code == 0
    assert edl.read_text() == "1.000\t2.000\t3\n"
    assert "show.edl changed after the recording" in err
    assert (recording.parent / "show.txt").is_file()


@pytest.mark.parametrize("name, code", [("show.txt", EXIT_USAGE), ("show.csv", EXIT_USAGE),
                                        ("missing.ts", EXIT_INPUT)])
def test_inputs_comskip_refuses(monkeypatch, tmp_path, name, code):
    fake_scan(monkeypatch, WITH_ADS)
    if name != "missing.ts":
        (tmp_path / name).write_text("x")
    got, out, err = run([tmp_path / name], tmp_path)
    assert got == code and out == "" and len(err.splitlines()) == 1


def test_usage_error_is_one_line_and_2(tmp_path):
    code, out, err = run(["--nonsense", "x.ts"], tmp_path)
    assert code == 2 and out == "" and err.count("\n") == 1 and err.startswith("adbreak-comskip: error: ")


def test_help_exits_0(tmp_path):
    code, out, _ = run(["--help"], tmp_path)
    assert code == 0 and "--output-filename" in out and "ignored" in out


def test_unreadable_recording_exits_255(monkeypatch, recording, tmp_path):
    def scan(recording, **kw):
        raise AdbreakError("show.ts has no video stream")

    monkeypatch.setattr("adbreak.scan.scan_recording", scan)
    code, out, err = run([recording], tmp_path)
    assert code == EXIT_INPUT == 255 and out == ""
    assert "no video stream" in err and len(err.splitlines()) == 2  # the no-ini warning, the error
    assert sorted(p.name for p in recording.parent.iterdir()) == ["show.ts"]


def test_unwritable_output_exits_6(monkeypatch, recording, tmp_path):
    fake_scan(monkeypatch, WITH_ADS)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    code, _, err = run(["--output", blocker / "sub", recording], tmp_path)
    assert code == EXIT_OUTPUT == 6
    assert "cannot write sidecar files into" in err.splitlines()[-1]


def test_missing_model_is_a_usage_error(monkeypatch, recording, tmp_path):
    fake_scan(monkeypatch, WITH_ADS)
    ini = tmp_path / "c.ini"
    ini.write_text(f'adbreak_model="{tmp_path / "nope"}"\n')
    assert run(["--ini", ini, recording], tmp_path)[0] == EXIT_USAGE


def test_a_crash_is_not_none_found(monkeypatch, recording, capsys):
    def scan(recording, **kw):
        raise RuntimeError("boom")

    monkeypatch.setattr("adbreak.scan.scan_recording", scan)
    assert comskip.main([str(recording)]) == EXIT_INPUT  # never 1, which reads as "no commercials"
    assert "internal error: RuntimeError: boom" in capsys.readouterr().err


def test_adbreak_comskip_subcommand_passes_the_arguments_through():
    from adbreak.cli import build_parser

    args = build_parser().parse_args(["comskip", "--ini", "x.ini", "-q", "--output=o", "-h", "rec.ts"])
    assert args.command == "comskip"
    assert args.comskip_args == ["--ini", "x.ini", "-q", "--output=o", "-h", "rec.ts"]
