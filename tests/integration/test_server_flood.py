"""Batched ingest of the real ``adbreak server`` process (``tests/server_support.py``: ``ServerProcess``, on an SQLite
file) through a real Mosquitto: a flood is stored whole and in order; acknowledgements reach the broker after the
commit, so a restarted server gets nothing again that was stored, and again what a killed server had received but
not stored."""

from __future__ import annotations

import sqlite3
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import requests

from adbreak.wire import EventPayload, EventType, Topics, new_event_id
from server import db
from tests.mqtt_support import Mosquitto, MqttClient, wait_for
from tests.server_support import ServerProcess

TOPICS = Topics()


# ---------------------------------------------------------------------------------------------------- helpers
@pytest.fixture
def roomy_broker(tmp_path_factory) -> Iterator[tuple[str, int]]:
    """A private Mosquitto that queues any number of QoS 1 messages for a subscriber (``max_queued_messages 0``,
    like bench/bench_ingest.py's): with the default 1000 the broker itself drops what a flood queues beyond that,
    whatever the server does (docs/server.md)."""
    broker = Mosquitto(tmp_path_factory.mktemp("roomy-mosquitto"), extra="max_queued_messages 0\n").start()
    try:
        yield (broker.host, broker.port)
    finally:
        broker.stop()


def counters(srv: ServerProcess) -> dict:
    """The server's counters (``GET /api/v1/health``)."""
    return requests.get(f"{srv.base}/api/v1/health", timeout=5).json()["counters"]


def known(session: requests.Session, srv: ServerProcess) -> set[str]:
    """The devices the server knows (``GET /api/v1/devices``)."""
    return {d["name"] for d in session.get(f"{srv.base}/api/v1/devices", timeout=5).json()["devices"]}


class Publisher:
    """An edge agent's side: QoS 1 events, as fast as paho takes them."""

    def __init__(self, broker: tuple[str, int], name: str) -> None:
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=name)
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.connect(*broker)
        self.client.loop_start()
        self.seq: dict[str, int] = defaultdict(int)

    def online(self, device: str) -> None:
        self.client.publish(TOPICS.available(device), "online", qos=1, retain=True).wait_for_publish(5)

    def event(self, device: str) -> tuple[str, mqtt.MQTTMessageInfo]:
        self.seq[device] += 1
        seq = self.seq[device]
        now = time.time()
        ev = EventPayload(device=device, event_id=new_event_id(), seq=seq,
                          type=EventType.AD_START if seq % 2 else EventType.AD_END, boundary_ts=now - 0.5,
                          decided_ts=now, boundary_stream_t=seq * 20.0, decided_stream_t=seq * 20.0 + 0.5,
                          confidence=0.9, model_version="m1")
        return ev.event_id, self.client.publish(TOPICS.event(device), ev.to_bytes(), qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def commands(tv: MqttClient) -> dict[str, list[str]]:
    """The mute commands a TV-side actuator received, by device."""
    out: dict[str, list[str]] = defaultdict(list)
    for m in list(tv.messages):
        out[m.topic.split("/")[1]].append(m.payload)
    return out


def new_db(tmp_path: Path, name: str) -> tuple[str, Path]:
    path = tmp_path / name
    db.upgrade(f"sqlite:///{path}")
    return f"sqlite:///{path}", path


def rows(path: Path, sql: str, *args) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql, args).fetchall()


