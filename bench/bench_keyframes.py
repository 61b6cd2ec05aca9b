"""What keyframes cost the edge: the thumbnail encode, and the recorder's average cost per analysed frame.

1. ``encode_thumbnail`` (scale to 384 px wide + JPEG q80) on real frames of the bundled clips at 640x360, 960x540
   and 1280x720: median ms per call;
2. ``KeyframeRecorder.observe`` over a real 5 fps replay of the bundled clips (960x540) with a decision that changes
   state every 30-60 s and passes through low-confidence stretches: the average ms per analysed frame (all frames,
   encoding included), the keyframes chosen per segment, their size, and the JPEG bytes the rings hold.

Usage: python bench/bench_keyframes.py [--repeats 3] [--frames 1500] [--profile quick|full]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from common import ROOT, log, median, parse_args, write_result

MEDIA = ROOT / "adbreak" / "broadcast" / "media"
QUICK = {"repeats": 1, "frames": 300}


def frames(n: int, size: tuple[int, int]) -> list[np.ndarray]:
    """``n`` real RGB frames, resized to ``size`` (w, h), cycling through the bundled clips at 5 fps."""
    import cv2

    from edge.sources import VideoSource

    out: list[np.ndarray] = []
    clips = sorted(MEDIA.glob("*.mp4"))
    while len(out) < n:
        for clip in clips:
            for f in VideoSource(str(clip), 5.0):
                out.append(cv2.resize(f.image, size, interpolation=cv2.INTER_AREA))
                if len(out) >= n:
                    return out
    return out


def encode_ms(images: list[np.ndarray]) -> float:
    from edge.keyframes import encode_thumbnail

    times = []
    for img in images:
        a = time.perf_counter()
        encode_thumbnail(img)
        times.append((time.perf_counter() - a) * 1000)
    return median(times)


def recorder_run(images: list[np.ndarray]) -> dict:
    """Drive a recorder through ``images`` as a 5 fps stream with a scripted decision."""
    from edge.keyframes import KeyframeRecorder

    picks = []
    rec = KeyframeRecorder(picks.append)
    rng = np.random.default_rng(0)
    state, since = "program", 0.0
    segments = 1
    started = time.perf_counter()
    for i, img in enumerate(images):
        t = i / 5.0
        boundary = None
        previous = state
        if t - since >= (45.0 if state == "program" else 30.0):
            state = "ad" if state == "program" else "program"
            boundary, since = t - 0.7, t
            segments += 1
        # a low-confidence stretch of 4 s in the middle of each program segment
        mid = state == "program" and 20.0 <= t - since < 24.0
        smoothed = 0.5 if mid else (0.9 if state == "ad" else 0.1)
        p_ad = float(np.clip(smoothed + rng.normal(0, 0.05), 0, 1))
        rec.observe(t, img, p_ad=p_ad, smoothed=smoothed, state=state, transition_boundary_t=boundary,
                    from_label=previous if boundary is not None else None, initial_t=0.0)
    total_ms = (time.perf_counter() - started) * 1000
    sizes = [len(p.thumb.jpeg) for p in picks]
    return {
        "frames": len(images),
        "ms_per_frame": total_ms / len(images),
        "encoded": rec.encoded,
        "picks": len(picks),
        "segments": segments,
        "picks_per_segment": len(picks) / segments,
        "median_jpeg_kb": median(sizes) / 1024 if sizes else 0.0,
        "ring_kb": rec.memory_bytes / 1024,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--frames", type=int, default=1500, help="analysed frames in the recorder run (5 min at 5 fps)")
    args = parse_args(ap, QUICK)

    sizes = {"640x360": (640, 360), "960x540": (960, 540), "1280x720": (1280, 720)}
    enc: dict[str, float] = {}
    for name, size in sizes.items():
        imgs = frames(60, size)
        runs = [encode_ms(imgs) for _ in range(args.repeats)]
        enc[name] = round(median(runs), 3)
        log(f"encode_thumbnail {name}: {enc[name]:.3f} ms (runs {[round(r, 3) for r in runs]})")

    imgs = frames(args.frames, (960, 540))
    runs = [recorder_run(imgs) for _ in range(args.repeats)]
    per_frame = [r["ms_per_frame"] for r in runs]
    rec = runs[int(np.argsort(per_frame)[len(per_frame) // 2])]
    log(f"recorder: {median(per_frame):.3f} ms per analysed frame; {rec['picks_per_segment']:.1f} keyframes/segment")

    data = {
        "repeats": args.repeats,
        "encode_thumbnail_ms": enc,
        "recorder_ms_per_frame": round(median(per_frame), 3),
        "recorder_runs_ms_per_frame": [round(x, 3) for x in per_frame],
        "recorder": {k: round(v, 3) if isinstance(v, float) else v for k, v in rec.items()},
    }
    md = f"""# Keyframes on the edge

Machine: see `keyframes.json` (`machine`). Medians of {args.repeats} runs in one session.

| measure | result |
|---|---|
| `encode_thumbnail` (384 px wide, JPEG q80), 640x360 / 960x540 / 1280x720 frame | {enc['640x360']:.2f} / {enc['960x540']:.2f} / {enc['1280x720']:.2f} ms |
| `KeyframeRecorder.observe`, average per analysed frame (960x540 at 5 fps, encoding included) | {median(per_frame):.3f} ms |
| thumbnails encoded / keyframes sent, over {rec['frames']} frames and {rec['segments']} segments | {rec['encoded']} / {rec['picks']} ({rec['picks_per_segment']:.1f} per segment) |
| median keyframe JPEG | {rec['median_jpeg_kb']:.1f} KB |
| JPEG bytes held by the rings at the end | {rec['ring_kb']:.0f} KB |

Reproduce: `.venv/bin/python bench/bench_keyframes.py`.
"""
    write_result("keyframes", data, md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
