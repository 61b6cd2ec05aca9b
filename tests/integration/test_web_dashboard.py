"""The built dashboard (web/dist) in headless Chromium against a small real python-socketio server.

The server here is a test fixture, not the product: it serves web/dist, answers the REST endpoints the dashboard
reads (``/api/v1/devices``, ``/api/v1/devices/<name>``, ``/api/v1/segments``, ``/api/v1/rules/firings``) from
in-memory lists, and emits the Socket.IO events of docs/api.md (``hello`` on connect, then ``device``,
``segment``, ``telemetry``, ``firing``) with synthetic payloads shaped like the contract's.
"""

from __future__ import annotations

import math
import random
import shutil
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.web_support import build_dashboard, launch_chromium, require_chromium, wait_until

socketio = pytest.importorskip("socketio")
flask = pytest.importorskip("flask")
werkzeug_serving = pytest.importorskip("werkzeug.serving")
sync_api = pytest.importorskip("playwright.sync_api")

DEVICE = "livingroom"
MODEL = "mnv3s-int8+head-2024.06"
TIMEOUT_MS = 10_000


def device_payload(name, *, availability="online", label="program", since, confidence=0.9, muted=False, now):
    return {
        "name": name,
        "availability": availability,
        "state": None if label is None else {"label": label, "since": since, "confidence": confidence},
        "model_version": MODEL,
        "last_seen": now,
        "muted": muted,
        "last_seq": 7,
    }


class FixtureServer:
    """web/dist + a minimal REST API + a real Socket.IO server (threading mode) on a free local port."""

    def __init__(self, dist: Path) -> None:
        self.devices: dict[str, dict] = {}
        self.segments: list[dict] = []
        self.firings: list[dict] = []
        self.sids: list[str] = []
        self.hellos = 0
        self.lock = threading.Lock()

        self.sio = socketio.Server(async_mode="threading")
        app = flask.Flask(__name__, static_folder=None)
        self._routes(app, dist)

        @self.sio.event
        def connect(sid, environ, auth=None):
            with self.lock:
                self.sids.append(sid)
                self.hellos += 1
                devices = list(self.devices.values())
            self.sio.emit("hello", {"devices": devices}, to=sid)

        @self.sio.event
        def disconnect(sid, reason=None):
            with self.lock:
                if sid in self.sids:
                    self.sids.remove(sid)

        self.http = werkzeug_serving.make_server("127.0.0.1", 0, socketio.WSGIApp(self.sio, app), threaded=True)
        self.url = f"http://127.0.0.1:{self.http.server_port}"
        self.thread = threading.Thread(target=self.http.serve_forever, name="dashboard-fixture", daemon=True)

    def _routes(self, app, dist: Path) -> None:
        def window(items, start_key, end_key):
            q = flask.request.args
            device = q.get("device")
            start = float(q.get("start", "-inf"))
            end = float(q.get("end", "inf"))
            out = []
            for it in items:
                lo = it[start_key]
                hi = it[end_key] if end_key else lo
                if device and it["device"] != device:
                    continue
                if lo >= end or (hi is not None and hi < start):
                    continue
                out.append(it)
            return sorted(out, key=lambda it: it[start_key])[: int(q.get("limit", "1000"))]

        @app.get("/api/v1/auth/me")
        def me():  # the dashboard asks who is signed in first; this fixture stands for a signed-in session
            return {"user": {"id": 1, "username": "admin", "is_admin": True}, "csrf_token": "fixture"}

        @app.get("/api/v1/devices")
        def devices():
            with self.lock:
                return {"devices": list(self.devices.values())}

        @app.get("/api/v1/devices/<name>")
        def one_device(name):
            with self.lock:
                if name not in self.devices:
                    return {"error": f"unknown device {name!r}"}, 404
                return self.devices[name]

        @app.get("/api/v1/segments")
        def segments():
            with self.lock:
                return {"segments": window(self.segments, "start", "end")}

        @app.get("/api/v1/rules/firings")
        def firings():
            with self.lock:
                return {"firings": window(self.firings, "ts", None)}

        @app.get("/api/v1/corrections")
        def corrections():  # the review view lists the day's corrections; this fixture stores none
            return {"corrections": []}

        @app.get("/api/v1/dataset/summary")
        def dataset_summary():  # the review view's export panel; this fixture has no reviewed keyframes
            return {"frames": 0, "labels": {}, "trainable": False, "problem": "no reviewed keyframes"}

        @app.get("/")
        def index():
            return flask.send_from_directory(dist, "index.html")

        @app.get("/<path:path>")
        def static(path):
            return flask.send_from_directory(dist, path)

    def start(self) -> FixtureServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.http.shutdown()
        self.http.server_close()
        self.thread.join(timeout=10)

    def emit(self, event: str, payload: dict) -> None:
        """Store what the real server would store, then push it to every browser."""
        with self.lock:
            if event == "device":
                self.devices[payload["name"]] = payload
            elif event == "segment":
                self.segments = [s for s in self.segments if s["id"] != payload["id"]] + [payload]
            elif event == "firing":
                self.firings.append(payload)
        self.sio.emit(event, payload)


