"""Run every benchmark in bench/ in one profile, in sequence.

    python bench/run_all.py [--profile quick|full] [--only NAME,...] [--list]

``full`` (the default, `make bench`) makes the figures in bench/results/ (hours on a 2-core machine: see
bench/README.md); ``quick`` (`make bench PROFILE=quick`) runs every benchmark at its CI sizes into
bench/results/quick/ (minutes). Each script gets ``--profile``; its sizes for each profile are defined in the script
(``QUICK``; the full ones are its defaults). A benchmark that fails does not stop the others; the exit status is 1
when any failed. The time of each run and the total are printed, and (a whole profile, not ``--only``) written to
``<results>/run_all.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# (script, runs in the full profile, runs in the quick profile): each run is the extra arguments of one invocation
BENCHES: list[tuple[str, list[list[str]], list[list[str]]]] = [
    ("bench_generalise.py", [[]], [[]]),
    ("bench_accuracy.py", [[]], [[]]),
    ("bench_pipeline.py", [[]], [[]]),
    ("bench_train.py", [[]], [[]]),
    ("bench_scan.py", [[]], [[]]),
    ("bench_cues.py", [[]], [[]]),
    ("bench_logo.py", [[]], [[]]),
    ("bench_memory.py", [[]], [[]]),
    ("bench_keyframes.py", [[]], [[]]),
    # live: a device restarted with what it learned (the targets' case), and a brand-new device's first minutes
    ("bench_live.py", [[], ["--first-minutes", "0"]], [[]]),
    ("bench_ingest.py", [[]], [[]]),
    ("bench_browser.py", [[]], [[]]),
    ("bench_failsafe.py", [[]], [[]]),
    ("bench_scale.py", [[]], [[]]),
    ("bench_load.py", [["--devices", "10", "--seconds", "600"], ["--devices", "100", "--seconds", "600"],
                       ["--devices", "1000", "--seconds", "180"]], [[]]),
    ("bench_soak.py", [[]], [[]]),
]


def check_complete() -> None:
    """Every bench_*.py in bench/ is listed: a new benchmark cannot be left out of `make bench` unnoticed."""
    on_disk = {p.name for p in HERE.glob("bench_*.py")}
    listed = {name for name, _, _ in BENCHES}
    if on_disk != listed:
        raise SystemExit(f"run_all.py: BENCHES lacks {sorted(on_disk - listed)} / lists missing "
                         f"{sorted(listed - on_disk)}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", choices=("quick", "full"), default="full")
    ap.add_argument("--only", help="comma-separated script names (bench_live.py or live)")
    ap.add_argument("--list", action="store_true", help="print the runs and exit")
    args = ap.parse_args()
    check_complete()
    chosen = BENCHES
    if args.only:
        wanted = {w if w.startswith("bench_") else f"bench_{w}" for w in args.only.split(",")}
        wanted = {w if w.endswith(".py") else f"{w}.py" for w in wanted}
        unknown = wanted - {name for name, _, _ in BENCHES}
        if unknown:
            ap.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
        chosen = [b for b in BENCHES if b[0] in wanted]
    runs = [(script, extra) for script, full, quick in chosen for extra in (quick if args.profile == "quick" else full)]
    if args.list:
        for script, extra in runs:
            print(" ".join(["python", f"bench/{script}", "--profile", args.profile, *extra]))
        return 0
    results = ROOT / "bench" / "results" / ("quick" if args.profile == "quick" else "")
    timings, failed = [], []
    started = time.perf_counter()
    for script, extra in runs:
        cmd = [sys.executable, str(HERE / script), "--profile", args.profile, *extra]
        shown = " ".join(["python", f"bench/{script}", "--profile", args.profile, *extra])
        print(f"== {shown}", flush=True)
        t = time.perf_counter()
        rc = subprocess.run(cmd, cwd=HERE).returncode
        wall = time.perf_counter() - t
        timings.append({"command": shown, "wall_s": round(wall, 1), "exit": rc})
        print(f"== {shown}: {'ok' if rc == 0 else f'FAILED (exit {rc})'} in {wall:.0f} s", flush=True)
        if rc != 0:
            failed.append(shown)
    total = time.perf_counter() - started
    if not args.only:
        sys.path.insert(0, str(ROOT))
        from adbreak.atomic import write_text

        sys.path.insert(0, str(HERE))
        from common import commit, machine

        write_text(results / "run_all.json", json.dumps({
            "profile": args.profile, "machine": machine(), "commit": commit(), "total_s": round(total, 1),
            "runs": timings}, indent=2) + "\n")
    print(f"== {len(runs)} runs in {total / 60:.1f} min ({args.profile} profile); "
          + (f"{len(failed)} FAILED: {'; '.join(failed)}" if failed else "all ok"), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
