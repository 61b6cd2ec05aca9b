"""``SegmentStore``: devices, events, segments and rule firings in the database. Knows nothing of MQTT or Flask.

Writes go through a :class:`WriteBatch`: one write transaction, serialised by a lock (one writer: SQLite allows no
more, and a read-then-write decision such as the sequence check must not interleave). The ingest worker applies
many messages in one batch, each in its own SAVEPOINT (:meth:`WriteBatch.message`), so one bad message rolls back
alone; the plain methods (:meth:`SegmentStore.ingest_event`, ...) are a batch of one. Each write returns what changed
as the JSON-ready dicts that the API and Socket.IO send (``docs/api.md``), so the realtime layer pushes exactly what
was stored. What must happen only once the data is stored (counters, MQTT commands, pushes) is registered with
:meth:`WriteBatch.after_commit` and runs after the commit, in order; a rolled-back message's are dropped.

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

The schema is the ORM models' (``server.models``); the statements here are SQLAlchemy Core on their tables, built
once at import with bound parameters: building and compiling a statement per call cost ~100 us, executing a
prebuilt one ~15 us. The single writer keeps each device's row and open segment in memory (read once, then kept
in step with every write it makes); a rolled-back message or batch drops that cache, and the next read reloads it.
One ``SegmentStore`` writes a database: one server per database file.

On a database that several servers share (PostgreSQL, ``SegmentStore.shared``), that cache lives for one batch
only: each batch locks the rows of the devices it writes (``SELECT ... FOR UPDATE``, the devices its messages name
in name order at its start, any other on first use) and reads them afresh, so the sequence check and the opening
and closing of segments of one device are serialised across processes. A lock conflict PostgreSQL resolves by
failing a statement (deadlock, serialisation failure) fails the whole batch (:class:`BatchBroken`), so that no
message of it is taken as applied. With ``hold_gap`` an event whose ``seq`` is beyond the next one expected is
``held``: nothing is written, and the caller tries it again (the shared-subscription reorder hold, ``server.ingest``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, RowMapping, bindparam, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from adbreak.wire import Availability, EventPayload, StatePayload
from server.counters import Counters
from server.device_settings import settings_view
from server.models import Device, Event, RuleFiring, Segment
from server.recordings import KEY_PREFIX as RECORDING_PREFIX

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


class BatchBroken(RuntimeError):
    """A message's SAVEPOINT could not be rolled back: the whole transaction is lost (SQLite rolled it back)."""


# ---------------------------------------------------------------------------------------------------- statements
DEVICES = Device.__table__
EVENTS = Event.__table__
SEGMENTS = Segment.__table__
FIRINGS = RuleFiring.__table__

_DEVICE_STATE = ("availability", "state_label", "state_since", "state_confidence", "model_version", "last_seen",
                 "last_seq", "muted", "auto_mute", "settings", "settings_reported")
"""The columns of a device that writes change; a changed device is written back whole, once per message."""
_EVENT_FIELDS = ("event_id", "seq", "type", "boundary_ts", "decided_ts", "boundary_stream_t", "decided_stream_t",
                 "confidence", "model_version", "received")
_FIRING_FIELDS = ("rule", "action", "reason", "topic", "payload", "ts", "event_id")

_SELECT_DEVICE = select(DEVICES).where(DEVICES.c.name == bindparam("name"))
_SELECT_DEVICE_LOCKED = _SELECT_DEVICE.with_for_update()
_LOCK_DEVICES = (select(DEVICES).where(DEVICES.c.name.in_(bindparam("names", expanding=True)))
                 .order_by(DEVICES.c.name).with_for_update())
_INSERT_DEVICE = insert(DEVICES)
_INSERT_DEVICE_PG = pg_insert(DEVICES).on_conflict_do_nothing(index_elements=[DEVICES.c.name])
_UPDATE_DEVICE = (update(DEVICES).where(DEVICES.c.id == bindparam("dev_id"))
                  .values({c: bindparam(f"new_{c}") for c in _DEVICE_STATE}))