def segment(id_, label, start, end, status=None, confidence=0.9):
    return {
        "id": id_,
        "device": DEVICE,
        "label": label,
        "start": start,
        "end": end,
        "status": status or ("open" if end is None else "closed"),
        "confidence": confidence,
        "model_version": MODEL,
    }


def firing(id_, action, reason, ts):
    return {
        "id": id_,
        "device": DEVICE,
        "rule": "auto_mute",
        "action": action,
        "reason": reason,
        "topic": f"adbreak/{DEVICE}/mute/set",
        "payload": "ON" if action == "mute" else "OFF",
        "ts": ts,
        "event_id": None,
    }


def telemetry_series(now: float, ad_from: float, seconds: int = 300):
    """One sample a second ending at ``now``: program-like scores, rising into an ad at ``ad_from``."""
    rng = random.Random(3)
    smoothed = 0.1
    label = "program"
    out = []
    for i in range(seconds):
        ts = now - seconds + 1 + i
        base = 0.92 if ts >= ad_from else 0.08 + 0.06 * math.sin(i / 9)
        p = min(1.0, max(0.0, base + rng.gauss(0, 0.07)))
        smoothed += 0.25 * (p - smoothed)
        if label == "program" and smoothed >= 0.7:
            label = "ad"
        out.append(
            {
                "device": DEVICE,
                "ts": ts,
                "stream_t": 1000.0 + i,
                "p_ad": round(p, 4),
                "smoothed": round(smoothed, 4),
                "label": label,
                "fps": 4.0,
                "latency_ms": 38.5,
                "dropped": 0,
            }
        )
    return out


def noon_timezone() -> str:
    """A fixed-offset zone where it is now around midday, so the test's day never straddles local midnight."""
    hours = (12 - datetime.now(UTC).hour + 12) % 24 - 12  # -12..11
    return "Etc/UTC" if hours == 0 else f"Etc/GMT{-hours:+d}"  # POSIX sign: Etc/GMT-5 is UTC+5


@pytest.fixture(scope="session")
def dist() -> Path:
    require_chromium()
    return build_dashboard()


@pytest.fixture
def server(dist):
    srv = FixtureServer(dist).start()
    yield srv
    srv.stop()


@pytest.fixture
def browser():
    with sync_api.sync_playwright() as p:
        b = launch_chromium(p)
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    tz = noon_timezone()
    ctx = browser.new_context(viewport={"width": 1360, "height": 1000}, locale="en-GB", timezone_id=tz)
    pg = ctx.new_page()
    pg.tz = ZoneInfo(tz)
    pg.problems = []
    pg.requests = []
    pg.on("pageerror", lambda e: pg.problems.append(f"pageerror: {e}"))
    pg.on("console", lambda m: m.type == "error" and pg.problems.append(f"console: {m.text}"))
    pg.on("request", lambda r: pg.requests.append(r.url))
    yield pg
    ctx.close()


