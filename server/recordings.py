"""Recordings sent for review: a file that ``adbreak scan`` scanned, stored so that it is reviewed like a device.

A recording is a row of ``recordings`` (its file name, duration, frame rate, what the scan found out) and a device
row of its own named :func:`recording_key` ``rec:<slug>-<hash>``: a name that no MQTT device can have (``:`` is not in
``adbreak.wire.DEVICE_RE``), so no edge agent ever writes into it, and which ``GET /api/v1/devices`` and Socket.IO's
device list leave out. Its segments and keyframes are ordinary rows of ``segments`` and ``keyframes`` under that
device, their times in seconds from the recording's start (epoch 0 is its first frame): review and corrections
(``server.review``), exports (``server.export_data``) and the training set (``server.dataset``) read them as they
read a device's, and no time window of live data (statistics, rules, retention by age) ever overlaps them. The
retention jobs leave them alone: a recording goes when it is deleted (``DELETE /api/v1/recordings/<name>``). What
throws a review away (deleting, or replacing, a recording some of whose segments were reviewed) is for admins.

Layers, as elsewhere: pure checks and names (:func:`check_name`, :func:`tile`, :func:`recording_key`,
:func:`frame_id`), then the writes, each run inside a job of the single writer (``runtime.ingest.run``) on its
connection: :func:`store_upload`, :func:`add_keyframes`, :func:`delete_recording`; and the reads
(:func:`list_recordings`, :func:`get_recording`). No Flask here: ``server.api_recordings`` turns
:class:`RecordingError` into 400 / 403 / 404 / 409.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import contextlib
import hashlib
import json
import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Connection, delete, func, insert, select, update

from adbreak.atomic import write_bytes
from adbreak.wire import DEVICE_RE, MAX_KEYFRAME_BYTES, MAX_KEYFRAME_SIDE
from server.models import KEYFRAME_KINDS, LABELS, Correction, Device, Keyframe, Recording, Segment

KEY_PREFIX = "rec:"
"""Device names of recordings start with this; MQTT device names cannot (``DEVICE_RE`` has no ``:``)."""
KEY_RE = re.compile(r"^rec:[a-z0-9][a-z0-9._-]{0,59}$")
NAME_MAX = 255
MAX_DURATION_S = 7 * 86400.0
"""The longest recording taken (a week)."""
MAX_FPS = 1000.0
MAX_SEGMENTS = 10000
MAX_KEYFRAMES_PER_REQUEST = 50
"""Keyframes per ``POST .../keyframes``: each request's body stays under ~5 MB, each job of the writer short."""
MAX_META_CHARS = 8192
"""``info`` and ``scan`` each at most this long as JSON."""
TILE_SLACK_S = 0.01
"""Segment edges (and the ends at 0 and the duration) this close are taken as one (the files round to ms)."""
KEYFRAME_FOLDER = "_recordings"
"""Under ``<data_dir>/keyframes/``: no device name starts with ``_``."""
MAX_UPLOAD_BYTES = 4 * 1024 * 1024
"""Body limit of ``PUT /recordings/<name>`` (10,000 segments are about 0.6 MB)."""
MAX_KEYFRAMES_BYTES = MAX_KEYFRAMES_PER_REQUEST * (MAX_KEYFRAME_BYTES + 256) + 4096
"""Body limit of ``POST /recordings/<name>/keyframes``."""

DEVICES = Device.__table__
SEGMENTS = Segment.__table__
KEYFRAMES = Keyframe.__table__
RECORDINGS = Recording.__table__
CORRECTIONS = Correction.__table__

Kind = Literal["invalid", "not_found", "conflict", "forbidden"]


