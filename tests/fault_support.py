"""Test support for fault injection: a Mosquitto that keeps its sessions across a stop / start (``persistence true``
in the test's folder, like a real install), and a subscriber with a persistent session of its own that records every
event it is sent, across broker restarts."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from adbreak.wire import EventPayload, parse_event
from tests.edge_mqtt_support import Mosquitto


class PersistentMosquitto(Mosquitto):
    """A private broker on a free port that saves its sessions and retained messages to ``workdir/mosquitto-data``
    when stopped (SIGTERM) and reads them back on start."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        super().__init__(workdir, port)
        data = self.workdir / f"mosquitto-data-{self.port}"
        data.mkdir(parents=True, exist_ok=True)
        # started as root, Mosquitto drops to the user "mosquitto", which cannot write into the test's 0700 folder:
        # its database would silently not be saved ("Error saving in-memory database")
        user = "user root\n" if os.geteuid() == 0 else ""
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {data}/\nautosave_interval 3600\nmax_queued_messages 100000\n{user}"
        )
        self.db = data / "mosquitto.db"

    def pause(self) -> None:
        """SIGSTOP: the broker keeps its sockets but answers nothing."""
        assert self.proc is not None
        self.proc.send_signal(19)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(18)


class EventWatcher:
    """A plain paho subscriber to ``<prefix>/+/event`` with a persistent session (fixed client id, clean session off,
    QoS 1): events published while it is cut off from the broker reach it when it is back."""

    def __init__(self, broker: Mosquitto, topic_filter: str = "adbreak/+/event", client_id: str = "fault-watcher"):
        self.events: list[EventPayload] = []
        self.raw: list[bytes] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self._filter = topic_filter
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311,
                             clean_session=False)
        client.on_connect = self._on_connect
        client.on_subscribe = lambda c, u, mid, rcs, p: self._subscribed.set()
        client.on_message = self._on_message
        client.reconnect_delay_set(1, 2)
        client.connect(broker.host, broker.port, keepalive=10)
        client.loop_start()
        self.client = client
        if not self._subscribed.wait(10):
            raise RuntimeError("the event watcher could not subscribe")

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if not reason_code.is_failure:
            client.subscribe(self._filter, qos=1)

    def _on_message(self, client, userdata, msg) -> None:
        with self._cond:
            self.raw.append(bytes(msg.payload))
            self.events.append(parse_event(msg.payload))
            self._cond.notify_all()

    def unique(self) -> dict[str, EventPayload]:
        with self._cond:
            return {e.event_id: e for e in self.events}

    def wait_for(self, predicate, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(list(self.events)):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
