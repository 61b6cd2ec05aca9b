"""The integration tests' shared real server: one ``adbreak server`` process per database engine and test session.

``live_server`` (a :class:`LiveServer`) is ``python -m adbreak server`` on a migrated database of the test's engine
(``db_engine``: SQLite, then PostgreSQL), connected to a private Mosquitto shared by the session, with the test admin
signed in over HTTP (``requests``). Tests share it, so each works on devices of its own (:meth:`LiveServer.device`)
and removes what it adds that others could meet (rules, users). Publishing as an edge agent or Home Assistant goes
through :attr:`LiveServer.mqtt`, one connected paho client.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import requests

from adbreak.wire import EventPayload, EventType, StatePayload, Topics, new_event_id
from tests.server_support import ServerProcess, http_session
from tests.support import missing_service, wait_for

TOPICS = Topics()


class Mqtt:
    """One connected paho client: publishes (QoS 1, waiting for the broker's ack) and records what it subscribed to."""

    def __init__(self, host: str, port: int, name: str) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{name}-{uuid.uuid4().hex[:8]}")
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.connect(host, port)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:
        with self._lock:
            self.messages.append((msg.topic, msg.payload, bool(msg.retain)))

    def subscribe(self, topic: str) -> Mqtt:
        self._subscribed.clear()
        self.client.subscribe(topic, qos=1)
        assert self._subscribed.wait(5), f"no SUBACK for {topic}"
        return self

    def on(self, topic: str) -> list[tuple[str, bool]]:
        with self._lock:
            return [(p.decode(), r) for t, p, r in self.messages if t == topic]

    def publish(self, topic: str, payload: bytes | str, *, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class LiveServer:
    """The shared ``adbreak server`` process: ``base`` URL, ``admin`` (a signed-in ``requests.Session``), ``mqtt``."""

    def __init__(self, srv: ServerProcess, broker) -> None:
        self.srv = srv
        self.base = srv.base
        self.broker = broker
        self.admin = http_session(srv.base)
        self.mqtt = Mqtt(broker.host, broker.port, "live-edge")

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def get(self, path: str, **kw) -> requests.Response:
        return self.admin.get(self.url(path), timeout=10, **kw)

    def json(self, path: str) -> dict:
        r = self.get(path)
        assert r.status_code == 200, (path, r.status_code, r.text)
        return r.json()

    @staticmethod
    def device(prefix: str) -> str:
        """A device name no other test uses."""
        return f"{prefix}-{uuid.uuid4().hex[:8]}"

    # ------------------------------------------------------------------------------------------------ as an edge
    def announce(self, device: str, *, label: str = "program", since: float | None = None,
                 model: str = "m1", confidence: float = 0.9) -> None:
        now = time.time()
        self.mqtt.publish(TOPICS.available(device), "online", retain=True)
        self.mqtt.publish(TOPICS.state(device), StatePayload(
            device=device, label=label, since_ts=since if since is not None else now - 3600, since_stream_t=0.0,
            confidence=confidence, model_version=model, ts=now).to_bytes(), retain=True)

    def event(self, device: str, seq: int, kind: str, boundary: float, *, decided: float | None = None,
              confidence: float = 0.9) -> EventPayload:
        """An event as the edge sends it, decided now (live, not late) unless ``decided`` says otherwise."""
        decided = decided if decided is not None else time.time()
        ev = EventPayload(device=device, event_id=new_event_id(), seq=seq, type=EventType(kind), boundary_ts=boundary,
                          decided_ts=decided, boundary_stream_t=float(seq), decided_stream_t=float(seq) + 1.0,
                          confidence=confidence, model_version="m1")
        self.mqtt.publish(TOPICS.event(device), ev.to_bytes())
        return ev

    def breaks(self, device: str, spans: list[tuple[float, float]]) -> None:
        """Announce ``device`` (program for an hour) and send its breaks ``(start, end)`` as ad_start/ad_end events;
        wait until the server has stored them all."""
        self.announce(device)
        seq = 0
        for start, end in spans:
            for kind, at in (("ad_start", start), ("ad_end", end)):
                seq += 1
                self.event(device, seq, kind, at)
        def stored() -> bool:
            r = self.get(f"/api/v1/devices/{device}")
            return r.status_code == 200 and r.json()["last_seq"] == seq

        wait_for(stored, timeout=10, what=f"{device}'s {seq} events stored")

    def forget(self, device: str) -> None:
        """Clear what the broker retains for ``device`` (its availability and state)."""
        self.mqtt.publish(TOPICS.available(device), b"", retain=True)
        self.mqtt.publish(TOPICS.state(device), b"", retain=True)


@pytest.fixture(scope="session")
def shared_broker(tmp_path_factory) -> Iterator:
    """A private Mosquitto for the session's shared servers."""
    from tests.edge_mqtt_support import MOSQUITTO, Mosquitto

    if MOSQUITTO is None:
        missing_service("the mosquitto broker is not installed")
    broker = Mosquitto(tmp_path_factory.mktemp("shared-broker")).start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def live_server(db_engine, shared_broker, tmp_path_factory) -> Iterator[LiveServer]:
    """One real ``adbreak server`` per engine and session (see the module's docstring)."""
    tmp: Path = tmp_path_factory.mktemp(f"live-server-{db_engine}")
    env = {"ADBREAK_SERVER_LOGIN_RATE_LIMIT": "10000 per minute",  # many tests sign in; the limit: tests/api
           "ADBREAK_SERVER_MQTT_CLIENT_ID": f"adbreak-live-{db_engine}-{uuid.uuid4().hex[:6]}"}
    with ServerProcess(tmp, (shared_broker.host, shared_broker.port), env=env) as srv:
        live = LiveServer(srv, shared_broker)
        try:
            yield live
        finally:
            live.mqtt.close()
        assert srv.proc.poll() is None, "the shared server died:\n" + (tmp / "server.log").read_text()[-4000:]
    log = (tmp / "server.log").read_text(errors="replace")
    assert "Traceback" not in log, log[-4000:]