_EVENT_EXISTS = select(EVENTS.c.id).where(EVENTS.c.event_id == bindparam("event_id"))
_INSERT_EVENT = insert(EVENTS)
_INSERT_EVENT_PG = pg_insert(EVENTS).on_conflict_do_nothing().returning(EVENTS.c.id)  # no failed statement
_SELECT_OPEN = select(SEGMENTS).where(SEGMENTS.c.device_id == bindparam("device_id"), SEGMENTS.c.status == "open")
_LAST_END = select(func.max(SEGMENTS.c.end)).where(SEGMENTS.c.device_id == bindparam("device_id"))
_INSERT_SEGMENT = insert(SEGMENTS)
_END_SEGMENT = (update(SEGMENTS).where(SEGMENTS.c.id == bindparam("seg_id"))
                .values(end=bindparam("new_end"), status=bindparam("new_status"),
                        end_event_id=bindparam("new_end_event_id")))
_INSERT_FIRING = insert(FIRINGS)
_OPEN_SEGMENTS = (select(DEVICES.c.name, SEGMENTS.c.label, SEGMENTS.c.start, DEVICES.c.muted)
                  .join_from(SEGMENTS, DEVICES, SEGMENTS.c.device_id == DEVICES.c.id)
                  .where(SEGMENTS.c.status == "open"))
_OPEN_SEGMENTS_OF = _OPEN_SEGMENTS.where(SEGMENTS.c.label == bindparam("label"))

_SAVEPOINT = "adbreak_message"
_LOCK_CONFLICTS = frozenset({"40P01", "40001", "55P03"})  # deadlock, serialisation failure, lock not available


def lock_conflict(exc: BaseException) -> bool:
    """Whether ``exc`` is a conflict between concurrent transactions that PostgreSQL resolved by failing one of
    them: nothing is wrong with the data, the transaction is to be tried again."""
    return isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlstate", None) in _LOCK_CONFLICTS
_UNKNOWN = object()  # a cache miss (None is a cached "no open segment")


