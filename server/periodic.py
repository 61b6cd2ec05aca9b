"""A job that runs now and then every ``interval_s`` on a daemon thread of its own, until stopped.

The server's housekeeping (the retention of rows, the retention of keyframe files) queues its work on the single
ingest writer from such a thread; this holds the start, the wait and the stop they share.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class PeriodicJob:
    """Calls ``tick`` at once (after ``interval_s`` with ``wait_first``) and every ``interval_s`` after; ``before``, if
    given, once first. A tick that raises is logged and the schedule goes on; :meth:`stop` wakes the thread and waits
    for it."""

    def __init__(self, name: str, interval_s: float, tick: Callable[[], object], *,
                 before: Callable[[], object] | None = None, wait_first: bool = False) -> None:
        self.name = name
        self.interval_s = interval_s
        self._tick = tick
        self._before = before
        self._wait_first = wait_first
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # start and stop may come from several threads

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        if self._before is not None:
            self._call(self._before)
        if self._wait_first:
            self._stop.wait(self.interval_s)
        while not self._stop.is_set():
            self._call(self._tick)
            self._stop.wait(self.interval_s)

    def _call(self, fn: Callable[[], object]) -> None:
        try:
            fn()
        except Exception:
            log.exception("%s: %s failed", self.name, getattr(fn, "__name__", "a step"))

    def stop(self, timeout: float = 10.0) -> None:
        with self._lock:
            thread = self._thread
            if thread is None:
                return
            self._stop.set()
            thread.join(timeout)
            self._thread = None
