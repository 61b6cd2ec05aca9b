"""Statistics over stored (corrected) segments and mute firings, bucketed by hour or day in a time zone. Pure: no
database, no Flask; the API (``server.api_review``) reads the rows and calls :func:`compute`.

Definitions (``docs/api.md``, "Statistics"):

* time is counted inside ``[start, end)`` and never past ``now``; an open segment reaches to ``now``;
* ``covered_s``: time inside a segment (the TV watched by a running detector); ``ad_s`` / ``program_s`` by label;
  ``share_ad = ad_s / covered_s``;
* ``muted_s``: covered time during which the device was muted by a rule: from each ``mute`` firing to the next
  ``unmute`` (the state before ``start`` is the last firing's before it; a mute still in force runs to ``end`` or,
  while the device is muted now, to ``now``); ``share_muted = muted_s / covered_s``;
* a break is a run of ad segments that touch (a gap, e.g. an interruption, ends it); a break counts in the range
  and bucket where it starts, with its whole length (an open one up to ``now``);
* buckets are local hours or local days of ``tz``: a DST day is 23 or 25 h long, and the repeated hour of a
  fall-back day is two buckets (their labels differ in the UTC offset).
"""

from __future__ import annotations

import bisect
import contextlib
import os
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

BUCKETS = ("hour", "day")
JOIN_EPS = 1e-3
"""Ad segments closer than this (seconds) form one break."""

Interval = tuple[float, float]


@dataclass(frozen=True)
class DeviceInput:
    """One device's rows for :func:`compute`: segments overlapping the range (dicts with ``label``, ``start``,
    ``end`` (None while open)), its rule firings in the range (``ts``, ``action``), whether the last firing before
    the range was a mute, and whether the device is muted now."""

    segments: Sequence[dict]
    firings: Sequence[dict] = ()
    muted_before: bool = False
    muted_now: bool = False


@dataclass
class Totals:
    ad_s: float = 0.0
    program_s: float = 0.0
    muted_s: float = 0.0
    breaks: list[float] = field(default_factory=list)

    @property
    def covered_s(self) -> float:
        return self.ad_s + self.program_s

    def add(self, other: Totals) -> None:
        self.ad_s += other.ad_s
        self.program_s += other.program_s
        self.muted_s += other.muted_s
        self.breaks.extend(other.breaks)

    def as_dict(self) -> dict:
        covered = self.covered_s
        return {
            "ad_s": round(self.ad_s, 3),
            "program_s": round(self.program_s, 3),
            "covered_s": round(covered, 3),
            "muted_s": round(self.muted_s, 3),
            "ad_minutes": round(self.ad_s / 60.0, 3),
            "share_ad": round(self.ad_s / covered, 6) if covered > 0 else None,
            "share_muted": round(self.muted_s / covered, 6) if covered > 0 else None,
            "breaks": break_summary(self.breaks),
        }


def break_summary(lengths: Iterable[float]) -> dict:
    """``{"count", "mean_s", "median_s", "longest_s"}`` of break lengths (seconds; None without breaks)."""
    values = sorted(lengths)
    if not values:
        return {"count": 0, "mean_s": None, "median_s": None, "longest_s": None}
    return {"count": len(values), "mean_s": round(statistics.fmean(values), 3),
            "median_s": round(statistics.median(values), 3), "longest_s": round(values[-1], 3)}


# ---------------------------------------------------------------------------------------------------- zones
def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; ValueError with a readable message if there is none such."""
    if not name or name.startswith(("/", ".")) or ".." in name:
        raise ValueError(f"tz={name!r} is not an IANA time zone name (e.g. Europe/Berlin, UTC)")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"tz={name!r} is not an IANA time zone name (e.g. Europe/Berlin, UTC)") from None


def local_zone() -> ZoneInfo:
    """The machine's zone by its IANA name: ``$TZ``, ``/etc/timezone`` or the ``/etc/localtime`` link; UTC when
    none names one."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    with contextlib.suppress(OSError):
        candidates.append(Path("/etc/timezone").read_text().strip())
    target = os.path.realpath("/etc/localtime")
    if "zoneinfo/" in target:
        candidates.append(target.split("zoneinfo/", 1)[1])
    for name in candidates:
        try:
            return zone(name)
        except ValueError:
            continue
    return ZoneInfo("UTC")


# ---------------------------------------------------------------------------------------------------- intervals
def segment_spans(segments: Iterable[dict], now: float) -> list[tuple[float, float, str]]:
    """``(start, end, label)`` per segment, oldest first; an open segment ends at ``now``; empty ones dropped."""
    spans = []
    for s in sorted(segments, key=lambda s: s["start"]):
        end = s["end"] if s["end"] is not None else now
        if end > s["start"]:
            spans.append((s["start"], end, s["label"]))
    return spans


def breaks(spans: Sequence[tuple[float, float, str]]) -> list[Interval]:
    """Runs of touching ad spans, as ``(start, end)``."""
    out: list[list[float]] = []
    for start, end, label in spans:
        if label != "ad":
            continue
        if out and start - out[-1][1] <= JOIN_EPS:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return [(a, b) for a, b in out]


def mute_intervals(firings: Iterable[dict], *, muted_before: bool, muted_now: bool, start: float, end: float,
                   now: float) -> list[Interval]:
    """When the device was muted within ``[start, min(end, now))``, from its firings in that range (oldest first
    or not) and its state before ``start``. A mute still in force at the last firing runs to ``min(end, now)``,
    except when that is ``now`` and the device is not muted now (then nothing after the firing is known)."""
    until = min(end, now)
    since = start if muted_before else None
    last = start
    out: list[Interval] = []
    for f in sorted(firings, key=lambda f: f["ts"]):
        ts = min(max(f["ts"], start), until)
        last = ts
        if f["action"] == "mute":
            if since is None:
                since = ts
        elif since is not None:
            out.append((since, ts))
            since = None
    if since is not None:
        out.append((since, until if (until < now or muted_now) else last))
    return [(a, b) for a, b in out if b > a]