# ---------------------------------------------------------------------------------------------------- batch
class WriteBatch:
    """One write transaction of a :class:`SegmentStore` (see :meth:`SegmentStore.batch`); used by one thread.

    Reads through it see its own writes. Changes to device rows are kept in the store's cache and written back at
    the end of each :meth:`message` (and before the commit), so a device's several changes by one message are one
    UPDATE.
    """

    def __init__(self, store: SegmentStore, conn: Connection) -> None:
        self.store = store
        self.conn = conn
        self._effects: list[tuple[Callable[..., object], tuple]] = []
        self._dirty: dict[str, dict] = {}  # name -> cached device row with unwritten changes

    # ------------------------------------------------------------------ unit of work
    def after_commit(self, fn: Callable[..., object], *args: object) -> None:
        """Run ``fn(*args)`` after the batch commits (in registration order); never if its message rolls back."""
        self._effects.append((fn, args))

    @contextmanager
    def message(self) -> Iterator[WriteBatch]:
        """One message's writes in a SAVEPOINT: an exception rolls back this message alone (its writes, its
        after-commit effects, the cache) and propagates; :class:`BatchBroken` if the transaction itself is gone.

        The SAVEPOINT is emitted as plain SQL with a fixed name: ``Connection.begin_nested()`` compiles a new
        uniquely named SAVEPOINT each time (~100 us against ~12 us).
        """
        self._flush()
        mark = len(self._effects)
        self.conn.exec_driver_sql(f"SAVEPOINT {_SAVEPOINT}")
        try:
            yield self
            self._flush()
        except BaseException as failure:
            del self._effects[mark:]
            self._dirty.clear()
            self.store._forget()
            if lock_conflict(failure):  # the batch as a whole is to be tried again, not this message dropped
                raise BatchBroken(f"lock conflict with another server: {failure.orig}") from failure
            try:
                self.conn.exec_driver_sql(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}")
                self.conn.exec_driver_sql(f"RELEASE SAVEPOINT {_SAVEPOINT}")
            except Exception as exc:
                raise BatchBroken(f"rolling back one message failed: {exc}") from exc
            raise
        self.conn.exec_driver_sql(f"RELEASE SAVEPOINT {_SAVEPOINT}")

    def _flush(self) -> None:
        for dev in self._dirty.values():
            self.conn.execute(_UPDATE_DEVICE, {"dev_id": dev["id"], **{f"new_{c}": dev[c] for c in _DEVICE_STATE}})
        self._dirty.clear()

    def _run_effects(self) -> None:
        for fn, args in self._effects:
            try:
                fn(*args)
            except Exception:  # what happens after the commit must not undo it, nor stop the rest
                log.exception("after-commit action %s failed", getattr(fn, "__qualname__", fn))
        self._effects.clear()

    def _reject(self, reason: str) -> None:
        self.after_commit(self.store.counters.reject, reason)

    def _mark_known(self, name: str) -> None:
        if name not in self.store._known:
            self.after_commit(self.store._known.add, name)

    # ------------------------------------------------------------------ devices and segments (cached)
    def _device(self, name: str) -> dict | None:
        """The device's row (the cached dict itself: change it only through :meth:`_set`)."""
        dev = self.store._devices.get(name)
        if dev is None:
            query = _SELECT_DEVICE_LOCKED if self.store.shared else _SELECT_DEVICE
            row = self.conn.execute(query, {"name": name}).mappings().first()
            if row is None:
                return None
            dev = self.store._devices[name] = dict(row)
        return dev

    def _get_or_create(self, name: str) -> dict:
        dev = self._device(name)
        if dev is None:
            # shared: another server may be creating it too; its row is then waited for and taken
            self.conn.execute(_INSERT_DEVICE_PG if self.store.shared else _INSERT_DEVICE,
                              {"name": name, "last_seq": 0, "muted": False})
            dev = self._device(name)
            assert dev is not None
            log.info("new device %s", name)
        return dev

    def _set(self, dev: dict, values: dict) -> None:
        if values:
            dev.update(values)
            self._dirty[dev["name"]] = dev

    def _known(self, name: str) -> bool:
        """Whether messages of ``name`` are accepted, as seen by this batch (see :meth:`SegmentStore.is_known`)."""
        if self.store.allowlist is not None:
            return name in self.store.allowlist
        return name in self.store._known or self._device(name) is not None

    def _open_segment(self, dev: dict) -> dict | None:
        cache = self.store._open
        seg = cache.get(dev["id"], _UNKNOWN)
        if seg is _UNKNOWN:
            row = self.conn.execute(_SELECT_OPEN, {"device_id": dev["id"]}).mappings().first()
            seg = cache[dev["id"]] = dict(row) if row is not None else None
        return seg  # type: ignore[return-value]

    def _start_after_previous(self, dev: dict, start: float) -> float:
        last_end = self.conn.execute(_LAST_END, {"device_id": dev["id"]}).scalar()
        return start if last_end is None else max(start, last_end)

    def _open(self, dev: dict, *, label: str, start: float, confidence: float | None, model_version: str | None,
              event_id: str | None) -> dict:
        values = {"device_id": dev["id"], "label": label, "start": start, "end": None, "confidence": confidence,
                  "model_version": model_version, "status": "open", "start_event_id": event_id,
                  "end_event_id": None}
        result = self.conn.execute(_INSERT_SEGMENT, values)
        seg = {"id": result.inserted_primary_key[0], **values}
        self.store._open[dev["id"]] = seg
        return seg

    def _end(self, dev: dict, seg: dict, *, end: float, status: str, event_id: str | None = None) -> dict:
        self.conn.execute(_END_SEGMENT, {"seg_id": seg["id"], "new_end": end, "new_status": status,
                                         "new_end_event_id": event_id})
        self.store._open[dev["id"]] = None
        return {**seg, "end": end, "status": status, "end_event_id": event_id}

    def _interrupt(self, dev: dict, ts: float) -> dict | None:
        seg = self._open_segment(dev)
        if seg is None:
            return None
        seen = self.store._seen_at(dev)
        end = max(ts if seen is None else min(ts, seen), seg["start"])
        log.info("device %s gone: %s segment from %.3f interrupted at %.3f", dev["name"], seg["label"], seg["start"],
                 end)
        return self._end(dev, seg, end=end, status="interrupted")

    # ------------------------------------------------------------------ writes (SegmentStore's, inside this batch)
    def availability(self, device: str, value: Availability, ts: float, *, retained: bool = False) -> Change:
        store = self.store
        if not store._allowed(device):
            self._reject("unknown_device")
            return Change(rejected="unknown_device")
        dev = self._get_or_create(device)
        values: dict[str, Any] = {"availability": value.value}
        if not retained and value is not Availability.OFFLINE:
            values.update(store._seen_value(dev, ts))
        self._set(dev, values)
        closed = None
        if value is not Availability.ONLINE:
            seg = self._interrupt(dev, ts)
            closed = store.segment_dict(seg, device) if seg is not None else None
        self._mark_known(device)
        return Change(device=store.device_dict(dev), closed=closed)

    def state(self, payload: StatePayload, received: float | None = None, *, retained: bool = False) -> Change:
        store = self.store
        device = payload.device
        received = payload.ts if received is None else received
        if not store._allowed(device):
            self._reject("unknown_device")
            return Change(rejected="unknown_device")
        dev = self._get_or_create(device)
        values: dict[str, Any] = {"state_label": payload.label, "state_since": payload.since_ts,
                                  "state_confidence": payload.confidence, "model_version": payload.model_version}
        if not retained:
            values.update(store._seen_value(dev, received))
        self._set(dev, values)
        opened = None
        if not retained and self._open_segment(dev) is None and not self._superseded(dev, payload.ts):
            seg = self._open(dev, label=payload.label, start=self._start_after_previous(dev, payload.since_ts),
                             confidence=payload.confidence, model_version=payload.model_version, event_id=None)
            opened = store.segment_dict(seg, device)
        self._mark_known(device)
        return Change(device=store.device_dict(dev), opened=opened)

    def _superseded(self, dev: dict, ts: float) -> bool:
        """A state published at or before the end of the device's last segment is older than what ended it: a
        message the broker delivers again after a server or broker restart (it was not acknowledged), arriving after
        the will that interrupted the segment. It must not open a segment (a phantom one across the outage)."""
        last_end = self.conn.execute(_LAST_END, {"device_id": dev["id"]}).scalar()
        return last_end is not None and ts <= last_end

    def lock(self, names: Iterable[str]) -> None:
        """Shared database: lock (and read afresh) these devices' rows now, in name order, so that batches of
        several servers that write the same devices wait for each other instead of deadlocking."""
        wanted = sorted({n for n in names if n not in self.store._devices})
        if not self.store.shared or not wanted:
            return
        for row in self.conn.execute(_LOCK_DEVICES, {"names": wanted}).mappings():
            self.store._devices[row["name"]] = dict(row)

    def ingest_event(self, payload: EventPayload, received_ts: float, *, hold_gap: bool = False) -> IngestResult:
        store = self.store
        device = payload.device
        if not store._allowed(device):
            self._reject("unknown_device")
            return IngestResult(rejected="unknown_device", status="unknown_device")
        dev = self._device(device)
        if dev is None:
            if store.allowlist is None:
                self._reject("unknown_device")
                return IngestResult(rejected="unknown_device", status="unknown_device")
            dev = self._get_or_create(device)
        # a duplicate first, then the order; an event in order is inserted at once, and its event id's UNIQUE
        # constraint finds the rare duplicate that comes with a new seq (SQLite undoes just the failed statement)
        if payload.seq <= dev["last_seq"]:
            if self._event_stored(payload.event_id):
                return self._duplicate()
            self._reject("out_of_order")
            log.debug("%s: event seq %d at or below the last applied %d", device, payload.seq, dev["last_seq"])
            return IngestResult(rejected="out_of_order", status="out_of_order")
        if hold_gap and payload.seq > dev["last_seq"] + 1:
            log.debug("%s: event seq %d held: the last applied is %d", device, payload.seq, dev["last_seq"])
            return IngestResult(status="held", device=store.device_dict(dev))

        ev = {"event_id": payload.event_id, "seq": payload.seq, "type": payload.type.value,
              "boundary_ts": payload.boundary_ts, "decided_ts": payload.decided_ts,
              "boundary_stream_t": payload.boundary_stream_t, "decided_stream_t": payload.decided_stream_t,
              "confidence": payload.confidence, "model_version": payload.model_version, "received": received_ts}
        try:
            if store.shared:
                if self.conn.execute(_INSERT_EVENT_PG, {"device_id": dev["id"], **ev}).first() is None:
                    if self._event_stored(payload.event_id):
                        return self._duplicate()
                    raise IntegrityError("INSERT INTO events", None, ValueError(f"seq {payload.seq} is taken"))
            else:
                self.conn.execute(_INSERT_EVENT, {"device_id": dev["id"], **ev})
        except IntegrityError:
            if self._event_stored(payload.event_id):
                return self._duplicate()
            raise
        self._set(dev, {"last_seq": payload.seq, "model_version": payload.model_version,
                        **store._seen_value(dev, received_ts)})

        closed = opened = None
        current = self._open_segment(dev)
        if current is None or current["label"] != payload.label:
            if current is not None:
                current = self._end(dev, current, end=max(payload.boundary_ts, current["start"]), status="closed",
                                    event_id=payload.event_id)
                start = current["end"]
            else:
                start = self._start_after_previous(dev, payload.boundary_ts)
            seg = self._open(dev, label=payload.label, start=start, confidence=payload.confidence,
                             model_version=payload.model_version, event_id=payload.event_id)
            closed = store.segment_dict(current, device) if current is not None else None
            opened = store.segment_dict(seg, device)
        self._mark_known(device)
        self.after_commit(store.counters.incr, "events_ingested")
        return IngestResult(device=store.device_dict(dev), closed=closed, opened=opened,
                            event=store.event_dict(ev, device))

    def _event_stored(self, event_id: str) -> bool:
        return self.conn.execute(_EVENT_EXISTS, {"event_id": event_id}).first() is not None

    def _duplicate(self) -> IngestResult:
        self._reject("duplicate")
        return IngestResult(rejected="duplicate", status="duplicate")

    def interrupt_open_segment(self, device: str, ts: float) -> Change:
        dev = self._device(device)
        seg = self._interrupt(dev, ts) if dev is not None else None
        if dev is None or seg is None:
            return Change()
        return Change(device=self.store.device_dict(dev), closed=self.store.segment_dict(seg, device))

    def touch(self, device: str, ts: float) -> bool:
        store = self.store
        if not self._known(device):
            return False
        due = store._remember_seen(device, ts)
        if due or device not in store._known:
            dev = self._get_or_create(device)
            self._set(dev, store._seen_value(dev, ts))
            self._mark_known(device)
        return True

    def record_firing(self, device: str, *, rule: str, action: str, reason: str, topic: str, payload: str, ts: float,
                      event_id: str | None = None) -> tuple[dict, dict]:
        store = self.store
        dev = self._get_or_create(device)
        self._set(dev, {"muted": action == "mute"})
        values = {"rule": rule, "action": action, "reason": reason, "topic": topic, "payload": payload, "ts": ts,
                  "event_id": event_id}
        result = self.conn.execute(_INSERT_FIRING, {"device_id": dev["id"], **values})
        self._mark_known(device)
        self.after_commit(store.counters.incr, "rule_firings")
        return store.firing_dict({"id": result.inserted_primary_key[0], **values}, device), store.device_dict(dev)

    def set_auto_mute(self, name: str, enabled: bool) -> dict | None:
        """Turn the auto-mute rule on or off for a known device (the Home Assistant switch, the API); returns the
        ``Device`` dict, or ``None`` for an unknown device (nothing is created)."""
        dev = self._device(name)
        if dev is None:
            return None
        if bool(dev["auto_mute"]) != enabled:
            self._set(dev, {"auto_mute": enabled})
        return self.store.device_dict(dev)

    def set_device_settings(self, name: str, *, desired: str | None | object = _UNKNOWN,
                            reported: str | None | object = _UNKNOWN) -> dict | None:
        """Store a known device's decision settings (JSON text, ``server.device_settings``): ``desired`` (the
        user's), ``reported`` (its retained ``settings/state``); returns the ``Device`` dict, ``None`` for an unknown
        device (nothing is created)."""
        dev = self._device(name)
        if dev is None:
            return None
        values = {}
        if desired is not _UNKNOWN:
            values["settings"] = desired
        if reported is not _UNKNOWN:
            values["settings_reported"] = reported
        self._set(dev, {k: v for k, v in values.items() if dev[k] != v})
        return self.store.device_dict(dev)

    def device_id(self, name: str) -> int | None:
        """The row id of a device (``None``: unknown), e.g. for rows of other tables that reference it."""
        dev = self._device(name)
        return None if dev is None else dev["id"]

    # ------------------------------------------------------------------ reads inside the batch
    def is_muted(self, name: str) -> bool:
        dev = self._device(name)
        return dev is not None and bool(dev["muted"])

    def auto_mute_enabled(self, name: str) -> bool:
        """Whether the auto-mute rule may mute this device (an unknown device: yes, the default)."""
        dev = self._device(name)
        return dev is None or bool(dev["auto_mute"])

    def device(self, name: str) -> dict | None:
        dev = self._device(name)
        return self.store.device_dict(dev) if dev is not None else None

    def open_segments(self, label: str | None = None) -> list[OpenSegment]:
        self._flush()
        rows = self.conn.execute(_OPEN_SEGMENTS_OF, {"label": label}) if label is not None \
            else self.conn.execute(_OPEN_SEGMENTS)
        return [OpenSegment(name, lab, start, bool(muted)) for name, lab, start, muted in rows]


