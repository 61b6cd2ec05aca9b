"""The files a scan writes next to a recording: Kodi/Jellyfin ``.edl``, Comskip's ``.txt``, FFmpeg chapters
(``.ffmeta``) and the contract's segment ``.csv``, each named after the recording (``NAME.edl`` for ``NAME.ts``).

Every file is written atomically (a player never reads half of one). A file a user edited is never overwritten:
a scan gives each sidecar it writes the recording's own modification time, so a sidecar that is *newer* than its
recording was changed by someone else afterwards and is kept unless ``force`` (a rescan replaces its own files; a
sidecar older than the recording belongs to an earlier recording of the same name and is replaced too).
Rendering is :mod:`adbreak.exports` (the same writers as the server's exports, each with a reader).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from adbreak.atomic import write_text
from adbreak.errors import AdbreakError
from adbreak.exports import render
from adbreak.scan.result import ScanResult

SIDECAR_FORMATS: dict[str, tuple[str, str]] = {
    "edl": ("edl", ".edl"),
    "txt": ("comskip", ".txt"),
    "ffmeta": ("ffmetadata", ".ffmeta"),
    "csv": ("csv", ".csv"),
}
"""Sidecar format name (``--formats``) -> (:mod:`adbreak.exports` format, file suffix)."""
DEFAULT_FORMATS: tuple[str, ...] = ("edl", "txt", "ffmeta", "csv")


class SidecarEdited(AdbreakError):
    """A sidecar to be written exists and is newer than its recording (edited by a user): kept."""


def parse_formats(text: str | Iterable[str]) -> tuple[str, ...]:
    """``"edl,txt"`` (or a list) -> the formats in order, each known; a one-line error otherwise."""
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    if not names:
        raise AdbreakError(f"no sidecar format given; choose from {', '.join(SIDECAR_FORMATS)}")
    bad = [n for n in names if n not in SIDECAR_FORMATS]
    if bad:
        raise AdbreakError(f"unknown sidecar format {', '.join(bad)}; choose from {', '.join(SIDECAR_FORMATS)}")
    return tuple(dict.fromkeys(names))


def sidecar_paths(
    recording: str | os.PathLike[str],
    formats: Sequence[str] = DEFAULT_FORMATS,
    *,
    out_dir: str | os.PathLike[str] | None = None,
    basename: str | None = None,
) -> dict[str, Path]:
    """Where each format's file goes: ``out_dir`` (default: the recording's folder) / ``basename`` (default: the
    recording's name without its suffix) + the format's suffix."""
    rec = Path(recording)
    folder = Path(out_dir) if out_dir is not None else rec.parent
    stem = basename if basename is not None else rec.stem
    return {fmt: folder / f"{stem}{SIDECAR_FORMATS[fmt][1]}" for fmt in parse_formats(formats)}


def edited_by_user(path: Path, recording: Path) -> bool:
    """True when ``path`` exists and was modified after ``recording`` (see the module doc)."""
    try:
        return path.stat().st_mtime > recording.stat().st_mtime
    except FileNotFoundError:
        return False


def render_sidecar(fmt: str, result: ScanResult) -> str:
    exports_fmt = SIDECAR_FORMATS[fmt][0]
    return render(exports_fmt, result.segments, result.duration_s, fps=result.fps)


def check_sidecars(
    recording: str | os.PathLike[str],
    formats: Sequence[str] = DEFAULT_FORMATS,
    *,
    out_dir: str | os.PathLike[str] | None = None,
    basename: str | None = None,
    force: bool = False,
) -> dict[str, Path]:
    """The sidecar paths, once it is sure they can be written: their folder is (or can be made) a writable folder,
    no folder stands where a file goes, and none was edited by a user (unless ``force``). Run before a scan, so a
    long scan does not end in a refusal; a one-line :class:`AdbreakError` (:class:`SidecarEdited`) otherwise."""
    rec = Path(recording)
    paths = sidecar_paths(rec, formats, out_dir=out_dir, basename=basename)
    folder = next(iter(paths.values())).parent
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise AdbreakError(f"cannot write sidecar files into {folder}: {probe} is not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise AdbreakError(f"cannot write sidecar files into {folder}: permission denied")
    in_the_way = [p for p in paths.values() if p.exists() and not p.is_file()]
    if in_the_way:
        raise AdbreakError(f"cannot write {in_the_way[0]}: something that is not a file is there")
    if not force:
        edited = [p for p in paths.values() if edited_by_user(p, rec)]
        if edited:
            names = ", ".join(p.name for p in edited)
            raise SidecarEdited(f"{names} changed after the recording was made (edited?): kept; --force replaces it")
    return paths


def write_sidecars(
    result: ScanResult,
    formats: Sequence[str] = DEFAULT_FORMATS,
    *,
    out_dir: str | os.PathLike[str] | None = None,
    basename: str | None = None,
    force: bool = False,
) -> list[Path]:
    """Write ``result``'s sidecar files atomically; returns their paths. Raises :class:`SidecarEdited` (nothing
    written) when one of them was edited by a user, unless ``force``; :class:`AdbreakError` (one line) when they
    cannot be written."""
    paths = check_sidecars(result.recording, formats, out_dir=out_dir, basename=basename, force=force)
    texts = {fmt: render_sidecar(fmt, result) for fmt in paths}  # all rendered before any is written
    stat = result.recording.stat()
    written = []
    for fmt, path in paths.items():
        try:
            write_text(path, texts[fmt])
            os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # ours: as old as the recording (module doc)
        except OSError as exc:
            raise AdbreakError(f"cannot write {path}: {exc.strerror or exc}") from exc
        written.append(path)
    return written
