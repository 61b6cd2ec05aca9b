"""The watch folder's logic (adbreak/scan/watch.py) on fake scans, fake clocks and real files in tmp_path."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from adbreak.errors import AdbreakError
from adbreak.scan.result import ScanResult
from adbreak.scan.sidecars import SidecarEdited
from adbreak.scan.watch import (
    FORGET_MISSING_S,
    FolderWatcher,
    ScanAbandoned,
    WatchState,
    default_state_path,
    is_recording_name,
    list_recordings,
    normalise_extensions,
    watch_folder,
)
from adbreak.segments import Segment

WALL0 = 1_800_000_000.0  # the fake wall clock's start (2027)
SETTLE = 30.0
POLL = 5.0


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class Fakes:
    """A scan that records its calls (and fails for the names in ``fail``) and a write that records its results."""

    def __init__(self) -> None:
        self.scanned: list[str] = []
        self.written: list[str] = []
        self.fail: dict[str, BaseException] = {}
        self.write_fail: BaseException | None = None
        self.during_scan = None  # called with the path inside the scan

    def scan(self, path: Path) -> ScanResult:
        self.scanned.append(path.name)
        if self.during_scan is not None:
            self.during_scan(path)
        if path.name in self.fail:
            raise self.fail[path.name]
        segments = [Segment(0.0, 20.0, "program"), Segment(20.0, 50.0, "ad"), Segment(50.0, 60.0, "program")]
        return ScanResult(recording=path, duration_s=60.0, fps=25.0, segments=segments, mode="fast",
                          frames_analysed=100)

    def write(self, result: ScanResult) -> list[Path]:
        if self.write_fail is not None:
            raise self.write_fail
        self.written.append(result.recording.name)
        return [result.recording.with_suffix(".edl")]


@pytest.fixture
def env(tmp_path):
    """(folder, state path, fakes, monotonic clock, wall clock, make) with ``make(**kw)`` building a watcher."""
    folder = tmp_path / "rec"
    folder.mkdir()
    state = tmp_path / "state" / "watch.json"
    fakes = Fakes()
    mono, wall = Clock(100.0), Clock(WALL0)

    def make(**kw) -> FolderWatcher:
        args = dict(scan=fakes.scan, write=fakes.write, state_path=state, poll_s=POLL, settle_s=SETTLE,
                    clock=mono, wall_clock=wall)
        args.update(kw)
        return FolderWatcher(folder, **args)

    return folder, state, fakes, mono, wall, make


def put(path: Path, size: int = 1000, mtime: float | None = None) -> Path:
    """Write ``size`` bytes to ``path`` with the given mtime (wall seconds)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * size)
    if mtime is not None:
        ns = int(mtime * 1e9)
        os.utime(path, ns=(ns, ns))
    return path


def tick(mono: Clock, wall: Clock, s: float) -> None:
    mono.t += s
    wall.t += s


def poll_for(watcher: FolderWatcher, mono: Clock, wall: Clock, seconds: float, step: float = POLL) -> list:
    """Run the watcher's steps every ``step`` s of fake time for ``seconds``; the outcomes that happened."""
    out = []
    for _ in range(int(seconds / step) + 1):
        outcome = watcher.run_once()
        if outcome is not None:
            out.append(outcome)
        tick(mono, wall, step)
    return out


# --- names --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["show.ts", "Show S01E02.TS", "1021_20261206200000.ts", "News.mpg", "film.mkv", "film.mp4", "old.wtv",
     "a.m2ts", "b.mts", "c.mpeg", "d.m4v", "Mr. Tmp.ts", "Part 2.ts"],
)
def test_recording_names(name):
    assert is_recording_name(name)


@pytest.mark.parametrize(
    "name",
    [
        ".show.ts",  # hidden: our own atomic temp files, rsync's
        ".show.ts.XyZ123",
        "show.edl", "show.txt", "show.ffmeta", "show.csv",  # our own sidecars
        "show.ts.png",  # MythTV's preview
        "show.ts.meta", "show.ts.ap", "show.ts.cuts",  # Enigma2
        "show.ts.part", "show.ts.tmp", "show.part.ts", "show.tmp.mkv", "show.inprogress.ts", "show.partial.mp4",
        "show.nfo", "show.jpg", "ts",
        ".ts",
    ],
)
def test_ignored_names(name):
    assert not is_recording_name(name)


