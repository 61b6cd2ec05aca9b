"""Labelled time segments and the contract's segment file (``S.csv``).

A segment file is a CSV with the header ``start,end,label``: seconds from the start of the video as decimals, rows
sorted and tiling the whole duration from 0 with no gaps and no overlaps. ``evaluate`` reads it as truth, the server
exports it, the decision stage's output is turned into it.

Label convention: the label ``"ad"`` is the ad class; every other label (``"program"`` or any other class a user
trains) counts as non-ad for the decision and the metrics (see :func:`is_ad`).

Row numbers in error messages are the file's row numbers as a spreadsheet shows them: the header is row 1, the
first segment row 2.
"""

from __future__ import annotations

import bisect
import csv
import io
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from adbreak.atomic import write_text
from adbreak.errors import AdbreakError

AD_LABEL = "ad"
PROGRAM_LABEL = "program"
HEADER: tuple[str, str, str] = ("start", "end", "label")
TOLERANCE_S = 1e-3
"""Gaps and overlaps up to this many seconds are rounding, not errors (the files carry 3 decimals)."""


def is_ad(label: str) -> bool:
    """True for the ad class; every other label counts as non-ad ("program")."""
    return label == AD_LABEL


@dataclass(frozen=True, slots=True)
class Segment:
    """A labelled half-open time interval ``[start, end)`` in seconds."""

    start: float
    end: float
    label: str

    def __post_init__(self) -> None:
        if not (math.isfinite(self.start) and math.isfinite(self.end)):
            raise ValueError(f"segment times must be finite, got {self.start!r}..{self.end!r}")
        if self.end < self.start:
            raise ValueError(f"segment ends before it starts: {self.start:.3f}..{self.end:.3f}")

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.end - self.start