def local_hms(ts: float, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(ts, tz).strftime("%H:%M:%S")


def test_live_view_follows_socket_events(server, page, tmp_path):
    expect = sync_api.expect
    now = time.time()
    ad_start = now - 40
    # what the server knew before the page opened: an earlier break, program since
    server.devices[DEVICE] = device_payload(DEVICE, label="program", since=now - 1320, confidence=0.97, now=now)
    server.segments += [
        segment(1, "program", now - 2400, now - 1500),
        segment(2, "ad", now - 1500, now - 1320, confidence=0.88),
        segment(3, "program", now - 1320, None),
    ]
    server.firings += [firing(1, "mute", "ad_start", now - 1498), firing(2, "unmute", "ad_end", now - 1318)]

    page.goto(server.url + "/")
    expect(page.get_by_test_id("conn-status")).to_have_text("connected", timeout=TIMEOUT_MS)
    card = page.get_by_test_id(f"device-card-{DEVICE}")
    expect(card).to_be_visible()
    expect(page.get_by_test_id(f"device-state-{DEVICE}")).to_have_text("PROGRAM")
    expect(page.get_by_test_id(f"device-muted-{DEVICE}")).to_have_text("NOT MUTED")
    expect(page.get_by_test_id(f"device-availability-{DEVICE}")).to_have_text("online")
    timeline = page.get_by_test_id(f"timeline-{DEVICE}")
    expect(timeline.get_by_test_id("segment")).to_have_count(3)  # from REST
    assert timeline.locator(":scope > *").count() == 3  # one child per segment, nothing else

    # the socket session upgrades to a WebSocket (socket.io-client 4 <-> python-socketio 5)
    wait_until(lambda: server.sids and server.sio.transport(server.sids[0]) == "websocket", what="websocket upgrade")

    # an ad starts: telemetry, the program segment closes, an ad segment opens, the state and auto-mute follow
    for t in telemetry_series(now, ad_start):
        server.emit("telemetry", [t])  # a batch, as the server sends: one sample per device
    server.emit("segment", segment(3, "program", now - 1320, ad_start))
    server.emit("segment", segment(4, "ad", ad_start, None, confidence=0.93))
    server.emit("device", device_payload(DEVICE, label="ad", since=ad_start, confidence=0.93, muted=True, now=now))
    server.emit("firing", firing(3, "mute", "ad_start", ad_start + 2))

    expect(page.get_by_test_id(f"device-state-{DEVICE}")).to_have_text("AD")
    expect(page.get_by_test_id(f"device-muted-{DEVICE}")).to_have_text("MUTED")
    expect(page.get_by_test_id(f"device-firing-{DEVICE}")).to_contain_text(
        f"mute (ad start) at {local_hms(ad_start + 2, page.tz)}"
    )
    expect(page.get_by_test_id(f"device-confidence-{DEVICE}")).to_have_text("93%")
    expect(page.get_by_test_id(f"device-model-{DEVICE}")).to_have_text(MODEL)
    ad = timeline.locator('[data-testid="segment"][data-label="ad"][data-status="open"]')
    expect(ad).to_have_count(1)
    assert float(ad.get_attribute("data-start")) == pytest.approx(ad_start)
    assert ad.get_attribute("data-end") == ""
    expect(timeline.locator('[data-testid="segment"][data-label="ad"]')).to_have_count(2)
    closed = timeline.locator('[data-testid="segment"][data-label="program"][data-status="closed"]')
    expect(closed).to_have_count(2)
    chart = page.get_by_test_id(f"chart-{DEVICE}")
    expect(chart.locator("canvas")).to_have_count(1)
    wait_until(lambda: int(chart.get_attribute("data-points") or 0) >= 290, what="the chart's points")

    # the open ad segment grows with the clock
    width0 = ad.evaluate("el => el.getBoundingClientRect().width")
    since0 = page.get_by_test_id(f"device-since-{DEVICE}").text_content()
    wait_until(
        lambda: ad.evaluate("el => el.getBoundingClientRect().width") > width0, timeout=5, what="open segment to grow"
    )
    wait_until(lambda: page.get_by_test_id(f"device-since-{DEVICE}").text_content() != since0, timeout=5, what="tick")

    # a device the page has not seen yet arrives by a `device` event alone
    server.emit(
        "device", device_payload("bedroom", availability="offline", label="program", since=now - 7200, now=now - 600)
    )
    expect(page.get_by_test_id("device-availability-bedroom")).to_have_text("offline")
    expect(page.get_by_test_id("device-state-bedroom")).to_have_text("PROGRAM")

    for t in telemetry_series(time.time(), ad_start)[-3:]:
        server.emit("telemetry", [t])  # a batch, as the server sends: one sample per device
    page.wait_for_timeout(400)
    shot = tmp_path / "dashboard-live.png"
    page.screenshot(path=str(shot), full_page=True)
    shutil.copy(shot, "/tmp/dashboard-live.png")
    page.emulate_media(color_scheme="dark")
    page.wait_for_timeout(300)
    page.screenshot(path=str(tmp_path / "dashboard-live-dark.png"), full_page=True)
    shutil.copy(tmp_path / "dashboard-live-dark.png", "/tmp/dashboard-live-dark.png")
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    page.wait_for_timeout(300)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling
    page.screenshot(path=str(tmp_path / "dashboard-live-phone.png"), full_page=True)
    shutil.copy(tmp_path / "dashboard-live-phone.png", "/tmp/dashboard-live-phone.png")

    origin = server.url + "/"
    assert all(u.startswith(origin) for u in page.requests), [u for u in page.requests if not u.startswith(origin)]
    assert page.problems == []


def test_reconnects_and_reloads_after_server_disconnect(server, page):
    expect = sync_api.expect
    now = time.time()
    server.devices[DEVICE] = device_payload(DEVICE, label="program", since=now - 60, now=now)
    page.goto(server.url + "/#/live")
    expect(page.get_by_test_id("conn-status")).to_have_text("connected", timeout=TIMEOUT_MS)
    sid = wait_until(lambda: server.sids and server.sids[0], what="a socket session")
    # (disconnecting in the middle of the WebSocket upgrade would make Chromium log a console error)
    wait_until(lambda: server.sio.transport(sid) == "websocket", what="websocket upgrade")

    # while the browser is away the server learns of an ad; the new hello and REST answers must bring it in
    server.devices[DEVICE] = device_payload(DEVICE, label="ad", since=now - 5, muted=True, now=now)
    server.segments.append(segment(9, "ad", now - 5, None))
    server.sio.disconnect(sid)
    wait_until(lambda: server.hellos >= 2, what="the dashboard to reconnect")
    expect(page.get_by_test_id("conn-status")).to_have_text("connected", timeout=TIMEOUT_MS)
    expect(page.get_by_test_id(f"device-state-{DEVICE}")).to_have_text("AD")
    expect(page.get_by_test_id(f"device-muted-{DEVICE}")).to_have_text("MUTED")
    expect(page.get_by_test_id(f"timeline-{DEVICE}").locator('[data-label="ad"][data-status="open"]')).to_have_count(1)
    assert page.problems == []


def test_history_view_shows_the_day(server, page, tmp_path):
    expect = sync_api.expect
    now = time.time()
    server.devices[DEVICE] = device_payload(DEVICE, label="program", since=now - 600, now=now)
    server.devices["kitchen"] = {**device_payload("kitchen", label=None, since=None, now=now), "name": "kitchen"}
    server.segments += [
        segment(1, "program", now - 3600, now - 3000),
        segment(2, "ad", now - 3000, now - 2820, confidence=0.91),  # 3 min
        segment(3, "program", now - 2820, now - 1200),
        segment(4, "ad", now - 1200, now - 1110, status="interrupted", confidence=0.8),  # 1.5 min
        segment(5, "program", now - 1110, None),
    ]
    server.firings += [
        firing(1, "mute", "ad_start", now - 2998),
        firing(2, "unmute", "ad_end", now - 2818),
        firing(3, "mute", "ad_start", now - 1198),
        firing(4, "unmute", "offline", now - 1110),
    ]
    page.goto(server.url + "/#/history")
    expect(page.get_by_test_id("conn-status")).to_have_text("connected", timeout=TIMEOUT_MS)
    expect(page.get_by_test_id("view-history")).to_be_visible()
    expect(page.get_by_test_id("history-device")).to_have_value("kitchen")  # first by name
    page.get_by_test_id("history-device").select_option(DEVICE)
    today = datetime.fromtimestamp(now, page.tz).strftime("%Y-%m-%d")
    expect(page.get_by_test_id("history-date")).to_have_value(today)
    assert f"device={DEVICE}" in page.url and f"date={today}" in page.url

    rows = page.get_by_test_id("history-segment-row")
    expect(rows).to_have_count(5)
    expect(rows.nth(1)).to_contain_text(local_hms(now - 3000, page.tz))
    expect(rows.nth(1)).to_contain_text("3m 00s")
    expect(rows.nth(3)).to_contain_text("interrupted")
    expect(rows.nth(4)).to_contain_text("open")
    expect(page.get_by_test_id("history-breaks")).to_have_text("2")
    expect(page.get_by_test_id("history-ad-minutes")).to_have_text("4.5")
    expect(page.get_by_test_id("history-firing-row")).to_have_count(4)
    expect(page.get_by_test_id("history-timeline").get_by_test_id("segment")).to_have_count(5)

    # a live segment event for the shown day is merged in
    server.emit("segment", segment(5, "program", now - 1110, now - 10))
    server.emit("segment", segment(6, "ad", now - 10, None))
    expect(rows).to_have_count(6)
    expect(page.get_by_test_id("history-breaks")).to_have_text("3")

    # another day: nothing stored
    page.get_by_test_id("history-date").fill("2020-01-01")
    expect(page.get_by_test_id("history-segment-row")).to_have_count(0)
    expect(page.get_by_test_id("history-breaks")).to_have_text("0")
    page.go_back()
    expect(rows).to_have_count(6)
    page.screenshot(path=str(tmp_path / "dashboard-history.png"), full_page=True)
    shutil.copy(tmp_path / "dashboard-history.png", "/tmp/dashboard-history.png")
    assert page.problems == []


def test_live_view_with_hundreds_of_devices_draws_and_fetches_only_near_the_screen(server, page):
    """300 TVs: every badge stays current, but only the cards near the screen fetch their day and draw their chart
    and timeline (at 1,000 TVs, drawing and fetching for all of them left the page seconds behind:
    bench/results/load.md); a card scrolled to is drawn and loaded then."""
    expect = sync_api.expect
    now = time.time()
    names = [f"tv{i:03d}" for i in range(300)]
    for i, name in enumerate(names):
        server.devices[name] = device_payload(name, label="program", since=now - 600, now=now)
        server.segments.append({**segment(i + 1, "program", now - 600, None), "device": name})
    page.goto(server.url + "/#/live")
    expect(page.get_by_test_id("conn-status")).to_have_text("connected", timeout=TIMEOUT_MS)
    expect(page.locator('[data-testid^="device-card-"]')).to_have_count(300, timeout=TIMEOUT_MS)
    first, last = names[0], names[-1]
    expect(page.get_by_test_id(f"timeline-{first}").locator('[data-label="program"]')).to_have_count(1)
    expect(page.get_by_test_id(f"chart-{first}").locator("canvas")).to_have_count(1)

    # one telemetry list for all of them, then the last TV (far below the screen) goes to an ad
    server.emit("telemetry", [{**telemetry_series(now, now + 60, seconds=1)[0], "device": n} for n in names])
    server.emit("device", device_payload(last, label="ad", since=now, muted=True, now=now))
    expect(page.get_by_test_id(f"device-state-{last}")).to_have_text("AD", timeout=TIMEOUT_MS)
    expect(page.get_by_test_id(f"device-muted-{last}")).to_have_text("MUTED")
    expect(page.get_by_test_id(f"device-detector-{first}")).to_contain_text("4.0 fps")
    page.wait_for_timeout(1500)  # two ticks of the live view's clock

    day_fetches = [u for u in page.requests if "/api/v1/segments" in u]
    assert 0 < len(day_fetches) <= 40, f"{len(day_fetches)} day fetches for 300 TVs"
    assert not any(f"device={last}" in u for u in day_fetches)
    assert not [u for u in page.requests if "/api/v1/devices/" in u]  # every TV came with hello: no lookups
    assert page.get_by_test_id(f"chart-{last}").locator("canvas").count() == 0

    page.get_by_test_id(f"device-card-{last}").scroll_into_view_if_needed()
    expect(page.get_by_test_id(f"chart-{last}").locator("canvas")).to_have_count(1, timeout=TIMEOUT_MS)
    expect(page.get_by_test_id(f"timeline-{last}").locator('[data-label="program"]')).to_have_count(1)
    assert any(f"device={last}" in u for u in page.requests if "/api/v1/segments" in u)
    assert page.problems == []
