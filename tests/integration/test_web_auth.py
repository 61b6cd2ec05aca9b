"""Sign-in in the real dashboard: the real server process, Debian Chromium through Playwright."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.db_support import sqlite_url
from tests.server_support import ADMIN, ADMIN_PASSWORD, ServerProcess
from tests.support import ROOT
from tests.web_support import build_dashboard, launch_chromium, require_chromium, sign_in

ARTIFACTS = ROOT / "out" / "test-artifacts"


@pytest.fixture
def server(tmp_path):
    build_dashboard()
    require_chromium()
    with ServerProcess(tmp_path, wait_mqtt=False, db=sqlite_url(tmp_path)) as srv:  # no broker needed for sign-in
        yield srv


def test_sign_in_account_and_sign_out(server, tmp_path: Path):
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(f"{server.base}/#/live")
        expect(page.get_by_test_id("view-login")).to_be_visible()
        expect(page.get_by_test_id("view-live")).to_be_hidden()
        page.get_by_test_id("login-username").fill(ADMIN)
        page.get_by_test_id("login-password").fill("wrong password")
        page.get_by_test_id("login-submit").click()
        expect(page.get_by_test_id("login-error")).to_have_text("wrong user name or password")
        page.screenshot(path=str(ARTIFACTS / "login-error.png"))

        sign_in(page, server.base)
        expect(page.get_by_test_id("user-name")).to_have_text(ADMIN)
        expect(page.get_by_test_id("conn-status")).to_have_text("connected", timeout=15000)  # the socket is let in

        page.reload()  # the session survives a reload
        expect(page.get_by_test_id("view-live")).to_be_visible(timeout=15000)
        expect(page.get_by_test_id("view-login")).to_be_hidden()

        page.get_by_test_id("tab-account").click()
        expect(page.get_by_test_id("users-panel")).to_be_visible()
        page.get_by_test_id("token-name").fill("home assistant")
        page.get_by_test_id("token-create").click()
        expect(page.get_by_test_id("token-value")).to_contain_text("adb_")
        token = page.get_by_test_id("token-value").locator(".mono").inner_text()
        expect(page.get_by_test_id("token-rows")).to_contain_text("home assistant")
        page.screenshot(path=str(ARTIFACTS / "account.png"), full_page=True)

        import requests

        r = requests.get(f"{server.base}/api/v1/devices", headers={"Authorization": f"Bearer {token}"}, timeout=5)
        assert r.status_code == 200

        page.get_by_test_id("sign-out").click()
        expect(page.get_by_test_id("view-login")).to_be_visible()
        page.reload()
        expect(page.get_by_test_id("view-login")).to_be_visible()  # signed out for good
        assert requests.get(f"{server.base}/api/v1/devices", timeout=5).status_code == 401
        page.get_by_test_id("login-username").fill(ADMIN)
        page.get_by_test_id("login-password").fill(ADMIN_PASSWORD)
        page.get_by_test_id("login-submit").click()
        expect(page.get_by_test_id("view-account")).to_be_visible()  # back where the user was
        browser.close()
