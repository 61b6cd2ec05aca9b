"""Review: user corrections of one device's stored segments (``docs/api.md``, "Review").

Two layers:

* planning, pure: ``plan_relabel``, ``plan_move``, ``plan_split``, ``plan_merge`` and ``plan_confirm`` take the
  device's segments around the target (oldest first, as row dicts) and return a :class:`Plan` (what each changed
  segment was and becomes, new ones with ``id`` None, and the ids merged away), or raise :class:`CorrectionError`;
* writing: :func:`correct` runs inside a write batch of the single writer (``runtime.ingest.run``): it reads the
  neighbourhood through the batch's connection, plans, checks that the segments still tile (no overlap), writes
  the rows and one ``corrections`` row (the audit trail), and returns a :class:`Result`.

Rules: an open segment (still growing) is never edited, nor an edge it shares; every part keeps at least
:data:`MIN_SEGMENT_S`; the first change of a segment keeps the detector's label in ``detected_label``; every
changed segment gets ``review`` (``corrected``, or ``confirmed`` for a confirmation), ``reviewed_by`` and
``reviewed_ts``. Moving a shared edge moves both segments; an edge next to a gap (an interruption) moves within the
gap. A recording's segments (``server.recordings``) stay within ``[0, duration]``.

No Flask and no MQTT here: the API (``server.api_review``) turns :class:`CorrectionError` into 400 / 404 / 409.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import Connection, and_, delete, insert, or_, select, update

from server.models import Correction, Device, Segment
from server.recordings import duration_of_device

MIN_SEGMENT_S = 1.0
"""The shortest segment a correction may leave (seconds)."""
EDGE_EPS = 1e-6
"""Two segments whose end and start differ by at most this share an edge (seconds)."""
MAX_MERGE = 50
"""At most this many segments in one merge (the audit row keeps them all)."""
LABELS = ("program", "ad")

SEGMENTS = Segment.__table__
DEVICES = Device.__table__
CORRECTIONS = Correction.__table__

_AUDIT_FIELDS = ("id", "label", "start", "end", "status", "detected_label", "review")
_WRITE_FIELDS = ("label", "start", "end", "status", "confidence", "model_version", "start_event_id", "end_event_id",
                 "detected_label", "review", "reviewed_by", "reviewed_ts")

Kind = Literal["invalid", "not_found", "conflict"]


class CorrectionError(Exception):
    """A correction that cannot be made: ``kind`` is ``invalid`` (400), ``not_found`` (404) or ``conflict`` (409)."""

    def __init__(self, kind: Kind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass
class Plan:
    """What one correction does. ``before``: the changed and removed segments as they were; ``after``: the changed
    and new segments as they become (new ones with ``id`` None), oldest first; ``removed``: ids merged away."""

    action: str
    before: list[dict]
    after: list[dict]
    removed: list[int] = field(default_factory=list)


@dataclass
class Result:
    """A stored correction: the device, its segments as they became (ids filled in), the removed ids, the
    ``corrections`` row as the API sends it."""

    device: str
    segments: list[dict]
    removed: list[int]
    correction: dict


# ---------------------------------------------------------------------------------------------------- planning
def _fmt(t: float) -> str:
    return f"{t:.3f}".rstrip("0").rstrip(".")


def _find(segs: list[dict], seg_id: int) -> int:
    for i, s in enumerate(segs):
        if s["id"] == seg_id:
            return i
    raise CorrectionError("not_found", f"no segment {seg_id}")


def _adjacent(a: dict, b: dict) -> bool:
    """``b`` starts where ``a`` ends (``a`` closed)."""
    return a["end"] is not None and abs(b["start"] - a["end"]) <= EDGE_EPS


def _editable(seg: dict) -> None:
    if seg["end"] is None or seg["status"] == "open":
        raise CorrectionError("conflict", f"segment {seg['id']} is still open: it can be corrected once it has ended")


def _reviewed(seg: dict, *, user: str, now: float, review: str = "corrected") -> dict:
    """A copy of ``seg`` marked as reviewed; a correction keeps the detector's label the first time."""
    out = dict(seg)
    if review == "corrected" and out.get("detected_label") is None:
        out["detected_label"] = seg["label"]
    out.update(review=review, reviewed_by=user, reviewed_ts=now)
    return out


