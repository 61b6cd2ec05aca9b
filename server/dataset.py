"""Learning from corrections: a labelled frame folder built from the keyframes of REVIEWED segments.

The edge sends keyframes (small JPEGs, table ``keyframes``, files under ``settings.data_dir``); users confirm or
correct segments in the dashboard (``segments.review`` is ``confirmed`` or ``corrected``, ``label`` the corrected
label, ``detected_label`` the detector's when a correction changed it). Every keyframe whose time falls inside a
reviewed segment, at least ``margin_s`` from its edges, gets that segment's label. The result is exactly the folder
``adbreak train DIR`` reads (``adbreak/training/dataset.py``):

``DIR/<label>/<device>-<YYYYMMDD>_t<seconds since 00:00 UTC>.jpg``: one "recording" per device and UTC day, so
the split by time keeps each day's frames together, in time order (a recording sent for review, device
``rec:<key>``, is one "recording" of its own: ``DIR/<label>/rec-<key>_t<seconds from its start>.jpg``); plus
``DIR/manifest.csv`` (one row per frame: where it came from, its review, what it was corrected from) and
``DIR/summary.json`` (counts).

Layers: :func:`assign` (pure: which keyframe gets which label), :func:`plan` (pure: names, manifest, summary),
:func:`load_plan` (reads the database and checks the files), :func:`write_dir` / :func:`write_zip` (copy the
files). No Flask here: ``adbreak dataset`` and ``GET /api/v1/dataset`` share it.
"""

from __future__ import annotations

import bisect
import csv
import io
import json
import math
import shutil
import zipfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Connection, select

from adbreak.atomic import atomic_dir
from adbreak.errors import AdbreakError
from adbreak.segments import AD_LABEL
from adbreak.training.dataset import frame_name
from server.models import Device, Keyframe, Segment
from server.recordings import is_recording_key

SEGMENTS = Segment.__table__
DEVICES = Device.__table__
KEYFRAMES = Keyframe.__table__

REVIEWED = ("confirmed", "corrected")
DEFAULT_MARGIN_S = 0.5
"""Keyframes this close to a reviewed segment's edge are left out: the picture at a boundary is ambiguous."""
MAX_MARGIN_S = 30.0
FEW_FRAMES = 10
"""A label with fewer frames than this gets a warning: the split by time needs a few per block."""
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
MANIFEST = "manifest.csv"
SUMMARY = "summary.json"
MANIFEST_FIELDS = ("frame", "label", "device", "ts", "ts_iso", "segment_id", "review", "corrected_from", "detected",
                   "kind", "p_ad", "keyframe_id")


class DatasetError(AdbreakError):
    """The reviewed data cannot make a training set (nothing reviewed, one label, no ad); one line, what to do."""


# ---------------------------------------------------------------------------------------------------- rows
@dataclass(frozen=True, slots=True)
class ReviewedSegment:
    id: int
    device: str
    start: float
    end: float
    label: str
    review: str
    detected_label: str | None

    @property
    def corrected_from(self) -> str | None:
        """The detector's label, when the review changed it."""
        if self.review == "corrected" and self.detected_label and self.detected_label != self.label:
            return self.detected_label
        return None


@dataclass(frozen=True, slots=True)
class KeyframeRow:
    id: int
    device: str
    ts: float
    kind: str
    p_ad: float | None
    label: str | None
    """The detector's label when the frame was taken."""
    path: str
    """Relative to the server's data folder."""
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True, slots=True)
class Item:
    keyframe: KeyframeRow
    segment: ReviewedSegment
    name: str
    """The frame's path inside the dataset: ``<label>/<recording>_t<seconds>.jpg``."""
    source: Path | None = None
    """The JPEG on disk (set by :func:`load_plan`)."""

    @property
    def label(self) -> str:
        return self.segment.label

    @property
    def detected(self) -> str | None:
        """What the detector said about this frame: the keyframe's label, else its segment's detected label."""
        if self.keyframe.label is not None:
            return self.keyframe.label
        return self.segment.detected_label if self.segment.review == "corrected" else None


@dataclass
class Plan:
    items: list[Item]
    summary: dict[str, Any]
    problem: str | None = None
    """Why this cannot train (``None``: it can); :func:`require_trainable` raises it."""
    warnings: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------------- pure logic
