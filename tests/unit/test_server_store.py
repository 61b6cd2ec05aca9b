"""SegmentStore on a real database migrated by Alembic (a SQLite file; a PostgreSQL database with
both engines: ``db_engine``, ``tests/db_support.py``): ingest rules, segments, counters, queries."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError

from adbreak.wire import Availability, EventPayload, EventType, StatePayload, new_event_id
from server import db
from server.models import Segment
from server.store import SegmentStore
from tests.db_support import migrated_url, query

pytestmark = pytest.mark.usefixtures("db_engine")

T0 = 1_800_000_000.0


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return migrated_url(tmp_path)


@pytest.fixture
def sessions(db_url):
    engine = db.make_engine(db_url)
    yield db.make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def store(sessions) -> SegmentStore:
    return SegmentStore(sessions)


def event(device: str, seq: int, kind: str, boundary: float, *, event_id: str | None = None,
          confidence: float = 0.9) -> EventPayload:
    return EventPayload(device=device, event_id=event_id or new_event_id(), seq=seq, type=EventType(kind),
                        boundary_ts=boundary, decided_ts=boundary + 2.0, boundary_stream_t=boundary - T0,
                        decided_stream_t=boundary - T0 + 2.0, confidence=confidence, model_version="m1")


def state(device: str, label: str, since: float, ts: float) -> StatePayload:
    return StatePayload(device=device, label=label, since_ts=since, since_stream_t=since - T0, confidence=0.8,
                        model_version="m1", ts=ts)


def rows(db_url: str, sql: str) -> list[tuple]:
    return query(db_url, sql)


# ---------------------------------------------------------------------------------------------------- devices
def test_availability_announces_a_device(store):
    change = store.availability("tv1", Availability.ONLINE, T0)
    assert change.rejected is None
    assert change.device["name"] == "tv1"
    assert change.device["availability"] == "online"
    assert change.device["last_seen"] == T0
    assert change.device["muted"] is False and change.device["last_seq"] == 0
    assert store.device("tv1") == change.device
    assert [d["name"] for d in store.devices()] == ["tv1"]


def test_retained_availability_is_no_sign_of_life(store):
    store.availability("tv1", Availability.ONLINE, T0)
    change = store.availability("tv1", Availability.ONLINE, T0 + 100, retained=True)
    assert change.device["last_seen"] == T0


def test_state_updates_device_and_opens_a_segment_only_when_none_is_open(store):
    store.availability("tv1", Availability.ONLINE, T0)
    change = store.state(state("tv1", "program", T0 - 5, T0 + 1), T0 + 1)
    assert change.device["state"] == {"label": "program", "since": T0 - 5, "confidence": 0.8}
    assert change.opened["label"] == "program" and change.opened["start"] == T0 - 5
    assert change.opened["status"] == "open"
    again = store.state(state("tv1", "ad", T0 + 10, T0 + 11), T0 + 11)  # a segment is open: events drive changes
    assert again.opened is None
    assert [s["label"] for s in store.segments()] == ["program"]


def test_retained_state_opens_no_segment(store):
    change = store.state(state("tv1", "program", T0, T0), T0 + 50, retained=True)
    assert change.opened is None and store.segments() == []
    assert change.device["last_seen"] is None


# ---------------------------------------------------------------------------------------------------- events
def test_event_from_an_unannounced_device_is_rejected(store, db_url):
    result = store.ingest_event(event("ghost", 1, "ad_start", T0), T0)
    assert result.status == "unknown_device" and result.rejected == "unknown_device"
    assert store.counters.rejected("unknown_device") == 1
    assert rows(db_url, "SELECT count(*) FROM events") == [(0,)]
    assert store.device("ghost") is None


def test_ad_start_and_end_close_and_open_segments(store):
    store.availability("tv1", Availability.ONLINE, T0)
    store.state(state("tv1", "program", T0, T0), T0)
    r1 = store.ingest_event(event("tv1", 1, "ad_start", T0 + 100), T0 + 103)
    assert r1.ingested
    assert r1.closed["label"] == "program" and r1.closed["end"] == T0 + 100 and r1.closed["status"] == "closed"
    assert r1.opened["label"] == "ad" and r1.opened["start"] == T0 + 100 and r1.opened["end"] is None
    assert r1.device["last_seq"] == 1
    assert r1.event["type"] == "ad_start" and r1.event["received"] == T0 + 103
    r2 = store.ingest_event(event("tv1", 2, "ad_end", T0 + 130), T0 + 131)
    assert r2.closed["label"] == "ad" and (r2.closed["start"], r2.closed["end"]) == (T0 + 100, T0 + 130)
    assert r2.opened["label"] == "program" and r2.opened["start"] == T0 + 130
    segs = store.segments(device="tv1")
    assert [(s["label"], s["start"], s["end"], s["status"]) for s in segs] == [
        ("program", T0, T0 + 100, "closed"),
        ("ad", T0 + 100, T0 + 130, "closed"),
        ("program", T0 + 130, None, "open"),
    ]
    assert store.counters.get("events_ingested") == 2
    assert [e["seq"] for e in store.events(device="tv1")] == [1, 2]


def test_first_event_without_an_open_segment_opens_one(store):
    store.availability("tv1", Availability.ONLINE, T0)
    r = store.ingest_event(event("tv1", 1, "ad_start", T0 + 5), T0 + 6)
    assert r.closed is None and r.opened["label"] == "ad" and r.opened["start"] == T0 + 5


def test_duplicate_event_id_changes_nothing(store, db_url):
    store.availability("tv1", Availability.ONLINE, T0)
    ev = event("tv1", 1, "ad_start", T0 + 5)
    assert store.ingest_event(ev, T0 + 6).ingested
    before = (store.segments(), store.devices(), rows(db_url, "SELECT * FROM events"))
    again = store.ingest_event(ev, T0 + 7)
    assert again.status == "duplicate" and again.opened is None and again.device is None
    assert (store.segments(), store.devices(), rows(db_url, "SELECT * FROM events")) == before
    assert store.counters.rejected("duplicate") == 1
    assert store.counters.get("events_ingested") == 1


def test_same_event_id_with_a_new_seq_is_still_a_duplicate(store):
    store.availability("tv1", Availability.ONLINE, T0)
    eid = new_event_id()
    store.ingest_event(event("tv1", 1, "ad_start", T0 + 5, event_id=eid), T0 + 6)
    assert store.ingest_event(event("tv1", 2, "ad_end", T0 + 9, event_id=eid), T0 + 10).status == "duplicate"


@pytest.mark.parametrize("late_seq", [1, 2])
def test_out_of_order_event_is_not_applied(store, db_url, late_seq):
    store.availability("tv1", Availability.ONLINE, T0)
    store.ingest_event(event("tv1", 1, "ad_start", T0 + 5), T0 + 6)
    store.ingest_event(event("tv1", 2, "ad_end", T0 + 50), T0 + 51)
    late = store.ingest_event(event("tv1", late_seq, "ad_start", T0 + 60), T0 + 61)
    assert late.status == "out_of_order" and late.opened is None
    assert store.counters.rejected("out_of_order") == 1
    assert rows(db_url, "SELECT seq FROM events ORDER BY seq") == [(1,), (2,)]
    assert [s["label"] for s in store.segments()] == ["ad", "program"]
    assert store.device("tv1")["last_seq"] == 2


def test_gaps_in_seq_are_accepted(store):
    store.availability("tv1", Availability.ONLINE, T0)
    store.ingest_event(event("tv1", 1, "ad_start", T0 + 5), T0 + 6)
    assert store.ingest_event(event("tv1", 7, "ad_end", T0 + 50), T0 + 51).ingested


def test_event_of_the_open_label_is_stored_and_changes_no_segment(store, db_url):
    store.availability("tv1", Availability.ONLINE, T0)
    store.ingest_event(event("tv1", 1, "ad_start", T0 + 5), T0 + 6)
    r = store.ingest_event(event("tv1", 2, "ad_start", T0 + 20), T0 + 21)
    assert r.ingested and r.closed is None and r.opened is None
    assert rows(db_url, "SELECT count(*) FROM events") == [(2,)]
    assert [(s["label"], s["start"], s["end"]) for s in store.segments()] == [("ad", T0 + 5, None)]
    assert store.device("tv1")["last_seq"] == 2


def test_boundary_before_the_open_segment_start_is_clamped(store):
    store.availability("tv1", Availability.ONLINE, T0)
    store.ingest_event(event("tv1", 1, "ad_start", T0 + 50), T0 + 51)
    r = store.ingest_event(event("tv1", 2, "ad_end", T0 + 40), T0 + 52)
    assert r.closed["end"] == T0 + 50 and r.opened["start"] == T0 + 50


def test_devices_are_independent(store):
    for dev in ("tv1", "tv2"):
        store.availability(dev, Availability.ONLINE, T0)
    store.ingest_event(event("tv1", 1, "ad_start", T0 + 5), T0 + 6)
    assert store.ingest_event(event("tv2", 1, "ad_start", T0 + 7), T0 + 8).ingested
    assert [s["device"] for s in store.segments()] == ["tv1", "tv2"]
    assert [s["device"] for s in store.segments(device="tv2")] == ["tv2"]


# ---------------------------------------------------------------------------------------------------- interruptions
def test_offline_interrupts_the_open_segment_at_last_seen(store):
    store.availability("tv1", Availability.ONLINE, T0)
    store.ingest_event(event("tv1", 1, "ad_start", T0 + 5), T0 + 6)
    assert store.touch("tv1", T0 + 40)  # telemetry: a sign of life, kept in memory
    change = store.availability("tv1", Availability.OFFLINE, T0 + 90)  # the will, after the keep-alive ran out
    assert change.closed["status"] == "interrupted"
    assert change.closed["end"] == T0 + 40
    assert change.device["availability"] == "offline"
    assert store.segments()[0]["status"] == "interrupted"
    assert store.availability("tv1", Availability.OFFLINE, T0 + 95).closed is None  # nothing left open


def test_stopped_interrupts_at_the_stop(store):
    store.availability("tv1", Availability.ONLINE, T0)
    store.ingest_event(event("tv1", 1, "ad_start", T0 + 5), T0 + 6)
    change = store.availability("tv1", Availability.STOPPED, T0 + 70)
    assert change.closed["end"] == T0 + 70 and change.closed["status"] == "interrupted"


def test_interrupt_open_segment_and_what_follows(store):
    store.availability("tv1", Availability.ONLINE, T0)
    store.state(state("tv1", "program", T0, T0 + 1), T0 + 1)
    store.ingest_event(event("tv1", 1, "ad_start", T0 + 30), T0 + 31)
    change = store.interrupt_open_segment("tv1", T0 + 100)
    assert change.closed["status"] == "interrupted" and change.closed["end"] == T0 + 31  # last_seen
    assert store.interrupt_open_segment("tv1", T0 + 101).closed is None
    assert store.interrupt_open_segment("nobody", T0).closed is None
    # back online: a live state whose "since" predates the interruption starts after it (no overlap)
    store.availability("tv1", Availability.ONLINE, T0 + 200)
    opened = store.state(state("tv1", "program", T0 + 10, T0 + 201), T0 + 201).opened
    assert opened["start"] == T0 + 31
    labels = [(s["label"], s["status"]) for s in store.segments()]
    assert labels == [("program", "closed"), ("ad", "interrupted"), ("program", "open")]


def test_touch_persists_last_seen_at_most_every_few_seconds(store, db_url):
    store.availability("tv1", Availability.ONLINE, T0)
    assert store.touch("tv1", T0 + 1)
    assert rows(db_url, "SELECT last_seen FROM devices") == [(T0,)]
    assert store.device("tv1")["last_seen"] == T0 + 1  # exact, from memory
    assert store.touch("tv1", T0 + 6)
    assert rows(db_url, "SELECT last_seen FROM devices") == [(T0 + 6,)]
    assert not store.touch("ghost", T0)


# ---------------------------------------------------------------------------------------------------- allowlist
def test_allowlist_accepts_listed_devices_without_announcement(sessions):
    store = SegmentStore(sessions, allowlist=["tv1"])
    r = store.ingest_event(event("tv1", 1, "ad_start", T0), T0 + 1)
    assert r.ingested and r.device["name"] == "tv1" and r.device["availability"] is None
    assert store.touch("tv1", T0 + 2)


def test_allowlist_refuses_everything_from_other_devices(sessions):
    store = SegmentStore(sessions, allowlist=["tv1"])
    assert store.availability("tv9", Availability.ONLINE, T0).rejected == "unknown_device"
    assert store.state(state("tv9", "program", T0, T0), T0).rejected == "unknown_device"
    assert store.ingest_event(event("tv9", 1, "ad_start", T0), T0).status == "unknown_device"
    assert not store.touch("tv9", T0)
    assert store.counters.rejected("unknown_device") == 3
    assert store.devices() == []


def test_allowlist_applies_to_devices_known_from_before(sessions):
    SegmentStore(sessions).availability("old", Availability.ONLINE, T0)
    store = SegmentStore(sessions, allowlist=["tv1"])
    assert store.ingest_event(event("old", 1, "ad_start", T0 + 1), T0 + 2).status == "unknown_device"


def test_known_devices_survive_a_restart(sessions):
    SegmentStore(sessions).availability("tv1", Availability.ONLINE, T0)
    store = SegmentStore(sessions)
    assert store.is_known("tv1") and not store.is_known("tv2")
    assert store.ingest_event(event("tv1", 1, "ad_start", T0 + 1), T0 + 2).ingested


# ---------------------------------------------------------------------------------------------------- firings, queries
def test_record_firing_sets_the_mute_state(store):
    store.availability("tv1", Availability.ONLINE, T0)
    r = store.ingest_event(event("tv1", 1, "ad_start", T0 + 5), T0 + 6)
    firing, dev = store.record_firing("tv1", rule="auto_mute", action="mute", reason="ad_start",
                                      topic="adbreak/tv1/mute/set", payload="ON", ts=T0 + 6,
                                      event_id=r.event["event_id"])
    assert dev["muted"] is True and store.is_muted("tv1")
    assert firing["action"] == "mute" and firing["event_id"] == r.event["event_id"] and firing["device"] == "tv1"
    store.record_firing("tv1", rule="auto_mute", action="unmute", reason="offline", topic="t", payload="OFF",
                        ts=T0 + 9)
    assert not store.is_muted("tv1")
    assert [f["action"] for f in store.firings(device="tv1")] == ["mute", "unmute"]
    assert store.counters.get("rule_firings") == 2
    assert [f["action"] for f in store.firings(start=T0 + 7)] == ["unmute"]


def test_segment_queries_filter_by_overlap_label_and_limit(store):
    store.availability("tv1", Availability.ONLINE, T0)
    store.state(state("tv1", "program", T0, T0), T0)
    store.ingest_event(event("tv1", 1, "ad_start", T0 + 100), T0 + 101)
    store.ingest_event(event("tv1", 2, "ad_end", T0 + 200), T0 + 201)
    spans = lambda **kw: [(s["label"], s["start"]) for s in store.segments(**kw)]  # noqa: E731
    assert spans(start=T0 + 150) == [("ad", T0 + 100), ("program", T0 + 200)]
    assert spans(end=T0 + 100) == [("program", T0)]  # [start, end): the ad starting at end is out
    assert spans(start=T0 + 100, end=T0 + 101) == [("ad", T0 + 100)]
    assert spans(start=T0 + 10_000) == [("program", T0 + 200)]  # the open segment reaches to now
    assert spans(label="ad") == [("ad", T0 + 100)]
    assert spans(limit=2) == [("program", T0), ("ad", T0 + 100)]
    assert [e["seq"] for e in store.events(start=T0 + 150)] == [2]
    assert [e["seq"] for e in store.events(end=T0 + 150)] == [1]


def test_the_database_allows_one_open_segment_per_device(sessions, store):
    store.availability("tv1", Availability.ONLINE, T0)
    store.ingest_event(event("tv1", 1, "ad_start", T0 + 5), T0 + 6)
    with pytest.raises(IntegrityError), sessions.begin() as s:
        s.add(Segment(device_id=1, label="program", start=T0 + 9, status="open"))


def test_concurrent_ingest_from_many_threads(store, db_url):
    devices = [f"tv{i}" for i in range(4)]
    for dev in devices:
        store.availability(dev, Availability.ONLINE, T0)
    errors: list[BaseException] = []

    def feed(dev: str) -> None:
        try:
            for seq in range(1, 26):
                ev = event(dev, seq, "ad_start" if seq % 2 else "ad_end", T0 + seq * 10)
                assert store.ingest_event(ev, T0 + seq * 10 + 1).ingested
                assert store.ingest_event(ev, T0 + seq * 10 + 2).status == "duplicate"
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=feed, args=(d,)) for d in devices]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert store.counters.get("events_ingested") == 100
    assert store.counters.rejected("duplicate") == 100
    assert rows(db_url, "SELECT count(*) FROM segments") == [(100,)]
    assert rows(db_url, "SELECT count(*) FROM segments WHERE status = 'open'") == [(4,)]


# ---------------------------------------------------------------------------------------------------- shared database
def test_hold_gap_holds_an_event_beyond_the_next_and_writes_nothing(store, db_url):
    store.availability("tv1", Availability.ONLINE, T0)
    assert store.ingest_event(event("tv1", 1, "ad_start", T0 + 5), T0 + 6).ingested
    third = event("tv1", 3, "ad_start", T0 + 30)
    with store.batch() as b:
        assert b.ingest_event(third, T0 + 31, hold_gap=True).status == "held"
    assert rows(db_url, "SELECT seq FROM events ORDER BY seq") == [(1,)]
    with store.batch() as b:
        assert b.ingest_event(event("tv1", 2, "ad_end", T0 + 20), T0 + 21, hold_gap=True).ingested
        assert b.ingest_event(third, T0 + 31, hold_gap=True).ingested  # the gap is filled
    assert rows(db_url, "SELECT seq FROM events ORDER BY seq") == [(1,), (2,), (3,)]
    with store.batch() as b:  # without the hold a gap is applied over, as before
        assert b.ingest_event(event("tv1", 9, "ad_end", T0 + 90), T0 + 91).ingested
    assert store.device("tv1")["last_seq"] == 9


@pytest.mark.postgresql_only(reason="servers share a database on PostgreSQL only")
def test_two_servers_on_one_database_apply_each_event_once_in_order(db_url):
    """Two stores on their own engines (two server processes) race to apply the same events of the same devices,
    and batches that lock the devices in opposite orders: every event is stored once, each device's segments
    follow its events, and no stale cache lets a seq through twice."""
    engines = [db.make_engine(db_url) for _ in range(2)]
    stores = [SegmentStore(db.make_sessionmaker(e)) for e in engines]
    devices = [f"tv{i}" for i in range(4)]
    for dev in devices:
        stores[0].availability(dev, Availability.ONLINE, T0)
    events = {dev: [event(dev, seq, "ad_start" if seq % 2 else "ad_end", T0 + seq * 10) for seq in range(1, 41)]
              for dev in devices}
    outcomes: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def feed(store: SegmentStore, order: list[str]) -> None:
        try:
            for seq in range(40):
                with store.batch(lock=order) as b:
                    for dev in order:  # each batch names the devices in its own order
                        with b.message():
                            status = b.ingest_event(events[dev][seq], T0 + seq).status
                        with lock:
                            outcomes.append(status)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=feed, args=(stores[0], devices)),
               threading.Thread(target=feed, args=(stores[1], devices[::-1]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    assert outcomes.count("ingested") == 160 and outcomes.count("duplicate") == 160
    assert rows(db_url, "SELECT count(*), count(DISTINCT event_id) FROM events") == [(160, 160)]
    assert rows(db_url, "SELECT count(*) FROM segments WHERE status = 'open'") == [(4,)]
    assert rows(db_url, "SELECT min(last_seq), max(last_seq) FROM devices") == [(40, 40)]
    for dev in devices:  # program, ad, program, ... each closed where the next opens
        segs = stores[1].segments(device=dev)
        assert len(segs) == 40
        assert all(a["end"] == b["start"] for a, b in zip(segs, segs[1:], strict=False))
    for e in engines:
        e.dispose()


@pytest.mark.postgresql_only(reason="a database server that can drop connections: PostgreSQL")
def test_a_store_survives_the_database_dropping_its_connections(store, db_url):
    """PostgreSQL restarted or a connection killed: the next batch gets a live connection (pool_pre_ping)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    store.availability("tv1", Availability.ONLINE, T0)
    name = make_url(db_url).database
    admin = create_engine(db_url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            killed = conn.execute(text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                       "WHERE datname = :d AND pid <> pg_backend_pid()"), {"d": name}).scalar()
    finally:
        admin.dispose()
    assert killed >= 1
    assert store.ingest_event(event("tv1", 1, "ad_start", T0 + 5), T0 + 6).ingested
    assert rows(db_url, "SELECT seq FROM events") == [(1,)]
