"""The learned channel logo (``edge.logo``) on built broadcasts: its cost per analysed frame, and its accuracy.

Held-out 10-minute broadcasts (seed 3, default channel "TV5", white outline logo top-right): clean, through the
camera (the screen warped back from the camera frame with the builder's screen corners, as the edge does), and
with the ``transparent`` difficulty (the logo at alpha 0.25). Each is decoded at 5 fps and every frame goes through
``ScreenFrame.from_rgb`` (not timed) and ``LogoLearner.update`` (timed), on one OpenCV thread:

* cost: mean, median, 99th percentile and maximum wall ms per ``update`` call, and CPU ms per frame over the run
  (``time.thread_time``: this thread's own, not the decoder's threads), with the machine's load average (wall times
  on a loaded machine read high);
* accuracy: when the logo was learned (stream time and seconds of program before it), the learned box against the
  builder's logo box, and, from then on, the share of frames whose presence (> 0.5) agrees with the truth's labels,
  with the mean presence on program and on ad frames.

Usage: python bench/bench_logo.py [--duration 600] [--seed 3] [--profile quick|full]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from common import DATA, log, parse_args, write_result

QUICK = {"duration": 90.0}
VARIANTS = (("clean", {}), ("camera", {"camera": True}), ("transparent", {"difficulties": ("transparent",)}))


def build(name: str, seed: int, duration_s: float, options: dict):
    """Build (or reuse) a held-out broadcast under bench/.data."""
    from adbreak.broadcast.builder import build_broadcast

    DATA.mkdir(parents=True, exist_ok=True)
    video, truth, meta_path = (DATA / f"{name}.{ext}" for ext in ("mp4", "csv", "json"))
    if video.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("seed") == seed and abs(meta.get("duration_s", 0) - duration_s) < 0.1:
            return video, truth, meta
    log(f"building {name} ({duration_s:.0f} s, held-out, seed {seed}, {options or 'clean'})")
    info = build_broadcast(DATA, name, seed=seed, duration_s=duration_s, pool="heldout", **options)
    return info.video, info.truth, json.loads(info.meta.read_text())


def run(video, truth, meta) -> dict:
    import cv2

    from adbreak.segments import read_segments
    from edge.cues.base import ScreenFrame
    from edge.logo import LogoLearner
    from edge.sources import VideoSource

    segments = read_segments(truth)
    w, h = meta["size"]
    warp = None
    if meta.get("camera"):
        frontal = np.float32([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]])
        warp = cv2.getPerspectiveTransform(np.float32(meta["screen_corners"]), frontal)
    learner = LogoLearner()
    steps: dict[str, list[float]] = {"_sample": [], "_search": []}
    for step, times in steps.items():  # the amortised learning work, timed per call (this thread's CPU)
        inner = getattr(learner, step)

        def timed(*args, _inner=inner, _times=times):
            c = time.thread_time()
            _inner(*args)
            _times.append((time.thread_time() - c) * 1000)

        setattr(learner, step, timed)
    rows, wall = [], []
    cpu = 0.0
    with VideoSource(str(video), 5.0) as source:
        for frame in source:
            image = frame.image if warp is None else cv2.warpPerspective(frame.image, warp, (w, h))
            screen = ScreenFrame.from_rgb(frame.t, image)
            c0, w0 = time.thread_time(), time.perf_counter()
            p = learner.update(screen)
            wall.append((time.perf_counter() - w0) * 1000)
            cpu += time.thread_time() - c0
            label = next((s.label for s in segments if s.start <= frame.t < s.end), segments[-1].label)
            rows.append((frame.t, p, label == "program"))
    wall_a = np.array(wall)
    out = {
        "frames": len(rows),
        "wall_ms_mean": float(wall_a.mean()),
        "wall_ms_median": float(np.median(wall_a)),
        "wall_ms_p99": float(np.percentile(wall_a, 99)),
        "wall_ms_max": float(wall_a.max()),
        "cpu_ms_per_frame": 1000 * cpu / len(rows),
        "sample_calls": len(steps["_sample"]),
        "sample_ms_mean": float(np.mean(steps["_sample"])),
        "sample_ms_per_frame": float(np.sum(steps["_sample"])) / len(rows),
        "search_calls": len(steps["_search"]),
        "search_ms_mean": float(np.mean(steps["_search"])),
        "search_ms_max": float(np.max(steps["_search"])),
        "search_ms_per_frame": float(np.sum(steps["_search"])) / len(rows),
        "learned_at_t": learner.learned_at_t,
        "box": list(learner.box) if learner.box else None,
        "truth_box": [v * 640 / w for v in meta["logo"]["box"]],
        "dropped": learner.dropped,
    }
    if learner.learned_at_t is not None:
        t0 = learner.learned_at_t
        out["program_s_before_learned"] = sum(
            max(0.0, min(s.end, t0) - s.start) for s in segments if s.label == "program" and s.start < t0
        )
        after = [(p, prog) for t, p, prog in rows if t >= t0]
        known = [(p, prog) for p, prog in after if not np.isnan(p)]
        out["frames_after"] = len(after)
        out["unknown_after"] = len(after) - len(known)
        out["agreement"] = sum((p > 0.5) == prog for p, prog in after if not np.isnan(p)) / len(after)
        out["presence_program"] = float(np.mean([p for p, prog in known if prog]))
        out["presence_ad"] = float(np.mean([p for p, prog in known if not prog]))
        bx, tb = out["box"], out["truth_box"]
        ix = max(0.0, min(bx[2], tb[2]) - max(bx[0], tb[0]))
        iy = max(0.0, min(bx[3], tb[3]) - max(bx[1], tb[1]))
        union = (bx[2] - bx[0]) * (bx[3] - bx[1]) + (tb[2] - tb[0]) * (tb[3] - tb[1]) - ix * iy
        out["box_iou"] = ix * iy / union
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=600.0)
    ap.add_argument("--seed", type=int, default=3)
    args = parse_args(ap, QUICK)
    import cv2

    cv2.setNumThreads(1)
    load_start = os.getloadavg()[0]
    results = {}
    for variant, options in VARIANTS:
        video, truth, meta = build(f"logo-{variant}-{args.seed}", args.seed, args.duration, options)
        log(f"running {variant}")
        results[variant] = run(video, truth, meta)
        log(f"{variant}: {results[variant]}")
    load_end = os.getloadavg()[0]

    def row(name: str, fmt, key: str) -> str:
        return f"| {name} | " + " | ".join(fmt(results[v].get(key)) for v, _ in VARIANTS) + " |"

    ms = lambda v: f"{v:.3f} ms"  # noqa: E731
    pct = lambda v: "-" if v is None else f"{100 * v:.1f}%"  # noqa: E731
    num = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    sec = lambda v: "never" if v is None else f"{v:.0f} s"  # noqa: E731
    box = lambda v: "-" if v is None else "(" + ", ".join(f"{x:.0f}" for x in v) + ")"  # noqa: E731
    md = f"""# The learned channel logo (`edge.logo`)

