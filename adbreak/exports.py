"""Segment exports for video tools: the contract's CSV, EDL (Kodi, MPlayer), Comskip ``.txt`` and FFmpeg chapters.

Pure: no Flask, no database. The server (``GET /api/v1/export``) and ``adbreak export`` read a device's stored
segments, clip them to a time range with :func:`clip_to_window` (times become relative to the range's start: a
recording of the range has its time 0 at ``start``), then :func:`render` one of :data:`FORMATS`. Every format has a
parser (:func:`parse`) that gives back the segments, within the format's precision:

* ``csv``: the contract's segment file (``adbreak/segments.py`` writes and reads it): every segment, 3 decimals;
* ``edl``: one line per ad segment, ``start<TAB>end<TAB>3`` (action 3: commercial break), seconds with 3 decimals;
  the rest is program (a reader needs the duration to know where the last program segment ends);
* ``comskip``: Comskip's default output, ``FILE PROCESSING COMPLETE <frames> FRAMES AT <fps*100>``, a line of
  dashes, then ``start_frame<TAB>end_frame`` per ad break; frame ``n`` is time ``n / fps`` (as Kodi reads it);
* ``ffmetadata``: ``;FFMETADATA1`` and one ``[CHAPTER]`` per segment (``TIMEBASE=1/1000``, ``START``, ``END``,
  ``title=Program`` / ``title=Ad break``, another label as itself), escaped as FFmpeg's documentation says.

Only ``csv`` and ``ffmetadata`` carry labels other than ``ad``; EDL and Comskip know ad breaks only, so every other
label reads back as ``program`` (the contract's convention: every non-ad label counts as program).
"""

from __future__ import annotations

import math
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from adbreak.errors import AdbreakError
from adbreak.segments import (
    AD_LABEL,
    PROGRAM_LABEL,
    Segment,
    is_ad,
    merge_adjacent,
    read_segments,
    write_segments,
)
from adbreak.times import parse_instant

FORMATS: tuple[str, ...] = ("csv", "edl", "comskip", "ffmetadata")
EXTENSIONS = {"csv": "csv", "edl": "edl", "comskip": "txt", "ffmetadata": "ffmeta"}
CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "edl": "text/plain; charset=utf-8",
    "comskip": "text/plain; charset=utf-8",
    "ffmetadata": "text/plain; charset=utf-8",
}
DEFAULT_FPS = 29.97
FPS_RANGE = (1.0, 240.0)
GAP_LABEL = PROGRAM_LABEL
"""What a stretch of the range without any stored segment (the device was off or offline) is exported as: program,
the label that makes a player skip nothing and a mute rule mute nothing (docs/decisions.md)."""
MAX_RANGE_S = 31 * 86400.0
"""The longest range one export covers."""
TIME_SLACK_S = 0.001
"""A break may end this much after the duration a reader is given (the files round the times)."""
EDL_COMMERCIAL = 3
EDL_CUT = 0
COMSKIP_RULE = "-------------------"
FFMETA_HEADER = ";FFMETADATA1"
AD_TITLE = "Ad break"
PROGRAM_TITLE = "Program"


class ExportError(AdbreakError):
    """A range, a format or a file that cannot be exported or read; the message is one line."""


# ---------------------------------------------------------------------------------------------------- the timeline
@dataclass(frozen=True, slots=True)
class Span:
    """A stored segment on the wall clock: epoch seconds; ``end`` is ``None`` while it is open (it reaches to now)."""

    start: float
    end: float | None
    label: str


@dataclass(frozen=True)
class Timeline:
    """The segments of one range, relative to its start, tiling ``[0, duration]``."""

    segments: list[Segment]
    duration: float
    gap_s: float
    """Seconds of the range no stored segment covered (exported as :data:`GAP_LABEL`)."""

    @property
    def ad_breaks(self) -> list[Segment]:
        return [s for s in self.segments if is_ad(s.label)]


