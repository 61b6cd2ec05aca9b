"""Rules in the browser, end to end: a real Mosquitto, ``adbreak server`` as a subprocess on a migrated SQLite file,
a device announced and an ad_start event published as an edge agent would (plain paho), a plain paho subscriber as
the "home" side, and the dashboard in Debian's headless Chromium (Playwright): sign in, create a rule in the form
(an API error shown next to it first), test it, see the rendered MQTT action arrive on a real event and the run
appear live in the audit log. Screenshots go to ``out/test-artifacts/rules-*.png``."""

from __future__ import annotations

import shutil
import time

import pytest

from adbreak.wire import EventPayload, EventType, Topics
from tests.db_support import sqlite_url
from tests.mqtt_support import MqttClient, find_free_port, mosquitto  # noqa: F401 - fixture
from tests.server_support import ServerProcess, http_session
from tests.support import ROOT
from tests.web_support import build_dashboard, launch_chromium, require_chromium, sign_in, wait_until

DEVICE = "tv1"
TOPICS = Topics("adbreak")
ARTIFACTS = ROOT / "out" / "test-artifacts"
PAYLOAD = "{{ label|upper }} on {{ device }} ({{ '%.2f'|format(confidence) }}, {{ trigger }})"


@pytest.fixture
def server(tmp_path, mosquitto):  # noqa: F811
    require_chromium()
    build_dashboard()
    with ServerProcess(tmp_path, (mosquitto.host, mosquitto.port), db=sqlite_url(tmp_path)) as srv:
        yield srv.base, mosquitto


def announce(edge: MqttClient) -> None:
    """What an edge agent publishes on connecting: retained availability ``online`` and its retained state."""
    edge.announce(DEVICE, since=time.time() - 600, model="demo-1")


def event(edge: MqttClient, seq: int, kind: EventType, confidence: float = 0.93) -> EventPayload:
    now = time.time()
    return edge.event(DEVICE, seq, kind, now - 1.5, decided=now, confidence=confidence, model="demo-1")