# ---------------------------------------------------------------------------------------------------- tests
def test_a_flood_of_5000_events_is_stored_whole_and_in_order(tmp_path, roomy_broker):
    url, path = new_db(tmp_path, "flood.db")
    edge = Publisher(roomy_broker, "flood-edge")
    tv = MqttClient(roomy_broker, "flood-actuator", "adbreak/+/mute/set")
    devices = [f"sim{i:02d}" for i in range(20)]
    n = 5000
    try:
        with ServerProcess(tmp_path, roomy_broker, db=url) as server:
            session = server.session()
            for dev in devices:
                edge.online(dev)
            wait_for(lambda: len(known(session, server)) == 20, what="20 devices announced")
            sent = [edge.event(devices[i % 20]) for i in range(n)]
            for _, info in sent:
                info.wait_for_publish(60)
            wait_for(lambda: counters(server)["events_ingested"] == n, timeout=120, interval=0.1,
                     what=f"{n} events ingested")
            wait_for(lambda: len(tv.messages) == n, timeout=60, interval=0.1, what=f"{n} mute commands")
            counted = counters(server)
    finally:
        tv.close()
        edge.close()

    stored = [r[0] for r in rows(path, "SELECT event_id FROM events")]
    assert len(stored) == n and set(stored) == {eid for eid, _ in sent}
    assert sum(counted["rejected"].values()) == 0 and counted["rule_firings"] == n
    assert rows(path, "SELECT count(*) FROM rule_firings") == [(n,)]
    by_device = commands(tv)
    for dev in devices:
        seqs = [r[0] for r in rows(path, "SELECT e.seq FROM events e JOIN devices d ON d.id = e.device_id "
                                         "WHERE d.name = ? ORDER BY e.id", dev)]
        assert seqs == list(range(1, n // 20 + 1))  # applied in order
        assert rows(path, "SELECT count(*), sum(s.status = 'open') FROM segments s JOIN devices d "
                          "ON d.id = s.device_id WHERE d.name = ?", dev) == [(n // 20, 1)]
        assert by_device[dev] == ["ON", "OFF"] * (n // 40)  # every command, in order
    assert rows(path, "SELECT count(*) FROM devices WHERE muted") == [(0,)]


def test_a_restart_gets_again_what_was_not_stored_and_nothing_that_was(tmp_path, roomy_broker):
    """Acknowledgements reach the broker after the commit, and the servers share one persistent session (one client
    id). Stopped cleanly after 300 events, the next server gets only what came after, nothing twice. Killed (SIGKILL)
    with messages received but not stored (this test holds the database's write lock, so the server's writer waits
    for it, up to its busy timeout), it acknowledged none of them: the next server gets them again and stores each
    once, in order."""
    url, path = new_db(tmp_path, "acks.db")
    edge = Publisher(roomy_broker, "acks-edge")
    env = {"ADBREAK_SERVER_MQTT_CLIENT_ID": "acks-server"}
    try:
        with ServerProcess(tmp_path, roomy_broker, env=env, db=url) as server:
            session = server.session()
            edge.online("tv1")
            wait_for(lambda: "tv1" in known(session, server), what="tv1 announced")
            for _ in range(300):  # far more than the broker lets wait unacknowledged (20)
                edge.event("tv1")[1].wait_for_publish(10)
            wait_for(lambda: counters(server)["events_ingested"] == 300, timeout=60, what="300 events")

        # the same persistent session: the broker sends what it holds for it first, and the server applies messages
        # in the order they arrive, so once the next event is in, anything delivered again would be counted
        with ServerProcess(tmp_path, roomy_broker, env=env, db=url) as server:
            edge.event("tv1")[1].wait_for_publish(10)
            wait_for(lambda: counters(server)["events_ingested"] == 1, timeout=30, what="the next event")
            before = counters(server)
            assert before["rejected"]["duplicate"] == 0  # nothing was delivered twice
            assert rows(path, "SELECT count(*), max(seq) FROM events") == [(301, 301)]

            writer = sqlite3.connect(path, isolation_level=None, timeout=10)
            try:
                writer.execute("BEGIN IMMEDIATE")  # the write lock: the server's next transaction waits for it
                began = time.monotonic()
                ids = []
                for _ in range(5):
                    eid, info = edge.event("tv1")
                    info.wait_for_publish(10)
                    ids.append(eid)
                seen = wait_for(lambda: (c := counters(server))["received"] == before["received"] + 5 and c,
                                what="5 more messages received")
                server.proc.kill()  # gone before the batch committed: nothing was acknowledged
                server.proc.wait(5)
                waited = time.monotonic() - began
            finally:
                writer.rollback()
                writer.close()
        assert seen["events_ingested"] == 1 and seen["rejected"] == before["rejected"]
        # the server's writer gives up on the lock after the busy timeout; killed before, it acknowledged nothing
        assert waited < db.BUSY_TIMEOUT_MS / 1000, f"killed {waited:.1f} s after the first message: too late"

        with ServerProcess(tmp_path, roomy_broker, env=env, db=url) as server:
            wait_for(lambda: counters(server)["events_ingested"] == 5, timeout=30, what="the 5 events again")
            edge.event("tv1")[1].wait_for_publish(10)  # behind anything else the broker held for the session
            wait_for(lambda: counters(server)["events_ingested"] == 6, timeout=30, what="the event after them")
            assert counters(server)["rejected"]["duplicate"] == 0
    finally:
        edge.close()
    assert rows(path, "SELECT count(*), max(seq) FROM events") == [(307, 307)]
    assert [r[0] for r in rows(path, "SELECT event_id FROM events ORDER BY id")][-6:-1] == ids