def check_range(start: float, end: float) -> None:
    if not (math.isfinite(start) and math.isfinite(end)):
        raise ExportError("start and end must be finite times")
    if end <= start:
        raise ExportError("end must be after start")
    if end - start > MAX_RANGE_S:
        raise ExportError(f"the range is {(end - start) / 86400:.1f} days; one export covers at most "
                          f"{MAX_RANGE_S / 86400:.0f} days")


def clip_to_window(spans: Iterable[Span], start: float, end: float, *, now: float | None = None,
                   gap_label: str = GAP_LABEL) -> Timeline:
    """Clip ``spans`` (one device's segments, epoch seconds) to ``[start, end)`` and make the times relative to
    ``start``. An open span reaches to ``now`` (default: ``end``). Overlaps are resolved in favour of the earlier
    span (a later start is moved to the previous end, as the store does); stretches no span covers are
    ``gap_label``; neighbours of the same label are merged. Raises :class:`ExportError` when no span overlaps the
    range."""
    check_range(start, end)
    limit = end if now is None else now
    pieces: list[Segment] = []
    cursor = start
    gap = 0.0
    covered = False
    for sp in sorted(spans, key=lambda s: s.start):
        sp_end = sp.end if sp.end is not None else max(limit, sp.start)
        a = max(sp.start, cursor)
        b = min(sp_end, end)
        if b <= a:
            continue
        covered = True
        if a > cursor:
            pieces.append(Segment(cursor - start, a - start, gap_label))
            gap += a - cursor
        pieces.append(Segment(a - start, b - start, sp.label))
        cursor = b
    if not covered:
        raise ExportError("no stored segment overlaps the range")
    if cursor < end:
        pieces.append(Segment(cursor - start, end - start, gap_label))
        gap += end - cursor
    return Timeline(merge_adjacent(pieces), end - start, gap)


# ---------------------------------------------------------------------------------------------------- helpers
def stamp(t: float) -> str:
    """``20261123T100000Z``: a UTC time for file names."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y%m%dT%H%M%SZ")


def export_filename(device: str, start: float, fmt: str) -> str:
    """``tv1_20261123T100000Z.edl``."""
    return f"{device}_{stamp(start)}.{EXTENSIONS[check_format(fmt)]}"


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ExportError(f"format {fmt!r}: expected one of {', '.join(FORMATS)}")
    return fmt


def check_fps(fps: float) -> float:
    if not (math.isfinite(fps) and FPS_RANGE[0] <= fps <= FPS_RANGE[1]):
        raise ExportError(f"fps {fps!r} must be between {FPS_RANGE[0]:g} and {FPS_RANGE[1]:g}")
    return fps


def parse_when(text: str, name: str = "time") -> float:
    """Epoch seconds (``1795430000.5``) or ISO 8601 (a time without a zone is UTC), as the REST API takes them."""
    try:
        return parse_instant(text)
    except ValueError as exc:
        raise ExportError(f"{name} {text!r} {exc}") from None


def _check_tiling(segments: Sequence[Segment], duration: float) -> None:
    if not segments:
        raise ExportError("nothing to export: no segments")
    if abs(segments[0].start) > 1e-6 or abs(segments[-1].end - duration) > 1e-6:
        raise ExportError(f"the segments must tile [0, {duration:.3f}]")
    for prev, seg in zip(segments, segments[1:], strict=False):
        if abs(seg.start - prev.end) > 1e-6:
            raise ExportError(f"the segments must tile without gaps or overlaps (at {prev.end:.3f})")


def _fill(ads: list[tuple[float, float]], duration: float, what: str) -> list[Segment]:
    """Ad breaks (sorted, not overlapping) and program around them, tiling ``[0, duration]``."""
    out: list[Segment] = []
    cursor = 0.0
    for a, b in ads:
        if a < cursor - 1e-9:
            raise ExportError(f"{what}: ad break at {a:.3f} overlaps the previous one, or the breaks are not sorted")
        if b > duration + TIME_SLACK_S:
            raise ExportError(f"{what}: ad break ends at {b:.3f}, after the end {duration:.3f}")
        if abs(duration - b) <= TIME_SLACK_S:
            b = duration  # a break to the end, its time rounded by the format
        if a > cursor:
            out.append(Segment(cursor, a, PROGRAM_LABEL))
        if b > a:
            out.append(Segment(a, b, AD_LABEL))
        cursor = max(cursor, b)
    if duration > cursor:
        out.append(Segment(cursor, duration, PROGRAM_LABEL))
    return merge_adjacent(out)


# ---------------------------------------------------------------------------------------------------- CSV
def csv_text(segments: Sequence[Segment]) -> str:
    """The contract's segment file, written by :func:`adbreak.segments.write_segments`."""
    with tempfile.TemporaryDirectory(prefix="adbreak-export-") as tmp:
        path = Path(tmp) / "segments.csv"
        write_segments(path, segments)
        return path.read_text(encoding="utf-8")


