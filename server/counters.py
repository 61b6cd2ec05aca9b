"""In-memory counters shared by the MQTT bridge, the store and the rules (thread-safe), and a rate-limited log."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable

from adbreak.wire import REJECT_REASONS

COUNTER_NAMES = ("received", "events_ingested", "rule_firings", "keyframes_stored", "keyframes_deleted",
                 "settings_sent",
                 "events_late",  # events received more than late_event_s after they were decided: stored, not acted on
                 "events_held",  # shared subscriptions: events that waited for the ones before them (server.ingest)
                 "shared_copies_skipped")  # shared subscriptions: the copy of a message the other subscription takes


class Counters:
    """``received`` (MQTT messages), ``events_ingested``, ``rule_firings``, and ``rejected`` by reason."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._rejected: Counter[str] = Counter()
        self._api: Counter[str] = Counter()

    def incr(self, name: str, n: int = 1) -> None:
        if name not in COUNTER_NAMES:
            raise KeyError(name)
        with self._lock:
            self._counts[name] += n

    def reject(self, reason: str) -> None:
        if reason not in REJECT_REASONS:
            raise KeyError(reason)
        with self._lock:
            self._rejected[reason] += 1

    def api_reject(self, status: int) -> None:
        """A refused API request (a 4xx answer), counted by status code."""
        with self._lock:
            self._api[str(int(status))] += 1

    def rejected(self, reason: str) -> int:
        with self._lock:
            return self._rejected[reason]

    def get(self, name: str) -> int:
        with self._lock:
            return self._counts[name]

    def snapshot(self) -> dict:
        """``{"received": n, "events_ingested": n, "rule_firings": n, "rejected": {reason: n, ...},
        "api_rejected": {"400": n, ...}}`` (every MQTT reason listed, zeros included; API statuses as they occur)."""
        with self._lock:
            out: dict = {name: self._counts[name] for name in COUNTER_NAMES}
            out["rejected"] = {reason: self._rejected[reason] for reason in REJECT_REASONS}
            out["api_rejected"] = dict(sorted(self._api.items()))
        return out


class RateLimitedLog:
    """Logs at most one record per key every ``interval_s``; says how many were suppressed in between."""

    def __init__(self, logger: logging.Logger, interval_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._logger = logger
        self._interval = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._suppressed: Counter[str] = Counter()

    def log(self, level: int, key: str, msg: str, *args: object) -> bool:
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._interval:
                self._suppressed[key] += 1
                return False
            self._last[key] = now
            suppressed = self._suppressed.pop(key, 0)
        if suppressed:
            msg += " (%d more like it suppressed)"
            args = (*args, suppressed)
        self._logger.log(level, msg, *args)
        return True
