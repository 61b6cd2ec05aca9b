"""Media faults (issue 5, item 4): a corrupt or truncated video given to ``adbreak edge`` and ``adbreak evaluate``,
a truncated model bundle, and a camera that disappears mid-stream. Bad input gives one line on stderr and exit 2,
never a traceback; a live source that goes away is logged and reopened with back-off, and the agent carries on
when it returns; a file source that vanishes ends the agent with one line."""

from __future__ import annotations

import http.server
import json
import os
import random
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from adbreak.wire import Topics, parse_telemetry
from tests.edge_mqtt_support import Recorder, mosquitto, start_edge
from tests.support import media, missing_service, run_cli, wait_for

TOPICS = Topics()


def one_line_error(proc: subprocess.CompletedProcess[str], match: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith(("WARNING", "INFO"))]
    assert len(lines) == 1, proc.stderr
    assert match in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, cache_dir) -> Path:
    root = tmp_path_factory.mktemp("bad-media-data")
    for clip, label in (("gillette", "ad"), ("box", "ad"), ("vtest", "program"), ("bikes", "program")):
        proc = run_cli("collect", media(clip), "--label", label, "--out", root / "frames", "--fps", "2",
                       "--duration", "10", "-q")
        assert proc.returncode == 0, proc.stderr
    out = root / "model"
    proc = run_cli("train", root / "frames", "--out", out, "--cache-dir", cache_dir, "-q")
    assert proc.returncode == 0, proc.stderr
    return out


def corrupt_copy(src: Path, dst: Path, *, seed: int, at: float = 0.5, size: int = 8192) -> Path:
    """``src`` with ``size`` random bytes written over the middle of the file (the container's index intact)."""
    data = bytearray(src.read_bytes())
    start = int(len(data) * at)
    data[start:start + size] = random.Random(seed).randbytes(size)
    dst.write_bytes(bytes(data))
    return dst


def truth_for(tmp_path: Path, seconds: float) -> Path:
    truth = tmp_path / "truth.csv"
    truth.write_text(f"start,end,label\n0.000,{seconds:.3f},program\n")
    return truth


# ---------------------------------------------------------------------------------------------------- corrupt videos
def test_evaluate_on_a_video_corrupted_mid_file_skips_and_counts_the_damage(bundle, tmp_path) -> None:
    bad = corrupt_copy(media("bikes"), tmp_path / "corrupt.mp4", seed=5)
    proc = run_cli("evaluate", bad, "--truth", truth_for(tmp_path, 10.0), "--model", bundle)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "corrupt packets skipped" in proc.stderr, proc.stderr  # e.g. "14 corrupt packets skipped"
    assert "accuracy" in proc.stdout, proc.stdout