def parse_csv(text: str) -> list[Segment]:
    """Read a segment file's text with :func:`adbreak.segments.read_segments` (its checks and messages)."""
    with tempfile.TemporaryDirectory(prefix="adbreak-export-") as tmp:
        path = Path(tmp) / "segments.csv"
        path.write_text(text, encoding="utf-8")
        return read_segments(path)


# ---------------------------------------------------------------------------------------------------- EDL
def edl_text(segments: Sequence[Segment]) -> str:
    """One line per ad segment: ``start<TAB>end<TAB>3``, seconds with 3 decimals. No ad: an empty file."""
    lines = []
    for seg in merge_adjacent(Segment(s.start, s.end, AD_LABEL if is_ad(s.label) else PROGRAM_LABEL)
                              for s in segments):
        if is_ad(seg.label):
            a, b = f"{seg.start:.3f}", f"{seg.end:.3f}"
            if float(b) > float(a):
                lines.append(f"{a}\t{b}\t{EDL_COMMERCIAL}\n")
    return "".join(lines)


def parse_edl(text: str, duration: float | None = None) -> list[Segment]:
    """Ad breaks (action 3, commercial break; or 0, cut, as Comskip writes by default) and program around them,
    up to ``duration`` (default: the last break's end)."""
    ads: list[tuple[float, float]] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split()
        if len(fields) != 3:
            raise ExportError(f"EDL line {n}: expected 'start end action', got {line.strip()!r}")
        try:
            a, b, action = float(fields[0]), float(fields[1]), int(fields[2])
        except ValueError:
            raise ExportError(f"EDL line {n}: {line.strip()!r} is not 'seconds seconds action'") from None
        if not (math.isfinite(a) and math.isfinite(b)) or a < 0 or b <= a:
            raise ExportError(f"EDL line {n}: bad times {fields[0]}..{fields[1]}")
        if action not in (EDL_COMMERCIAL, EDL_CUT):
            raise ExportError(f"EDL line {n}: action {action} is not an ad break (3, or 0 for a cut)")
        ads.append((a, b))
    end = duration if duration is not None else (ads[-1][1] if ads else 0.0)
    if end <= 0:
        raise ExportError("EDL: no ad break and no duration: nothing to read")
    return _fill(ads, end, "EDL")


# ---------------------------------------------------------------------------------------------------- Comskip
_COMSKIP_HEADER = re.compile(r"^FILE PROCESSING COMPLETE\s+(\d+)\s+FRAMES AT\s+(\d+)\s*$")


def comskip_text(segments: Sequence[Segment], duration: float, fps: float = DEFAULT_FPS) -> str:
    """Comskip's ``.txt``: the header with the frame count and ``fps * 100``, a line of dashes, then one
    ``start_frame<TAB>end_frame`` line per ad break (frame ``n`` is time ``n / fps``)."""
    check_fps(fps)
    fps100 = round(fps * 100)
    rate = fps100 / 100  # what a reader will use
    frames = round(duration * rate)
    lines = [f"FILE PROCESSING COMPLETE {frames:6d} FRAMES AT {fps100:4d}\n", f"{COMSKIP_RULE}\n"]
    for seg in merge_adjacent(Segment(s.start, s.end, AD_LABEL if is_ad(s.label) else PROGRAM_LABEL)
                              for s in segments):
        if is_ad(seg.label):
            a, b = round(seg.start * rate), min(round(seg.end * rate), frames)
            if b > a:
                lines.append(f"{a}\t{b}\n")
    return "".join(lines)