def _check_label(label: str | None) -> None:
    if label is not None and label not in LABELS:
        raise CorrectionError("invalid", f"label {label!r}: expected one of {', '.join(LABELS)}")


def _finite(value: float, name: str) -> float:
    v = float(value)
    if v != v or v in (float("inf"), float("-inf")):
        raise CorrectionError("invalid", f"{name} must be a finite number")
    return v


def plan_relabel(segs: list[dict], seg_id: int, label: str, *, user: str, now: float) -> Plan:
    """Give segment ``seg_id`` the other label."""
    _check_label(label)
    seg = segs[_find(segs, seg_id)]
    _editable(seg)
    if seg["label"] == label:
        raise CorrectionError("invalid", f"segment {seg_id} is already {label}; confirm it instead")
    new = _reviewed(seg, user=user, now=now)
    new["label"] = label
    return Plan("relabel", [seg], [new])


def plan_move(segs: list[dict], seg_id: int, *, start: float | None = None, end: float | None = None, user: str,
              now: float) -> Plan:
    """Move segment ``seg_id``'s start and/or end. A shared edge moves the neighbour's too (each keeps at least
    :data:`MIN_SEGMENT_S`); an edge next to a gap moves within the gap."""
    if start is None and end is None:
        raise CorrectionError("invalid", "give start and/or end to move a boundary")
    i = _find(segs, seg_id)
    seg = segs[i]
    _editable(seg)
    new_start = seg["start"] if start is None else _finite(start, "start")
    new_end = seg["end"] if end is None else _finite(end, "end")
    if abs(new_start - seg["start"]) <= EDGE_EPS and abs(new_end - seg["end"]) <= EDGE_EPS:
        raise CorrectionError("invalid", f"segment {seg_id} already spans {_fmt(seg['start'])} to {_fmt(seg['end'])}")
    if new_end - new_start < MIN_SEGMENT_S - EDGE_EPS:
        raise CorrectionError("invalid", f"segment {seg_id} would be shorter than {MIN_SEGMENT_S:g} s")
    if new_end > now + EDGE_EPS and abs(new_end - seg["end"]) > EDGE_EPS:
        raise CorrectionError("invalid", f"end {_fmt(new_end)} is in the future")
    before = [seg]
    after = []
    prev = segs[i - 1] if i > 0 else None
    nxt = segs[i + 1] if i + 1 < len(segs) else None
    if abs(new_start - seg["start"]) > EDGE_EPS and prev is not None:
        if _adjacent(prev, seg):
            if new_start - prev["start"] < MIN_SEGMENT_S - EDGE_EPS:
                raise CorrectionError("invalid", f"start {_fmt(new_start)} would leave the segment before "
                                      f"({prev['id']}) shorter than {MIN_SEGMENT_S:g} s; merge them instead")
            moved = _reviewed(prev, user=user, now=now)
            moved["end"] = new_start
            before.insert(0, prev)
            after.append(moved)
        elif new_start < prev["end"] - EDGE_EPS:
            raise CorrectionError("invalid", f"start {_fmt(new_start)} would overlap the segment before "
                                  f"({prev['id']}, ending {_fmt(prev['end'])})")
    new = _reviewed(seg, user=user, now=now)
    new.update(start=new_start, end=new_end)
    after.append(new)
    if abs(new_end - seg["end"]) > EDGE_EPS and nxt is not None:
        if _adjacent(seg, nxt):
            if nxt["end"] is None or nxt["status"] == "open":
                raise CorrectionError("conflict", f"the segment after ({nxt['id']}) is still open: its start can "
                                      "be corrected once it has ended")
            if nxt["end"] - new_end < MIN_SEGMENT_S - EDGE_EPS:
                raise CorrectionError("invalid", f"end {_fmt(new_end)} would leave the segment after "
                                      f"({nxt['id']}) shorter than {MIN_SEGMENT_S:g} s; merge them instead")
            moved = _reviewed(nxt, user=user, now=now)
            moved["start"] = new_end
            before.append(nxt)
            after.append(moved)
        elif new_end > nxt["start"] + EDGE_EPS:
            raise CorrectionError("invalid", f"end {_fmt(new_end)} would overlap the segment after "
                                  f"({nxt['id']}, starting {_fmt(nxt['start'])})")
    return Plan("move", before, after)


