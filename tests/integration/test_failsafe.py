"""Never stuck muted, nothing fired twice (issue 5, items 2 and 3), with the real pieces: a private Mosquitto,
``adbreak server`` on SQLite, ``adbreak edge`` replaying a held-out built broadcast with a trained model, and a plain
paho subscriber on the mute command topic (what a TV actuator or Home Assistant would see).

* The edge dies (SIGKILL) during an ad: the broker's will marks it offline, its segment is ``interrupted`` and the
  unmute is published within 5 s of the kill.
* The edge freezes (SIGSTOP: a hung or powerless Pi whose socket stays open) during an ad: the server hears nothing
  more and unmutes within 5 s (``silent_unmute_s``), before the broker's keepalive would.
* The server is killed (SIGKILL) during an ad and restarted: it does not mute again, and it unmutes once when the
  ad ends: the commands are exactly ``ON, OFF``.
* The server is down while a whole break starts and ends: after its restart the events are stored, but nothing is
  sent for them: no mute, and a user rule on ``ad_start`` is recorded as skipped ("late by ..."), not run.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from adbreak.wire import Topics
from tests.db_support import sqlite_url
from tests.edge_mqtt_support import Mosquitto, Recorder, needs_mosquitto, start_edge
from tests.server_support import ServerProcess
from tests.support import SHORT_REPLAY_ENV

pytestmark = [pytest.mark.slow, needs_mosquitto]

DEVICE = "failsafe-tv"
TOPICS = Topics("adbreak")
MUTE = f"adbreak/{DEVICE}/mute/set"
DECISION_ENV = SHORT_REPLAY_ENV
UNMUTE_WITHIN_S = 5.0


@pytest.fixture
def broker(tmp_path):
    b = Mosquitto(tmp_path).start()
    yield b
    b.stop()


@pytest.fixture
def watch(broker):
    rec = Recorder(broker, f"adbreak/{DEVICE}/#")
    yield rec
    rec.close()


def edge(live_model, broker, tmp_path: Path, speed: float, *extra: object) -> subprocess.Popen[bytes]:
    model, held = live_model
    return start_edge("--source", held.video, "--device", DEVICE, "--model", model, "--mqtt",
                      f"{broker.host}:{broker.port}", "--speed", speed, "--state-dir", tmp_path / "state", *extra,
                      env=DECISION_ENV, log=tmp_path / "edge.log")


def commands(watch: Recorder) -> list[tuple[float, str]]:
    return [(m.at, m.text) for m in watch.on(MUTE)]


def wait_muted(watch: Recorder, edge_proc: subprocess.Popen, tmp_path: Path, timeout: float = 60.0) -> float:
    ok = watch.wait_for(lambda msgs: any(m.topic == MUTE and m.text == "ON" for m in msgs), timeout)
    assert ok, f"no mute within {timeout} s; edge log:\n{(tmp_path / 'edge.log').read_text()[-3000:]}"
    assert edge_proc.poll() is None
    return next(m.at for m in watch.on(MUTE) if m.text == "ON")


def finish(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)


def segments(srv: ServerProcess) -> list[dict]:
    r = srv.session().get(f"{srv.base}/api/v1/segments", params={"device": DEVICE}, timeout=10)
    r.raise_for_status()
    return r.json()["segments"]


def test_edge_sigkilled_during_an_ad_is_unmuted_within_5_s(live_model, broker, watch, tmp_path):
    with ServerProcess(tmp_path, (broker.host, broker.port), db=sqlite_url(tmp_path)) as srv:
        proc = edge(live_model, broker, tmp_path, 4)
        try:
            wait_muted(watch, proc, tmp_path)
            killed = time.time()
            proc.send_signal(signal.SIGKILL)
            assert watch.wait_for(lambda msgs: any(m.topic == MUTE and m.text == "OFF" for m in msgs), 15)
        finally:
            finish(proc)
        unmuted = next(at for at, text in commands(watch) if text == "OFF")
        assert unmuted - killed <= UNMUTE_WITHIN_S, f"unmuted {unmuted - killed:.2f} s after the kill"
        assert [text for _at, text in commands(watch)] == ["ON", "OFF"]
        assert any(m.text == "offline" for m in watch.on(TOPICS.available(DEVICE)))
        segs = segments(srv)
        assert segs[-1]["label"] == "ad" and segs[-1]["status"] == "interrupted", segs
        firings = srv.session().get(f"{srv.base}/api/v1/rules/firings", params={"device": DEVICE}, timeout=10).json()
        assert [(f["action"], f["reason"]) for f in firings["firings"]] == [("mute", "ad_start"),
                                                                           ("unmute", "offline")]


def test_edge_frozen_during_an_ad_is_unmuted_within_5_s(live_model, broker, watch, tmp_path):
    """SIGSTOP keeps the socket open: no will yet; the server's silence check unmutes."""
    with ServerProcess(tmp_path, (broker.host, broker.port), db=sqlite_url(tmp_path)):
        proc = edge(live_model, broker, tmp_path, 4, "--keepalive", "30")  # the will would take 45 s here
        try:
            wait_muted(watch, proc, tmp_path)
            frozen = time.time()
            proc.send_signal(signal.SIGSTOP)
            assert watch.wait_for(lambda msgs: any(m.topic == MUTE and m.text == "OFF" for m in msgs), 15)
            unmuted = next(at for at, text in commands(watch) if text == "OFF")
            assert unmuted - frozen <= UNMUTE_WITHIN_S, f"unmuted {unmuted - frozen:.2f} s after the freeze"
            assert not any(m.text == "offline" for m in watch.on(TOPICS.available(DEVICE)))  # it was the silence
        finally:
            proc.send_signal(signal.SIGCONT)
            finish(proc)
        assert [text for _at, text in commands(watch)] == ["ON", "OFF"]


