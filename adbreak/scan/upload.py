"""A scanned recording sent to the server for review (``adbreak scan RECORDING --server URL --token T``).

:func:`send_recording` puts the :class:`~adbreak.scan.ScanResult` on the server as ``PUT /api/v1/recordings/<file
name>`` (duration, frame rate, segments, the recording's details and how the scan went), then its thumbnails in
batches of :data:`KEYFRAMES_PER_REQUEST` to ``POST /api/v1/recordings/<file name>/keyframes``: every body stays a
few MB however long the recording (a 2-hour one at a picture every 10 s is ~720 pictures, 15 requests). The
recording then shows in the dashboard's Review view under its file name (``docs/api.md``, "Recordings").

Sending the same scan again changes nothing (the server keeps the review; pictures already there are skipped); a
different scan of a recording nobody reviewed yet replaces it; one whose segments were reviewed is refused (409)
unless ``replace=True``, which only an admin's token may do.

Only the standard library (``urllib``): ``adbreak scan`` runs where only the core package is installed, and
``requests`` is an extra of the server. Every failure is one :class:`~adbreak.errors.AdbreakError` line: the server
unreachable, the token refused, or the server's own ``{"error": ...}`` with its status.
"""

from __future__ import annotations

import base64
import json
import math
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from adbreak import __version__
from adbreak.errors import AdbreakError
from adbreak.scan.result import ScanResult

TOKEN_ENV = "ADBREAK_TOKEN"
"""The API token when none is given (kept out of the command line, where ``ps`` shows it)."""
DEFAULT_TIMEOUT_S = 30.0
KEYFRAMES_PER_REQUEST = 50
"""Pictures per request (the server takes at most 50)."""
MAX_KEYFRAME_B64 = 96 * 1024
"""A picture larger than this in base64 is left out (``adbreak.wire.MAX_KEYFRAME_BYTES``, the server's limit)."""
MAX_META_CHARS = 8000
"""``info`` and ``scan`` stay under the server's 8,192 characters of JSON each."""
FALLBACK_FPS = 29.97


def resolve_token(token: str | None) -> str:
    """``token``, else ``$ADBREAK_TOKEN``; one line saying how to get one when neither is set."""
    value = (token or os.environ.get(TOKEN_ENV) or "").strip()
    if not value:
        raise AdbreakError(f"no API token for the server: give --token or set {TOKEN_ENV} (make one under Account in "
                           "the dashboard, or with `adbreak user token NAME`)")
    return value


def server_base(url: str) -> str:
    """``http(s)://host[:port][/prefix]`` without a trailing ``/`` or ``/api/v1``."""
    parsed = urllib.parse.urlsplit(url.strip())
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise AdbreakError(f"--server {url!r}: expected the server's address, e.g. http://192.168.1.10:8080")
    path = parsed.path.rstrip("/")
    if path.endswith("/api/v1"):
        path = path[: -len("/api/v1")]
    return urllib.parse.urlunsplit((parsed.scheme, parsed.netloc, path, "", ""))


def _plain(value: Any) -> Any:
    """``value`` as plain JSON: numbers (numpy's too) finite or null, paths and other objects as their text."""
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_plain(v) for v in value]
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        return _plain(value.tolist())
    return str(value)


def _bounded(meta: dict[str, Any]) -> dict[str, Any]:
    """``meta`` within :data:`MAX_META_CHARS` as JSON: long values are left out first."""
    out = _plain(meta)
    if not isinstance(out, dict):
        return {}
    while out and len(json.dumps(out, separators=(",", ":"), ensure_ascii=False)) > MAX_META_CHARS:
        longest = max(out, key=lambda k: len(json.dumps(out[k], ensure_ascii=False)))
        del out[longest]
        out["truncated"] = True
    return out


def _finite(x: float, default: float = 0.0) -> float:
    return float(x) if math.isfinite(float(x)) else default


def recording_body(result: ScanResult, *, name: str | None = None, scanned_at: float | None = None) -> dict[str, Any]:
    """The JSON of ``PUT /api/v1/recordings/<name>`` for ``result`` (times rounded to the millisecond)."""
    duration = round(_finite(result.duration_s), 3)
    fps = _finite(result.fps)
    segments = [{"start": round(s.start, 3), "end": round(s.end, 3), "label": s.label} for s in result.segments]
    if segments:
        segments[0]["start"] = 0.0
        segments[-1]["end"] = duration
    info = dict(result.info)
    model_version = info.get("model_version") if isinstance(info.get("model_version"), str) else None
    return {
        "name": name or result.recording.name,
        "duration_s": duration,
        "fps": round(fps, 3) if fps > 0 else FALLBACK_FPS,
        "segments": segments,
        "info": _bounded(info),
        "scan": _bounded({
            "mode": result.mode,
            "frames_analysed": result.frames_analysed,
            "timings": {k: round(v, 3) for k, v in result.timings.items()},
            "gaps": [[round(a, 3), round(b, 3)] for a, b in result.gaps],
            "warnings": list(result.warnings)[:20],
            "ad_breaks": len(result.ad_breaks),
        }),
        "scanned_at": round(time.time() if scanned_at is None else scanned_at, 3),
        **({"model_version": model_version[:256]} if model_version else {}),
    }


