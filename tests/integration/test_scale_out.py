"""Two real server processes share one PostgreSQL database, one Redis and one real Mosquitto (MQTT 5 shared
subscription): several simulated devices publish bursts of genuine events; every event is stored exactly once and in
order, both servers ingested some, and a signed-in Chromium page on each server sees every live update."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import requests

from adbreak.wire import EventPayload, EventType, StatePayload, Topics, new_event_id
from server import db
from tests.db_support import create_pg_database, query, sqlite_url
from tests.edge_mqtt_support import Mosquitto
from tests.mqtt_support import find_free_port
from tests.server_support import ServerProcess
from tests.support import ROOT
from tests.web_support import build_dashboard, launch_chromium, require_chromium, sign_in, wait_until

sync_api = pytest.importorskip("playwright.sync_api")
redis = pytest.importorskip("redis")

REDIS_URL = os.environ.get("ADBREAK_TEST_REDIS", "redis://127.0.0.1:6379/0")
TOPICS = Topics()
DEVICES = [f"tv{i}" for i in range(6)]
EVENTS_PER_DEVICE = 21  # odd: each device ends in an ad


def _edge(broker: Mosquitto, name: str) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"edge-{name}")
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client


def _state(device: str, label: str, since: float) -> bytes:
    return StatePayload(device=device, label=label, since_ts=since, since_stream_t=0.0, confidence=0.8,
                        model_version="m1", ts=time.time()).to_bytes()


def _event(device: str, seq: int, t0: float) -> EventPayload:
    kind = EventType.AD_START if seq % 2 else EventType.AD_END
    boundary = t0 + seq * 20.0
    return EventPayload(device=device, event_id=new_event_id(), seq=seq, type=kind, boundary_ts=boundary,
                        decided_ts=boundary + 1.0, boundary_stream_t=seq * 20.0, decided_stream_t=seq * 20.0 + 1.0,
                        confidence=0.93, model_version="m1")


def _health(srv: ServerProcess) -> dict:
    return requests.get(f"{srv.base}/api/v1/health", timeout=5).json()


def test_two_servers_share_ingestion_database_and_browsers(tmp_path: Path):
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        pytest.fail("mosquitto is not installed")
    redis.Redis.from_url(REDIS_URL).ping()  # a clear error when Redis is not running
    chromium = require_chromium()
    assert chromium
    build_dashboard()

    broker = Mosquitto(tmp_path)
    # as docs/scaling.md asks of the broker: no in-flight window (held, unacknowledged events must not stop the
    # events that fill their gap from being sent) and no queue limit (nothing dropped)
    broker.conf.write_text(f"listener {broker.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                           "max_inflight_messages 0\nmax_queued_messages 0\n")
    broker.start()
    url = create_pg_database()
    db.upgrade(url)
    t0 = time.time() - 5  # events decided now: not late, so they fire the auto-mute
    edges = {d: _edge(broker, d) for d in DEVICES}
    servers: list[ServerProcess] = []
    try:
        for d, client in edges.items():  # announced before the servers start: read back as retained state
            client.publish(TOPICS.available(d), "online", qos=1, retain=True).wait_for_publish(5)
            client.publish(TOPICS.state(d), _state(d, "program", t0), qos=1, retain=True).wait_for_publish(5)
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            env = {"ADBREAK_SERVER_MQTT_SHARE_GROUP": "adbreak", "ADBREAK_SERVER_MQTT_CLIENT_ID": f"adbreak-{name}",
                   "ADBREAK_SERVER_REDIS_URL": REDIS_URL, "ADBREAK_SERVER_HA_DISCOVERY": "false"}
            servers.append(ServerProcess(tmp_path / name, (broker.host, broker.port), env=env, db=url).__enter__())
        for srv in servers:  # each server read every device's retained state
            session = srv.session()
            wait_until(lambda s=session, b=srv.base: {d["name"] for d in s.get(f"{b}/api/v1/devices", timeout=5)
                                                      .json()["devices"]} >= set(DEVICES), timeout=20, what="devices")

        with sync_api.sync_playwright() as pw:
            browser = launch_chromium(pw)
            try:
                pages = []
                for srv in servers:  # one browser page on each server
                    page = browser.new_page()
                    sign_in(page, srv.base)
                    for d in DEVICES:
                        page.get_by_test_id(f"device-card-{d}").wait_for(state="visible", timeout=15_000)
                    pages.append(page)

                # bursts of genuine events: the shared subscription deals each device's events to both servers
                start = time.monotonic()
                sent: dict[str, list[EventPayload]] = {d: [] for d in DEVICES}
                infos = []
                for seq in range(1, EVENTS_PER_DEVICE + 1):
                    for d, client in edges.items():
                        ev = _event(d, seq, t0)
                        sent[d].append(ev)
                        infos.append(client.publish(TOPICS.event(d), ev.to_bytes(), qos=1))
                for info in infos:
                    info.wait_for_publish(10)
                for d, client in edges.items():  # a live state change: through the shared subscription too
                    client.publish(TOPICS.state(d), _state(d, "ad", t0 + EVENTS_PER_DEVICE * 20.0), qos=1,
                                   retain=True).wait_for_publish(5)

                total = len(DEVICES) * EVENTS_PER_DEVICE
                wait_until(lambda: query(url, "SELECT count(*) FROM events")[0][0] == total
                           and query(url, "SELECT count(*) FROM devices WHERE state_label = 'ad'")[0][0]
                           == len(DEVICES), timeout=60, interval=0.2, what="every event stored")
                stored_s = time.monotonic() - start

                # every browser, on either server, sees every device's live state change, whichever server took it
                for page in pages:
                    for d in DEVICES:
                        wait_until(lambda p=page, d=d: p.get_by_test_id(f"device-state-{d}").inner_text() == "AD",
                                   timeout=20, what=f"{d} live on both pages")
                for i, page in enumerate(pages):
                    page.screenshot(path=str(tmp_path / f"scale-out-page-{i}.png"))
            finally:
                browser.close()

        # exactly once, in order: every event id once, each device's seqs 1..N, segments follow the events
        rows = query(url, "SELECT d.name, e.seq, e.event_id FROM events e JOIN devices d ON d.id = e.device_id")
        assert len(rows) == total and len({r[2] for r in rows}) == total
        for d in DEVICES:
            assert sorted(r[1] for r in rows if r[0] == d) == list(range(1, EVENTS_PER_DEVICE + 1))
            assert {r[2] for r in rows if r[0] == d} == {e.event_id for e in sent[d]}
            segs = query(url, "SELECT s.label, s.status, s.start, s.\"end\" FROM segments s JOIN devices d "
                         "ON d.id = s.device_id WHERE d.name = :n ORDER BY s.start, s.id", n=d)
            assert [s[0] for s in segs] == ["ad", "program"] * (EVENTS_PER_DEVICE // 2) + ["ad"]
            assert [s[1] for s in segs] == ["closed"] * (EVENTS_PER_DEVICE - 1) + ["open"]
            assert all(a[3] == b[2] for a, b in zip(segs, segs[1:], strict=False))
        assert query(url, "SELECT min(last_seq), max(last_seq) FROM devices") == [
            (EVENTS_PER_DEVICE, EVENTS_PER_DEVICE)]

        counters = [_health(srv)["counters"] for srv in servers]
        ingested = [c.get("events_ingested", 0) for c in counters]
        print(f"\nscale-out: {total} events stored in {stored_s:.1f} s; ingested per server {ingested}; "
              f"held {[c.get('events_held', 0) for c in counters]}; rejected {[c.get('rejected') for c in counters]}")
        assert all(n > 0 for n in ingested), ingested  # both servers took part
        assert sum(ingested) == total  # and none stored an event twice
        for c in counters:
            assert c.get("rejected", {}).get("out_of_order", 0) == 0, c
    finally:
        for srv in reversed(servers):
            srv.__exit__(None, None, None)
        for client in edges.values():
            client.disconnect()
            client.loop_stop()
        broker.stop()


def test_a_server_refuses_a_redis_it_cannot_reach(tmp_path: Path):
    """``adbreak server`` as a process, told a Redis that does not answer: it stops before serving, with one line on
    stderr and exit code 2. The database plays no part (an SQLite file). A bad share group is refused with the other
    settings (``tests/unit/test_server_settings.py``)."""
    url = sqlite_url(tmp_path)
    db.upgrade(url)
    closed = find_free_port()
    proc = subprocess.run(
        [sys.executable, "-m", "adbreak", "server", "--db", url, "--mqtt", "127.0.0.1:1", "--host", "127.0.0.1",
         "--port", str(find_free_port())],
        cwd=ROOT, env={**os.environ, "ADBREAK_SERVER_REDIS_URL": f"redis://127.0.0.1:{closed}/0"},
        capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stdout == "", (proc.returncode, proc.stdout, proc.stderr)
    assert len(proc.stderr.splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith(f"adbreak server: error: cannot reach Redis at redis://127.0.0.1:{closed}/0")
