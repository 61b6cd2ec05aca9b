"""Keyframes and device settings with the real processes: ``adbreak edge`` replaying a built broadcast into a real
Mosquitto, ``adbreak server`` as a process storing what it sends, the REST API over HTTP. The server is a sink here
(a SQLite file): what it stores on each engine is tested in ``tests/api/test_device_media_app.py`` and
``tests/integration/test_server_live.py``."""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from adbreak.wire import Topics, parse_settings_state
from tests.db_support import sqlite_url
from tests.edge_mqtt_support import Recorder, retained, start_edge
from tests.mqtt_support import mosquitto  # noqa: F401 - fixture
from tests.server_support import ServerProcess
from tests.support import SHORT_REPLAY_ENV, wait_for

TOPICS = Topics()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@pytest.mark.slow
def test_the_edge_sends_keyframes_of_every_segment_and_takes_settings(live_model, mosquitto, tmp_path):  # noqa: F811
    model, held = live_model
    with ServerProcess(tmp_path, (mosquitto.host, mosquitto.port), db=sqlite_url(tmp_path)) as srv:
        api = srv.session()

        def get(path: str):
            r = api.get(f"{srv.base}{path}", timeout=10)
            assert r.status_code == 200, (path, r.status_code, r.text)
            return r.json()

        def counters() -> dict:
            return get("/api/v1/health")["counters"]

        state_dir = tmp_path / "edge-state"
        log = tmp_path / "edge.log"
        decision = SHORT_REPLAY_ENV
        proc = start_edge("--source", held.video, "--device", "tv1", "--model", model, "--mqtt",
                          f"{mosquitto.host}:{mosquitto.port}", "--speed", "4", "--state-dir", state_dir,
                          env=decision, log=log)
        peak_rss = 0.0
        try:
            # the edge reports its settings on connect: defaults = the bundle's with its own min_program_s
            def reported():
                r = api.get(f"{srv.base}/api/v1/devices/tv1/settings", timeout=10)
                return r.status_code == 200 and r.json().get("reported")

            wait_for(reported, timeout=60,
                     what=f"tv1's settings reported\n{log.read_text()[-2000:] if log.exists() else ''}")
            view = get("/api/v1/devices/tv1/settings")
            assert view["defaults"]["min_program_s"] == 10.0 and view["pending"] is False
            r = api.put(f"{srv.base}/api/v1/devices/tv1/settings", json={"min_ad_s": 8.0}, timeout=10)
            assert r.status_code == 200 and r.json()["pending"] is True
            wait_for(lambda: not get("/api/v1/devices/tv1/settings")["pending"], timeout=10,
                     what="the running edge to apply min_ad_s 8")
            kept = parse_settings_state(retained(mosquitto, TOPICS.settings_state("tv1"))[
                TOPICS.settings_state("tv1")].payload, "tv1")
            assert kept.settings.min_ad_s == 8.0 and kept.overrides == {"min_ad_s": 8.0} and kept.error is None
            assert kept.settings.min_program_s == 10.0  # its own configuration still applies beneath
            while proc.poll() is None:
                peak_rss = max(peak_rss, rss_mb(proc.pid))
                time.sleep(0.5)
            assert proc.wait(120) == 0, log.read_text()[-3000:]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        print(f"edge peak RSS {peak_rss:.0f} MB")
        # issue 13's budget for the real agent with cues, logo, memory and fusion (bench_pipeline.py's agent_peak_rss)
        assert peak_rss <= 170, f"edge RSS {peak_rss:.0f} MB over the 170 MB budget"
        assert json.loads((state_dir / "tv1.settings.json").read_text())["overrides"] == {"min_ad_s": 8.0}

        # keyframes: start / middle / end of every segment, samples around the boundaries; the edge has exited, so
        # once the stored count stops growing the server has everything it sent
        def settled() -> bool:
            first = counters()["keyframes_stored"]
            time.sleep(0.5)
            return first > 0 and counters()["keyframes_stored"] == first

        wait_for(settled, timeout=20, what="the keyframes to settle")
        segs = get("/api/v1/segments?device=tv1")["segments"]
        labels = [s["label"] for s in segs]
        assert labels == ["program", "ad", "program", "ad", "program"], segs
        frames = get("/api/v1/keyframes?device=tv1")["keyframes"]
        for kind in ("start", "middle", "end"):
            of_kind = [k for k in frames if k["kind"] == kind]
            assert [k["label"] for k in of_kind] == labels, (kind, of_kind)
            for k, seg in zip(of_kind, segs, strict=True):
                end = seg["end"] if seg["end"] is not None else time.time()
                assert seg["start"] - 0.5 <= k["ts"] <= end + 0.5, (kind, k, seg)
        starts = [k for k in frames if k["kind"] == "start"]
        for k, seg in zip(starts[1:], segs[1:], strict=True):
            assert abs(k["ts"] - seg["start"]) <= 0.5 / 4 + 0.05  # the frame at the boundary (0.5 s of stream at x4)
        samples = [k for k in frames if k["kind"] == "sample" and k["reason"] == "boundary"]
        assert len(samples) >= 4 * 8  # ~10 around each of the 4 boundaries
        assert all(k["width"] == 384 and k["height"] == 216 and k["model_version"] for k in frames)
        jpeg = api.get(f"{srv.base}{frames[0]['url']}", timeout=10)
        assert jpeg.status_code == 200 and jpeg.headers["Content-Type"] == "image/jpeg"
        assert cv2.imdecode(np.frombuffer(jpeg.content, np.uint8), cv2.IMREAD_COLOR).shape == (216, 384, 3)
        assert sum(counters()["rejected"].values()) == 0

    # a restart keeps the chosen settings (persisted beside the sequence file)
    rec = Recorder(mosquitto, TOPICS.settings_state("tv1"))
    rec.messages.clear()
    proc = start_edge("--source", held.video, "--device", "tv1", "--model", model, "--mqtt",
                      f"{mosquitto.host}:{mosquitto.port}", "--no-realtime", "--duration", "3", "--state-dir",
                      state_dir, env=decision, log=log)
    assert proc.wait(120) == 0, log.read_text()[-3000:]
    assert rec.wait_for(lambda ms: any(not m.retain for m in ms), 5)
    fresh = parse_settings_state([m for m in rec.messages if not m.retain][0].payload, "tv1")
    assert fresh.settings.min_ad_s == 8.0 and fresh.overrides == {"min_ad_s": 8.0}
    rec.close()
