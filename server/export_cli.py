"""``adbreak export`` and ``adbreak dataset``: files from the server's database, without a running server.

``adbreak/cli.py`` calls :func:`add_parsers` (like ``server.cli``'s); without the server extra these commands are
absent. Both read the database and never write it; they may run while the server runs (SQLite in WAL mode lets a
reader in beside the writer). Errors are one line and exit code 2.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from adbreak import exports
from adbreak.errors import AdbreakError


def _server_imports() -> None:
    try:
        import sqlalchemy  # noqa: F401
    except ImportError as exc:
        raise AdbreakError(f"this command reads the server's database: pip install 'adbreak[server]' "
                           f"({exc.name} missing)") from None


def _settings(args: argparse.Namespace, **extra: Any):
    from server.settings import load_settings

    return load_settings(getattr(args, "config", None), **extra)


def _db(args: argparse.Namespace) -> str:
    """``--db`` / ``DB``, else the server's settings (``--config``, ``ADBREAK_SERVER_DATABASE_URL``)."""
    return args.db or _settings(args).database_url


def _time(value: str | None, name: str) -> float | None:
    return None if value is None else exports.parse_when(value, f"--{name}")


def _fps(value: str) -> float:
    try:
        return exports.check_fps(float(value))
    except (ValueError, exports.ExportError):
        raise argparse.ArgumentTypeError(f"fps must be a number between {exports.FPS_RANGE[0]:g} and "
                                         f"{exports.FPS_RANGE[1]:g}: {value}") from None


def cmd_export(args: argparse.Namespace) -> int:
    _server_imports()
    from server import export_data

    start, end = _time(args.start, "start"), _time(args.end, "end")
    assert start is not None and end is not None  # required options
    exports.check_range(start, end)
    if args.fps is not None and args.format != "comskip":
        raise AdbreakError("--fps applies to --format comskip only")
    engine = export_data.open_database(_db(args))
    try:
        def build(conn):
            export_data.require_device(conn, args.device)
            return export_data.build_export(conn, args.device, start, end, args.format,
                                            fps=args.fps or exports.DEFAULT_FPS, now=time.time())

        result = export_data.read(engine, "segments", build)
    finally:
        engine.dispose()
    from adbreak.atomic import write_text

    out = Path(args.out) if args.out else Path(result.filename)
    if out.is_dir():
        out = out / result.filename
    write_text(out, result.text)
    tl = result.timeline
    gaps = f", {tl.gap_s:.1f} s without data exported as {exports.GAP_LABEL}" if tl.gap_s > 0 else ""
    n = len(tl.ad_breaks)
    print(f"{out}: {len(tl.segments)} segments, {n} ad break{'' if n == 1 else 's'} over {tl.duration:.1f} s "
          f"({args.format}){gaps}")
    return 0


def cmd_dataset(args: argparse.Namespace) -> int:
    _server_imports()
    from server import dataset, export_data

    start, end = _time(args.start, "start"), _time(args.end, "end")
    dataset.check_margin(args.margin)
    data_dir = Path(args.data_dir) if args.data_dir else _settings(args).data_dir
    if not data_dir.is_dir():
        raise AdbreakError(f"keyframe folder {data_dir} does not exist (give the server's --data-dir)")
    engine = export_data.open_database(_db(args))
    try:
        def build(conn):
            if args.device is not None:
                export_data.require_device(conn, args.device)
            return dataset.load_plan(conn, data_dir, device=args.device, start=start, end=end, margin_s=args.margin)

        plan = export_data.read(engine, "reviewed segments and keyframes", build)
    finally:
        engine.dispose()
    out = dataset.write_dir(plan, args.out, force=args.force)
    s = plan.summary
    labels = ", ".join(f"{k} {v}" for k, v in s["labels"].items())
    left = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in s["left_out"].items() if v)
    print(f"{s['frames']} frames into {out}: {labels}; {s['relabelled_frames']} relabelled by corrections, "
          f"from {s['segments']} reviewed segments ({s['corrected_segments']} corrected)"
          + (f"; left out: {left}" if left else ""))
    for warning in plan.warnings:
        print(f"warning: {warning}")
    print(f"next: adbreak train {out} --out BUNDLE")
    return 0


def add_parsers(subparsers: Any, common_parent: argparse.ArgumentParser) -> None:
    """Add ``export`` and ``dataset`` to the ``adbreak`` command line."""
    p = subparsers.add_parser(
        "export", parents=[common_parent], help="one device's segments over a time range as CSV, EDL, Comskip or "
        "FFmpeg chapters",
        description="Reads the server's database (never writes it) and writes one device's segments over "
        "[--start, --end) with times relative to --start: the contract's CSV, an EDL for Kodi/MPlayer, a Comskip "
        ".txt or FFmpeg chapters (ffmetadata). A stretch without data (the device was off) is exported as program.")
    p.add_argument("--db", metavar="URL|PATH", help="the server's database (its settings' database_url by default)")
    p.add_argument("--config", metavar="FILE", help="the server's TOML settings file (for the database URL)")
    p.add_argument("--device", required=True, help="device name")
    p.add_argument("--start", required=True, metavar="TIME", help="epoch seconds or ISO 8601 (UTC without a zone)")
    p.add_argument("--end", required=True, metavar="TIME", help="epoch seconds or ISO 8601 (UTC without a zone)")
    p.add_argument("--format", choices=exports.FORMATS, default="csv", help="file format (csv)")
    p.add_argument("--fps", type=_fps, metavar="FPS", help="comskip: the recording's frame rate (29.97)")
    p.add_argument("--out", metavar="FILE", help="output file or folder (default: <device>_<start>.<ext> here)")
    p.set_defaults(func=cmd_export)

    p = subparsers.add_parser(
        "dataset", parents=[common_parent], help="a training folder from the keyframes of reviewed segments",
        description="Reads the server's database and keyframe folder (never writes them) and writes DIR/<label>/ "
        "frames that `adbreak train DIR` takes: every keyframe inside a confirmed or corrected segment, labelled "
        "with the segment's (corrected) label, plus manifest.csv and summary.json. Refuses when nothing is "
        "reviewed, or when the reviewed frames have one label only.")
    p.add_argument("db", metavar="DB", nargs="?", help="the server's database, URL or path (its settings' by default)")
    p.add_argument("--out", required=True, metavar="DIR", help="the folder to write (must not exist without --force)")
    p.add_argument("--data-dir", metavar="DIR", help="the server's data folder with the keyframes (its settings')")
    p.add_argument("--config", metavar="FILE", help="the server's TOML settings file (database URL, data folder)")
    p.add_argument("--device", help="only this device (default: all)")
    p.add_argument("--start", metavar="TIME", help="only keyframes from this time (epoch seconds or ISO 8601)")
    p.add_argument("--end", metavar="TIME", help="only keyframes before this time")
    p.add_argument("--margin", type=float, default=0.5, metavar="S",
                   help="leave out keyframes within S seconds of a reviewed segment's edge (0.5)")
    p.add_argument("--force", action="store_true", help="replace an existing DIR")
    p.set_defaults(func=cmd_dataset)
