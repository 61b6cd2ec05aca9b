"""Socket.IO (Flask-SocketIO, ``async_mode="threading"``): what the browser dashboard is pushed (``docs/api.md``).

On connect a client gets ``hello`` ``{"devices": [Device], "recordings": [{name, device, duration_s, fps}]}``;
afterwards ``device``, ``segment``, ``firing`` and ``recording`` as things happen, and ``telemetry`` in batches:
every 0.2 s, one list with the latest sample of each device that sent one (one emit for all devices, not one per
sample: at 1,000 TVs sending 1 Hz telemetry, 5 emits a second instead of 1,000). Emits come from the ingest worker
after each batch commits (and from a thread that writes on its own, e.g. the watchdog of a store without a worker);
Flask-SocketIO broadcasts them to every client of the namespace ``/``. Within :meth:`Realtime.coalesce` (one ingest
batch) a device is pushed once, in its last state.

Several servers: with a Redis URL (``ADBREAK_SERVER_REDIS_URL``) Flask-SocketIO's message queue carries every emit
through Redis pub/sub to every server, each of which sends it to its own browsers: a browser connected to server B
sees what server A ingested.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask
from flask_socketio import SocketIO, emit

from adbreak.errors import AdbreakError
from server.periodic import PeriodicJob
from server.store import SegmentStore

log = logging.getLogger(__name__)

NAMESPACE = "/"
TELEMETRY_BATCH_S = 0.2
"""Telemetry goes out every 0.2 s as one list, the latest sample per device: at most 5 per second per device."""


def create_socketio(app: Flask, store: SegmentStore, *, redis_url: str | None = None) -> SocketIO:
    """A Socket.IO server bound to ``app`` that greets each client with the devices; with ``redis_url`` its emits
    go through Redis to the clients of every server sharing it (:class:`AdbreakError` if Redis cannot be reached)."""
    if redis_url is not None:
        check_redis(redis_url)
    socketio = SocketIO(app, async_mode="threading", logger=False, engineio_logger=False, message_queue=redis_url,
                        channel="adbreak-socketio")

    @socketio.on("connect", namespace=NAMESPACE)
    def _on_connect(auth=None) -> bool:
        from server.auth import socket_allowed

        if not socket_allowed(auth):
            log.info("Socket.IO connection refused: not signed in")
            return False
        emit("hello", {"devices": store.devices(), "recordings": _recordings(store)})
        return True

    return socketio


def _recordings(store: SegmentStore) -> list[dict]:
    """The recordings sent for review (``server.recordings``), for the dashboard's Review picker."""
    from server.recordings import recording_names

    with store._read() as conn:
        return recording_names(conn)


def check_redis(url: str, timeout_s: float = 5.0) -> None:
    """One line (:class:`AdbreakError`) if Redis at ``url`` does not answer a PING."""
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    except ValueError as exc:
        raise AdbreakError(f"bad Redis URL {url!r}: {exc}") from None
    try:
        client.ping()
    except redis.RedisError as exc:
        raise AdbreakError(f"cannot reach Redis at {url}: {exc}") from None
    finally:
        client.close()


class Realtime:
    """Pushes changes to every connected browser."""

    def __init__(self, socketio: SocketIO, telemetry_batch_s: float = TELEMETRY_BATCH_S) -> None:
        self._socketio = socketio
        self._local = threading.local()  # .devices: the coalesced device pushes of this thread's open block
        self._telemetry: dict[str, dict] = {}  # device -> its latest sample since the last batch
        self._telemetry_lock = threading.Lock()
        self._telemetry_job = PeriodicJob("adbreak-telemetry", telemetry_batch_s, self.flush_telemetry,
                                          wait_first=True)

    @contextmanager
    def coalesce(self) -> Iterator[None]:
        """In this block (this thread only), ``device`` pushes wait, one per device (its last state); they go out
        when the block ends, in the order of each device's last change. Other pushes go out at once."""
        if getattr(self._local, "devices", None) is not None:  # nested: the outer block sends
            yield
            return
        self._local.devices = {}
        try:
            yield
        finally:
            pending, self._local.devices = self._local.devices, None
            for data in pending.values():
                self._emit("device", data)

    def _emit(self, name: str, data: dict) -> None:
        try:
            self._socketio.emit(name, data, namespace=NAMESPACE)
        except Exception:  # a push that fails must not lose the ingest that caused it
            log.exception("Socket.IO emit of %s failed", name)

    def device(self, data: dict) -> None:
        pending = getattr(self._local, "devices", None)
        if pending is None:
            self._emit("device", data)
        else:
            pending.pop(data["name"], None)
            pending[data["name"]] = data

    def segment(self, data: dict) -> None:
        self._emit("segment", data)

    def firing(self, data: dict) -> None:
        self._emit("firing", data)

    def rule_run(self, data: dict) -> None:
        """A user rule's run was recorded (``RuleRun`` of docs/api.md)."""
        self._emit("rule_run", data)

    def segment_removed(self, data: dict) -> None:
        """A segment merged away by a correction: ``{"id", "device", "merged_into"}``."""
        self._emit("segment_removed", data)

    def correction(self, data: dict) -> None:
        """A stored user correction (``Correction`` of docs/api.md)."""
        self._emit("correction", data)

    def recording(self, data: dict) -> None:
        """A recording sent for review changed: ``{"change": "created"|"replaced"|"unchanged"|"keyframes"|"deleted",
        "name", "device", "recording": Recording|null}``."""
        self._emit("recording", data)

    def telemetry(self, data: dict) -> bool:
        """Queue one telemetry sample for the next batch; False if it replaced the same device's queued sample."""
        with self._telemetry_lock:
            fresh = self._telemetry.pop(data["device"], None) is None
            self._telemetry[data["device"]] = data
        if not self._telemetry_job.running:
            self._telemetry_job.start()
        return fresh

    def flush_telemetry(self) -> int:
        """Push the queued samples as one ``telemetry`` list, in the order they came; how many."""
        with self._telemetry_lock:
            batch, self._telemetry = list(self._telemetry.values()), {}
        if batch:
            self._emit("telemetry", batch)
        return len(batch)

    def stop(self) -> None:
        """Stop the telemetry batches (what is queued goes out first)."""
        self._telemetry_job.stop()
        self.flush_telemetry()
