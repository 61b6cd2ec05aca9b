"""The watch folder on real files, real threads and the real scanner: a recording written in chunks is scanned
exactly once after it stops growing, its sidecars appear, and a restarted watcher does not scan it again."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import pytest

from adbreak.scan import DEFAULT_FORMATS, scan_recording, sidecar_paths, write_sidecars
from adbreak.scan.watch import watch_folder

pytestmark = pytest.mark.slow

POLL_S = 0.1
SETTLE_S = 1.0
CHUNKS = 8
CHUNK_PAUSE_S = 0.3  # < SETTLE_S: the file never looks settled while it grows


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    """A short real recording (90 s, small picture) to copy into the watched folder."""
    from adbreak.broadcast import build_broadcast

    root = tmp_path_factory.mktemp("watch-src")
    return build_broadcast(root, "evening-news", seed=5, duration_s=90, pool="heldout", size=(480, 270)).video


class Watcher:
    """``watch_folder`` in a thread, with the real scan and sidecar writer, counting scans."""

    def __init__(self, folder: Path, state: Path) -> None:
        self.scans: list[tuple[str, float]] = []  # (name, monotonic start)
        self.results: list[tuple[Path, list[Path]]] = []
        self.errors: list[tuple[Path, str]] = []
        self.stop = threading.Event()
        self.done = threading.Event()

        def scan(path: Path):
            self.scans.append((path.name, time.monotonic()))
            return scan_recording(path, workers=2)

        def on_result(path, result, written):
            self.results.append((path, written))
            self.done.set()

        def on_error(path, message):
            self.errors.append((path, message))
            self.done.set()

        self.thread = threading.Thread(
            target=watch_folder,
            args=(folder,),
            kwargs=dict(scan=scan, write=lambda r: write_sidecars(r, DEFAULT_FORMATS), state_path=state,
                        poll_s=POLL_S, settle_s=SETTLE_S, stop=self.stop, on_result=on_result, on_error=on_error),
            name="watch-test",
        )
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(60)
        assert not self.thread.is_alive()


def test_a_recording_written_in_chunks_is_scanned_once_after_it_stops_growing(tmp_path, recording):
    folder = tmp_path / "recordings" / "Evening News"
    folder.mkdir(parents=True)
    state = tmp_path / "state" / "watch.json"
    watcher = Watcher(tmp_path / "recordings", state)
    target = folder / "Evening News 2026-12-06.mp4"
    data = recording.read_bytes()
    try:
        with open(target, "wb") as fh:  # a DVR writing: a chunk at a time, flushed
            for i in range(CHUNKS):
                fh.write(data[i * len(data) // CHUNKS : (i + 1) * len(data) // CHUNKS])
                fh.flush()
                last_write = time.monotonic()
                time.sleep(CHUNK_PAUSE_S)
                assert watcher.scans == [], "scanned while it was still growing"
        assert watcher.done.wait(180), "never scanned"
        time.sleep(10 * POLL_S)  # more polls: nothing more happens
    finally:
        watcher.close()
    assert watcher.errors == []
    assert [name for name, _ in watcher.scans] == [target.name]
    assert watcher.scans[0][1] >= last_write + SETTLE_S  # only once it had stopped changing for settle_s
    expected = sidecar_paths(target, DEFAULT_FORMATS)
    assert sorted(watcher.results[0][1]) == sorted(expected.values())
    for path in expected.values():
        assert path.is_file() and path.stat().st_size > 0
    assert expected["csv"].read_text().startswith("start,end,label")
    entry = json.loads(state.read_text())["recordings"]["Evening News/" + target.name]
    assert entry["result"] == "ok" and entry["size"] == len(data) == target.stat().st_size
    assert entry["mtime_ns"] == target.stat().st_mtime_ns

    # restarted: the recording (and its sidecars beside it) are left alone; a new one is picked up
    again = Watcher(tmp_path / "recordings", state)
    try:
        time.sleep(20 * POLL_S)
        assert again.scans == []
    finally:
        again.close()
    assert json.loads(state.read_text())["recordings"]["Evening News/" + target.name] == entry


def test_a_file_moved_in_finished_is_scanned_and_a_broken_one_is_recorded_as_failed(tmp_path, recording):
    folder = tmp_path / "recordings"
    (folder / ".grab" / "1234").mkdir(parents=True)
    state = tmp_path / "watch.json"
    broken = folder / "broken.ts"
    broken.write_bytes(b"\x47" + b"\x00" * 100_000)  # a sync byte, then nothing that decodes
    watcher = Watcher(folder, state)
    try:
        assert watcher.done.wait(60)
        watcher.done.clear()
        grab = folder / ".grab" / "1234" / "late show.mp4"  # Plex records into .grab/ and moves it out
        shutil.copy2(recording, grab)
        time.sleep(5 * POLL_S)
        assert [n for n, _ in watcher.scans] == ["broken.ts"], "scanned inside .grab/"
        grab.rename(folder / "late show.mp4")
        assert watcher.done.wait(180)
        time.sleep(5 * POLL_S)
    finally:
        watcher.close()
    assert [n for n, _ in watcher.scans] == ["broken.ts", "late show.mp4"]
    assert len(watcher.errors) == 1 and watcher.errors[0][0] == broken
    entries = json.loads(state.read_text())["recordings"]
    assert entries["broken.ts"]["result"] == "error" and entries["broken.ts"]["message"] == watcher.errors[0][1]
    assert entries["late show.mp4"]["result"] == "ok"
    assert (folder / "late show.edl").is_file()