def shot(page, tmp_path, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("window.scrollTo(0, 0)")  # the sticky top bar stays at the top of a full-page shot
    page.screenshot(path=str(tmp_path / name), full_page=True)
    shutil.copy(tmp_path / name, ARTIFACTS / name)


def test_create_a_rule_in_the_ui_and_see_it_fire(server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    base, broker = server
    edge = MqttClient(broker, "rules-edge")
    home = MqttClient(broker, "rules-home").subscribe("home/#")
    api = http_session(base)
    try:
        announce(edge)
        wait_until(lambda: api.get(f"{base}/api/v1/devices/{DEVICE}", timeout=5).status_code == 200,
                   what="the device announced")
        with sync_playwright() as p:
            browser = launch_chromium(p)
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            problems: list[str] = []
            # Chromium logs every 4xx answer as a console error: the 401 before signing in and the refused save
            # are expected; anything else is not
            page.on("console", lambda m: m.type == "error" and not m.text.startswith("Failed to load resource")
                    and problems.append(f"console: {m.text}"))
            failed: list[str] = []
            page.on("response", lambda r: r.status >= 400 and failed.append(f"{r.request.method} {r.url} {r.status}"))
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            sign_in(page, base)
            page.get_by_test_id("tab-rules").click()
            expect(page.get_by_test_id("view-rules")).to_be_visible()
            expect(page.get_by_test_id("rule-builtin-auto_mute")).to_contain_text("Auto-mute")
            expect(page.get_by_test_id("rules-empty")).to_be_visible()

            # the form: name, trigger, the device, and an MQTT step (one with a wildcard first: refused by the API)
            page.get_by_test_id("rule-new").click()
            page.get_by_test_id("rule-name").fill("Lights during ads")
            page.get_by_test_id("rule-trigger").select_option("ad_start")
            page.get_by_test_id(f"rule-device-{DEVICE}").check()
            page.get_by_test_id("rule-action-topic-0").fill("home/+/lights")
            page.get_by_test_id("rule-action-payload-0").fill(PAYLOAD)
            page.get_by_test_id("rule-action-qos-0").select_option("1")
            page.get_by_test_id("rule-add-delay").click()  # a step added, moved up, and removed again
            expect(page.get_by_test_id("rule-action-1")).to_have_attribute("data-type", "delay")
            page.get_by_test_id("rule-action-up-1").click()
            expect(page.get_by_test_id("rule-action-0")).to_have_attribute("data-type", "delay")
            page.get_by_test_id("rule-action-remove-0").click()
            expect(page.get_by_test_id("rule-action-0")).to_have_attribute("data-type", "mqtt")
            expect(page.get_by_test_id("rule-action-1")).to_have_count(0)
            page.get_by_test_id("rule-template-help").locator("summary").click()
            expect(page.get_by_test_id("rule-template-help")).to_contain_text("{{ iso_time }}")
            page.get_by_test_id("rule-save").click()
            expect(page.get_by_test_id("rule-error")).to_have_text(
                "actions.0.topic: must not contain the MQTT wildcards + or #")
            shot(page, tmp_path, "rules-form-error.png")

            page.get_by_test_id("rule-action-topic-0").fill("home/{{ device }}/lights")
            page.get_by_test_id("rule-save").click()
            expect(page.get_by_test_id("rule-error")).to_have_text("")
            expect(page.get_by_test_id("rule-saved")).to_contain_text("saved")
            row = page.locator('[data-testid="rule-row"][data-rule-name="Lights during ads"]')
            expect(row).to_have_count(1)
            expect(row).to_contain_text("tv1")
            rule = api.get(f"{base}/api/v1/rules", timeout=5).json()["rules"][0]
            assert (rule["trigger"], rule["conditions"]["devices"], rule["created_by"]) == \
                ("ad_start", [DEVICE], "admin")
            assert rule["actions"] == [{"type": "mqtt", "topic": "home/{{ device }}/lights", "payload": PAYLOAD,
                                        "qos": 1, "retain": False}]

            # Test: the saved rule on the device, with its current confidence (0.8 from the state)
            page.get_by_test_id("rule-test-device").select_option(DEVICE)
            page.get_by_test_id("rule-test").click()
            expect(page.get_by_test_id("rule-test-status")).to_have_text("ok")
            expect(page.get_by_test_id("rule-test-result")).to_contain_text("AD on tv1 (0.80, ad_start)")
            wait_until(lambda: home.received(), what="the test's MQTT message")
            assert home.received() == [("home/tv1/lights", "AD on tv1 (0.80, ad_start)", 1, False)]
            shot(page, tmp_path, "rules-form.png")

            # a real ad_start from the edge: the rendered action arrives, and the run shows up live in the log
            ev = event(edge, 1, EventType.AD_START)
            wait_until(lambda: len(home.received()) == 2, what="the rule's MQTT message on the event")
            assert home.received()[1] == ("home/tv1/lights", "AD on tv1 (0.93, ad_start)", 1, False)
            live_row = page.locator('[data-testid="rule-run-row"][data-test="false"]')
            expect(live_row).to_have_count(1)
            expect(live_row).to_have_attribute("data-status", "ok")
            expect(live_row).to_have_attribute("data-rule", "Lights during ads")
            expect(live_row.get_by_test_id("rule-run-detail")).to_contain_text(
                'MQTT home/tv1/lights ← "AD on tv1 (0.93, ad_start)"')
            expect(page.locator('[data-testid="rule-run-row"][data-test="true"]')).to_have_count(1)
            runs = api.get(f"{base}/api/v1/rules/runs", timeout=5).json()["runs"]
            assert [(r["test"], r["status"], r["event_id"]) for r in runs] == [(False, "ok", ev.event_id),
                                                                                 (True, "ok", None)]
            page.get_by_test_id("rule-cancel").click()
            shot(page, tmp_path, "rules-audit.png")

            # switched off in the list: the next break publishes nothing
            page.get_by_test_id(f"rule-enabled-{rule['id']}").uncheck()
            expect(page.get_by_test_id("rules-status")).to_have_text("Lights during ads disabled")
            assert api.get(f"{base}/api/v1/rules/{rule['id']}", timeout=5).json()["enabled"] is False
            event(edge, 2, EventType.AD_END)
            event(edge, 3, EventType.AD_START)
            wait_until(lambda: len(api.get(f"{base}/api/v1/events", timeout=5).json()["events"]) == 3,
                       what="three events stored")
            time.sleep(0.5)
            assert len(home.received()) == 2

            # a narrow screen: no sideways scrolling of the page
            page.set_viewport_size({"width": 390, "height": 900})
            page.get_by_test_id(f"rule-edit-{rule['id']}").click()
            expect(page.get_by_test_id("rule-form")).to_be_visible()
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
            shot(page, tmp_path, "rules-phone.png")
            browser.close()
        assert problems == []
        assert [f for f in failed if not f.startswith(f"GET {base}/api/v1/auth/me ")] == \
            [f"POST {base}/api/v1/rules 400"]
    finally:
        edge.close()
        home.close()