def test_evaluate_on_random_bytes_and_on_a_truncated_video(bundle, tmp_path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(random.Random(1).randbytes(200_000))
    one_line_error(run_cli("evaluate", junk, "--truth", truth_for(tmp_path, 10.0), "--model", bundle),
                   "cannot open video")
    clip = media("bikes").read_bytes()
    cut = tmp_path / "cut.mp4"  # an MP4 cut before its index (moov): nothing to decode
    cut.write_bytes(clip[:len(clip) // 4])
    one_line_error(run_cli("evaluate", cut, "--truth", truth_for(tmp_path, 10.0), "--model", bundle),
                   "cannot open video")


def _mpegts(tmp_path: Path, seconds: float = 8.0) -> Path:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        missing_service("ffmpeg is not installed")
    out = tmp_path / "clip.ts"
    subprocess.run([ffmpeg, "-v", "error", "-y", "-i", str(media("bikes")), "-t", str(seconds), "-an", "-c:v",
                    "mpeg2video", "-q:v", "5", "-f", "mpegts", str(out)], check=True)
    return out


def test_edge_on_corrupt_truncated_and_junk_videos(bundle, tmp_path) -> None:
    """The agent reads what it can of a damaged file, says what it skipped and stops at its end (exit 0), and
    refuses what it cannot open with one line (exit 2). No broker is needed to see that (it keeps retrying the
    broker in the background and detects anyway)."""
    def edge(path: Path, name: str) -> subprocess.CompletedProcess[str]:
        proc = run_cli("edge", "--source", path, "--device", "tv1", "--model", bundle, "--mqtt", "127.0.0.1:1",
                       "--no-realtime", "--state-dir", tmp_path / f"state-{name}", "-q")
        assert "Traceback" not in proc.stderr, (name, proc.stderr)
        return proc

    corrupt = edge(corrupt_copy(media("bikes"), tmp_path / "corrupt.mp4", seed=5), "corrupt")
    assert corrupt.returncode == 0, corrupt.stderr
    assert "corrupt packet(s) skipped" in corrupt.stderr and "frames analysed" in corrupt.stderr, corrupt.stderr

    ts = _mpegts(tmp_path).read_bytes()
    cut_stream = tmp_path / "cut.ts"  # a stream cut mid-packet: what is there is analysed
    cut_stream.write_bytes(ts[:len(ts) // 2 + 77])
    cut = edge(cut_stream, "cut-ts")
    assert cut.returncode == 0, cut.stderr
    analysed = int(cut.stderr.split(" frames analysed")[0].rsplit(" ", 1)[-1])
    assert 10 <= analysed <= 30, cut.stderr  # about half of 8 s at 5 fps

    clip = media("bikes").read_bytes()
    cut_mp4 = tmp_path / "cut.mp4"
    cut_mp4.write_bytes(clip[:len(clip) // 4])
    one_line_error(edge(cut_mp4, "cut-mp4"), "cannot open video")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(random.Random(2).randbytes(100_000))
    one_line_error(edge(junk, "junk"), "cannot open video")


# ---------------------------------------------------------------------------------------------------- bundles
@pytest.mark.parametrize("damage", ["head_cut", "tflite_cut", "json_broken", "json_truncated", "json_not_object"])
def test_a_damaged_bundle_is_refused_with_one_line(bundle, tmp_path, damage) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(bundle, bad)
    if damage == "head_cut":
        head = bad / "head.npz"
        head.write_bytes(head.read_bytes()[: head.stat().st_size // 2])
    elif damage == "tflite_cut":
        tflite = next(bad.glob("*.tflite"))
        tflite.write_bytes(tflite.read_bytes()[: tflite.stat().st_size // 3])
    else:
        meta = bad / "bundle.json"
        text = meta.read_text()
        meta.write_text({"json_broken": text.replace('"', "'", 3), "json_truncated": text[: len(text) // 2],
                         "json_not_object": json.dumps([1, 2, 3])}[damage])
    truth = truth_for(tmp_path, 5.0)
    for proc in (run_cli("evaluate", media("bikes"), "--truth", truth, "--model", bad),
                 run_cli("edge", "--source", media("bikes"), "--device", "tv1", "--model", bad, "--mqtt",
                         "127.0.0.1:1", "--no-realtime", "--state-dir", tmp_path / "state", "-q")):
        line = one_line_error(proc, "")
        assert str(bad) in line or "bundle" in line, line


# ------------------------------------------------------------------------------------------------ a vanishing camera
class Camera:
    """An HTTP camera: serves an MPEG-TS stream at about real time; ``off()`` drops the connection and refuses new
    ones (the camera unplugged), ``on()`` brings it back on the same port."""

    def __init__(self, stream: bytes, port: int) -> None:
        self.stream = stream
        self.port = port
        self.server: http.server.ThreadingHTTPServer | None = None
        self.alive = threading.Event()
        self.connections = 0

    def on(self) -> None:
        camera = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                camera.connections += 1
                self.send_response(200)
                self.send_header("Content-Type", "video/mp2t")
                self.end_headers()
                chunk = 188 * 64
                try:
                    while camera.alive.is_set():  # loop the clip forever, roughly paced
                        for i in range(0, len(camera.stream), chunk):
                            if not camera.alive.is_set():
                                return
                            self.wfile.write(camera.stream[i:i + chunk])
                            time.sleep(0.01)
                except OSError:
                    return

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.alive.set()
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def off(self) -> None:
        self.alive.clear()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def test_a_camera_that_disappears_mid_stream_is_reported_and_reopened(bundle, tmp_path) -> None:
    from tests.mqtt_support import find_free_port

    camera = Camera(_mpegts(tmp_path).read_bytes(), find_free_port())
    camera.on()
    log = tmp_path / "edge.log"
    with mosquitto(tmp_path) as broker:
        rec = Recorder(broker, f"{TOPICS.prefix}/cam1/#")
        proc = start_edge("--source", f"http://127.0.0.1:{camera.port}/stream.ts", "--device", "cam1", "--model",
                          bundle, "--mqtt", f"{broker.host}:{broker.port}", "--state-dir", tmp_path / "state", "-q",
                          log=log)
        try:
            def telemetry() -> list:
                return [parse_telemetry(m.payload) for m in rec.on(TOPICS.telemetry("cam1"))]

            wait_for(lambda: any(t.fps > 0 for t in telemetry()), timeout=60, what="telemetry from the live camera")
            camera.off()
            lost_at = len(telemetry())
            wait_for(lambda: "cannot reopen the live source" in log.read_text(), timeout=60,
                     what="the agent to report the lost camera")
            text = log.read_text()
            assert "live source" in text and "reopening" in text, text[-3000:]
            assert proc.poll() is None, "the agent exited while the camera was away"
            before = max((t.stream_t for t in telemetry()), default=0.0)

            camera.on()
            wait_for(lambda: any(t.fps > 0 and t.stream_t > before for t in telemetry()[lost_at:]), timeout=60,
                     what="telemetry after the camera came back")
            assert camera.connections >= 2
            assert proc.poll() is None
            assert "Traceback" not in log.read_text()
            streams = [t.stream_t for t in telemetry()]
            assert streams == sorted(streams), "stream time went backwards across the outage"
        finally:
            camera.off()
            if proc.poll() is None:
                proc.terminate()
                proc.wait(20)
            rec.close()
        assert proc.returncode == 0, log.read_text()[-3000:]
        assert "Traceback" not in log.read_text()


def test_a_video_file_that_vanishes_while_looping_ends_the_agent_with_one_line(bundle, tmp_path) -> None:
    clip = tmp_path / "clip.mp4"
    shutil.copy(media("bikes"), clip)
    log = tmp_path / "edge.log"
    proc = start_edge("--source", clip, "--device", "tv9", "--model", bundle, "--mqtt", "127.0.0.1:1", "--loop",
                      "--speed", "8", "--state-dir", tmp_path / "state", "-q", log=log)
    try:
        time.sleep(2.0)
        assert proc.poll() is None, log.read_text()
        os.unlink(clip)
        proc.wait(120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert proc.returncode == 2, text[-3000:]
    assert "Traceback" not in text, text
    errors = [ln for ln in text.splitlines() if "video not found" in ln]
    assert len(errors) == 1 and str(clip) in errors[0], text[-3000:]
