"""Test support: the real clips, and running the real `adbreak` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

# a built replay of a minute or two has breaks and shows far shorter than real TV: shorter minimum lengths for both
# deciders, and no hold of a new device's break ends for promos (a run of 40-90 s would end inside the 16-s hold; the
# hold is tested in tests/unit/test_fusion.py and by the live end-to-end and generalisation tests)
SHORT_REPLAY_ENV = {
    "ADBREAK_EDGE_DECISION": json.dumps({"min_program_s": 10.0}),
    "ADBREAK_EDGE_FUSION": json.dumps({"min_program_s": 10.0, "min_break_s": 5.0, "promo_prior_breaks": 0}),
}


ROOT = Path(__file__).resolve().parent.parent
SERVICES_REQUIRED = os.environ.get("ADBREAK_REQUIRE_SERVICES") == "1"
"""``ADBREAK_REQUIRE_SERVICES=1`` (CI: ``.ci/run``): a missing Mosquitto, PostgreSQL, Redis or FFmpeg fails the test
that needs it instead of skipping it, so a machine that lacks one cannot pass by running less."""


def missing_service(what: str) -> None:
    """Skip the test for a missing service or program, or fail it under ``ADBREAK_REQUIRE_SERVICES=1``."""
    import pytest

    if SERVICES_REQUIRED:
        pytest.fail(f"{what} (ADBREAK_REQUIRE_SERVICES=1)")
    pytest.skip(what)
MEDIA = Path(os.environ.get("ADBREAK_MEDIA", ROOT.parent / "shared" / "media"))
BUNDLED_MEDIA = ROOT / "adbreak" / "broadcast" / "media"


def media(name: str) -> Path:
    """A real clip: ../shared/media when present, else the compact copy the package ships."""
    shared = next(MEDIA.glob(f"**/{name}*"), None) if MEDIA.is_dir() else None
    return shared if shared is not None else next(BUNDLED_MEDIA.glob(f"{name}*"))


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``adbreak ARGS`` as a user would (a new process), capturing output."""
    return subprocess.run(
        [sys.executable, "-m", "adbreak.cli", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def wait_for(predicate: Callable[[], object], timeout: float = 5.0, interval: float = 0.02, what: str = "") -> object:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout`` seconds."""
    import pytest

    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(interval)