def plan_split(segs: list[dict], seg_id: int, at: float, *, label: str | None = None,
               part: Literal["before", "after"] = "after", user: str, now: float) -> Plan:
    """Split segment ``seg_id`` at ``at`` into two; ``label`` (optional) relabels one ``part`` of it: the one
    ``after`` the split (default) or ``before`` it. The first part keeps the id; the second is new."""
    _check_label(label)
    if part not in ("before", "after"):
        raise CorrectionError("invalid", f"part {part!r}: expected before or after")
    seg = segs[_find(segs, seg_id)]
    _editable(seg)
    at = _finite(at, "at")
    if not seg["start"] + MIN_SEGMENT_S - EDGE_EPS <= at <= seg["end"] - MIN_SEGMENT_S + EDGE_EPS:
        raise CorrectionError("invalid", f"at={_fmt(at)} must lie inside segment {seg_id} ({_fmt(seg['start'])} to "
                              f"{_fmt(seg['end'])}) with at least {MIN_SEGMENT_S:g} s on each side")
    detected = seg.get("detected_label") or seg["label"]
    first = _reviewed(seg, user=user, now=now)
    first.update(end=at, status="closed", end_event_id=None, detected_label=detected)
    second = {**first, "id": None, "start": at, "end": seg["end"], "status": seg["status"],
              "start_event_id": None, "end_event_id": seg.get("end_event_id")}
    if label is not None:
        (second if part == "after" else first)["label"] = label
    return Plan("split", [seg], [first, second])


def plan_merge(segs: list[dict], ids: list[int], *, label: str | None = None, user: str, now: float) -> Plan:
    """Merge two or more adjacent segments into the first of them; ``label`` is required when theirs differ."""
    _check_label(label)
    if len(ids) < 2:
        raise CorrectionError("invalid", "merge needs at least two segment ids")
    if len(set(ids)) != len(ids):
        raise CorrectionError("invalid", "a segment id is given more than once")
    if len(ids) > MAX_MERGE:
        raise CorrectionError("invalid", f"at most {MAX_MERGE} segments in one merge")
    where = sorted(_find(segs, i) for i in ids)
    if where[-1] - where[0] != len(where) - 1:
        between = next(segs[k]["id"] for k in range(where[0], where[-1]) if k not in where)
        raise CorrectionError("invalid", f"segments {', '.join(map(str, ids))} are not adjacent: segment "
                              f"{between} lies between them")
    parts = [segs[k] for k in where]
    for p in parts:
        _editable(p)
    for a, b in zip(parts, parts[1:], strict=False):
        if not _adjacent(a, b):
            raise CorrectionError("invalid", f"segments {a['id']} and {b['id']} are not adjacent (a gap from "
                                  f"{_fmt(a['end'])} to {_fmt(b['start'])})")
    labels = {p["label"] for p in parts}
    if label is None:
        if len(labels) > 1:
            raise CorrectionError("invalid", "the segments have different labels: give the merged segment's label")
        label = parts[0]["label"]
    first, last = parts[0], parts[-1]
    by_detected: dict[str, float] = {}
    weighted = weight = 0.0
    for p in parts:
        length = p["end"] - p["start"]
        key = p.get("detected_label") or p["label"]
        by_detected[key] = by_detected.get(key, 0.0) + length
        if p["confidence"] is not None:
            weighted += p["confidence"] * length
            weight += length
    merged = _reviewed(first, user=user, now=now)
    merged.update(label=label, end=last["end"], status=last["status"], end_event_id=last.get("end_event_id"),
                  detected_label=max(by_detected, key=lambda k: (by_detected[k], k == first.get("detected_label"))))
    if weight > 0:
        merged["confidence"] = weighted / weight
    return Plan("merge", parts, [merged], [p["id"] for p in parts[1:]])


