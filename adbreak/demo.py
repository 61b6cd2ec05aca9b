"""``adbreak demo`` (offline): build two sample broadcasts from the bundled clips, train on one, evaluate the other
as if live, and write its annotated video. Built broadcasts are reused on a second run."""

from __future__ import annotations

import json
import time
from pathlib import Path

from adbreak.metrics import format_metrics

TRAIN_SECONDS = 600.0


def _broadcast(folder: Path, name: str, *, seed: int, duration_s: float, pool: str, progress: bool):
    from adbreak.broadcast.builder import build_broadcast, load_broadcast

    existing = load_broadcast(folder, name)
    if existing is not None and existing.seed == seed and existing.pool == pool and existing.duration_s == duration_s:
        return existing
    return build_broadcast(folder, name, seed=seed, duration_s=duration_s, pool=pool, progress=progress)


def holdout_text(report: dict) -> str:
    """The training report's holdout in words (it may have no frames: every one repeated training footage)."""
    h = report["holdout"]
    if not h.get("frames"):
        return "holdout: no frame that does not repeat training footage (a looping recording)"
    return f"holdout accuracy {h['accuracy']:.4f} ({h['frames']} frames of footage training never saw)"


def run_demo(out: Path, *, heldout_s: float = 300.0, train_s: float = TRAIN_SECONDS, progress: bool = True) -> int:
    from adbreak.evaluate import evaluate_video
    from adbreak.frames import extract
    from adbreak.training.trainer import TrainConfig, train

    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    print(f"1/5 building sample broadcasts in {out} (train: {train_s:.0f} s, held-out: {heldout_s:.0f} s)")
    train_bc = _broadcast(out, "train", seed=1, duration_s=train_s, pool="train", progress=progress)
    held_bc = _broadcast(out, "heldout", seed=2, duration_s=heldout_s, pool="heldout", progress=progress)

    frames = out / "frames"
    print(f"2/5 extracting labelled frames from {train_bc.video.name} into {frames}")
    if frames.exists():
        import shutil

        shutil.rmtree(frames)
    counts = extract(train_bc.video, train_bc.truth, frames, fps=2.0, progress=progress)
    print("    " + ", ".join(f"{k}: {v} frames" for k, v in sorted(counts.items())))

    model = out / "model"
    print(f"3/5 training the head on the backbone's features -> {model}")
    result = train(frames, model, TrainConfig(name="demo", force=True, cache_dir=out / "cache", progress=progress))
    print(f"    {holdout_text(result.report)}")

    print(f"4/5 evaluating on the held-out broadcast {held_bc.video.name}, as if live")
    run = evaluate_video(
        held_bc.video, held_bc.truth, model, record_scores=out / "heldout.scores.csv", progress=progress
    )
    (out / "heldout.metrics.json").write_text(json.dumps(run.metrics, indent=2) + "\n")
    from adbreak.segments import write_segments

    write_segments(out / "heldout.predicted.csv", run.predicted)
    print(format_metrics(run.metrics))

    from adbreak.annotate import annotate

    annotated = out / "heldout.annotated.mp4"
    print(f"5/5 writing the annotated video {annotated}")
    annotate(held_bc.video, model, annotated, progress=progress)
    print(
        f"done in {time.perf_counter() - started:.0f} s. Open {annotated} to watch the decisions; "
        f"truth {held_bc.truth}, prediction {out / 'heldout.predicted.csv'}."
    )
    return 0
