"""The built dashboard (web/dist) in headless Chromium against the real ``adbreak server`` process.

Each test starts ``adbreak server`` (a SQLite file: these tests are about the browser; the engines are covered by the
API and server tests) on a private Mosquitto, signs in through the login form, and drives the page with what an
edge agent publishes over MQTT (availability, state, events, telemetry): the server stores it and pushes it over
Socket.IO, as it does for a user. The live view, a reconnect after the server restarts, the history of the day, and
300 TVs on one page.
"""

from __future__ import annotations

import shutil
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
import pytest

from adbreak.wire import EventPayload, EventType, StatePayload, TelemetryPayload, Topics, new_event_id
from tests.db_support import sqlite_url
from tests.mqtt_support import mosquitto  # noqa: F401 - fixture
from tests.server_support import ServerProcess, http_session
from tests.web_support import build_dashboard, launch_chromium, require_chromium, sign_in, wait_until

sync_api = pytest.importorskip("playwright.sync_api")

DEVICE = "livingroom"
MODEL = "mnv3s-int8+head-2024.06"
TIMEOUT_MS = 10_000
TOPICS = Topics()


class Edge:
    """What edge agents publish, through one connected paho client (QoS 1, acknowledged)."""

    def __init__(self, broker) -> None:
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"dashboard-edge-{time.monotonic_ns()}")
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.seq: dict[str, int] = {}

    def publish(self, topic: str, payload: bytes | str, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def announce(self, device: str, label: str = "program", since: float | None = None, confidence: float = 0.97,
                 online: bool = True) -> None:
        now = time.time()
        self.publish(TOPICS.available(device), "online" if online else "offline", retain=True)
        self.publish(TOPICS.state(device), StatePayload(
            device=device, label=label, since_ts=since if since is not None else now - 600, since_stream_t=0.0,
            confidence=confidence, model_version=MODEL, ts=now).to_bytes(), retain=True)

    def event(self, device: str, kind: str, boundary: float, confidence: float = 0.9) -> None:
        seq = self.seq[device] = self.seq.get(device, 0) + 1
        self.publish(TOPICS.event(device), EventPayload(
            device=device, event_id=new_event_id(), seq=seq, type=EventType(kind), boundary_ts=boundary,
            decided_ts=time.time(), boundary_stream_t=float(seq), decided_stream_t=seq + 1.0, confidence=confidence,
            model_version=MODEL).to_bytes())

    def telemetry(self, device: str, p_ad: float, label: str) -> None:
        self.client.publish(TOPICS.telemetry(device), TelemetryPayload(
            device=device, ts=time.time(), stream_t=1000.0, p_ad=p_ad, smoothed=p_ad, label=label, fps=4.0,
            latency_ms=38.5, dropped=0).to_bytes(), qos=0)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def noon_timezone() -> str:
    """A fixed-offset zone where it is now around midday, so the test's day never straddles local midnight."""
    from datetime import UTC

    hours = (12 - datetime.now(UTC).hour + 12) % 24 - 12  # -12..11
    return "Etc/UTC" if hours == 0 else f"Etc/GMT{-hours:+d}"  # POSIX sign: Etc/GMT-5 is UTC+5


@pytest.fixture
def server(tmp_path, mosquitto):  # noqa: F811
    require_chromium()
    build_dashboard()
    with ServerProcess(tmp_path, (mosquitto.host, mosquitto.port), db=sqlite_url(tmp_path)) as srv:
        srv.broker = mosquitto
        yield srv


@pytest.fixture
def edge(mosquitto):  # noqa: F811
    e = Edge(mosquitto)
    yield e
    e.close()


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


def signed_in(page, base: str) -> None:
    """Sign in through the form; the signed-out page's 401 for ``/auth/me`` (which Chromium logs) is forgotten."""
    sign_in(page, base)
    page.problems.clear()


def local_hms(ts: float, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(ts, tz).strftime("%H:%M:%S")


def stored(srv, device: str, seq: int) -> None:
    api = http_session(srv.base)
    wait_until(lambda: (r := api.get(f"{srv.base}/api/v1/devices/{device}", timeout=5)).status_code == 200
               and r.json()["last_seq"] == seq, what=f"{device}'s events stored")


def test_live_view_follows_what_the_edge_sends(server, edge, page, tmp_path):
    expect = sync_api.expect
    now = time.time()
    # what the server knew before the page opened: an earlier break, program since
    edge.announce(DEVICE, since=now - 1320)
    edge.event(DEVICE, "ad_start", now - 1500, 0.88)
    edge.event(DEVICE, "ad_end", now - 1320)
    stored(server, DEVICE, 2)

    signed_in(page, server.base)
    expect(page.get_by_test_id("conn-status")).to_have_text("connected", timeout=TIMEOUT_MS)
    expect(page.get_by_test_id(f"device-card-{DEVICE}")).to_be_visible()
    expect(page.get_by_test_id(f"device-state-{DEVICE}")).to_have_text("PROGRAM")
    expect(page.get_by_test_id(f"device-muted-{DEVICE}")).to_have_text("NOT MUTED")
    expect(page.get_by_test_id(f"device-availability-{DEVICE}")).to_have_text("online")
    timeline = page.get_by_test_id(f"timeline-{DEVICE}")
    expect(timeline.get_by_test_id("segment")).to_have_count(3)  # from REST: program, ad, program (open)
    assert timeline.locator(":scope > *").count() == 3  # one child per segment, nothing else

    # an ad starts: telemetry, then the event; the server closes the program segment, opens an ad one, mutes
    chart = page.get_by_test_id(f"chart-{DEVICE}")
    for i in range(8):
        edge.telemetry(DEVICE, 0.1 + 0.1 * i, "program" if i < 6 else "ad")
        time.sleep(0.25)  # one telemetry batch each (the server pushes every 0.2 s)
    ad_start = time.time() - 2
    edge.announce(DEVICE, label="ad", since=ad_start, confidence=0.93)
    edge.event(DEVICE, "ad_start", ad_start, 0.93)

    expect(page.get_by_test_id(f"device-state-{DEVICE}")).to_have_text("AD")
    expect(page.get_by_test_id(f"device-muted-{DEVICE}")).to_have_text("MUTED")
    firing = wait_until(lambda: [f for f in http_session(server.base).get(
        f"{server.base}/api/v1/rules/firings?device={DEVICE}", timeout=5).json()["firings"]
        if f["reason"] == "ad_start" and f["ts"] > ad_start - 1], what="the auto-mute firing")[-1]
    expect(page.get_by_test_id(f"device-firing-{DEVICE}")).to_contain_text(
        f"mute (ad start) at {local_hms(firing['ts'], page.tz)}")
    expect(page.get_by_test_id(f"device-confidence-{DEVICE}")).to_have_text("93%")
    expect(page.get_by_test_id(f"device-model-{DEVICE}")).to_have_text(MODEL)
    ad = timeline.locator('[data-testid="segment"][data-label="ad"][data-status="open"]')
    expect(ad).to_have_count(1)
    assert float(ad.get_attribute("data-start")) == pytest.approx(ad_start)
    assert ad.get_attribute("data-end") == ""
    expect(timeline.locator('[data-testid="segment"][data-label="ad"]')).to_have_count(2)
    expect(timeline.locator('[data-testid="segment"][data-label="program"][data-status="closed"]')).to_have_count(2)
    expect(chart.locator("canvas")).to_have_count(1)
    wait_until(lambda: int(chart.get_attribute("data-points") or 0) >= 6, what="the chart's points")

    # the open ad segment grows with the clock
    width0 = ad.evaluate("el => el.getBoundingClientRect().width")
    since0 = page.get_by_test_id(f"device-since-{DEVICE}").text_content()
    wait_until(lambda: ad.evaluate("el => el.getBoundingClientRect().width") > width0, timeout=5,
               what="open segment to grow")
    wait_until(lambda: page.get_by_test_id(f"device-since-{DEVICE}").text_content() != since0, timeout=5, what="tick")

    # a device the page has not seen yet arrives by the server's `device` push alone
    edge.announce("bedroom", since=time.time() - 7200, online=False)
    expect(page.get_by_test_id("device-availability-bedroom")).to_have_text("offline")
    expect(page.get_by_test_id("device-state-bedroom")).to_have_text("PROGRAM")

    page.wait_for_timeout(400)
    shot = tmp_path / "dashboard-live.png"
    page.screenshot(path=str(shot), full_page=True)
    shutil.copy(shot, "/tmp/dashboard-live.png")
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    page.wait_for_timeout(300)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling

    origin = server.base + "/"
    assert all(u.startswith(origin) for u in page.requests), [u for u in page.requests if not u.startswith(origin)]
    assert page.problems == []


def test_reconnects_and_reloads_after_the_server_restarts(server, edge, page, tmp_path):
    expect = sync_api.expect
    now = time.time()
    edge.announce(DEVICE, since=now - 60)
    stored_ok = http_session(server.base)
    wait_until(lambda: stored_ok.get(f"{server.base}/api/v1/devices/{DEVICE}", timeout=5).status_code == 200,
               what="the device stored")
    signed_in(page, server.base)
    expect(page.get_by_test_id("conn-status")).to_have_text("connected", timeout=TIMEOUT_MS)
    expect(page.get_by_test_id(f"device-state-{DEVICE}")).to_have_text("PROGRAM")

    # the server goes away; meanwhile an ad starts (the broker keeps the event in the server's session)
    server.__exit__(None, None, None)
    expect(page.get_by_test_id("conn-status")).not_to_have_text("connected", timeout=TIMEOUT_MS)
    ad_start = time.time() - 1
    edge.announce(DEVICE, label="ad", since=ad_start)
    edge.event(DEVICE, "ad_start", ad_start)
    again = ServerProcess(tmp_path, (server.broker.host, server.broker.port), db=server.db, port=server.port)
    with again:
        # the new hello and the REST answers bring in what the page missed (the session cookie is still good)
        expect(page.get_by_test_id("conn-status")).to_have_text("connected", timeout=30_000)
        expect(page.get_by_test_id(f"device-state-{DEVICE}")).to_have_text("AD", timeout=TIMEOUT_MS)
        expect(page.get_by_test_id(f"device-muted-{DEVICE}")).to_have_text("MUTED", timeout=TIMEOUT_MS)
        expect(page.get_by_test_id(f"timeline-{DEVICE}").locator('[data-label="ad"][data-status="open"]')
               ).to_have_count(1)
    # Chromium logs the failed socket and REST calls of the outage as console errors: those only
    assert all("ERR_CONNECTION_REFUSED" in p or "Failed to load resource" in p or "WebSocket" in p
               for p in page.problems), page.problems


def test_history_view_shows_the_day(server, edge, page, tmp_path):
    expect = sync_api.expect
    now = time.time()
    edge.announce("kitchen", since=now - 3600)
    edge.announce(DEVICE, since=now - 3600)
    for start, end in ((now - 3000, now - 2820), (now - 1200, now - 1110)):  # 3 min and 1.5 min
        edge.event(DEVICE, "ad_start", start)
        edge.event(DEVICE, "ad_end", end)
    stored(server, DEVICE, 4)
    firings = http_session(server.base).get(f"{server.base}/api/v1/rules/firings?device={DEVICE}",
                                            timeout=5).json()["firings"]

    signed_in(page, server.base)
    page.goto(f"{server.base}/#/history")
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
    expect(rows.nth(4)).to_contain_text("open")
    expect(page.get_by_test_id("history-breaks")).to_have_text("2")
    expect(page.get_by_test_id("history-ad-minutes")).to_have_text("4.5")
    expect(page.get_by_test_id("history-firing-row")).to_have_count(len(firings))
    expect(page.get_by_test_id("history-timeline").get_by_test_id("segment")).to_have_count(5)

    # a live break for the shown day is merged in
    edge.event(DEVICE, "ad_start", time.time() - 1)
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


def test_live_view_with_hundreds_of_devices_draws_and_fetches_only_near_the_screen(server, edge, page):
    """300 TVs: every badge stays current, but only the cards near the screen fetch their day and draw their chart
    and timeline (at 1,000 TVs, drawing and fetching for all of them left the page seconds behind:
    bench/results/load.md); a card scrolled to is drawn and loaded then."""
    expect = sync_api.expect
    names = [f"tv{i:03d}" for i in range(300)]
    for name in names:
        edge.announce(name)
    api = http_session(server.base)
    wait_until(lambda: len(api.get(f"{server.base}/api/v1/devices", timeout=10).json()["devices"]) == 300,
               timeout=60, what="300 devices stored")
    signed_in(page, server.base)
    expect(page.get_by_test_id("conn-status")).to_have_text("connected", timeout=TIMEOUT_MS)
    expect(page.locator('[data-testid^="device-card-"]')).to_have_count(300, timeout=TIMEOUT_MS)
    first, last = names[0], names[-1]
    expect(page.get_by_test_id(f"timeline-{first}").locator('[data-label="program"]')).to_have_count(1)
    expect(page.get_by_test_id(f"chart-{first}").locator("canvas")).to_have_count(1)

    # telemetry from all of them, then the last TV (far below the screen) goes to an ad
    for name in names:
        edge.telemetry(name, 0.1, "program")
    edge.announce(last, label="ad", since=time.time() - 1)
    edge.event(last, "ad_start", time.time() - 1)
    expect(page.get_by_test_id(f"device-state-{last}")).to_have_text("AD", timeout=TIMEOUT_MS)
    expect(page.get_by_test_id(f"device-muted-{last}")).to_have_text("MUTED", timeout=TIMEOUT_MS)
    expect(page.get_by_test_id(f"device-detector-{first}")).to_contain_text("4.0 fps")
    page.wait_for_timeout(1500)  # two ticks of the live view's clock

    day_fetches = [u for u in page.requests if "/api/v1/segments" in u]
    assert 0 < len(day_fetches) <= 40, f"{len(day_fetches)} day fetches for 300 TVs"
    assert not any(f"device={last}" in u for u in day_fetches)
    assert not [u for u in page.requests if "/api/v1/devices/" in u]  # every TV came with hello: no lookups
    assert page.get_by_test_id(f"chart-{last}").locator("canvas").count() == 0

    page.get_by_test_id(f"device-card-{last}").scroll_into_view_if_needed()
    expect(page.get_by_test_id(f"chart-{last}").locator("canvas")).to_have_count(1, timeout=TIMEOUT_MS)
    expect(page.get_by_test_id(f"timeline-{last}").locator('[data-label="ad"]')).to_have_count(1)
    assert any(f"device={last}" in u for u in page.requests if "/api/v1/segments" in u)
    assert page.problems == []
