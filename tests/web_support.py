"""Test support for the browser dashboard (``web/``): build it once per session, find Debian's Chromium, launch it.

Nothing here downloads a browser: Playwright drives the system ``chromium`` package (``apt-get install chromium``)
through ``executable_path``. Where node/npm or Chromium is missing the dashboard tests are skipped, unless
``ADBREAK_REQUIRE_WEB=1`` is set (CI that promises both), which turns the skip into a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from tests.support import wait_for

ROOT = Path(__file__).resolve().parent.parent
WEB = ROOT / "web"
DIST = WEB / "dist"

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

_build_lock = threading.Lock()
_built: Path | None = None


def missing(what: str) -> None:
    """Skip the test for a missing tool, or fail when ``ADBREAK_REQUIRE_WEB=1``."""
    if os.environ.get("ADBREAK_REQUIRE_WEB") == "1":
        pytest.fail(f"{what} (ADBREAK_REQUIRE_WEB=1)")
    pytest.skip(what)


def find_chromium() -> str | None:
    """Debian's Chromium: ``chromium`` on PATH, else ``/usr/bin/chromium``; None when neither exists."""
    found = shutil.which("chromium")
    if found:
        return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None


def require_chromium() -> str:
    path = find_chromium()
    if path is None:
        missing("Chromium is not installed (apt-get install -y chromium)")
    return path  # type: ignore[return-value]


def _npm(*args: str, timeout: float) -> None:
    npm = shutil.which("npm")
    if npm is None:
        missing("npm (Node.js) is not installed")
    proc = subprocess.run(
        [npm, *args, "--no-audit", "--no-fund"] if args[0] == "ci" else [npm, *args],
        cwd=WEB,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "CI": "1", "NO_COLOR": "1"},
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"npm {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )


def build_dashboard() -> Path:
    """Build ``web/dist`` (``npm ci`` first when ``web/node_modules`` is missing) once per test session."""
    global _built
    with _build_lock:
        if _built is None:
            if not (WEB / "node_modules").is_dir():
                _npm("ci", timeout=600)
            _npm("run", "build", timeout=300)
            if not (DIST / "index.html").is_file():
                raise RuntimeError(f"npm run build wrote no {DIST / 'index.html'}")
            _built = DIST
        return _built


def launch_chromium(playwright, **kwargs):
    """A headless system Chromium under Playwright (never ``playwright install``)."""
    return playwright.chromium.launch(executable_path=require_chromium(), args=CHROMIUM_ARGS, headless=True, **kwargs)


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05, what: str = "condition"):
    """:func:`tests.support.wait_for` with the dashboard tests' longer default timeout."""
    return wait_for(predicate, timeout=timeout, interval=interval, what=what)


def sign_in(page, base_url: str, username: str = "admin", password: str = "adbreak-test-password") -> None:
    """Open the dashboard at ``base_url`` and sign in through the form (the server's first admin by default,
    ``tests.server_support.ADMIN`` / ``ADMIN_PASSWORD``); returns once the live view shows."""
    page.goto(f"{base_url}/#/live")
    page.get_by_test_id("login-username").fill(username)
    page.get_by_test_id("login-password").fill(password)
    page.get_by_test_id("login-submit").click()
    page.get_by_test_id("view-live").wait_for(state="visible", timeout=15_000)
