"""The per-device event sequence number, persisted so it keeps counting up across restarts.

The contract's ``EventPayload.seq`` counts up by one per device; the server refuses a ``seq`` at or below the last
one it applied (``out_of_order``). The counter lives in ``<state_dir>/<device>.seq`` (JSON), written atomically
(temporary file, fsync, rename) *before* the event carrying it is published: a crash between the two loses a number
(a gap, harmless) but never reuses one. A lock file keeps two agents of the same device from sharing the counter.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from pathlib import Path

from adbreak.atomic import write_text
from adbreak.errors import AdbreakError
from adbreak.wire import check_device

MAX_SEQ = 2**53


class SequenceCounter:
    """``next()`` returns the device's next sequence number (1, 2, ...) after making it durable."""

    def __init__(self, state_dir: str | os.PathLike[str], device: str) -> None:
        self.device = check_device(device)
        self.dir = Path(state_dir)
        self.path = self.dir / f"{device}.seq"
        self._lock = threading.Lock()
        self._lock_fd: int | None = None
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AdbreakError(f"cannot create the state folder {self.dir}: {exc}") from exc
        self._last = self._read()

    def _read(self) -> int:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise AdbreakError(f"cannot read the sequence counter {self.path}: {exc}") from exc
        try:
            data = json.loads(text)
            seq = data["seq"]
            if data.get("device") != self.device or isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
                raise ValueError(f"unexpected content {text.strip()[:80]!r}")
        except (ValueError, KeyError, TypeError) as exc:
            raise AdbreakError(
                f"the sequence counter {self.path} is corrupt ({exc}); fix it or remove it only if the server "
                "has no events of this device (a lower seq would be refused as out of order)"
            ) from None
        return seq

    @property
    def last(self) -> int:
        """The last number handed out (0 before the first event ever)."""
        with self._lock:
            return self._last

    def next(self) -> int:
        """Persist and return the next number."""
        with self._lock:
            seq = self._last + 1
            if seq > MAX_SEQ:
                raise AdbreakError(f"sequence counter of {self.device} exhausted")
            write_text(self.path, json.dumps({"device": self.device, "seq": seq}) + "\n")
            self._last = seq
            return seq

    # -- one agent per device and state folder
    def acquire(self) -> None:
        """Take the device's lock file; :class:`AdbreakError` if another agent holds it."""
        lock_path = self.dir / f"{self.device}.lock"
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise AdbreakError(
                f"another edge agent is running for device {self.device!r} (lock {lock_path} is held)"
            ) from None
        self._lock_fd = fd

    def release(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> SequenceCounter:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
