"""Batched ingest through a real Mosquitto: a flood is stored whole and in order, acknowledgements reach the broker
after the commit, and what the server had received but not stored when it went away is delivered again."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from werkzeug.serving import make_server

from adbreak.wire import EventPayload, EventType, Topics, new_event_id
from server import db
from server.app import create_app
from server.settings import ServerSettings
from tests.mqtt_support import Mosquitto, find_free_port, wait_for

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


class Server:
    """``create_app`` behind a real threaded HTTP server, like ``adbreak server``."""

    def __init__(self, db_url: str, broker: tuple[str, int], **extra) -> None:
        self.settings = ServerSettings(database_url=db_url, mqtt_host=broker[0], mqtt_port=broker[1],
                                       host="127.0.0.1", port=find_free_port(),
                                       web_dir=Path("/nonexistent/web/dist"), **extra)
        self.app, _ = create_app(self.settings)
        self.runtime = self.app.extensions["adbreak"]
        self.http = make_server("127.0.0.1", self.settings.port, self.app, threaded=True)
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)
        self.thread.start()
        assert self.runtime.bridge.wait_connected(10), "server did not connect to the broker"

    def counters(self) -> dict:
        return self.runtime.store.counters.snapshot()

    def stop(self) -> None:
        self.http.shutdown()
        self.thread.join(5)
        self.runtime.stop()


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


class Collector:
    """What a TV-side actuator receives on the mute topics."""

    def __init__(self, broker: tuple[str, int]) -> None:
        self.lock = threading.Lock()
        self.commands: dict[str, list[str]] = defaultdict(list)
        subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="flood-actuator")
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.connect(*broker)
        self.client.loop_start()
        self.client.subscribe("adbreak/+/mute/set", qos=1)
        assert subscribed.wait(5)

    def _on_message(self, client, userdata, msg) -> None:
        with self.lock:
            self.commands[msg.topic.split("/")[1]].append(msg.payload.decode())

    def count(self) -> int:
        with self.lock:
            return sum(len(v) for v in self.commands.values())

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


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
    server = Server(url, roomy_broker)
    edge = Publisher(roomy_broker, "flood-edge")
    tv = Collector(roomy_broker)
    devices = [f"sim{i:02d}" for i in range(20)]
    n = 5000
    try:
        for dev in devices:
            edge.online(dev)
        wait_for(lambda: len(server.runtime.store.devices()) == 20, what="20 devices announced")
        sent = [edge.event(devices[i % 20]) for i in range(n)]
        for _, info in sent:
            info.wait_for_publish(60)
        wait_for(lambda: server.counters()["events_ingested"] == n, timeout=120, interval=0.1,
                 what=f"{n} events ingested")
        wait_for(lambda: tv.count() == n, timeout=60, interval=0.1, what=f"{n} mute commands")
        counters = server.counters()
    finally:
        tv.close()
        edge.close()
        server.stop()

    stored = [r[0] for r in rows(path, "SELECT event_id FROM events")]
    assert len(stored) == n and set(stored) == {eid for eid, _ in sent}
    assert sum(counters["rejected"].values()) == 0 and counters["rule_firings"] == n
    assert rows(path, "SELECT count(*) FROM rule_firings") == [(n,)]
    for dev in devices:
        seqs = [r[0] for r in rows(path, "SELECT e.seq FROM events e JOIN devices d ON d.id = e.device_id "
                                         "WHERE d.name = ? ORDER BY e.id", dev)]
        assert seqs == list(range(1, n // 20 + 1))  # applied in order
        assert rows(path, "SELECT count(*), sum(s.status = 'open') FROM segments s JOIN devices d "
                          "ON d.id = s.device_id WHERE d.name = ?", dev) == [(n // 20, 1)]
        assert tv.commands[dev] == ["ON", "OFF"] * (n // 40)  # every command, in order
    assert rows(path, "SELECT count(*) FROM devices WHERE muted") == [(0,)]


def test_acknowledged_after_the_commit_so_a_restart_gets_nothing_again(tmp_path, roomy_broker):
    url, path = new_db(tmp_path, "acks.db")
    edge = Publisher(roomy_broker, "acks-edge")
    server = Server(url, roomy_broker, mqtt_client_id="acks-server")
    try:
        edge.online("tv1")
        wait_for(lambda: server.runtime.store.device("tv1"), what="tv1 announced")
        for _ in range(300):  # far more than the broker lets wait unacknowledged (20)
            edge.event("tv1")[1].wait_for_publish(10)
        wait_for(lambda: server.counters()["events_ingested"] == 300, timeout=60, what="300 events")
    finally:
        server.stop()
    server = Server(url, roomy_broker, mqtt_client_id="acks-server")  # the same persistent session
    try:
        edge.event("tv1")[1].wait_for_publish(10)
        wait_for(lambda: server.counters()["events_ingested"] == 1, timeout=30, what="the next event")
        time.sleep(0.5)
        assert server.counters()["rejected"]["duplicate"] == 0  # nothing was delivered twice
    finally:
        server.stop()
        edge.close()
    assert rows(path, "SELECT count(*), max(seq) FROM events") == [(301, 301)]


def test_what_was_received_but_not_stored_is_delivered_again(tmp_path, roomy_broker):
    """The server goes away with messages in its queue: they were never acknowledged, so the broker delivers them
    to the next server of the session (here on another database, standing in for a lost transaction)."""
    url_a, path_a = new_db(tmp_path, "a.db")
    url_b, path_b = new_db(tmp_path, "b.db")
    edge = Publisher(roomy_broker, "crash-edge")
    first = Server(url_a, roomy_broker, mqtt_client_id="crash-server")
    gate = threading.Event()
    try:
        first.runtime.ingest.call(lambda batch: gate.wait(30))  # the worker is busy: messages wait in its queue
        edge.online("tv1")
        ids = []
        for _ in range(5):
            eid, info = edge.event("tv1")
            info.wait_for_publish(10)
            ids.append(eid)
        wait_for(lambda: first.counters()["received"] == 6, what="6 messages received")
        first.runtime.bridge.stop()  # gone before the batch committed: nothing was acknowledged
    finally:
        gate.set()
        first.stop()
    second = Server(url_b, roomy_broker, mqtt_client_id="crash-server", devices=["tv1"])
    try:
        wait_for(lambda: second.counters()["events_ingested"] == 5, timeout=30, what="the 5 events again")
    finally:
        second.stop()
        edge.close()
    assert [r[0] for r in rows(path_b, "SELECT event_id FROM events ORDER BY id")] == ids
