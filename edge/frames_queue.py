"""A bounded frame queue between the capture thread and the inference loop.

``put`` never blocks by default: when the queue is full the OLDEST waiting item is dropped and counted, so a camera
is always read and the next analysed frame is the freshest one (a live TV picture is only worth analysing now).
``put(..., block=True)`` waits for room instead; the agent uses it only for a file read as fast as it decodes, where
nothing is live and every frame should be analysed, as ``adbreak evaluate`` does.

``close()`` ends the stream: ``get`` hands out what is still queued, then raises :class:`QueueClosed`.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class QueueClosed(Exception):
    """The queue was closed and everything in it has been taken."""


class DropOldestQueue(Generic[T]):
    """Thread-safe FIFO of at most ``maxsize`` items that drops the oldest item rather than block the producer."""

    def __init__(self, maxsize: int) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise ValueError(f"maxsize must be a whole number >= 1, got {maxsize!r}")
        self.maxsize = maxsize
        self._items: deque[T] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._dropped = 0

    @property
    def dropped(self) -> int:
        """Items dropped so far because the queue was full."""
        with self._cond:
            return self._dropped

    @property
    def closed(self) -> bool:
        with self._cond:
            return self._closed

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    def put(self, item: T, *, block: bool = False, timeout: float | None = None) -> T | None:
        """Add ``item``; returns the item dropped to make room, if any.

        With ``block=True`` wait (up to ``timeout`` seconds) for room instead of dropping; ``queue.Full`` on timeout.
        Putting into a closed queue raises :class:`QueueClosed`.
        """
        with self._cond:
            if block:
                deadline = None if timeout is None else time.monotonic() + timeout
                while len(self._items) >= self.maxsize and not self._closed:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise queue.Full
                    self._cond.wait(remaining)
            if self._closed:
                raise QueueClosed
            dropped = None
            if len(self._items) >= self.maxsize:
                dropped = self._items.popleft()
                self._dropped += 1
            self._items.append(item)
            self._cond.notify_all()
            return dropped

    def get(self, timeout: float | None = None) -> T:
        """Take the oldest item, waiting up to ``timeout`` seconds (``None``: forever).

        Raises ``queue.Empty`` on timeout and :class:`QueueClosed` once the queue is closed and empty.
        """
        with self._cond:
            deadline = None if timeout is None else time.monotonic() + timeout
            while not self._items:
                if self._closed:
                    raise QueueClosed
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise queue.Empty
                self._cond.wait(remaining)
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def close(self) -> None:
        """No more items: wake every waiter. Items already queued can still be taken."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
