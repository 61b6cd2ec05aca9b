"""The Devices view in the browser, end to end: a real Mosquitto, ``adbreak server`` as a subprocess on a migrated
SQLite file, devices announced (availability, state with its model version, the retained ``settings/state``) by a
plain paho client as an edge agent would, a plain paho subscriber for the ``settings/set`` commands, and the dashboard
in Debian's headless Chromium (Playwright). Screenshots go to ``out/test-artifacts/devices-*.png``."""

from __future__ import annotations

import json
import shutil
import time

import pytest

from adbreak.wire import DecisionSettings, Kind, SettingsStatePayload, StatePayload, Topics, parse_settings_set
from server.device_settings import BUILTIN_DEFAULTS
from tests.db_support import sqlite_url
from tests.edge_mqtt_support import Recorder, publish
from tests.mqtt_support import find_free_port, mosquitto  # noqa: F401 - fixture
from tests.server_support import ServerProcess, http_session
from tests.support import ROOT
from tests.web_support import build_dashboard, launch_chromium, require_chromium, sign_in, wait_until

TOPICS = Topics("adbreak")
ARTIFACTS = ROOT / "out" / "test-artifacts"
DEFAULTS = {**BUILTIN_DEFAULTS, "min_program_s": 12.0}  # the device's own configuration changed one


@pytest.fixture
def server(tmp_path, mosquitto):  # noqa: F811
    require_chromium()
    build_dashboard()
    with ServerProcess(tmp_path, (mosquitto.host, mosquitto.port), db=sqlite_url(tmp_path)) as srv:
        yield srv.base, mosquitto


def announce(broker, device: str, model: str) -> None:
    now = time.time()
    publish(broker, TOPICS.available(device), "online", retain=True)
    publish(broker, TOPICS.state(device), StatePayload(device=device, label="program", since_ts=now - 600,
                                                       since_stream_t=0.0, confidence=0.8, model_version=model,
                                                       ts=now).to_bytes(), retain=True)


def report(broker, device: str, **overrides) -> None:
    """The edge's retained settings/state: running its defaults with ``overrides`` on top."""
    payload = SettingsStatePayload(device=device, settings=DecisionSettings(**{**DEFAULTS, **overrides}),
                                   defaults=DecisionSettings(**DEFAULTS), overrides=overrides, ts=time.time())
    publish(broker, TOPICS.settings_state(device), payload.to_bytes(), retain=True)


def shot(page, tmp_path, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(tmp_path / name), full_page=True)
    shutil.copy(tmp_path / name, ARTIFACTS / name)


