"""REST for the Home Assistant side (``docs/homeassistant.md``): the per-device auto-mute switch.

``PUT /api/v1/devices/<name>/auto-mute`` ``{"enabled": bool}`` sets ``devices.auto_mute`` through the single writer,
exactly as the switch's MQTT command does (turning it off while muted unmutes; the retained switch state follows),
and answers the ``Device``.
"""

from __future__ import annotations

from flask import Blueprint, jsonify
from pydantic import BaseModel, ConfigDict, StrictBool
from werkzeug.exceptions import NotFound, ServiceUnavailable

from adbreak.wire import DEVICE_RE
from server.api import API_PREFIX, _params, runtime
from server.auth import current_username, parse_body

bp = Blueprint("api_ha", __name__, url_prefix=API_PREFIX)


class AutoMuteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: StrictBool


@bp.put("/devices/<name>/auto-mute")
def put_auto_mute(name: str):
    _params(())
    body = parse_body(AutoMuteBody)
    if not DEVICE_RE.match(name):
        raise NotFound(f"unknown device {name!r}")
    rt = runtime()
    if rt.homeassistant is None:
        raise ServiceUnavailable("the auto-mute switch is not wired in this server")
    job = rt.homeassistant.switch_job(name, body.enabled, by=f"{current_username()} (API)")
    device = rt.ingest.run(job)
    if device is None:
        raise NotFound(f"unknown device {name!r}")
    return jsonify(device)