def plan_confirm(segs: list[dict], seg_id: int, *, user: str, now: float) -> Plan:
    """Mark segment ``seg_id`` as reviewed without changing it (a corrected one stays ``corrected``)."""
    seg = segs[_find(segs, seg_id)]
    _editable(seg)
    review = "corrected" if seg.get("review") == "corrected" else "confirmed"
    return Plan("confirm", [seg], [_reviewed(seg, user=user, now=now, review=review)])


def apply_plan(segs: list[dict], plan: Plan) -> list[dict]:
    """The segments after ``plan`` (pure; new segments keep ``id`` None), oldest first."""
    changed = {s["id"]: s for s in plan.after if s["id"] is not None}
    gone = set(plan.removed)
    out = [changed.get(s["id"], s) for s in segs if s["id"] not in gone]
    out += [s for s in plan.after if s["id"] is None]
    return sorted(out, key=lambda s: (s["start"], s["end"] is None, s["end"] or 0.0))


def overlaps(segs: list[dict], now: float | None = None) -> list[tuple[Any, Any]]:
    """Pairs of consecutive segments (oldest first) that overlap; an open segment reaches to ``now`` (or forever)."""
    out = []
    ordered = sorted(segs, key=lambda s: s["start"])
    for a, b in zip(ordered, ordered[1:], strict=False):
        a_end = a["end"] if a["end"] is not None else (now if now is not None else float("inf"))
        if b["start"] < a_end - EDGE_EPS:
            out.append((a["id"], b["id"]))
    return out


def audit(segs: list[dict]) -> list[dict]:
    """The compact form of segments kept in a ``corrections`` row."""
    return [{k: s.get(k) for k in _AUDIT_FIELDS} for s in segs]


# ---------------------------------------------------------------------------------------------------- reading
def _rows(conn: Connection, query) -> list[dict]:
    return [dict(r) for r in conn.execute(query).mappings()]


def neighbourhood(conn: Connection, ids: list[int]) -> tuple[str, int, list[dict]]:
    """``(device name, device id, segments)``: the segments ``ids`` of one device, every segment of that device
    between them, and the one just before and just after; oldest first. CorrectionError if an id is unknown or the
    segments belong to different devices."""
    found = _rows(conn, select(SEGMENTS).where(SEGMENTS.c.id.in_(ids)))
    missing = sorted(set(ids) - {r["id"] for r in found})
    if missing:
        raise CorrectionError("not_found", f"no segment {', '.join(map(str, missing))}")
    devices = {r["device_id"] for r in found}
    if len(devices) > 1:
        raise CorrectionError("invalid", "the segments belong to different devices")
    device_id = devices.pop()
    name = conn.execute(select(DEVICES.c.name).where(DEVICES.c.id == device_id)).scalar_one()
    lo = min(found, key=lambda r: (r["start"], r["id"]))
    hi = max(found, key=lambda r: (r["start"], r["id"]))
    of_device = SEGMENTS.c.device_id == device_id
    key_lo = or_(SEGMENTS.c.start > lo["start"], and_(SEGMENTS.c.start == lo["start"], SEGMENTS.c.id >= lo["id"]))
    key_hi = or_(SEGMENTS.c.start < hi["start"], and_(SEGMENTS.c.start == hi["start"], SEGMENTS.c.id <= hi["id"]))
    middle = _rows(conn, select(SEGMENTS).where(of_device, key_lo, key_hi))
    before = _rows(conn, select(SEGMENTS).where(of_device, ~key_lo)
                   .order_by(SEGMENTS.c.start.desc(), SEGMENTS.c.id.desc()).limit(1))
    after = _rows(conn, select(SEGMENTS).where(of_device, ~key_hi)
                  .order_by(SEGMENTS.c.start, SEGMENTS.c.id).limit(1))
    segs = sorted(before + middle + after, key=lambda r: (r["start"], r["id"]))
    return name, device_id, segs


def correction_dict(row: dict, device: str) -> dict:
    """A ``corrections`` row as the API sends it (``Correction`` of docs/api.md)."""
    return {"id": row["id"], "device": device, "ts": row["ts"], "username": row["username"], "action": row["action"],
            "before": json.loads(row["before"]), "after": json.loads(row["after"])}


