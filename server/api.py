"""REST API under ``/api/v1`` (``docs/api.md``). Every answer, errors included, is JSON."""

from __future__ import annotations

import functools
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from flask import Blueprint, Flask, current_app, jsonify, request
from werkzeug.exceptions import BadRequest, HTTPException, InternalServerError, NotFound

from adbreak import __version__
from adbreak.times import parse_instant
from adbreak.wire import DEVICE_RE
from server.counters import RateLimitedLog
from server.recordings import source_name_ok
from server.store import MAX_LIMIT

if TYPE_CHECKING:
    from server.app import Runtime

API_PREFIX = "/api/v1"
DEFAULT_LIMIT = 1000
LABELS = ("program", "ad")

bp = Blueprint("api", __name__, url_prefix=API_PREFIX)


def runtime() -> Runtime:
    return current_app.extensions["adbreak"]


# ---------------------------------------------------------------------------------------------------- parameters
def parse_time(value: str, name: str) -> float:
    """Epoch seconds, or ISO 8601 (a time without a zone is UTC)."""
    try:
        return parse_instant(value)
    except ValueError as exc:
        raise BadRequest(f"{name}={value!r} {exc}") from None


def _params(allowed: tuple[str, ...]) -> dict[str, str]:
    unknown = sorted(set(request.args) - set(allowed))
    if unknown:
        raise BadRequest(f"unknown parameter(s) {', '.join(unknown)}; this endpoint takes {', '.join(allowed)}")
    repeated = [k for k in request.args if len(request.args.getlist(k)) > 1]
    if repeated:
        raise BadRequest(f"parameter {repeated[0]} given more than once")
    return {k: request.args[k] for k in request.args}


def _window(args: dict[str, str]) -> dict:
    out: dict = {}
    device = args.get("device")
    if device is not None:
        if not source_name_ok(device):
            raise BadRequest(f"device={device!r} is not a device name ({DEVICE_RE.pattern}) or a recording's "
                             "device (rec:...)")
        if runtime().store.device(device) is None:
            raise NotFound(f"unknown device {device!r}")
        out["device"] = device
    start = parse_time(args["start"], "start") if "start" in args else None
    end = parse_time(args["end"], "end") if "end" in args else None
    if start is not None and end is not None and end <= start:
        raise BadRequest("end must be after start")
    out.update(start=start, end=end)
    raw = args.get("limit")
    if raw is None:
        out["limit"] = DEFAULT_LIMIT
    else:
        try:
            limit = int(raw)
        except ValueError:
            raise BadRequest(f"limit={raw!r} is not an integer") from None
        if not 1 <= limit <= MAX_LIMIT:
            raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}")
        out["limit"] = limit
    return out


# ---------------------------------------------------------------------------------------------------- routes
OPENAPI_PATH = Path(__file__).with_name("openapi.yaml")


@functools.cache
def openapi_spec() -> dict:
    """The OpenAPI 3.1 description of this API (``server/openapi.yaml``, hand-written; ``docs/api.md``)."""
    with OPENAPI_PATH.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


@bp.get("/openapi.json")
def openapi():
    _params(())
    return jsonify(openapi_spec())


@bp.get("/health")
def health():
    rt = runtime()
    connected = rt.bridge.connected
    return jsonify({
        "status": "ok" if connected else "degraded",
        "schema": rt.schema_revision(),
        "mqtt": {"connected": connected, "broker": rt.bridge.broker},
        "counters": rt.store.counters.snapshot(),
        "uptime_s": round(time.monotonic() - rt.started, 3),
        "version": __version__,
    })


@bp.get("/devices")
def devices():
    _params(())
    return jsonify({"devices": runtime().store.devices()})


@bp.get("/devices/<name>")
def device(name: str):
    _params(())
    found = runtime().store.device(name) if DEVICE_RE.match(name) else None
    if found is None:
        raise NotFound(f"unknown device {name!r}")
    return jsonify(found)


@bp.get("/segments")
def segments():
    args = _params(("device", "start", "end", "label", "limit"))
    label = args.get("label")
    if label is not None and label not in LABELS:
        raise BadRequest(f"label={label!r}: expected one of {', '.join(LABELS)}")
    return jsonify({"segments": runtime().store.segments(label=label, **_window(args))})


@bp.get("/events")
def events():
    args = _params(("device", "start", "end", "limit"))
    return jsonify({"events": runtime().store.events(**_window(args))})


@bp.get("/rules/firings")
def firings():
    args = _params(("device", "start", "end", "limit"))
    return jsonify({"firings": runtime().store.firings(**_window(args))})


# ---------------------------------------------------------------------------------------------------- errors
_api_rejects = RateLimitedLog(logging.getLogger(__name__))


def _is_api() -> bool:
    return request.path == "/api" or request.path.startswith("/api/")


def _only_the_dashboard_matches() -> bool:
    """Whether a 405 under ``/api`` comes from the dashboard's ``/<path:filename>`` (GET) alone: the path is no API
    route at all, so the honest answer is 404."""
    adapter = current_app.url_map.bind_to_environ(request.environ)
    try:
        endpoint, _ = adapter.match(method="GET")
    except HTTPException:
        return False
    return endpoint.startswith("web.")


def _http_error(exc: HTTPException):
    if not _is_api():
        return exc
    message = exc.description if exc.description and exc.code in (400, 401, 403, 404, 409, 413, 422) else exc.name
    if exc.code == 429:
        message = f"too many requests ({exc.description}); try again later"
    if exc.code == 404 and exc.description == NotFound.description:
        message = f"no such resource: {request.path}"
    if exc.code == 405 and _only_the_dashboard_matches():
        exc = NotFound()  # e.g. POST /api/v1/rules/-1: no API route, only the dashboard's catch-all GET
        message = f"no such resource: {request.path}"
    elif exc.code == 405:
        message = f"method {request.method} not allowed on {request.path}"
    text = " ".join(str(message).split())
    if exc.code is not None and 400 <= exc.code < 500:
        rt = current_app.extensions.get("adbreak")
        if rt is not None:
            rt.store.counters.api_reject(exc.code)
        _api_rejects.log(logging.INFO, str(exc.code), "API %s %s refused (%d): %s", request.method, request.path,
                         exc.code, text)
    response = jsonify({"error": text})
    response.status_code = exc.code or 500
    if exc.code == 405:
        response.headers["Allow"] = ", ".join(exc.valid_methods or ())  # type: ignore[attr-defined]
    return response


def _unexpected_error(exc: Exception):
    current_app.logger.exception("unhandled error on %s %s", request.method, request.path)
    if not _is_api():
        return InternalServerError()
    response = jsonify({"error": "internal server error"})
    response.status_code = 500
    return response


def register_error_handlers(app: Flask) -> None:
    """JSON errors for everything under ``/api`` (unmatched routes included, hence on the app, not the blueprint)."""
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)
