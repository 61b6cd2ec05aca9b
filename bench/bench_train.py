"""`adbreak train` on 5,000 frames: cold (empty bottleneck cache) and warm (cache filled by the cold run).

The frames are extracted from the 30-minute `heldout` recording `bench_pipeline.py` times (`--minutes`).

Usage: python bench/bench_train.py [--frames 5000] [--repeats 3] [--minutes 30] [--profile quick|full]
"""

from __future__ import annotations

import argparse
import json
import shutil

from common import DATA, adbreak, broadcast, log, median, parse_args, write_result

QUICK = {"frames": 200, "repeats": 1, "minutes": 2.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--minutes", type=float, default=30.0, help="the recording the frames are extracted from")
    args = parse_args(ap, QUICK)

    seconds = args.minutes * 60
    video, truth, _ = broadcast(f"bench-{args.minutes:g}m", seed=7, duration_s=seconds, pool="heldout")
    frames = DATA / f"frames-train-bench-{args.frames}-{args.minutes:g}m"
    if not frames.exists():
        log(f"extracting {args.frames} frames")
        adbreak("extract", video, "--segments", truth, "--out", frames, "--fps", f"{args.frames / seconds:.4f}")
    n = sum(1 for _ in frames.glob("*/*.jpg"))
    cold, warm = [], []
    reports = []
    for _ in range(args.repeats):
        cache = DATA / "cache-train-bench"
        shutil.rmtree(cache, ignore_errors=True)
        out = DATA / "model-train-bench"
        log("cold")
        _, wall = adbreak("train", frames, "--out", out, "--force", "--cache-dir", cache, "--json", DATA / "r.json")
        cold.append(wall)
        reports.append(json.loads((DATA / "r.json").read_text()))
        log("warm")
        _, wall = adbreak("train", frames, "--out", out, "--force", "--cache-dir", cache, "--json", DATA / "r.json")
        warm.append(wall)
        warm_report = json.loads((DATA / "r.json").read_text())
        assert warm_report["cache"]["misses"] == 0
    result = {
        "frames": n,
        "repeats": args.repeats,
        "cold_wall_s_median": round(median(cold), 1),
        "warm_wall_s_median": round(median(warm), 1),
        "cold_runs_s": [round(x, 1) for x in cold],
        "warm_runs_s": [round(x, 1) for x in warm],
        "cold_timing_breakdown_s": reports[-1]["timing_s"],
        "warm_timing_breakdown_s": warm_report["timing_s"],
        "holdout_accuracy": reports[-1]["holdout"]["accuracy"],
        "targets": {"cold_s": 90, "warm_s": 10},
    }
    md = f"""# Training speed

`adbreak train` on {n} frames (960x540 JPEG), whole command wall time (a new process, imports included), median of
{args.repeats} runs.

| run | wall time | target |
|---|---|---|
| cold (empty bottleneck cache) | {median(cold):.1f} s (features {reports[-1]["timing_s"]["features"]:.1f} s, fit {reports[-1]["timing_s"]["fit"]:.1f} s) | <= 90 s |
| warm (cache hit for every frame) | {median(warm):.1f} s (features {warm_report["timing_s"]["features"]:.1f} s, fit {warm_report["timing_s"]["fit"]:.1f} s) | <= 10 s |

Reproduce: `.venv/bin/python bench/bench_train.py`.
"""
    write_result("train", result, md)
    print(md)


if __name__ == "__main__":
    main()
