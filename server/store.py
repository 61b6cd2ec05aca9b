"""``SegmentStore``: devices, events, segments and rule firings in the database. Knows nothing of MQTT or Flask.

Every write is one transaction, serialised by a lock (one writer: SQLite allows no more, and a read-then-write
decision such as the sequence check must not interleave). Each write returns what changed as the JSON-ready dicts
that the API and Socket.IO send (``docs/api.md``), so the realtime layer pushes exactly what was stored.

Ingest rules (``docs/server.md``):

* an event id already stored is a ``duplicate``: nothing changes (QoS 1 may deliver twice);
* an event whose ``seq`` is at or below the device's last applied one is ``out_of_order``: not stored;
* an event from a device that never announced itself (no availability or state seen) is ``unknown_device``; with
  an allowlist, only listed devices are accepted, and they need not announce themselves first;
* ``ad_start`` closes the open program segment at ``boundary_ts`` and opens an ad segment; ``ad_end`` the reverse;
  an event of the open segment's own label is stored and changes no segment;
* a live state message opens a segment only when the device has none open (at start-up, after an interruption);
* ``offline`` / ``stopped`` interrupts the open segment: it ends at the device's last sign of life.

Segments of one device never overlap: a start before the previous end is moved to that end.

The schema is the ORM models' (``server.models``); the statements here are SQLAlchemy Core on their tables: the
ingest path runs for every event, and Core skips the ORM's unit-of-work bookkeeping.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, RowMapping, func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from adbreak.wire import Availability, EventPayload, StatePayload
from server.counters import Counters
from server.models import Device, Event, RuleFiring, Segment

log = logging.getLogger(__name__)

TOUCH_PERSIST_S = 5.0
"""A device's ``last_seen`` from telemetry is written to the database at most this often (kept exactly in memory)."""
MAX_LIMIT = 10000


# ---------------------------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class Change:
    """What one store call changed. ``rejected`` names the reason when nothing was applied."""

    device: dict | None = None
    """The device after the change (``Device`` of docs/api.md), when it changed."""
    closed: dict | None = None
    """A segment this call closed or interrupted."""
    opened: dict | None = None
    """A segment this call opened."""
    rejected: str | None = None

    @property
    def segments(self) -> tuple[dict, ...]:
        """Changed segments in the order they changed (closed first)."""
        return tuple(s for s in (self.closed, self.opened) if s is not None)


@dataclass(frozen=True)
class IngestResult(Change):
    """The outcome of :meth:`SegmentStore.ingest_event`: ``status`` is ``ingested`` or a reject reason."""

    status: str = "ingested"
    event: dict | None = None
    """The stored event (``Event`` of docs/api.md), when ingested."""

    @property
    def ingested(self) -> bool:
        return self.status == "ingested"


@dataclass(frozen=True)
class OpenSegment:
    device: str
    label: str
    start: float
    muted: bool


# ---------------------------------------------------------------------------------------------------- store
DEVICES = Device.__table__
EVENTS = Event.__table__
SEGMENTS = Segment.__table__
FIRINGS = RuleFiring.__table__


