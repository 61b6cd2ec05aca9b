"""The durable event outbox: every event is on disk before it is handed to paho, and leaves only when the broker
has acknowledged it (PUBACK).

Layout: one file per event, ``<state_dir>/<device>.outbox/<seq, 20 digits>.json``, holding the event's wire JSON
(exactly what is published). A file is written atomically (``adbreak.atomic``: a hidden temporary file beside it,
fsync, rename) and the folder is fsync'd after the rename, so after a crash or a power cut an entry is either
complete or absent. Names sort in ``seq`` order, so the leftovers of a dead agent are read back in the order they
were decided.

* **Leftovers** (:meth:`Outbox.load`): the entries a previous run left (it died, or the broker never acknowledged
  them before a clean exit), in ``seq`` order; the link sends them before any new event. Hidden temporary files (a
  write cut short by a crash: the rename never happened) are removed without a word more than a debug line.
* **Corrupt entries**: a file named like an entry that does not parse as this device's event with that ``seq`` is
  logged, renamed to ``<name>.corrupt`` (kept for a human to look at) and counted (:attr:`Outbox.corrupt`); the
  agent goes on.
* **Bound**: at most ``max_entries`` entries and ``max_bytes`` bytes of payload (defaults 1,000 and 1 MiB: an event
  is ~350 bytes, a TV has a few dozen breaks a day, so this is days of broker outage). When a new event would go past
  either, the **oldest** entries are dropped, each with an error line, and counted (:attr:`Outbox.dropped`): the
  newest events carry the TV's current state (a mute in progress), a days-old break matters least, and the server
  accepts a gap in ``seq`` (it refuses only a ``seq`` at or below the last it applied).
* A write that fails (disk full, read-only card) is logged and counted (:attr:`Outbox.write_failed`); the event is
  still published (it is then kept only in memory, as without an outbox).

Thread-safe: events are added by the inference loop and removed by paho's network thread.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections import OrderedDict
from pathlib import Path

from adbreak.atomic import write_bytes
from adbreak.errors import AdbreakError
from adbreak.wire import EventPayload, check_device, parse_event

log = logging.getLogger(__name__)

MAX_ENTRIES = 1000
MAX_BYTES = 1 << 20
_ENTRY_RE = re.compile(r"^(\d{20})\.json$")


def entry_name(seq: int) -> str:
    return f"{seq:020d}.json"


class Outbox:
    """``add`` an event before publishing it, ``remove`` it on its PUBACK, ``load`` what a previous run left."""

    def __init__(self, state_dir: str | os.PathLike[str], device: str, *, max_entries: int = MAX_ENTRIES,
                 max_bytes: int = MAX_BYTES) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError("the outbox bound must be at least one entry and one byte")
        self.device = check_device(device)
        self.dir = Path(state_dir) / f"{device}.outbox"
        self.max_entries, self.max_bytes = int(max_entries), int(max_bytes)
        self._lock = threading.Lock()
        self._entries: OrderedDict[int, int] = OrderedDict()  # seq -> payload bytes, oldest first
        self._bytes = 0
        self.dropped = 0
        self.corrupt = 0
        self.write_failed = 0
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AdbreakError(f"cannot create the event outbox {self.dir}: {exc}") from exc

    # -- start-up
    def load(self) -> list[EventPayload]:
        """The entries on disk (a previous run's leftovers), in ``seq`` order; corrupt ones are moved aside."""
        events: list[EventPayload] = []
        with self._lock:
            self._entries.clear()
            self._bytes = 0
            for path in sorted(self.dir.iterdir()):
                name = path.name
                if name.startswith("."):
                    if name.endswith(".json"):  # a write a crash cut short: never renamed, never published
                        log.debug("removing an unfinished outbox write %s", path)
                        path.unlink(missing_ok=True)
                    continue
                match = _ENTRY_RE.match(name)
                if match is None:
                    continue  # *.corrupt, or something a human put there
                seq = int(match.group(1))
                try:
                    raw = path.read_bytes()
                    event = parse_event(raw, self.device)
                    if event.seq != seq:
                        raise ValueError(f"the file holds seq {event.seq}")
                except (OSError, ValueError) as exc:
                    self._move_aside(path, exc)
                    continue
                events.append(event)
                self._entries[seq] = len(raw)
                self._bytes += len(raw)
        if events:
            log.warning("event outbox %s: %d event(s) not acknowledged by the broker in an earlier run (seq %d..%d); "
                        "sending them first", self.dir, len(events), events[0].seq, events[-1].seq)
        return events

    def _move_aside(self, path: Path, why: Exception) -> None:  # holds self._lock
        self.corrupt += 1
        target = path.with_name(path.name + ".corrupt")
        try:
            os.replace(path, target)
        except OSError as exc:
            log.error("event outbox: corrupt entry %s (%s) cannot be moved aside: %s", path, _short(why), exc)
            return
        log.error("event outbox: corrupt entry %s (%s), moved to %s; that event is not sent", path, _short(why),
                  target.name)

    # -- while running
    def add(self, event: EventPayload) -> list[int]:
        """Make ``event`` durable (returns once it is on disk). Returns the ``seq`` of the entries dropped to stay
        within the bound (oldest first; usually none)."""
        data = event.to_bytes()
        dropped: list[int] = []
        with self._lock:
            while self._entries and (len(self._entries) + 1 > self.max_entries
                                     or self._bytes + len(data) > self.max_bytes):
                seq, size = self._entries.popitem(last=False)
                self._bytes -= size
                self._unlink(seq)
                self.dropped += 1
                dropped.append(seq)
            try:
                write_bytes(self.dir / entry_name(event.seq), data)
                _fsync_dir(self.dir)
            except OSError as exc:
                self.write_failed += 1
                log.error("event outbox: cannot write event seq %d to %s (%s); it is kept in memory only and is lost "
                          "if the agent stops before the broker acknowledges it", event.seq, self.dir, exc)
            else:
                self._entries[event.seq] = len(data)
                self._bytes += len(data)
        if dropped:
            log.error("event outbox %s FULL (%d entries, %d bytes at most): dropped the oldest event(s) seq %s; "
                      "%d dropped since the start. Is the broker reachable?", self.dir, self.max_entries,
                      self.max_bytes, ", ".join(map(str, dropped)), self.dropped)
        return dropped

    def remove(self, seq: int) -> None:
        """The broker acknowledged event ``seq``: forget it."""
        with self._lock:
            size = self._entries.pop(seq, None)
            if size is None:
                return
            self._bytes -= size
            self._unlink(seq)

    def _unlink(self, seq: int) -> None:  # holds self._lock
        try:
            (self.dir / entry_name(seq)).unlink(missing_ok=True)
        except OSError as exc:  # it would be sent again at the next start: a duplicate the server drops
            log.error("event outbox: cannot remove the entry of seq %d: %s", seq, exc)

    # -- figures
    @property
    def depth(self) -> int:
        """Events on disk waiting for the broker's acknowledgement."""
        with self._lock:
            return len(self._entries)

    @property
    def size_bytes(self) -> int:
        with self._lock:
            return self._bytes

    def seqs(self) -> list[int]:
        with self._lock:
            return list(self._entries)


def _fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (the new name is in the folder's own blocks)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _short(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:197] + "..."
