"""``adbreak scan``: a recording file scanned for ad breaks, fast, with sidecar files for DVR software.

The pieces (``docs/architecture.md``, "Recordings"):

* :mod:`adbreak.scan.probe` - what the recording holds (container, codecs, duration, frame rate, audio);
* :mod:`adbreak.scan.passes` - the decoding passes: the whole audio track, the intra frames, and full-rate windows;
* :mod:`adbreak.scan.plan` - where the full-rate windows go (candidate boundaries from the cheap passes);
* :mod:`adbreak.scan.timeline` - every pass's values on one frame grid, for the exact offline decision;
* :mod:`adbreak.scan.scanner` - :func:`scan_recording`, which runs them (coarse to fine on two cores, or ``full``);
* :mod:`adbreak.scan.sidecars` - the ``.edl`` / ``.txt`` / ``.ffmeta`` / ``.csv`` files, atomic, user edits kept;
* :mod:`adbreak.scan.comskip` - ``adbreak-comskip``, a drop-in for Comskip's callers;
* :mod:`adbreak.scan.watch` - ``adbreak scan --watch DIR``;
* :mod:`adbreak.scan.upload` - a scanned recording sent to the server for review.
"""

from __future__ import annotations

from adbreak.scan.result import ScanResult
from adbreak.scan.sidecars import (
    DEFAULT_FORMATS,
    SIDECAR_FORMATS,
    SidecarEdited,
    check_sidecars,
    parse_formats,
    sidecar_paths,
    write_sidecars,
)

__all__ = [
    "DEFAULT_FORMATS",
    "SIDECAR_FORMATS",
    "ScanResult",
    "SidecarEdited",
    "check_sidecars",
    "parse_formats",
    "scan_recording",
    "sidecar_paths",
    "write_sidecars",
]


def scan_recording(*args, **kwargs) -> ScanResult:  # noqa: ANN002, ANN003 - see adbreak.scan.scanner
    """:func:`adbreak.scan.scanner.scan_recording` (imported on first use: decoding pulls in PyAV and OpenCV)."""
    from adbreak.scan.scanner import scan_recording as scan

    return scan(*args, **kwargs)