def parse_comskip(text: str) -> tuple[list[Segment], float]:
    """The segments of a Comskip ``.txt`` (ad breaks, program around them, up to the header's frame count) and its
    frame rate."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise ExportError("Comskip file is empty")
    m = _COMSKIP_HEADER.match(lines[0].strip())
    if not m:
        raise ExportError(f"Comskip line 1: expected 'FILE PROCESSING COMPLETE <frames> FRAMES AT <fps*100>', "
                          f"got {lines[0].strip()[:60]!r}")
    frames, fps100 = int(m[1]), int(m[2])
    if fps100 <= 0:
        raise ExportError("Comskip line 1: the frame rate is 0")
    fps = fps100 / 100
    body = lines[1:]
    if body and set(body[0].strip()) == {"-"}:
        body = body[1:]
    ads: list[tuple[float, float]] = []
    for n, line in enumerate(body, start=3):
        fields = line.split()
        if len(fields) != 2 or not all(f.isdigit() for f in fields):
            raise ExportError(f"Comskip line {n}: expected 'start_frame end_frame', got {line.strip()!r}")
        a, b = int(fields[0]), int(fields[1])
        if b <= a:
            raise ExportError(f"Comskip line {n}: end frame {b} is not after start frame {a}")
        ads.append((a / fps, b / fps))
    duration = max(frames / fps, ads[-1][1] if ads else 0.0)
    if duration <= 0:
        raise ExportError("Comskip file: no frames")
    return _fill(ads, duration, "Comskip"), fps


# ---------------------------------------------------------------------------------------------------- ffmetadata
_FFMETA_SPECIAL = re.compile(r"([=;#\\\n])")


def ffmeta_escape(value: str) -> str:
    """FFmpeg's metadata escaping: ``=``, ``;``, ``#``, ``\\`` and newline get a backslash before them."""
    return _FFMETA_SPECIAL.sub(r"\\\1", value)


def chapter_title(label: str) -> str:
    if label == AD_LABEL:
        return AD_TITLE
    if label == PROGRAM_LABEL:
        return PROGRAM_TITLE
    return label


def label_of_title(title: str) -> str:
    if title == AD_TITLE:
        return AD_LABEL
    if title == PROGRAM_TITLE:
        return PROGRAM_LABEL
    return title


def ffmetadata_text(segments: Sequence[Segment]) -> str:
    """``;FFMETADATA1`` and one chapter per segment, in milliseconds; a segment shorter than the rounding joins
    its neighbours (each boundary is rounded once, so the chapters tile)."""
    out = [f"{FFMETA_HEADER}\n"]
    start_ms = 0
    for seg in segments:
        end_ms = round(seg.end * 1000)
        if end_ms <= start_ms:
            continue
        out.append(f"\n[CHAPTER]\nTIMEBASE=1/1000\nSTART={start_ms}\nEND={end_ms}\n"
                   f"title={ffmeta_escape(chapter_title(seg.label))}\n")
        start_ms = end_ms
    return "".join(out)


def _ffmeta_lines(text: str) -> list[str]:
    """Logical lines: an escaped newline continues the line (kept as ``\\`` + newline for :func:`_unescape`)."""
    lines: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            current.append(text[i:i + 2])
            i += 2
            continue
        if c == "\n":
            lines.append("".join(current))
            current = []
        else:
            current.append(c)
        i += 1
    if current:
        lines.append("".join(current))
    return lines


