"""Test support for MQTT: a private Mosquitto broker per test, a free TCP port, and :class:`MqttClient`, the tests'
one plain paho client (an edge agent's or Home Assistant's publisher, a subscriber recording what arrives).

Import the fixtures into a test module (``from tests.mqtt_support import free_port, mosquitto``); the broker is the
real ``mosquitto`` binary on a free port of 127.0.0.1, killed after the test.
"""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import paho.mqtt.client as mqtt
import pytest

from adbreak.wire import EventPayload, EventType, StatePayload, Topics, new_event_id
from tests.edge_mqtt_support import Mosquitto, port_open  # noqa: F401 - port_open re-exported
from tests.edge_mqtt_support import free_port as find_free_port
from tests.support import wait_for  # noqa: F401 - re-exported for the server tests


def start_mosquitto(workdir: Path, port: int, extra: str = "") -> subprocess.Popen:
    """Start ``mosquitto`` on ``127.0.0.1:port`` (``extra``: more configuration lines) and wait until it accepts
    connections."""
    broker = Mosquitto(workdir, port, extra).start()
    assert broker.proc is not None
    return broker.proc


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Broker(tuple):
    """``(host, port)`` of a running broker, with its log file as ``.log`` and its process as ``.proc``."""

    log: Path
    proc: subprocess.Popen

    def __new__(cls, host: str, port: int, log: Path, proc: subprocess.Popen) -> Broker:
        self = super().__new__(cls, (host, port))
        self.log = log
        self.proc = proc
        return self

    @property
    def host(self) -> str:
        return self[0]

    @property
    def port(self) -> int:
        return self[1]


class Received(NamedTuple):
    """One message a :class:`MqttClient` received."""

    at: float  # time.monotonic() on arrival
    topic: str
    payload: str
    qos: int
    retain: bool


class MqttClient:
    """A plain paho client (MQTT 3.1.1, clean session) on ``broker`` (``(host, port)``, or anything with ``.host``
    and ``.port``), its client id ``name`` and a random suffix.

    It publishes as an edge agent or Home Assistant would (:meth:`publish`: QoS 1 unless told, waiting for the
    broker's acknowledgement; :meth:`online`, :meth:`state`, :meth:`announce`, :meth:`event`), and records every
    message on the topics it subscribed to (``topics`` at once, or :meth:`subscribe`): :attr:`messages`,
    :meth:`received`, :meth:`on`. It subscribes at QoS 2, so a message arrives with the QoS it was published at.
    """

    def __init__(self, broker: Any, name: str, *topics: str) -> None:
        host, port = (broker.host, broker.port) if hasattr(broker, "host") else broker
        self.topics = Topics()
        self.messages: list[Received] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{name}-{uuid.uuid4().hex[:8]}")
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.connect(host, port)
        self.client.loop_start()
        if topics:
            self.subscribe(*topics)

    def _on_message(self, client, userdata, msg) -> None:
        with self._lock:
            self.messages.append(Received(time.monotonic(), msg.topic, msg.payload.decode(errors="replace"), msg.qos,
                                          bool(msg.retain)))

    # ------------------------------------------------------------------ recording
    def subscribe(self, *topics: str) -> MqttClient:
        """Subscribe to ``topics`` (QoS 2) and wait for the broker's SUBACK."""
        self._subscribed.clear()
        self.client.subscribe([(t, 2) for t in topics])
        assert self._subscribed.wait(5), f"no SUBACK for {topics}"
        return self

    def received(self) -> list[tuple[str, str, int, bool]]:
        """``(topic, payload, qos, retain)`` of every message so far, in arrival order."""
        with self._lock:
            return [(m.topic, m.payload, m.qos, m.retain) for m in self.messages]

    def on(self, topic: str) -> list[tuple[str, bool]]:
        """``(payload, retain)`` of every message on ``topic`` so far."""
        with self._lock:
            return [(m.payload, m.retain) for m in self.messages if m.topic == topic]

    # ------------------------------------------------------------------ publishing
    def publish(self, topic: str, payload: bytes | str, *, qos: int = 1, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(5)

    def online(self, device: str) -> None:
        """The edge agent's retained availability ``online``."""
        self.publish(self.topics.available(device), "online", retain=True)

    def state(self, device: str, label: str = "program", since: float | None = None, *, confidence: float = 0.8,
              model: str = "m1") -> None:
        """The edge agent's retained state: ``label`` since ``since`` (default: a minute ago)."""
        now = time.time()
        self.publish(self.topics.state(device), StatePayload(
            device=device, label=label, since_ts=now - 60 if since is None else since, since_stream_t=0.0,
            confidence=confidence, model_version=model, ts=now).to_bytes(), retain=True)

    def announce(self, device: str, label: str = "program", since: float | None = None, **state: Any) -> None:
        """What an edge agent publishes on connecting: :meth:`online`, then :meth:`state`."""
        self.online(device)
        self.state(device, label, since, **state)

    def event(self, device: str, seq: int, kind: str | EventType, boundary: float | None = None, *,
              decided: float | None = None, confidence: float = 0.93, model: str = "m1",
              event_id: str | None = None, retain: bool = False) -> EventPayload:
        """An event as the edge agent sends it: the boundary at ``boundary`` (default: a second ago), decided at
        ``decided`` (default: a second after the boundary); stream times ``10 * seq`` and a second later."""
        boundary = time.time() - 1.0 if boundary is None else boundary
        ev = EventPayload(device=device, event_id=event_id or new_event_id(), seq=seq, type=EventType(kind),
                          boundary_ts=boundary, decided_ts=boundary + 1.0 if decided is None else decided,
                          boundary_stream_t=seq * 10.0, decided_stream_t=seq * 10.0 + 1.0, confidence=confidence,
                          model_version=model)
        self.publish(self.topics.event(device), ev.to_bytes(), retain=retain)
        return ev

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def free_port() -> int:
    """A TCP port of 127.0.0.1 nobody listened on a moment ago."""
    return find_free_port()


@pytest.fixture
def mosquitto(tmp_path_factory) -> Iterator[Broker]:
    """A private Mosquitto broker: yields ``(host, port)`` (a :class:`Broker`); killed after the test."""
    workdir = tmp_path_factory.mktemp("mosquitto")
    for _attempt in range(3):  # another process may grab the free port between the probe and the bind
        broker = Mosquitto(workdir)
        try:
            broker.start()
            break
        except RuntimeError:
            broker.stop()
            if _attempt == 2:
                raise
    try:
        assert broker.proc is not None
        yield Broker(broker.host, broker.port, broker.log, broker.proc)
    finally:
        broker.stop()

