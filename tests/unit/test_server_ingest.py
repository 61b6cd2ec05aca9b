"""Ingest in batches: one transaction per batch, a SAVEPOINT per message, effects and acknowledgements only after the
commit, in order; the worker thread, its bounded queue and the watchdog's looks on it. A real SQLite file migrated by
Alembic, the real store, rules and Realtime (over a recording Socket.IO stand-in); no broker."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import insert

from adbreak.wire import Availability, EventPayload, EventType, Kind, new_event_id
from server import db
from server.bridge import Message
from server.ingest import Ingest
from server.realtime import Realtime
from server.rules import AutoMute, MuteConfig
from server.store import DEVICES, BatchBroken, SegmentStore


# ---------------------------------------------------------------------------------------------------- helpers
class Recorder:
    """Stands in for the bridge's publish; ``check`` (if set) runs at each command, e.g. to look at the database."""

    def __init__(self, check=None) -> None:
        self.sent: list[tuple[str, str]] = []
        self.threads: list[str] = []
        self.check = check

    def __call__(self, topic: str, payload, qos: int, retain: bool) -> bool:
        if self.check is not None:
            self.check(topic, payload)
        self.sent.append((topic, payload))
        self.threads.append(threading.current_thread().name)
        return True


class FakeSocketIO:
    """What Realtime emits on: records (event, data)."""

    def __init__(self) -> None:
        self.emitted: list[tuple[str, dict]] = []

    def emit(self, name: str, data: dict, namespace: str) -> None:
        self.emitted.append((name, data))

    def of(self, name: str) -> list[dict]:
        return [d for n, d in self.emitted if n == name]


class Acks:
    def __init__(self, check=None) -> None:
        self.done: list[str] = []
        self.check = check

    def __call__(self, key: str):
        def ack() -> None:
            if self.check is not None:
                self.check(key)
            self.done.append(key)
        return ack


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    db.upgrade(f"sqlite:///{tmp_path / 'adbreak.db'}")
    return tmp_path / "adbreak.db"


@pytest.fixture
def store(db_path):
    engine = db.make_engine(f"sqlite:///{db_path}")
    yield SegmentStore(db.make_sessionmaker(engine))
    engine.dispose()


def rows(path: Path, sql: str, *args) -> list[tuple]:
    """Through a connection of its own: only what is committed."""
    with sqlite3.connect(path) as conn:
        return conn.execute(sql, args).fetchall()


def online(device: str, ack=None) -> Message:
    return Message(Kind.AVAILABLE, device, Availability.ONLINE, False, time.time(), ack)


def event(device: str, seq: int, kind: str, *, event_id: str | None = None, ack=None, at: float | None = None
          ) -> Message:
    at = time.time() - 1 if at is None else at
    ev = EventPayload(device=device, event_id=event_id or new_event_id(), seq=seq, type=EventType(kind),
                      boundary_ts=at, decided_ts=at + 0.5, boundary_stream_t=seq * 10.0,
                      decided_stream_t=seq * 10.0 + 0.5, confidence=0.9, model_version="m1")
    return Message(Kind.EVENT, device, ev, False, at + 0.6, ack)


def make(store, *, publish=None, **kw) -> tuple[Ingest, Recorder, FakeSocketIO]:
    """Wired as ``server.app`` wires them."""
    publish = publish or Recorder()
    sio = FakeSocketIO()
    realtime = Realtime(sio)

    def on_firing(firing: dict, device: dict) -> None:
        realtime.firing(firing)
        realtime.device(device)

    rules = AutoMute(MuteConfig(), store, publish, on_firing=on_firing)
    return Ingest(store, rules, realtime, **kw), publish, sio


def segments_of(path: Path, device: str) -> list[tuple]:
    return rows(path, "SELECT s.label, s.status FROM segments s JOIN devices d ON d.id = s.device_id "
                      "WHERE d.name = ? ORDER BY s.id", device)


