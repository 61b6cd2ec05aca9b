"""No event lost, none doubled, through faults (issue 5, item 1), with the real pieces: a Mosquitto with persistence
started by the test (a stop / start keeps the server's persistent session, like a real install), ``adbreak server``
on SQLite, ``adbreak edge`` replaying a built broadcast at x4 with a trained model, and a plain paho subscriber with a
persistent session of its own on ``adbreak/+/event``.

Each scenario checks, at the end:

* every event the edge decided (its log names each one's ``seq`` and ``event_id``) reached the subscriber and is
  stored exactly once: 0 lost, 0 duplicated, ``seq`` 1..n with no gap;
* the server counted no ``out_of_order`` rejection;
* exactly the expected segments: one per decided change, starting at the event's ``boundary_ts``, each ``closed`` by
  the next; each run of the agent starts with the ``program`` segment its first state opens and ends with an
  ``interrupted`` segment (``stopped`` on a clean exit, the broker's ``offline`` will when it was killed). Around an
  edge death the expectation is therefore: the segment open at the death, ``interrupted`` at the agent's last sign
  of life, then the new run's segments from its first state on.

The broadcast (seed 2, 90 s) has breaks at 25.1-36.8 s and 55.2-66.9 s; ``min_program_s`` is 10 s (as in
``test_edge_agent.py``) so both are decided.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import requests

from adbreak.segments import read_segments
from adbreak.wire import EventType, Topics, parse_telemetry
from edge.outbox import entry_name
from tests.db_support import sqlite_url
from tests.edge_mqtt_support import Recorder, needs_mosquitto, start_edge
from tests.fault_support import EventWatcher, PersistentMosquitto
from tests.server_support import ServerProcess
from tests.support import ROOT, SHORT_REPLAY_ENV

pytestmark = [pytest.mark.slow, needs_mosquitto]

SPEED = 4.0
DEVICE = "fault-tv"
TOPICS = Topics("adbreak")
DECISION_ENV = SHORT_REPLAY_ENV
OUTAGE_S = 60.0
EVENT_LINE = re.compile(r"event (ad_start|ad_end) seq=(\d+) id=([0-9a-f]{32})")


@pytest.fixture(scope="module")
def trained(live_model):
    """The session's trained model and its held-out 90 s broadcast (``tests/conftest.py``: seed 2, breaks at
    25.1-36.8 s and 55.2-66.9 s)."""
    return live_model


@pytest.fixture
def broker(tmp_path):
    b = PersistentMosquitto(tmp_path).start()
    yield b
    if b.proc is not None and b.proc.poll() is None:
        b.resume()
    b.stop()


# ------------------------------------------------------------------------------------------------------ helpers
def edge(model: Path, held, broker, state: Path, log: Path, *extra: object) -> subprocess.Popen[bytes]:
    return start_edge("--source", held.video, "--device", DEVICE, "--model", model, "--mqtt",
                      f"{broker.host}:{broker.port}", "--speed", SPEED, "--state-dir", state, *extra,
                      env=DECISION_ENV, log=log)


def decided(*logs: Path) -> list[tuple[int, str, str]]:
    """``(seq, event_id, type)`` of every event the agent decided, from its logs, in order."""
    out = []
    for log in logs:
        for m in EVENT_LINE.finditer(log.read_text(errors="replace") if log.exists() else ""):
            out.append((int(m.group(2)), m.group(3), m.group(1)))
    return out


def wait_until(predicate, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(interval)


def wait_exit(proc: subprocess.Popen, timeout: float, log: Path) -> int:
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        raise AssertionError(f"the agent did not finish in {timeout} s:\n{log.read_text()[-3000:]}") from None


def stored_events(db: Path) -> list[tuple[int, str, str, float]]:
    """``(seq, event_id, type, boundary_ts)`` of every stored event of the device, straight from the SQLite file."""
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT e.seq, e.event_id, e.type, e.boundary_ts FROM events e JOIN devices d ON d.id = e.device_id "
            "WHERE d.name = ? ORDER BY e.seq", (DEVICE,)).fetchall()


class Api:
    """The server's REST API, signed in once (sign-in is rate-limited)."""

    def __init__(self, srv: ServerProcess) -> None:
        self.base = srv.base
        self.session = srv.session()

    def segments(self) -> list[dict]:
        r = self.session.get(f"{self.base}/api/v1/segments?device={DEVICE}&limit=1000", timeout=10)
        r.raise_for_status()
        return sorted(r.json()["segments"], key=lambda s: (s["start"], s["id"]))

    def last_interrupted(self) -> bool:
        segs = self.segments()
        return bool(segs) and segs[-1]["status"] == "interrupted"


