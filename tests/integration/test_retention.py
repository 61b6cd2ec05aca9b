"""The retention job (server/retention.py) on a real database migrated by Alembic (a SQLite file and a PostgreSQL
database: ``db_engine``): horizons, what is never deleted, bounded steps on the real ingest worker,
the dry run, space given back (SQLite), and ``adbreak db prune``."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import insert

from adbreak.wire import EventPayload, EventType, new_event_id
from server import db
from server.ingest import Ingest
from server.models import Correction, RuleFiring, RuleRun
from server.retention import Retention, RetentionPolicy, count_due, file_bytes, step, vacuum_sqlite
from server.store import SegmentStore
from tests.db_support import migrated_url, query, sqlite_only

pytestmark = pytest.mark.usefixtures("db_engine")

DAY = 86400.0
NOW = 1_800_000_000.0
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return migrated_url(tmp_path)


@pytest.fixture
def store(db_url):
    engine = db.make_engine(db_url)
    yield SegmentStore(db.make_sessionmaker(engine), allowlist=["tv1", "tv2", "tv3"])
    engine.dispose()


def ev(device: str, seq: int, boundary: float) -> EventPayload:
    kind = EventType.AD_START if seq % 2 else EventType.AD_END
    return EventPayload(device=device, event_id=new_event_id(), seq=seq, type=kind, boundary_ts=boundary,
                        decided_ts=boundary + 1.0, boundary_stream_t=1.0, decided_stream_t=2.0, confidence=0.9,
                        model_version="m")


def feed(store: SegmentStore, device: str, start: float, n: int, every: float, first_seq: int = 1) -> list[str]:
    """``n`` alternating events of ``device`` from ``start``, one every ``every`` s; their ids."""
    ids = []
    for i in range(n):
        payload = ev(device, first_seq + i, start + i * every)
        assert store.ingest_event(payload, payload.decided_ts).ingested
        ids.append(payload.event_id)
    return ids


def count(url: str, table: str, where: str = "1=1") -> int:
    return int(query(url, f"SELECT count(*) FROM {table} WHERE {where}")[0][0])


def add_logs(store: SegmentStore, device: str, ts_list: list[float], event_id: str | None = None) -> None:
    with store.batch() as batch:
        dev_id = batch.device_id(device)
        for ts in ts_list:
            batch.conn.execute(insert(RuleFiring.__table__), {
                "device_id": dev_id, "rule": "auto_mute", "action": "mute", "reason": "ad_start",
                "topic": f"adbreak/{device}/mute/set", "payload": "ON", "ts": ts, "event_id": event_id})
            batch.conn.execute(insert(RuleRun.__table__), {
                "rule_id": None, "rule_name": "r", "device_id": dev_id, "trigger": "ad_start", "ts": ts,
                "test": False, "status": "ok", "detail": "[]", "event_id": event_id})
            batch.conn.execute(insert(Correction.__table__), {
                "device_id": dev_id, "ts": ts, "username": "admin", "action": "confirm", "before": "[]",
                "after": "[]"})


def test_horizons_keep_open_segments_last_events_and_references(db_url, store):
    # tv1: 40 events over 400 days ago -> 10 days ago; tv2: 6 events all 500 days ago (an ad open since then)
    old = feed(store, "tv1", NOW - 400 * DAY, 40, 10 * DAY)
    tv2 = feed(store, "tv2", NOW - 500 * DAY, 5, 60.0)  # ends on an ad_start: its ad segment is still open
    add_logs(store, "tv1", [NOW - 200 * DAY, NOW - 100 * DAY, NOW - 50 * DAY, NOW - 1 * DAY])
    # a firing inside its horizon that names an event past the events' horizon keeps that event
    add_logs(store, "tv1", [NOW - 10 * DAY], event_id=old[0])
    before = {t: count(db_url, t) for t in ("events", "segments", "rule_firings", "rule_runs", "corrections")}
    policy = RetentionPolicy(events_days=365, firings_days=90, corrections_days=180)
    due = count_due_now(store, policy)
    done = Retention(policy, clock=lambda: NOW).run_pass(store)
    assert done == due  # the dry run counts exactly what the pass deletes

    cutoff = NOW - 365 * DAY
    # past the horizon and kept: tv1's first event (a recent firing names it), tv1's 4th (it opened a segment that
    # ends after the cutoff), tv2's last (the sequence check needs it, and its ad segment is still open)
    kept_old = query(db_url, f"SELECT event_id FROM events WHERE boundary_ts < {cutoff}")
    assert {r[0] for r in kept_old} == {old[0], old[3], tv2[-1]}
    open_segs = query(db_url, "SELECT s.status, s.start_event_id FROM segments s JOIN devices d ON d.id = s.device_id "
                      "WHERE d.name = 'tv2'")
    assert open_segs == [("open", tv2[-1])]
    assert [r[0] for r in query(db_url, "SELECT e.event_id FROM events e JOIN devices d ON d.id = e.device_id "
                                "WHERE d.name = 'tv2'")] == [tv2[-1]]
    # tv1: its last event and its open segment stay; every segment ending before the cutoff is gone
    assert count(db_url, "segments", f"status != 'open' AND \"end\" < {cutoff}") == 0
    assert count(db_url, "segments", "status = 'open'") == 2
    last_tv1 = query(db_url, "SELECT last_seq FROM devices WHERE name = 'tv1'")[0][0]
    assert count(db_url, "events", f"seq = {last_tv1} AND device_id = (SELECT id FROM devices WHERE name='tv1')") == 1
    assert count(db_url, "events") == before["events"] - done["events"]
    assert done["events"] == 2 + 4  # tv1's 2nd and 3rd; tv2's but the last
    # logs: firings/runs older than 90 days, corrections older than 180 days
    assert count(db_url, "rule_firings", f"ts < {NOW - 90 * DAY}") == 0
    assert count(db_url, "rule_runs", f"ts < {NOW - 90 * DAY}") == 0
    assert count(db_url, "corrections", f"ts < {NOW - 180 * DAY}") == 0
    assert done["rule_firings"] == 2 and done["rule_runs"] == 2 and done["corrections"] == 1
    # the sequence check still works: a redelivery of the last event is a duplicate, the next seq is stored
    assert store.ingest_event(ev("tv2", 5, NOW), NOW).status in ("duplicate", "out_of_order")
    assert store.ingest_event(ev("tv2", 6, NOW), NOW).ingested
    if db_url.startswith("sqlite"):
        assert query(db_url, "PRAGMA foreign_key_check") == []
    # nothing more is due; a second pass deletes nothing
    assert sum(Retention(policy, clock=lambda: NOW).run_pass(store).values()) == 0


def count_due_now(store: SegmentStore, policy: RetentionPolicy) -> dict[str, int]:
    with store._read() as conn:
        return count_due(conn, policy, NOW)


def test_zero_days_keeps_forever(db_url, store):
    feed(store, "tv1", NOW - 3000 * DAY, 20, DAY)
    add_logs(store, "tv1", [NOW - 3000 * DAY])
    policy = RetentionPolicy(events_days=0, firings_days=0, corrections_days=0)
    assert not Retention(policy).enabled
    assert sum(Retention(policy, clock=lambda: NOW).run_pass(store).values()) == 0
    assert count(db_url, "events") == 20 and count(db_url, "rule_firings") == 1
    with pytest.raises(ValueError, match="events_days"):
        RetentionPolicy(events_days=-1)
    with pytest.raises(ValueError, match="batch_rows"):
        RetentionPolicy(batch_rows=0)


def test_steps_are_bounded_and_run_on_the_ingest_worker(db_url, store):
    feed(store, "tv1", NOW - 800 * DAY, 61, DAY / 2)  # 61 events, all but the last few past the horizon
    add_logs(store, "tv1", [NOW - 400 * DAY + i for i in range(25)])
    policy = RetentionPolicy(events_days=365, firings_days=90, corrections_days=90, batch_rows=7)
    with store.batch() as batch:
        first = step(batch.conn, policy, NOW)
    assert all(n <= 7 for n in first.values()) and first["rule_firings"] == 7
    retention = Retention(policy, clock=lambda: NOW, interval_s=3600)
    ingest = Ingest(store, rules=None, realtime=None)
    ingest.start()
    try:
        retention.start(ingest.call)  # the first pass is queued at once; each step queues the next
        deadline = time.monotonic() + 30
        while retention.passes < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert retention.passes == 1
        assert ingest.flush(10)
    finally:
        retention.stop()
        ingest.stop()
    assert retention.totals["rule_firings"] == 25 - 7 and retention.totals["corrections"] == 25 - 7
    with store._read() as conn:
        assert sum(count_due(conn, policy, NOW).values()) == 0
    assert count(db_url, "events") == 1 + count(db_url, "events", f"boundary_ts >= {NOW - 365 * DAY}")


@sqlite_only
def test_sqlite_space_goes_back_after_vacuum_mode(tmp_path, db_url, store):
    path = db.sqlite_path(db_url)
    for k in range(6):
        feed(store, "tv1", NOW - 900 * DAY + k * 100 * DAY, 400, 60.0, first_seq=1 + 400 * k)
    big = file_bytes(path)
    store._sessions.kw["bind"].dispose()
    before, after = vacuum_sqlite(path)  # incremental auto-vacuum from now on
    assert after <= before
    assert query(db_url, "PRAGMA auto_vacuum") == [(2,)]
    done = Retention(RetentionPolicy(events_days=30), clock=lambda: NOW).run_pass(store)
    assert done["events"] == 2399 and done["segments"] >= 2398
    store._sessions.kw["bind"].dispose()
    con = sqlite3.connect(path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    assert file_bytes(path) < big / 3, (big, file_bytes(path))


def adbreak(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "adbreak", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)


@sqlite_only
def test_db_prune_cli(db_url, store):
    feed(store, "tv1", time.time() - 500 * DAY, 10, DAY)
    feed(store, "tv2", time.time() - 2 * DAY, 4, 3600)
    dry = adbreak("db", "prune", "--db", db_url, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would delete:" in dry.stdout and "9 events" in dry.stdout
    assert count(db_url, "events") == 14
    real = adbreak("db", "prune", "--db", db_url, "--events-days", "1")
    assert real.returncode == 0, real.stderr
    assert "deleted:" in real.stdout and "12 events" in real.stdout  # tv1's 9 + tv2's 3 (each keeps its last)
    assert count(db_url, "events") == 2
    vac = adbreak("db", "prune", "--db", db_url, "--vacuum")
    assert vac.returncode == 0 and "vacuumed" in vac.stdout, vac.stderr
    bad = adbreak("db", "prune", "--db", db_url, "--events-days", "-3")
    assert bad.returncode != 0 and "days must be >= 0" in bad.stderr
    assert bad.stderr.strip().splitlines()[-1].startswith("adbreak db prune: error: argument --events-days")
    assert "Traceback" not in bad.stderr
    env_bad = subprocess.run([sys.executable, "-m", "adbreak", "db", "prune", "--db", db_url], capture_output=True,
                             text=True, cwd=ROOT, timeout=120,
                             env={**os.environ, "ADBREAK_SERVER_RETENTION_FIRINGS_DAYS": "-1"})
    assert env_bad.returncode != 0 and "Traceback" not in env_bad.stderr
    assert "retention_firings_days" in env_bad.stderr and len(env_bad.stderr.strip().splitlines()) == 1