def test_extensions_are_normalised():
    assert normalise_extensions(["TS", ".mkv", " mp4 ", "ts"]) == (".ts", ".mkv", ".mp4")
    with pytest.raises(AdbreakError):
        normalise_extensions([" ", "."])


def test_listing_skips_hidden_and_housekeeping_folders(tmp_path):
    put(tmp_path / "Show" / "Season 1" / "ep1.ts")
    put(tmp_path / ".grab" / "abc123" / "ep2.ts")  # Plex records here, then moves the file out
    put(tmp_path / "@eaDir" / "ep1.ts" / "SYNOVIDEO.ts")  # Synology's index
    put(tmp_path / "#recycle" / "old.ts")
    put(tmp_path / "lost+found" / "x.ts")
    put(tmp_path / "top.mkv")
    put(tmp_path / "top.edl")
    (tmp_path / "link").symlink_to(tmp_path / "Show")  # folder symlinks are not followed (loops)
    found, complete = list_recordings(tmp_path)
    assert complete
    assert sorted(found) == ["Show/Season 1/ep1.ts", "top.mkv"]
    found, _ = list_recordings(tmp_path, recursive=False)
    assert sorted(found) == ["top.mkv"]


def test_listing_of_a_missing_folder_is_incomplete(tmp_path):
    found, complete = list_recordings(tmp_path / "gone")
    assert found == {} and not complete


# --- settling -------------------------------------------------------------------------------------------------------


def test_a_growing_file_is_scanned_once_after_it_stops(env):
    folder, _, fakes, mono, wall, make = env
    watcher = make()
    rec = folder / "show.ts"
    for i in range(12):  # written for a minute
        put(rec, size=1000 * (i + 1), mtime=wall.t)
        assert watcher.run_once() is None
        tick(mono, wall, POLL)
    assert fakes.scanned == []
    outcomes = poll_for(watcher, mono, wall, SETTLE + 2 * POLL)
    assert [o.status for o in outcomes] == ["ok"]
    assert fakes.scanned == ["show.ts"] and fakes.written == ["show.ts"]
    assert poll_for(watcher, mono, wall, 10 * SETTLE) == []  # never again
    assert fakes.scanned == ["show.ts"]


def test_settling_takes_settle_s_of_no_change(env):
    folder, _, fakes, mono, wall, make = env
    watcher = make()
    put(folder / "show.ts", mtime=wall.t)
    assert watcher.run_once() is None
    tick(mono, wall, SETTLE - 1)
    assert watcher.run_once() is None
    tick(mono, wall, 1)
    assert watcher.run_once().status == "ok"


def test_a_preallocated_file_settles_on_its_mtime(env):
    folder, _, fakes, mono, wall, make = env
    watcher = make()
    rec = folder / "show.ts"
    for _ in range(20):  # the size never changes, the writes move the mtime
        put(rec, size=50_000, mtime=wall.t)
        assert watcher.run_once() is None
        tick(mono, wall, POLL)
    assert fakes.scanned == []
    assert [o.status for o in poll_for(watcher, mono, wall, SETTLE + POLL)] == ["ok"]


def test_a_file_renamed_into_place_is_scanned_without_waiting(env):
    folder, _, fakes, mono, wall, make = env
    watcher = make()
    tmp = put(folder / ".grab" / "x" / "show.ts", mtime=wall.t - 3600)  # finished an hour ago, hidden folder
    assert watcher.run_once() is None
    tick(mono, wall, POLL)
    os.replace(tmp, folder / "show.ts")  # the DVR moves it into the library: mtime kept
    assert watcher.run_once() is None  # seen once
    assert watcher.run_once() is None  # twice, but no time between the looks
    tick(mono, wall, POLL)
    assert watcher.run_once().status == "ok"  # seen unchanged twice, already old: no settle wait
    assert fakes.scanned == ["show.ts"]


def test_an_empty_file_waits(env):
    folder, _, fakes, mono, wall, make = env
    watcher = make()
    put(folder / "show.ts", size=0, mtime=wall.t - 3600)
    assert poll_for(watcher, mono, wall, 3 * SETTLE) == []
    assert fakes.scanned == []


