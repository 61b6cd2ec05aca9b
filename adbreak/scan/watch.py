"""``adbreak scan --watch DIR``: a folder of recordings watched, each new recording scanned once it stops growing.

Entry point (the CLI wires ``--watch`` to it; ``scan`` and ``write`` are injected so that the logic runs on fakes)::

    watch_folder(
        folder,
        scan=lambda path: scan_recording(path, ...),    # path -> ScanResult; raises AdbreakError when it cannot
        write=lambda result: write_sidecars(result, formats, out_dir=..., force=...),  # -> the files written
        state_path=None,          # default: default_state_path(folder), outside the (maybe read-only) folder
        poll_s=10.0,              # how often the folder is listed
        settle_s=120.0,           # how long a recording's size and mtime must stay the same before it is scanned
        extensions=RECORDING_EXTENSIONS,
        recursive=True,           # DVRs file recordings by show
        retry_failed=False,       # True: recordings that failed to scan are tried once more at start
        stop=None,                # a threading.Event: set it and the watcher returns after the current step
        handle_signals=None,      # None: SIGTERM / SIGINT handled when called from the main thread (see below)
        on_result=None,           # on_result(path, result, written) after each recording scanned and written
        on_error=None,            # on_error(path, message) after each recording that failed
        clock=time.monotonic,     # settling is timed on this clock
        wall_clock=time.time,     # the age of a file's mtime (a recording renamed into place) on this one
    ) -> None

The rules (reasons in ``docs/decisions.md``, for users in ``docs/recordings.md``, "Watching a folder"):

* **Which files.** Regular files whose name ends in one of ``extensions`` (case-insensitive). Hidden files and
  folders (a name starting with ``.``: Plex records into ``.grab/`` and moves the finished file out; our own and
  rsync's temporary files), NAS housekeeping folders (:data:`IGNORED_DIRS`) and names marked temporary before their
  extension (``show.part.ts``, :data:`TEMP_MARKERS`) are ignored; so are our own sidecars (not video extensions).
* **Stops growing.** A recording is *settled* when its size (> 0) and mtime have been the same for ``settle_s``
  seconds of ``clock``, or when it has been seen unchanged by two polls at least ``poll_s`` apart and its mtime is
  already ``settle_s`` old (a finished recording renamed or moved into the folder is scanned at once).
* **Scanned once.** The state file maps each recording (its path relative to the folder) to the size and mtime it
  was scanned at, when, and how it went (``ok`` / ``error`` and the one-line message). A recording whose size and
  mtime match its entry is skipped, across restarts; one that changed (re-recorded) is scanned again once it
  settles; one that failed is not tried again until it changes (or ``retry_failed``). A recording that changes
  while it is being scanned gets no sidecars and no entry: it is scanned again once it settles. An entry whose file
  has been missing for :data:`FORGET_MISSING_S` (in complete listings) is dropped.
* **One at a time, oldest first.** Among the settled recordings the one with the oldest mtime is scanned, then the
  folder is listed again.
* **State file.** JSON, written atomically after every recording; an unreadable one is set aside
  (``NAME.corrupt-<time>``), logged, and rebuilt. It is locked while a watcher runs (a second one on the same state
  file is refused).
* **Stopping.** ``stop`` ends the loop between recordings. With ``handle_signals`` (SIGTERM from ``systemctl stop``,
  SIGINT from Ctrl-C) a signal sets ``stop``; during a scan it also abandons that scan (raises
  :class:`ScanAbandoned`, a ``KeyboardInterrupt``, inside it): the recording gets no entry and is scanned on the
  next start. Sidecars and the state file are written atomically, so nothing is left half-written. A second
  signal interrupts whatever runs.
* **Logging** (logger ``adbreak.scan.watch``): one INFO line per recording scanned (name, ad breaks, seconds), a
  WARNING per recording that failed (its one-line error), DEBUG for what is waiting to settle.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import signal
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adbreak.atomic import set_aside, write_text
from adbreak.errors import AdbreakError
from adbreak.scan.result import ScanResult

logger = logging.getLogger(__name__)

RECORDING_EXTENSIONS: tuple[str, ...] = (".ts", ".m2ts", ".mts", ".mpg", ".mpeg", ".mp4", ".m4v", ".mkv", ".wtv")
"""What DVRs write: MPEG-TS (tvheadend, Jellyfin/Emby, MythTV, Plex, Enigma2, NextPVR), MPEG-PS ``.mpg``
(Channels DVR, HDHomeRun DVR, MythTV with hardware encoders), MP4/MKV (remuxed recordings, tvheadend profiles) and
Windows Media Center's ``.wtv``."""
TEMP_MARKERS = frozenset(
    {".tmp", ".temp", ".part", ".partial", ".inprogress", ".incomplete", ".crdownload", ".download", ".filepart"}
)
"""A suffix right before the extension that marks a file still being written or copied (``show.part.ts``)."""
IGNORED_DIRS = frozenset(
    {"lost+found", "@eaDir", "@Recycle", "@Recently-Snapshot", "#recycle", "#snapshot", "$RECYCLE.BIN",
     "System Volume Information"}
)
"""Folders never entered besides hidden ones: file-system and NAS housekeeping (Synology ``@eaDir`` / ``#recycle``,
QNAP ``@Recycle``, Windows shares' recycle bin)."""
DEFAULT_POLL_S = 10.0
DEFAULT_SETTLE_S = 120.0
FORGET_MISSING_S = 30 * 86400.0
STATE_VERSION = 1
RESULTS = ("ok", "error")


