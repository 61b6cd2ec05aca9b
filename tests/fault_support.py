"""Test support for fault injection: a Mosquitto that keeps its sessions across a stop / start (``persistence true``
in the test's folder, like a real install), and a subscriber with a persistent session of its own that records every
event it is sent, across broker restarts."""

from __future__ import annotations

import os
from pathlib import Path

from adbreak.wire import EventPayload, parse_event
from tests.edge_mqtt_support import Message, Mosquitto, Recorder


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


class EventWatcher(Recorder):
    """A plain paho subscriber to ``<prefix>/+/event`` with a persistent session (fixed client id, clean session off,
    QoS 1) that parses every event: events published while it is cut off from the broker reach it when it is back."""

    def __init__(self, broker: Mosquitto, topic_filter: str = "adbreak/+/event", client_id: str = "fault-watcher"):
        self.events: list[EventPayload] = []
        self.raw: list[bytes] = []
        super().__init__(broker, topic_filter, client_id, persistent=True)

    def _record(self, message: Message) -> None:
        super()._record(message)
        self.raw.append(message.payload)
        self.events.append(parse_event(message.payload))

    def unique(self) -> dict[str, EventPayload]:
        with self._cond:
            return {e.event_id: e for e in self.events}

    def wait_for(self, predicate, timeout: float) -> bool:  # type: ignore[override] - a predicate over the events
        return self._wait(lambda: predicate(list(self.events)), timeout)
