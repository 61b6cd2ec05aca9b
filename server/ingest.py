"""``Ingest``: what happens to each parsed MQTT message. The bridge hands messages here; this applies them to the
store, lets the auto-mute rule decide, and pushes what changed to the browsers. The orchestrator between
``MqttBridge`` (transport), ``SegmentStore`` (data), ``AutoMute`` (rules) and ``Realtime`` (Socket.IO).

Messages are applied in batches by one worker thread, the single writer:

* :meth:`Ingest.submit` (paho's thread) puts a message on a bounded queue; when the queue is full it waits for room,
  never drops (paho then reads no more, and the broker keeps the rest);
* the worker takes what is queued, up to ``batch_max`` messages, and applies them in arrival order in ONE write
  transaction, each message in its own SAVEPOINT: a message that fails is rolled back alone (logged, and still
  acknowledged: a redelivery would fail the same way) and the others are stored; reads inside the batch (the
  sequence check, the mute state, the open segment) see its own writes;
* after the commit, in order: the counters, the MQTT mute commands, the Socket.IO pushes (``device`` pushes once per
  device per batch), then the MQTT acknowledgements, so the broker forgets a message only once it is stored;
* if the transaction as a whole fails (the commit, or a savepoint that cannot be rolled back), nothing of it was
  stored and nothing of it was done: its messages are applied again one transaction each.

Shared subscriptions (several servers, ``reorder_hold_s`` > 0): one device's events may reach two servers, and seq
n+1 may be applied before seq n, which would then be refused as ``out_of_order``. So an event whose ``seq`` is
beyond the next one expected is held: not applied, not acknowledged, and submitted again every
:data:`HOLD_RETRY_S` until the gap is filled (by this server or another), or until the device's sequence has not
moved for ``reorder_hold_s``; then it is applied over the gap (``docs/scaling.md``).

Other writers queue a job (:meth:`Ingest.call`, e.g. the mute watchdog's look), so all writes come from one thread.
Without a running worker (not started, or stopped) messages and jobs are applied at once in the caller's thread.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext

from adbreak.wire import Availability, EventPayload, Kind, StatePayload, TelemetryPayload
from server.bridge import Message
from server.counters import RateLimitedLog
from server.realtime import Realtime
from server.rules import AutoMute
from server.store import BatchBroken, Change, SegmentStore, WriteBatch

log = logging.getLogger(__name__)

BATCH_MAX = 256
"""At most this many messages per transaction."""
QUEUE_MAX = 1024
"""Messages waiting for the worker; beyond this ``submit`` waits."""
FULL_LOG_S = 10.0
HOLD_RETRY_S = 0.02
"""A held event (see ``reorder_hold_s``) is tried again this often."""
LATE_EVENT_S = 15.0
"""Default of ``Ingest.late_event_s`` (``ADBREAK_SERVER_LATE_EVENT_S``)."""

Job = Callable[[WriteBatch], object]
_STOP = object()


class JobRefused(Exception):
    """Raised by a job (see :meth:`Ingest.run`) that refuses its request, e.g. a correction of a segment that does
    not exist: its writes roll back, it is not logged as a failure, and ``run`` re-raises it to the caller."""


class Ingest:
    def __init__(self, store: SegmentStore, rules: AutoMute | None, realtime: Realtime | None, *,
                 batch_max: int = BATCH_MAX, queue_max: int = QUEUE_MAX,
                 late_event_s: float = LATE_EVENT_S) -> None:
        if batch_max < 1 or queue_max < 1:
            raise ValueError("batch_max and queue_max must be at least 1")
        self.store = store
        self.rules = rules
        self.realtime = realtime
        self.device_listeners: list[Callable[[dict], object]] = []
        self.handlers: dict[Kind, Callable[[WriteBatch, Message], None]] = {}
        """Handlers of the kinds not applied here (keyframes, settings state: ``server.keyframes``,
        ``server.device_settings``), by kind; called like :meth:`apply`."""
        self.rule_runner = None  # server.rule_runner.RuleRunner: user rules get the same triggers as AutoMute
        """Called with the ``Device`` dict after each commit that changed a device (e.g. Home Assistant discovery)."""
        self.batch_max = batch_max
        self.reorder_hold_s = 0.0
        """Hold an event that comes before the ones it follows for up to this long (0: never; shared subscriptions)."""
        self._held: dict[str, tuple[float, int]] = {}  # event id -> (held since, the device's last seq then)
        self._holding: set[str] = set()  # event ids held by the batch being applied (the applying thread's)
        self.late_event_s = late_event_s
        """An event received more than this many seconds after the edge decided it starts nothing (no mute, no
        user rule; see ``server.rules``)."""
        self._queue: queue.Queue[Message | Job | object] = queue.Queue(maxsize=queue_max)
        self._rejects = RateLimitedLog(log)
        self._thread: threading.Thread | None = None
        self._running = False
        self._done = threading.Condition()
        self._submitted = 0  # items put on the queue
        self._finished = 0  # items the worker is done with (applied, effects run, acknowledged)

    # ------------------------------------------------------------------ lifecycle
    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> None:
        """Start the worker thread."""
        if self._thread is not None:
            return
        self._running = True
        self._thread = threading.Thread(target=self._work, name="adbreak-ingest", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Apply what is queued, then stop the worker; from then on messages are applied in the caller's thread."""
        thread = self._thread
        if thread is None:
            return
        self._running = False
        self._put(_STOP, count=False)
        thread.join(timeout)
        if thread.is_alive():
            log.error("the ingest worker did not stop within %.0f s", timeout)
            return
        self._thread = None

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything submitted so far is applied and acknowledged; False on timeout."""
        with self._done:
            target = self._submitted
            return self._done.wait_for(lambda: self._finished >= target or not self._running, timeout)

    # ------------------------------------------------------------------ entry points (any thread)
    def submit(self, message: Message) -> None:
        """Queue one message for the worker (the bridge's sink); waits while the queue is full, never drops."""
        if not self._running:
            self.apply_batch([message])
            return
        self._put(message)

    def call(self, job: Job) -> None:
        """Run ``job(batch)`` on the worker, in order with the messages, in its own SAVEPOINT of a batch."""
        if not self._running:
            self.apply_batch([job])
            return
        self._put(job)

    def run(self, job: Job, timeout: float = 30.0) -> object:
        """Run ``job(batch)`` on the worker like :meth:`call` and wait: its result once its batch has committed, or
        the exception it raised (its writes rolled back). For writes from other threads (API requests) that need an
        answer; they keep the single writer. ``TimeoutError`` if the worker did not get to it in time."""
        done = threading.Event()
        box: dict[str, object] = {}

        def wrapped(batch: WriteBatch) -> None:
            box.pop("error", None)
            try:
                box["result"] = job(batch)
            except BaseException as exc:
                box["error"] = exc
                done.set()
                raise
            batch.after_commit(done.set)

        self.call(wrapped)
        if not done.wait(timeout):
            raise TimeoutError(f"the ingest worker did not run the job within {timeout:.0f} s")
        if "error" in box:
            raise box["error"]  # type: ignore[misc]
        return box.get("result")

    def _put(self, item: object, *, count: bool = True) -> None:
        if count:
            with self._done:
                self._submitted += 1
        waited = 0.0
        while True:
            try:
                self._queue.put(item, timeout=1.0)
                return
            except queue.Full:
                waited += 1.0
                thread = self._thread
                if thread is None or not thread.is_alive():  # nobody will take it: do not wait forever
                    if item is not _STOP:
                        log.error("the ingest worker is gone; applying a message in %s",
                                  threading.current_thread().name)
                        self.apply_batch([item])
                        self._finish(1)
                    return
                if waited % FULL_LOG_S == 0:
                    log.warning("ingest queue full for %.0f s: waiting (the broker keeps what follows)", waited)

    def _finish(self, n: int) -> None:
        with self._done:
            self._finished += n
            self._done.notify_all()

    # ------------------------------------------------------------------ the worker
    def _work(self) -> None:
        stop = False
        while not stop:
            items = [self._queue.get()]
            while len(items) < self.batch_max:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if any(item is _STOP for item in items):
                stop = True
                items = [i for i in items if i is not _STOP]
                # what was queued behind the stop marker (a late submit) is applied too
                while True:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is not _STOP:
                        items.append(item)
            for start in range(0, len(items), self.batch_max):
                chunk = items[start:start + self.batch_max]
                try:
                    self.apply_batch(chunk)
                except Exception:  # never let the worker die
                    log.exception("ingest worker: a batch of %d failed", len(chunk))
                self._finish(len(chunk))

    def apply_batch(self, items: list[Message | Job]) -> None:
        """Apply messages (and jobs) in one transaction, in this thread, in order; after the commit run their
        effects, then acknowledge the messages (every one, applied, refused or failed)."""
        coalesce = self.realtime.coalesce() if self.realtime is not None else nullcontext()
        devices = {i.device for i in items if isinstance(i, Message) and i.device is not None}
        self._holding = set()
        with coalesce:
            try:
                with self.store.batch(lock=devices) as batch:
                    for item in items:
                        self._apply_one(batch, item)
            except Exception:
                if len(items) == 1:
                    log.exception("applying %s failed; it is not stored", _describe(items[0]))
                else:
                    log.exception("a batch of %d messages failed as a whole; applying them one by one", len(items))
                    self._holding = set()
                    for item in items:
                        try:
                            with self.store.batch(lock=[item.device] if isinstance(item, Message) and item.device
                                                  else ()) as batch:
                                self._apply_one(batch, item)
                        except Exception:
                            log.exception("applying %s failed; it is not stored", _describe(item))
        for item in items:
            if self._holding and _held_id(item) in self._holding:
                timer = threading.Timer(HOLD_RETRY_S, self.submit, (item,))
                timer.daemon = True
                timer.start()
                continue  # not acknowledged: not applied yet
            ack = getattr(item, "ack", None)
            if ack is not None:
                try:
                    ack()
                except Exception:
                    log.exception("acknowledging %s failed", _describe(item))

    def _apply_one(self, batch: WriteBatch, item: object) -> None:
        """One message or job in its own SAVEPOINT; its failure is logged and rolls back only its own writes."""
        if isinstance(item, Message) and item.kind is None:
            return  # refused by the contract: only its acknowledgement
        try:
            with batch.message():
                if isinstance(item, Message):
                    self.apply(batch, item)
                else:
                    item(batch)  # type: ignore[operator]
        except BatchBroken:
            raise
        except JobRefused as exc:
            log.debug("a job refused: %s", exc)
        except Exception:
            log.exception("applying %s failed; rolled back, the rest of the batch goes on", _describe(item))

    # ------------------------------------------------------------------ what each message does
    def apply(self, batch: WriteBatch, message: Message) -> None:
        """Apply one parsed message inside ``batch``: store, rule, then (after the commit) pushes."""
        payload = message.payload
        if message.kind is Kind.EVENT:
            assert isinstance(payload, EventPayload)
            self._event(batch, payload, message.retained, message.received)
        elif message.kind is Kind.TELEMETRY:
            assert isinstance(payload, TelemetryPayload)
            self._telemetry(batch, payload, message.retained, message.received)
        elif message.kind is Kind.AVAILABLE:
            assert isinstance(payload, Availability) and message.device is not None
            self._availability(batch, message.device, payload, message.retained, message.received)
        elif message.kind is Kind.STATE:
            assert isinstance(payload, StatePayload)
            self._state(batch, payload, message.retained, message.received)
        elif message.kind in self.handlers:
            self.handlers[message.kind](batch, message)
        else:
            raise ValueError(f"no handler for {message.kind!r}")

    def _rejected(self, device: str, reason: str, what: str) -> None:
        level = logging.DEBUG if reason == "duplicate" else logging.WARNING
        self._rejects.log(level, reason, "%s from %s rejected: %s", what, device, reason)

    def push_device(self, batch: WriteBatch, device: dict) -> None:
        """After the commit, push a changed ``Device`` dict (Socket.IO and the device listeners)."""
        self._push(batch, Change(device=device))

    def _push(self, batch: WriteBatch, change: Change) -> None:
        if change.device is not None:
            for listener in self.device_listeners:
                batch.after_commit(listener, change.device)
        if self.realtime is None:
            return
        for seg in change.segments:
            batch.after_commit(self.realtime.segment, seg)
        if change.device is not None:
            batch.after_commit(self.realtime.device, change.device)

    def _availability(self, batch: WriteBatch, device: str, value: Availability, retained: bool,
                      received: float) -> None:
        change = batch.availability(device, value, received, retained=retained)
        if change.rejected:
            self._rejected(device, change.rejected, f"availability {value.value}")
            return
        batch.after_commit(log.info, "%s is %s%s", device, value.value, " (retained)" if retained else "")
        self._push(batch, change)
        if self.rules is not None:
            self.rules.on_availability(device, value, retained=retained, batch=batch)
        if self.rule_runner is not None:
            self.rule_runner.on_availability(device, value, retained=retained, batch=batch)

    def _state(self, batch: WriteBatch, payload: StatePayload, retained: bool, received: float) -> None:
        change = batch.state(payload, received, retained=retained)
        if change.rejected:
            self._rejected(payload.device, change.rejected, "state")
            return
        self._push(batch, change)

    def _event(self, batch: WriteBatch, payload: EventPayload, retained: bool, received: float) -> None:
        hold = False
        if self.reorder_hold_s > 0:
            now = time.monotonic()
            hold = now - self._held.get(payload.event_id, (now, 0))[0] < self.reorder_hold_s
        result = batch.ingest_event(payload, received, hold_gap=hold)
        if result.status == "held":
            last_seq = result.device["last_seq"] if result.device is not None else 0
            since, seen = self._held.get(payload.event_id, (None, None))
            if since is None:
                batch.after_commit(self.store.counters.incr, "events_held")
            if since is None or seen != last_seq:  # the device moved on: the gap is filling, wait on
                self._held[payload.event_id] = (time.monotonic(), last_seq)
            self._holding.add(payload.event_id)
            return
        if self._held.pop(payload.event_id, None) is not None and not hold and result.ingested:
            log.warning("%s: event seq %d waited %.1f s for the events before it in vain; applied over the gap",
                        payload.device, payload.seq, self.reorder_hold_s)
        if not result.ingested:
            self._rejected(payload.device, result.status, f"event {payload.event_id} (seq {payload.seq})")
            return
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s: %s seq %d at %.3f", payload.device, payload.type.value, payload.seq, payload.boundary_ts)
        self._push(batch, result)
        late_s = received - payload.decided_ts
        late = late_s > self.late_event_s
        if late and result.opened is not None:
            batch.after_commit(log.info, "%s: %s seq %d arrived %.0f s after it was decided: stored, nothing fired",
                               payload.device, payload.type.value, payload.seq, late_s)
            batch.after_commit(self.store.counters.incr, "events_late")
        if self.rules is not None:
            self.rules.on_event(result, retained=retained, late=late, batch=batch)
        if self.rule_runner is not None:
            self.rule_runner.on_event(result, retained=retained, late=f"late by {late_s:.0f} s" if late else None,
                                      batch=batch)

    def _telemetry(self, batch: WriteBatch, payload: TelemetryPayload, retained: bool, received: float) -> None:
        if retained:  # a stale sample a misbehaving publisher retained: no sign of life, nothing to show
            return
        if not batch.touch(payload.device, received):
            batch.after_commit(self.store.counters.reject, "unknown_device")
            self._rejected(payload.device, "unknown_device", "telemetry")
            return
        if self.realtime is not None:
            batch.after_commit(self.realtime.telemetry, payload.model_dump(exclude={"v"}))


def _held_id(item: object) -> str | None:
    return getattr(item.payload, "event_id", None) if isinstance(item, Message) and item.kind is Kind.EVENT else None


def _describe(item: object) -> str:
    if isinstance(item, Message):
        what = item.kind.value if item.kind is not None else "refused message"
        event_id = getattr(item.payload, "event_id", None)
        return f"{what} from {item.device}" + (f" (event {event_id})" if event_id else "")
    return f"job {getattr(item, '__qualname__', item)!r}"