Machine: see `logo.json` (`machine`); 1-minute load average {load_start:.1f} at the start, {load_end:.1f} at the end
(wall times on a loaded machine read high; CPU time is the calling thread's own). Held-out broadcasts of
{args.duration:.0f} s (seed {args.seed}, logo "TV5" top-right), decoded at 5 fps; every frame through
`ScreenFrame.from_rgb` (not timed) and `LogoLearner.update` (timed), one OpenCV thread, default `LogoConfig`.

| measure | {" | ".join(v for v, _ in VARIANTS)} |
|---|{"---|" * len(VARIANTS)}
{row("frames", str, "frames")}
{row("`update`, CPU per frame (whole run)", ms, "cpu_ms_per_frame")}
{row("of which learning samples (1 per second), per frame", ms, "sample_ms_per_frame")}
{row("of which searches (every 10 s; 4 corners every 60 s once known), per frame", ms, "search_ms_per_frame")}
{row("one learning sample, CPU", ms, "sample_ms_mean")}
{row("one search, CPU: mean", ms, "search_ms_mean")}
{row("one search, CPU: max", ms, "search_ms_max")}
{row("`update`, wall: mean", ms, "wall_ms_mean")}
{row("`update`, wall: median", ms, "wall_ms_median")}
{row("`update`, wall: 99th percentile", ms, "wall_ms_p99")}
{row("`update`, wall: max (a search frame)", ms, "wall_ms_max")}
{row("learned at (stream time)", sec, "learned_at_t")}
{row("program seen before it was learned", sec, "program_s_before_learned")}
{row("learned box (640-wide pixels)", box, "box")}
{row("builder's logo box", box, "truth_box")}
{row("box IoU", num, "box_iou")}
{row("presence > 0.5 agrees with program/ad, after learning", pct, "agreement")}
{row("mean presence on program frames", num, "presence_program")}
{row("mean presence on ad frames", num, "presence_ad")}
{row("frames UNKNOWN after learning", str, "unknown_after")}

Reproduce: `.venv/bin/python bench/bench_logo.py` (broadcasts are built once into `bench/.data`).
"""
    write_result("logo", {"duration_s": args.duration, "seed": args.seed, "results": results}, md)


if __name__ == "__main__":
    main()
