"""The reorder hold of ``server.ingest`` (shared subscriptions): an event that comes before the ones it follows is held
unacknowledged until the gap fills, and applied over the gap only when its device's sequence stops moving. On a real
database (SQLite and PostgreSQL: ``db_engine``)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from adbreak.wire import Availability, EventPayload, EventType, Kind, new_event_id
from server import db
from server.bridge import Message
from server.ingest import Ingest
from server.store import SegmentStore
from tests.db_support import migrated_url, query
from tests.support import wait_for

pytestmark = pytest.mark.usefixtures("db_engine")


@pytest.fixture
def store(tmp_path: Path):
    engine = db.make_engine(url := migrated_url(tmp_path))
    s = SegmentStore(db.make_sessionmaker(engine))
    s.url = url  # type: ignore[attr-defined]
    s.availability("tv1", Availability.ONLINE, time.time())
    yield s
    engine.dispose()


class Acks:
    def __init__(self) -> None:
        self.done: list[int] = []
        self.lock = threading.Lock()

    def __call__(self, seq: int):
        def ack() -> None:
            with self.lock:
                self.done.append(seq)
        return ack


def event(seq: int, acks: Acks) -> Message:
    at = time.time() - 1
    ev = EventPayload(device="tv1", event_id=new_event_id(), seq=seq,
                      type=EventType.AD_START if seq % 2 else EventType.AD_END, boundary_ts=at + seq,
                      decided_ts=at + seq + 0.5, boundary_stream_t=seq * 10.0, decided_stream_t=seq * 10.0 + 0.5,
                      confidence=0.9, model_version="m1")
    return Message(Kind.EVENT, "tv1", ev, False, at + 0.6, acks(seq))


def seqs(store) -> list[int]:
    return [r[0] for r in query(store.url, "SELECT seq FROM events ORDER BY id")]


def test_a_held_event_waits_unacknowledged_for_its_gap_then_applies_in_order(store):
    ingest = Ingest(store, None, None)
    ingest.reorder_hold_s = 5.0
    ingest.start()
    acks = Acks()
    try:
        ingest.submit(event(1, acks))
        ingest.submit(event(3, acks))  # seq 2 is on "another server"
        wait_for(lambda: store.counters.get("events_held") == 1, timeout=5)
        time.sleep(0.3)  # retried many times meanwhile
        assert seqs(store) == [1] and acks.done == [1]  # 3 neither stored nor acknowledged
        ingest.submit(event(2, acks))
        wait_for(lambda: seqs(store) == [1, 2, 3], timeout=5, what="the gap filled")
        wait_for(lambda: sorted(acks.done) == [1, 2, 3], timeout=5)
        assert store.counters.rejected("out_of_order") == 0
        assert [s["label"] for s in store.segments(device="tv1")] == ["ad", "program", "ad"]
    finally:
        ingest.stop()


def test_a_gap_that_never_fills_is_applied_over_after_the_hold_without_progress(store):
    ingest = Ingest(store, None, None)
    ingest.reorder_hold_s = 0.5
    ingest.start()
    acks = Acks()
    try:
        ingest.submit(event(1, acks))
        ingest.submit(event(3, acks))
        start = time.monotonic()
        wait_for(lambda: seqs(store) == [1, 3], timeout=10, what="applied over the gap")
        assert time.monotonic() - start >= 0.45
        wait_for(lambda: sorted(acks.done) == [1, 3], timeout=5)
    finally:
        ingest.stop()


def test_without_the_hold_an_event_beyond_the_next_applies_at_once(store):
    ingest = Ingest(store, None, None)  # one server: reorder_hold_s = 0, as before
    acks = Acks()
    ingest.submit(event(1, acks))
    ingest.submit(event(3, acks))
    assert seqs(store) == [1, 3] and acks.done == [1, 3]
    assert store.counters.get("events_held") == 0
