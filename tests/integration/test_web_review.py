"""Review and Statistics in the browser, end to end: a real Mosquitto, ``adbreak server`` as a subprocess on a
migrated SQLite file, its day seeded by MQTT messages published as an edge agent would, and the dashboard in Debian's
headless Chromium (Playwright): sign in, read the day's ad minutes in Statistics, open Review, zoom, relabel a break
as program, split and merge a segment, and see the statistics follow. Screenshots go to ``out/test-artifacts/``."""

from __future__ import annotations

import re
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from adbreak.wire import EventPayload, EventType, StatePayload, Topics, new_event_id
from tests.db_support import sqlite_url
from tests.mqtt_support import find_free_port, mosquitto  # noqa: F401 - fixture
from tests.server_support import ADMIN, ServerProcess, http_session
from tests.support import ROOT
from tests.web_support import build_dashboard, launch_chromium, require_chromium, sign_in, wait_until

DEVICE = "tv-review"
ARTIFACTS = ROOT / "out" / "test-artifacts"


def noon_timezone() -> str:
    """A fixed-offset zone where it is now around midday, so "today" holds the seeded hour in the browser."""
    hours = (12 - datetime.now(UTC).hour + 12) % 24 - 12
    return "Etc/UTC" if hours == 0 else f"Etc/GMT{-hours:+d}"


@pytest.fixture
def server(tmp_path, mosquitto):  # noqa: F811
    require_chromium()
    build_dashboard()
    # the seeded history is published now, minutes after it happened: taken as live (late_event_s), so that the
    # auto-mute acts on the recent break and Review shows its mute markers
    with ServerProcess(tmp_path, (mosquitto.host, mosquitto.port), env={"ADBREAK_SERVER_LATE_EVENT_S": "3600"},
                       db=sqlite_url(tmp_path)) as srv:
        yield srv.base, mosquitto


def seed_as_an_edge(broker, now: float) -> None:
    """What an edge agent publishes: online, its state (program for an hour), and two breaks as events."""
    topics = Topics("adbreak")
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{DEVICE}-seed")
    client.connect(broker.host, broker.port)
    client.loop_start()
    sent = [client.publish(topics.available(DEVICE), "online", qos=1, retain=True)]
    state = StatePayload(device=DEVICE, label="program", since_ts=now - 3600, since_stream_t=0.0, confidence=0.93,
                         model_version="demo-1", ts=now)
    sent.append(client.publish(topics.state(DEVICE), state.to_bytes(), qos=1, retain=True))
    # 3 min and 1.5 min; the second recent enough (under max_ad_s) for the auto-mute rule to mute and unmute
    breaks = [(now - 2400, now - 2220, 0.97), (now - 300, now - 210, 0.81)]
    seq = 0
    for start, end, conf in breaks:
        for kind, at in ((EventType.AD_START, start), (EventType.AD_END, end)):
            seq += 1
            ev = EventPayload(device=DEVICE, event_id=new_event_id(), seq=seq, type=kind, boundary_ts=at,
                              decided_ts=at + 1.5, boundary_stream_t=at - now + 3600,
                              decided_stream_t=at - now + 3601.5, confidence=conf, model_version="demo-1")
            sent.append(client.publish(topics.event(DEVICE), ev.to_bytes(), qos=1))
    for info in sent:
        info.wait_for_publish(5)
    client.loop_stop()
    client.disconnect()


def shot(page, tmp_path, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(tmp_path / name), full_page=True)
    shutil.copy(tmp_path / name, ARTIFACTS / name)


