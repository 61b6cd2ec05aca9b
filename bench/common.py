"""Shared set-up for the benchmarks: built broadcasts and trained bundles under bench/.data (reused between runs), the
two profiles, and the result files.

Profiles: every benchmark takes ``--profile quick|full`` (``--quick`` is short for ``--profile quick``). ``full``
(the default) makes the figures: its sizes are the scripts' defaults and its results go to ``bench/results/``.
``quick`` is a CI-sized run of the same code: each script names its quick sizes (``QUICK``), its built inputs are
cached apart (``bench/.data/quick``) and its results go to ``bench/results/quick/`` (ignored by git), so a quick run
never overwrites a figure. Options given on the command line win over either profile's sizes.
"""

from __future__ import annotations

import argparse
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
BENCH_USER = "admin"
BENCH_PASSWORD = "adbreak-bench-password"
PROFILES = ("quick", "full")


def profile_in(argv: list[str]) -> str:
    """The profile a command line asks for (``--quick``, ``--profile quick``, ``--profile=quick``); ``full`` else."""
    for i, a in enumerate(argv):
        if a == "--quick" or a == "--profile=quick" or (a == "--profile" and argv[i + 1 : i + 2] == ["quick"]):
            return "quick"
    return "full"


# read from the command line at import: the cache and result folders below depend on it
PROFILE = profile_in(sys.argv[1:])
_BASE_DATA = Path(os.environ.get("ADBREAK_BENCH_DATA", ROOT / "bench" / ".data"))
DATA = _BASE_DATA / "quick" if PROFILE == "quick" else _BASE_DATA
"""Built broadcasts, trained bundles and scratch files (a quick run's apart from the full run's)."""
RESULTS = ROOT / "bench" / "results" / "quick" if PROFILE == "quick" else ROOT / "bench" / "results"
"""Where this run's result files go: ``bench/results/`` (full) or ``bench/results/quick/``."""
sys.path.insert(0, str(ROOT))


def parse_args(ap: argparse.ArgumentParser, quick: dict[str, Any]) -> argparse.Namespace:
    """Add ``--profile`` / ``--quick`` to ``ap`` and parse; under the quick profile ``quick`` (option dest -> value)
    replaces the defaults, so an option given on the command line still wins."""
    ap.add_argument("--profile", choices=PROFILES, default="full",
                    help="full (default): the figures, into bench/results/; quick: CI-sized ("
                    + ", ".join(f"{k.replace('_', '-')} {v}" for k, v in quick.items())
                    + "), into bench/results/quick/")
    ap.add_argument("--quick", dest="profile", action="store_const", const="quick", help="--profile quick")
    if PROFILE == "quick":
        ap.set_defaults(**quick)
    args = ap.parse_args()
    if args.profile != PROFILE:  # (cannot happen with the two spellings above; a guard for a new one)
        raise SystemExit(f"bench: profile {args.profile!r} read as {PROFILE!r} at import")
    return args


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def broadcast(
    name: str,
    *,
    seed: int,
    duration_s: float,
    pool: str,
    camera: bool = False,
    difficulties: tuple[str, ...] = (),
    channel: str = "ch1",
    folder: Path | None = None,
):
    """Build (or reuse) a broadcast under bench/.data; one built by another builder version is rebuilt."""
    from adbreak.broadcast.builder import BUILDER_VERSION, build_broadcast

    where = folder or DATA
    where.mkdir(parents=True, exist_ok=True)
    meta = where / f"{name}.json"
    if meta.exists() and (where / f"{name}.mp4").exists():
        m = json.loads(meta.read_text())
        if (
            m.get("builder_version") == BUILDER_VERSION
            and m.get("seed") == seed
            and m.get("pool") == pool
            and abs(m.get("duration_s", 0) - duration_s) < 0.1
            and bool(m.get("camera")) == camera
            and sorted(m.get("difficulties") or []) == sorted(difficulties)
            and m.get("channel", "ch1") == channel
        ):
            return where / f"{name}.mp4", where / f"{name}.csv", m
    log(f"building {name} ({duration_s:.0f} s, pool {pool}, seed {seed}{', camera' if camera else ''}"
        f"{', ' + ','.join(difficulties) if difficulties else ''}{', ' + channel if channel != 'ch1' else ''})")
    info = build_broadcast(where, name, seed=seed, duration_s=duration_s, pool=pool, camera=camera,
                           difficulties=frozenset(difficulties), channel=channel, progress=False)
    return info.video, info.truth, json.loads(info.meta.read_text())


def corners_arg(meta: dict[str, Any]) -> list[str]:
    """--corners for a camera-view broadcast (the screen as the camera sees it); nothing for a clean one."""
    if not meta.get("camera"):
        return []
    return ["--corners", ",".join(f"{v:.1f}" for p in meta["screen_corners"] for v in p)]


def adbreak(*args: Any, check: bool = True, quiet: bool = True) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run the real CLI in a new process; returns the result and its wall time."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "adbreak.cli", *map(str, args), *(["-q"] if quiet else [])],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    wall = time.perf_counter() - started
    if check and proc.returncode != 0:
        raise SystemExit(f"adbreak {' '.join(map(str, args))} failed: {proc.stderr.strip()}")
    return proc, wall


TRAINING_CODE = ("adbreak/training", "adbreak/frames.py", "edge/head.py", "edge/bundle.py",
                 "edge/backbone.py", "edge/geometry.py", "edge/assets/backbone.json")
"""What makes a bench model: a cached one made by other code than these files hold now is made again."""