def test_oldest_first_one_at_a_time(env):
    folder, _, fakes, mono, wall, make = env
    watcher = make()
    put(folder / "b-new.ts", mtime=wall.t - 100)
    put(folder / "a-newer.ts", mtime=wall.t - 50)
    put(folder / "Show" / "c-old.ts", mtime=wall.t - 1000)
    poll_for(watcher, mono, wall, 2 * SETTLE)
    assert fakes.scanned == ["c-old.ts", "b-new.ts", "a-newer.ts"]


def test_a_file_that_changes_before_its_scan_waits_again(env):
    folder, _, fakes, mono, wall, make = env
    watcher = make()
    rec = put(folder / "show.ts", mtime=wall.t)
    watcher.run_once()
    tick(mono, wall, SETTLE)
    picked = watcher.poll()
    assert picked is not None
    put(rec, size=2000, mtime=wall.t)  # grew again between the poll and the scan
    assert watcher.process(*picked) is None
    assert fakes.scanned == []


def test_a_file_that_changes_during_its_scan_gets_no_sidecars_and_is_scanned_again(env):
    folder, state, fakes, mono, wall, make = env
    watcher = make()
    rec = put(folder / "show.ts", mtime=wall.t)
    fakes.during_scan = lambda path: put(path, size=5000, mtime=wall.t + 1)
    outcomes = poll_for(watcher, mono, wall, SETTLE + POLL)
    assert [o.status for o in outcomes] == ["changed"]
    assert fakes.written == []
    assert "show.ts" not in json.loads(state.read_text())["recordings"]
    fakes.during_scan = None
    outcomes = poll_for(watcher, mono, wall, SETTLE + POLL)
    assert [o.status for o in outcomes] == ["ok"] and fakes.written == ["show.ts"]
    assert rec.stat().st_size == 5000


def test_a_file_that_vanishes_is_forgotten(env):
    folder, _, fakes, mono, wall, make = env
    watcher = make()
    rec = put(folder / "show.ts", mtime=wall.t)
    watcher.run_once()
    rec.unlink()
    assert poll_for(watcher, mono, wall, 2 * SETTLE) == []
    assert fakes.scanned == []


# --- the state file ---------------------------------------------------------------------------------------------


def test_state_records_size_mtime_and_result(env):
    folder, state, fakes, mono, wall, make = env
    rec = put(folder / "Show" / "show.ts", size=1234, mtime=wall.t - 3600)
    poll_for(make(), mono, wall, 2 * POLL)
    data = json.loads(state.read_text())
    assert data["version"] == 1 and data["folder"] == str(folder)
    entry = data["recordings"]["Show/show.ts"]
    assert entry["size"] == 1234 and entry["mtime_ns"] == rec.stat().st_mtime_ns
    assert entry["result"] == "ok" and entry["message"] == "" and entry["ad_breaks"] == 1
    assert entry["scanned_at"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(WALL0 + POLL))  # the 2nd poll
    assert [p.name for p in state.parent.iterdir() if p.name.startswith(".")] == []  # no temporary left


def test_a_restart_skips_what_was_scanned_and_scans_what_arrived_meanwhile(env):
    folder, state, fakes, mono, wall, make = env
    put(folder / "one.ts", mtime=wall.t - 3600)
    poll_for(make(), mono, wall, 2 * POLL)
    assert fakes.scanned == ["one.ts"]
    tick(mono, wall, 3600)  # down for an hour
    put(folder / "two.ts", mtime=wall.t - 600)  # recorded meanwhile
    put(folder / "three.ts", mtime=wall.t)  # still recording
    again = make()
    outcomes = poll_for(again, mono, wall, 2 * POLL)
    assert [o.rel for o in outcomes] == ["two.ts"]
    poll_for(again, mono, wall, SETTLE + POLL)
    assert fakes.scanned == ["one.ts", "two.ts", "three.ts"]


def test_a_rerecorded_file_is_scanned_again(env):
    folder, state, fakes, mono, wall, make = env
    watcher = make()
    rec = put(folder / "show.ts", mtime=wall.t - 3600)
    poll_for(watcher, mono, wall, 2 * POLL)
    put(rec, size=9999, mtime=wall.t)  # recorded again under the same name
    poll_for(watcher, mono, wall, SETTLE + POLL)
    assert fakes.scanned == ["show.ts", "show.ts"]
    assert json.loads(state.read_text())["recordings"]["show.ts"]["size"] == 9999


