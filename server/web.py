"""The built dashboard (``web/dist`` by default, ``settings.web_dir``): ``index.html`` at ``/`` and its assets.

When the folder has not been built, ``/`` answers 503 saying how to build it; the API works regardless.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, current_app, jsonify, request, send_from_directory
from werkzeug.exceptions import NotFound

bp = Blueprint("web", __name__)

NOT_BUILT = "dashboard not built: run `make web`"
ASSET_MAX_AGE_S = 365 * 24 * 3600  # Vite's assets/ carry a content hash in their names


def _web_dir() -> Path:
    return Path(current_app.extensions["adbreak"].settings.web_dir)


def _not_built() -> Response:
    if request.accept_mimetypes.best_match(["text/html", "application/json"]) == "application/json":
        response = jsonify({"error": NOT_BUILT, "web_dir": str(_web_dir())})
    else:
        response = Response(f"<!doctype html><title>adbreak</title><p>{NOT_BUILT} (looked in "
                            f"<code>{_web_dir()}</code>). The API is at <a href=\"/api/v1/health\">/api/v1</a>.</p>\n",
                            mimetype="text/html")
    response.status_code = 503
    return response


@bp.get("/")
def index() -> Response:
    folder = _web_dir()
    if not (folder / "index.html").is_file():
        return _not_built()
    response = send_from_directory(folder, "index.html", max_age=0)
    response.cache_control.no_cache = True
    return response


@bp.get("/<path:filename>")
def asset(filename: str) -> Response:
    if filename == "api" or filename.startswith("api/"):
        raise NotFound()  # an unknown API path: answered as JSON by the API's error handler
    folder = _web_dir()
    if not folder.is_dir():
        return _not_built()
    max_age = ASSET_MAX_AGE_S if filename.startswith("assets/") else 0
    return send_from_directory(folder, filename, max_age=max_age)  # safe_join: no escaping the folder
