"""The retention job: deletes rows older than configurable horizons, in bounded batches, so the database stays
bounded however long the server runs.

What it deletes (a horizon of 0 days keeps that kind forever):

* **events and closed segments** older than ``events_days`` (default 365): a segment whose ``end`` is before the
  cutoff and that is not open; an event whose ``boundary_ts`` is before it, unless it is the last applied event of
  its device (``devices.last_seq``: the sequence check compares with it, and a redelivered duplicate of it is
  recognised by its id) or a remaining segment or rule firing still references it;
* **rule firings and rule runs** (the mute commands sent, the user rules' audit log) older than ``firings_days``
  (default 90);
* **corrections** (the review audit trail) older than ``corrections_days`` (default 365).

Open segments are never deleted, nor the segments of a recording sent for review (``server.recordings``: they go
when it is deleted). Telemetry is not stored in the database (it only moves a device's ``last_seen``),
and keyframes have their own limits (:mod:`server.keyframes`).

Each call of :meth:`Retention.step` deletes at most ``batch_rows`` rows per table in the caller's transaction. In the
server it runs as a job on the ingest worker (:meth:`Ingest.call`), the single writer, so it never holds the
database for long: each step takes milliseconds, and while more is due it queues the next step behind the messages
that arrived meanwhile. It runs at start and then every ``interval_s`` (default hourly). ``adbreak db prune`` runs the
same steps from the command line (``--dry-run`` only counts).

Space: SQLite reuses the pages freed by deletes for new rows, so with retention the file stops growing at its
high-water mark. To give freed pages back to the file system, ``adbreak db prune --vacuum`` switches the file to
incremental auto-vacuum once (a full ``VACUUM``); from then on every retention pass ends with ``PRAGMA
incremental_vacuum``. PostgreSQL's autovacuum reuses the space of deleted rows by itself.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, and_, delete, exists, func, literal, select

from server.models import Correction, Device, Event, RuleFiring, RuleRun, Segment
from server.periodic import PeriodicJob
from server.recordings import recording_device_ids

log = logging.getLogger(__name__)

DAY_S = 86400.0
INTERVAL_S = 3600.0
"""The server runs a retention pass at start and then this often."""
BATCH_ROWS = 2000
"""At most this many rows per table in one step (one transaction)."""
VACUUM_PAGES = 2000
"""Free pages given back to the file system per step when the SQLite file uses incremental auto-vacuum."""

EVENTS, SEGMENTS, DEVICES = Event.__table__, Segment.__table__, Device.__table__
FIRINGS, RUNS, CORRECTIONS = RuleFiring.__table__, RuleRun.__table__, Correction.__table__
TABLES = ("rule_firings", "rule_runs", "corrections", "segments", "events")


@dataclass(frozen=True)
class RetentionPolicy:
    """Horizons in days (0 = keep forever) and the batch size."""

    events_days: float = 365.0
    firings_days: float = 90.0
    corrections_days: float = 365.0
    batch_rows: int = BATCH_ROWS

    def __post_init__(self) -> None:
        for name in ("events_days", "firings_days", "corrections_days"):
            value = getattr(self, name)
            if not value >= 0 or value == float("inf"):
                raise ValueError(f"{name} must be a number of days >= 0 (0 keeps forever), got {value!r}")
        if self.batch_rows < 1:
            raise ValueError(f"batch_rows must be at least 1, got {self.batch_rows!r}")

    def cutoffs(self, now: float) -> dict[str, float | None]:
        """The cutoff time of each table (rows before it go), ``None`` for a table kept forever."""

        def cut(days: float) -> float | None:
            return now - days * DAY_S if days > 0 else None

        return {"rule_firings": cut(self.firings_days), "rule_runs": cut(self.firings_days),
                "corrections": cut(self.corrections_days), "segments": cut(self.events_days),
                "events": cut(self.events_days)}


def _old_segments(cutoff: float, seg: Any = SEGMENTS):
    # ``start <= end`` always, so ``start < cutoff`` narrows by the index on start; a recording's segments (times from
    # its start, so "old") go only with the recording (``server.recordings``)
    return and_(seg.c.status != "open", seg.c.start < cutoff, seg.c.end < cutoff,
                seg.c.device_id.not_in(recording_device_ids()))


def _old_events(cutoffs: dict[str, float | None]):
    """Events past the horizon that nothing remaining needs (see the module docstring)."""
    cutoff = cutoffs["events"]
    assert cutoff is not None
    seg = SEGMENTS.alias("s")
    seg_kept = ~_old_segments(cutoff, seg)
    fir = FIRINGS.alias("f")
    fir_cut = cutoffs["rule_firings"]
    fir_kept = literal(True) if fir_cut is None else fir.c.ts >= fir_cut
    last = select(DEVICES.c.last_seq).where(DEVICES.c.id == EVENTS.c.device_id).scalar_subquery()
    return and_(
        EVENTS.c.boundary_ts < cutoff,
        EVENTS.c.seq < func.coalesce(last, 0),
        ~exists().where(seg.c.start_event_id == EVENTS.c.event_id, seg_kept),
        ~exists().where(seg.c.end_event_id == EVENTS.c.event_id, seg_kept),
        ~exists().where(fir.c.event_id == EVENTS.c.event_id, fir_kept),
    )


def _where(table: str, cutoffs: dict[str, float | None]):
    cutoff = cutoffs[table]
    assert cutoff is not None
    if table == "rule_firings":
        return FIRINGS.c.ts < cutoff
    if table == "rule_runs":
        return RUNS.c.ts < cutoff
    if table == "corrections":
        return CORRECTIONS.c.ts < cutoff
    if table == "segments":
        return _old_segments(cutoff)
    return _old_events(cutoffs)


_TABLE = {"rule_firings": FIRINGS, "rule_runs": RUNS, "corrections": CORRECTIONS, "segments": SEGMENTS,
          "events": EVENTS}
_ORDER = {"rule_firings": FIRINGS.c.ts, "rule_runs": RUNS.c.ts, "corrections": CORRECTIONS.c.ts,
          "segments": SEGMENTS.c.start, "events": EVENTS.c.boundary_ts}


def count_due(conn: Connection, policy: RetentionPolicy, now: float) -> dict[str, int]:
    """How many rows of each table a full pass would delete now (``--dry-run``). Events that only go once their
    segments have gone are counted as the pass would find them (segments past the horizon count as gone)."""
    cutoffs = policy.cutoffs(now)
    out = {}
    for table in TABLES:
        if cutoffs[table] is None:
            out[table] = 0
            continue
        t = _TABLE[table]
        out[table] = int(conn.execute(select(func.count()).select_from(t).where(_where(table, cutoffs))).scalar_one())
    return out


def step(conn: Connection, policy: RetentionPolicy, now: float) -> dict[str, int]:
    """Delete at most ``policy.batch_rows`` rows of each table, in the order that keeps every reference valid
    (firings, runs and corrections, then segments, then the events nothing needs any more). Returns the numbers."""
    cutoffs = policy.cutoffs(now)
    out = {}
    for table in TABLES:
        if cutoffs[table] is None:
            out[table] = 0
            continue
        t = _TABLE[table]
        ids = list(conn.scalars(select(t.c.id).where(_where(table, cutoffs)).order_by(_ORDER[table], t.c.id)
                                .limit(policy.batch_rows)))
        for start in range(0, len(ids), 500):
            conn.execute(delete(t).where(t.c.id.in_(ids[start:start + 500])))
        out[table] = len(ids)
    return out


def sqlite_auto_vacuum(conn: Connection) -> int | None:
    """SQLite's ``auto_vacuum`` mode (0 none, 1 full, 2 incremental); ``None`` on another engine."""
    if conn.dialect.name != "sqlite":
        return None
    return int(conn.exec_driver_sql("PRAGMA auto_vacuum").scalar_one())