def test_devices_view_shows_the_model_and_edits_settings(server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    base, broker = server
    commands = Recorder(broker, TOPICS.wildcard(Kind.SETTINGS_SET))
    api = http_session(base)
    try:
        announce(broker, "tv1", "demo-20261123T110000Z")
        report(broker, "tv1")
        announce(broker, "tv2", "older-model")  # an agent that reports no settings
        wait_until(lambda: (api.get(f"{base}/api/v1/devices/tv1/settings", timeout=5).json().get("reported")),
                   what="tv1's settings reported")
        with sync_playwright() as p:
            browser = launch_chromium(p)
            page = browser.new_page(viewport={"width": 1280, "height": 1100})
            problems: list[str] = []
            page.on("console", lambda m: m.type == "error" and not m.text.startswith("Failed to load resource")
                    and problems.append(f"console: {m.text}"))
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            sign_in(page, base)
            page.get_by_test_id("tab-devices").click()
            expect(page.get_by_test_id("view-devices")).to_be_visible()

            expect(page.get_by_test_id("devices-model-tv1")).to_have_text("demo-20261123T110000Z")
            expect(page.get_by_test_id("devices-model-tv2")).to_have_text("older-model")
            expect(page.get_by_test_id("devices-availability-tv1")).to_have_text("online")
            expect(page.get_by_test_id("devices-state-tv1")).to_have_text("program")
            expect(page.get_by_test_id("devices-pending-tv1")).to_have_text("in effect")
            expect(page.get_by_test_id("devices-pending-tv2")).to_have_text("not reported")
            enter = page.get_by_test_id("devices-input-tv1-enter_threshold")
            expect(enter).to_have_attribute("placeholder", "0.7")
            expect(enter).to_have_value("")
            expect(page.get_by_test_id("devices-input-tv1-min_program_s")).to_have_attribute("placeholder", "12")
            expect(page.get_by_test_id("devices-overridden-tv1-enter_threshold")).to_have_text("")
            cards = page.locator('[data-testid^="devices-card-"]')
            expect(cards).to_have_count(2)
            assert cards.evaluate_all("els => els.map(e => e.dataset.testid)") == ["devices-card-tv1",
                                                                                   "devices-card-tv2"]

            # a threshold edited and saved: the command goes out, the view says it is pending on the device
            enter.fill("0.8")
            expect(page.get_by_test_id("devices-status-tv1")).to_have_text("unsaved changes")
            page.get_by_test_id("devices-save-tv1").click()
            expect(page.get_by_test_id("devices-status-tv1")).to_have_text("saved: sent to the device")
            assert commands.wait_for(lambda ms: len(ms) == 1, 5), "no settings/set"
            msg = commands.messages[0]
            assert msg.topic == TOPICS.settings_set("tv1") and msg.qos == 1 and not msg.retain
            assert parse_settings_set(msg.payload, "tv1").changes() == {
                **{k: None for k in BUILTIN_DEFAULTS}, "enter_threshold": 0.8}
            expect(page.get_by_test_id("devices-pending-tv1")).to_have_text("pending on device")
            expect(page.get_by_test_id("devices-overridden-tv1-enter_threshold")).to_have_text("custom")
            expect(page.get_by_test_id("devices-reported-tv1-enter_threshold")).to_have_text("device runs 0.7")
            shot(page, tmp_path, "devices-pending.png")

            # the edge applies it and reports: the view follows live (Socket.IO)
            report(broker, "tv1", enter_threshold=0.8)
            expect(page.get_by_test_id("devices-pending-tv1")).to_have_text("in effect")
            expect(page.get_by_test_id("devices-reported-tv1-enter_threshold")).to_have_text("")
            expect(enter).to_have_value("0.8")

            # settings that do not fit together: the API's error, nothing sent
            page.get_by_test_id("devices-input-tv1-exit_threshold").fill("0.9")
            page.get_by_test_id("devices-save-tv1").click()
            expect(page.get_by_test_id("devices-status-tv1")).to_contain_text(
                "must be greater than exit_threshold")
            time.sleep(0.3)
            assert len(commands.messages) == 1
            shot(page, tmp_path, "devices-error.png")

            # reset: every field back to the device's default
            page.get_by_test_id("devices-reset-tv1").click()
            expect(page.get_by_test_id("devices-status-tv1")).to_have_text("saved: sent to the device")
            assert commands.wait_for(lambda ms: len(ms) == 2, 5)
            assert parse_settings_set(commands.messages[1].payload, "tv1").changes() == {
                k: None for k in BUILTIN_DEFAULTS}
            expect(enter).to_have_value("")
            expect(page.get_by_test_id("devices-input-tv1-exit_threshold")).to_have_value("")
            body = api.get(f"{base}/api/v1/devices/tv1/settings", timeout=5).json()
            assert body["desired"] == {} and body["pending"] is True
            report(broker, "tv1")
            expect(page.get_by_test_id("devices-pending-tv1")).to_have_text("in effect")

            # the auto-mute switch: off in the page -> off in the API and on the Home Assistant state topic
            switch_state = Recorder(broker, "adbreak/tv1/automute/state")
            toggle = page.get_by_test_id("devices-auto-mute-tv1")
            expect(toggle).to_be_checked()
            toggle.uncheck()
            expect(page.get_by_test_id("devices-auto-mute-note-tv1")).to_contain_text("off")
            assert api.get(f"{base}/api/v1/devices/tv1", timeout=5).json()["auto_mute"] is False
            assert switch_state.wait_for(lambda ms: any(m.payload == b"OFF" for m in ms), 5)
            toggle.check()
            expect(page.get_by_test_id("devices-auto-mute-note-tv1")).to_have_text("on")
            assert api.get(f"{base}/api/v1/devices/tv1", timeout=5).json()["auto_mute"] is True
            assert switch_state.wait_for(lambda ms: ms and ms[-1].payload == b"ON", 5)
            switch_state.close()

            # a phone-sized screen: no sideways scrolling
            page.set_viewport_size({"width": 390, "height": 900})
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
            shot(page, tmp_path, "devices-phone.png")
            page.set_viewport_size({"width": 1280, "height": 1100})
            shot(page, tmp_path, "devices.png")
            assert problems == [], problems
            browser.close()
        stored = api.get(f"{base}/api/v1/devices", timeout=5).json()["devices"]
        assert [d["settings"]["pending"] for d in stored] == [False, False]
        assert json.loads(json.dumps(stored[0]["settings"]["defaults"])) == DEFAULTS
    finally:
        commands.close()