def counters(base: str) -> dict:
    return requests.get(f"{base}/api/v1/health", timeout=10).json()["counters"]


def check_delivery(decisions: list[tuple[int, str, str]], watcher: EventWatcher, db: Path) -> None:
    """0 lost, 0 duplicated: every decided event reached the subscriber and is stored once, seq 1..n."""
    ids = [i for _, i, _ in decisions]
    assert len(set(ids)) == len(ids) and ids, decisions
    assert [s for s, _, _ in decisions] == list(range(1, len(decisions) + 1)), decisions
    assert set(watcher.unique()) == set(ids), (sorted(watcher.unique()), decisions)
    rows = stored_events(db)
    assert [(s, i, t) for s, i, t, _ in rows] == [(s, i, t) for s, i, t in decisions], (rows, decisions)


def check_segments(segments: list[dict], pieces: list[tuple[bool, list[tuple[str, float]]]]) -> None:
    """``pieces``: stretches the server saw without an interruption, each ``(opened by a state, events)`` with the
    events' ``(label they start, boundary_ts)``. Expected per piece: a ``program`` segment when a run's first state
    opened it, then one segment per event starting at its boundary, each closed by the next, the last
    ``interrupted``."""
    expected: list[tuple[str, str, float | None]] = []
    for by_state, events in pieces:
        labels = ([("program", None)] if by_state else []) + list(events)
        for k, (label, start) in enumerate(labels):
            expected.append((label, "interrupted" if k == len(labels) - 1 else "closed", start))
    got = [(s["label"], s["status"]) for s in segments]
    assert got == [(label, status) for label, status, _ in expected], (got, expected)
    for seg, (_, _, start) in zip(segments, expected, strict=True):
        if start is not None:
            assert seg["start"] == pytest.approx(start, abs=1e-3), (seg, start)
    for a, b in zip(segments, segments[1:], strict=False):
        assert a["end"] is not None and a["end"] <= b["start"] + 1e-3, (a, b)  # no overlap


def run_labels(db: Path, seqs: range) -> list[tuple[str, float]]:
    rows = {s: (t, b) for s, _, t, b in stored_events(db)}
    return [("ad" if rows[s][0] == "ad_start" else "program", rows[s][1]) for s in seqs]


def true_breaks(held) -> int:
    return sum(1 for s in read_segments(held.truth) if s.label == "ad")


# ------------------------------------------------------------------------------------------------------ scenarios
def test_broker_stopped_60_s_mid_break_then_started(trained, broker, tmp_path):
    """(a) SIGTERM the broker (it saves its sessions) during the first break, 60 s later start it again: the events
    decided meanwhile wait in the edge's outbox (and paho), go out in order after the reconnect, and reach the
    server through its persistent session."""
    model, held = trained
    watcher = EventWatcher(broker)
    log = tmp_path / "edge.log"
    with ServerProcess(tmp_path, mqtt=(broker.host, broker.port), db=sqlite_url(tmp_path)) as srv:
        proc = edge(model, held, broker, tmp_path / "state", log, "--loop")
        try:
            assert watcher.wait_for(lambda evs: any(e.type is EventType.AD_START for e in evs), 90), log.read_text()
            wait_until(lambda: stored_events(tmp_path / "adbreak.db"), 10, "the server's ad_start")
            broker.stop()  # mid-break: the ad_end is decided while the broker is away
            assert broker.db.exists(), "the broker did not save its sessions"
            before = len(decided(log))
            time.sleep(OUTAGE_S)
            during = decided(log)
            assert len(during) >= before + 4, during  # the replay went on: more than a loop of events waited
            outbox = tmp_path / "state" / f"{DEVICE}.outbox"
            waiting = sorted(p.name for p in outbox.iterdir())
            assert entry_name(during[-1][0]) in waiting, waiting  # on disk, not only in paho's memory
            broker.start()
            # the backlog drains, then at least one event decided after the broker came back goes out too
            wait_until(lambda: len(decided(log)) > len(during), 60, "an event after the outage")
            wait_until(lambda: set(watcher.unique()) >= {i for _, i, _ in decided(log)}, 60, "the drain")
            proc.send_signal(signal.SIGTERM)
            assert wait_exit(proc, 30, log) == 0, log.read_text()[-3000:]
        finally:
            if proc.poll() is None:
                proc.kill()
        decisions = decided(log)
        wait_until(lambda: len(stored_events(tmp_path / "adbreak.db")) >= len(decisions), 60, "the server's ingest")
        api = Api(srv)
        wait_until(api.last_interrupted, 20, "the stopped edge's last segment")
        check_delivery(decisions, watcher, tmp_path / "adbreak.db")
        assert not list(outbox.iterdir())  # every entry acknowledged and removed
        segments = api.segments()
        # Mosquitto publishes the agent's will (offline) as it shuts down: the server interrupts the open ad segment;
        # the events decided during the outage then arrive before the agent's state (it waits for them) and rebuild
        # the history from the ad_end on, each at its own boundary
        db = tmp_path / "adbreak.db"
        check_segments(segments, [(True, run_labels(db, range(1, 2))),
                                  (False, run_labels(db, range(2, len(decisions) + 1)))])
        c = counters(srv.base)
        assert c["rejected"]["out_of_order"] == 0, c
    watcher.close()
    text = log.read_text()
    assert "waiting for the broker's acknowledgement in the outbox" in text  # said so while it waited


