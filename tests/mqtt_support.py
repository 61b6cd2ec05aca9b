"""Test support for MQTT: a private Mosquitto broker per test and a free TCP port.

Import the fixtures into a test module (``from tests.mqtt_support import free_port, mosquitto``); the broker is the
real ``mosquitto`` binary on a free port of 127.0.0.1, killed after the test.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

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
