"""Keyframes: the edge's small JPEGs, stored as files with a row each, kept within a size and an age limit.

* :meth:`KeyframeStore.on_keyframe` (the ingest worker, inside a write batch) takes a parsed
  :class:`~adbreak.wire.KeyframePayload` (base64 and the JPEG header already checked by the wire contract), decodes
  the JPEG once more in full (OpenCV; a picture that does not decode, or of another size, is ``bad_payload``), writes
  it atomically to ``<data_dir>/keyframes/<device>/<YYYY-MM-DD>/<frame_id>.jpg`` (the UTC day of the frame) and
  inserts its ``keyframes`` row. A ``frame_id`` already stored is a ``duplicate`` (QoS 1 may deliver twice); a device
  that never announced itself is ``unknown_device``, as for events. The file is written before the row, so a row
  never lacks its file; a file whose row rolled back is an orphan, removed by the sweep at start.
* Retention (:meth:`KeyframeStore.retention`, a job on the ingest worker: at start, then every
  :data:`RETENTION_INTERVAL_S`): rows received more than ``keyframes_max_days`` ago go, then the oldest until the
  total is within ``keyframes_max_mb`` (MB = 10^6 bytes); their files are removed after the commit. The pictures of
  recordings sent for review (``server.recordings``) are neither counted nor deleted: they go with the recording.
* Reads for the API: :meth:`KeyframeStore.keyframes` and :meth:`KeyframeStore.keyframe`.

The health counters count ``keyframes_stored`` and ``keyframes_deleted``. No Flask, no paho.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, insert, select

from adbreak.atomic import write_bytes
from adbreak.wire import KeyframePayload
from server.counters import Counters, RateLimitedLog
from server.models import Device, Keyframe
from server.periodic import PeriodicJob
from server.recordings import recording_device_ids
from server.store import MAX_LIMIT, SegmentStore

log = logging.getLogger(__name__)

KEYFRAMES = Keyframe.__table__
DEVICES = Device.__table__
RETENTION_INTERVAL_S = 60.0
RETENTION_CHUNK = 2000
"""Rows deleted per retention job at most (the job queues another while more are due): the writer stays free."""
ORPHAN_MIN_AGE_S = 600.0
"""A file without a row is removed by the start-up sweep only when older than this (its row may be on its way)."""
_SANE_TS = (946684800.0, 4102444800.0)  # 2000-01-01 .. 2100-01-01: a frame time usable for the day folder
_FIELDS = ("ts", "kind", "reason", "p_ad", "label", "model_version", "width", "height", "bytes")

class BadKeyframe(ValueError):
    """A keyframe whose JPEG does not decode to its stated size."""


def check_jpeg(data: bytes, width: int, height: int) -> None:
    """Decode the JPEG in full; :class:`BadKeyframe` unless it decodes, whole, to ``width`` x ``height``."""
    import cv2
    import numpy as np

    if not data.rstrip(b"\0").endswith(b"\xff\xd9"):
        raise BadKeyframe("the JPEG is cut short (no end-of-image marker)")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise BadKeyframe("the JPEG does not decode")
    if image.shape[1] != width or image.shape[0] != height:
        raise BadKeyframe(f"the JPEG decodes to {image.shape[1]}x{image.shape[0]}, not {width}x{height}")


def keyframe_url(keyframe_id: int) -> str:
    return f"/api/v1/keyframes/{keyframe_id}.jpg"


def keyframe_dict(row: Any, device: str) -> dict[str, Any]:
    """The API's ``Keyframe``."""
    return {"id": row["id"], "device": device, **{k: row[k] for k in _FIELDS}, "url": keyframe_url(row["id"])}


