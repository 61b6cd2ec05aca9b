"""Shared set-up for the benchmarks: built broadcasts and trained bundles under bench/.data (reused between runs)."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("ADBREAK_BENCH_DATA", ROOT / "bench" / ".data"))
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def broadcast(name: str, *, seed: int, duration_s: float, pool: str, camera: bool = False):
    """Build (or reuse) a broadcast under bench/.data."""
    from adbreak.broadcast.builder import build_broadcast

    DATA.mkdir(parents=True, exist_ok=True)
    meta = DATA / f"{name}.json"
    if meta.exists() and (DATA / f"{name}.mp4").exists():
        m = json.loads(meta.read_text())
        if m.get("seed") == seed and m.get("pool") == pool and abs(m.get("duration_s", 0) - duration_s) < 0.1 and \
                bool(m.get("camera")) == camera:
            return DATA / f"{name}.mp4", DATA / f"{name}.csv", m
    log(f"building {name} ({duration_s:.0f} s, pool {pool}, seed {seed}{', camera' if camera else ''})")
    info = build_broadcast(DATA, name, seed=seed, duration_s=duration_s, pool=pool, camera=camera, progress=False)
    return info.video, info.truth, json.loads(info.meta.read_text())


def corners_arg(meta: dict[str, Any]) -> list[str]:
    """--corners for a camera-view broadcast (the screen as the camera sees it); nothing for a clean one."""
    if not meta.get("camera"):
        return []
    return ["--corners", ",".join(f"{v:.1f}" for p in meta["screen_corners"] for v in p)]


def adbreak(*args: Any, check: bool = True) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run the real CLI in a new process; returns the result and its wall time."""
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "adbreak.cli", *map(str, args), "-q"], capture_output=True, text=True,
                          cwd=ROOT)
    wall = time.perf_counter() - started
    if check and proc.returncode != 0:
        raise SystemExit(f"adbreak {' '.join(map(str, args))} failed: {proc.stderr.strip()}")
    return proc, wall


def trained_bundle(name: str, video: Path, truth: Path, meta: dict[str, Any], *, fps: float = 2.0) -> Path:
    """Extract frames from a training broadcast and train a bundle on them (reused when present)."""
    bundle = DATA / f"model-{name}"
    if (bundle / "bundle.json").exists():
        return bundle
    frames = DATA / f"frames-{name}"
    if not frames.exists():
        log(f"extracting {video.name} at {fps} fps")
        adbreak("extract", video, "--segments", truth, "--out", frames, "--fps", fps)
    log(f"training {bundle.name}")
    adbreak("train", frames, "--out", bundle, "--cache-dir", DATA / "cache", *corners_arg(meta))
    return bundle


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "when": time.strftime("%Y-%m-%d %H:%M")}


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def write_result(name: str, data: dict[str, Any], markdown: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {"machine": machine(), **data}
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
    (RESULTS / f"{name}.md").write_text(markdown.rstrip() + "\n")
    log(f"wrote bench/results/{name}.json and .md")