def test_server_sigkilled_during_an_ad_neither_mutes_twice_nor_forgets_to_unmute(live_model, broker, watch, tmp_path):
    db = sqlite_url(tmp_path, "shared.db")
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    first = ServerProcess(tmp_path / "first", (broker.host, broker.port), db=db).__enter__()
    # speed 0.75: the first break (25.1-36.8 s) lasts 15.6 s of wall time, room for a restart inside it
    proc = edge(live_model, broker, tmp_path, 0.75, "--duration", "45")
    try:
        wait_muted(watch, proc, tmp_path, timeout=90)
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(10)
        first.__exit__(None, None, None)
        with ServerProcess(tmp_path / "second", (broker.host, broker.port), db=db) as second:
            restarted = time.time()
            assert proc.wait(120) == 0, (tmp_path / "edge.log").read_text()[-3000:]
            assert watch.wait_for(lambda msgs: sum(m.topic == MUTE for m in msgs) >= 2, 10)
            time.sleep(2)  # anything more would come now
            assert [text for _at, text in commands(watch)] == ["ON", "OFF"]
            api = second.session()
            firings = api.get(f"{second.base}/api/v1/rules/firings", params={"device": DEVICE},
                              timeout=10).json()["firings"]
            assert [(f["action"], f["reason"]) for f in firings] == [("mute", "ad_start"), ("unmute", "ad_end")]
            labels = [s["label"] for s in segments(second)]
            assert labels[:3] == ["program", "ad", "program"], labels
            events = api.get(f"{second.base}/api/v1/events", params={"device": DEVICE}, timeout=10).json()["events"]
            ad_end = next(e for e in events if e["type"] == "ad_end")
            # the scenario: the new process was up (and had read the retained state back) before the ad ended
            assert ad_end["decided_ts"] > restarted, f"the restart took until {restarted - ad_end['decided_ts']:.1f} " \
                "s after the ad ended: too slow a machine for this scenario"
    finally:
        finish(proc)


def test_a_break_that_passed_while_the_server_was_down_fires_nothing(live_model, broker, watch, tmp_path):
    db = sqlite_url(tmp_path, "shared.db")
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    env = {"ADBREAK_SERVER_LATE_EVENT_S": "2"}
    lights = Recorder(broker, "home/#")
    with ServerProcess(tmp_path / "first", (broker.host, broker.port), db=db, env=env) as first:
        api = first.session()
        rule = {"name": "lights", "trigger": "ad_start", "conditions": {},
                "actions": [{"type": "mqtt", "topic": "home/{{ device }}/lights", "payload": "dim"}]}
        r = api.post(f"{first.base}/api/v1/rules", json=rule, timeout=10)
        assert r.status_code == 201, r.text
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(10)
    proc = edge(live_model, broker, tmp_path, 4, "--duration", "45")
    try:
        assert proc.wait(60) == 0, (tmp_path / "edge.log").read_text()[-3000:]
        log = (tmp_path / "edge.log").read_text()
        assert "event ad_start" in log and "event ad_end" in log, log[-3000:]
        time.sleep(2.5)  # older than late_event_s by the time the server is back
        with ServerProcess(tmp_path / "second", (broker.host, broker.port), db=db, env=env) as second:
            api = second.session()

            def stored() -> list[dict]:
                return api.get(f"{second.base}/api/v1/events", params={"device": DEVICE}, timeout=10).json()["events"]

            deadline = time.monotonic() + 20
            while len(stored()) < 2 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert [e["type"] for e in stored()] == ["ad_start", "ad_end"]

            def runs() -> list[dict]:
                return api.get(f"{second.base}/api/v1/rules/runs", timeout=10).json()["runs"]

            deadline = time.monotonic() + 10
            while not runs() and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(1.5)
            assert commands(watch) == []  # no mute, and so no unmute
            assert lights.messages == []  # the user rule did not act
            [run] = runs()
            assert run["status"] == "skipped" and "late by" in json.dumps(run), run
    finally:
        lights.close()
        finish(proc)
