"""Helpers for the export and dataset tests: a device's history through the real store, reviewed segments and
keyframes (rows and JPEG files) as the server lays them out."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
from sqlalchemy import Engine, insert, select, update

from adbreak.wire import Availability, EventPayload, EventType, StatePayload, new_event_id
from server.models import Device, Keyframe, Segment
from server.store import SegmentStore

DEVICES = Device.__table__
SEGMENTS = Segment.__table__
KEYFRAMES = Keyframe.__table__
MODEL = "test-20261123"


def history(store: SegmentStore, device: str, t0: float, changes: list[tuple[float, str]], *,
            offline: tuple[float, float] | None = None, seq: int = 0) -> int:
    """Feed the store what an edge agent would send: ``online`` and a state at ``t0`` (label of ``changes[0]``), then
    one event per later change ``(seconds after t0, new label)``; ``offline=(a, b)``: the device goes offline at
    ``t0 + a`` and comes back (online, state) at ``t0 + b``. Returns the last sequence number used."""
    first = changes[0][1]
    store.availability(device, Availability.ONLINE, t0)
    store.state(StatePayload(v=1, device=device, label=first, since_ts=t0, since_stream_t=0.0, confidence=0.9,
                             model_version=MODEL, ts=t0))
    label = first
    for at, new in changes[1:]:
        if offline is not None and offline[0] <= at:
            store.touch(device, t0 + offline[0])
            store.availability(device, Availability.OFFLINE, t0 + offline[0])
            store.availability(device, Availability.ONLINE, t0 + offline[1])
            store.state(StatePayload(v=1, device=device, label=label, since_ts=t0 + offline[1],
                                     since_stream_t=offline[1], confidence=0.9, model_version=MODEL,
                                     ts=t0 + offline[1]))
            offline = None
        seq += 1
        store.ingest_event(EventPayload(v=1, device=device, event_id=new_event_id(), seq=seq,
                                        type=EventType.AD_START if new == "ad" else EventType.AD_END,
                                        boundary_ts=t0 + at, decided_ts=t0 + at + 1.0, boundary_stream_t=at,
                                        decided_stream_t=at + 1.0, confidence=0.95, model_version=MODEL),
                           t0 + at + 1.0)
        label = new
    return seq


def add_device(engine: Engine, name: str) -> int:
    with engine.begin() as conn:
        found = conn.scalar(select(DEVICES.c.id).where(DEVICES.c.name == name))
        if found is not None:
            return found
        return conn.execute(insert(DEVICES).values(name=name, last_seq=0, muted=False)).inserted_primary_key[0]


def add_segment(engine: Engine, device: str, start: float, end: float | None, label: str, *,
                review: str | None = None, detected: str | None = None) -> int:
    """A segment row as the store (and, for ``review``, a correction) leaves it."""
    dev = add_device(engine, device)
    with engine.begin() as conn:
        return conn.execute(insert(SEGMENTS).values(
            device_id=dev, label=label, start=start, end=end, status="open" if end is None else "closed",
            confidence=0.9, model_version=MODEL, detected_label=detected, review=review,
            reviewed_by="admin" if review else None, reviewed_ts=time.time() if review else None,
        )).inserted_primary_key[0]


def review(engine: Engine, segment_id: int, review_value: str, *, label: str | None = None,
           detected: str | None = None) -> None:
    values: dict = {"review": review_value, "reviewed_by": "admin", "reviewed_ts": time.time()}
    if label is not None:
        values["label"] = label
    if detected is not None:
        values["detected_label"] = detected
    with engine.begin() as conn:
        conn.execute(update(SEGMENTS).where(SEGMENTS.c.id == segment_id).values(values))


def jpeg(rgb: np.ndarray, quality: int = 80) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()


def solid(color: tuple[int, int, int], size: tuple[int, int] = (64, 36)) -> np.ndarray:
    return np.full((size[1], size[0], 3), color, np.uint8)


def add_keyframe(engine: Engine, data_dir: Path, device: str, ts: float, image: bytes, *, label: str | None,
                 kind: str = "sample", p_ad: float | None = None, size: tuple[int, int] = (64, 36),
                 write_file: bool = True, path: str | None = None) -> str:
    """A keyframe row and its JPEG under ``data_dir``, laid out as ``server/keyframes.py`` writes them
    (``keyframes/<device>/<YYYY-MM-DD>/<frame_id>.jpg``)."""
    dev = add_device(engine, device)
    frame_id = new_event_id()
    rel = path or f"keyframes/{device}/{time.strftime('%Y-%m-%d', time.gmtime(ts))}/{frame_id}.jpg"
    if write_file:
        target = data_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(image)
    with engine.begin() as conn:
        conn.execute(insert(KEYFRAMES).values(
            frame_id=frame_id, device_id=dev, ts=ts, kind=kind, reason=None, p_ad=p_ad, label=label,
            model_version=MODEL, path=rel, bytes=len(image), width=size[0], height=size[1], received=ts + 0.5))
    return rel
