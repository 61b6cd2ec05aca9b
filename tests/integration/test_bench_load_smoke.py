"""The load and soak benchmarks still run end to end (so they cannot rot): `bench/bench_load.py --quick` with a real
Mosquitto, a real server process and headless Chromium, and a short `bench/bench_soak.py`; results into tmp_path."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import SERVICES_REQUIRED

ROOT = Path(__file__).resolve().parents[2]

needs_tools = pytest.mark.skipif(
    not SERVICES_REQUIRED and shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists()
    or (shutil.which("chromium") is None and not Path("/usr/bin/chromium").exists())
    or not (ROOT / "web" / "dist" / "index.html").exists(),
    reason="needs mosquitto, chromium and the built dashboard (make web)")


def run_bench(script: str, *args: str, tmp_path: Path, timeout: float) -> str:
    """Run a bench script in its own process group (killed whole on a timeout: broker, server, browser)."""
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / script), *args, "--out", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT / "bench",
                            start_new_session=True, env={**os.environ, "ADBREAK_BENCH_DATA": str(tmp_path / "data")})
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"{script} took more than {timeout:.0f} s:\n{out[-3000:]}")
    assert proc.returncode == 0, out[-3000:]
    return out


@needs_tools
def test_bench_load_quick(tmp_path):
    run_bench("bench_load.py", "--quick", tmp_path=tmp_path, timeout=300)
    run = json.loads((tmp_path / "load.json").read_text())["runs"]["5"]
    assert run["quick"] is True  # the quick profile's sizes (bench_load.QUICK), into its own results
    s = run["sustained"]
    assert s["published"]["telemetry"] > 0 and s["published"]["event"] > 0
    assert s["server_events_ingested"] == s["published"]["event"] + run["probe_events"]
    assert run["events_lost"] == 0
    assert run["latency_publish_to_browser_ms"]["n"] >= run["probe_events"] - 1
    assert run["browser_missing"] <= 1
    assert run["server_resources"]["samples"] >= 5 and run["server_resources"]["rss_first_quarter_mb"] > 0
    flood = run["flood"]
    assert flood["server_events_ingested"] == flood["published"]["event"]
    assert 0 < flood["server_to_broker_ratio"] <= 1.5
    assert run["db"]["bytes_per_device_day"] > 0
    md = (tmp_path / "load.md").read_text()
    assert "| 5 (quick) |" in md and "bench_load.py --quick" in md


def test_bench_soak_short(tmp_path):
    run_bench("bench_soak.py", "--devices", "4", "--hours", "3", "--horizon-h", "1", tmp_path=tmp_path, timeout=120)
    data = json.loads((tmp_path / "soak.json").read_text())
    on, off = data["runs"]["retention-incremental-vacuum"], data["runs"]["no-retention"]
    assert on["events_stored"] == on["events_published"] > 0
    assert on["retention_deleted"]["events"] > 0 and on["retention_deleted"]["rule_firings"] > 0
    # with retention the rows stay near one horizon's worth; without, they pile up
    assert on["hourly"][-1]["events"] < off["hourly"][-1]["events"]
    assert [h["sim_h"] for h in on["hourly"]] == [1, 2, 3]
    assert "Accelerated 24-hour soak" in (tmp_path / "soak.md").read_text()