def incremental_vacuum(conn: Connection, pages: int = VACUUM_PAGES) -> int:
    """On an SQLite file in incremental auto-vacuum mode, give up to ``pages`` free pages back to the file system;
    returns how many were free before (0 elsewhere)."""
    if sqlite_auto_vacuum(conn) != 2:
        return 0
    free = int(conn.exec_driver_sql("PRAGMA freelist_count").scalar_one())
    if free:
        # each step of the statement frees one page, and Python's sqlite3 steps a statement without result rows
        # only once: so one page per execution (about 25 us each)
        cursor = conn.connection.dbapi_connection.cursor()
        try:
            for _ in range(min(free, int(pages))):
                cursor.execute("PRAGMA incremental_vacuum(1)")
        finally:
            cursor.close()
    return free


class Retention:
    """The periodic job (see the module docstring). ``clock`` gives "now" (tests and the soak bench inject one)."""

    def __init__(self, policy: RetentionPolicy, *, clock: Callable[[], float] = time.time,
                 interval_s: float = INTERVAL_S) -> None:
        self.policy = policy
        self.clock = clock
        self.interval_s = interval_s
        self.totals: dict[str, int] = dict.fromkeys(TABLES, 0)
        self.passes = 0
        self._pass: dict[str, int] = dict.fromkeys(TABLES, 0)
        self._lock = threading.Lock()
        self._job: PeriodicJob | None = None
        self._pending = False

    @property
    def enabled(self) -> bool:
        return any(v is not None for v in self.policy.cutoffs(0.0).values())

    # ------------------------------------------------------------------ the job (on the ingest worker)
    def job(self, batch: Any, resubmit: Callable[[Callable[[Any], object]], None] | None = None) -> dict[str, int]:
        """One bounded step in ``batch``; while rows are still due, queues the next step through ``resubmit``
        (after the commit, behind whatever arrived meanwhile); the last step of a pass vacuums incrementally."""
        conn = batch.conn
        done = step(conn, self.policy, self.clock())
        more = any(n >= self.policy.batch_rows for n in done.values())
        if not more:
            incremental_vacuum(conn)
        batch.after_commit(self._account, done, more)
        if more and resubmit is not None:
            batch.after_commit(resubmit, lambda b: self.job(b, resubmit))
        return done

    def _account(self, done: dict[str, int], more: bool) -> None:
        with self._lock:
            for k, v in done.items():
                self.totals[k] += v
                self._pass[k] += v
            if not more:
                self.passes += 1
                self._pending = False
                deleted = {k: v for k, v in self._pass.items() if v}
                self._pass = dict.fromkeys(TABLES, 0)
        if not more and deleted:
            log.info("retention: deleted %s", ", ".join(f"{v} {k}" for k, v in deleted.items()))

    def run_pass(self, store: Any) -> dict[str, int]:
        """A whole pass in this thread, one transaction per step (``store.batch()``); for the CLI and tests."""
        total = dict.fromkeys(TABLES, 0)
        while True:
            with store.batch() as batch:
                done = self.job(batch)
            for k, v in done.items():
                total[k] += v
            if not any(n >= self.policy.batch_rows for n in done.values()):
                return total

    # ------------------------------------------------------------------ the schedule
    def start(self, submit: Callable[[Callable[[Any], object]], None]) -> None:
        """Queue a pass on the ingest worker now and every ``interval_s`` (not while one is still going)."""
        if self._job is not None or not self.enabled:
            return

        def queue_pass() -> None:
            with self._lock:
                busy, self._pending = self._pending, True
            if busy:
                return
            try:
                submit(lambda b: self.job(b, submit))
            except Exception:
                with self._lock:
                    self._pending = False
                raise

        self._job = PeriodicJob("adbreak-retention", self.interval_s, queue_pass)
        self._job.start()

    def stop(self) -> None:
        if self._job is not None:
            self._job.stop()
            self._job = None


def vacuum_sqlite(path: Path) -> tuple[int, int]:
    """Switch an SQLite file to incremental auto-vacuum and rebuild it (``VACUUM``: it waits for, then blocks, other
    writers while it runs, and needs free disk space of the file's size). Returns the file's size in bytes (with its
    WAL) before and after."""
    before = file_bytes(path)
    con = sqlite3.connect(path, timeout=60, isolation_level=None)
    try:
        con.execute("PRAGMA auto_vacuum = INCREMENTAL")
        con.execute("VACUUM")
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()
    return before, file_bytes(path)


def file_bytes(path: Path) -> int:
    """An SQLite file's size with its WAL."""
    return sum(p.stat().st_size for p in (Path(path), Path(f"{path}-wal")) if p.exists())
