"""The live system end to end, with the real things a user meets.

A private Mosquitto on a free port; `adbreak server` on a temporary SQLite file migrated by `adbreak db upgrade`;
`adbreak edge` with no model (zero labels: the broadcast cues alone) replaying a short built broadcast at 4x; a
separate paho subscriber watching the mute commands; the
dashboard in Debian's headless Chromium (Playwright). Checks the stored segments against the truth, the mute /
unmute commands, and the dashboard showing the live state and the segments. Screenshots land in the test's folder
and in `out/test-artifacts/`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request

import paho.mqtt.client as mqtt
import pytest

from adbreak.broadcast import build_broadcast
from adbreak.segments import read_segments
from tests.mqtt_support import find_free_port, mosquitto  # noqa: F401 - fixture
from tests.server_support import ADMIN_PASSWORD, http_session
from tests.support import ROOT, run_cli
from tests.web_support import build_dashboard, require_chromium, sign_in

pytestmark = pytest.mark.slow

SPEED = 4.0
DEVICE = "e2e-tv"
ARTIFACTS = ROOT / "out" / "test-artifacts"


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("live")
    return build_broadcast(root, "sample", seed=10, duration_s=200, pool="heldout")


def _get(url: str):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


@pytest.fixture
def server(tmp_path, mosquitto):  # noqa: F811
    host, port = mosquitto.host, mosquitto.port
    db = f"sqlite:///{tmp_path / 'adbreak.db'}"
    proc = run_cli("db", "upgrade", "--db", db)
    assert proc.returncode == 0, proc.stderr
    http = find_free_port()
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115
    srv = subprocess.Popen([sys.executable, "-m", "adbreak", "server", "--db", db, "--mqtt", f"{host}:{port}",
                            "--host", "127.0.0.1", "--port", str(http)], stdout=log, stderr=subprocess.STDOUT,
                           cwd=ROOT, env={**os.environ, "ADBREAK_SERVER_ADMIN_PASSWORD": ADMIN_PASSWORD,
                                          "ADBREAK_SERVER_DATA_DIR": str(tmp_path / "server-data")})
    base = f"http://127.0.0.1:{http}"
    deadline = time.monotonic() + 30
    while True:
        assert srv.poll() is None, (tmp_path / "server.log").read_text()
        try:
            if _get(f"{base}/api/v1/health")["mqtt"]["connected"]:
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, "server did not come up"
        time.sleep(0.2)
    yield base, host, port
    srv.terminate()
    try:
        srv.wait(10)
    except subprocess.TimeoutExpired:
        srv.kill()
    log.close()


def test_replayed_broadcast_is_stored_muted_and_shown(sample, server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    base, host, port = server
    build_dashboard()
    commands: list[tuple[float, str, str]] = []
    availability: list[str] = []
    lock = threading.Lock()

    watcher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="e2e-watcher")

    def on_connect(client, userdata, flags, rc, props):
        if not rc.is_failure:
            client.subscribe([(f"adbreak/{DEVICE}/mute/set", 1), (f"adbreak/{DEVICE}/available", 1)])

    def on_message(client, userdata, msg):
        with lock:
            if msg.topic.endswith("/available"):
                availability.append(msg.payload.decode())
            else:
                commands.append((time.time(), msg.topic, msg.payload.decode()))

    watcher.on_connect, watcher.on_message = on_connect, on_message
    watcher.connect(host, port)
    watcher.loop_start()

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=require_chromium(), args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        sign_in(page, base)
        expect(page.get_by_test_id("conn-status")).to_have_text("connected", timeout=20000)

        edge_log = open(tmp_path / "edge.log", "wb")  # noqa: SIM115
        edge = subprocess.Popen(
            [sys.executable, "-m", "adbreak", "edge", "--source", str(sample.video), "--device", DEVICE,
             "--mqtt", f"{host}:{port}", "--speed", f"{SPEED:g}", "--state-dir", str(tmp_path / "state")],
            stdout=edge_log, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            # the live view flips to AD during the first break and shows the mute
            expect(page.get_by_test_id(f"device-state-{DEVICE}")).to_have_text("AD", timeout=90000)
            expect(page.get_by_test_id(f"device-muted-{DEVICE}")).to_have_text("MUTED", timeout=10000)
            page.screenshot(path=str(tmp_path / "live-ad.png"), full_page=True)
            shutil.copy(tmp_path / "live-ad.png", ARTIFACTS / "live-ad.png")
            assert edge.wait(timeout=180) == 0, (tmp_path / "edge.log").read_text()[-3000:]
        finally:
            if edge.poll() is None:
                edge.kill()
            edge_log.close()
        expect(page.get_by_test_id(f"device-state-{DEVICE}")).to_have_text("PROGRAM", timeout=10000)
        timeline_ads = page.locator(f'[data-testid="timeline-{DEVICE}"] [data-testid="segment"][data-label="ad"]')
        expect(timeline_ads).to_have_count(2, timeout=10000)
        page.screenshot(path=str(tmp_path / "live-end.png"), full_page=True)
        shutil.copy(tmp_path / "live-end.png", ARTIFACTS / "live-end.png")
        browser.close()
    time.sleep(0.5)
    watcher.loop_stop()

    truth = read_segments(sample.truth)
    true_ads = [s for s in truth if s.label == "ad"]
    api = http_session(base)
    events = api.get(f"{base}/api/v1/events?device={DEVICE}&limit=1000", timeout=5).json()["events"]
    starts = [e for e in events if e["type"] == "ad_start"]
    ends = [e for e in events if e["type"] == "ad_end"]
    assert len(starts) == len(ends) == len(true_ads), events
    for ad, s, e in zip(true_ads, starts, ends, strict=True):
        assert abs(s["boundary_stream_t"] - ad.start) < 1.5, (ad, s)
        assert abs(e["boundary_stream_t"] - ad.end) < 1.5, (ad, e)
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)

    segments = api.get(f"{base}/api/v1/segments?device={DEVICE}&limit=1000", timeout=5).json()["segments"]
    ad_segs = [s for s in segments if s["label"] == "ad"]
    assert len(ad_segs) == len(true_ads)
    for seg, ad in zip(ad_segs, true_ads, strict=True):
        assert seg["status"] == "closed"
        assert abs((seg["end"] - seg["start"]) * SPEED - ad.duration) < 2.0, (seg, ad)
    assert all(s["end"] is None or s["end"] - s["start"] >= 10.0 / SPEED for s in segments)  # no flaps

    payloads = [c[2] for c in commands]
    assert payloads == ["ON", "OFF"] * len(true_ads), commands
    assert availability[0] == "online" and availability[-1] == "stopped", availability
    firings = api.get(f"{base}/api/v1/rules/firings?device={DEVICE}&limit=100", timeout=5).json()["firings"]
    assert [f["action"] for f in firings] == ["mute", "unmute"] * len(true_ads)
    health = _get(f"{base}/api/v1/health")
    assert sum(health["counters"]["rejected"].values()) == 0, health


def test_headless_demo_runs_and_exits_zero(tmp_path):
    """The contract's scripted check: `adbreak demo --speed 10 --duration 60` on embedded defaults (its own amqtt
    broker, SQLite, server, edge agent) stores ad segments and mute firings and exits 0."""
    port = find_free_port()
    proc = subprocess.run([sys.executable, "-m", "adbreak", "demo", "--speed", "10", "--duration", "60", "--port",
                           str(port), "--out", str(tmp_path / "demo"), "-q"], capture_output=True, text=True,
                          timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "embedded (amqtt)" in proc.stdout
    assert f"dashboard:  http://127.0.0.1:{port}/" in proc.stdout
    summary = next(line for line in proc.stdout.splitlines() if line.startswith("stored:"))
    ads = int(summary.split("(")[1].split(" ad")[0])
    assert ads >= 2, summary  # 600 s of replay hold at least four breaks; frames may drop at 10x on a busy machine
    assert "rejected payloads: 0" in summary
