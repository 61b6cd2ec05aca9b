"""Authorisation against the real ``adbreak server`` process (the walk over every route of the URL map, for every
kind of caller, is ``tests/api/test_authorization_routes.py``):

* Socket.IO against the real server process: no credentials, a wrong or revoked token, or a forged session cookie
  are refused; a valid token or session gets the greeting; events sent by a client are not acted on (the server
  handles none but ``connect``);
* no secret in the logs: the admin password, the MQTT password, an API token and a user's password, each used for
  real against a real server and broker, never appear in the server's log.
"""

from __future__ import annotations

import getpass
import subprocess
import time

import pytest
import requests
import socketio

from tests.server_support import ADMIN_PASSWORD, ServerProcess, http_session, sio_client

NAMESPACE = "/"
pytestmark = pytest.mark.usefixtures("db_engine")


# ---------------------------------------------------------------------------------------------------- Socket.IO
def _connect(base: str, *, auth=None, headers=None) -> tuple[socketio.Client, list]:
    greetings: list = []
    client = sio_client(reconnection=False)
    client.on("hello", lambda data: greetings.append(data), namespace=NAMESPACE)
    client.connect(base, auth=auth, headers=headers or {}, transports=["websocket"], wait_timeout=10)
    return client, greetings


def _refused(base: str, **kw) -> None:
    with pytest.raises(socketio.exceptions.ConnectionError):
        client, _ = _connect(base, **kw)
        client.disconnect()


def test_socketio_needs_a_valid_token_or_session(tmp_path):
    with ServerProcess(tmp_path, wait_mqtt=False) as srv:
        api = srv.session()
        created = api.post(f"{srv.base}/api/v1/auth/tokens", json={"name": "sio"}, timeout=10).json()
        _refused(srv.base)
        _refused(srv.base, auth={"token": "adb_made_up"})
        _refused(srv.base, auth={"token": 42})
        _refused(srv.base, headers={"Cookie": "session=forged.value.sig"})

        client, greetings = _connect(srv.base, auth={"token": created["token"]})
        try:
            deadline = time.monotonic() + 5
            while not greetings and time.monotonic() < deadline:
                time.sleep(0.05)
            assert greetings and "devices" in greetings[0]
            # the server handles no client events: sending them changes nothing and breaks nothing
            client.emit("segment_removed", {"id": 1}, namespace=NAMESPACE)
            client.emit("devices", {"name": "evil"}, namespace=NAMESPACE)
            time.sleep(0.3)
            assert client.connected
            assert api.get(f"{srv.base}/api/v1/devices", timeout=10).json()["devices"] == []
        finally:
            client.disconnect()

        cookie = "; ".join(f"{c.name}={c.value}" for c in api.cookies)  # a signed-in browser's cookie works
        client, greetings = _connect(srv.base, headers={"Cookie": cookie})
        client.disconnect()

        assert api.delete(f"{srv.base}/api/v1/auth/tokens/{created['id']}", timeout=10).status_code == 204
        _refused(srv.base, auth={"token": created["token"]})
        assert api.post(f"{srv.base}/api/v1/auth/logout", timeout=10).ok
        _refused(srv.base, headers={"Cookie": cookie})  # a signed-out session's cookie no longer opens a socket


# ---------------------------------------------------------------------------------------------------- secrets
def test_no_secret_reaches_the_log(tmp_path):
    from tests.edge_mqtt_support import Mosquitto

    mqtt_password = "mqtt-secret-Zq81"
    user_password = "viewer-secret-Kd02"
    broker = Mosquitto(tmp_path)
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwd), "adbreak", mqtt_password], check=True,
                   capture_output=True)
    # user: read the password file in the test's private folder as ourselves (no privilege drop)
    broker.conf.write_text(f"listener {broker.port} 127.0.0.1\nallow_anonymous false\npassword_file {passwd}\n"
                           f"user {getpass.getuser()}\npersistence false\n")
    broker.start()
    try:
        env = {"ADBREAK_SERVER_MQTT_USERNAME": "adbreak", "ADBREAK_SERVER_MQTT_PASSWORD": mqtt_password}
        with ServerProcess(tmp_path, (broker.host, broker.port), env=env) as srv:
            api = http_session(srv.base)
            token = api.post(f"{srv.base}/api/v1/auth/tokens", json={"name": "ha"}, timeout=10).json()["token"]
            r = api.post(f"{srv.base}/api/v1/users", json={"username": "viewer", "password": user_password},
                         timeout=10)
            assert r.status_code == 201
            assert requests.get(f"{srv.base}/api/v1/devices", headers={"Authorization": f"Bearer {token}"},
                                timeout=10).status_code == 200
            http_session(srv.base, "viewer", user_password)
            # failures are logged too: a wrong password, a wrong token
            requests.post(f"{srv.base}/api/v1/auth/login", json={"username": "viewer", "password": user_password +
                                                                 "x"}, timeout=10)
            requests.get(f"{srv.base}/api/v1/devices", headers={"Authorization": f"Bearer {token}x"}, timeout=10)
            health = requests.get(f"{srv.base}/api/v1/health", timeout=10).json()
            assert health["mqtt"]["connected"] is True  # the MQTT password was used, for real
        log = (tmp_path / "server.log").read_text()
        assert "connected to MQTT broker" in log
        for secret in (ADMIN_PASSWORD, mqtt_password, user_password, token, token[4:]):
            assert secret not in log, f"a secret reached the log: {secret[:6]}..."
    finally:
        broker.stop()