# ---------------------------------------------------------------------------------------------------- one batch
def test_a_failing_message_rolls_back_alone_and_the_rest_of_the_batch_is_stored(store, db_path, monkeypatch):
    ingest, publish, sio = make(store)
    acks = Acks()
    ingest.apply_batch([online("tv1"), online("tv2")])
    sio.emitted.clear()
    bad = event("tv1", 3, "ad_start", ack=acks("tv1#3"))
    batch = [event("tv1", 1, "ad_start", ack=acks("tv1#1")), event("tv2", 1, "ad_start", ack=acks("tv2#1")),
             event("tv1", 2, "ad_end", ack=acks("tv1#2")), bad, event("tv2", 2, "ad_end", ack=acks("tv2#2")),
             event("tv1", 4, "ad_start", ack=acks("tv1#4"))]

    on_event = ingest.rules.on_event

    def failing_on_event(result, **kw):
        fired = on_event(result, **kw)  # the event, its segments and its firing are written, then it fails
        if result.event["event_id"] == bad.payload.event_id:
            raise RuntimeError("a bug in one message")
        return fired

    monkeypatch.setattr(ingest.rules, "on_event", failing_on_event)
    ingest.apply_batch(batch)

    stored = [r[0] for r in rows(db_path, "SELECT event_id FROM events ORDER BY id")]
    assert stored == [m.payload.event_id for m in batch if m is not bad]
    assert rows(db_path, "SELECT count(*) FROM rule_firings WHERE event_id = ?", bad.payload.event_id) == [(0,)]
    # the event after the failed one saw the state before it (the cache was reloaded, not left as the bad one left it)
    assert segments_of(db_path, "tv1") == [("ad", "closed"), ("program", "closed"), ("ad", "open")]
    assert segments_of(db_path, "tv2") == [("ad", "closed"), ("program", "open")]
    assert rows(db_path, "SELECT name, last_seq, muted FROM devices ORDER BY name") == [("tv1", 4, 1), ("tv2", 2, 0)]
    # effects of the committed messages only, in their order; every message acknowledged, the failed one included
    assert publish.sent == [("adbreak/tv1/mute/set", "ON"), ("adbreak/tv2/mute/set", "ON"),
                            ("adbreak/tv1/mute/set", "OFF"), ("adbreak/tv2/mute/set", "OFF"),
                            ("adbreak/tv1/mute/set", "ON")]
    assert acks.done == ["tv1#1", "tv2#1", "tv1#2", "tv1#3", "tv2#2", "tv1#4"]
    assert store.counters.get("events_ingested") == 5 and store.counters.get("rule_firings") == 5
    pushed_ids = {s["id"] for s in sio.of("segment")}
    assert pushed_ids == {r[0] for r in rows(db_path, "SELECT id FROM segments")}
    assert [f["event_id"] for f in sio.of("firing")] == [m.payload.event_id for m in batch if m is not bad]
    # device pushes coalesced: one per device per batch, in its final state
    devices = sio.of("device")
    assert sorted(d["name"] for d in devices) == ["tv1", "tv2"]
    final = {d["name"]: (d["last_seq"], d["muted"]) for d in devices}
    assert final == {"tv1": (4, True), "tv2": (2, False)}


def test_a_database_error_in_a_message_undoes_its_writes_and_the_cached_state(store, db_path):
    ingest, publish, _ = make(store)
    ingest.apply_batch([online("tv1")])

    def breaks_a_constraint(batch):
        batch.record_firing("tv1", rule="auto_mute", action="mute", reason="ad_start", topic="t", payload="ON",
                            ts=time.time())
        batch.conn.execute(insert(DEVICES).values(name="tv1"))  # UNIQUE(name): IntegrityError

    seen: list[bool] = []
    ingest.apply_batch([breaks_a_constraint, lambda batch: seen.append(batch.is_muted("tv1")),
                        event("tv1", 1, "ad_start")])
    assert seen == [False]  # the rolled-back mute is not in the cache either
    assert rows(db_path, "SELECT action, event_id IS NOT NULL FROM rule_firings") == [("mute", 1)]
    assert publish.sent == [("adbreak/tv1/mute/set", "ON")]
    assert store.counters.get("rule_firings") == 1