def _parse_time(text: str, what: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise AdbreakError(f"{where}: {what} {text.strip()!r} is not a number of seconds") from None
    if not math.isfinite(value):
        raise AdbreakError(f"{where}: {what} {text.strip()!r} is not a finite number of seconds")
    return value


def read_segments(path: str | os.PathLike[str]) -> list[Segment]:
    """Read and validate a segment file; every problem raises :class:`AdbreakError` naming the file and row.

    Boundaries within :data:`TOLERANCE_S` of the previous segment's end (or of 0 for the first row) are snapped onto
    it, so the returned segments tile ``[0, last end]`` exactly.
    """
    p = Path(path)
    name = p.name
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise AdbreakError(f"segment file {p} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AdbreakError(f"cannot read segment file {p}: {exc}") from None
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise AdbreakError(f"{name}: not a valid CSV file: {exc}") from None
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise AdbreakError(f"{name} is empty; expected the header {','.join(HEADER)}")
    header = tuple(cell.strip() for cell in rows[0])
    if header != HEADER:
        raise AdbreakError(f"{name} row 1: header is {','.join(header)!r}, expected {','.join(HEADER)!r}")

    parsed: list[tuple[int, float, float, str]] = []
    for index, row in enumerate(rows[1:], start=2):
        if not row or all(not cell.strip() for cell in row):
            continue  # blank line (a trailing newline, say)
        where = f"{name} row {index}"
        if len(row) != 3:
            raise AdbreakError(f"{where}: expected 3 fields (start,end,label), got {len(row)}")
        start = _parse_time(row[0], "start", where)
        end = _parse_time(row[1], "end", where)
        label = row[2].strip()
        if not label:
            raise AdbreakError(f"{where}: empty label")
        if end <= start:
            raise AdbreakError(f"{where}: end {end:.3f} is not after start {start:.3f}")
        if parsed and start < parsed[-1][1]:
            raise AdbreakError(
                f"{where}: rows are not sorted: start {start:.3f} is before the previous start {parsed[-1][1]:.3f}"
            )
        parsed.append((index, start, end, label))

    segments: list[Segment] = []
    for index, start, end, label in parsed:
        where = f"{name} row {index}"
        if not segments:
            if abs(start) > TOLERANCE_S:
                raise AdbreakError(f"{where}: the first segment starts at {start:.3f} s; segments must start at 0")
            start = 0.0
        else:
            prev = segments[-1]
            if start < prev.end - TOLERANCE_S:
                raise AdbreakError(
                    f"{where}: overlap of {prev.end - start:.3f} s with the previous segment "
                    f"({prev.start:.3f}..{prev.end:.3f})"
                )
            if start > prev.end + TOLERANCE_S:
                raise AdbreakError(f"{where}: gap of {start - prev.end:.3f} s between {prev.end:.3f} and {start:.3f}")
            start = prev.end
            if end <= start:
                raise AdbreakError(f"{where}: end {end:.3f} is not after start {start:.3f}")
        segments.append(Segment(start, end, label))
    if not segments:
        raise AdbreakError(f"{name} has no segments (only the header)")
    return segments


def write_segments(path: str | os.PathLike[str], segments: Sequence[Segment]) -> None:
    """Write a segment file atomically with 3 decimals.

    The segments must tile ``[0, end]`` (same rules and tolerance as the reader). Each boundary is rounded once and
    written as both the end of one row and the start of the next, so the file tiles exactly; a segment shorter than
    the rounding (under 0.5 ms) disappears and its neighbours meet.
    """
    where = f"cannot write {Path(path).name}"
    if not segments:
        raise AdbreakError(f"{where}: no segments")
    if abs(segments[0].start) > TOLERANCE_S:
        raise AdbreakError(f"{where}: the first segment starts at {segments[0].start:.3f} s, not 0")
    for i in range(1, len(segments)):
        prev, seg = segments[i - 1], segments[i]
        if abs(seg.start - prev.end) > TOLERANCE_S:
            kind = "gap" if seg.start > prev.end else "overlap"
            raise AdbreakError(
                f"{where}: segment {i + 1}: {kind} of {abs(seg.start - prev.end):.3f} s at {prev.end:.3f}"
            )
    for i, seg in enumerate(segments, start=1):
        if not seg.label.strip() or seg.label != seg.label.strip():
            raise AdbreakError(f"{where}: segment {i}: label {seg.label!r} is empty or has surrounding spaces")

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    start = "0.000"
    for seg in segments:
        end = f"{seg.end:.3f}"
        if float(end) > float(start):
            writer.writerow((start, end, seg.label))
            start = end
    if start == "0.000":
        raise AdbreakError(f"{where}: the segments have no length")
    write_text(path, out.getvalue())


def merge_adjacent(segments: Iterable[Segment]) -> list[Segment]:
    """Join neighbours that carry the same label (the first one's start, the last one's end)."""
    merged: list[Segment] = []
    for seg in segments:
        if merged and merged[-1].label == seg.label:
            merged[-1] = Segment(merged[-1].start, seg.end, seg.label)
        else:
            merged.append(seg)
    return merged


def segments_from_transitions(
    initial_label: str, transitions: Sequence[tuple[float, str]], duration: float
) -> list[Segment]:
    """Build segments tiling ``[0, duration]`` from a starting label and ``(boundary time, new label)`` changes.

    Boundary times are clamped to ``[0, duration]``; pieces of zero length are dropped and same-label neighbours
    merged, so a transition at 0 simply replaces the initial label and one at ``duration`` changes nothing.
    Raises ``ValueError`` when ``duration`` is not positive or the boundary times decrease.
    """
    if not (math.isfinite(duration) and duration > 0):
        raise ValueError(f"duration must be a positive number of seconds, got {duration!r}")
    pieces: list[Segment] = []
    label, start, last_t = initial_label, 0.0, -math.inf
    for t, new_label in transitions:
        if math.isnan(t):
            raise ValueError("transition time is NaN")
        if t < last_t:
            raise ValueError(f"transition times must not decrease: {t:.3f} after {last_t:.3f}")
        last_t = t
        b = min(max(t, 0.0), duration)
        if b > start:
            pieces.append(Segment(start, b, label))
            start = b
        label = new_label
    if duration > start:
        pieces.append(Segment(start, duration, label))
    return merge_adjacent(pieces)


def label_at(segments: Sequence[Segment], t: float) -> str:
    """The label at time ``t``: segments are half-open ``[start, end)``, the last one also holds its end.

    Raises ``ValueError`` for a time outside the segments or an empty list.
    """
    if not segments:
        raise ValueError("no segments")
    if t < segments[0].start or t > segments[-1].end:
        raise ValueError(f"time {t:.3f} is outside the segments ({segments[0].start:.3f}..{segments[-1].end:.3f})")
    starts = [seg.start for seg in segments]
    i = bisect.bisect_right(starts, t) - 1
    return segments[max(i, 0)].label