def _split_unescape(line: str) -> tuple[str, str]:
    """``key=value`` with FFmpeg's escapes undone; the first unescaped ``=`` separates them."""
    parts: list[list[str]] = [[]]
    i = 0
    while i < len(line):
        c = line[i]
        if c == "\\" and i + 1 < len(line):
            parts[-1].append(line[i + 1])
            i += 2
            continue
        if c == "=" and len(parts) == 1:
            parts.append([])
        else:
            parts[-1].append(c)
        i += 1
    if len(parts) != 2:
        raise ExportError(f"ffmetadata: {line[:60]!r} is not key=value")
    return "".join(parts[0]), "".join(parts[1])


def parse_ffmetadata(text: str) -> list[Segment]:
    """The chapters of an FFmpeg metadata file as segments (``title`` mapped back to a label; ``TIMEBASE``
    honoured). Stretches between chapters read as program."""
    lines = _ffmeta_lines(text.replace("\r\n", "\n"))
    if not lines or lines[0].strip() != FFMETA_HEADER:
        raise ExportError(f"ffmetadata: the first line must be {FFMETA_HEADER}")
    chapters: list[dict[str, str]] = []
    section: dict[str, str] | None = None
    for line in lines[1:]:
        stripped = line.strip()
        if not stripped or stripped[0] in ";#":
            continue
        if stripped.startswith("[") and stripped.endswith("]"):
            section = {} if stripped == "[CHAPTER]" else None
            if section is not None:
                chapters.append(section)
            continue
        key, value = _split_unescape(line)
        if section is not None:
            section[key] = value
    pieces: list[Segment] = []
    for n, ch in enumerate(chapters, start=1):
        try:
            num, den = (int(x) for x in ch.get("TIMEBASE", "1/1000").split("/"))
            start, end = int(ch["START"]), int(ch["END"])
        except (KeyError, ValueError):
            raise ExportError(f"ffmetadata: chapter {n} needs integer START and END and a TIMEBASE like 1/1000") \
                from None
        if num <= 0 or den <= 0 or end <= start or start < 0:
            raise ExportError(f"ffmetadata: chapter {n} has bad times or time base")
        label = label_of_title(ch.get("title", PROGRAM_TITLE)).strip() or PROGRAM_LABEL
        pieces.append(Segment(start * num / den, end * num / den, label))
    if not pieces:
        raise ExportError("ffmetadata: no chapter")
    pieces.sort(key=lambda s: s.start)
    out: list[Segment] = []
    cursor = 0.0
    for seg in pieces:
        if seg.start < cursor - 1e-9:
            raise ExportError(f"ffmetadata: chapters overlap at {seg.start:.3f}")
        if seg.start > cursor:
            out.append(Segment(cursor, seg.start, PROGRAM_LABEL))
        out.append(seg)
        cursor = seg.end
    return merge_adjacent(out)


# ---------------------------------------------------------------------------------------------------- dispatch
def render(fmt: str, segments: Sequence[Segment], duration: float, *, fps: float = DEFAULT_FPS) -> str:
    """The file text of ``segments`` (tiling ``[0, duration]``) in format ``fmt``."""
    check_format(fmt)
    _check_tiling(segments, duration)
    if fmt == "csv":
        return csv_text(segments)
    if fmt == "edl":
        return edl_text(segments)
    if fmt == "comskip":
        return comskip_text(segments, duration, fps)
    return ffmetadata_text(segments)


def parse(fmt: str, text: str, *, duration: float | None = None) -> list[Segment]:
    """The segments of a file of format ``fmt`` (``duration``: where the last program segment of an EDL ends)."""
    check_format(fmt)
    if fmt == "csv":
        return parse_csv(text)
    if fmt == "edl":
        return parse_edl(text, duration)
    if fmt == "comskip":
        return parse_comskip(text)[0]
    return parse_ffmetadata(text)


def precision(fmt: str, fps: float = DEFAULT_FPS) -> float:
    """How far a boundary may move through ``fmt`` (half its time step, plus float slack)."""
    check_format(fmt)
    if fmt == "comskip":
        return 0.5 / (round(fps * 100) / 100) + 1e-6
    return 0.0005 + 1e-6
