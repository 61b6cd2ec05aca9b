"""The integration tests' shared real server: one ``adbreak server`` process per database engine and test session.

``live_server`` (a :class:`LiveServer`) is ``python -m adbreak server`` on a migrated database of the test's engine
(``db_engine``: SQLite, then PostgreSQL), connected to a private Mosquitto shared by the session, with the test admin
signed in over HTTP (``requests``). Tests share it, so each works on devices of its own (:meth:`LiveServer.device`)
and removes what it adds that others could meet (rules, users). Publishing as an edge agent or Home Assistant goes
through :attr:`LiveServer.mqtt`, one connected paho client (``tests/mqtt_support.py``: ``MqttClient``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from adbreak.wire import EventPayload, Topics
from tests.mqtt_support import MqttClient
from tests.server_support import ServerProcess, http_session
from tests.support import missing_service, wait_for

TOPICS = Topics()


class LiveServer:
    """The shared ``adbreak server`` process: ``base`` URL, ``admin`` (a signed-in ``requests.Session``), ``mqtt``."""

    def __init__(self, srv: ServerProcess, broker) -> None:
        self.srv = srv
        self.base = srv.base
        self.broker = broker
        self.admin = http_session(srv.base)
        self.mqtt = MqttClient(broker, "live-edge")

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
        self.mqtt.announce(device, label, since if since is not None else time.time() - 3600, model=model,
                           confidence=confidence)

    def event(self, device: str, seq: int, kind: str, boundary: float, *, decided: float | None = None,
              confidence: float = 0.9) -> EventPayload:
        """An event as the edge sends it, decided now (live, not late) unless ``decided`` says otherwise."""
        return self.mqtt.event(device, seq, kind, boundary, decided=decided if decided is not None else time.time(),
                               confidence=confidence)

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
    client_id = f"adbreak-live-{db_engine}-{uuid.uuid4().hex[:6]}"
    env = {"ADBREAK_SERVER_LOGIN_RATE_LIMIT": "10000 per minute",  # many tests sign in; the limit: tests/api
           "ADBREAK_SERVER_MQTT_CLIENT_ID": client_id}
    with ServerProcess(tmp, (shared_broker.host, shared_broker.port), env=env) as srv:
        live = LiveServer(srv, shared_broker)
        try:
            yield live
        finally:
            live.mqtt.close()
        assert srv.proc.poll() is None, "the shared server died:\n" + (tmp / "server.log").read_text()[-4000:]
    log = (tmp / "server.log").read_text(errors="replace")
    assert "Traceback" not in log, log[-4000:]
    # ServerProcess stopped it with SIGTERM: a clean stop, on each engine, saying goodbye to the broker
    assert srv.proc.returncode == 0 and "stopped" in log, log[-4000:]
    assert f"Client {client_id} disconnected" in shared_broker.log.read_text(errors="replace")