class ScanAbandoned(KeyboardInterrupt):
    """Raised inside a running scan when the watcher is told to stop (SIGTERM / SIGINT)."""


@dataclass(frozen=True, order=True)
class Signature:
    """What "the same file" means here: its size and modification time (ns)."""

    size: int
    mtime_ns: int


@dataclass
class Entry:
    """A recording's line in the state file."""

    size: int
    mtime_ns: int
    scanned_at: str  # UTC, ISO 8601
    result: str  # "ok" | "error"
    message: str = ""
    ad_breaks: int | None = None
    seconds: float | None = None
    missing_since: float | None = None  # wall time the file was first missed by a complete listing

    @property
    def signature(self) -> Signature:
        return Signature(self.size, self.mtime_ns)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "size": self.size,
            "mtime_ns": self.mtime_ns,
            "scanned_at": self.scanned_at,
            "result": self.result,
            "message": self.message,
        }
        for key in ("ad_breaks", "seconds", "missing_since"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out

    @classmethod
    def from_json(cls, data: Any) -> Entry:
        if not isinstance(data, dict):
            raise ValueError("an entry is not an object")
        size, mtime_ns, result = data["size"], data["mtime_ns"], data["result"]
        if not _is_int(size) or size < 0 or not _is_int(mtime_ns) or result not in RESULTS:
            raise ValueError(f"bad entry {data!r}")
        scanned_at, message = data.get("scanned_at", ""), data.get("message", "")
        if not isinstance(scanned_at, str) or not isinstance(message, str):
            raise ValueError(f"bad entry {data!r}")
        ad_breaks, seconds, missing = data.get("ad_breaks"), data.get("seconds"), data.get("missing_since")
        if ad_breaks is not None and not _is_int(ad_breaks):
            raise ValueError(f"bad entry {data!r}")
        for value in (seconds, missing):
            if value is not None and (not isinstance(value, int | float) or isinstance(value, bool)):
                raise ValueError(f"bad entry {data!r}")
        return cls(size, mtime_ns, scanned_at, result, message, ad_breaks, seconds, missing)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --- which files -------------------------------------------------------------------------------------------------


def normalise_extensions(extensions: Iterable[str]) -> tuple[str, ...]:
    """``["TS", ".mkv"]`` -> ``(".ts", ".mkv")``; an empty list is a one-line error."""
    out = tuple(dict.fromkeys(("." + e.strip().lstrip(".")).lower() for e in extensions if e.strip().lstrip(".")))
    if not out:
        raise AdbreakError("no recording extensions given (e.g. .ts,.mkv)")
    return out


def is_recording_name(name: str, extensions: Iterable[str] = RECORDING_EXTENSIONS) -> bool:
    """True for a file name the watcher scans: a recording extension, not hidden, not marked temporary."""
    if name.startswith("."):
        return False
    lower = name.lower()
    ext = next((e for e in extensions if lower.endswith(e)), None)
    if ext is None or len(lower) == len(ext):
        return False
    inner = os.path.splitext(lower[: -len(ext)])[1]  # "show.part" -> ".part"
    return inner not in TEMP_MARKERS


def is_ignored_dir(name: str) -> bool:
    return name.startswith(".") or name in IGNORED_DIRS


def list_recordings(
    folder: Path, extensions: Iterable[str] = RECORDING_EXTENSIONS, recursive: bool = True
) -> tuple[dict[str, tuple[Path, Signature]], bool]:
    """Every recording under ``folder`` by its path relative to it (POSIX separators) -> (path, signature), and
    whether the listing is complete (no folder or file could not be read). Folder symlinks are not followed."""
    exts = tuple(extensions)
    found: dict[str, tuple[Path, Signature]] = {}
    complete = True
    pending = [folder]
    while pending:
        current = pending.pop()
        try:
            entries = os.scandir(current)
        except FileNotFoundError:
            complete = complete and current != folder
            continue
        except OSError as exc:
            logger.debug("cannot list %s: %s", current, exc)
            complete = False
            continue
        with entries:
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if recursive and not is_ignored_dir(entry.name):
                            pending.append(Path(entry.path))
                        continue
                    if not is_recording_name(entry.name, exts):
                        continue
                    st = entry.stat()  # a symlinked recording counts as the file it points to
                except FileNotFoundError:  # renamed or deleted while listed
                    continue
                except OSError as exc:
                    logger.debug("cannot stat %s: %s", entry.path, exc)
                    complete = False
                    continue
                if stat.S_ISREG(st.st_mode):
                    path = Path(entry.path)
                    found[path.relative_to(folder).as_posix()] = (path, Signature(st.st_size, st.st_mtime_ns))
    return found, complete


def file_signature(path: Path) -> Signature | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return Signature(st.st_size, st.st_mtime_ns) if stat.S_ISREG(st.st_mode) else None


# --- the state file ----------------------------------------------------------------------------------------------


def default_state_dir() -> Path:
    """``$XDG_STATE_HOME/adbreak`` (default ``~/.local/state/adbreak``), as the edge agent's state."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "adbreak"


def default_state_path(folder: str | os.PathLike[str]) -> Path:
    """``<state dir>/scan-watch/<folder name>-<hash of its absolute path>.json``: outside the watched folder (a
    library folder is often read-only to the scanner), one file per folder."""
    resolved = Path(folder).expanduser().resolve()
    digest = hashlib.sha256(str(resolved).encode("utf-8", "surrogateescape")).hexdigest()[:12]
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", resolved.name).strip("._") or "root"
    return default_state_dir() / "scan-watch" / f"{name}-{digest}.json"


class WatchState:
    """The state file: recordings already scanned (:class:`Entry` by relative path)."""

    def __init__(self, path: Path, folder: Path) -> None:
        self.path = path
        self.folder = folder
        self.entries: dict[str, Entry] = {}

    def load(self) -> None:
        """Read the file; a missing file is an empty state, an unreadable one is set aside and logged."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            self.entries = {}
            return
        except OSError as exc:
            raise AdbreakError(f"cannot read the watch state {self.path}: {exc.strerror or exc}") from exc
        try:
            self.entries = self._parse(json.loads(data.decode("utf-8")))
        except (ValueError, TypeError, KeyError) as exc:
            self.entries = {}
            reason = " ".join(str(exc).split())[:200]
            try:
                aside = set_aside(self.path)
            except OSError as err:
                logger.warning("the watch state %s is unreadable (%s) and could not be set aside (%s): starting "
                               "afresh, it will be replaced", self.path, reason, err.strerror or err)
            else:
                logger.warning("the watch state %s was unreadable (%s): set aside as %s; starting afresh "
                               "(recordings scanned before are scanned again)", self.path, reason, aside.name)

    @staticmethod
    def _parse(data: Any) -> dict[str, Entry]:
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            raise ValueError(f"not a version {STATE_VERSION} watch state")
        recordings = data["recordings"]
        if not isinstance(recordings, dict):
            raise ValueError("'recordings' is not an object")
        return {str(rel): Entry.from_json(entry) for rel, entry in recordings.items()}

    def save(self) -> None:
        """Write the file atomically (``OSError`` when it cannot be written)."""
        data = {
            "version": STATE_VERSION,
            "folder": str(self.folder),
            "recordings": {rel: self.entries[rel].to_json() for rel in sorted(self.entries)},
        }
        write_text(self.path, json.dumps(data, indent=1, ensure_ascii=False) + "\n")


@contextlib.contextmanager
def _locked(state_path: Path) -> Iterator[None]:
    """Hold ``<state>.lock`` for as long as the watcher runs: two watchers on one state file would scan twice."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    lock_path = state_path.with_name(state_path.name + ".lock")
    try:
        fh = open(lock_path, "a")  # noqa: SIM115 - held for the whole run
    except OSError as exc:
        raise AdbreakError(f"cannot create {lock_path}: {exc.strerror or exc} (choose another state file)") from exc
    try:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            raise AdbreakError(
                f"another adbreak scan --watch is using {state_path} (stop it first, or give this one another "
                "state file)"
            ) from exc
        yield
    finally:
        fh.close()


# --- the watcher -------------------------------------------------------------------------------------------------


@dataclass
class _Seen:
    """A recording waiting to settle: the signature last seen, since when (clock) and in how many polls in a row."""

    signature: Signature
    since: float
    polls: int = 1


@dataclass(frozen=True)
class Outcome:
    """What :meth:`FolderWatcher.run_once` did with one recording."""

    rel: str
    path: Path
    status: str  # "ok", "error", "changed" (changed while scanned: scanned again later), "abandoned" (stopping)
    message: str = ""


ScanFn = Callable[[Path], ScanResult]
WriteFn = Callable[[ScanResult], list[Path]]


class FolderWatcher:
    """The watch loop's state and steps; :func:`watch_folder` builds one and runs it. Tests drive :meth:`run_once`
    with fake ``scan`` / ``write`` and clocks."""

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        scan: ScanFn,
        write: WriteFn,
        state_path: str | os.PathLike[str] | None = None,
        poll_s: float = DEFAULT_POLL_S,
        settle_s: float = DEFAULT_SETTLE_S,
        extensions: Iterable[str] = RECORDING_EXTENSIONS,
        recursive: bool = True,
        retry_failed: bool = False,
        stop: threading.Event | None = None,
        on_result: Callable[[Path, ScanResult, list[Path]], None] | None = None,
        on_error: Callable[[Path, str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.folder = Path(folder).expanduser().absolute()
        if not self.folder.is_dir():
            raise AdbreakError(f"{folder} is not a folder")
        if not poll_s > 0:
            raise AdbreakError(f"the poll interval must be > 0 s, got {poll_s}")
        if not settle_s >= 0:
            raise AdbreakError(f"the settle time must be >= 0 s, got {settle_s}")
        self.scan, self.write = scan, write
        self.state_path = Path(state_path) if state_path is not None else default_state_path(self.folder)
        self.poll_s, self.settle_s = float(poll_s), float(settle_s)
        self.extensions = normalise_extensions(extensions)
        self.recursive = recursive
        self.retry_failed = retry_failed
        self.stop = stop if stop is not None else threading.Event()
        self.on_result, self.on_error = on_result, on_error
        self.clock, self.wall_clock = clock, wall_clock
        self.state = WatchState(self.state_path, self.folder)
        self.scanning: str | None = None  # the relative path being scanned
        self._seen: dict[str, _Seen] = {}
        self._folder_ok = True
        self._started = False
        self._signalled = False  # set by the signal handler itself (``stop`` is set from a helper thread)

    # -- start ---------------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Load the state (dropping failures when ``retry_failed``) and check it can be written."""
        self.state.load()
        if self.retry_failed:
            failed = [rel for rel, e in self.state.entries.items() if e.result == "error"]
            for rel in failed:
                del self.state.entries[rel]
            if failed:
                logger.info("trying %d recording(s) that failed before again", len(failed))
        try:
            self.state.save()
        except OSError as exc:
            raise AdbreakError(
                f"cannot write the watch state {self.state_path}: {exc.strerror or exc} (give a writable state file)"
            ) from exc
        self._started = True
        ok = sum(e.result == "ok" for e in self.state.entries.values())
        logger.info("watching %s for new recordings (state %s: %d scanned, %d failed)", self.folder,
                    self.state_path, ok, len(self.state.entries) - ok)

    # -- one step ------------------------------------------------------------------------------------------------

    def poll(self) -> tuple[str, Path, Signature] | None:
        """List the folder, update what is settling, and return the oldest settled recording not scanned yet."""
        now, wall = self.clock(), self.wall_clock()
        found, complete = list_recordings(self.folder, self.extensions, self.recursive)
        self._note_folder(complete or bool(found))
        if self._forget_missing(found, complete, wall):
            self._save_state()
        for rel in [rel for rel in self._seen if rel not in found]:
            del self._seen[rel]
        ready: list[tuple[int, str, Path, Signature]] = []
        for rel, (path, sig) in found.items():
            entry = self.state.entries.get(rel)
            if entry is not None and entry.signature == sig:
                self._seen.pop(rel, None)
                continue
            seen = self._seen.get(rel)
            if seen is None or seen.signature != sig:
                if seen is None:
                    logger.debug("%s: new or changed, waiting until it stops growing", rel)
                self._seen[rel] = seen = _Seen(sig, now)
            else:
                seen.polls += 1
            if self._settled(seen, now, wall):
                ready.append((sig.mtime_ns, rel, path, sig))
        if not ready:
            return None
        _, rel, path, sig = min(ready)
        return rel, path, sig

    def _settled(self, seen: _Seen, now: float, wall: float) -> bool:
        sig = seen.signature
        if sig.size <= 0:  # created, nothing written yet
            return False
        if now - seen.since >= self.settle_s:
            return True
        # a finished recording renamed or moved in: already old, and unchanged over two looks a poll apart
        looked_twice = seen.polls >= 2 and now - seen.since >= min(self.poll_s, self.settle_s)
        return looked_twice and wall - sig.mtime_ns / 1e9 >= self.settle_s

    def _note_folder(self, ok: bool) -> None:
        if ok != self._folder_ok:
            if ok:
                logger.info("%s can be read again", self.folder)
            else:
                logger.warning("%s cannot be read (unmounted?): waiting for it", self.folder)
        self._folder_ok = ok

    def _forget_missing(self, found: dict[str, Any], complete: bool, wall: float) -> bool:
        """Mark entries whose file is gone, drop those gone for :data:`FORGET_MISSING_S`; only on complete, non-empty
        listings (an unmounted disk lists as empty). True when the state changed."""
        changed = False
        for rel, entry in list(self.state.entries.items()):
            if rel in found:
                if entry.missing_since is not None:
                    entry.missing_since = None
                    changed = True
            elif complete and found:
                if entry.missing_since is None:
                    entry.missing_since = round(wall, 3)
                    changed = True
                elif wall - entry.missing_since >= FORGET_MISSING_S:
                    del self.state.entries[rel]
                    changed = True
        return changed

    def run_once(self) -> Outcome | None:
        """Poll, and scan the oldest settled recording if there is one. None when nothing was ready."""
        if not self._started:
            self.start()
        picked = self.poll()
        if picked is None:
            return None
        return self.process(*picked)

    def process(self, rel: str, path: Path, sig: Signature) -> Outcome | None:
        """Scan one settled recording, write its sidecars and record the outcome."""
        if self.stopping:
            return None
        if file_signature(path) != sig:  # changed or gone since the poll: settle again
            self._seen.pop(rel, None)
            return None
        started = self.clock()
        self.scanning = rel
        try:
            try:
                result = self.scan(path)
            finally:
                self.scanning = None
        except ScanAbandoned:
            logger.info("%s: scan abandoned (stopping); it is scanned on the next start", rel)
            raise
        except Exception as exc:  # noqa: BLE001 - one bad recording never stops the watcher
            if self.stopping:  # the scan's workers were stopped with us: not the recording's fault
                logger.info("%s: scan abandoned (stopping); it is scanned on the next start", rel)
                return Outcome(rel, path, "abandoned")
            return self._failed(rel, path, sig, exc)
        if file_signature(path) != sig:
            logger.info("%s changed while it was scanned: scanning it again once it stops growing", rel)
            self._seen.pop(rel, None)
            return Outcome(rel, path, "changed")
        try:
            written = list(self.write(result))
        except Exception as exc:  # noqa: BLE001 - an edited sidecar, a read-only folder, a full disk
            return self._failed(rel, path, sig, exc)
        seconds = self.clock() - started
        breaks = result.ad_breaks
        self.state.entries[rel] = Entry(
            sig.size, sig.mtime_ns, _utc_now(self.wall_clock()), "ok", "", len(breaks), round(seconds, 1)
        )
        self._save_state()
        ad_s = sum(s.duration for s in breaks)
        logger.info("scanned %s: %d ad break%s (%.0f s of ads) in %.1f s", rel, len(breaks),
                    "" if len(breaks) == 1 else "s", ad_s, seconds)
        if self.on_result is not None:
            self.on_result(path, result, written)
        return Outcome(rel, path, "ok")

    def _failed(self, rel: str, path: Path, sig: Signature, exc: Exception) -> Outcome:
        if isinstance(exc, AdbreakError):
            message = str(exc)
            logger.warning("could not scan %s: %s (not tried again until it changes)", rel, message)
        else:  # a bug or an environment failure: keep the traceback in the log
            message = " ".join(f"{type(exc).__name__}: {exc}".split())
            logger.warning("could not scan %s: %s (not tried again until it changes)", rel, message, exc_info=exc)
        self.state.entries[rel] = Entry(sig.size, sig.mtime_ns, _utc_now(self.wall_clock()), "error", message)
        self._save_state()
        if self.on_error is not None:
            self.on_error(path, message)
        return Outcome(rel, path, "error", message)

    @property
    def stopping(self) -> bool:
        return self._signalled or self.stop.is_set()

    def _save_state(self) -> None:
        try:
            self.state.save()
        except OSError as exc:  # a full disk: keep watching, the next save may work
            logger.error("cannot write the watch state %s: %s", self.state_path, exc.strerror or exc)

    # -- the loop ------------------------------------------------------------------------------------------------

    def run(self, handle_signals: bool | None = None) -> None:
        """Watch until ``stop`` is set (or a signal arrives, see the module doc)."""
        if handle_signals is None:
            handle_signals = threading.current_thread() is threading.main_thread()
        try:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AdbreakError(f"cannot create {self.state_path.parent}: {exc.strerror or exc}") from exc
        with _locked(self.state_path), self._signals(handle_signals):
            if not self._started:
                self.start()
            try:
                while not self.stopping:
                    if self.run_once() is None:
                        self.stop.wait(self.poll_s)
            except ScanAbandoned:  # a signal during a scan (logged there), or a second one
                pass
        logger.info("stopped watching %s", self.folder)

    @contextlib.contextmanager
    def _signals(self, enabled: bool) -> Iterator[None]:
        if not enabled:
            yield
            return

        def handler(signum: int, frame: Any) -> None:  # noqa: ARG001
            first = not self._signalled
            self._signalled = True
            if first:
                # not stop.set() here: the main thread may hold the event's lock (inside stop.wait) right now
                threading.Thread(target=self.stop.set, name="watch-stop", daemon=True).start()
                logger.info("%s received: stopping", signal.Signals(signum).name)
            if self.scanning is not None or not first:
                raise ScanAbandoned(signal.Signals(signum).name)

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)