class RecordingError(Exception):
    """A request about a recording that cannot be done: ``kind`` is ``invalid`` (400), ``forbidden`` (403),
    ``not_found`` (404) or ``conflict`` (409)."""

    def __init__(self, kind: Kind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


# ---------------------------------------------------------------------------------------------------- names
def is_recording_key(name: str | None) -> bool:
    """Whether ``name`` (a device row's name) is a recording's."""
    return isinstance(name, str) and name.startswith(KEY_PREFIX)


def source_name_ok(name: str) -> bool:
    """A device's name or a recording's key: what the ``device`` query parameters take."""
    return bool(DEVICE_RE.match(name) or KEY_RE.match(name))


def check_name(name: str) -> str:
    """A recording's file name: 1..255 characters, no folder (``/``, ``\\``), no control characters."""
    if not isinstance(name, str) or not name or len(name) > NAME_MAX:
        raise RecordingError("invalid", f"a recording's name is its file name: 1 to {NAME_MAX} characters")
    if "/" in name or "\\" in name or name in (".", ".."):
        raise RecordingError("invalid", f"name {name!r}: give the file name alone, without its folder")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise RecordingError("invalid", f"name {name!r} holds control characters")
    if name != name.strip():
        raise RecordingError("invalid", f"name {name!r} begins or ends with white space")
    return name


def recording_key(name: str, extra: int = 0) -> str:
    """``rec:<slug of the name>-<8 hex of its sha256>``, e.g. ``rec:the-show-s01e02-ts-1f0c9a2b`` (``extra`` more hex
    digits when another recording already has that key)."""
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii").lower()
    slug = re.sub(r"[^a-z0-9]+", "-", text).strip("-")[:40].rstrip("-") or "recording"
    return f"{KEY_PREFIX}{slug}-{hashlib.sha256(name.encode('utf-8')).hexdigest()[:8 + extra]}"


def frame_id(key: str, t: float) -> str:
    """The keyframe id of a recording's picture at ``t``: the same picture sent twice is a duplicate."""
    return f"r{hashlib.sha256(key.encode()).hexdigest()[:12]}-{int(round(t * 1000))}"


def keyframe_relpath(key: str, fid: str) -> str:
    return f"keyframes/{KEYFRAME_FOLDER}/{key[len(KEY_PREFIX):]}/{fid}.jpg"


def file_stem(name: str) -> str:
    """The recording's name without its extension, in characters safe for a download's file name."""
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "recording"


# ---------------------------------------------------------------------------------------------------- segments
@dataclass(frozen=True, slots=True)
class Tile:
    start: float
    end: float
    label: str
    confidence: float | None = None


def tile(segments: Sequence[dict], duration_s: float) -> list[Tile]:
    """The uploaded segments (dicts with ``start``, ``end``, ``label``, optional ``confidence``), checked to tile
    ``[0, duration_s]`` in order, edges within :data:`TILE_SLACK_S` snapped together (so that neighbours share an
    edge exactly, as review needs); :class:`RecordingError` naming the first bad one."""
    if not segments:
        raise RecordingError("invalid", "segments: at least one segment")
    if len(segments) > MAX_SEGMENTS:
        raise RecordingError("invalid", f"segments: at most {MAX_SEGMENTS}")
    out: list[Tile] = []
    prev_end = 0.0
    for i, s in enumerate(segments):
        start, end, label = float(s["start"]), float(s["end"]), s["label"]
        if label not in LABELS:
            raise RecordingError("invalid", f"segments.{i}.label: {label!r}: the server stores {' and '.join(LABELS)}")
        if abs(start - prev_end) > TILE_SLACK_S:
            where = "the recording starts at 0" if i == 0 else f"segments.{i - 1} ends at {prev_end:g}"
            raise RecordingError("invalid", f"segments.{i}: starts at {start:g} but {where}: the segments must tile "
                                 f"[0, duration_s] in order, without gaps or overlaps")
        if i == len(segments) - 1:
            if abs(end - duration_s) > TILE_SLACK_S:
                raise RecordingError("invalid", f"segments.{i}: the last segment ends at {end:g}, not at duration_s "
                                     f"{duration_s:g}")
            end = duration_s
        if not end > prev_end:
            raise RecordingError("invalid", f"segments.{i}: ends at {end:g}, not after its start {prev_end:g}")
        out.append(Tile(prev_end, end, label, s.get("confidence")))
        prev_end = end
    return out


def digest(duration_s: float, tiles: Iterable[Tile]) -> str:
    body = [round(duration_s, 3), [[round(t.start, 3), round(t.end, 3), t.label,
                                    None if t.confidence is None else round(t.confidence, 4)] for t in tiles]]
    return hashlib.sha256(json.dumps(body, separators=(",", ":")).encode()).hexdigest()


def label_at(rows: Sequence[Any], t: float) -> str | None:
    """The label of the segment (rows with ``start``, ``end``, ``label``, oldest first) that holds ``t``."""
    starts = [r["start"] for r in rows]
    i = bisect.bisect_right(starts, t) - 1
    if i < 0:
        return rows[0]["label"] if rows else None
    return rows[i]["label"]


def breaks(rows: Iterable[Any]) -> list[tuple[float, float]]:
    """Ad breaks: runs of ad segments that touch (as the statistics count them)."""
    out: list[list[float]] = []
    for r in rows:
        if r["label"] != "ad" or r["end"] is None:
            continue
        if out and abs(r["start"] - out[-1][1]) <= 1e-3:
            out[-1][1] = r["end"]
        else:
            out.append([r["start"], r["end"]])
    return [(a, b) for a, b in out]


# ---------------------------------------------------------------------------------------------------- keyframes
@dataclass(frozen=True, slots=True)
class Frame:
    t: float
    data: bytes
    width: int
    height: int
    kind: str = "sample"
    p_ad: float | None = None


def decode_frame(index: int, t: float, jpeg_b64: str, *, kind: str = "sample", p_ad: float | None = None) -> Frame:
    """One uploaded picture: base64 within the wire's keyframe limit, a whole JPEG that decodes, at most
    ``MAX_KEYFRAME_SIDE`` on a side; :class:`RecordingError` naming ``keyframes.<index>`` otherwise."""
    import cv2
    import numpy as np

    where = f"keyframes.{index}"
    if kind not in KEYFRAME_KINDS:
        raise RecordingError("invalid", f"{where}.kind: {kind!r}: expected one of {', '.join(KEYFRAME_KINDS)}")
    if not (math.isfinite(t) and t >= 0):
        raise RecordingError("invalid", f"{where}.t: {t!r} is not a time in the recording (seconds from its start)")
    if len(jpeg_b64) > MAX_KEYFRAME_BYTES:
        raise RecordingError("invalid", f"{where}.jpeg: {len(jpeg_b64)} base64 characters; a keyframe has at most "
                             f"{MAX_KEYFRAME_BYTES}")
    try:
        data = base64.b64decode(jpeg_b64, validate=True)
    except (binascii.Error, ValueError):
        raise RecordingError("invalid", f"{where}.jpeg: not base64") from None
    if not data.startswith(b"\xff\xd8"):
        raise RecordingError("invalid", f"{where}.jpeg: not a JPEG")
    if not data.rstrip(b"\0").endswith(b"\xff\xd9"):
        raise RecordingError("invalid", f"{where}.jpeg: the JPEG is cut short (no end-of-image marker)")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise RecordingError("invalid", f"{where}.jpeg: the JPEG does not decode")
    height, width = image.shape[:2]
    if max(width, height) > MAX_KEYFRAME_SIDE:
        raise RecordingError("invalid", f"{where}.jpeg: {width}x{height}; a keyframe has at most "
                             f"{MAX_KEYFRAME_SIDE} pixels on a side")
    return Frame(t=t, data=data, width=int(width), height=int(height), kind=kind, p_ad=p_ad)


# ---------------------------------------------------------------------------------------------------- reads
def _json(text: str | None) -> dict:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _dicts(conn: Connection, rows: Sequence[Any]) -> list[dict]:
    ids = [r["device_id"] for r in rows]
    segs: dict[int, list[Any]] = {i: [] for i in ids}
    if ids:
        q = (select(SEGMENTS.c.device_id, SEGMENTS.c.label, SEGMENTS.c.start, SEGMENTS.c.end, SEGMENTS.c.review)
             .where(SEGMENTS.c.device_id.in_(ids)).order_by(SEGMENTS.c.device_id, SEGMENTS.c.start, SEGMENTS.c.id))
        for s in conn.execute(q).mappings():
            segs[s["device_id"]].append(s)
    frames: dict[int, int] = {}
    if ids:
        q = (select(KEYFRAMES.c.device_id, func.count()).where(KEYFRAMES.c.device_id.in_(ids))
             .group_by(KEYFRAMES.c.device_id))
        frames = {dev: int(n) for dev, n in conn.execute(q)}
    out = []
    for r in rows:
        mine = segs[r["device_id"]]
        ads = breaks(mine)
        out.append({
            "name": r["name"],
            "device": r["device_name"],
            "duration_s": r["duration_s"],
            "fps": r["fps"],
            "scanned_at": r["scanned_at"],
            "uploaded": r["uploaded"],
            "uploaded_by": r["uploaded_by"],
            "model_version": r["model_version"],
            "segments": len(mine),
            "ad_breaks": len(ads),
            "ad_s": round(float(sum(b - a for a, b in ads)), 3),
            "reviewed": sum(1 for s in mine if s["review"] is not None),
            "keyframes": frames.get(r["device_id"], 0),
            "info": _json(r["info"]),
            "scan": _json(r["scan"]),
        })
    return out


def _select():
    return (select(RECORDINGS, DEVICES.c.name.label("device_name"))
            .join_from(RECORDINGS, DEVICES, RECORDINGS.c.device_id == DEVICES.c.id))


def list_recordings(conn: Connection) -> list[dict]:
    """Every recording (``Recording`` of docs/api.md), by name."""
    return _dicts(conn, conn.execute(_select().order_by(RECORDINGS.c.name)).mappings().all())


def recording_names(conn: Connection) -> list[dict]:
    """``{"name", "device", "duration_s", "fps"}`` of every recording, by name: what a Review picker needs (cheap:
    no segment is read)."""
    q = (select(RECORDINGS.c.name, DEVICES.c.name.label("device"), RECORDINGS.c.duration_s, RECORDINGS.c.fps)
         .join_from(RECORDINGS, DEVICES, RECORDINGS.c.device_id == DEVICES.c.id).order_by(RECORDINGS.c.name))
    return [dict(r) for r in conn.execute(q).mappings()]


def find(conn: Connection, name: str) -> Any | None:
    return conn.execute(_select().where(RECORDINGS.c.name == name)).mappings().first()


def get_recording(conn: Connection, name: str) -> dict | None:
    row = find(conn, name)
    return None if row is None else _dicts(conn, [row])[0]


def duration_of_device(conn: Connection, device_id: int) -> float | None:
    """The duration of the recording whose device row is ``device_id``; ``None`` for a device."""
    return conn.execute(select(RECORDINGS.c.duration_s).where(RECORDINGS.c.device_id == device_id)).scalar()


def recording_device_ids():
    """The device ids of recordings, for ``column.not_in(...)`` (the retention jobs leave their rows alone)."""
    return select(RECORDINGS.c.device_id)


# ---------------------------------------------------------------------------------------------------- writes
@dataclass
class Upload:
    """A scanned recording as sent: checked, tiled."""

    name: str
    duration_s: float
    fps: float
    tiles: list[Tile]
    info: dict = field(default_factory=dict)
    scan: dict = field(default_factory=dict)
    scanned_at: float | None = None
    model_version: str | None = None

    @property
    def sha(self) -> str:
        return digest(self.duration_s, self.tiles)


@dataclass
class Stored:
    recording: dict
    change: Literal["created", "replaced", "unchanged"]
    removed_files: list[str] = field(default_factory=list)
    """Keyframe files (relative to the data folder) to remove once the transaction has committed."""


def meta_json(value: dict, name: str) -> str:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    if len(text) > MAX_META_CHARS:
        raise RecordingError("invalid", f"{name}: {len(text)} characters as JSON; at most {MAX_META_CHARS}")
    return text


def _free_key(conn: Connection, name: str) -> str:
    for extra in range(0, 9):
        key = recording_key(name, extra)
        if conn.execute(select(DEVICES.c.id).where(DEVICES.c.name == key)).first() is None:
            return key
    raise RecordingError("conflict", f"no free device name for recording {name!r}")


def _insert_segments(conn: Connection, device_id: int, up: Upload) -> None:
    conn.execute(insert(SEGMENTS), [
        {"device_id": device_id, "label": t.label, "start": t.start, "end": t.end, "confidence": t.confidence,
         "model_version": up.model_version, "status": "closed", "start_event_id": None, "end_event_id": None,
         "detected_label": None, "review": None, "reviewed_by": None, "reviewed_ts": None}
        for t in up.tiles])


def _drop_keyframes(conn: Connection, device_id: int) -> list[str]:
    paths = list(conn.scalars(select(KEYFRAMES.c.path).where(KEYFRAMES.c.device_id == device_id)))
    conn.execute(delete(KEYFRAMES).where(KEYFRAMES.c.device_id == device_id))
    return paths


def store_upload(conn: Connection, up: Upload, *, user: str, now: float, replace: bool = False,
                 admin: bool = False) -> Stored:
    """Create or update the recording ``up.name`` inside the caller's write transaction.

    New: its device row, its row and its segments (``created``). The same segments as the last upload: only the
    details change (``unchanged``: its review and keyframes stay). Other segments: they and the keyframes are
    replaced (``replaced``), unless a user reviewed some of its segments: then :class:`RecordingError` ``conflict``,
    or with ``replace`` the review goes too, which only an admin may do (``forbidden`` otherwise). The corrections
    made stay in the audit trail.
    """
    values = {"duration_s": up.duration_s, "fps": up.fps, "scanned_at": up.scanned_at, "uploaded": now,
              "uploaded_by": user, "model_version": up.model_version, "info": meta_json(up.info, "info"),
              "scan": meta_json(up.scan, "scan"), "segments_sha": up.sha}
    row = find(conn, up.name)
    if row is None:
        key = _free_key(conn, up.name)
        device_id = conn.execute(insert(DEVICES).values(name=key, last_seq=0, muted=False, auto_mute=False)
                                 ).inserted_primary_key[0]
        conn.execute(insert(RECORDINGS).values(device_id=device_id, name=up.name, **values))
        _insert_segments(conn, device_id, up)
        return Stored(get_recording(conn, up.name), "created")  # type: ignore[arg-type]
    device_id = row["device_id"]
    if row["segments_sha"] == up.sha and abs(row["duration_s"] - up.duration_s) < 1e-9:
        conn.execute(update(RECORDINGS).where(RECORDINGS.c.id == row["id"]).values(**values))
        return Stored(get_recording(conn, up.name), "unchanged")  # type: ignore[arg-type]
    reviewed = _reviewed(conn, device_id)
    if reviewed:
        if not replace:
            raise RecordingError("conflict", f"recording {up.name!r} has {reviewed} reviewed segment(s) and the new "
                                 "scan differs: send it with ?replace=1 to replace them (the review is lost, the "
                                 "corrections stay in the audit trail), or delete the recording first")
        if not admin:
            raise RecordingError("forbidden", f"recording {up.name!r} has {reviewed} reviewed segment(s): only an "
                                 "admin may replace them")
    removed = _drop_keyframes(conn, device_id)
    conn.execute(delete(SEGMENTS).where(SEGMENTS.c.device_id == device_id))
    _insert_segments(conn, device_id, up)
    conn.execute(update(RECORDINGS).where(RECORDINGS.c.id == row["id"]).values(**values))
    return Stored(get_recording(conn, up.name), "replaced", removed)  # type: ignore[arg-type]


def add_keyframes(conn: Connection, data_dir: str | Path, name: str, frames: Sequence[Frame], *,
                  now: float) -> tuple[dict, list[Path]]:
    """Store pictures of the recording ``name`` (files under ``data_dir``, then their rows) inside the caller's write
    transaction; a picture at a time already stored (to the millisecond) is a duplicate and skipped. Each gets the
    label of the segment that holds it (what the scan decided there). Returns ``({"name", "device",
    "stored", "duplicates", "keyframes"}, the files written)``: the caller removes those if the transaction fails."""
    row = find(conn, name)
    if row is None:
        raise RecordingError("not_found", f"no recording {name!r}: send it first (PUT /api/v1/recordings/<name>)")
    duration = row["duration_s"]
    for i, f in enumerate(frames):
        if f.t > duration + TILE_SLACK_S:
            raise RecordingError("invalid", f"keyframes.{i}.t: {f.t:g} is after the recording's end ({duration:g} s)")
    device_id, key = row["device_id"], row["device_name"]
    segs = conn.execute(select(SEGMENTS.c.start, SEGMENTS.c.end, SEGMENTS.c.label)
                        .where(SEGMENTS.c.device_id == device_id).order_by(SEGMENTS.c.start)).mappings().all()
    root = Path(data_dir)
    written: list[Path] = []
    stored = duplicates = 0
    seen: set[str] = set()
    try:
        for f in frames:
            fid = frame_id(key, f.t)
            if fid in seen or conn.execute(select(KEYFRAMES.c.id).where(KEYFRAMES.c.frame_id == fid)).first():
                duplicates += 1
                continue
            seen.add(fid)
            rel = keyframe_relpath(key, fid)
            path = root / rel
            write_bytes(path, f.data)
            written.append(path)
            conn.execute(insert(KEYFRAMES).values(
                frame_id=fid, device_id=device_id, ts=min(f.t, duration), kind=f.kind, reason=None, p_ad=f.p_ad,
                label=label_at(segs, f.t), model_version=row["model_version"], path=rel, bytes=len(f.data),
                width=f.width, height=f.height, received=now))
            stored += 1
    except BaseException:
        remove_files(written)
        raise
    total = conn.execute(select(func.count()).select_from(KEYFRAMES)
                         .where(KEYFRAMES.c.device_id == device_id)).scalar_one()
    return {"name": name, "device": key, "stored": stored, "duplicates": duplicates, "keyframes": int(total)}, written


def _reviewed(conn: Connection, device_id: int) -> int:
    return int(conn.execute(select(func.count()).select_from(SEGMENTS)
                            .where(SEGMENTS.c.device_id == device_id, SEGMENTS.c.review.is_not(None))).scalar_one())


def delete_recording(conn: Connection, name: str, *, admin: bool = False) -> tuple[str, list[str]]:
    """Delete the recording ``name``: its keyframes, corrections, segments, row and device row. One whose segments
    were reviewed only for an ``admin`` (``forbidden`` otherwise). Returns its device name and the keyframe files
    (relative to the data folder) to remove after the commit."""
    row = find(conn, name)
    if row is None:
        raise RecordingError("not_found", f"no recording {name!r}")
    device_id = row["device_id"]
    reviewed = _reviewed(conn, device_id)
    if reviewed and not admin:
        raise RecordingError("forbidden", f"recording {name!r} has {reviewed} reviewed segment(s): only an admin may "
                             "delete it (its review goes with it)")
    paths = _drop_keyframes(conn, device_id)
    conn.execute(delete(CORRECTIONS).where(CORRECTIONS.c.device_id == device_id))
    conn.execute(delete(SEGMENTS).where(SEGMENTS.c.device_id == device_id))
    conn.execute(delete(RECORDINGS).where(RECORDINGS.c.id == row["id"]))
    conn.execute(delete(DEVICES).where(DEVICES.c.id == device_id))
    return row["device_name"], paths


def remove_files(paths: Iterable[str | Path], data_dir: str | Path | None = None) -> None:
    """Remove keyframe files (relative to ``data_dir`` when given) and the recording's folder once empty."""
    folders: set[Path] = set()
    for p in paths:
        path = Path(data_dir) / p if data_dir is not None else Path(p)
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
        folders.add(path.parent)
    for folder in folders:
        if folder.parent.name == KEYFRAME_FOLDER:
            with contextlib.suppress(OSError):
                folder.rmdir()