def test_relabel_in_review_changes_the_statistics(server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    base, broker = server
    now = time.time()
    seed_as_an_edge(broker, now)
    api = http_session(base)

    def stored():
        return api.get(f"{base}/api/v1/segments?device={DEVICE}", timeout=5).json().get("segments", [])

    wait_until(lambda: len(stored()) == 5, timeout=20, what="the seeded segments")
    assert [s["label"] for s in stored()] == ["program", "ad", "program", "ad", "program"]

    with sync_playwright() as p:
        browser = launch_chromium(p)
        zone = noon_timezone()  # the API's "today" below is asked in the same zone (at 00:10 UTC the UTC day is empty)
        ctx = browser.new_context(viewport={"width": 1360, "height": 1000}, locale="en-GB", timezone_id=zone)
        page = ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        sign_in(page, base)

        # Statistics before: 4.5 ad minutes in two breaks
        page.goto(f"{base}/#/stats?device={DEVICE}&range=day")
        expect(page.get_by_test_id("view-stats")).to_be_visible()
        expect(page.get_by_test_id("stats-ad-minutes")).to_have_text("4.5", timeout=10_000)
        expect(page.get_by_test_id("stats-breaks")).to_have_text("2")
        expect(page.get_by_test_id("stats-break-longest")).to_have_text("3m 00s")
        expect(page.get_by_test_id("stats-day-ad-minutes")).to_have_text(["4.5"])
        assert int(page.get_by_test_id("stats-chart-hour").get_attribute("data-bars")) == 24
        expect(page.get_by_test_id("stats-chart-hour").locator("canvas")).to_have_count(1)
        shot(page, tmp_path, "review-stats-before.png")

        # Review: the day's timeline, zoom in and out
        page.goto(f"{base}/#/history?device={DEVICE}")
        bar = page.get_by_test_id("history-timeline")
        expect(bar.get_by_test_id("segment")).to_have_count(5, timeout=10_000)
        assert bar.locator(":scope > *").count() == 5
        expect(page.get_by_test_id("confidence-bar")).to_have_count(5)
        markers = page.get_by_test_id("mute-marker")
        expect(markers).to_have_count(2)
        assert [m.get_attribute("data-action") for m in markers.all()] == ["mute", "unmute"]
        window = page.get_by_test_id("review-zoom-window")
        fitted = window.text_content()  # the view opens zoomed to the segments
        assert "24h" not in fitted
        page.get_by_test_id("review-zoom-in").click()
        expect(window).not_to_have_text(fitted)
        page.get_by_test_id("review-zoom-out").click()
        expect(window).to_have_text(fitted)
        page.get_by_test_id("review-zoom-fit").click()
        expect(window).to_contain_text("(24h 00m)")
        page.get_by_test_id("review-zoom-range").fill("60")
        expect(window).not_to_contain_text("24h")
        page.get_by_test_id("review-zoom-data").click()
        expect(window).not_to_contain_text("24h")

        # click the 3-minute break: its detail panel
        ad = bar.locator('[data-testid="segment"][data-label="ad"]').first
        ad_id = ad.get_attribute("data-id")
        on_timeline(page, ad)
        detail = page.get_by_test_id("review-detail")
        expect(detail).to_be_visible()
        expect(page.get_by_test_id("review-detail-label")).to_have_text("AD")
        expect(page.get_by_test_id("review-detail-confidence")).to_have_text("97%")
        expect(page.get_by_test_id("review-detail-model")).to_have_text("demo-1")
        expect(page.get_by_test_id("review-no-keyframes").or_(page.get_by_test_id("review-keyframes"))).to_be_visible()
        shot(page, tmp_path, "review-detail.png")

        # relabel it as program
        page.get_by_test_id("review-relabel").click()
        relabelled = bar.locator(f'[data-testid="segment"][data-id="{ad_id}"]')
        expect(relabelled).to_have_attribute("data-label", "program")
        expect(relabelled).to_have_attribute("data-review", "corrected")
        expect(page.get_by_test_id("review-detail-review")).to_have_text("corrected")
        rows = page.get_by_test_id("review-correction-row")
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text(ADMIN)
        expect(rows.first).to_contain_text("relabel")
        expect(page.get_by_test_id("history-ad-minutes")).to_have_text("1.5")
        stored_ad = next(s for s in stored() if str(s["id"]) == ad_id)
        assert (stored_ad["label"], stored_ad["detected_label"], stored_ad["reviewed_by"]) == ("program", "ad", ADMIN)

        # the open segment cannot be corrected
        open_id = bar.locator('[data-testid="segment"][data-status="open"]').get_attribute("data-id")
        page.locator(f'[data-testid="history-segment-row"][data-id="{open_id}"]').click()
        expect(page.get_by_test_id("review-relabel")).to_be_disabled()

        # split the program after it at a typed time, the part after the split as ad; then merge them back
        program = bar.locator('[data-testid="segment"][data-label="program"]').nth(2)
        start = float(program.get_attribute("data-start"))
        on_timeline(page, program)
        split_at = datetime.fromtimestamp(start + 120, page_zone(page)).strftime("%H:%M:%S")
        page.get_by_test_id("review-split-at").fill(split_at)
        page.get_by_test_id("review-split-label").select_option("ad")
        page.get_by_test_id("review-split").click()
        expect(bar.get_by_test_id("segment")).to_have_count(6)
        expect(bar.locator('[data-testid="segment"][data-label="ad"]')).to_have_count(2)
        expect(page.get_by_test_id("review-error")).to_be_hidden()
        expect(rows).to_have_count(2)
        page.get_by_test_id("review-merge-next").click()  # keeps the selected segment's label: program
        expect(bar.get_by_test_id("segment")).to_have_count(5)
        expect(bar.locator('[data-testid="segment"][data-label="ad"]')).to_have_count(1)
        expect(rows).to_have_count(3)

        # move the start of the remaining break 30 s later (typed as +30): 90 s of ad become 60 s
        last_ad = bar.locator('[data-testid="segment"][data-label="ad"]')
        ad_start = float(last_ad.get_attribute("data-start"))
        on_timeline(page, last_ad)
        page.get_by_test_id("review-move-start").fill("+30")
        page.get_by_test_id("review-move").click()
        expect(page.get_by_test_id("review-note")).to_have_text(re.compile(r"^Moved to .* saved$"))
        expect(last_ad).to_have_attribute("data-start", str(ad_start + 30) if (ad_start + 30) % 1 else
                                          str(int(ad_start + 30)))
        expect(page.get_by_test_id("history-ad-minutes")).to_have_text("1.0")
        expect(rows).to_have_count(4)
        # a refused correction shows the server's one-line error
        page.get_by_test_id("review-move-start").fill("+300")
        page.get_by_test_id("review-move").click()
        expect(page.get_by_test_id("review-error")).to_contain_text("shorter than 1 s")
        shot(page, tmp_path, "review-view.png")

        # the day's exports download with the session: the corrected segments as a Kodi EDL (one ad break left)
        expect(page.get_by_test_id("review-dataset-summary")).to_contain_text("Training set")
        with page.expect_download() as got:
            page.get_by_test_id("export-edl").click()
        edl = Path(got.value.path()).read_text().strip().splitlines()
        assert len(edl) == 1 and edl[0].endswith("\t3"), edl
        start_s, end_s, _ = edl[0].split("\t")
        assert float(end_s) - float(start_s) == pytest.approx(60.0, abs=0.01)

        # Statistics after: 1 break of 60 s
        page.goto(f"{base}/#/stats?device={DEVICE}&range=day")
        expect(page.get_by_test_id("stats-ad-minutes")).to_have_text("1.0", timeout=10_000)
        expect(page.get_by_test_id("stats-breaks")).to_have_text("1")
        expect(page.get_by_test_id("stats-break-longest")).to_have_text("1m 00s")
        page.get_by_test_id("stats-device").select_option("")  # all devices
        expect(page.get_by_test_id("stats-device-row")).to_have_count(1)
        expect(page.get_by_test_id("stats-ad-minutes")).to_have_text("1.0")
        page.get_by_test_id("stats-range").select_option("week")
        expect(page.get_by_test_id("stats-day-row")).to_have_count(7)
        shot(page, tmp_path, "review-stats-after.png")
        after = api.get(f"{base}/api/v1/stats", params={"device": DEVICE, "tz": zone}, timeout=5).json()
        assert after["ad_s"] == pytest.approx(60.0, abs=0.01) and after["breaks"]["count"] == 1
        assert errors == []
        ctx.close()
        browser.close()


def on_timeline(page, segment) -> None:
    """Click a segment block of the timeline (scrolled to the top first: the sticky header must not cover it)."""
    page.evaluate("window.scrollTo(0, 0)")
    segment.click()


def page_zone(page):
    from zoneinfo import ZoneInfo

    return ZoneInfo(page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone"))
