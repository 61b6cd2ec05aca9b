"""User rules at run time: their rows in the database, the triggers from ingest, and the threads that act.

* Triggers come from :class:`~server.ingest.Ingest` like the auto-mute's: an event that opened an ad or program
  segment, and a device going ``offline`` / ``stopped``; never a retained message (a server restart replays
  those). Ingest calls :meth:`RuleRunner.on_event` / :meth:`RuleRunner.on_availability` inside its write batch;
  the trigger is handed over only after that batch commits, and handing over never blocks the ingest worker.
* :class:`~server.rule_engine.RuleEngine` (pure) decides; actions run on a small thread pool (webhooks may wait
  up to their timeout there), and a ``delay`` step is a timer of the scheduler thread, not a sleeping thread. The
  actions of one run are done in order.
* Every run is recorded in ``rule_runs`` through the single writer (``Ingest.run``) and pushed to the browsers
  (Socket.IO ``rule_run``). Runs waiting for ``min_time_in_state_s`` or in a delay live in memory only: a restart
  drops them.
* Without :meth:`RuleRunner.start` (tests, tools) everything happens at once in the caller's thread, delays
  included, like ``Ingest`` without its worker.

The rule rows are written only by the API (:mod:`server.api_rules`) through the jobs below; after each change it
calls :meth:`RuleRunner.reload`.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any

import requests
from sqlalchemy import Connection, delete, insert, select, update

from adbreak.wire import DEFAULT_PREFIX, Availability
from server.ingest import Ingest, JobRefused
from server.models import Device, Rule, RuleRun
from server.realtime import Realtime
from server.rule_engine import (
    Http,
    Publish,
    RuleEngine,
    RuleSpec,
    Run,
    StoredRule,
    TriggerContext,
    parse_rule,
    skipped_run,
)
from server.store import IngestResult, SegmentStore, WriteBatch

log = logging.getLogger(__name__)

RULES = Rule.__table__
RUNS = RuleRun.__table__
DEVICES = Device.__table__
WORKERS = 4
ANSWER_BYTES = 2048
"""At most this much of a webhook's answer is read (and the start of it kept in the audit log)."""


# ---------------------------------------------------------------------------------------------------- rows
class RuleNotFound(JobRefused):
    pass


class NameTaken(JobRefused):
    pass


def rule_dict(row: Any) -> dict:
    """``Rule`` of docs/api.md."""
    return {
        "id": row["id"],
        "name": row["name"],
        "enabled": bool(row["enabled"]),
        "trigger": row["trigger"],
        "conditions": json.loads(row["conditions"]),
        "actions": json.loads(row["actions"]),
        "created": row["created"],
        "updated": row["updated"],
        "created_by": row["created_by"],
    }


def run_dict(row: Any, device: str | None) -> dict:
    """``RuleRun`` of docs/api.md."""
    return {
        "id": row["id"],
        "rule_id": row["rule_id"],
        "rule": row["rule_name"],
        "device": device,
        "trigger": row["trigger"],
        "ts": row["ts"],
        "test": bool(row["test"]),
        "status": row["status"],
        "detail": json.loads(row["detail"]),
        "event_id": row["event_id"],
    }


def read_rules(conn: Connection) -> list[dict]:
    return [rule_dict(r) for r in conn.execute(select(RULES).order_by(RULES.c.id)).mappings()]


def read_rule(conn: Connection, rule_id: int) -> dict | None:
    row = conn.execute(select(RULES).where(RULES.c.id == rule_id)).mappings().first()
    return rule_dict(row) if row is not None else None


def read_runs(conn: Connection, *, rule: int | None = None, device: str | None = None, start: float | None = None,
              end: float | None = None, limit: int = 100) -> list[dict]:
    """Rule runs with ``ts`` in ``[start, end)``, newest first."""
    q = (select(RUNS, DEVICES.c.name.label("device_name"))
         .join_from(RUNS, DEVICES, RUNS.c.device_id == DEVICES.c.id, isouter=True))
    if rule is not None:
        q = q.where(RUNS.c.rule_id == rule)
    if device is not None:
        q = q.where(DEVICES.c.name == device)
    if start is not None:
        q = q.where(RUNS.c.ts >= start)
    if end is not None:
        q = q.where(RUNS.c.ts < end)
    q = q.order_by(RUNS.c.ts.desc(), RUNS.c.id.desc()).limit(limit)
    return [run_dict(r, r["device_name"]) for r in conn.execute(q).mappings()]


def _values(spec: RuleSpec) -> dict:
    data = spec.to_json()
    return {"name": spec.name, "enabled": spec.enabled, "trigger": spec.trigger,
            "conditions": json.dumps(data["conditions"], separators=(",", ":")),
            "actions": json.dumps(data["actions"], separators=(",", ":"))}


