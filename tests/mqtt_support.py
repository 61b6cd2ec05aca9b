"""Test support for MQTT: a private Mosquitto broker per test and a free TCP port.

Import the fixtures into a test module (``from tests.mqtt_support import free_port, mosquitto``); the broker is the
real ``mosquitto`` binary on a free port of 127.0.0.1, killed after the test.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import wait_for  # noqa: F401 - re-exported for the server tests


def find_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def start_mosquitto(workdir: Path, port: int) -> subprocess.Popen:
    """Start ``mosquitto`` on ``127.0.0.1:port`` and wait until it accepts connections."""
    binary = shutil.which("mosquitto") or next((p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")
                                                 if Path(p).exists()), None)
    if binary is None:
        pytest.skip("the mosquitto broker is not installed")
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    log = (workdir / "mosquitto.log").open("wb")
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    log.close()
    deadline = time.monotonic() + 10
    while not _listening(port):
        if proc.poll() is not None:
            raise RuntimeError(f"mosquitto exited ({proc.returncode}): {(workdir / 'mosquitto.log').read_text()}")
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise RuntimeError("mosquitto did not start listening within 10 s")
        time.sleep(0.02)
    time.sleep(0.05)  # someone else may hold the port: then our broker has just exited with "address in use"
    if proc.poll() is not None:
        raise RuntimeError(f"mosquitto exited ({proc.returncode}): {(workdir / 'mosquitto.log').read_text()}")
    return proc


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


@pytest.fixture
def free_port() -> int:
    """A TCP port of 127.0.0.1 nobody listened on a moment ago."""
    return find_free_port()


@pytest.fixture
def mosquitto(tmp_path_factory) -> Iterator[Broker]:
    """A private Mosquitto broker: yields ``(host, port)`` (a :class:`Broker`); killed after the test."""
    workdir = tmp_path_factory.mktemp("mosquitto")
    for _attempt in range(3):  # another process may grab the free port between the probe and the bind
        port = find_free_port()
        try:
            proc = start_mosquitto(workdir, port)
            break
        except RuntimeError:
            if _attempt == 2:
                raise
    try:
        yield Broker("127.0.0.1", port, workdir / "mosquitto.log", proc)
    finally:
        stop_process(proc)
