"""Test support for the edge agent: a real Mosquitto broker on a free port, a recording paho subscriber, and the
agent run as a separate process (``python -m edge``), as a user would run it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.support import SERVICES_REQUIRED, missing_service

ROOT = Path(__file__).resolve().parent.parent
MOSQUITTO = shutil.which("mosquitto") or next(
    (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(p, os.X_OK)), None
)

needs_mosquitto = pytest.mark.skipif(MOSQUITTO is None and not SERVICES_REQUIRED,
                                     reason="the mosquitto broker is not installed")
"""Skips without a broker, unless ``ADBREAK_REQUIRE_SERVICES=1``: the test then runs, and fails, as it should."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class Mosquitto:
    """A private broker: ``listener <port> 127.0.0.1``, anonymous, no persistence (a restart forgets retained
    messages, like a broker that lost its state); ``extra`` adds configuration lines."""

    def __init__(self, workdir: Path, port: int | None = None, extra: str = "") -> None:
        if MOSQUITTO is None:
            missing_service("the mosquitto broker is not installed")
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.conf = self.workdir / f"mosquitto-{self.port}.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n{extra}")
        self.log = self.workdir / f"mosquitto-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Mosquitto:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while not port_open(self.port):
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("mosquitto did not open its port within 10 s")
            time.sleep(0.02)
        time.sleep(0.05)  # someone else may hold the port: then our broker has just exited with "address in use"
        if self.proc.poll() is not None:
            raise RuntimeError(f"mosquitto exited: {self.log.read_text()[-2000:]}")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


@contextmanager
def mosquitto(workdir: Path) -> Iterator[Mosquitto]:
    broker = Mosquitto(workdir).start()
    try:
        yield broker
    finally:
        broker.stop()


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool
    qos: int
    at: float  # wall time of arrival (time.time())

    @property
    def text(self) -> str:
        return self.payload.decode("utf-8")


class Recorder:
    """A plain paho subscriber recording every message on ``topic_filter`` with its arrival time. ``persistent``: a
    fixed client id's session with clean session off (MQTT 3.1.1), so messages published while it is cut off from
    the broker reach it when it is back."""

    def __init__(self, broker: Mosquitto, topic_filter: str = "#", client_id: str | None = None, *,
                 persistent: bool = False) -> None:
        self.messages: list[Message] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self._filter = topic_filter
        client_id = client_id or f"rec-{time.monotonic_ns()}"
        if persistent:
            self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311,
                                      clean_session=False)
            self.client.reconnect_delay_set(1, 2)
        else:
            self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port, keepalive=10)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise RuntimeError("recorder could not subscribe")

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if not reason_code.is_failure:
            client.subscribe(self._filter, qos=1)

    def _on_message(self, client, userdata, msg) -> None:
        with self._cond:
            self._record(Message(msg.topic, bytes(msg.payload), bool(msg.retain), msg.qos, time.time()))
            self._cond.notify_all()

    def _record(self, message: Message) -> None:
        self.messages.append(message)

    def on(self, topic: str) -> list[Message]:
        with self._cond:
            return [m for m in self.messages if m.topic == topic]

    def wait_for(self, predicate: Callable[[list[Message]], bool], timeout: float) -> bool:
        return self._wait(lambda: predicate(self.messages), timeout)

    def _wait(self, done: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not done():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def retained(broker: Mosquitto, topic_filter: str, timeout: float = 10.0) -> dict[str, Message]:
    """The retained messages a new subscriber gets on ``topic_filter`` (latest per topic).

    The subscriber subscribes to ``topic_filter`` and to a marker topic of its own in one SUBSCRIBE, then, once
    acknowledged, publishes to the marker (QoS 1, like the subscription). Mosquitto queues the retained messages to
    the subscriber while handling the SUBSCRIBE, before the SUBACK and so before the marker's PUBLISH, and delivers a
    client's queue in order: the marker arriving says every retained message has come (what came with it, not a
    fixed wait of 1 s as before)."""
    marker = f"adbreak-test/retained-done/{uuid.uuid4().hex}"
    got: list[Message] = []
    subscribed, done = threading.Event(), threading.Event()

    def on_message(client, userdata, msg) -> None:
        if msg.topic == marker:
            done.set()
        elif not done.is_set():
            got.append(Message(msg.topic, bytes(msg.payload), bool(msg.retain), msg.qos, time.time()))

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"kept-{uuid.uuid4().hex[:12]}")
    client.on_subscribe = lambda c, u, mid, rcs, p: subscribed.set()
    client.on_message = on_message
    client.connect(broker.host, broker.port, keepalive=10)
    client.loop_start()
    try:
        client.subscribe([(topic_filter, 1), (marker, 1)])
        if not subscribed.wait(timeout):
            raise RuntimeError(f"could not subscribe to {topic_filter}")
        client.publish(marker, b"", qos=1)
        if not done.wait(timeout):
            raise RuntimeError(f"the marker after the retained messages of {topic_filter} did not come back")
        return {m.topic: m for m in got if m.retain}
    finally:
        client.disconnect()
        client.loop_stop()


def publish(broker: Mosquitto, topic: str, payload: str, qos: int = 1, retain: bool = False) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{time.monotonic_ns()}")
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


def start_edge(*args: object, env: dict[str, str] | None = None, log: Path | None = None) -> subprocess.Popen[bytes]:
    """``python -m edge ARGS`` in a new process (stdout and stderr into ``log`` when given)."""
    full_env = {**os.environ, **(env or {})}
    out = open(log, "ab") if log is not None else subprocess.DEVNULL  # noqa: SIM115 - handed to the child
    try:
        return subprocess.Popen([sys.executable, "-m", "edge", *map(str, args)], cwd=ROOT, env=full_env,
                                stdout=out, stderr=subprocess.STDOUT)
    finally:
        if log is not None:
            out.close()
