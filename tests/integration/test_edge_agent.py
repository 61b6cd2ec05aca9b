"""``adbreak edge`` end to end: a real model, a real built broadcast replayed in real time (x4), a real Mosquitto, the
agent as its own process, and a plain paho subscriber checking what the wire contract promises.

The model is the shared ``live_model`` (``tests/conftest.py``: pool ``train``, seed 1, 240 s) and the agent
watches a 90 s held-out broadcast (pool ``heldout``, seed 2) with two ~11.6 s breaks separated by 18.5 s of program.
The default ``min_program_s`` (20 s) would hold the second ad_start back to 20 s after the first ad_end, so the runs
set it to 10 s through ``ADBREAK_EDGE_DECISION`` (which also exercises the decision overrides).
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import time
from pathlib import Path

import pytest

from adbreak.segments import read_segments
from adbreak.wire import EventType, Topics, parse_event, parse_state, parse_telemetry
from tests.edge_mqtt_support import Recorder, mosquitto, needs_mosquitto, publish, retained, start_edge
from tests.support import SHORT_REPLAY_ENV

pytestmark = [pytest.mark.slow, needs_mosquitto]

SPEED = 4.0
TOPICS = Topics("adbreak")
DECISION_ENV = SHORT_REPLAY_ENV


@pytest.fixture
def broker(tmp_path):
    with mosquitto(tmp_path) as b:
        yield b


def true_changes(truth_csv: Path) -> list[tuple[float, str]]:
    segs = read_segments(truth_csv)
    return [(b.start, b.label) for a, b in zip(segs, segs[1:], strict=False) if a.label != b.label]


def wait_exit(proc: subprocess.Popen, timeout: float, log: Path) -> int:
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        raise AssertionError(f"the agent did not finish in {timeout} s:\n{log.read_text()[-3000:]}") from None


def test_replay_publishes_availability_events_state_and_telemetry(live_model, broker, tmp_path):
    model, held = live_model
    rec = Recorder(broker, "adbreak/#")
    log = tmp_path / "edge.log"
    started = time.time()
    proc = start_edge("--source", held.video, "--device", "tv1", "--model", model, "--mqtt",
                      f"{broker.host}:{broker.port}", "--speed", SPEED, "--state-dir", tmp_path / "state",
                      env=DECISION_ENV, log=log)
    rc = wait_exit(proc, 180, log)
    ended = time.time()
    assert rc == 0, log.read_text()[-3000:]
    assert ended - started >= 90 / SPEED  # paced, not read as fast as it decodes
    time.sleep(0.5)
    rec.close()

    # availability: online first, stopped last (the subscriber was there before the agent: live, not retained)
    available = [m.text for m in rec.on(TOPICS.available("tv1"))]
    assert available[0] == "online" and available[-1] == "stopped" and "offline" not in available

    # events: one per true change, in order, seq 1..n, unique ids, boundaries within 1.5 s of the truth
    changes = true_changes(held.truth)
    msgs = rec.on(TOPICS.event("tv1"))
    events = [parse_event(m.payload, "tv1") for m in msgs]
    assert [e.type for e in events] == [EventType.AD_START if label == "ad" else EventType.AD_END
                                        for _, label in changes], log.read_text()[-3000:]
    assert [e.seq for e in events] == list(range(1, len(changes) + 1))
    assert len({e.event_id for e in events}) == len(events)
    assert not any(m.retain for m in msgs) and all(m.qos == 1 for m in msgs)
    for e, (t_true, _) in zip(events, changes, strict=True):
        assert abs(e.boundary_stream_t - t_true) <= 1.5, (e, t_true)
        # wall times are the replay's wall clock: t0 + stream_t / speed
        assert e.decided_ts - e.boundary_ts == pytest.approx((e.decided_stream_t - e.boundary_stream_t) / SPEED,
                                                             abs=1e-3)
    t0_walls = [e.boundary_ts - e.boundary_stream_t / SPEED for e in events]
    assert max(t0_walls) - min(t0_walls) < 1e-3  # one origin for the whole replay
    assert started < t0_walls[0] < started + 15  # stream time 0 was released after the agent started
    for e, m in zip(events, msgs, strict=True):
        assert -0.05 <= m.at - e.decided_ts < 3.0  # published live, right after the decision (a shared CI box)

    # state: published on change, retained; the last one matches the last true segment
    states = [parse_state(m.payload, "tv1") for m in rec.on(TOPICS.state("tv1"))]
    assert [s.label for s in states] == ["program"] + [label for _, label in changes]
    kept = retained(broker, "adbreak/tv1/#")
    assert kept[TOPICS.available("tv1")].text == "stopped"
    final = parse_state(kept[TOPICS.state("tv1")].payload, "tv1")
    assert final.label == changes[-1][1] and final.since_stream_t == events[-1].boundary_stream_t
    assert final.since_ts == pytest.approx(events[-1].boundary_ts)
    assert TOPICS.event("tv1") not in kept and TOPICS.telemetry("tv1") not in kept

    # telemetry: about once per wall second, QoS 0, the analysed rate near 5 fps x 4
    tel_msgs = rec.on(TOPICS.telemetry("tv1"))
    tel = [parse_telemetry(m.payload, "tv1") for m in tel_msgs]
    run_s = rec.on(TOPICS.available("tv1"))[-1].at - rec.on(TOPICS.available("tv1"))[0].at
    assert run_s - 3 <= len(tel) <= run_s + 1
    gaps = [b.at - a.at for a, b in zip(tel_msgs, tel_msgs[1:], strict=False)]
    assert statistics.median(gaps) == pytest.approx(1.0, abs=0.15) and max(gaps) < 3.0
    assert all(m.qos == 0 and not m.retain for m in tel_msgs)
    assert [t.stream_t for t in tel] == sorted(t.stream_t for t in tel)
    assert statistics.median(t.fps for t in tel) == pytest.approx(5.0 * SPEED, rel=0.25)
    assert all(t.latency_ms > 0 for t in tel) and all(t.label in ("program", "ad") for t in tel[1:])
    assert json.loads((tmp_path / "state" / "tv1.seq").read_text())["seq"] == len(events)


def test_seq_keeps_counting_across_restarts(live_model, broker, tmp_path):
    model, held = live_model
    rec = Recorder(broker, TOPICS.event("tv2"))
    for run in range(2):  # 40 s of stream each, read as fast as it decodes: the first break (ad_start, ad_end)
        log = tmp_path / f"run{run}.log"
        proc = start_edge("--source", held.video, "--device", "tv2", "--model", model, "--mqtt",
                          f"{broker.host}:{broker.port}", "--no-realtime", "--duration", "40", "--state-dir",
                          tmp_path / "state", env=DECISION_ENV, log=log)
        assert wait_exit(proc, 120, log) == 0, log.read_text()[-3000:]
    assert rec.wait_for(lambda ms: len(ms) >= 4, 5)
    events = [parse_event(m.payload, "tv2") for m in rec.messages]
    assert [e.seq for e in events] == [1, 2, 3, 4]
    assert [e.type for e in events] == [EventType.AD_START, EventType.AD_END] * 2
    assert len({e.event_id for e in events}) == 4
    rec.close()


@pytest.mark.parametrize("how", ["SIGKILL", "SIGSTOP"])
def test_a_vanished_agent_leaves_the_retained_offline_will(live_model, broker, tmp_path, how):
    """SIGKILL: the kernel closes the socket and the broker publishes the will at once. SIGSTOP: the connection stays
    open but silent, as when the Pi loses power or network, and the broker must notice through the keepalive: after
    1.5 x keepalive of silence, found by Mosquitto 2.0's keepalive sweep, which runs only every 5-6 s (so up to
    ~6 s more; the newer per-second sweep is exact)."""
    model, held = live_model
    keepalive = 2
    rec = Recorder(broker, TOPICS.available("tv3"))
    log = tmp_path / "edge.log"
    proc = start_edge("--source", held.video, "--device", "tv3", "--model", model, "--mqtt",
                      f"{broker.host}:{broker.port}", "--loop", "--state-dir", tmp_path / "state",
                      env={"ADBREAK_EDGE_KEEPALIVE_S": str(keepalive)}, log=log)
    try:
        assert rec.wait_for(lambda ms: any(m.text == "online" for m in ms), 60), log.read_text()[-3000:]
        time.sleep(1.0)
        vanished = time.time()
        os.kill(proc.pid, getattr(signal, how))
        assert rec.wait_for(lambda ms: ms[-1].text == "offline", keepalive * 1.5 + 10), log.read_text()[-3000:]
    finally:
        proc.kill()
        proc.wait(10)
    delay = rec.messages[-1].at - vanished
    if how == "SIGKILL":
        assert delay <= keepalive * 1.5, delay
    else:
        # silence since the last packet (telemetry, at most ~1 s before the stop) must exceed 1.5 x keepalive
        assert keepalive * 1.5 - 1.5 <= delay <= keepalive * 1.5 + 7.0, delay
    rec.close()
    assert retained(broker, TOPICS.available("tv3"))[TOPICS.available("tv3")].text == "offline"


def test_mute_commands_run_the_configured_command_and_sigterm_stops_cleanly(live_model, broker, tmp_path):
    model, held = live_model
    out = tmp_path / "tv-audio.txt"
    config = tmp_path / "edge.toml"
    config.write_text(
        f'device = "tv4"\nsource = "{held.video}"\nmodel = "{model}"\nmqtt_host = "{broker.host}"\n'
        f'mqtt_port = {broker.port}\nloop = true\nstate_dir = "{tmp_path / "state"}"\n'
        f'actuator = "command"\nactuator_command_on = "echo muted >> {out}"\n'
        f'actuator_command_off = "echo unmuted >> {out}"\n'
    )
    rec = Recorder(broker, "adbreak/tv4/#")
    log = tmp_path / "edge.log"
    proc = start_edge("--config", config, log=log)
    try:
        # the first telemetry comes a second after the connection, well after the subscription
        assert rec.wait_for(lambda ms: any(m.topic.endswith("/telemetry") for m in ms), 60), log.read_text()[-3000:]
        mute = TOPICS.mute("tv4")
        publish(broker, mute, "ON")
        deadline = time.monotonic() + 10
        while not (out.exists() and out.read_text() == "muted\n") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert out.read_text() == "muted\n"
        publish(broker, mute, "OFF")
        publish(broker, mute, "OFF")  # a repeat is ignored
        publish(broker, mute, "louder")  # not a command: logged and ignored
        deadline = time.monotonic() + 10
        while out.read_text() != "muted\nunmuted\n" and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        assert out.read_text() == "muted\nunmuted\n"
        proc.send_signal(signal.SIGTERM)
        assert wait_exit(proc, 20, log) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert "ignored mute command 'louder'" in log.read_text()
    assert retained(broker, TOPICS.available("tv4"))[TOPICS.available("tv4")].text == "stopped"
    rec.close()


def test_an_unreadable_source_is_a_one_line_error(live_model, tmp_path):
    model, _ = live_model
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"this is not a video" * 100)
    proc = subprocess.run(
        [*start_edge_argv(), "--source", bad, "--device", "tv5", "--model", model, "--mqtt", "127.0.0.1:1",
         "--state-dir", tmp_path / "state"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("adbreak edge: error:")]
    assert len(errors) == 1 and "broken.mp4" in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_settings_are_refused_before_anything_starts(tmp_path):
    proc = subprocess.run([*start_edge_argv(), "--source", "x.mp4", "--device", "Living Room", "--model", "m"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("adbreak edge: error: invalid edge settings: device")
    assert len(proc.stderr.strip().splitlines()) == 1


def start_edge_argv() -> list[str]:
    import sys

    return [sys.executable, "-m", "edge"]
