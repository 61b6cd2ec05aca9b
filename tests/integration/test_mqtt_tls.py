"""MQTT user names, passwords and TLS on both sides, against a real Mosquitto that requires them.

The test makes its own small PKI with the ``openssl`` command (a CA, a broker certificate for ``localhost``, and an
unrelated CA), a Mosquitto password file with ``mosquitto_passwd -b``, and starts Mosquitto with two listeners on
free ports: plain TCP and TLS, both refusing anonymous clients. Here the real ``adbreak server`` command connects
with a user name (its password in the environment) over TLS, and ``adbreak edge``'s options parse to the same TLS
settings. The server app and the edge's ``MqttLink`` in this process (an event stored over TLS, a wrong password or
certificate named in one log line): ``tests/api/test_mqtt_tls_app.py``. The database is a SQLite file: this test is
about the MQTT connection.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import requests

from adbreak.mqtt_security import TlsOptions
from tests import mqtt_tls_support
from tests.db_support import sqlite_url
from tests.mqtt_support import find_free_port, wait_for
from tests.mqtt_tls_support import USERS, needs_tls_tools
from tests.server_support import ADMIN_PASSWORD

ROOT = Path(__file__).resolve().parents[2]
# the private broker and its PKI (fixtures)
pki = mqtt_tls_support.pki
broker = mqtt_tls_support.broker
pytestmark = needs_tls_tools


def test_the_command_lines_take_the_options(tmp_path, broker, pki, monkeypatch):
    """``adbreak server`` as a user starts it (password in the environment), and ``adbreak edge``'s options."""
    from edge.cli import add_arguments, settings_from_args

    p = argparse.ArgumentParser()
    add_arguments(p)
    args = p.parse_args(["--source", "x.mp4", "--device", "tv1", "--model", "m", "--mqtt", "localhost:8883",
                         "--mqtt-user", "edge", "--mqtt-tls", "--mqtt-ca", str(pki.ca), "--mqtt-tls-insecure"])
    monkeypatch.setenv("ADBREAK_EDGE_MQTT_PASSWORD", USERS["edge"])
    s = settings_from_args(args)
    assert s.mqtt_username == "edge" and s.mqtt_password.get_secret_value() == USERS["edge"]
    assert s.mqtt_tls_options == TlsOptions(ca_file=pki.ca, insecure=True)

    url = sqlite_url(tmp_path, "cli.db")
    assert subprocess.run([sys.executable, "-m", "adbreak", "db", "upgrade", "--db", url], cwd=ROOT,
                          capture_output=True, timeout=120).returncode == 0
    http = find_free_port()
    env = {**os.environ, "ADBREAK_SERVER_MQTT_PASSWORD": USERS["server"],
           "ADBREAK_SERVER_ADMIN_PASSWORD": ADMIN_PASSWORD, "ADBREAK_SERVER_DATA_DIR": str(tmp_path / "data")}
    log = (tmp_path / "server.log").open("wb")
    srv = subprocess.Popen([sys.executable, "-m", "adbreak", "server", "--db", url, "--mqtt", f"localhost:{broker.tls}",
                            "--mqtt-user", "server", "--mqtt-tls", "--mqtt-ca", str(pki.ca), "--host", "127.0.0.1",
                            "--port", str(http)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        def connected() -> bool:
            assert srv.poll() is None, (tmp_path / "server.log").read_text()
            try:
                return requests.get(f"http://127.0.0.1:{http}/api/v1/health", timeout=2).json()["mqtt"]["connected"]
            except requests.RequestException:
                return False

        wait_for(connected, timeout=30, interval=0.2, what="adbreak server connected over TLS")
    finally:
        srv.terminate()
        srv.wait(15)
        log.close()
    assert USERS["server"] not in (tmp_path / "server.log").read_text()  # the password is never logged