def intersect(a: Sequence[Interval], b: Sequence[Interval]) -> list[Interval]:
    """The intersection of two sorted lists of disjoint intervals."""
    out = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo = max(a[i][0], b[j][0])
        hi = min(a[i][1], b[j][1])
        if hi > lo:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


# ---------------------------------------------------------------------------------------------------- buckets
def _floor_hour(t: float, tz: ZoneInfo) -> float:
    return datetime.fromtimestamp(t, tz).replace(minute=0, second=0, microsecond=0).timestamp()


def midnight(day, tz: ZoneInfo) -> float:
    return datetime.combine(day, time(0), tzinfo=tz).timestamp()


def bucket_edges(start: float, end: float, tz: ZoneInfo, kind: str) -> list[float]:
    """Calendar bucket boundaries of ``tz`` from the bucket holding ``start`` to the first at or after ``end``."""
    if kind not in BUCKETS:
        raise ValueError(f"bucket {kind!r}: expected one of {', '.join(BUCKETS)}")
    if kind == "day":
        day = datetime.fromtimestamp(start, tz).date()
        edges = [midnight(day, tz)]
        while edges[-1] < end:
            day += timedelta(days=1)
            edges.append(midnight(day, tz))
        return edges
    edges = [_floor_hour(start, tz)]
    while edges[-1] < end:
        cur = edges[-1]
        candidate = cur + 3600.0
        floored = _floor_hour(candidate, tz)
        edges.append(floored if floored > cur else candidate)
    return edges


def count_buckets(start: float, end: float, kind: str) -> int:
    """About how many buckets ``[start, end)`` spans (an upper bound for a size check: hours or days, +2)."""
    span = (end - start) / (3600.0 if kind == "hour" else 86400.0)
    return int(span) + 2


def _spread(intervals: Iterable[Interval], lo: list[float], hi: list[float], add) -> None:
    """Call ``add(bucket_index, seconds)`` for each overlap of an interval with a bucket ``[lo[k], hi[k])``."""
    for a, b in intervals:
        k = max(0, bisect.bisect_right(lo, a) - 1)
        while k < len(lo) and lo[k] < b:
            overlap = min(b, hi[k]) - max(a, lo[k])
            if overlap > 0:
                add(k, overlap)
            k += 1


# ---------------------------------------------------------------------------------------------------- compute
def device_totals(data: DeviceInput, start: float, end: float, now: float, lo: list[float],
                  hi: list[float]) -> tuple[Totals, list[Totals]]:
    """One device's totals over ``[start, end)`` and per bucket ``[lo[k], hi[k])``."""
    until = min(end, now)
    spans = [(max(a, start), min(b, until), lab) for a, b, lab in segment_spans(data.segments, now)
             if b > start and a < until]
    total = Totals()
    per = [Totals() for _ in lo]
    for label in ("ad", "program"):
        attr = f"{label}_s"

        def add(k: int, s: float, attr: str = attr) -> None:
            setattr(per[k], attr, getattr(per[k], attr) + s)

        part = [(a, b) for a, b, lab in spans if lab == label]
        setattr(total, attr, sum((b - a for a, b in part), 0.0))
        _spread(part, lo, hi, add)
    covered = [(a, b) for a, b, _ in spans]
    mutes = mute_intervals(data.firings, muted_before=data.muted_before, muted_now=data.muted_now, start=start,
                           end=end, now=now)
    muted = intersect(covered, mutes)
    total.muted_s = sum((b - a for a, b in muted), 0.0)

    def add_muted(k: int, s: float) -> None:
        per[k].muted_s += s

    _spread(muted, lo, hi, add_muted)
    for a, b in breaks(segment_spans(data.segments, now)):
        if start <= a < until:
            total.breaks.append(b - a)
            k = bisect.bisect_right(lo, a) - 1
            if 0 <= k < len(per) and a < hi[k]:
                per[k].breaks.append(b - a)
    return total, per


def compute(devices: dict[str, DeviceInput], *, start: float, end: float, tz: ZoneInfo, bucket: str,
            now: float) -> dict:
    """Statistics of ``devices`` (name -> rows) over ``[start, end)``: totals of all of them, per device, and per
    bucket (all devices together). See the module's definitions."""
    if end <= start:
        raise ValueError("end must be after start")
    edges = bucket_edges(start, end, tz, bucket)
    calendar = list(zip(edges, edges[1:], strict=False))
    lo = [max(a, start) for a, _ in calendar]
    hi = [min(b, end) for _, b in calendar]
    all_total = Totals()
    all_per = [Totals() for _ in calendar]
    per_device = []
    for name in sorted(devices):
        total, per = device_totals(devices[name], start, end, now, lo, hi)
        per_device.append({"device": name, **total.as_dict()})
        all_total.add(total)
        for acc, one in zip(all_per, per, strict=True):
            acc.add(one)
    buckets = []
    for (a, _), b_lo, b_hi, t in zip(calendar, lo, hi, all_per, strict=True):
        d = t.as_dict()
        buckets.append({"label": datetime.fromtimestamp(a, tz).isoformat(), "start": b_lo, "end": b_hi,
                        **{k: v for k, v in d.items() if k != "breaks"}, "breaks": d["breaks"]["count"],
                        "break_s": round(sum(t.breaks, 0.0), 3)})
    return {"start": start, "end": end, "tz": tz.key, "bucket": bucket, "now": now, **all_total.as_dict(),
            "devices": per_device, "buckets": buckets}
