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
import getpass
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from adbreak.mqtt_security import TlsOptions
from tests.db_support import sqlite_url
from tests.mqtt_support import find_free_port, port_open, stop_process, wait_for
from tests.server_support import ADMIN_PASSWORD
from tests.support import SERVICES_REQUIRED

ROOT = Path(__file__).resolve().parents[2]
MOSQUITTO = shutil.which("mosquitto") or next(
    (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(p, os.X_OK)), None)
PASSWD = shutil.which("mosquitto_passwd")
OPENSSL = shutil.which("openssl")
pytestmark = pytest.mark.skipif(not (MOSQUITTO and PASSWD and OPENSSL) and not SERVICES_REQUIRED,
                                reason="needs mosquitto, mosquitto_passwd (Debian package mosquitto) and openssl")

USERS = {"server": "server-secret", "edge": "edge-secret"}


# ---------------------------------------------------------------------------------------------------- the broker
@dataclass(frozen=True)
class Pki:
    ca: Path
    cert: Path
    key: Path
    other_ca: Path


def _openssl(*args: str | Path, cwd: Path) -> None:
    proc = subprocess.run([OPENSSL, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def _ca(d: Path, name: str) -> tuple[Path, Path]:
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2", "-subj", f"/CN=adbreak test {name}",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             cwd=d)
    return d / f"{name}.crt", d / f"{name}.key"


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca, ca_key = _ca(d, "ca")
    other_ca, _ = _ca(d, "other-ca")
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "broker.key",
             "-out", "broker.csr", "-subj", "/CN=localhost", cwd=d)
    (d / "ext.cnf").write_text("subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n"
                               "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
                               "authorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n")
    _openssl("x509", "-req", "-in", "broker.csr", "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
             "-out", "broker.crt", "-days", "2", "-extfile", "ext.cnf", cwd=d)
    return Pki(ca=ca, cert=d / "broker.crt", key=d / "broker.key", other_ca=other_ca)


@dataclass(frozen=True)
class SecureBroker:
    plain: int
    tls: int
    log: Path


@pytest.fixture
def broker(tmp_path, pki):
    d = tmp_path / "mosquitto"
    d.mkdir()
    passwd = d / "passwd"
    for i, (user, password) in enumerate(USERS.items()):
        args = [PASSWD, *(["-c"] if i == 0 else []), "-b", str(passwd), user, password]
        proc = subprocess.run(args, capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
    plain, tls = find_free_port(), find_free_port()
    conf = d / "mosquitto.conf"
    conf.write_text(
        f"user {getpass.getuser()}\n"  # read the files in the test's private folder as ourselves (no privilege drop)
        "per_listener_settings false\nallow_anonymous false\n"
        f"password_file {passwd}\npersistence false\n"
        f"listener {plain} 127.0.0.1\n"
        f"listener {tls} 127.0.0.1\ncafile {pki.ca}\ncertfile {pki.cert}\nkeyfile {pki.key}\n")
    log = d / "mosquitto.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while not (port_open(plain) and port_open(tls)):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "mosquitto did not listen within 10 s"
            time.sleep(0.02)
        yield SecureBroker(plain, tls, log)
    finally:
        stop_process(proc)


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