def _check_name(batch: WriteBatch, name: str, rule_id: int | None) -> None:
    q = select(RULES.c.id).where(RULES.c.name == name)
    if rule_id is not None:
        q = q.where(RULES.c.id != rule_id)
    other = batch.conn.execute(q).scalar()
    if other is not None:
        raise NameTaken(f"name: {name!r} is already the name of rule {other}")


def insert_rule(batch: WriteBatch, spec: RuleSpec, *, user: str | None, now: float) -> dict:
    _check_name(batch, spec.name, None)
    result = batch.conn.execute(insert(RULES).values(**_values(spec), created=now, updated=now, created_by=user))
    found = read_rule(batch.conn, result.inserted_primary_key[0])
    assert found is not None
    return found


def update_rule(batch: WriteBatch, rule_id: int, spec: RuleSpec, *, now: float) -> dict:
    if read_rule(batch.conn, rule_id) is None:
        raise RuleNotFound(f"no rule {rule_id}")
    _check_name(batch, spec.name, rule_id)
    batch.conn.execute(update(RULES).where(RULES.c.id == rule_id).values(**_values(spec), updated=now))
    return read_rule(batch.conn, rule_id)  # type: ignore[return-value]


def set_enabled(batch: WriteBatch, rule_id: int, enabled: bool, *, now: float) -> dict:
    if read_rule(batch.conn, rule_id) is None:
        raise RuleNotFound(f"no rule {rule_id}")
    batch.conn.execute(update(RULES).where(RULES.c.id == rule_id).values(enabled=enabled, updated=now))
    return read_rule(batch.conn, rule_id)  # type: ignore[return-value]


def delete_rule(batch: WriteBatch, rule_id: int) -> None:
    """Delete the rule; its runs stay in the audit log (``rule_id`` set to null, ``rule_name`` kept)."""
    if batch.conn.execute(delete(RULES).where(RULES.c.id == rule_id)).rowcount == 0:
        raise RuleNotFound(f"no rule {rule_id}")
    batch.conn.execute(update(RUNS).where(RUNS.c.rule_id == rule_id).values(rule_id=None))


def insert_run(batch: WriteBatch, record: dict) -> dict:
    """Store one run (``Run.record()``); returns its ``RuleRun`` dict."""
    values = dict(record)
    device = values.pop("device")
    values["device_id"] = batch.conn.execute(select(DEVICES.c.id).where(DEVICES.c.name == device)).scalar()
    if values["rule_id"] is not None and read_rule(batch.conn, values["rule_id"]) is None:
        values["rule_id"] = None  # deleted meanwhile
    result = batch.conn.execute(insert(RUNS).values(**values))
    return run_dict({"id": result.inserted_primary_key[0], **values}, device if values["device_id"] else None)


def stored_rules(rows: list[dict], prefix: str) -> list[StoredRule]:
    """The rows as :class:`StoredRule`; a row that no longer validates (hand-edited, or the MQTT prefix changed so
    that a topic became the server's own) is left out with a warning."""
    out = []
    for row in rows:
        data = {k: row[k] for k in ("name", "enabled", "trigger", "conditions", "actions")}
        try:
            spec = parse_rule(data, prefix=prefix)
        except ValueError as exc:
            log.warning("rule %d %r is not valid and stays off: %s", row["id"], row["name"], exc)
            continue
        out.append(StoredRule(row["id"], spec, row["updated"]))
    return out


def http_request(method: str, url: str, body: str, headers: dict[str, str], timeout: float) -> tuple[int, str]:
    """A webhook call with ``requests``: no redirects followed, the answer read up to :data:`ANSWER_BYTES`."""
    with requests.request(method, url, data=body.encode("utf-8") if body else None, headers=headers,
                          timeout=timeout, allow_redirects=False, stream=True) as r:
        head = r.raw.read(ANSWER_BYTES, decode_content=True) or b""
        return r.status_code, head.decode(r.encoding or "utf-8", errors="replace")


# ---------------------------------------------------------------------------------------------------- runtime
@dataclass(eq=False)
class _Job:
    run: Run
    future: Future | None = None
    delays: list[float] = field(default_factory=list)


