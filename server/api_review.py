"""REST API of review and statistics under ``/api/v1`` (``docs/api.md``, "Review" and "Statistics").

Corrections are planned and written by ``server.review`` inside a job of the single writer
(``runtime.ingest.run``); once committed, the changed segments are pushed (``segment``, ``segment_removed``,
``correction``). Statistics are computed by ``server.stats`` over the stored (so corrected) segments.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

from flask import Blueprint, jsonify, request
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt
from sqlalchemy import and_, func, select
from werkzeug.exceptions import BadRequest, Conflict, NotFound

from server import recordings, review, stats
from server.api import API_PREFIX, _params, _window, parse_time, runtime
from server.auth import current_username, parse_body
from server.ingest import JobRefused
from server.models import Device, RuleFiring, Segment
from server.store import WriteBatch

if TYPE_CHECKING:
    from server.app import Runtime

bp = Blueprint("api_review", __name__, url_prefix=API_PREFIX)

DEVICES = Device.__table__
SEGMENTS = Segment.__table__
FIRINGS = RuleFiring.__table__

MAX_HOUR_BUCKETS = 24 * 93
MAX_DAY_BUCKETS = 800
Time = StrictFloat | StrictInt | str


class Refused(JobRefused):
    """A correction the planner refused (rolled back quietly by the ingest worker)."""

    def __init__(self, error: review.CorrectionError) -> None:
        super().__init__(error.message)
        self.error = error


# ---------------------------------------------------------------------------------------------------- bodies
class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PatchBody(_Body):
    label: Literal["program", "ad"] | None = None
    start: Time | None = None
    end: Time | None = None


class SplitBody(_Body):
    at: Time
    label: Literal["program", "ad"] | None = None
    part: Literal["before", "after"] = "after"


class MergeBody(_Body):
    ids: list[StrictInt] = Field(min_length=2, max_length=review.MAX_MERGE)
    label: Literal["program", "ad"] | None = None


def _time(value: Time | None, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):
        return parse_time(value, name)
    return parse_time(repr(float(value)), name)  # rejects inf / nan like a query parameter


# ---------------------------------------------------------------------------------------------------- corrections
def _correct(action: str, ids: list[int], **params) -> dict:
    rt: Runtime = runtime()
    user = current_username()
    now = time.time()

    def job(batch: WriteBatch) -> review.Result:
        try:
            result = review.correct(batch.conn, action, ids, user=user, now=now,
                                    segment_dict=rt.store.segment_dict, **params)
        except review.CorrectionError as exc:
            raise Refused(exc) from exc
        batch.after_commit(_push, rt, result)
        return result

    try:
        result: review.Result = rt.ingest.run(job)  # type: ignore[assignment]
    except Refused as exc:
        kind, message = exc.error.kind, exc.error.message
        if kind == "not_found":
            raise NotFound(message) from None
        if kind == "conflict":
            raise Conflict(message) from None
        raise BadRequest(message) from None
    return {"segments": result.segments, "removed": result.removed, "correction": result.correction}


def _push(rt: Runtime, result: review.Result) -> None:
    for seg in result.segments:
        rt.realtime.segment(seg)
    for seg_id in result.removed:
        rt.realtime.segment_removed({"id": seg_id, "device": result.device, "merged_into": result.segments[0]["id"]})
    rt.realtime.correction(result.correction)


@bp.get("/segments/<int:seg_id>")
def get_segment(seg_id: int):
    _params(())
    with runtime().store._read() as conn:
        row = conn.execute(select(SEGMENTS, DEVICES.c.name.label("device_name"))
                           .join_from(SEGMENTS, DEVICES, SEGMENTS.c.device_id == DEVICES.c.id)
                           .where(SEGMENTS.c.id == seg_id)).mappings().first()
    if row is None:
        raise NotFound(f"no segment {seg_id}")
    return jsonify(runtime().store.segment_dict(row, row["device_name"]))


@bp.patch("/segments/<int:seg_id>")
def patch_segment(seg_id: int):
    _params(())
    body = parse_body(PatchBody)
    start, end = _time(body.start, "start"), _time(body.end, "end")
    if body.label is not None and (start is not None or end is not None):
        raise BadRequest("change the label or the boundaries (start, end), not both in one request")
    if body.label is not None:
        return jsonify(_correct("relabel", [seg_id], label=body.label))
    if start is None and end is None:
        raise BadRequest("give label, or start and/or end")
    return jsonify(_correct("move", [seg_id], start=start, end=end))


@bp.post("/segments/<int:seg_id>/split")
def split_segment(seg_id: int):
    _params(())
    body = parse_body(SplitBody)
    return jsonify(_correct("split", [seg_id], at=_time(body.at, "at"), label=body.label, part=body.part))


@bp.post("/segments/merge")
def merge_segments():
    _params(())
    body = parse_body(MergeBody)
    return jsonify(_correct("merge", list(body.ids), label=body.label))


@bp.post("/segments/<int:seg_id>/confirm")
def confirm_segment(seg_id: int):
    _params(())
    if request.get_data():
        data = request.get_json(silent=True)
        if data != {}:
            raise BadRequest("confirm takes no body (or an empty JSON object)")
    return jsonify(_correct("confirm", [seg_id]))


@bp.get("/corrections")
def list_corrections():
    args = _params(("device", "start", "end", "limit"))
    w = _window(args)
    with runtime().store._read() as conn:
        device_id = None
        if w.get("device") is not None:
            device_id = conn.execute(select(DEVICES.c.id).where(DEVICES.c.name == w["device"])).scalar_one()
        rows = review.corrections(conn, device_id=device_id, start=w["start"], end=w["end"], limit=w["limit"])
    return jsonify({"corrections": [review.correction_dict(r, name) for r, name in rows]})


# ---------------------------------------------------------------------------------------------------- statistics
def _zone(name: str | None):
    if name is None:
        configured = runtime().settings.timezone
        return stats.zone(configured) if configured else stats.local_zone()
    try:
        return stats.zone(name)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


def _read_stats_rows(device: str | None, start: float, end: float) -> dict[str, stats.DeviceInput]:
    with runtime().store._read() as conn:
        devs = conn.execute(select(DEVICES.c.id, DEVICES.c.name, DEVICES.c.muted)
                            .where(DEVICES.c.name == device) if device is not None
                            else select(DEVICES.c.id, DEVICES.c.name, DEVICES.c.muted)  # recordings are no device
                            .where(~DEVICES.c.name.startswith(recordings.KEY_PREFIX, autoescape=True))).all()
        ids = [d.id for d in devs]
        segs: dict[int, list[dict]] = {i: [] for i in ids}
        q = (select(SEGMENTS.c.device_id, SEGMENTS.c.label, SEGMENTS.c.start, SEGMENTS.c.end)
             .where(SEGMENTS.c.device_id.in_(ids), SEGMENTS.c.start < end,
                    SEGMENTS.c.end.is_(None) | (SEGMENTS.c.end > start))
             .order_by(SEGMENTS.c.start))
        for r in conn.execute(q).mappings():
            segs[r["device_id"]].append(dict(r))
        fires: dict[int, list[dict]] = {i: [] for i in ids}
        q = (select(FIRINGS.c.device_id, FIRINGS.c.ts, FIRINGS.c.action)
             .where(FIRINGS.c.device_id.in_(ids), FIRINGS.c.ts >= start, FIRINGS.c.ts < end)
             .order_by(FIRINGS.c.ts, FIRINGS.c.id))
        for r in conn.execute(q).mappings():
            fires[r["device_id"]].append(dict(r))
        # the state before the range: each device's last firing before start
        last = (select(FIRINGS.c.device_id, func.max(FIRINGS.c.id).label("fid"))
                .where(FIRINGS.c.device_id.in_(ids), FIRINGS.c.ts < start)
                .group_by(FIRINGS.c.device_id).subquery())
        before = dict(conn.execute(select(FIRINGS.c.device_id, FIRINGS.c.action)
                                   .join(last, and_(FIRINGS.c.id == last.c.fid))).all())
    return {d.name: stats.DeviceInput(segments=segs[d.id], firings=fires[d.id],
                                      muted_before=before.get(d.id) == "mute", muted_now=bool(d.muted))
            for d in devs}


@bp.get("/stats")
def get_stats():
    args = _params(("device", "start", "end", "tz", "bucket"))
    tz = _zone(args.get("tz"))
    window = _window({k: v for k, v in args.items() if k in ("device", "start", "end")})
    now = time.time()
    start, end = window["start"], window["end"]
    if start is None and end is None:
        day = datetime.fromtimestamp(now, tz).date()
        start = stats.midnight(day, tz)
        end = stats.midnight(day + timedelta(days=1), tz)
    elif start is None:
        raise BadRequest("give start with end")
    elif end is None:
        end = max(now, start + 1.0)
    bucket = args.get("bucket")
    if bucket is None:
        bucket = "hour" if end - start <= 2 * 86400 + 7200 else "day"
    if bucket not in stats.BUCKETS:
        raise BadRequest(f"bucket={bucket!r}: expected one of {', '.join(stats.BUCKETS)}")
    limit = MAX_HOUR_BUCKETS if bucket == "hour" else MAX_DAY_BUCKETS
    if stats.count_buckets(start, end, bucket) > limit:
        raise BadRequest(f"at most {limit} {bucket} buckets: choose a shorter range or bucket=day")
    rows = _read_stats_rows(window.get("device"), start, end)
    body = stats.compute(rows, start=start, end=end, tz=tz, bucket=bucket, now=now)
    body["device"] = window.get("device")
    return jsonify(body)