def code_key(paths: tuple[str, ...]) -> str:
    """A hash of the named files (folders: their ``.py`` files), as they are in the working tree."""
    import hashlib

    h = hashlib.sha256()
    for rel in paths:
        p = ROOT / rel
        for f in sorted(p.rglob("*.py")) if p.is_dir() else [p]:
            h.update(str(f.relative_to(ROOT)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def trained_bundle(name: str, video: Path, truth: Path, meta: dict[str, Any], *, fps: float = 2.0) -> Path:
    """Extract frames from a training broadcast and train a bundle on them. Reused only when the cached bundle was
    made from the same broadcast (its builder version and seed) at the same rate by the same training code
    (``.bench-key`` beside it); otherwise made again."""
    import shutil

    bundle = DATA / f"model-{name}"
    frames = DATA / f"frames-{name}"
    key = json.dumps({"video": video.name, "builder_version": meta.get("builder_version"), "seed": meta.get("seed"),
                      "fps": fps, "code": code_key(TRAINING_CODE)}, sort_keys=True)
    stamp = bundle / ".bench-key"
    if (bundle / "bundle.json").exists() and stamp.exists() and stamp.read_text() == key:
        return bundle
    for old in (bundle, frames):
        if old.exists():
            log(f"{old.name} was made from another broadcast or by other code: made again")
            shutil.rmtree(old)
    log(f"extracting {video.name} at {fps} fps")
    adbreak("extract", video, "--segments", truth, "--out", frames, "--fps", fps)
    log(f"training {bundle.name}")
    adbreak("train", frames, "--out", bundle, "--cache-dir", DATA / "cache", *corners_arg(meta))
    stamp.write_text(key)
    return bundle


# the instruction sets that decide the int8 backbone's speed (XNNPACK uses VNNI where the CPU has it)
SIMD_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")


def machine() -> dict[str, Any]:
    cpu = "unknown"
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "simd": [f for f in SIMD_FLAGS if f in flags],
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "when": time.strftime("%Y-%m-%d %H:%M"),
    }


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def commit() -> str:
    """The checked-out commit (``+dirty`` with uncommitted changes to tracked files other than the results), or
    ``unknown``."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT,
                              check=True).stdout.strip()
        # (the result files themselves are left out: a benchmark run rewrites them)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)bench/results"], capture_output=True, text=True, cwd=ROOT,
                               check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def command() -> str:
    """How this benchmark was started, as a user would type it."""
    script = Path(sys.argv[0]).resolve()
    if script.is_relative_to(ROOT):
        script = script.relative_to(ROOT)
    return " ".join(["python", str(script), *sys.argv[1:]])


def write_result(name: str, data: dict[str, Any], markdown: str) -> None:
    """``bench/results/NAME.json`` and ``.md``; each records the machine, the commit and the command that made it."""
    data = {**stamp(), **data}
    from adbreak.atomic import write_text

    write_text(RESULTS / f"{name}.json", json.dumps(data, indent=2) + "\n")
    write_text(RESULTS / f"{name}.md", markdown.rstrip() + "\n\n" + footer(data) + "\n")
    log(f"wrote {(RESULTS / name).relative_to(ROOT)}.json and .md")


def stamp() -> dict[str, Any]:
    """What every result file records: the machine, the commit, the command and the profile."""
    return {"machine": machine(), "commit": commit(), "command": command(), "profile": PROFILE}


def footer(data: dict[str, Any]) -> str:
    m = data["machine"]
    return (f"_Made by `{data['command']}` at commit {data['commit']} on {m['cpu']} "
            f"({', '.join(m.get('simd') or ['no AVX2'])}; {m['cores']} cores), {m['when']}._")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Mosquitto:
    """A private Mosquitto broker on a free port (a context manager)."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Mosquitto:
        import shutil
        import socket

        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 100000\npersistence false\n"
        )
        self.proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise SystemExit("mosquitto did not start")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(5)


class Server:
    """`adbreak server` on a fresh SQLite file migrated by `adbreak db upgrade` (a context manager)."""

    def __init__(self, workdir: Path, mqtt_port: int, *extra: str) -> None:
        self.workdir = workdir
        self.mqtt_port = mqtt_port
        self.port = free_port()
        self.db = f"sqlite:///{workdir / 'adbreak.db'}"
        self.extra = extra
        self.proc: subprocess.Popen | None = None
        self.base = f"http://127.0.0.1:{self.port}"
        self._token: str | None = None

    def __enter__(self) -> Server:
        import urllib.request

        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "adbreak.db").unlink(missing_ok=True)
        adbreak("db", "upgrade", "--db", self.db, quiet=False)
        self.log = open(self.workdir / "server.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "adbreak",
                "server",
                "--db",
                self.db,
                "--mqtt",
                f"127.0.0.1:{self.mqtt_port}",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                *self.extra,
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, "ADBREAK_SERVER_ADMIN_USERNAME": BENCH_USER, "ADBREAK_SERVER_ADMIN_PASSWORD":
                 BENCH_PASSWORD, "ADBREAK_SERVER_DATA_DIR": str(self.workdir / "data")},
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.base}/api/v1/health", timeout=1) as r:
                    if json.loads(r.read()).get("mqtt", {}).get("connected"):
                        return self
            except OSError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"server did not start; see {self.workdir / 'server.log'}")

    def get(self, path: str) -> Any:
        """GET an API path with an API token of the bench's admin (made on first use)."""
        import urllib.request

        if self._token is None:
            proc, _ = adbreak("user", "token", BENCH_USER, "--db", self.db, "--token-name", "bench", quiet=False)
            self._token = proc.stdout.strip().splitlines()[-1]
        req = urllib.request.Request(f"{self.base}{path}", headers={"Authorization": f"Bearer {self._token}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


def percentile(xs: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(xs, dtype=float), q))