class RuleRunner:
    """Takes triggers from ingest, runs the matching rules' actions off the ingest worker, records every run."""

    def __init__(self, store: SegmentStore, ingest: Ingest, publish: Publish, *, realtime: Realtime | None = None,
                 tz: tzinfo | None = None, prefix: str = DEFAULT_PREFIX, http: Http = http_request,
                 clock: Callable[[], float] = time.time, workers: int = WORKERS) -> None:
        self.store = store
        self.ingest = ingest
        self.publish = publish
        self.realtime = realtime
        self.tz = tz
        self.prefix = prefix
        self.http = http
        self.clock = clock
        self.workers = workers
        self.engine = RuleEngine(tz, clock)
        self._lock = threading.Condition(threading.RLock())
        self._reload_lock = threading.Lock()
        self._heap: list[tuple[float, int, _Job]] = []
        self._seq = itertools.count()
        self._executor: ThreadPoolExecutor | None = None
        self._thread: threading.Thread | None = None
        self._running = False
        self._stopped = False  # started once and stopped since: triggers are dropped, nothing runs in-line
        self._active = 0
        self._unstarted: list[_Job] = []

    # ------------------------------------------------------------------ lifecycle
    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> None:
        if self._thread is not None:
            return
        self.reload()
        self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="adbreak-rule")
        self._running = True
        self._thread = threading.Thread(target=self._loop, name="adbreak-rules-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the scheduler; runs in a delay or waiting for their re-check end as ``skipped`` (recorded); actions
        in progress get up to ``timeout`` seconds to finish."""
        thread = self._thread
        if thread is None:
            return
        with self._lock:
            self._running = False
            self._stopped = True
            waiting = [job for _, _, job in self._heap]
            self._heap.clear()
            pending = self.engine.take_due(float("inf"))
            self._lock.notify_all()
        thread.join(timeout)
        self._thread = None
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            self._lock.wait_for(lambda: self._active == 0, timeout)
            unstarted, self._unstarted = self._unstarted, []
        for job in waiting:
            job.run.stop("the server stopped during a delay")
            self._record(job)
        for job in unstarted:
            job.run.stop("the server stopped before the run began")
            self._record(job)
        for p in pending:
            self._record(_Job(skipped_run(p.rule, p.ctx, "the server stopped before the re-check", tz=self.tz,
                                          clock=self.clock)))

    def reload(self) -> None:
        """Read the rules again (after the API changed one); waiting runs of changed rules are cancelled."""
        with self._reload_lock:
            with self.store._read() as conn:
                rows = read_rules(conn)
            rules = stored_rules(rows, self.prefix)
            with self._lock:
                cancelled = self.engine.set_rules(rules)
                self._lock.notify_all()
        for p, reason in cancelled:
            self._submit(_Job(skipped_run(p.rule, p.ctx, reason, tz=self.tz, clock=self.clock)))

    # ------------------------------------------------------------------ triggers (the ingest worker, in its batch)
    def on_event(self, result: IngestResult, *, retained: bool = False, late: str | None = None,
                 batch: WriteBatch) -> None:
        """An event was stored: if it opened a segment, its trigger is handed over after the commit. ``late`` (why):
        the event reached the server long after the edge decided it; matching rules are recorded as skipped."""
        if retained or not result.ingested or result.opened is None:
            return
        opened, event = result.opened, result.event or {}
        ctx = TriggerContext(
            device=opened["device"],
            trigger="ad_start" if opened["label"] == "ad" else "ad_end",
            ts=self.clock(),
            label=opened["label"],
            confidence=event.get("confidence", opened.get("confidence")),
            segment_start=opened["start"],
            model_version=event.get("model_version", opened.get("model_version")),
            event_id=event.get("event_id"),
        )
        batch.after_commit(self._trigger, ctx, late)

    def on_availability(self, device: str, availability: Availability, *, retained: bool = False,
                        batch: WriteBatch) -> None:
        if retained:
            return
        if availability is Availability.ONLINE:
            batch.after_commit(self._online, device, self.clock())
            return
        dev = batch.device(device) or {}
        ctx = TriggerContext(device=device, trigger="offline", ts=self.clock(), label=availability.value,
                             model_version=dev.get("model_version"))
        batch.after_commit(self._trigger, ctx)

    def _trigger(self, ctx: TriggerContext, late: str | None = None) -> None:
        """After the commit (still on the ingest worker): decide, queue; never waits."""
        if self._stopped or (not self._running and self.ingest.running):
            log.info("rule trigger %s of %s dropped: the rule runner is not running", ctx.trigger, ctx.device)
            return
        with self._lock:
            decided = self.engine.on_trigger(ctx, late=late)
            if decided.scheduled:
                self._lock.notify_all()
        for p, reason in decided.cancelled:
            self._submit(_Job(skipped_run(p.rule, p.ctx, reason, tz=self.tz, clock=self.clock)))
        for rule, c, reason in decided.skipped:
            log.info("rule %r not run for %s of %s: %s", rule.spec.name, c.trigger, c.device, reason)
            self._submit(_Job(skipped_run(rule, c, reason, tz=self.tz, clock=self.clock)))
        for rule, c in decided.run:
            self._submit(_Job(Run(rule, c, tz=self.tz, prefix=self.prefix, clock=self.clock)))

    def _online(self, device: str, ts: float) -> None:
        with self._lock:
            cancelled = self.engine.observe(device, "online", ts)
        for p, reason in cancelled:
            self._submit(_Job(skipped_run(p.rule, p.ctx, reason, tz=self.tz, clock=self.clock)))

    # ------------------------------------------------------------------ test
    def test(self, rule: StoredRule, ctx: TriggerContext, *, timeout: float = 30.0) -> dict | None:
        """Run the rule's actions now (conditions not checked), recorded with ``test=true``; the ``RuleRun`` once
        recorded, or None if it is still running after ``timeout`` (it goes on; the audit log will have it)."""
        job = _Job(Run(rule, ctx, tz=self.tz, prefix=self.prefix, test=True, clock=self.clock), Future())
        self._submit(job)
        try:
            return job.future.result(timeout)  # type: ignore[union-attr]
        except TimeoutError:
            return None

    # ------------------------------------------------------------------ execution
    def _submit(self, job: _Job) -> None:
        executor = self._executor
        if executor is not None and self._running:
            with self._lock:
                self._active += 1
            try:
                future = executor.submit(self._execute, job)
            except RuntimeError:  # shut down meanwhile
                self._done(job, None)
            else:
                future.add_done_callback(lambda f: self._done(job, f))
                return
        self._execute(job)

    def _done(self, job: _Job, future: Future | None) -> None:
        with self._lock:
            if future is None or future.cancelled():  # never started (the server stops): recorded by stop()
                self._unstarted.append(job)
            self._active -= 1
            self._lock.notify_all()

    def _execute(self, job: _Job) -> None:
        try:
            self._advance(job)
        except Exception:
            log.exception("rule %r: run failed", job.run.rule.spec.name)
            job.run.stop("internal error")
            self._record(job)

    def _advance(self, job: _Job) -> None:
        run = job.run
        while True:
            if not run.done and job.delays and not run.test and not self._is_current(run.rule):
                run.stop("the rule was changed, disabled or deleted during a delay")
            if not run.done:
                wait = run.step(self.publish, self.http)
                if wait is not None and not run.done:
                    job.delays.append(wait)
                    if self._schedule(job, wait):
                        return  # the scheduler submits the rest when the delay is over
                    if self._stopped:
                        run.stop("the server stopped during a delay")
                    else:
                        time.sleep(wait)  # never started: in this thread, like Ingest without its worker
                    continue
            self._record(job)
            return

    def _is_current(self, rule: StoredRule) -> bool:
        with self._lock:
            return self.engine.is_current(rule)

    def _schedule(self, job: _Job, wait: float) -> bool:
        with self._lock:
            if not self._running:
                return False
            heapq.heappush(self._heap, (self.clock() + wait, next(self._seq), job))
            self._lock.notify_all()
            return True

    def _record(self, job: _Job) -> None:
        record = job.run.record()
        try:
            stored = self.ingest.run(lambda batch: self._store_run(batch, record))
        except Exception as exc:
            log.exception("rule %r: recording its run failed", record["rule_name"])
            if job.future is not None and not job.future.done():
                job.future.set_exception(exc)
            return
        level = logging.WARNING if record["status"] == "failed" else logging.INFO
        log.log(level, "rule %r on %s (%s%s): %s", record["rule_name"], record["device"], record["trigger"],
                ", test" if record["test"] else "", record["status"])
        if job.future is not None and not job.future.done():
            job.future.set_result(stored)

    def _store_run(self, batch: WriteBatch, record: dict) -> dict:
        stored = insert_run(batch, record)
        if self.realtime is not None:
            batch.after_commit(self.realtime.rule_run, stored)
        return stored

    def _loop(self) -> None:
        while True:
            with self._lock:
                while True:
                    if not self._running:
                        return
                    now = self.clock()
                    ready = []
                    while self._heap and self._heap[0][0] <= now:
                        ready.append(heapq.heappop(self._heap)[2])
                    due = self.engine.take_due(now)
                    if ready or due:
                        break
                    times = [self._heap[0][0]] if self._heap else []
                    due_at = self.engine.next_due()
                    if due_at is not None:
                        times.append(due_at)
                    next_at = min(times, default=now + 1.0)
                    self._lock.wait(timeout=min(max(next_at - now, 0.001), 1.0))  # at least once a second
            for job in ready:
                self._submit(job)
            for p in due:
                self._submit(_Job(Run(p.rule, p.ctx, tz=self.tz, prefix=self.prefix, clock=self.clock)))