# ---------------------------------------------------------------------------------------------------- writing
def correct(conn: Connection, action: str, ids: list[int], *, user: str, now: float,
            segment_dict: Callable[[dict, str], dict], **params: Any) -> Result:
    """Plan and store one correction inside the caller's write transaction (``conn``); CorrectionError when it
    cannot be made (nothing written). ``params``: the planning function's own (``label``, ``start``/``end``,
    ``at``/``part``)."""
    device, device_id, segs = neighbourhood(conn, ids)
    if action == "relabel":
        plan = plan_relabel(segs, ids[0], params["label"], user=user, now=now)
    elif action == "move":
        plan = plan_move(segs, ids[0], start=params.get("start"), end=params.get("end"), user=user, now=now)
    elif action == "split":
        plan = plan_split(segs, ids[0], params["at"], label=params.get("label"), part=params.get("part", "after"),
                          user=user, now=now)
    elif action == "merge":
        plan = plan_merge(segs, ids, label=params.get("label"), user=user, now=now)
    elif action == "confirm":
        plan = plan_confirm(segs, ids[0], user=user, now=now)
    else:
        raise ValueError(f"unknown correction {action!r}")
    duration = duration_of_device(conn, device_id)
    if duration is not None:  # a recording's segments stay inside it: [0, duration]
        for seg in plan.after:
            if seg["start"] < -EDGE_EPS or (seg["end"] is not None and seg["end"] > duration + EDGE_EPS):
                raise CorrectionError("invalid", f"the recording's segments lie between 0 and its end, "
                                      f"{_fmt(duration)} s")
    result = apply_plan(segs, plan)
    bad = overlaps(result, now)
    if bad:  # a planning bug must never reach the table
        raise AssertionError(f"correction {action} would make segments {bad} overlap")

    stored: list[dict] = []
    for seg in plan.after:
        values = {k: seg.get(k) for k in _WRITE_FIELDS}
        if seg["id"] is None:
            new_id = conn.execute(insert(SEGMENTS).values(device_id=device_id, **values)).inserted_primary_key[0]
            seg = {**seg, "id": new_id, "device_id": device_id}
        else:
            conn.execute(update(SEGMENTS).where(SEGMENTS.c.id == seg["id"]).values(**values))
        stored.append(seg)
    if plan.removed:
        conn.execute(delete(SEGMENTS).where(SEGMENTS.c.id.in_(plan.removed)))
    stored.sort(key=lambda s: s["start"])
    row = {"device_id": device_id, "ts": now, "username": user, "action": plan.action,
           "before": json.dumps(audit(plan.before), separators=(",", ":")),
           "after": json.dumps(audit(stored), separators=(",", ":"))}
    row["id"] = conn.execute(insert(CORRECTIONS).values(**row)).inserted_primary_key[0]
    return Result(device=device, segments=[segment_dict(s, device) for s in stored], removed=list(plan.removed),
                  correction=correction_dict(row, device))


def corrections(conn: Connection, *, device_id: int | None, start: float | None, end: float | None,
                limit: int) -> list[tuple[dict, str]]:
    """Stored corrections (row, device name), newest first, whose segments (before or after) overlap
    ``[start, end)``."""
    q = (select(CORRECTIONS, DEVICES.c.name.label("device_name"))
         .join_from(CORRECTIONS, DEVICES, CORRECTIONS.c.device_id == DEVICES.c.id)
         .order_by(CORRECTIONS.c.ts.desc(), CORRECTIONS.c.id.desc()))
    if device_id is not None:
        q = q.where(CORRECTIONS.c.device_id == device_id)
    out = []
    for r in conn.execute(q).mappings():
        if start is not None or end is not None:
            spans = json.loads(r["before"]) + json.loads(r["after"])
            lo = min(s["start"] for s in spans)
            hi = max(s["end"] if s["end"] is not None else float("inf") for s in spans)
            if (end is not None and lo >= end) or (start is not None and hi <= start):
                continue
        out.append((dict(r), r["device_name"]))
        if len(out) >= limit:
            break
    return out