class KeyframeStore:
    def __init__(self, store: SegmentStore, data_dir: str | os.PathLike[str], *, max_mb: float, max_days: float,
                 counters: Counters | None = None, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.data_dir = Path(data_dir)
        self.root = self.data_dir / "keyframes"
        self.max_bytes = int(max_mb * 1_000_000)
        self.max_age_s = float(max_days) * 86400.0
        self.counters = counters if counters is not None else store.counters
        self._clock = clock
        self._rejects = RateLimitedLog(log)
        self._job: PeriodicJob | None = None

    # ------------------------------------------------------------------ ingest (the worker, inside a batch)
    def on_keyframe(self, batch: Any, payload: KeyframePayload, *, retained: bool, received: float) -> str | None:
        """Store one keyframe; the reject reason, if any (counted after the commit)."""
        device = payload.device
        # a live one is a sign of life (and creates an allowlisted device); a retained one only if already known
        known = batch.device_id(device) is not None if retained else batch.touch(device, received)
        if not known:
            return self._reject(batch, "unknown_device", payload)
        exists = batch.conn.execute(select(KEYFRAMES.c.id).where(KEYFRAMES.c.frame_id == payload.frame_id)).first()
        if exists is not None:
            return self._reject(batch, "duplicate", payload)
        data = payload.data
        try:
            check_jpeg(data, payload.width, payload.height)
        except BadKeyframe as exc:
            batch.after_commit(log.warning, "keyframe %s from %s: %s", payload.frame_id, device, str(exc))
            return self._reject(batch, "bad_payload", payload)
        rel = self._relpath(device, payload, received)
        path = self.data_dir / rel
        write_bytes(path, data)
        try:
            batch.conn.execute(insert(KEYFRAMES), {
                "frame_id": payload.frame_id, "device_id": batch.device_id(device), "ts": payload.ts,
                "kind": payload.kind, "reason": payload.reason, "p_ad": payload.p_ad, "label": payload.label,
                "model_version": payload.model_version, "path": rel.as_posix(), "bytes": len(data),
                "width": payload.width, "height": payload.height, "received": received,
            })
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        batch.after_commit(self.counters.incr, "keyframes_stored")
        return None

    def _reject(self, batch: Any, reason: str, payload: KeyframePayload) -> str:
        batch.after_commit(self.counters.reject, reason)
        level = logging.DEBUG if reason == "duplicate" else logging.WARNING
        batch.after_commit(self._rejects.log, level, reason, "keyframe %s from %s rejected: %s", payload.frame_id,
                           payload.device, reason)
        return reason

    @staticmethod
    def _relpath(device: str, payload: KeyframePayload, received: float) -> Path:
        ts = payload.ts if _SANE_TS[0] <= payload.ts <= _SANE_TS[1] else received
        day = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")
        return Path("keyframes") / device / day / f"{payload.frame_id}.jpg"

    # ------------------------------------------------------------------ retention (a job on the worker)
    def retention(self, batch: Any, resubmit: Callable[[Callable[[Any], object]], None] | None = None) -> int:
        """Delete the keyframes beyond the age and size limits (at most :data:`RETENTION_CHUNK`; queues another
        round through ``resubmit`` while more are due). Returns how many rows it deleted."""
        conn = batch.conn
        cutoff = self._clock() - self.max_age_s
        live = KEYFRAMES.c.device_id.not_in(recording_device_ids())  # a recording's go only with it
        victims = conn.execute(
            select(KEYFRAMES.c.id, KEYFRAMES.c.path, KEYFRAMES.c.bytes).where(KEYFRAMES.c.received < cutoff, live)
            .order_by(KEYFRAMES.c.received, KEYFRAMES.c.id).limit(RETENTION_CHUNK)
        ).all()
        total = int(conn.execute(select(func.coalesce(func.sum(KEYFRAMES.c.bytes), 0)).where(live)).scalar_one())
        total -= sum(v.bytes for v in victims)
        if total > self.max_bytes and len(victims) < RETENTION_CHUNK:
            rows = conn.execute(
                select(KEYFRAMES.c.id, KEYFRAMES.c.path, KEYFRAMES.c.bytes).where(KEYFRAMES.c.received >= cutoff, live)
                .order_by(KEYFRAMES.c.received, KEYFRAMES.c.id).limit(RETENTION_CHUNK - len(victims))
            )
            for row in rows:
                if total <= self.max_bytes:
                    break
                victims.append(row)
                total -= row.bytes
        if not victims:
            return 0
        ids = [v.id for v in victims]
        for start in range(0, len(ids), 500):
            conn.execute(delete(KEYFRAMES).where(KEYFRAMES.c.id.in_(ids[start:start + 500])))
        batch.after_commit(self._remove_files, [v.path for v in victims])
        batch.after_commit(self.counters.incr, "keyframes_deleted", len(victims))
        batch.after_commit(log.info, "keyframe retention: %d deleted (%.1f MB kept, limit %.1f MB, %.3g days)",
                           len(victims), max(total, 0) / 1e6, self.max_bytes / 1e6, self.max_age_s / 86400)
        if len(victims) >= RETENTION_CHUNK and resubmit is not None:
            batch.after_commit(resubmit, lambda b: self.retention(b, resubmit))
        return len(victims)

    def _remove_files(self, relpaths: list[str]) -> None:
        folders: set[Path] = set()
        for rel in relpaths:
            path = self.data_dir / rel
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("cannot remove keyframe %s: %s", path, exc)
            folders.add(path.parent)
        for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
            for f in (folder, folder.parent):  # the day folder, then the device folder, when empty
                if f == self.root or self.root not in f.parents:
                    continue
                with contextlib.suppress(OSError):
                    f.rmdir()

    def sweep_orphans(self) -> int:
        """Remove files under the keyframe folder that no row names (older than :data:`ORPHAN_MIN_AGE_S`: a file
        is written just before its row); returns how many."""
        if not self.root.is_dir():
            return 0
        with self.store._read() as conn:
            known = set(conn.scalars(select(KEYFRAMES.c.path)))
        limit = self._clock() - ORPHAN_MIN_AGE_S
        removed = 0
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                path = Path(dirpath) / name
                rel = path.relative_to(self.data_dir).as_posix()
                try:
                    if rel in known or path.stat().st_mtime > limit:
                        continue
                    path.unlink()
                    removed += 1
                except OSError:
                    continue
        if removed:
            log.info("removed %d keyframe files that no row named", removed)
        return removed

    # ------------------------------------------------------------------ the periodic job
    def start(self, submit: Callable[[Callable[[Any], object]], None],
              interval_s: float = RETENTION_INTERVAL_S) -> None:
        """Sweep orphans, then queue :meth:`retention` on the ingest worker now and every ``interval_s``."""
        if self._job is not None:
            return

        def queue_retention() -> None:
            submit(lambda b: self.retention(b, submit))

        self._job = PeriodicJob("adbreak-keyframe-retention", interval_s, queue_retention, before=self.sweep_orphans)
        self._job.start()

    def stop(self) -> None:
        if self._job is not None:
            self._job.stop()
            self._job = None

    # ------------------------------------------------------------------ reads
    def keyframes(self, *, device: str | None = None, start: float | None = None, end: float | None = None,
                  kind: str | None = None, limit: int = 1000) -> list[dict]:
        """Keyframes with ``ts`` in ``[start, end)``, oldest first."""
        q = (select(KEYFRAMES, DEVICES.c.name.label("device_name"))
             .join_from(KEYFRAMES, DEVICES, KEYFRAMES.c.device_id == DEVICES.c.id))
        if device is not None:
            q = q.where(DEVICES.c.name == device)
        if start is not None:
            q = q.where(KEYFRAMES.c.ts >= start)
        if end is not None:
            q = q.where(KEYFRAMES.c.ts < end)
        if kind is not None:
            q = q.where(KEYFRAMES.c.kind == kind)
        q = q.order_by(KEYFRAMES.c.ts, KEYFRAMES.c.id).limit(min(limit, MAX_LIMIT))
        with self.store._read() as conn:
            return [keyframe_dict(r, r["device_name"]) for r in conn.execute(q).mappings()]

    def keyframe(self, keyframe_id: int) -> tuple[dict, Path] | None:
        """A keyframe and its file's path; ``None`` when no such row."""
        q = (select(KEYFRAMES, DEVICES.c.name.label("device_name"))
             .join_from(KEYFRAMES, DEVICES, KEYFRAMES.c.device_id == DEVICES.c.id)
             .where(KEYFRAMES.c.id == keyframe_id))
        with self.store._read() as conn:
            row = conn.execute(q).mappings().first()
        if row is None:
            return None
        return keyframe_dict(row, row["device_name"]), self.data_dir / row["path"]

    def total_bytes(self) -> int:
        with self.store._read() as conn:
            return int(conn.execute(select(func.coalesce(func.sum(KEYFRAMES.c.bytes), 0))).scalar_one())
