"""REST API of the devices' media and settings (``docs/api.md``): keyframes and decision settings.

* ``GET /api/v1/keyframes?device=&start=&end=&kind=&limit=``: ``{"keyframes": [Keyframe]}``, oldest first;
* ``GET /api/v1/keyframes/<id>.jpg``: the JPEG (immutable: cached privately for a year);
* ``GET /api/v1/devices/<name>/settings``: ``DeviceSettings``;
* ``PUT /api/v1/devices/<name>/settings``: partial decision settings (``null`` = back to the default); stored,
  sent to the device (``settings/set``), answered with the new ``DeviceSettings``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Blueprint, current_app, jsonify, request, send_file
from pydantic import ValidationError
from werkzeug.exceptions import BadRequest, HTTPException, NotFound

from adbreak.wire import DEVICE_RE, SettingsChanges
from server.api import _params, _window
from server.auth import current_username
from server.device_settings import SettingsError, UnknownDevice
from server.ingest import JobRefused
from server.models import KEYFRAME_KINDS

if TYPE_CHECKING:
    from server.app import Runtime
    from server.device_settings import SettingsSync
    from server.keyframes import KeyframeStore

bp = Blueprint("api_devices", __name__, url_prefix="/api/v1")

JPEG_MAX_AGE_S = 365 * 86400


def _runtime() -> Runtime:
    return current_app.extensions["adbreak"]


def _keyframes() -> KeyframeStore:
    store = _runtime().keyframes
    if store is None:
        raise NotFound("keyframes are not kept by this server")
    return store


def _sync() -> SettingsSync:
    sync = _runtime().device_settings
    if sync is None:
        raise NotFound("device settings are not handled by this server")
    return sync


class _Refused(JobRefused):
    """A refusal from inside the write job, carried out to the request as its HTTP error."""

    def __init__(self, error: HTTPException) -> None:
        super().__init__(error.description)
        self.error = error


# ---------------------------------------------------------------------------------------------------- keyframes
@bp.get("/keyframes")
def keyframes():
    args = _params(("device", "start", "end", "kind", "limit"))
    kind = args.get("kind")
    if kind is not None and kind not in KEYFRAME_KINDS:
        raise BadRequest(f"kind={kind!r}: expected one of {', '.join(KEYFRAME_KINDS)}")
    return jsonify({"keyframes": _keyframes().keyframes(kind=kind, **_window(args))})


@bp.get("/keyframes/<int:keyframe_id>.jpg")
def keyframe_jpeg(keyframe_id: int):
    _params(())
    found = _keyframes().keyframe(keyframe_id)
    if found is None:
        raise NotFound(f"no keyframe {keyframe_id}")
    _meta, path = found
    if not path.is_file():
        raise NotFound(f"the file of keyframe {keyframe_id} is gone")
    response = send_file(path, mimetype="image/jpeg", conditional=True, etag=True, max_age=JPEG_MAX_AGE_S)
    response.cache_control.public = False
    response.cache_control.private = True
    response.cache_control.immutable = True
    return response


# ---------------------------------------------------------------------------------------------------- settings
SettingsBody = SettingsChanges
"""``PUT /devices/<name>/settings``: any of the decision settings; ``null`` returns one to the default."""


def _known(name: str) -> dict:
    found = _runtime().store.device(name) if DEVICE_RE.match(name) else None
    if found is None:
        raise NotFound(f"unknown device {name!r}")
    return found


def _settings_body(name: str, view: dict) -> dict:
    return {"device": name, **view}


@bp.get("/devices/<name>/settings")
def device_settings(name: str):
    _params(())
    _sync()
    return jsonify(_settings_body(name, _known(name)["settings"]))


@bp.put("/devices/<name>/settings")
def put_device_settings(name: str):
    _params(())
    sync = _sync()
    _known(name)
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise BadRequest("expected a JSON object of decision settings")
    try:
        body = SettingsBody.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "body"
        raise BadRequest(f"{where}: {first.get('msg')}") from None
    changes = {k: getattr(body, k) for k in body.model_fields_set}
    username = current_username()

    def job(batch):
        try:
            return sync.put(batch, name, changes, username=username)
        except UnknownDevice:
            raise _Refused(NotFound(f"unknown device {name!r}")) from None
        except SettingsError as exc:
            raise _Refused(BadRequest(str(exc))) from None

    try:
        view = _runtime().ingest.run(job)
    except _Refused as exc:
        raise exc.error from None
    return jsonify(_settings_body(name, view))