def test_a_corrupt_state_is_set_aside_and_rebuilt(env, caplog):
    folder, state, fakes, mono, wall, make = env
    state.parent.mkdir(parents=True)
    state.write_text('{"version": 1, "recordings": {"show.ts": {"size": "big"')
    put(folder / "show.ts", mtime=wall.t - 3600)
    with caplog.at_level(logging.WARNING, logger="adbreak.scan.watch"):
        watcher = make()
        poll_for(watcher, mono, wall, 2 * POLL)
    aside = [p for p in state.parent.iterdir() if ".corrupt-" in p.name]
    assert len(aside) == 1 and aside[0].read_text().startswith('{"version": 1')
    assert "unreadable" in caplog.text and aside[0].name in caplog.text
    assert fakes.scanned == ["show.ts"]
    assert json.loads(state.read_text())["recordings"]["show.ts"]["result"] == "ok"


@pytest.mark.parametrize(
    "data",
    [b"", b"[]", b'{"version": 2, "recordings": {}}', b'{"version": 1, "recordings": []}',
     b'{"version": 1, "recordings": {"a.ts": {"size": 1, "mtime_ns": 2, "result": "maybe"}}}',
     b'{"version": 1, "recordings": {"a.ts": {"size": true, "mtime_ns": 2, "result": "ok"}}}',
     b"\xff\xfe\x00garbage"],
)
def test_unreadable_states_of_every_kind_are_set_aside(env, data):
    folder, state, fakes, mono, wall, make = env
    state.parent.mkdir(parents=True)
    state.write_bytes(data)
    make().start()
    assert json.loads(state.read_text())["recordings"] == {}
    assert len([p for p in state.parent.iterdir() if ".corrupt-" in p.name]) == 1


def test_an_unwritable_state_is_a_one_line_error_at_start(env, monkeypatch):
    folder, state, fakes, mono, wall, make = env

    def refuse(self):
        raise PermissionError(13, "Permission denied")

    with monkeypatch.context() as m:
        m.setattr(WatchState, "save", refuse)
        with pytest.raises(AdbreakError, match="cannot write the watch state .*: Permission denied"):
            make().start()
    state.parent.write_text("a file where the state folder should be")
    with pytest.raises(AdbreakError, match="cannot read the watch state .*: Not a directory"):
        make().start()
    with pytest.raises(AdbreakError, match="cannot create"):
        watch_folder(folder, scan=fakes.scan, write=fakes.write, state_path=state, stop=threading.Event())


def test_default_state_path_is_outside_the_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    a, b = tmp_path / "lib" / "TV", tmp_path / "other" / "TV"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    pa, pb = default_state_path(a), default_state_path(b)
    assert pa.parent == tmp_path / "xdg" / "adbreak" / "scan-watch"
    assert pa.name.startswith("TV-") and pa.suffix == ".json"
    assert pa != pb and default_state_path(str(a) + "/") == pa
    watcher = FolderWatcher(a, scan=Fakes().scan, write=Fakes().write)
    assert watcher.state_path == pa


def test_missing_files_are_forgotten_after_a_month_but_not_when_the_disk_is_gone(env):
    folder, state, fakes, mono, wall, make = env
    watcher = make()
    gone = put(folder / "gone.ts", mtime=wall.t - 3600)
    put(folder / "kept.ts", mtime=wall.t - 3500)
    poll_for(watcher, mono, wall, 3 * POLL)
    assert sorted(json.loads(state.read_text())["recordings"]) == ["gone.ts", "kept.ts"]
    gone.unlink()
    watcher.run_once()
    entries = json.loads(state.read_text())["recordings"]
    assert "missing_since" in entries["gone.ts"] and "missing_since" not in entries["kept.ts"]
    tick(mono, wall, FORGET_MISSING_S)
    watcher.run_once()
    assert sorted(json.loads(state.read_text())["recordings"]) == ["kept.ts"]
    # an empty listing (an unmounted disk) forgets nothing, however long
    (folder / "kept.ts").unlink()
    for _ in range(3):
        watcher.run_once()
        tick(mono, wall, FORGET_MISSING_S)
    assert sorted(json.loads(state.read_text())["recordings"]) == ["kept.ts"]