def recording_of(device: str, ts: float) -> tuple[str, float]:
    """``(<device>-<YYYYMMDD>, seconds since that day's 00:00 UTC)``: one recording per device and day (frame names
    keep only letters, digits, dots and dashes: ``living_room`` becomes ``living-room``). A recording sent for
    review (``server.recordings``, device ``rec:<key>``) is one recording, its times already from its start:
    ``(rec-<key>, ts)``."""
    if is_recording_key(device):
        return device.replace(":", "-", 1), ts
    day = datetime.fromtimestamp(ts, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return f"{device}-{day:%Y%m%d}", ts - day.timestamp()


def check_margin(margin_s: float) -> float:
    if not (math.isfinite(margin_s) and 0 <= margin_s <= MAX_MARGIN_S):
        raise DatasetError(f"margin {margin_s!r} must be between 0 and {MAX_MARGIN_S:g} seconds")
    return margin_s


def assign(segments: Iterable[ReviewedSegment], keyframes: Iterable[KeyframeRow], margin_s: float = DEFAULT_MARGIN_S
           ) -> tuple[list[tuple[KeyframeRow, ReviewedSegment]], Counter[str]]:
    """Pair each keyframe with the reviewed segment that holds it (``start + margin <= ts < end - margin``).

    Returns the pairs (in time order per device) and counts of the others: ``near_edge`` (inside a reviewed segment
    but within the margin of an edge) and ``not_reviewed`` (in no reviewed segment).
    """
    check_margin(margin_s)
    by_device: dict[str, list[ReviewedSegment]] = defaultdict(list)
    for seg in segments:
        by_device[seg.device].append(seg)
    starts: dict[str, list[float]] = {}
    for dev, segs in by_device.items():
        segs.sort(key=lambda s: s.start)
        starts[dev] = [s.start for s in segs]
    pairs: list[tuple[KeyframeRow, ReviewedSegment]] = []
    other: Counter[str] = Counter()
    for kf in sorted(keyframes, key=lambda k: (k.device, k.ts, k.id)):
        segs = by_device.get(kf.device)
        seg = None
        if segs:
            i = bisect.bisect_right(starts[kf.device], kf.ts) - 1
            # segments of one device do not overlap; a keyframe exactly on an edge belongs to the later one
            if i >= 0 and segs[i].start <= kf.ts < segs[i].end:
                seg = segs[i]
        if seg is None:
            other["not_reviewed"] += 1
        elif seg.start + margin_s <= kf.ts < seg.end - margin_s:
            pairs.append((kf, seg))
        else:
            other["near_edge"] += 1
    return pairs, other


def _suffix(path: str) -> str:
    suffix = Path(path).suffix.lower()
    return suffix if suffix in IMAGE_SUFFIXES else ".jpg"


def plan(pairs: Sequence[tuple[KeyframeRow, ReviewedSegment]], other: Counter[str] | None = None, *,
         margin_s: float = DEFAULT_MARGIN_S, missing_files: int = 0, window: dict | None = None) -> Plan:
    """Name every frame, count, and say whether it can train (at least two labels, one of them ``ad``)."""
    items: list[Item] = []
    names: set[str] = set()
    duplicates = 0
    for kf, seg in pairs:
        recording, t = recording_of(kf.device, kf.ts)
        name = f"{seg.label}/{frame_name(recording, t)}{_suffix(kf.path)}"
        if name in names:  # two frames in the same millisecond (or two device names that read the same)
            duplicates += 1
            continue
        names.add(name)
        items.append(Item(kf, seg, name))
    labels = Counter(it.label for it in items)
    relabelled = sum(1 for it in items if it.detected is not None and it.detected != it.label)
    summary: dict[str, Any] = {
        "frames": len(items),
        "labels": dict(sorted(labels.items())),
        "devices": dict(sorted(Counter(it.keyframe.device for it in items).items())),
        "recordings": len({it.name.split("/", 1)[1].rsplit("_t", 1)[0] for it in items}),
        "frame_sizes": dict(sorted(Counter(f"{it.keyframe.width}x{it.keyframe.height}" for it in items
                                           if it.keyframe.width and it.keyframe.height).items())),
        "segments": len({it.segment.id for it in items}),
        "corrected_segments": len({it.segment.id for it in items if it.segment.review == "corrected"}),
        "frames_in_corrected_segments": sum(1 for it in items if it.segment.review == "corrected"),
        "relabelled_frames": relabelled,
        "left_out": {"near_edge": (other or Counter())["near_edge"],
                     "not_reviewed": (other or Counter())["not_reviewed"],
                     "missing_file": missing_files, "duplicate_name": duplicates},
        "margin_s": margin_s,
        "window": window or {},
    }
    problem = None
    if not items:
        problem = ("no keyframe falls inside a reviewed segment" + _where(window) +
                   ": confirm or correct some segments in the dashboard first")
    elif len(labels) < 2:
        (only, n), = labels.items()
        problem = (f"all {n} reviewed frames are labelled {only!r}: training needs at least two labels; review "
                   "some segments of another label too")
    elif AD_LABEL not in labels:
        problem = f"no reviewed frame is labelled {AD_LABEL!r} (found {', '.join(sorted(labels))}): review an ad break"
    warnings = [f"label {lab!r} has only {n} frames" for lab, n in sorted(labels.items()) if n < FEW_FRAMES]
    summary["trainable"] = problem is None
    summary["problem"] = problem
    summary["warnings"] = warnings
    return Plan(items, summary, problem, warnings)


def _where(window: dict | None) -> str:
    if not window:
        return ""
    parts = []
    if window.get("device"):
        parts.append(f"of device {window['device']}")
    if window.get("start_iso") or window.get("end_iso"):
        parts.append(f"between {window.get('start_iso') or 'the beginning'} and {window.get('end_iso') or 'now'}")
    return (" " + " ".join(parts)) if parts else ""


def require_trainable(p: Plan) -> Plan:
    if p.problem is not None:
        raise DatasetError(p.problem)
    return p


def manifest_text(items: Sequence[Item]) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(MANIFEST_FIELDS)
    for it in items:
        kf, seg = it.keyframe, it.segment
        w.writerow((it.name, it.label, kf.device, f"{kf.ts:.3f}", _iso(kf.ts), seg.id, seg.review,
                    seg.corrected_from or "", it.detected or "", kf.kind,
                    "" if kf.p_ad is None else f"{kf.p_ad:.4f}", kf.id))
    return out.getvalue()


def summary_text(p: Plan) -> str:
    return json.dumps(p.summary, indent=2) + "\n"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def window_of(device: str | None, start: float | None, end: float | None) -> dict:
    return {"device": device, "start": start, "end": end,
            "start_iso": _iso(start) if start is not None else None,
            "end_iso": _iso(end) if end is not None else None}


# ---------------------------------------------------------------------------------------------------- database
def reviewed_segments(conn: Connection, *, device: str | None = None, start: float | None = None,
                      end: float | None = None) -> list[ReviewedSegment]:
    """Closed reviewed segments overlapping ``[start, end)``."""
    q = (select(SEGMENTS.c.id, DEVICES.c.name, SEGMENTS.c.start, SEGMENTS.c.end, SEGMENTS.c.label, SEGMENTS.c.review,
                SEGMENTS.c.detected_label)
         .join_from(SEGMENTS, DEVICES, SEGMENTS.c.device_id == DEVICES.c.id)
         .where(SEGMENTS.c.review.in_(REVIEWED), SEGMENTS.c.end.is_not(None)))
    if device is not None:
        q = q.where(DEVICES.c.name == device)
    if start is not None:
        q = q.where(SEGMENTS.c.end > start)
    if end is not None:
        q = q.where(SEGMENTS.c.start < end)
    return [ReviewedSegment(*row) for row in conn.execute(q.order_by(DEVICES.c.name, SEGMENTS.c.start))]


def keyframes(conn: Connection, *, devices: Iterable[str], start: float | None = None, end: float | None = None
              ) -> list[KeyframeRow]:
    """Keyframes of ``devices`` with ``ts`` in ``[start, end)``."""
    names = sorted(set(devices))
    if not names:
        return []
    q = (select(KEYFRAMES.c.id, DEVICES.c.name, KEYFRAMES.c.ts, KEYFRAMES.c.kind, KEYFRAMES.c.p_ad, KEYFRAMES.c.label,
                KEYFRAMES.c.path, KEYFRAMES.c.width, KEYFRAMES.c.height)
         .join_from(KEYFRAMES, DEVICES, KEYFRAMES.c.device_id == DEVICES.c.id)
         .where(DEVICES.c.name.in_(names)))
    if start is not None:
        q = q.where(KEYFRAMES.c.ts >= start)
    if end is not None:
        q = q.where(KEYFRAMES.c.ts < end)
    return [KeyframeRow(*row) for row in conn.execute(q.order_by(DEVICES.c.name, KEYFRAMES.c.ts, KEYFRAMES.c.id))]


def source_path(data_dir: Path, relative: str) -> Path | None:
    """The keyframe's file, if it exists inside ``data_dir`` (a path escaping the folder counts as missing)."""
    root = data_dir.resolve()
    try:
        p = (root / relative).resolve()
        p.relative_to(root)
    except (ValueError, OSError):
        return None
    return p if p.is_file() else None


def load_plan(conn: Connection, data_dir: str | Path, *, device: str | None = None, start: float | None = None,
              end: float | None = None, margin_s: float = DEFAULT_MARGIN_S) -> Plan:
    """Read the reviewed segments and their keyframes and plan the dataset; frames whose file is gone (retention)
    are left out and counted."""
    check_margin(margin_s)
    if start is not None and end is not None and end <= start:
        raise DatasetError("end must be after start")
    segs = reviewed_segments(conn, device=device, start=start, end=end)
    lo = max([s for s in (start, min((g.start for g in segs), default=None)) if s is not None], default=None)
    hi = min([e for e in (end, max((g.end for g in segs), default=None)) if e is not None], default=None)
    frames = keyframes(conn, devices={s.device for s in segs}, start=lo, end=hi)
    pairs, other = assign(segs, frames, margin_s)
    root = Path(data_dir)
    found: list[tuple[KeyframeRow, ReviewedSegment]] = []
    sources: dict[int, Path] = {}
    missing = 0
    for kf, seg in pairs:
        src = source_path(root, kf.path)
        if src is None:
            missing += 1
            continue
        sources[kf.id] = src
        found.append((kf, seg))
    p = plan(found, other, margin_s=margin_s, missing_files=missing, window=window_of(device, start, end))
    p.items = [Item(it.keyframe, it.segment, it.name, sources[it.keyframe.id]) for it in p.items]
    return p


# ---------------------------------------------------------------------------------------------------- writing
def write_dir(p: Plan, out: str | Path, *, force: bool = False) -> Path:
    """The folder ``adbreak train`` reads, built under a temporary name and moved into place when complete."""
    require_trainable(p)
    with atomic_dir(out, overwrite=force) as tmp:
        for it in p.items:
            assert it.source is not None
            target = tmp / it.name
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                shutil.copyfile(it.source, target)
            except OSError as exc:
                raise DatasetError(f"cannot copy keyframe {it.source}: {exc.strerror}") from None
        (tmp / MANIFEST).write_text(manifest_text(p.items), encoding="utf-8")
        (tmp / SUMMARY).write_text(summary_text(p), encoding="utf-8")
    return Path(out)


def write_zip(p: Plan, fileobj: IO[bytes], top: str) -> None:
    """The same folder as a zip, every path under ``top/`` (JPEGs stored, text deflated)."""
    require_trainable(p)
    with zipfile.ZipFile(fileobj, "w") as zf:
        for it in p.items:
            assert it.source is not None
            try:
                zf.write(it.source, f"{top}/{it.name}", compress_type=zipfile.ZIP_STORED)
            except OSError as exc:  # removed by the retention meanwhile
                raise DatasetError(f"cannot read keyframe {it.keyframe.path}: {exc.strerror}; try again") from None
        zf.writestr(f"{top}/{MANIFEST}", manifest_text(p.items), compress_type=zipfile.ZIP_DEFLATED)
        zf.writestr(f"{top}/{SUMMARY}", summary_text(p), compress_type=zipfile.ZIP_DEFLATED)


def dataset_name(device: str | None, start: float | None, now: float) -> str:
    """``adbreak-dataset-tv1-20261123T100000Z``: the zip's name and its top folder."""
    when = start if start is not None and not is_recording_key(device) else now
    return f"adbreak-dataset-{(device or 'all').replace(':', '-')}-{datetime.fromtimestamp(when, UTC):%Y%m%dT%H%M%SZ}"
