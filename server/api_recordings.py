"""REST API of recordings sent for review under ``/api/v1`` (``docs/api.md``, "Recordings").

* ``GET /recordings``: ``{"recordings": [Recording]}``, by name;
* ``GET /recordings/<name>``: one ``Recording``;
* ``PUT /recordings/<name>[?replace=1]``: a scanned recording (its duration, frame rate, segments, details),
  created (201) or updated (200; see :func:`server.recordings.store_upload` for what happens to a review);
* ``POST /recordings/<name>/keyframes``: up to 50 of its pictures per request (base64 JPEGs with their time);
* ``DELETE /recordings/<name>``: it, its segments, keyframes and corrections (a reviewed one: admins only).

Its segments, keyframes and corrections are then read and corrected through the device routes with
``device=<Recording.device>`` (``rec:...``). Writes are jobs of the single writer (``runtime.ingest.run``); after the
commit a ``recording`` Socket.IO event tells the dashboards. The pure parts and the SQL are in
``server.recordings``.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from flask import Blueprint, jsonify, request
from pydantic import BaseModel, ConfigDict, Field
from werkzeug.exceptions import BadRequest, Conflict, Forbidden, NotFound, RequestEntityTooLarge

from server import recordings
from server.api import API_PREFIX, _params, runtime
from server.auth import current_api_user, current_username, parse_body
from server.ingest import JobRefused
from server.store import WriteBatch

bp = Blueprint("api_recordings", __name__, url_prefix=API_PREFIX)

Seconds = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Fraction = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0.0, le=1.0)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SegmentBody(_Body):
    start: Seconds
    end: Seconds
    label: Annotated[str, Field(min_length=1, max_length=64)]
    confidence: Fraction | None = None


class UploadBody(_Body):
    name: Annotated[str, Field(min_length=1, max_length=recordings.NAME_MAX)] | None = None
    duration_s: Annotated[float, Field(strict=True, allow_inf_nan=False, gt=0.0, le=recordings.MAX_DURATION_S)]
    fps: Annotated[float, Field(strict=True, allow_inf_nan=False, gt=0.0, le=recordings.MAX_FPS)]
    segments: Annotated[list[SegmentBody], Field(min_length=1, max_length=recordings.MAX_SEGMENTS)]
    info: dict[str, Any] = Field(default_factory=dict)
    scan: dict[str, Any] = Field(default_factory=dict)
    scanned_at: Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0.0)] | None = None
    model_version: Annotated[str, Field(max_length=256)] | None = None


class KeyframeBody(_Body):
    t: Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0.0, le=recordings.MAX_DURATION_S)]
    jpeg: Annotated[str, Field(min_length=4, max_length=recordings.MAX_KEYFRAME_BYTES)]
    kind: str = "sample"
    p_ad: Fraction | None = None


class KeyframesBody(_Body):
    keyframes: Annotated[list[KeyframeBody], Field(min_length=1, max_length=recordings.MAX_KEYFRAMES_PER_REQUEST)]


class _Refused(JobRefused):
    def __init__(self, error: recordings.RecordingError) -> None:
        super().__init__(error.message)
        self.error = error


_HTTP = {"invalid": BadRequest, "forbidden": Forbidden, "not_found": NotFound, "conflict": Conflict}


def _http(error: recordings.RecordingError):
    return _HTTP[error.kind](error.message)


def _name(name: str) -> str:
    try:
        return recordings.check_name(name)
    except recordings.RecordingError as exc:
        raise _http(exc) from None


def _limit_body(limit: int) -> None:
    """A 413 for a body over ``limit`` bytes, before any of it is parsed."""
    request.max_content_length = limit
    if request.content_length is not None and request.content_length > limit:
        raise RequestEntityTooLarge(f"the body is {request.content_length} bytes; this endpoint takes at most {limit}")
    request.get_data(cache=True)  # reads it within the limit (a chunked body too), 413 beyond


def _flag(args: dict[str, str], name: str) -> bool:
    raw = args.get(name)
    if raw is None:
        return False
    value = raw.strip().lower()
    if value in ("1", "true", "yes"):
        return True
    if value in ("0", "false", "no"):
        return False
    raise BadRequest(f"{name}={raw!r}: expected 1 or 0")


def _write(job):
    """Run ``job(batch)`` on the single writer; a :class:`recordings.RecordingError` becomes its HTTP error."""
    def wrapped(batch: WriteBatch):
        try:
            return job(batch)
        except recordings.RecordingError as exc:
            raise _Refused(exc) from exc

    try:
        return runtime().ingest.run(wrapped)
    except _Refused as exc:
        raise _http(exc.error) from None


# ---------------------------------------------------------------------------------------------------- routes
@bp.get("/recordings")
def list_recordings():
    _params(())
    with runtime().store._read() as conn:
        return jsonify({"recordings": recordings.list_recordings(conn)})


@bp.get("/recordings/<name>")
def get_recording(name: str):
    _params(())
    name = _name(name)
    with runtime().store._read() as conn:
        found = recordings.get_recording(conn, name)
    if found is None:
        raise NotFound(f"no recording {name!r}")
    return jsonify(found)


@bp.put("/recordings/<name>")
def put_recording(name: str):
    args = _params(("replace",))
    name = _name(name)
    replace = _flag(args, "replace")
    _limit_body(recordings.MAX_UPLOAD_BYTES)
    body: UploadBody = parse_body(UploadBody)
    if body.name is not None and body.name != name:
        raise BadRequest(f"name: {body.name!r} is not the recording of this URL ({name!r})")
    try:
        tiles = recordings.tile([s.model_dump() for s in body.segments], body.duration_s)
        recordings.meta_json(body.info, "info")
        recordings.meta_json(body.scan, "scan")
    except recordings.RecordingError as exc:
        raise _http(exc) from None
    except ValueError as exc:  # info / scan not representable as JSON (never from a JSON body)
        raise BadRequest(str(exc)) from None
    upload = recordings.Upload(name=name, duration_s=body.duration_s, fps=body.fps, tiles=tiles, info=body.info,
                               scan=body.scan, scanned_at=body.scanned_at, model_version=body.model_version)
    user = current_api_user()
    username, admin = current_username(), bool(user is not None and user.is_admin)
    rt = runtime()
    now = time.time()

    def job(batch: WriteBatch) -> recordings.Stored:
        stored = recordings.store_upload(batch.conn, upload, user=username, now=now, replace=replace, admin=admin)
        if stored.removed_files:
            batch.after_commit(recordings.remove_files, stored.removed_files, rt.settings.data_dir)
        batch.after_commit(_push_from, rt, stored.change, stored.recording)
        return stored

    stored: recordings.Stored = _write(job)
    response = jsonify({**stored.recording, "change": stored.change})
    response.status_code = 201 if stored.change == "created" else 200
    return response


def _push_from(rt, change: str, rec: dict) -> None:
    rt.realtime.recording({"change": change, "name": rec["name"], "device": rec["device"], "recording": rec})


@bp.post("/recordings/<name>/keyframes")
def post_keyframes(name: str):
    _params(())
    name = _name(name)
    _limit_body(recordings.MAX_KEYFRAMES_BYTES)
    body: KeyframesBody = parse_body(KeyframesBody)
    try:  # decoded here, in the request's thread: the writer only writes
        frames = [recordings.decode_frame(i, k.t, k.jpeg, kind=k.kind, p_ad=k.p_ad)
                  for i, k in enumerate(body.keyframes)]
    except recordings.RecordingError as exc:
        raise _http(exc) from None
    rt = runtime()
    now = time.time()

    def job(batch: WriteBatch) -> dict:
        result, written = recordings.add_keyframes(batch.conn, rt.settings.data_dir, name, frames, now=now)
        if written:
            batch.after_commit(rt.realtime.recording, {"change": "keyframes", "name": name,
                                                       "device": result["device"], "recording": None})
        return result

    return jsonify(_write(job))


@bp.delete("/recordings/<name>")
def delete_recording(name: str):
    _params(())
    name = _name(name)
    user = current_api_user()
    admin = bool(user is not None and user.is_admin)
    rt = runtime()

    def job(batch: WriteBatch) -> str:
        device, paths = recordings.delete_recording(batch.conn, name, admin=admin)
        batch.after_commit(recordings.remove_files, paths, rt.settings.data_dir)
        batch.after_commit(rt.realtime.recording, {"change": "deleted", "name": name, "device": device,
                                                   "recording": None})
        return device

    _write(job)
    return "", 204