def test_effects_and_acknowledgements_only_after_the_commit(store, db_path):
    batch = [event(f"tv{i % 3}", i // 3 + 1, "ad_start" if (i // 3) % 2 == 0 else "ad_end") for i in range(12)]
    ids = [m.payload.event_id for m in batch]

    def all_committed(*_):
        # another connection sees every event and firing of the batch before any command, push or acknowledgement
        assert rows(db_path, "SELECT count(*) FROM events") == [(12,)]
        assert rows(db_path, "SELECT count(*) FROM rule_firings") == [(12,)]

    publish = Recorder(check=all_committed)
    ingest, _, sio = make(store, publish=publish)
    ingest.apply_batch([online("tv0"), online("tv1"), online("tv2")])
    sio.emit = lambda name, data, namespace: all_committed()  # type: ignore[method-assign]
    acks = Acks(check=all_committed)
    batch = [Message(m.kind, m.device, m.payload, m.retained, m.received, acks(m.payload.event_id)) for m in batch]
    ingest.apply_batch(batch)
    assert len(publish.sent) == 12 and acks.done == ids


def test_a_batch_that_fails_as_a_whole_does_nothing_then_applies_each_message_once(store, db_path):
    ingest, publish, sio = make(store)
    ingest.apply_batch([online("tv1")])
    sio.emitted.clear()
    acks = Acks()
    calls = []

    def transaction_lost_once(batch):
        calls.append(1)
        if len(calls) == 1:
            raise BatchBroken("the transaction is gone")

    batch = [event("tv1", 1, "ad_start", ack=acks("1")), transaction_lost_once,
             event("tv1", 2, "ad_end", ack=acks("2"))]
    ingest.apply_batch(batch)
    assert len(calls) == 2  # the job ran again, alone
    assert rows(db_path, "SELECT seq FROM events ORDER BY id") == [(1,), (2,)]
    assert publish.sent == [("adbreak/tv1/mute/set", "ON"), ("adbreak/tv1/mute/set", "OFF")]  # once each
    assert len(sio.of("firing")) == 2 and len(sio.of("segment")) == 3
    assert acks.done == ["1", "2"]
    assert store.counters.get("events_ingested") == 2 and store.counters.get("rule_firings") == 2


def test_order_duplicates_and_out_of_order_within_one_batch(store, db_path):
    ingest, publish, _ = make(store)
    first = event("tv1", 1, "ad_start")
    batch = [online("tv1"),
             first,
             event("tv1", 1, "ad_start", event_id=first.payload.event_id),  # QoS 1 redelivery: duplicate
             event("tv1", 3, "ad_end"),
             event("tv1", 2, "ad_start"),  # out of order
             event("tv1", 4, "ad_start", event_id=first.payload.event_id),  # same id, new seq: still a duplicate
             event("tv1", 5, "ad_start")]
    ingest.apply_batch(batch)
    assert rows(db_path, "SELECT seq, type FROM events ORDER BY id") == [(1, "ad_start"), (3, "ad_end"),
                                                                         (5, "ad_start")]
    assert store.counters.rejected("duplicate") == 2 and store.counters.rejected("out_of_order") == 1
    assert segments_of(db_path, "tv1") == [("ad", "closed"), ("program", "closed"), ("ad", "open")]
    assert [p for _, p in publish.sent] == ["ON", "OFF", "ON"]
    assert rows(db_path, "SELECT last_seq, muted FROM devices") == [(5, 1)]
    # and the same store goes on in later batches, with its cache in step
    ingest.apply_batch([event("tv1", 6, "ad_end"), event("tv1", 5, "ad_end")])
    assert store.device("tv1")["last_seq"] == 6 and store.counters.rejected("out_of_order") == 2


def test_a_refused_message_keeps_its_acknowledgement_in_order(store):
    ingest, _, _ = make(store)
    acks = Acks()
    ingest.apply_batch([online("tv1", ack=acks("a")), Message(None, None, None, False, time.time(), acks("refused")),
                        event("tv1", 1, "ad_start", ack=acks("b")), event("ghost", 1, "ad_start", ack=acks("c"))])
    assert acks.done == ["a", "refused", "b", "c"]
    assert store.counters.rejected("unknown_device") == 1


# ---------------------------------------------------------------------------------------------------- the worker
def test_the_worker_batches_what_is_queued_in_order_and_loses_nothing(store, db_path, monkeypatch):
    ingest, publish, _ = make(store, batch_max=64)
    devices = [f"tv{i}" for i in range(10)]
    for dev in devices:
        ingest.submit(online(dev))
    batches: list[int] = []
    apply_batch = ingest.apply_batch
    monkeypatch.setattr(ingest, "apply_batch", lambda items: (batches.append(len(items)), apply_batch(items)))
    gate = threading.Event()
    acks = Acks()
    ingest.start()
    try:
        ingest.call(lambda batch: gate.wait(10))  # hold the worker while the queue fills
        n = 1000
        for i in range(n):
            dev, seq = devices[i % 10], i // 10 + 1
            ingest.submit(event(dev, seq, "ad_start" if seq % 2 else "ad_end", ack=acks(f"{dev}#{seq}")))
        gate.set()
        assert ingest.flush(timeout=60)
    finally:
        ingest.stop()
    assert len(acks.done) == n and acks.done == [f"{devices[i % 10]}#{i // 10 + 1}" for i in range(n)]
    assert rows(db_path, "SELECT count(*) FROM events") == [(n,)]
    for dev in devices:
        seqs = [r[0] for r in rows(db_path, "SELECT e.seq FROM events e JOIN devices d ON d.id = e.device_id "
                                            "WHERE d.name = ? ORDER BY e.id", dev)]
        assert seqs == list(range(1, n // 10 + 1))
    assert store.counters.get("events_ingested") == n and len(publish.sent) == n
    assert sum(batches) == n + 1 and max(batches) == 64 and len(batches) <= 1 + -(-n // 64) + 1
    assert set(publish.threads) == {"adbreak-ingest"}


def test_a_full_queue_makes_submit_wait_and_drops_nothing(store, db_path):
    ingest, _, _ = make(store, batch_max=2, queue_max=4)
    ingest.submit(online("tv1"))
    gate = threading.Event()
    ingest.start()
    done = threading.Event()

    def producer() -> None:
        for seq in range(1, 21):
            ingest.submit(event("tv1", seq, "ad_start" if seq % 2 else "ad_end"))
        done.set()

    try:
        ingest.call(lambda batch: gate.wait(10))
        thread = threading.Thread(target=producer)
        thread.start()
        deadline = time.monotonic() + 10
        while not ingest._queue.full() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ingest._queue.full()
        assert not done.is_set()  # 20 messages do not fit: the producer waits for room
        gate.set()
        thread.join(10)
        assert done.is_set()
        assert ingest.flush(timeout=30)
    finally:
        gate.set()
        ingest.stop()
    assert rows(db_path, "SELECT seq FROM events ORDER BY id") == [(s,) for s in range(1, 21)]


def test_stop_applies_what_is_queued_and_later_messages_are_applied_at_once(store, db_path):
    ingest, _, _ = make(store)
    ingest.start()
    ingest.submit(online("tv1"))
    for seq in range(1, 51):
        ingest.submit(event("tv1", seq, "ad_start"))
    ingest.stop()
    assert not ingest.running
    assert rows(db_path, "SELECT count(*) FROM events") == [(50,)]
    ingest.submit(event("tv1", 51, "ad_end"))  # no worker: applied in this thread
    assert rows(db_path, "SELECT count(*) FROM events") == [(51,)]


def test_the_watchdog_looks_on_the_worker(store, db_path):
    publish = Recorder()
    rules = AutoMute(MuteConfig(max_ad_s=0.3), store, publish)
    ingest = Ingest(store, rules, None)
    ingest.start()
    rules.start_watchdog(0.05, submit=ingest.call)
    try:
        ingest.submit(online("tv1"))
        ingest.submit(event("tv1", 1, "ad_start", at=time.time()))
        deadline = time.monotonic() + 10
        while len(publish.sent) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        rules.stop_watchdog()
        ingest.stop()
    assert [p for _, p in publish.sent] == ["ON", "OFF"]
    assert publish.threads == ["adbreak-ingest", "adbreak-ingest"]  # one writer
    assert rows(db_path, "SELECT reason FROM rule_firings ORDER BY id") == [("ad_start",), ("max_ad_length",)]


# ---------------------------------------------------------------------------------------------------- realtime
def test_realtime_coalesces_device_pushes_in_a_block():
    sio = FakeSocketIO()
    rt = Realtime(sio)
    with rt.coalesce():
        rt.device({"name": "tv1", "v": 1})
        rt.segment({"id": 1})
        rt.device({"name": "tv2", "v": 1})
        with rt.coalesce():
            rt.device({"name": "tv1", "v": 2})
        assert sio.emitted == [("segment", {"id": 1})]
    assert sio.emitted[1:] == [("device", {"name": "tv2", "v": 1}), ("device", {"name": "tv1", "v": 2})]
    rt.device({"name": "tv1", "v": 3})
    assert sio.emitted[-1] == ("device", {"name": "tv1", "v": 3})


def test_realtime_batches_telemetry_latest_per_device():
    sio = FakeSocketIO()
    rt = Realtime(sio, telemetry_batch_s=3600.0)  # the flush below stands in for the timer
    try:
        assert rt.telemetry({"device": "tv1", "stream_t": 1.0}) is True
        assert rt.telemetry({"device": "tv2", "stream_t": 1.0}) is True
        assert rt.telemetry({"device": "tv1", "stream_t": 2.0}) is False  # replaces tv1's queued sample
        assert sio.of("telemetry") == []  # the first batch waits for its interval
        assert rt.flush_telemetry() == 2
        # one list, the latest sample of each device, in the order those samples came
        assert sio.of("telemetry") == [[{"device": "tv2", "stream_t": 1.0}, {"device": "tv1", "stream_t": 2.0}]]
        assert rt.flush_telemetry() == 0 and len(sio.of("telemetry")) == 1  # nothing queued: no emit
        rt.telemetry({"device": "tv3", "stream_t": 5.0})
    finally:
        rt.stop()  # sends what is queued
    assert sio.of("telemetry")[-1] == [{"device": "tv3", "stream_t": 5.0}]


def test_realtime_sends_telemetry_on_its_own_every_batch_interval():
    sio = FakeSocketIO()
    rt = Realtime(sio, telemetry_batch_s=0.05)
    try:
        rt.telemetry({"device": "tv1", "stream_t": 1.0})
        deadline = time.monotonic() + 5
        while not sio.of("telemetry") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sio.of("telemetry")[0] == [{"device": "tv1", "stream_t": 1.0}]
    finally:
        rt.stop()


def test_a_late_event_is_stored_and_counted_but_mutes_nothing(store, db_path):
    ingest, publish, _sio = make(store, late_event_s=15.0)
    ingest.apply_batch([online("tv1")])
    late = event("tv1", 1, "ad_start")
    late = Message(late.kind, late.device, late.payload, False, late.payload.decided_ts + 40.0, None)
    ingest.apply_batch([late])
    assert segments_of(db_path, "tv1")[-1] == ("ad", "open")
    assert publish.sent == [] and store.counters.get("events_late") == 1
    ingest.apply_batch([event("tv1", 2, "ad_end"), event("tv1", 3, "ad_start")])  # live again: mutes
    assert [p for _t, p in publish.sent] == ["ON"]
    assert store.counters.get("events_late") == 1
