"""A scanned recording in the Review view, in a real browser: ``adbreak server`` as a subprocess, the recording sent
with ``send_recording`` (a hand-made scan with real JPEG thumbnails), and the dashboard in Debian's headless Chromium
(Playwright). The recording is picked under "Recordings" by its file name; its segments and pictures show with times
from its start (0:02:00, not a wall-clock time); a boundary is moved and a segment confirmed exactly as for a device;
the exports and the training set follow; a second recording sent meanwhile appears in the picker (Socket.IO); the
Live view shows no card for it.
Screenshots go to ``out/test-artifacts/``."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from adbreak.scan.upload import send_recording
from tests.db_support import sqlite_url
from tests.recording_support import AD, DURATION, NAME, scan_result
from tests.server_support import ADMIN, ServerProcess
from tests.support import ROOT
from tests.web_support import build_dashboard, launch_chromium, require_chromium, sign_in

ARTIFACTS = ROOT / "out" / "test-artifacts"


@pytest.fixture
def server(tmp_path):
    require_chromium()
    build_dashboard()
    with ServerProcess(tmp_path, wait_mqtt=False, db=sqlite_url(tmp_path)) as srv:  # no broker: a recording needs none
        yield srv


def shot(page, tmp_path: Path, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(tmp_path / name), full_page=True)
    shutil.copy(tmp_path / name, ARTIFACTS / name)


def test_a_scanned_recording_shows_and_is_corrected_in_the_review_view(server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    base = server.base
    api = server.session()
    token = api.post(f"{base}/api/v1/auth/tokens", json={"name": "scan"}, timeout=10).json()["token"]
    sent = send_recording(scan_result(), base, token)
    key = sent["device"]

    def stored():
        return api.get(f"{base}/api/v1/segments", params={"device": key}, timeout=5).json()["segments"]

    with sync_playwright() as p:
        browser = launch_chromium(p)
        ctx = browser.new_context(viewport={"width": 1360, "height": 1000}, locale="en-GB", timezone_id="Asia/Tokyo")
        page = ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        sign_in(page, base)

        # Review: the recording is under "Recordings" in the picker, by its file name
        page.get_by_test_id("tab-history").click()
        picker = page.get_by_test_id("history-device")
        expect(picker.locator("optgroup[label='Recordings'] option")).to_have_text([NAME])
        picker.select_option(label=NAME)
        expect(page).to_have_url(re.compile(r"#/history\?device=rec%3Athe-show-2026-ts-"))
        expect(page.get_by_test_id("history-title")).to_have_text(NAME)
        info = page.get_by_test_id("history-recording-info")
        expect(info).to_contain_text("Recording, 0:10:00 long · 1 ad break found")
        expect(info).to_contain_text(f"{sent['keyframes']} pictures")
        expect(page.get_by_test_id("history-date")).to_be_hidden()  # no day to pick: the whole recording
        expect(page.get_by_test_id("history-firings")).to_be_hidden()

        # its segments, times from its start (whatever the browser's zone)
        bar = page.get_by_test_id("history-timeline")
        segments = bar.get_by_test_id("segment")
        expect(segments).to_have_count(3)
        assert [s.get_attribute("data-label") for s in segments.all()] == ["program", "ad", "program"]
        rows = page.get_by_test_id("history-segment-row")
        expect(rows).to_have_count(3)
        expect(rows.nth(1)).to_contain_text("0:02:00")
        expect(rows.nth(1)).to_contain_text("0:04:00")
        expect(page.get_by_test_id("history-ad-minutes")).to_have_text("2.0")
        expect(page.get_by_test_id("history-totals")).not_to_contain_text("Mutes")  # a recording mutes nothing
        expect(page.get_by_test_id("review-zoom-window")).to_contain_text("0:00:00")
        expect(page.get_by_test_id("review-zoom-fit")).to_have_text("Whole recording")

        # the break's detail: its pictures, from the recording
        rows.nth(1).click()
        expect(page.get_by_test_id("review-detail")).to_be_visible()
        expect(page.get_by_test_id("review-detail-times")).to_have_text("0:02:00 – 0:04:00")
        thumbs = page.get_by_test_id("review-keyframe")
        expect(thumbs).to_have_count(12)  # 14 pictures inside the break, 12 shown
        expect(thumbs.first).to_contain_text("0:02:00")
        first = thumbs.first.locator("img")
        page.wait_for_function("img => img.complete && img.naturalWidth === 384", arg=first.element_handle())
        shot(page, tmp_path, "review-recording.png")

        # correct it as for a device: the break really ended 10 s later (typed as H:MM:SS from the start)
        end_input = page.get_by_test_id("review-move-end")
        expect(end_input).to_have_value("0:04:00")
        end_input.fill("0:04:10")
        page.get_by_test_id("review-move").click()
        expect(page.get_by_test_id("review-note")).to_have_text("Moved to 0:02:00–0:04:10 · saved")
        ad = bar.locator('[data-testid="segment"][data-label="ad"]')
        expect(ad).to_have_attribute("data-end", str(int(AD[1] + 10)))
        expect(ad).to_have_attribute("data-review", "corrected")
        expect(page.get_by_test_id("history-ad-minutes")).to_have_text("2.2")
        rows.nth(0).click()
        page.get_by_test_id("review-confirm").click()
        expect(page.get_by_test_id("review-detail-review")).to_have_text("confirmed")
        corrections = page.get_by_test_id("review-correction-row")
        expect(corrections).to_have_count(2)
        expect(corrections.nth(1)).to_contain_text("AD 0:02:00–0:04:00 + PROGRAM 0:04:00–0:10:00 → "
                                                    "AD 0:02:00–0:04:10 + PROGRAM 0:04:10–0:10:00")
        expect(corrections.nth(1)).to_contain_text(ADMIN)
        expect(page.get_by_test_id("review-error")).to_be_hidden()
        assert [(s["start"], s["end"], s["label"], s["review"]) for s in stored()] == [
            (0.0, AD[0], "program", "confirmed"), (AD[0], AD[1] + 10, "ad", "corrected"),
            (AD[1] + 10, DURATION, "program", "corrected")]
        # a boundary outside the recording is refused with the server's line
        rows.nth(2).click()
        page.get_by_test_id("review-move-end").fill("0:10:30")
        page.get_by_test_id("review-move").click()
        expect(page.get_by_test_id("review-error")).to_contain_text("between 0 and its end")

        # the exports cover the recording and carry its name; the training set has both labels now
        expect(page.get_by_test_id("review-dataset-summary")).to_contain_text("Training set:")
        expect(page.get_by_test_id("export-dataset")).to_have_attribute("href", re.compile(r"device=rec%3A"))
        with page.expect_download() as got:
            page.get_by_test_id("export-edl").click()
        assert got.value.suggested_filename == "The_Show_2026.edl"
        assert Path(got.value.path()).read_text() == f"{AD[0]:.3f}\t{AD[1] + 10:.3f}\t3\n"
        comskip = page.get_by_test_id("export-comskip").get_attribute("href")
        assert "start=0" in comskip and f"end={int(DURATION)}" in comskip and "fps=25" in comskip
        shot(page, tmp_path, "review-recording-corrected.png")

        # another scan sent while the view is open appears in the picker (Socket.IO `recording`)
        send_recording(scan_result("Another show.mp4", thumbnails=False), base, token)
        expect(picker.locator("optgroup[label='Recordings'] option")).to_have_text(["Another show.mp4", NAME])
        # the corrections' pushes made no TV of it in the Live view
        page.get_by_test_id("tab-live").click()
        expect(page.get_by_test_id("live-empty")).to_be_visible()
        expect(page.locator("[data-testid^='device-card-']")).to_have_count(0)
        assert errors == []
        ctx.close()
        browser.close()