# --- failures -----------------------------------------------------------------------------------------------------


def test_a_failed_recording_is_recorded_logged_and_not_retried_until_it_changes(env, caplog):
    folder, state, fakes, mono, wall, make = env
    fakes.fail["bad.ts"] = AdbreakError("bad.ts: no video stream decodes")
    bad = put(folder / "bad.ts", mtime=wall.t - 3600)
    put(folder / "good.ts", mtime=wall.t - 1800)
    watcher = make()
    with caplog.at_level(logging.INFO, logger="adbreak.scan.watch"):
        outcomes = poll_for(watcher, mono, wall, 10 * SETTLE)
    assert [(o.rel, o.status) for o in outcomes] == [("bad.ts", "error"), ("good.ts", "ok")]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "bad.ts: no video stream decodes" in warnings[0].getMessage()
    entry = json.loads(state.read_text())["recordings"]["bad.ts"]
    assert entry["result"] == "error" and entry["message"] == "bad.ts: no video stream decodes"
    # a restart does not retry it either
    poll_for(make(), mono, wall, 3 * POLL)
    assert fakes.scanned == ["bad.ts", "good.ts"]
    # changed: tried again
    put(bad, size=4000, mtime=wall.t)
    del fakes.fail["bad.ts"]
    poll_for(watcher, mono, wall, SETTLE + POLL)
    assert fakes.scanned == ["bad.ts", "good.ts", "bad.ts"]
    assert json.loads(state.read_text())["recordings"]["bad.ts"]["result"] == "ok"


def test_retry_failed_tries_failures_once_more_at_start(env):
    folder, state, fakes, mono, wall, make = env
    fakes.fail["bad.ts"] = AdbreakError("no video")
    put(folder / "bad.ts", mtime=wall.t - 3600)
    poll_for(make(), mono, wall, 3 * POLL)
    poll_for(make(), mono, wall, 3 * POLL)
    assert fakes.scanned == ["bad.ts"]
    poll_for(make(retry_failed=True), mono, wall, 3 * POLL)
    assert fakes.scanned == ["bad.ts", "bad.ts"]


def test_an_unexpected_exception_is_logged_with_its_traceback_and_the_watcher_goes_on(env, caplog):
    folder, state, fakes, mono, wall, make = env
    fakes.fail["bad.ts"] = ZeroDivisionError("division by zero")
    put(folder / "bad.ts", mtime=wall.t - 3600)
    put(folder / "good.ts", mtime=wall.t - 1800)
    with caplog.at_level(logging.WARNING, logger="adbreak.scan.watch"):
        outcomes = poll_for(make(), mono, wall, 3 * POLL)
    assert [o.status for o in outcomes] == ["error", "ok"]
    assert outcomes[0].message == "ZeroDivisionError: division by zero"
    assert caplog.records[0].exc_info is not None


def test_an_edited_sidecar_is_a_failure_kept_until_the_recording_changes(env):
    folder, state, fakes, mono, wall, make = env
    fakes.write_fail = SidecarEdited("show.edl changed after the recording was made (edited?): kept")
    put(folder / "show.ts", mtime=wall.t - 3600)
    errors = []
    outcomes = poll_for(make(on_error=lambda p, m: errors.append((p.name, m))), mono, wall, 5 * POLL)
    assert [o.status for o in outcomes] == ["error"]
    assert errors == [("show.ts", "show.edl changed after the recording was made (edited?): kept")]
    assert json.loads(state.read_text())["recordings"]["show.ts"]["result"] == "error"


def test_one_info_line_per_recording_and_on_result(env, caplog):
    folder, state, fakes, mono, wall, make = env
    put(folder / "show.ts", mtime=wall.t - 3600)
    results = []
    with caplog.at_level(logging.INFO, logger="adbreak.scan.watch"):
        poll_for(make(on_result=lambda p, r, w: results.append((p.name, r.duration_s, w))), mono, wall, 3 * POLL)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("scanned")]
    assert lines == ["scanned show.ts: 1 ad break (30 s of ads) in 0.0 s"]
    assert results == [("show.ts", 60.0, [folder / "show.edl"])]


