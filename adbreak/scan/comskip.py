"""``adbreak-comskip`` (also ``adbreak comskip``): a drop-in for the scripts and DVRs that call Comskip.

It takes Comskip's command line (``comskip [options] FILE [OUTDIR]``), reads the ``output_*`` keys of Comskip's
ini file, scans the recording with :func:`adbreak.scan.scan_recording` and writes the files Comskip would, where
Comskip would, then exits with Comskip's exit code. What it copies from Comskip's source
(github.com/erikkaashoek/Comskip, ``comskip.c`` and ``mpeg2dec.c``):

* **Options** (``LoadSettings``' argtable): every Comskip option is accepted, ``--opt=VALUE``, ``--opt VALUE``,
  ``-v5``, ``-v 5``, bundled short flags (``-tq``) and unambiguous abbreviations, as getopt takes them. Honoured:
  ``--ini``, ``--output``, ``--output-filename``, ``--quiet``, ``--threads`` and ``--playnice`` (one worker); every
  other one is ignored with one warning line on stderr. An option Comskip does not have, a missing FILE or a bad
  value is a one-line error and exit code 2, as Comskip's ``arg_parse`` errors are.
* **The ini file**: ``--ini FILE``; without it ``comskip.ini`` in the recording's folder; when that is missing,
  ``comskip.ini`` in the current folder (Comskip's Linux ``HomeDir`` is ``.``); none at all: Comskip's defaults.
  ``output_default`` (the ``.txt``, on unless set to 0; ``output_txt`` is read as another name for it),
  ``output_edl`` and ``output_ffmeta`` (off unless set) choose the files; ``edl_skip_field`` the EDL's action
  (Comskip's default 0 = cut; adbreak's 3 = commercial break when the ini does not say); ``thread_count`` the
  workers. Another ``output_*`` key that is on gets one warning line: adbreak writes no such file. Two keys of
  adbreak's own, which Comskip ignores: ``adbreak_model="BUNDLE"`` (a trained head) and ``adbreak_full=1``.
* **Where the files go**: ``NAME.txt`` / ``NAME.edl`` / ``NAME.ffmeta`` next to the recording (``NAME`` its file
  name without the last suffix); ``--output DIR`` puts them in ``DIR``, named ``--output-filename`` if given (which
  has no effect without ``--output`` or ``OUTDIR``, as in Comskip); a second positional ``OUTDIR`` (Comskip's
  "output folder for cutlist") wins over ``--output``.
* **Exit codes** (Linux): 0 commercials found, 1 none found (``mpeg2dec.c``: ``exit(!result)``); 2 a bad command
  line; 6 an output file could not be written (``OpenOutputFiles``); 255 the recording cannot be opened or holds no
  video (``file_open``: ``exit(-1)``).

A sidecar a user edited (newer than its recording, :mod:`adbreak.scan.sidecars`) is kept, with a warning, and the
other files are written (``docs/decisions.md``). ``docs/dvr.md`` shows the set-ups for Plex, Jellyfin, Channels DVR
and Kodi.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TextIO

from adbreak.errors import AdbreakError

PROG = "adbreak-comskip"

EXIT_FOUND = 0
"""Commercials were found (``mpeg2dec.c`` main: ``result = 1`` ... ``exit(!result)`` outside Windows)."""
EXIT_NONE = 1
"""No commercial was found (``result = 0``)."""
EXIT_USAGE = 2
"""A bad command line (``LoadSettings``: ``if (nerrors) { ... exit(2); }``); also a ``.txt`` / ``.csv`` input."""
EXIT_OUTPUT = 6
"""An output file could not be created (``OpenOutputFiles``: ``exit(6)``)."""
EXIT_INPUT = 255
"""The recording cannot be opened or holds no video (``file_open``: ``exit(-1)``, 255 to the caller)."""

EDL_ACTIONS = (0, 1, 2, 3)
"""EDL actions (Kodi: 0 cut, 1 mute, 2 scene marker, 3 commercial break); ``edl_skip_field`` picks one."""
ADBREAK_EDL_ACTION = 3

INI_NAME = "comskip.ini"

# Comskip's options (comskip.c, LoadSettings): long name -> (short letter or None, value type or None, why ignored).
# A reason of None: honoured here.
_SPEED = "adbreak scans on its own schedule"
_DECODE = "adbreak decodes on the CPU with FFmpeg"
COMSKIP_OPTIONS: dict[str, tuple[str | None, type | None, str | None]] = {
    "help": ("h", None, None),
    "debugwindow": ("w", None, "adbreak-comskip shows no debug window"),
    "playnice": ("n", None, None),
    "zpcut": (None, None, "adbreak-comskip writes no ZoomPlayer cutlist"),
    "zpchapter": (None, None, "adbreak-comskip writes no ZoomPlayer chapter file"),
    "scf": (None, None, "adbreak-comskip writes no simple chapter file"),
    "videoredo": (None, None, "adbreak-comskip writes no VideoReDo cutlist"),
    "videoredo3": (None, None, "adbreak-comskip writes no VideoReDo3 cutlist"),
    "csvout": (None, None, "adbreak-comskip writes no frame array csv"),
    "quality": (None, None, "adbreak-comskip writes no false-detection csv"),
    "plist": (None, None, "adbreak-comskip writes no EyeTV plist"),
    "demux": ("m", None, "adbreak-comskip demuxes nothing"),
    "hwassist": (None, None, _DECODE),
    "cuvid": (None, None, _DECODE),
    "vdpau": (None, None, _DECODE),
    "dxva2": (None, None, _DECODE),
    "qsv": (None, None, _DECODE),
    "decoders": (None, None, _DECODE),
    "threads": (None, int, None),
    "pid": ("p", str, "adbreak picks the video stream itself"),
    "ts": ("t", None, "adbreak finds the container itself"),
    "detectmethod": ("d", int, "adbreak always uses all its cues"),
    "verbose": ("v", int, "adbreak-comskip writes no .log"),
    "dump": ("u", int, "adbreak-comskip dumps no cutscene"),
    "play": ("s", None, "adbreak-comskip plays no video"),
    "timing": (None, None, "adbreak-comskip writes no timing file"),
    "quiet": ("q", None, None),
    "ini": (None, str, None),
    "logo": (None, str, "adbreak learns the logo itself"),
    "cut": (None, str, "adbreak uses no cutscene files"),
    "output": (None, str, None),
    "output-filename": (None, str, None),
    "selftest": (None, int, _SPEED),
}

# ini keys -> our sidecar formats (adbreak.scan.sidecars), in the order they are written
INI_OUTPUTS: dict[str, str] = {"output_default": "txt", "output_edl": "edl", "output_ffmeta": "ffmeta"}
INI_DEFAULTS: dict[str, bool] = {"output_default": True, "output_edl": False, "output_ffmeta": False}
TXT_ALIAS = "output_txt"
"""Not a Comskip key (Comskip's ``.txt`` is ``output_default``); read as ``output_default`` when that is absent."""
_NOT_FILES = frozenset({"output_console", "output_debugwindow"})
"""``output_*`` keys that write no file (no warning when on)."""


class UsageError(AdbreakError):
    """A command line Comskip would refuse."""

    exit_code = EXIT_USAGE


class _HelpRequested(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse, with a one-line error instead of the usage and ``sys.exit``."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


# ---------------------------------------------------------------------------------------------------- the command line
@dataclass(frozen=True)
class ComskipCall:
    """What a Comskip command line asks for."""

    recording: Path
    cutlist_dir: Path | None = None  # the second positional: Comskip's "output folder for cutlist"
    ini: Path | None = None
    output: Path | None = None
    output_filename: str | None = None
    quiet: bool = False
    threads: int | None = None
    playnice: bool = False
    warnings: list[str] = field(default_factory=list)  # one line per ignored option


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    p = _Parser(
        prog=prog, add_help=False, allow_abbrev=True,
        usage=f"{prog} [--ini=FILE] [--output=DIR] [--output-filename NAME] [Comskip options] FILE [OUTDIR]",
        description="Comskip's command line on adbreak's detection: scans FILE and writes the files the ini's "
        "output_default (NAME.txt, on by default), output_edl (NAME.edl) and output_ffmeta (NAME.ffmeta) ask for, "
        "next to FILE (or in --output DIR / OUTDIR). Exit code 0: ad breaks found; 1: none; 2: a bad command "
        "line; 6: a file could not be written; 255: FILE is not a video it can read. Comskip's other options are "
        "accepted and ignored with a warning (docs/dvr.md).")
    for name, (short, kind, _reason) in COMSKIP_OPTIONS.items():
        flags = [f"-{short}"] if short else []
        flags.append(f"--{name}")
        dest = name.replace("-", "_")
        if name == "help":
            p.add_argument(*flags, dest=dest, action="store_true", help="show this help and exit")
        elif kind is None:
            p.add_argument(*flags, dest=dest, action="count", default=0, help=argparse.SUPPRESS)
        else:
            p.add_argument(*flags, dest=dest, type=kind, metavar=name.upper().replace("-", "_"),
                           help=argparse.SUPPRESS)
    p.add_argument("file", metavar="FILE", nargs="?", help="the recording")
    p.add_argument("outdir", metavar="OUTDIR", nargs="?", help="folder for the output files (Comskip's cutlist folder)")
    return p


def _long_help(prog: str) -> str:
    p = build_parser(prog)
    text = p.format_help()
    names = ", ".join(f"--{n}" for n, (_s, _k, why) in COMSKIP_OPTIONS.items() if why)
    return (f"{text}\noptions honoured:\n  --ini FILE              Comskip's ini (default: comskip.ini beside FILE, "
            f"then in the current folder)\n  --output DIR            folder for the output files\n"
            f"  --output-filename NAME  their name without suffix (with --output or OUTDIR only, as in Comskip)\n"
            f"  -q, --quiet             print only Comskip's last line\n"
            f"  --threads N             decoding workers (default: the ini's thread_count, else 2)\n"
            f"  -n, --playnice          one worker\n"
            f"\naccepted and ignored (a warning each): {names}\n")


def parse_args(argv: Sequence[str], prog: str = PROG) -> ComskipCall:
    """Comskip's command line -> :class:`ComskipCall`; :class:`UsageError` (exit 2) where Comskip would refuse it.
    ``--help`` raises ``_HelpRequested``."""
    args = build_parser(prog).parse_intermixed_args(list(argv))
    if args.help:
        raise _HelpRequested
    if not args.file:
        raise UsageError("the recording FILE is missing")
    warnings = []
    for name, (_short, kind, why) in COMSKIP_OPTIONS.items():
        value = getattr(args, name.replace("-", "_"))
        if why and (value if kind is None else value is not None):
            shown = f"--{name}" if kind is None else f"--{name}={value}"
            warnings.append(f"{shown} ignored: {why}")
    threads = args.threads
    if threads is not None and threads < 1:
        raise UsageError(f"--threads must be 1 or more, got {threads}")
    return ComskipCall(
        recording=Path(args.file),
        cutlist_dir=Path(args.outdir) if args.outdir else None,
        ini=Path(args.ini) if args.ini else None,
        output=Path(args.output) if args.output else None,
        output_filename=args.output_filename or None,
        quiet=bool(args.quiet),
        threads=threads,
        playnice=bool(args.playnice),
        warnings=warnings,
    )


# ---------------------------------------------------------------------------------------------------- the ini file
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def read_ini(text: str) -> dict[str, str]:
    """``key=value`` lines (spaces around either allowed) -> {key: value}; ``;`` and ``#`` lines are comments,
    ``[sections]`` are skipped, a value may end in a ``;`` or ``#`` comment (not inside double quotes). The first
    occurrence of a key wins, as Comskip's ``strstr`` finds it."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in ";#[" or "=" not in line:
            continue
        key, value = (part.strip() for part in line.split("=", 1))
        if value.startswith('"'):
            end = value.find('"', 1)
            value = value[1:end] if end > 0 else value[1:]
        else:
            value = re.split(r"\s[;#]|^[;#]", value, maxsplit=1)[0].strip()
        if key and key not in values:
            values[key] = value
    return values


def ini_number(value: str) -> float:
    """The leading number of ``value``, 0 where there is none (C's ``atof``, as Comskip's ``FindNumber``)."""
    m = _NUMBER.match(value.strip())
    try:
        number = float(m.group(0)) if m else 0.0
    except ValueError:  # pragma: no cover - the pattern is a float's
        number = 0.0
    return number if math.isfinite(number) else 0.0


def ini_flag(values: dict[str, str], key: str, default: bool) -> bool:
    """Comskip's ``if ((tmp = FindNumber(...)) > -1) flag = (bool) tmp``: a value of -1 or less keeps the default."""
    if key not in values:
        return default
    number = ini_number(values[key])
    return default if number <= -1 else number != 0


@dataclass(frozen=True)
class IniSettings:
    """What the ini asks of adbreak-comskip."""

    path: Path | None
    formats: tuple[str, ...]  # our sidecar formats, in INI_OUTPUTS order
    edl_action: int = ADBREAK_EDL_ACTION
    threads: int | None = None
    model: Path | None = None
    full: bool = False
    warnings: list[str] = field(default_factory=list)


def settings_from_ini(values: dict[str, str], path: Path | None = None) -> IniSettings:
    """The files, EDL action, workers and adbreak's own keys that ``values`` (see :func:`read_ini`) choose."""
    warnings: list[str] = []
    values = dict(values)
    if "output_default" not in values and TXT_ALIAS in values:
        values["output_default"] = values[TXT_ALIAS]
    formats = tuple(fmt for key, fmt in INI_OUTPUTS.items() if ini_flag(values, key, INI_DEFAULTS[key]))
    for key, value in values.items():
        if (key.startswith("output_") and key not in INI_OUTPUTS and key != TXT_ALIAS and key not in _NOT_FILES
                and ini_flag(values, key, False)):
            warnings.append(f"ini {key}={value} ignored: adbreak-comskip writes only NAME.txt (output_default), "
                            f"NAME.edl (output_edl) and NAME.ffmeta (output_ffmeta)")
    action = ADBREAK_EDL_ACTION
    if "edl_skip_field" in values:
        number = ini_number(values["edl_skip_field"])
        if number in EDL_ACTIONS:
            action = int(number)
        else:
            warnings.append(f"ini edl_skip_field={values['edl_skip_field']} ignored: an EDL action is 0, 1, 2 or 3; "
                            f"writing {ADBREAK_EDL_ACTION} (commercial break)")
    threads = None
    if "thread_count" in values:
        number = ini_number(values["thread_count"])
        if number >= 1:
            threads = int(number)
    model = Path(values["adbreak_model"]).expanduser() if values.get("adbreak_model") else None
    full = ini_flag(values, "adbreak_full", False)
    return IniSettings(path, formats, action, threads, model, full, warnings)


def find_ini(call: ComskipCall, cwd: Path | None = None) -> tuple[Path | None, list[str]]:
    """Comskip's search: ``--ini FILE``, else ``comskip.ini`` in the recording's folder; then ``comskip.ini`` in
    the current folder. Returns the file (None: Comskip's defaults) and warnings."""
    warnings = []
    here = Path.cwd() if cwd is None else cwd
    first = call.ini if call.ini is not None else call.recording.parent / INI_NAME
    for candidate in (first, here / INI_NAME):
        if candidate.is_file():
            return candidate, warnings
        if candidate is first and call.ini is not None:
            warnings.append(f"ini file {call.ini} not found; looking for {INI_NAME} in the current folder")
    warnings.append("no ini file found: Comskip's defaults (NAME.txt only)")
    return None, warnings


def load_ini(call: ComskipCall, cwd: Path | None = None) -> IniSettings:
    path, warnings = find_ini(call, cwd)
    values: dict[str, str] = {}
    if path is not None:
        try:
            values = read_ini(path.read_text(encoding="utf-8", errors="replace"))
        except OSError as exc:
            warnings.append(f"ini file {path} unreadable ({exc.strerror or exc}): Comskip's defaults")
    settings = settings_from_ini(values, path)
    return IniSettings(settings.path, settings.formats, settings.edl_action, settings.threads, settings.model,
                       settings.full, warnings + settings.warnings)


# ---------------------------------------------------------------------------------------------------- where, what
def output_location(call: ComskipCall) -> tuple[Path, str]:
    """(folder, name without suffix) of the output files, as Comskip's ``outbasename``: ``OUTDIR`` (the second
    positional), else ``--output``, each with ``--output-filename`` or the recording's name; else beside the
    recording under its own name (``--output-filename`` alone changes nothing in Comskip)."""
    short = call.output_filename if call.output_filename else call.recording.stem
    if call.cutlist_dir is not None:
        return call.cutlist_dir, short
    if call.output is not None:
        return call.output, short
    return call.recording.parent, call.recording.stem


def exit_code(result: Any) -> int:
    """Comskip's exit code for a finished scan: 0 when it found an ad break, 1 when it found none."""
    return EXIT_FOUND if result.ad_breaks else EXIT_NONE


def workers_for(call: ComskipCall, ini: IniSettings, default: int = 2) -> int:
    if call.playnice:
        return 1
    if call.threads is not None:
        return call.threads
    if ini.threads is not None:
        return ini.threads
    return default


def set_edl_action(path: Path, action: int, recording: Path) -> None:
    """Rewrite an EDL that adbreak wrote (action 3) with ``action``; atomic, dated as the recording (the sidecar
    rule of :mod:`adbreak.scan.sidecars`)."""
    from adbreak.atomic import write_text

    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.split("\t")
        if len(fields) == 3:
            fields[2] = str(action)
        lines.append("\t".join(fields) + "\n")
    write_text(path, "".join(lines))
    stat = recording.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def write_outputs(result: Any, ini: IniSettings, folder: Path, name: str,
                  warn: Any) -> list[Path]:
    """Each chosen file on its own (a user-edited one is kept with a warning, the others written)."""
    from adbreak.scan.sidecars import SidecarEdited, write_sidecars

    written: list[Path] = []
    for fmt in ini.formats:
        try:
            paths = write_sidecars(result, (fmt,), out_dir=folder, basename=name)
        except SidecarEdited as exc:
            warn(f"{exc}")
            continue
        if fmt == "edl" and ini.edl_action != ADBREAK_EDL_ACTION:
            set_edl_action(paths[0], ini.edl_action, Path(result.recording))
        written.extend(paths)
    return written


# ---------------------------------------------------------------------------------------------------- running it
def run(argv: Sequence[str], *, prog: str = PROG, stdout: TextIO | None = None, stderr: TextIO | None = None,
        cwd: Path | None = None) -> int:
    """The whole command: parse, read the ini, scan, write; returns Comskip's exit code."""
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr

    def warn(message: str) -> None:
        print(f"{prog}: warning: {message}", file=err)

    def fail(message: str, code: int) -> int:
        print(f"{prog}: error: {' '.join(str(message).split())}", file=err)
        return code

    try:
        call = parse_args(argv, prog)
    except _HelpRequested:
        print(_long_help(prog), file=out, end="")
        return 0
    except UsageError as exc:
        return fail(f"{exc} (try --help)", EXIT_USAGE)
    for line in call.warnings:
        warn(line)
    if call.output_filename and call.output is None and call.cutlist_dir is None:
        warn("--output-filename has no effect without --output (as in Comskip): the files are named after the "
             "recording")
    rec = call.recording
    if rec.suffix.lower() in (".txt", ".csv"):
        return fail(f"{rec.name}: Comskip's review (.txt) and reprocessing (.csv) modes are not supported; give the "
                    f"recording", EXIT_USAGE)
    if not rec.is_file():
        return fail(f"{rec}: can not open file ({'a folder' if rec.is_dir() else 'no such file'})", EXIT_INPUT)
    ini = load_ini(call, cwd)
    for line in ini.warnings:
        warn(line)
    if ini.model is not None and not ini.model.exists():
        return fail(f"ini adbreak_model: {ini.model} not found", EXIT_USAGE)
    folder, name = output_location(call)

    from adbreak.scan import scan_recording

    try:
        result = scan_recording(rec, bundle_path=ini.model, full=ini.full, workers=workers_for(call, ini),
                                progress=not call.quiet and err.isatty())
    except AdbreakError as exc:
        return fail(f"{rec.name}: {exc}", EXIT_INPUT)
    for line in getattr(result, "warnings", []) or []:
        warn(line)
    try:
        written = write_outputs(result, ini, folder, name, warn)
    except OSError as exc:
        where = exc.filename or folder
        return fail(f"could not create {where}: {exc.strerror or exc}", EXIT_OUTPUT)
    except AdbreakError as exc:
        return fail(str(exc), EXIT_OUTPUT)
    code = exit_code(result)
    if not call.quiet:
        breaks = result.ad_breaks
        ad_s = sum(s.duration for s in breaks)
        total = result.timings.get("total") if getattr(result, "timings", None) else None
        took = f" in {total:.1f} s" if total is not None else ""
        print(f"{rec.name}: {len(breaks)} ad break{'s' if len(breaks) != 1 else ''} ({ad_s:.1f} s of "
              f"{result.duration_s:.1f} s){took}", file=out)
        for path in written:
            print(f"wrote {path}", file=out)
    print("Commercials were found." if code == EXIT_FOUND else "Commercials were not found.", file=out)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """The ``adbreak-comskip`` console script."""
    try:
        return run(sys.argv[1:] if argv is None else argv)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: never exit 1, which a Comskip caller reads as "no commercials"
        traceback.print_exc()
        print(f"{PROG}: error: internal error: {type(exc).__name__}: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_INPUT


def cmd_comskip(args: argparse.Namespace) -> int:
    try:
        return run(args.comskip_args, prog="adbreak comskip")
    except Exception as exc:  # as main(): a bug must not read as "no commercials"
        if isinstance(exc, AdbreakError):
            raise
        traceback.print_exc()
        print(f"adbreak comskip: error: internal error: {type(exc).__name__}: {' '.join(str(exc).split())}",
              file=sys.stderr)
        return EXIT_INPUT


def add_parsers(subparsers: Any, common_parent: argparse.ArgumentParser) -> None:  # noqa: ARG001
    """``adbreak comskip ARGS``: Comskip's own command line, passed through unchanged (no ``-q`` of ``adbreak``'s:
    ``-q`` is Comskip's ``--quiet`` here)."""
    p = subparsers.add_parser(
        "comskip", add_help=False, prefix_chars="\0",
        help="Comskip's command line for DVR scripts (comchap, comcut): same files, same exit codes",
        description="The same as adbreak-comskip: see `adbreak comskip --help`.")
    p.add_argument("comskip_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_comskip)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