# ---------------------------------------------------------------------------------------------------- store
class SegmentStore:
    def __init__(self, sessions: sessionmaker[Session], *, allowlist: Iterable[str] | None = None,
                 counters: Counters | None = None) -> None:
        self._sessions = sessions
        self.allowlist: frozenset[str] | None = frozenset(allowlist) if allowlist is not None else None
        self.counters = counters if counters is not None else Counters()
        bind = sessions.kw.get("bind")
        self.shared: bool = bind is not None and bind.dialect.name != "sqlite"
        """Other servers may write the same database: device rows are locked per batch, nothing cached beyond it."""
        # re-entrant: an after-commit action (run while the lock is held, so actions keep the commit order) may write
        self._write_lock = threading.RLock()
        self._seen_lock = threading.Lock()
        self._seen: dict[str, float] = {}  # exact last sign of life, in memory
        self._seen_persisted: dict[str, float] = {}
        # the single writer's cache, used and changed only under _write_lock: device rows by name, and each device's
        # open segment (None: none open) by device id; dropped whenever a write rolls back
        self._devices: dict[str, dict] = {}
        self._open: dict[int, dict | None] = {}
        with self._read() as conn:
            self._known: set[str] = set(conn.scalars(select(DEVICES.c.name)))

    # ------------------------------------------------------------------ transactions
    @contextmanager
    def batch(self, lock: Iterable[str] = ()) -> Iterator[WriteBatch]:
        """One write transaction, for any number of writes (:meth:`WriteBatch.message` for one message each).

        Commits when the block ends, then runs the after-commit actions in order, still holding the write lock, so
        that actions of different batches keep the order of their commits. An exception rolls everything back (no
        action runs) and propagates. On a shared database the devices named in ``lock`` are locked first
        (:meth:`WriteBatch.lock`), and what an earlier batch cached is read again.
        """
        with self._write_lock:
            if self.shared:
                self._forget()
            try:
                with self._sessions.begin() as s:
                    batch = WriteBatch(self, s.connection())
                    batch.lock(lock)
                    yield batch
                    batch._flush()
            except BaseException:
                self._forget()
                raise
            batch._run_effects()

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._sessions.begin() as s:  # one snapshot for the whole read
            yield s.connection()

    def _forget(self) -> None:
        """Drop the write cache (after a rollback); the next write reads again what it needs."""
        self._devices.clear()
        self._open.clear()

    # ------------------------------------------------------------------ helpers
    def _allowed(self, name: str) -> bool:
        return self.allowlist is None or name in self.allowlist

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

    def heard_from(self, name: str) -> float | None:
        """When this process last got a live sign of life of ``name`` (telemetry, an event, a live state; server
        time), ``None`` if none since it started. Memory only: the mute watchdog's silence check."""
        with self._seen_lock:
            return self._seen.get(name)

    def _remember_seen(self, name: str, ts: float) -> bool:
        """Keep a sign of life in memory; whether it is due to be written (:data:`TOUCH_PERSIST_S`)."""
        with self._seen_lock:
            if ts > self._seen.get(name, float("-inf")):
                self._seen[name] = ts
            return ts - self._seen_persisted.get(name, float("-inf")) >= TOUCH_PERSIST_S

    @staticmethod
    def _device_row(conn: Connection, name: str) -> dict | None:
        row = conn.execute(_SELECT_DEVICE, {"name": name}).mappings().first()
        return dict(row) if row is not None else None

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
            "auto_mute": bool(dev["auto_mute"]),
            "settings": settings_view(dev.get("settings"), dev.get("settings_reported")),
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
            # review (issue 4); a segment the ingest just opened has no such keys yet
            "detected_label": seg.get("detected_label"),
            "review": seg.get("review"),
            "reviewed_by": seg.get("reviewed_by"),
            "reviewed_ts": seg.get("reviewed_ts"),
        }

    @staticmethod
    def event_dict(ev: RowMapping | dict, device: str) -> dict[str, Any]:
        return {"device": device, **{k: ev[k] for k in _EVENT_FIELDS}}

    @staticmethod
    def firing_dict(f: RowMapping | dict, device: str) -> dict[str, Any]:
        return {"id": f["id"], "device": device, **{k: f[k] for k in _FIRING_FIELDS}}

    # ------------------------------------------------------------------ writes (each a batch of one)
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
            self.counters.reject("unknown_device")
            return Change(rejected="unknown_device")
        with self.batch() as b:
            return b.availability(device, value, ts, retained=retained)

    def state(self, payload: StatePayload, received: float | None = None, *, retained: bool = False) -> Change:
        """Record a device's current state; a live one opens a segment if none is open. ``received`` (server time,
        the device's sign of life) defaults to the payload's own ``ts``."""
        if not self._allowed(payload.device):
            self.counters.reject("unknown_device")
            return Change(rejected="unknown_device")
        with self.batch() as b:
            return b.state(payload, received, retained=retained)

    def ingest_event(self, payload: EventPayload, received_ts: float) -> IngestResult:
        """Store one event and apply it to the device's segments (see the module's rules)."""
        if not self._allowed(payload.device):
            self.counters.reject("unknown_device")
            return IngestResult(rejected="unknown_device", status="unknown_device")
        with self.batch() as b:
            return b.ingest_event(payload, received_ts)

    def interrupt_open_segment(self, device: str, ts: float) -> Change:
        """End the device's open segment as ``interrupted`` at its last sign of life (at most ``ts``)."""
        with self.batch() as b:
            return b.interrupt_open_segment(device, ts)

    def touch(self, device: str, ts: float) -> bool:
        """A live sign of life (telemetry): kept in memory, written at most every :data:`TOUCH_PERSIST_S`.

        Returns whether the device is accepted (see :meth:`is_known`); an unannounced allowlisted device is created.
        """
        if not self.is_known(device):
            return False
        if device in self._known and not self._remember_seen(device, ts):  # the common case: memory only
            return True
        with self.batch() as b:
            return b.touch(device, ts)

    def record_firing(self, device: str, *, rule: str, action: str, reason: str, topic: str, payload: str, ts: float,
                      event_id: str | None = None) -> tuple[dict, dict]:
        """Store a rule's command and the device's new mute state; returns ``(Firing, Device)`` dicts."""
        with self.batch() as b:
            return b.record_firing(device, rule=rule, action=action, reason=reason, topic=topic, payload=payload,
                                   ts=ts, event_id=event_id)

    # ------------------------------------------------------------------ reads
    def devices(self) -> list[dict]:
        """The devices, by name; without the device rows of recordings sent for review (``server.recordings``)."""
        q = (select(DEVICES).where(~DEVICES.c.name.startswith(RECORDING_PREFIX, autoescape=True))
             .order_by(DEVICES.c.name))
        with self._read() as conn:
            return [self.device_dict(d) for d in conn.execute(q).mappings()]

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

