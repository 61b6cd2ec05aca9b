"""What the broadcast-structure cues cost per analysed frame, and what decoding the audio adds.

1. ``ScreenFrame.from_rgb`` and each cue's ``update`` on real 960x540 frames of the bundled clips (fitted into 16:9
   as the broadcast builder does, black separators between clips, 0.2 s of audio per frame as at 5 fps), on one
   OpenCV thread: median ms per call, and the whole ``CueSet.update``.
2. ``VideoSource`` at 5 fps on a made 960x540 H.264 clip with 48 kHz stereo AAC, with ``audio=True`` and
   ``audio=False`` (one decoding thread): CPU ms per analysed frame, the difference being the audio's cost.

Usage: python bench/bench_cues.py [--repeats 3] [--profile quick|full]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from common import ROOT, log, median, parse_args, write_result

MEDIA = ROOT / "adbreak" / "broadcast" / "media"
W, H = 960, 540
QUICK = {"repeats": 1}


def fit(image: np.ndarray) -> np.ndarray:
    """``image`` fitted into W x H keeping its aspect, black bars elsewhere."""
    import cv2

    h, w = image.shape[:2]
    s = min(W / w, H / h)
    nw, nh = int(w * s) // 2 * 2, int(h * s) // 2 * 2
    out = np.zeros((H, W, 3), np.uint8)
    x, y = (W - nw) // 2, (H - nh) // 2
    out[y : y + nh, x : x + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
    return out


def frames() -> list[np.ndarray]:
    """Every clip at 5 fps, fitted, with 3 black frames after each."""
    from edge.sources import VideoSource

    out: list[np.ndarray] = []
    for clip in sorted(MEDIA.glob("*.mp4")):
        with VideoSource(str(clip), 5.0) as src:
            out.extend(fit(f.image) for f in src)
        out.extend([np.zeros((H, W, 3), np.uint8)] * 3)
    return out


def cue_costs(images: list[np.ndarray]) -> dict[str, float]:
    """Median ms per call of from_rgb, of each cue, and of the whole CueSet (fresh cues, one pass)."""
    from edge.cues import CueSet, ScreenFrame

    rng = np.random.default_rng(0)
    cues = CueSet()
    names = [type(c).__name__ for c in cues.cues]
    times: dict[str, list[float]] = {"from_rgb": [], "CueSet.update": [], **{n: [] for n in names}}
    for i, image in enumerate(images):
        audio = (0.1 * rng.standard_normal(3200)).astype(np.float32)
        a = time.perf_counter()
        frame = ScreenFrame.from_rgb(i * 0.2, image, audio)
        times["from_rgb"].append(time.perf_counter() - a)
        total = 0.0
        for name, cue in zip(names, cues.cues, strict=True):
            a = time.perf_counter()
            cue.update(frame)
            dt = time.perf_counter() - a
            times[name].append(dt)
            total += dt
        times["CueSet.update"].append(total)
    # the CueSet itself (its own loop and dict merging included), on a second pass
    cues.reset()
    times["CueSet.update"] = []
    for i, image in enumerate(images):
        frame = ScreenFrame.from_rgb(i * 0.2, image, np.zeros(3200, np.float32))
        a = time.perf_counter()
        cues.update(frame)
        times["CueSet.update"].append(time.perf_counter() - a)
    return {k: median(v) * 1000 for k, v in times.items()}


def make_clip(path: Path, seconds: float = 30.0, fps: int = 25, rate: int = 48000) -> None:
    """A W x H H.264 clip (moving real frames) with stereo AAC (a tone over noise)."""
    import av

    images = frames()
    rng = np.random.default_rng(1)
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = W, H, "yuv420p"
        v.options = {"preset": "veryfast", "crf": "23", "x264-params": "bframes=2:keyint=100"}
        a = out.add_stream("aac", rate=rate, layout="stereo")
        per = rate // fps
        for i in range(int(seconds * fps)):
            f = av.VideoFrame.from_ndarray(np.roll(images[(i // 5) % len(images)], 4 * i, axis=1), format="rgb24")
            f.pts = i
            out.mux(v.encode(f))
            t = (i * per + np.arange(per)) / rate
            x = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(per)).astype(np.float32)
            af = av.AudioFrame.from_ndarray(np.stack([x, x]), format="fltp", layout="stereo")
            af.sample_rate, af.pts = rate, i * per
            out.mux(a.encode(af))
        out.mux(v.encode(None))
        out.mux(a.encode(None))


def decode_ms(path: Path, audio: bool) -> tuple[float, int]:
    """CPU ms per analysed frame of a 5 fps VideoSource pass (one decoding thread), and the frames yielded."""
    from edge.sources import VideoSource

    a = time.process_time()
    with VideoSource(str(path), 5.0, threads=False, audio=audio) as src:
        n = sum(1 for _ in src)
    return (time.process_time() - a) * 1000 / n, n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    args = parse_args(p, QUICK)
    import cv2

    cv2.setNumThreads(1)
    load_before = os.getloadavg()[0]
    images = frames()
    log(f"{len(images)} frames of {W}x{H}")
    runs = [cue_costs(images) for _ in range(args.repeats)]
    costs = {k: median([r[k] for r in runs]) for k in runs[0]}
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "av.mp4"
        log("making a 30 s clip with AAC audio")
        make_clip(clip)
        with_audio = [decode_ms(clip, True) for _ in range(args.repeats)]
        without = [decode_ms(clip, False) for _ in range(args.repeats)]
    dec_a, dec_v = median([r[0] for r in with_audio]), median([r[0] for r in without])
    n = with_audio[0][1]
    load = (load_before, os.getloadavg()[0])
    data = {
        "load_average_1min": list(load),
        "frames": len(images),
        "size": [W, H],
        "repeats": args.repeats,
        "cue_ms": costs,
        "decode_ms_per_frame": {"audio": dec_a, "no_audio": dec_v, "audio_cost": dec_a - dec_v, "frames": n},
    }
    rows = "\n".join(f"| `{k}` | {v:.3f} ms |" for k, v in costs.items() if k not in ("from_rgb", "CueSet.update"))
    md = f"""# Broadcast-structure cues: cost per analysed frame

Machine: see `cues.json` (`machine`); 1-minute load average {load[0]:.1f} at the start, {load[1]:.1f} at the end (wall
times on a loaded machine read high). Medians over {len(images)} real {W}x{H} frames (the bundled clips at 5 fps,
fitted into 16:9, black separators), one OpenCV thread, median of {args.repeats} runs.

| step | median |
|---|---|
| `ScreenFrame.from_rgb` ({W}x{H} RGB to 640-wide luma + 160x90) | {costs["from_rgb"]:.3f} ms |
{rows}
| `CueSet.update` (all cues above) | {costs["CueSet.update"]:.3f} ms |
| from_rgb + all cues | {costs["from_rgb"] + costs["CueSet.update"]:.3f} ms |

Audio decoding (`VideoSource` at 5 fps, one decoding thread, 30 s {W}x{H} H.264 + 48 kHz stereo AAC, CPU time):

| pass | CPU per analysed frame |
|---|---|
| `audio=False` | {dec_v:.2f} ms |
| `audio=True` (decode AAC, resample to 16 kHz mono, slice per frame) | {dec_a:.2f} ms |
| audio's cost | {dec_a - dec_v:.2f} ms |

Reproduce: `.venv/bin/python bench/bench_cues.py`.
"""
    write_result("cues", data, md)


if __name__ == "__main__":
    main()