# --- the loop: stop, signals, lock -------------------------------------------------------------------------------


def test_watch_folder_returns_when_stop_is_set(env):
    folder, state, fakes, mono, wall, make = env
    put(folder / "show.ts", mtime=time.time() - 3600)
    stop = threading.Event()
    done = []
    thread = threading.Thread(
        target=watch_folder, args=(folder,),
        kwargs=dict(scan=fakes.scan, write=fakes.write, state_path=state, poll_s=0.02, settle_s=0.0, stop=stop,
                    on_result=lambda p, r, w: done.append(p.name)),
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not done and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert done == ["show.ts"] and fakes.scanned == ["show.ts"]


def test_a_second_watcher_on_the_same_state_is_refused(env):
    folder, state, fakes, mono, wall, make = env
    stop = threading.Event()
    thread = threading.Thread(target=make(stop=stop, poll_s=0.02).run)
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while not state.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(AdbreakError, match="another adbreak scan --watch"):
            make(stop=threading.Event()).run()
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()


def test_a_scan_failing_because_we_stop_is_not_recorded(env):
    folder, state, fakes, mono, wall, make = env
    stop = threading.Event()
    put(folder / "show.ts", mtime=wall.t - 3600)

    def stopped(path):
        stop.set()
        raise AdbreakError("the decoder's worker died")  # systemd stopped the workers too

    fakes.during_scan = stopped
    make(stop=stop, settle_s=0.0, poll_s=0.05).run(handle_signals=False)
    assert fakes.scanned == ["show.ts"]
    assert json.loads(state.read_text())["recordings"] == {}


def test_sigterm_during_a_scan_abandons_it_and_the_next_start_scans_it(env, caplog):
    folder, state, fakes, mono, wall, make = env
    put(folder / "show.ts", mtime=wall.t - 3600)
    before = signal.getsignal(signal.SIGTERM)
    interrupted = []

    def long_scan(path):
        threading.Timer(0.1, os.kill, args=(os.getpid(), signal.SIGTERM)).start()  # systemctl stop, mid-scan
        try:
            time.sleep(5)
        except ScanAbandoned:
            interrupted.append(path.name)
            raise

    fakes.during_scan = long_scan
    stop = threading.Event()
    t0 = time.monotonic()
    with caplog.at_level(logging.INFO, logger="adbreak.scan.watch"):
        make(stop=stop, settle_s=0.0, poll_s=0.05).run(handle_signals=True)
    stop.wait(2)  # set from a helper thread
    assert time.monotonic() - t0 < 4
    assert interrupted == ["show.ts"] and stop.is_set()
    assert signal.getsignal(signal.SIGTERM) == before  # handlers put back
    assert json.loads(state.read_text())["recordings"] == {} and fakes.written == []
    assert "SIGTERM received: stopping" in caplog.text
    fakes.during_scan = None
    poll_for(make(), mono, wall, 3 * POLL)
    assert fakes.scanned == ["show.ts", "show.ts"] and fakes.written == ["show.ts"]


def test_sigterm_while_idle_stops_between_polls(env):
    folder, state, fakes, mono, wall, make = env
    stop = threading.Event()
    timer = threading.Timer(0.2, os.kill, args=(os.getpid(), signal.SIGTERM))
    timer.start()
    t0 = time.monotonic()
    try:
        make(stop=stop, poll_s=30.0, clock=time.monotonic, wall_clock=time.time).run(handle_signals=True)
    finally:
        timer.cancel()
    assert stop.wait(2) and time.monotonic() - t0 < 5


def test_bad_arguments_are_one_line_errors(tmp_path):
    fakes = Fakes()
    with pytest.raises(AdbreakError, match="is not a folder"):
        FolderWatcher(tmp_path / "nope", scan=fakes.scan, write=fakes.write)
    with pytest.raises(AdbreakError, match="poll interval"):
        FolderWatcher(tmp_path, scan=fakes.scan, write=fakes.write, poll_s=0)
    with pytest.raises(AdbreakError, match="settle time"):
        FolderWatcher(tmp_path, scan=fakes.scan, write=fakes.write, settle_s=-1)
