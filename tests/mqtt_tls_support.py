"""A Mosquitto that requires user names and passwords, on a plain and a TLS listener, with a small PKI of its own
(a CA, a broker certificate for ``localhost``, an unrelated CA) made with the ``openssl`` command: the fixtures
``pki`` and ``broker`` of the MQTT TLS tests (``tests/integration/test_mqtt_tls.py``,
``tests/api/test_mqtt_tls_app.py``).
"""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.mqtt_support import find_free_port, port_open, stop_process
from tests.support import SERVICES_REQUIRED

MOSQUITTO = shutil.which("mosquitto") or next(
    (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(p, os.X_OK)), None)
PASSWD = shutil.which("mosquitto_passwd")
OPENSSL = shutil.which("openssl")
needs_tls_tools = pytest.mark.skipif(not (MOSQUITTO and PASSWD and OPENSSL) and not SERVICES_REQUIRED,
                                     reason="needs mosquitto, mosquitto_passwd (Debian package mosquitto) and openssl")

USERS = {"server": "server-secret", "edge": "edge-secret"}


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
