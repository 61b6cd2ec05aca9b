"""REST API of exports and training sets under ``/api/v1`` (``docs/api.md``, "Exports" and "Training set").

* ``GET /export?device=&start=&end=&format=csv|edl|comskip|ffmetadata[&fps=]``: one device's segments over a range
  as a file (an attachment), rendered by ``adbreak.exports`` from ``server.export_data``;
* ``GET /dataset?device=&start=&end=&margin=``: the training folder of ``server.dataset`` as a zip (built in a
  temporary file, then streamed);
* ``GET /dataset/summary?...``: its counts, and why it could not train, for the dashboard.

Read-only: the single writer is not involved. Sign-in is checked for every ``/api`` route by ``server.auth``.
"""

from __future__ import annotations

import math
import tempfile
import time

from flask import Blueprint, Response, jsonify, send_file
from werkzeug.exceptions import BadRequest, Conflict, NotFound

from adbreak import exports
from adbreak.wire import DEVICE_RE
from server import dataset, export_data
from server.api import API_PREFIX, _params, parse_time, runtime
from server.recordings import source_name_ok

bp = Blueprint("api_export", __name__, url_prefix=API_PREFIX)


def _device(args: dict[str, str], *, required: bool) -> str | None:
    device = args.get("device")
    if device is None:
        if required:
            raise BadRequest("device is required")
        return None
    if not source_name_ok(device):
        raise BadRequest(f"device={device!r} is not a device name ({DEVICE_RE.pattern}) or a recording's device "
                         "(rec:...)")
    if runtime().store.device(device) is None:
        raise NotFound(f"unknown device {device!r}")
    return device


def _times(args: dict[str, str], *, required: bool) -> tuple[float | None, float | None]:
    for name in ("start", "end"):
        if required and name not in args:
            raise BadRequest(f"{name} is required (epoch seconds or ISO 8601)")
    start = parse_time(args["start"], "start") if "start" in args else None
    end = parse_time(args["end"], "end") if "end" in args else None
    if start is not None and end is not None and end <= start:
        raise BadRequest("end must be after start")
    return start, end


def _number(args: dict[str, str], name: str, default: float) -> float:
    raw = args.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise BadRequest(f"{name}={raw!r} is not a number") from None
    if not math.isfinite(value):
        raise BadRequest(f"{name}={raw!r} is not a finite number")
    return value


# ---------------------------------------------------------------------------------------------------- export
@bp.get("/export")
def export():
    args = _params(("device", "start", "end", "format", "fps"))
    device = _device(args, required=True)
    start, end = _times(args, required=True)
    assert device is not None and start is not None and end is not None
    fmt = args.get("format")
    if fmt is None:
        raise BadRequest(f"format is required: one of {', '.join(exports.FORMATS)}")
    if fmt not in exports.FORMATS:
        raise BadRequest(f"format={fmt!r}: expected one of {', '.join(exports.FORMATS)}")
    if "fps" in args and fmt != "comskip":
        raise BadRequest("fps applies to format=comskip only")
    fps = _number(args, "fps", exports.DEFAULT_FPS)
    try:
        exports.check_fps(fps)
        exports.check_range(start, end)
    except exports.ExportError as exc:
        raise BadRequest(str(exc)) from None
    with runtime().store._read() as conn:
        try:
            result = export_data.build_export(conn, device, start, end, fmt, fps=fps, now=time.time())
        except exports.ExportError as exc:
            raise NotFound(str(exc)) from None
    response = Response(result.text, content_type=result.content_type)
    response.headers["Content-Disposition"] = f'attachment; filename="{result.filename}"'
    response.headers["X-Adbreak-Gap-Seconds"] = f"{result.timeline.gap_s:.3f}"
    response.headers["Cache-Control"] = "no-store"
    return response


# ---------------------------------------------------------------------------------------------------- dataset
def _plan(args: dict[str, str]) -> tuple[dataset.Plan, str | None, float | None]:
    device = _device(args, required=False)
    start, end = _times(args, required=False)
    margin = _number(args, "margin", dataset.DEFAULT_MARGIN_S)
    try:
        dataset.check_margin(margin)
    except dataset.DatasetError as exc:
        raise BadRequest(str(exc)) from None
    rt = runtime()
    with rt.store._read() as conn:
        plan = dataset.load_plan(conn, rt.settings.data_dir, device=device, start=start, end=end, margin_s=margin)
    return plan, device, start


@bp.get("/dataset/summary")
def dataset_summary():
    plan, _, _ = _plan(_params(("device", "start", "end", "margin")))
    return jsonify(plan.summary)


@bp.get("/dataset")
def dataset_zip():
    plan, device, start = _plan(_params(("device", "start", "end", "margin")))
    if plan.problem is not None:
        raise (NotFound if not plan.items else Conflict)(plan.problem)
    name = dataset.dataset_name(device, start, time.time())
    spool = tempfile.TemporaryFile(prefix="adbreak-dataset-", suffix=".zip")  # noqa: SIM115 (the response closes it)
    try:
        dataset.write_zip(plan, spool, name)
        spool.seek(0)
    except dataset.DatasetError as exc:
        spool.close()
        raise Conflict(str(exc)) from None
    except BaseException:
        spool.close()
        raise
    response = send_file(spool, mimetype="application/zip", as_attachment=True, download_name=f"{name}.zip",
                         max_age=0)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Adbreak-Frames"] = str(plan.summary["frames"])
    return response