def _utc_now(wall: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wall))


def watch_folder(
    folder: str | os.PathLike[str],
    *,
    scan: ScanFn,
    write: WriteFn,
    state_path: str | os.PathLike[str] | None = None,
    poll_s: float = DEFAULT_POLL_S,
    settle_s: float = DEFAULT_SETTLE_S,
    extensions: Iterable[str] = RECORDING_EXTENSIONS,
    recursive: bool = True,
    retry_failed: bool = False,
    stop: threading.Event | None = None,
    handle_signals: bool | None = None,
    on_result: Callable[[Path, ScanResult, list[Path]], None] | None = None,
    on_error: Callable[[Path, str], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], float] = time.time,
) -> None:
    """Watch ``folder`` and scan each new recording once it stops growing, until ``stop`` is set or SIGTERM /
    SIGINT (module doc). Raises :class:`AdbreakError` at start for a missing folder, an unwritable state file or a
    state file locked by another watcher."""
    FolderWatcher(
        folder,
        scan=scan,
        write=write,
        state_path=state_path,
        poll_s=poll_s,
        settle_s=settle_s,
        extensions=extensions,
        recursive=recursive,
        retry_failed=retry_failed,
        stop=stop,
        on_result=on_result,
        on_error=on_error,
        clock=clock,
        wall_clock=wall_clock,
    ).run(handle_signals=handle_signals)
