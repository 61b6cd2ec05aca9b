"""MQTT user names, passwords and TLS on both sides, against a real Mosquitto that requires them.

The test makes its own small PKI with the ``openssl`` command (a CA, a broker certificate for ``localhost``, and an
unrelated CA), a Mosquitto password file with ``mosquitto_passwd -b``, and starts Mosquitto with two listeners on
free ports: plain TCP and TLS, both refusing anonymous clients. The server (``create_app`` in this process; the real
``adbreak server`` command: ``tests/integration/test_mqtt_tls.py``) and the edge's own ``MqttLink`` connect with
credentials over TLS and an event is stored; a wrong password, an untrusted certificate or a certificate for another
name are each one clear log line, while the processes keep running and retrying.
"""

from __future__ import annotations

import logging
import time

import pytest

from adbreak.errors import AdbreakError
from adbreak.mqtt_security import TlsOptions
from adbreak.wire import EventPayload, EventType, StatePayload, Topics, new_event_id
from edge.mqtt import MqttLink
from server.app import create_app
from tests import mqtt_tls_support
from tests.mqtt_support import wait_for
from tests.mqtt_tls_support import USERS, needs_tls_tools
from tests.server_support import make_settings

# the private broker and its PKI (fixtures)
pki = mqtt_tls_support.pki
broker = mqtt_tls_support.broker
pytestmark = [needs_tls_tools, pytest.mark.usefixtures("db_engine")]
TOPICS = Topics()


def _settings(tmp_path, **overrides):
    return make_settings(tmp_path, mqtt_client_id=f"adbreak-server-{time.monotonic_ns()}", **overrides)


def _logged(caplog, text: str) -> bool:
    return any(text in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------------------------------------------- tests
def test_server_and_edge_connect_with_credentials_over_tls(tmp_path, broker, pki):
    app, _ = create_app(_settings(tmp_path, mqtt_host="localhost", mqtt_port=broker.tls, mqtt_tls=True,
                                  mqtt_ca_file=pki.ca, mqtt_username="server", mqtt_password=USERS["server"]))
    rt = app.extensions["adbreak"]
    link = MqttLink(device="tv1", topics=TOPICS, host="localhost", port=broker.tls, username="edge",
                    password=USERS["edge"], tls=TlsOptions(ca_file=pki.ca))
    try:
        assert rt.bridge.wait_connected(10), broker.log.read_text()
        link.start()
        assert link.wait_connected(10), broker.log.read_text()
        t0 = time.time() - 10
        link.publish_state(StatePayload(device="tv1", label="program", since_ts=t0, since_stream_t=0.0,
                                        confidence=0.9, model_version="m1", ts=t0))
        ev = EventPayload(device="tv1", event_id=new_event_id(), seq=1, type=EventType.AD_START, boundary_ts=t0 + 5,
                          decided_ts=t0 + 6, boundary_stream_t=5.0, decided_stream_t=6.0, confidence=0.9,
                          model_version="m1")
        link.publish_event(ev)
        wait_for(lambda: [e["event_id"] for e in rt.store.events()] == [ev.event_id], timeout=10,
                 what="the event stored")
        assert rt.store.device("tv1")["availability"] == "online"
    finally:
        link.stop()
        rt.stop()
    log = broker.log.read_text()
    assert f"on port {broker.tls}" in log and "u'server'" in log and "u'edge'" in log


def test_a_wrong_password_is_one_clear_log_line_not_a_crash(tmp_path, broker, caplog):
    caplog.set_level(logging.INFO)
    app, _ = create_app(_settings(tmp_path, mqtt_host="127.0.0.1", mqtt_port=broker.plain, mqtt_username="server",
                                  mqtt_password="wrong"))
    rt = app.extensions["adbreak"]
    link = MqttLink(device="tv1", topics=TOPICS, host="127.0.0.1", port=broker.plain, username="edge",
                    password="also-wrong")
    try:
        link.start()
        wait_for(lambda: _logged(caplog, "refused the connection: Not authorized; check the MQTT user name and "
                                         "password"), timeout=10, what="the server's refusal logged")
        wait_for(lambda: sum("refused the connection" in r.getMessage() for r in caplog.records) >= 2, timeout=10,
                 what="the edge's refusal logged too")
        assert not rt.bridge.connected and not link.connected
        health = app.test_client().get("/api/v1/health")
        assert health.status_code == 200 and health.get_json()["status"] == "degraded"
        assert not any(r.exc_info for r in caplog.records), "no traceback"
        assert rt.bridge.client._thread is not None and rt.bridge.client._thread.is_alive()  # still retrying
    finally:
        link.stop(timeout=0.5)
        rt.stop()


# paho (2.2) leaves the SSLSocket of a failed handshake for the garbage collector, which closes it with a
# ResourceWarning; that is paho's, and harmless (CPython closes the descriptor at once)
@pytest.mark.filterwarnings("ignore:Exception ignored in. <ssl.SSLSocket:pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize(
    ("host", "ca", "insecure", "expected"),
    [
        ("localhost", "other_ca", False, "the broker's TLS certificate is not trusted"),
        ("127.0.0.1", "ca", False, "connect by a name the certificate lists, or set mqtt_tls_insecure"),
        ("127.0.0.1", "ca", True, None),  # the name is not checked: connects
    ],
)
def test_certificate_problems_are_named(tmp_path, broker, pki, caplog, host, ca, insecure, expected):
    caplog.set_level(logging.INFO)
    app, _ = create_app(_settings(tmp_path, mqtt_host=host, mqtt_port=broker.tls, mqtt_tls=True,
                                  mqtt_ca_file=getattr(pki, ca), mqtt_tls_insecure=insecure, mqtt_username="server",
                                  mqtt_password=USERS["server"]))
    rt = app.extensions["adbreak"]
    try:
        if expected is None:
            assert rt.bridge.wait_connected(10)
        else:
            wait_for(lambda: _logged(caplog, expected), timeout=10, what=expected)
            assert not rt.bridge.connected
            assert not any(r.exc_info for r in caplog.records), "no traceback"
    finally:
        rt.stop()


def test_missing_certificate_files_are_refused_at_start(tmp_path):
    with pytest.raises(AdbreakError, match=r"MQTT TLS: CA file .*nope\.crt not found"):
        create_app(_settings(tmp_path, mqtt_tls=True, mqtt_ca_file=tmp_path / "nope.crt"), start_mqtt=False)
    with pytest.raises(AdbreakError, match="MQTT TLS: client key .* not found"):
        MqttLink(device="tv1", topics=TOPICS, host="localhost", tls=TlsOptions(key_file=tmp_path / "k.pem"))
