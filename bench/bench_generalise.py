"""Detection on footage training never saw (issue 13): zero labels, a trained head, noisy heads, Comskip.

Every test broadcast comes from the builder's `heldout` pool and every model from its `train` pool: the two share no
clip and no photo, program or ad (`adbreak/broadcast/clips.py`). The fusion's defaults were tuned on `train`-pool
broadcasts only (`docs/decisions.md`), never on these.

Per variant (a 30-minute clean broadcast; each real-TV difficulty on its own and all together, and a second channel,
10 minutes each; a 15-minute camera view):

* **no model**: `adbreak evaluate VIDEO --truth T` (the exact live pipeline on the cues alone);
* **model**: the same with `--model`, a head trained on a 20-minute `train`-pool broadcast (the camera variant: on a
  10-minute camera view of that pool);
* **10% flipped**: the model run's recorded scores with 10% of the frames' p(ad) flipped, re-decided with
  `adbreak evaluate --scores` (all cue columns kept);
* **no model, a device that watched the channel before** (variants with promos): the test broadcast evaluated with
  `--state` after the same device watched a 10-minute `train`-pool broadcast of the channel (other footage, other
  ads): it has learned that the channel airs promos inside breaks and holds each break's end `promo_hold_s` (16 s),
  so a promo stays muted live (`docs/decision.md`); its latency columns show the cost. The rows above are a
  brand-new device's;
* **per-frame**: the share of frames whose head p(ad) (or, with no model, the fused P(ad)) is on the right side of
  0.5, next to the decided accuracy;
* **Comskip**: read from `bench/results/comskip.json` when present: Comskip built from source in a scratch folder and
  run on these same files (`comskip --ini=INI --output=DIR FILE`), its `.txt` scored with `adbreak.metrics`. The
  runner lives outside this repository; the figures are what it measured.

Usage: python bench/bench_generalise.py [--minutes 30] [--variant-minutes 10] [--camera-minutes 15]
       [--train-minutes 20] [--camera-train-minutes 10] [--only a,b] [--profile quick|full]
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
from common import (
    DATA,
    RESULTS,
    adbreak,
    broadcast,
    commit,
    corners_arg,
    log,
    machine,
    parse_args,
    trained_bundle,
    write_result,
)

from adbreak.scores import read_scores, write_scores
from adbreak.segments import label_at, read_segments

FOLDER = DATA / "generalise"
FLIP = 0.10
WARM = "no model, a device that watched the channel before"
DIFFICULTIES = ("no_black", "fades", "promos", "cold_open", "loud", "transparent")
KEYS = ("accuracy", "program_lost_s", "ad_missed_s", "false_breaks", "missed_breaks", "flaps",
        "boundary_err_median_s", "latency_median_s", "latency_p95_s", "realtime_factor")
QUICK = {"minutes": 2.0, "variant_minutes": 2.0, "camera_minutes": 2.0, "train_minutes": 2.0,
         "camera_train_minutes": 2.0, "only": "clean,promos,camera"}


def variants(minutes: float, variant_minutes: float, camera_minutes: float) -> dict[str, dict]:
    v: dict[str, dict] = {"clean": {"seed": 21, "minutes": minutes}}
    for i, d in enumerate(DIFFICULTIES):
        v[d] = {"seed": 22 + i, "minutes": variant_minutes, "difficulties": (d,)}
    v["all"] = {"seed": 30, "minutes": variant_minutes, "difficulties": DIFFICULTIES}
    v["ch2"] = {"seed": 31, "minutes": variant_minutes, "channel": "ch2"}
    v["camera"] = {"seed": 21, "minutes": camera_minutes, "camera": True}
    return v


def per_frame(scores: Path, truth: Path, column: str) -> float | None:
    t, p, extra = read_scores(scores)
    values = p if column == "p_ad" else extra.get(column)
    if values is None or np.isnan(values).all():
        return None
    segs = read_segments(truth)
    ok = ~np.isnan(values)
    is_ad = np.array([label_at(segs, x) == "ad" for x in t[ok]])
    return round(float(np.mean((values[ok] >= 0.5) == is_ad)), 4)


def flipped(scores: Path, out: Path, share: float) -> None:
    t, p, extra = read_scores(scores)
    flip = np.random.default_rng(0).random(len(p)) < share
    write_scores(out, t, np.where(flip, 1.0 - p, p), extra)


def evaluate(name: str, video: Path, truth: Path, meta: dict, model: Path | None, *extra: str) -> tuple[dict, Path]:
    out = FOLDER / f"{name}.json"
    scores = FOLDER / f"{name}-scores.csv"
    args = ["evaluate", video, "--truth", truth, "--json", out, "--record-scores", scores, *corners_arg(meta), *extra]
    if model is not None:
        args += ["--model", model]
    log(f"evaluating {name}")
    adbreak(*args)
    return json.loads(out.read_text()), scores


def run_variant(name: str, spec: dict, models: dict[bool, Path]) -> dict:
    camera = bool(spec.get("camera"))
    video, truth, meta = broadcast(
        f"test-{name}", seed=spec["seed"], duration_s=spec["minutes"] * 60, pool="heldout", camera=camera,
        difficulties=tuple(spec.get("difficulties", ())), channel=spec.get("channel", "ch1"), folder=FOLDER,
    )
    res: dict = {"measured": {"commit": commit(), "when": machine()["when"]},
                 "video": video.name, "minutes": spec["minutes"], "seed": spec["seed"],
                 "difficulties": list(spec.get("difficulties", ())), "channel": spec.get("channel", "ch1"),
                 "camera": camera}
    m0, s0 = evaluate(f"{name}-nomodel", video, truth, meta, None)
    res["no model"] = {**m0, "per_frame": per_frame(s0, truth, "smoothed")}
    if "promos" in spec.get("difficulties", ()):
        # a device that already watched this channel (a `train`-pool broadcast with the same difficulties: other
        # footage, other ads; same channel) knows it airs promos inside breaks, and holds each break's end
        warm, warm_truth, warm_meta = broadcast(
            f"warm-{name}", seed=spec["seed"] + 100, duration_s=spec["minutes"] * 60, pool="train",
            difficulties=tuple(spec.get("difficulties", ())), channel=spec.get("channel", "ch1"), folder=FOLDER,
        )
        state = FOLDER / f"{name}-device"
        shutil.rmtree(state, ignore_errors=True)
        evaluate(f"{name}-warmup", warm, warm_truth, warm_meta, None, "--state", state)
        mw, sw = evaluate(f"{name}-nomodel-warm", video, truth, meta, None, "--state", state)
        res[WARM] = {**mw, "per_frame": per_frame(sw, truth, "smoothed")}
    m1, s1 = evaluate(f"{name}-model", video, truth, meta, models[camera])
    res["model"] = {**m1, "per_frame": per_frame(s1, truth, "p_ad")}
    noisy = FOLDER / f"{name}-flipped.csv"
    flipped(s1, noisy, FLIP)
    out = FOLDER / f"{name}-flipped.json"
    adbreak("evaluate", "--scores", noisy, "--truth", truth, "--json", out)
    res[f"model, {FLIP:.0%} of p(ad) flipped"] = {**json.loads(out.read_text()),
                                                   "per_frame": per_frame(noisy, truth, "p_ad")}
    return res


def comskip_figures() -> dict:
    path = RESULTS / "comskip.json"
    return json.loads(path.read_text()) if path.exists() else {}


def table(results: dict, comskip: dict) -> str:
    head = "| variant | run | per-frame | " + " | ".join(KEYS) + " |\n|---|---|---|" + "---|" * len(KEYS) + "\n"
    rows = []
    for name, res in results.items():
        runs = {k: v for k, v in res.items() if isinstance(v, dict) and "accuracy" in v}
        cs = comskip.get("runs", {}).get(name)
        if cs:
            runs = {**runs, **{f"Comskip ({k})": v for k, v in cs.items()}}
        for run, m in runs.items():
            pf = m.get("per_frame")
            cells = ["" if m.get(k) is None else f"{m[k]:g}" for k in KEYS]
            rows.append(f"| {name} | {run} | {'' if pf is None else pf} | " + " | ".join(cells) + " |")
    return head + "\n".join(rows) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30.0, help="the main test and its camera view")
    ap.add_argument("--variant-minutes", type=float, default=10.0, help="each difficulty, all of them, ch2")
    ap.add_argument("--camera-minutes", type=float, default=15.0, help="the camera view of the main test's start")
    ap.add_argument("--train-minutes", type=float, default=20.0)
    ap.add_argument("--camera-train-minutes", type=float, default=10.0)
    ap.add_argument("--only", help="comma-separated variants (default: all)")
    args = parse_args(ap, QUICK)
    specs = variants(args.minutes, args.variant_minutes, args.camera_minutes)
    if args.only:
        specs = {k: specs[k] for k in args.only.split(",")}
    models: dict[bool, Path] = {}
    for camera in sorted({bool(s.get("camera")) for s in specs.values()}):
        tag = "camera" if camera else "clean"
        minutes = args.camera_train_minutes if camera else args.train_minutes
        tv, tt, tm = broadcast(f"train-{tag}", seed=11, duration_s=minutes * 60, pool="train", camera=camera,
                               folder=FOLDER)
        models[camera] = trained_bundle(f"generalise-{tag}-{minutes:g}m", tv, tt, tm)
    previous = RESULTS / "generalise.json"
    results = json.loads(previous.read_text()).get("variants", {}) if previous.exists() and args.only else {}
    for name, spec in specs.items():
        results[name] = run_variant(name, spec, models)
    comskip = comskip_figures()
    md = (
        "# Detection on footage training never saw\n\n"
        f"Test broadcasts: pool `heldout` (clean {args.minutes:g} min; a {args.camera_minutes:g}-min camera view; "
        f"each difficulty, all of them and the second channel {args.variant_minutes:g} min). Models: trained on a "
        f"{args.train_minutes:g}-min pool `train` broadcast (the camera model on a {args.camera_train_minutes:g}-min "
        "camera view of that pool). The two pools share no clip and no photo. Per-frame: the "
        "head's p(ad) (no model: the fused P(ad)) on the right side of 0.5; the other columns are the decided "
        "output (`adbreak.metrics`).\n\n"
        + table(results, comskip)
        + "\nMeasured (a run with `--only` keeps the other variants' earlier figures): "
        + "; ".join(f"{name} at {res['measured']['commit']} ({res['measured']['when']})" if "measured" in res
                    else f"{name} in an earlier run (before per-variant stamps)" for name, res in results.items())
        + ".\n"
        + ("\nComskip: " + comskip.get("how", "") + "\n" if comskip else "\nComskip: not measured in this run.\n")
        + "\nReproduce: `.venv/bin/python bench/bench_generalise.py` (builds its recordings under "
        "bench/.data/generalise the first time).\n"
    )
    write_result("generalise", {"minutes": args.minutes, "variant_minutes": args.variant_minutes,
                                "train_minutes": args.train_minutes, "flip": FLIP, "variants": results,
                                "comskip": comskip}, md)
    print(md)


if __name__ == "__main__":
    main()