def test_edge_sigkilled_mid_break_with_an_unacknowledged_event_then_restarted(trained, broker, tmp_path):
    """(b) The broker is paused (SIGSTOP) just before the first break is decided, so the ad_start stays in the
    outbox unacknowledged; the edge is killed (SIGKILL) mid-break, the broker resumes, the edge restarts with the
    same state folder: the leftover goes out first, the server keeps it once, and the new run carries on."""
    model, held = trained
    watcher = EventWatcher(broker)
    telemetry = Recorder(broker, TOPICS.telemetry(DEVICE))
    first_break = next(s.start for s in read_segments(held.truth) if s.label == "ad")
    state = tmp_path / "state"
    log1, log2 = tmp_path / "edge-1.log", tmp_path / "edge-2.log"
    with ServerProcess(tmp_path, mqtt=(broker.host, broker.port), db=sqlite_url(tmp_path)) as srv:
        api = Api(srv)
        # a long keepalive: the paused broker must not make the agent drop the connection before it is killed
        proc = edge(model, held, broker, state, log1, "--keepalive", 30)
        try:
            assert telemetry.wait_for(lambda msgs: any(
                parse_telemetry(m.payload).stream_t >= first_break - 5 for m in msgs), 90), log1.read_text()
            broker.pause()
            wait_until(lambda: any(t == "ad_start" for _, _, t in decided(log1)), 30, "the ad_start decision")
            seq, _, _ = decided(log1)[-1]
            time.sleep(0.5)  # paho has written it to the (paused) broker's socket
            assert (state / f"{DEVICE}.outbox" / entry_name(seq)).exists()  # not acknowledged: still on disk
            proc.kill()  # SIGKILL, mid-break
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
            broker.resume()
        telemetry.close()
        # the broker reads what the dead agent wrote, then the end of its connection: the will
        wait_until(lambda: any(s["status"] == "interrupted" for s in api.segments()), 30, "the will")
        proc = edge(model, held, broker, state, log2)
        assert wait_exit(proc, 180, log2) == 0, log2.read_text()[-3000:]
        run1, run2 = decided(log1), decided(log2)
        assert [s for s, _, _ in run1] == [1] and len(run2) == 2 * true_breaks(held), (run1, run2)
        assert "sending them first" in log2.read_text()
        wait_until(lambda: len(stored_events(tmp_path / "adbreak.db")) >= len(run1) + len(run2), 30, "the ingest")
        wait_until(api.last_interrupted, 20, "the last segment")
        check_delivery(run1 + run2, watcher, tmp_path / "adbreak.db")
        assert not list((state / f"{DEVICE}.outbox").iterdir())
        db = tmp_path / "adbreak.db"
        check_segments(api.segments(), [(True, run_labels(db, range(1, 2))),
                                        (True, run_labels(db, range(2, 2 + len(run2))))])
        c = counters(srv.base)
        assert c["rejected"]["out_of_order"] == 0, c
        # the leftover was sent twice in all (from the dead agent's socket, then from the outbox): stored once
        assert c["rejected"]["duplicate"] == 1, c
    watcher.close()