class SegmentStore:
    def __init__(self, sessions: sessionmaker[Session], *, allowlist: Iterable[str] | None = None,
                 counters: Counters | None = None) -> None:
        self._sessions = sessions
        self.allowlist: frozenset[str] | None = frozenset(allowlist) if allowlist is not None else None
        self.counters = counters if counters is not None else Counters()
        self._write_lock = threading.Lock()
        self._seen_lock = threading.Lock()
        self._seen: dict[str, float] = {}  # exact last sign of life, in memory
        self._seen_persisted: dict[str, float] = {}
        with self._read() as conn:
            self._known: set[str] = set(conn.scalars(select(DEVICES.c.name)))

    # ------------------------------------------------------------------ transactions
    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """One write transaction at a time."""
        with self._write_lock, self._sessions.begin() as s:
            yield s.connection()

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._sessions.begin() as s:  # one snapshot for the whole read
            yield s.connection()

    # ------------------------------------------------------------------ helpers
    def _allowed(self, name: str) -> bool:
        return self.allowlist is None or name in self.allowlist

    def _reject(self, reason: str) -> None:
        self.counters.reject(reason)

    def _seen_at(self, dev: RowMapping | dict) -> float | None:
        with self._seen_lock:
            mem = self._seen.get(dev["name"])
        values = [v for v in (dev["last_seen"], mem) if v is not None]
        return max(values) if values else None

    def _seen_value(self, dev: dict, ts: float) -> dict:
        """The ``last_seen`` update for a live sign of life at ``ts`` (remembered exactly in memory)."""
        name = dev["name"]
        with self._seen_lock:
            if ts > self._seen.get(name, float("-inf")):
                self._seen[name] = ts
            self._seen_persisted[name] = ts
        return {"last_seen": ts} if dev["last_seen"] is None or ts > dev["last_seen"] else {}

    @staticmethod
    def _device_row(conn: Connection, name: str) -> dict | None:
        row = conn.execute(select(DEVICES).where(DEVICES.c.name == name)).mappings().first()
        return dict(row) if row is not None else None

    def _get_or_create(self, conn: Connection, name: str) -> dict:
        dev = self._device_row(conn, name)
        if dev is None:
            conn.execute(insert(DEVICES).values(name=name, last_seq=0, muted=False))
            dev = self._device_row(conn, name)
            assert dev is not None
            log.info("new device %s", name)
        return dev

    @staticmethod
    def _update_device(conn: Connection, dev: dict, values: dict) -> None:
        if values:
            conn.execute(update(DEVICES).where(DEVICES.c.id == dev["id"]).values(**values))
            dev.update(values)

    @staticmethod
    def _open_segment(conn: Connection, dev: dict) -> dict | None:
        row = conn.execute(select(SEGMENTS).where(SEGMENTS.c.device_id == dev["id"], SEGMENTS.c.status == "open")
                           ).mappings().first()
        return dict(row) if row is not None else None

    @staticmethod
    def _start_after_previous(conn: Connection, dev: dict, start: float) -> float:
        last_end = conn.scalar(select(func.max(SEGMENTS.c.end)).where(SEGMENTS.c.device_id == dev["id"]))
        return start if last_end is None else max(start, last_end)

    @staticmethod
    def _open(conn: Connection, dev: dict, *, label: str, start: float, confidence: float | None,
              model_version: str | None, event_id: str | None) -> dict:
        values = {"device_id": dev["id"], "label": label, "start": start, "end": None, "confidence": confidence,
                  "model_version": model_version, "status": "open", "start_event_id": event_id,
                  "end_event_id": None}
        result = conn.execute(insert(SEGMENTS).values(**values))
        return {"id": result.inserted_primary_key[0], **values}

    @staticmethod
    def _end(conn: Connection, seg: dict, *, end: float, status: str, event_id: str | None = None) -> dict:
        values = {"end": end, "status": status, "end_event_id": event_id}
        conn.execute(update(SEGMENTS).where(SEGMENTS.c.id == seg["id"]).values(**values))
        return {**seg, **values}

    def _interrupt(self, conn: Connection, dev: dict, ts: float) -> dict | None:
        seg = self._open_segment(conn, dev)
        if seg is None:
            return None
        seen = self._seen_at(dev)
        end = max(ts if seen is None else min(ts, seen), seg["start"])
        log.info("device %s gone: %s segment from %.3f interrupted at %.3f", dev["name"], seg["label"], seg["start"],
                 end)
        return self._end(conn, seg, end=end, status="interrupted")

    # ------------------------------------------------------------------ JSON shapes (docs/api.md)
    def device_dict(self, dev: RowMapping | dict) -> dict[str, Any]:
        state = None
        if dev["state_label"] is not None:
            state = {"label": dev["state_label"], "since": dev["state_since"], "confidence": dev["state_confidence"]}
        return {
            "name": dev["name"],
            "availability": dev["availability"],
            "state": state,
            "model_version": dev["model_version"],
            "last_seen": self._seen_at(dev),
            "muted": bool(dev["muted"]),
            "last_seq": dev["last_seq"],
        }

    @staticmethod
    def segment_dict(seg: RowMapping | dict, device: str) -> dict[str, Any]:
        return {
            "id": seg["id"],
            "device": device,
            "label": seg["label"],
            "start": seg["start"],
            "end": seg["end"],
            "status": seg["status"],
            "confidence": seg["confidence"],
            "model_version": seg["model_version"],
        }

    @staticmethod
    def event_dict(ev: RowMapping | dict, device: str) -> dict[str, Any]:
        return {"device": device, **{k: ev[k] for k in _EVENT_FIELDS}}

    @staticmethod
    def firing_dict(f: RowMapping | dict, device: str) -> dict[str, Any]:
        return {"id": f["id"], "device": device, **{k: f[k] for k in _FIRING_FIELDS}}

    # ------------------------------------------------------------------ writes
    def is_known(self, device: str) -> bool:
        """Whether messages of ``device`` are accepted: allowlisted, or (without an allowlist) announced."""
        if self.allowlist is not None:
            return device in self.allowlist
        return device in self._known

    def availability(self, device: str, value: Availability, ts: float, *, retained: bool = False) -> Change:
        """Record ``online`` / ``offline`` / ``stopped``; the latter two interrupt the open segment.

        ``retained`` (a value the broker kept, seen on subscribing) is no sign of life: ``last_seen`` stays.
        ``offline`` (the broker's last will) is none either: the interrupted segment ends at the last one.
        """
        if not self._allowed(device):
            self._reject("unknown_device")
            return Change(rejected="unknown_device")
        with self._write() as conn:
            dev = self._get_or_create(conn, device)
            values: dict[str, Any] = {"availability": value.value}
            if not retained and value is not Availability.OFFLINE:
                values.update(self._seen_value(dev, ts))
            self._update_device(conn, dev, values)
            closed = None
            if value is not Availability.ONLINE:
                seg = self._interrupt(conn, dev, ts)
                closed = self.segment_dict(seg, device) if seg is not None else None
            out = Change(device=self.device_dict(dev), closed=closed)
        self._known.add(device)
        return out

    def state(self, payload: StatePayload, received: float | None = None, *, retained: bool = False) -> Change:
        """Record a device's current state; a live one opens a segment if none is open. ``received`` (server time,
        the device's sign of life) defaults to the payload's own ``ts``."""
        device = payload.device
        received = payload.ts if received is None else received
        if not self._allowed(device):
            self._reject("unknown_device")
            return Change(rejected="unknown_device")
        with self._write() as conn:
            dev = self._get_or_create(conn, device)
            values: dict[str, Any] = {"state_label": payload.label, "state_since": payload.since_ts,
                                      "state_confidence": payload.confidence, "model_version": payload.model_version}
            if not retained:
                values.update(self._seen_value(dev, received))
            self._update_device(conn, dev, values)
            opened = None
            if not retained and self._open_segment(conn, dev) is None:
                seg = self._open(conn, dev, label=payload.label,
                                 start=self._start_after_previous(conn, dev, payload.since_ts),
                                 confidence=payload.confidence, model_version=payload.model_version, event_id=None)
                opened = self.segment_dict(seg, device)
            out = Change(device=self.device_dict(dev), opened=opened)
        self._known.add(device)
        return out

    def ingest_event(self, payload: EventPayload, received_ts: float) -> IngestResult:
        """Store one event and apply it to the device's segments (see the module's rules)."""
        device = payload.device
        if not self._allowed(device):
            self._reject("unknown_device")
            return IngestResult(rejected="unknown_device", status="unknown_device")
        with self._write() as conn:
            dev = self._device_row(conn, device)
            if dev is None:
                if self.allowlist is None:
                    self._reject("unknown_device")
                    return IngestResult(rejected="unknown_device", status="unknown_device")
                dev = self._get_or_create(conn, device)
            if conn.scalar(select(EVENTS.c.id).where(EVENTS.c.event_id == payload.event_id)) is not None:
                self._reject("duplicate")
                return IngestResult(rejected="duplicate", status="duplicate")
            if payload.seq <= dev["last_seq"]:
                self._reject("out_of_order")
                log.debug("%s: event seq %d at or below the last applied %d", device, payload.seq, dev["last_seq"])
                return IngestResult(rejected="out_of_order", status="out_of_order")

            ev = {k: getattr(payload, k) for k in _EVENT_FIELDS if k != "received"}
            ev.update(type=payload.type.value, received=received_ts)
            conn.execute(insert(EVENTS).values(device_id=dev["id"], **ev))
            self._update_device(conn, dev, {"last_seq": payload.seq, "model_version": payload.model_version,
                                            **self._seen_value(dev, received_ts)})

            closed = opened = None
            current = self._open_segment(conn, dev)
            if current is None or current["label"] != payload.label:
                if current is not None:
                    current = self._end(conn, current, end=max(payload.boundary_ts, current["start"]),
                                        status="closed", event_id=payload.event_id)
                    start = current["end"]
                else:
                    start = self._start_after_previous(conn, dev, payload.boundary_ts)
                seg = self._open(conn, dev, label=payload.label, start=start, confidence=payload.confidence,
                                 model_version=payload.model_version, event_id=payload.event_id)
                closed = self.segment_dict(current, device) if current is not None else None
                opened = self.segment_dict(seg, device)
            result = IngestResult(device=self.device_dict(dev), closed=closed, opened=opened,
                                  event=self.event_dict(ev, device))
        self._known.add(device)
        self.counters.incr("events_ingested")
        return result

    def interrupt_open_segment(self, device: str, ts: float) -> Change:
        """End the device's open segment as ``interrupted`` at its last sign of life (at most ``ts``)."""
        with self._write() as conn:
            dev = self._device_row(conn, device)
            seg = self._interrupt(conn, dev, ts) if dev is not None else None
            if dev is None or seg is None:
                return Change()
            return Change(device=self.device_dict(dev), closed=self.segment_dict(seg, device))

    def touch(self, device: str, ts: float) -> bool:
        """A live sign of life (telemetry): kept in memory, written at most every :data:`TOUCH_PERSIST_S`.

        Returns whether the device is accepted (see :meth:`is_known`); an unannounced allowlisted device is created.
        """
        if not self.is_known(device):
            return False
        with self._seen_lock:
            if ts > self._seen.get(device, float("-inf")):
                self._seen[device] = ts
            due = ts - self._seen_persisted.get(device, float("-inf")) >= TOUCH_PERSIST_S
        if due or device not in self._known:
            with self._write() as conn:
                dev = self._get_or_create(conn, device)
                self._update_device(conn, dev, self._seen_value(dev, ts))
            self._known.add(device)
        return True

    def record_firing(self, device: str, *, rule: str, action: str, reason: str, topic: str, payload: str, ts: float,
                      event_id: str | None = None) -> tuple[dict, dict]:
        """Store a rule's command and the device's new mute state; returns ``(Firing, Device)`` dicts."""
        with self._write() as conn:
            dev = self._get_or_create(conn, device)
            self._update_device(conn, dev, {"muted": action == "mute"})
            values = {"rule": rule, "action": action, "reason": reason, "topic": topic, "payload": payload, "ts": ts,
                      "event_id": event_id}
            result = conn.execute(insert(FIRINGS).values(device_id=dev["id"], **values))
            out = self.firing_dict({"id": result.inserted_primary_key[0], **values}, device), self.device_dict(dev)
        self._known.add(device)
        self.counters.incr("rule_firings")
        return out

    # ------------------------------------------------------------------ reads
    def devices(self) -> list[dict]:
        with self._read() as conn:
            return [self.device_dict(d) for d in conn.execute(select(DEVICES).order_by(DEVICES.c.name)).mappings()]

    def device(self, name: str) -> dict | None:
        with self._read() as conn:
            dev = self._device_row(conn, name)
        return self.device_dict(dev) if dev is not None else None

    def is_muted(self, name: str) -> bool:
        with self._read() as conn:
            return bool(conn.scalar(select(DEVICES.c.muted).where(DEVICES.c.name == name)))

    def open_segments(self, label: str | None = None) -> list[OpenSegment]:
        """Open segments (of one label), with their device's mute state: the mute watchdog's view."""
        q = (select(DEVICES.c.name, SEGMENTS.c.label, SEGMENTS.c.start, DEVICES.c.muted)
             .join_from(SEGMENTS, DEVICES, SEGMENTS.c.device_id == DEVICES.c.id)
             .where(SEGMENTS.c.status == "open"))
        if label is not None:
            q = q.where(SEGMENTS.c.label == label)
        with self._read() as conn:
            return [OpenSegment(name, lab, start, bool(muted)) for name, lab, start, muted in conn.execute(q)]

    @staticmethod
    def _query(table, time_col, *, device: str | None, start: float | None, end: float | None, limit: int,
               overlap_end=None):
        q = select(table, DEVICES.c.name.label("device_name")).join_from(table, DEVICES,
                                                                          table.c.device_id == DEVICES.c.id)
        if device is not None:
            q = q.where(DEVICES.c.name == device)
        if start is not None:
            q = q.where(overlap_end.is_(None) | (overlap_end > start)) if overlap_end is not None \
                else q.where(time_col >= start)
        if end is not None:
            q = q.where(time_col < end)
        return q.order_by(time_col, table.c.id).limit(min(limit, MAX_LIMIT))

    def segments(self, *, device: str | None = None, start: float | None = None, end: float | None = None,
                 label: str | None = None, limit: int = 1000) -> list[dict]:
        """Segments overlapping ``[start, end)`` (an open one reaches to now), oldest first."""
        q = self._query(SEGMENTS, SEGMENTS.c.start, device=device, start=start, end=end, limit=limit,
                        overlap_end=SEGMENTS.c.end)
        if label is not None:
            q = q.where(SEGMENTS.c.label == label)
        with self._read() as conn:
            return [self.segment_dict(r, r["device_name"]) for r in conn.execute(q).mappings()]

    def events(self, *, device: str | None = None, start: float | None = None, end: float | None = None,
               limit: int = 1000) -> list[dict]:
        """Stored events whose ``boundary_ts`` is in ``[start, end)``, oldest first."""
        q = self._query(EVENTS, EVENTS.c.boundary_ts, device=device, start=start, end=end, limit=limit)
        with self._read() as conn:
            return [self.event_dict(r, r["device_name"]) for r in conn.execute(q).mappings()]

    def firings(self, *, device: str | None = None, start: float | None = None, end: float | None = None,
                limit: int = 1000) -> list[dict]:
        """Rule firings with ``ts`` in ``[start, end)``, oldest first."""
        q = self._query(FIRINGS, FIRINGS.c.ts, device=device, start=start, end=end, limit=limit)
        with self._read() as conn:
            return [self.firing_dict(r, r["device_name"]) for r in conn.execute(q).mappings()]


_EVENT_FIELDS = ("event_id", "seq", "type", "boundary_ts", "decided_ts", "boundary_stream_t", "decided_stream_t",
                 "confidence", "model_version", "received")
_FIRING_FIELDS = ("rule", "action", "reason", "topic", "payload", "ts", "event_id")