def keyframe_batches(result: ScanResult) -> tuple[list[list[dict[str, Any]]], int]:
    """The thumbnails as ``POST .../keyframes`` bodies' lists (one picture per millisecond, in time order, within
    the recording) and how many were left out as too large."""
    duration = round(_finite(result.duration_s), 3)
    seen: set[int] = set()
    frames: list[dict[str, Any]] = []
    skipped = 0
    for t, jpeg in sorted(result.thumbnails, key=lambda th: th[0]):
        t = min(max(round(_finite(t), 3), 0.0), duration)
        ms = int(round(t * 1000))
        if ms in seen:
            continue
        data = base64.b64encode(bytes(jpeg)).decode("ascii")
        if len(data) > MAX_KEYFRAME_B64:
            skipped += 1
            continue
        seen.add(ms)
        frames.append({"t": t, "jpeg": data})
    return [frames[i:i + KEYFRAMES_PER_REQUEST] for i in range(0, len(frames), KEYFRAMES_PER_REQUEST)], skipped


def _call(method: str, url: str, token: str, body: dict[str, Any], *, timeout: float, what: str) -> dict[str, Any]:
    data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    req = urllib.request.Request(url, data=data, method=method, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json", "Accept": "application/json",
        "User-Agent": f"adbreak/{__version__}"})
    server = urllib.parse.urlsplit(url).netloc
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:  # noqa: S310 - http(s) only (server_base)
            raw = response.read()
    except urllib.error.HTTPError as exc:
        raise AdbreakError(_refusal(exc, server, what)) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, socket.timeout | TimeoutError):
            reason = f"no answer within {timeout:g} s"
        raise AdbreakError(f"cannot reach the server at {server}: {reason}") from None
    try:
        answer = json.loads(raw)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise AdbreakError(f"the server at {server} answered {what} with something other than JSON: is --server the "
                           "adbreak server's address?")
    return answer


def _refusal(exc: urllib.error.HTTPError, server: str, what: str) -> str:
    try:
        raw = exc.read()
    except OSError:
        raw = b""
    try:
        error = json.loads(raw).get("error")
    except (ValueError, AttributeError):
        error = None
    if not isinstance(error, str) or not error:
        error = " ".join(raw.decode("utf-8", "replace").split())[:200] or exc.reason
    if exc.code == 401:
        return (f"the server at {server} refused the API token ({exc.code}: {error}): make one under Account in the "
                f"dashboard or with `adbreak user token NAME`")
    return f"the server at {server} refused {what} ({exc.code}): {error}"


def send_recording(result: ScanResult, url: str, token: str | None, *, timeout: float = DEFAULT_TIMEOUT_S,
                   replace: bool = False, name: str | None = None) -> dict[str, Any]:
    """Send ``result`` and its thumbnails to the server at ``url`` with the API token ``token`` (``None`` or empty:
    ``$ADBREAK_TOKEN``). ``replace`` throws a review of an earlier, different scan away (an admin's token only).

    Returns the server's ``Recording`` (``docs/api.md``) with ``change`` (``created``, ``replaced`` or
    ``unchanged``), ``keyframes`` (how many it holds now), ``keyframes_sent``, ``keyframes_stored``,
    ``keyframes_skipped`` (too large to send) and ``review_url`` (the dashboard's Review view of it). Raises
    :class:`AdbreakError` (one line) when the server cannot be reached, refuses the token, or refuses the recording.
    """
    token = resolve_token(token)
    base = server_base(url)
    body = recording_body(result, name=name)
    quoted = urllib.parse.quote(body["name"], safe="")
    what = f"recording {body['name']!r}"
    put_url = f"{base}/api/v1/recordings/{quoted}" + ("?replace=1" if replace else "")
    answer = _call("PUT", put_url, token, body, timeout=timeout, what=what)
    batches, skipped = keyframe_batches(result)
    sent = stored = 0
    total = answer.get("keyframes")
    for frames in batches:
        got = _call("POST", f"{base}/api/v1/recordings/{quoted}/keyframes", token, {"keyframes": frames},
                    timeout=timeout, what=f"the pictures of {what}")
        sent += len(frames)
        stored += int(got.get("stored", 0))
        total = got.get("keyframes", total)
    device = answer.get("device") or ""
    return {**answer, "keyframes": total, "keyframes_sent": sent, "keyframes_stored": stored,
            "keyframes_skipped": skipped,
            "review_url": f"{base}/#/history?{urllib.parse.urlencode({'device': device})}"}
