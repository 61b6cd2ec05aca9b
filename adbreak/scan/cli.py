"""``adbreak scan``: one recording (sidecar files, ``--json``), or a folder watched for new ones (``--watch DIR``)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from adbreak.errors import AdbreakError
from edge.cli_options import positive as _positive

log = logging.getLogger("adbreak.scan")


def _scan_fn(args: argparse.Namespace):  # noqa: ANN202 - a closure over the options
    from adbreak.scan import scan_recording

    def scan(path: Path):  # noqa: ANN202
        return scan_recording(path, bundle_path=args.model, full=args.full, workers=args.workers,
                              thumbnails=bool(args.server), progress=not args.quiet and not args.watch)

    return scan


def _send(args: argparse.Namespace, result) -> dict | None:  # noqa: ANN001
    """``--server``: the result and its pictures to the server's Review view."""
    if not args.server:
        return None
    from adbreak.scan.upload import send_recording

    sent = send_recording(result, args.server, args.token, replace=args.replace)
    log.info("%s: sent to the server (%s): %s", result.recording.name, sent.get("change"), sent.get("review_url"))
    return sent


def _write_fn(args: argparse.Namespace, formats: tuple[str, ...]):  # noqa: ANN202
    from adbreak.scan import write_sidecars

    def write(result):  # noqa: ANN001, ANN202
        written = [] if args.no_files else write_sidecars(result, formats, out_dir=args.out_dir, force=args.force)
        _send(args, result)
        return written

    return write


def cmd_scan(args: argparse.Namespace) -> int:
    from adbreak.scan import parse_formats

    formats = parse_formats(args.formats)
    if args.workers < 1:
        raise AdbreakError("--workers must be at least 1")
    if args.watch:
        if args.recording:
            raise AdbreakError("give RECORDING or --watch DIR, not both")
        from adbreak.scan.watch import watch_folder

        logging.getLogger("adbreak").setLevel(logging.INFO)  # one line per recording: a service's log
        watch_folder(args.watch, scan=_scan_fn(args), write=_write_fn(args, formats), state_path=args.state,
                     poll_s=args.poll, settle_s=args.settle, retry_failed=args.retry_failed)
        return 0
    if not args.recording:
        raise AdbreakError("scan needs RECORDING (a video file) or --watch DIR")
    if not args.no_files:  # a refusal (an edited sidecar, a read-only folder) before the scan, not after it
        from adbreak.scan import check_sidecars

        if not Path(args.recording).is_file():
            raise AdbreakError(f"recording not found: {args.recording}")
        check_sidecars(args.recording, formats, out_dir=args.out_dir, force=args.force)
    result = _scan_fn(args)(Path(args.recording))
    written = _write_fn(args, formats)(result)
    for line in result.warnings:
        print(f"adbreak scan: warning: {line}", file=sys.stderr)
    if args.json:
        data: dict[str, Any] = result.to_json()
        data["files"] = [str(p) for p in written]
        print(json.dumps(data, indent=2))
    else:
        breaks = result.ad_breaks
        total = result.timings.get("total", 0.0)
        speed = result.duration_s / total if total > 0 else 0.0
        print(f"{result.recording.name}: {len(breaks)} ad break{'s' if len(breaks) != 1 else ''}, "
              f"{sum(b.duration for b in breaks):.1f} s of {result.duration_s:.1f} s; scanned in {total:.1f} s "
              f"({speed:.0f}x realtime)")
        for b in breaks:
            print(f"  ad {b.start:9.3f} - {b.end:9.3f}  ({b.duration:.1f} s)")
        for p in written:
            print(f"  wrote {p}")
    return 0


def add_parsers(subparsers: Any, common_parent: argparse.ArgumentParser) -> None:
    """Add ``scan`` to the ``adbreak`` command line."""
    p = subparsers.add_parser(
        "scan", parents=[common_parent], help="find the ad breaks of a recording; write .edl/.txt/.ffmeta/.csv",
        description="Scan a recording (MPEG-TS, MP4, MKV; H.264, MPEG-2, HEVC) for ad breaks with no labels (or "
        "with --model) and write sidecar files named after it: NAME.edl (Kodi, Jellyfin), Comskip's NAME.txt, "
        "NAME.ffmeta (FFmpeg chapters) and NAME.csv (segments). Coarse to fine on two cores: the sound and the "
        "intra frames first, full rate only around candidate boundaries. A sidecar edited after the recording was "
        "made is kept unless --force. --watch DIR scans new recordings as they are finished.")
    p.add_argument("recording", nargs="?", metavar="RECORDING", help="the recording file")
    p.add_argument("--model", metavar="BUNDLE", help="a trained head to add to the cues (optional)")
    p.add_argument("--out-dir", metavar="DIR", help="where the sidecar files go (default: beside the recording)")
    p.add_argument("--formats", default="edl,txt,ffmeta,csv", metavar="LIST",
                   help="sidecar files to write, comma-separated from edl, txt, ffmeta, csv (default: all)")
    p.add_argument("--no-files", action="store_true", help="write no sidecar file (with --json: print only)")
    p.add_argument("--force", action="store_true", help="replace sidecar files even if edited after the recording")
    p.add_argument("--json", action="store_true", help="print the segments, timings and files as JSON")
    p.add_argument("--full", action="store_true",
                   help="analyse every sampled frame instead of coarse to fine (slower; same decision)")
    p.add_argument("--workers", type=int, default=2, metavar="N", help="processes to use (default 2)")
    p.add_argument("--server", metavar="URL", help="also send the result to this adbreak server for review")
    p.add_argument("--token", metavar="TOKEN", help="the server's API token (default: $ADBREAK_TOKEN)")
    p.add_argument("--replace", action="store_true",
                   help="--server: replace a recording already reviewed there (its corrections go; admin only)")
    w = p.add_argument_group("watching a folder")
    w.add_argument("--watch", metavar="DIR", help="scan new recordings in DIR (and below) once they stop growing")
    w.add_argument("--state", metavar="FILE", help="what was scanned already (default: under $XDG_STATE_HOME)")
    w.add_argument("--poll", type=_positive, default=10.0, metavar="S", help="look at the folder every S seconds")
    w.add_argument("--settle", type=_positive, default=120.0, metavar="S",
                   help="a recording is finished when unchanged for S seconds (default 120)")
    w.add_argument("--retry-failed", action="store_true", help="try recordings that failed before once more")
    p.set_defaults(func=cmd_scan)