def test_server_sigkilled_mid_break_then_restarted(trained, broker, tmp_path):
    """(c) The server is killed (SIGKILL) during the first break and restarted 5 s later on the same database: what
    the edge published meanwhile waits in the server's persistent session on the broker."""
    model, held = trained
    watcher = EventWatcher(broker)
    log = tmp_path / "edge.log"
    db = tmp_path / "adbreak.db"
    srv = ServerProcess(tmp_path, mqtt=(broker.host, broker.port), db=sqlite_url(tmp_path)).__enter__()
    proc = edge(model, held, broker, tmp_path / "state", log)
    try:
        assert watcher.wait_for(lambda evs: any(e.type is EventType.AD_START for e in evs), 90), log.read_text()
        before = counters(srv.base)
        srv.proc.kill()  # SIGKILL, mid-break
        srv.proc.wait(10)
        killed_at = time.time()
        srv._log.close()
        os.replace(tmp_path / "server.log", tmp_path / "server-1.log")
        time.sleep(5.0)  # the ad_end is decided while no server listens
        srv = ServerProcess(tmp_path, mqtt=(broker.host, broker.port), db=sqlite_url(tmp_path)).__enter__()
        back_at = time.time()
        assert wait_exit(proc, 180, log) == 0, log.read_text()[-3000:]
        # at least one event was decided (and published) while no server was there
        assert any(killed_at < e.decided_ts < back_at for e in watcher.events), (killed_at, back_at, watcher.events)
        decisions = decided(log)
        assert len(decisions) == 2 * true_breaks(held), decisions
        wait_until(lambda: len(stored_events(db)) >= len(decisions), 30, "the ingest")
        api = Api(srv)
        wait_until(api.last_interrupted, 20, "the last segment")
        check_delivery(decisions, watcher, db)
        check_segments(api.segments(), [(True, run_labels(db, range(1, len(decisions) + 1)))])
        after = counters(srv.base)  # the restarted server counts from zero
        assert before["rejected"]["out_of_order"] == after["rejected"]["out_of_order"] == 0, (before, after)
    finally:
        if proc.poll() is None:
            proc.kill()
        srv.__exit__(None, None, None)
        watcher.close()


def test_events_decided_while_the_broker_is_down_survive_sigkill(tmp_path):
    """The case the outbox exists for: events decided while the broker is unreachable exist only on the device; the
    agent is killed (SIGKILL); the broker comes back; the next start sends them first, in order, then new ones."""
    broker = PersistentMosquitto(tmp_path)  # not started yet: the agent cannot reach it
    script = textwrap.dedent(f"""
        import sys, time
        from adbreak.wire import EventPayload, EventType, Topics, new_event_id
        from edge.mqtt import MqttLink
        from edge.outbox import Outbox
        first, last, stop = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "stop"
        link = MqttLink(device="{DEVICE}", topics=Topics("adbreak"), host="127.0.0.1", port={broker.port},
                        outbox=Outbox(r"{tmp_path / 'state'}", "{DEVICE}"), reconnect_max_s=1)
        link.start()
        for seq in range(first, last + 1):
            link.publish_event(EventPayload(device="{DEVICE}", event_id=new_event_id(), seq=seq,
                type=EventType.AD_START if seq % 2 else EventType.AD_END, boundary_ts=1000.0 + seq,
                decided_ts=1000.5 + seq, boundary_stream_t=float(seq), decided_stream_t=seq + 0.5, confidence=0.9,
                model_version="m-1"))
        print("decided", link.events_waiting, flush=True)
        if stop:
            sys.exit(0 if link.stop(timeout=20) else 1)
        time.sleep(600)
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = subprocess.Popen([sys.executable, "-c", script, "1", "5", "wait"], stdout=subprocess.PIPE, env=env,
                             cwd=ROOT)
    try:
        assert first.stdout.readline().decode().split() == ["decided", "5"]
    finally:
        first.kill()  # SIGKILL with five events decided and never sent
        first.wait(10)
        first.stdout.close()
    assert sorted(p.name for p in (tmp_path / "state" / f"{DEVICE}.outbox").iterdir()) == [
        entry_name(s) for s in range(1, 6)]
    broker.start()
    try:
        watcher = EventWatcher(broker)
        second = subprocess.run([sys.executable, "-c", script, "6", "7", "stop"], capture_output=True, env=env,
                                cwd=ROOT, timeout=60)
        assert second.returncode == 0, second.stderr.decode()[-2000:]
        assert "sending them first" in second.stderr.decode()
        assert watcher.wait_for(lambda evs: len(evs) >= 7, 10)
        time.sleep(0.3)
        assert [e.seq for e in watcher.events] == list(range(1, 8))
        assert not list((tmp_path / "state" / f"{DEVICE}.outbox").iterdir())
        watcher.close()
    finally:
        broker.stop()
