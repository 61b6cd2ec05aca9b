"""What the repeated-ad memory costs per frame, and how well it finds the bundled ad clips again.

1. Cost: ``frame_hash`` (imagehash pHash of the 160x90 copy) per frame; matching one frame against a full memory of
   20,000 stored pHashes (XOR + popcount + the run tracker) and one audio step against 20,000 audio codes; the audio
   fingerprint per 200 ms of audio; ``observe`` end to end on a full memory. Medians of ``--repeats`` runs.
2. Thresholds: pHash distances between a real frame and the same frame shown again (shifted 0-2 px, gain, noise,
   JPEG q50), and between frames of different clips (the bundled ad and program clips).
3. Runs: a made stream of program clips with the three ad clips; each ad remembered after its first airing, then
   every ad aired again later at another sample phase (0.1 s later within the 5 fps grid) and degraded as above.
   Reports each run's start error (s) and length against the clip's, and program frames that matched.

Writes bench/results/memory.json and .md. Usage: python bench/bench_memory.py [--repeats 3] [--profile quick|full]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
from common import ROOT, log, parse_args, write_result

MEDIA = ROOT / "adbreak" / "broadcast" / "media"
ADS = ("gillette", "box", "cup")
PROGRAM = ("vtest", "bikes", "bigbuckbunny")
FPS = 5.0
QUICK = {"repeats": 1}


def clip_gray(name: str) -> tuple[list[np.ndarray], list[float]]:
    """Every decoded frame of a bundled clip as 640-wide luma, with its time."""
    import av
    import cv2

    frames, times = [], []
    with av.open(str(MEDIA / f"{name}.mp4")) as c:
        for f in c.decode(video=0):
            g = f.to_ndarray(format="gray")
            h = int(round(640 * g.shape[0] / g.shape[1] / 2)) * 2
            frames.append(cv2.resize(g, (640, h), interpolation=cv2.INTER_AREA))
            times.append(float(f.time))
    return frames, times


def sample(frames: list[np.ndarray], times: list[float], phase: float) -> list[np.ndarray]:
    """The frames a 5 fps sampler starting ``phase`` seconds in would take (the latest frame at or before each slot)."""
    out, i = [], 0
    slot = phase
    t = np.array(times)
    while slot <= t[-1]:
        i = int(np.searchsorted(t, slot, side="right")) - 1
        out.append(frames[max(i, 0)])
        slot += 1.0 / FPS
    return out


def degrade(g: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    import cv2

    g = np.roll(g, (int(rng.integers(-2, 3)), int(rng.integers(-2, 3))), axis=(0, 1)).astype(np.float32)
    g = g * rng.uniform(0.92, 1.08) + rng.uniform(-6, 6) + rng.normal(0, 3.0, g.shape)
    return cv2.imdecode(cv2.imencode(".jpg", np.clip(g, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 50])[1], 0)


def timed_us(fn, items: list) -> float:
    """Mean microseconds of this process's CPU time per ``fn(item)`` over ``items`` (CPU time, not wall time: a
    shared machine's load then inflates the numbers less)."""
    started = time.process_time()
    for item in items:
        fn(item)
    return (time.process_time() - started) / len(items) * 1e6


def costs(clips: dict[str, tuple[list[np.ndarray], list[float]]], repeats: int) -> dict[str, float]:
    from edge.cues.base import AUDIO_RATE, ScreenFrame
    from edge.memory import AdMemory, MemoryConfig
    from edge.memory.audio import AudioFingerprinter
    from edge.memory.hashing import frame_hash, phash64
    from edge.memory.memory import _Entry

    grays = [g for name in ADS for g in sample(*clips[name], 0.0)]
    smalls = [ScreenFrame.from_gray(0.0, g).small for g in grays]
    rng = np.random.default_rng(0)
    # A full memory: the real ad clips' hashes, the rest random codes (matching cost does not depend on content).
    mem = AdMemory(MemoryConfig())
    real = np.array([c for c in (frame_hash(s, 6.0) for s in smalls) if c is not None], dtype=np.uint64)
    fill = rng.integers(0, 2**63, 20_000 - real.size, dtype=np.uint64)
    mem._entries = {1: _Entry(0.0, 0.0), 2: _Entry(0.0, 0.0)}
    mem._video.add(1, real, np.arange(real.size) / FPS)
    mem._video.add(2, fill, np.arange(fill.size) / FPS)
    mem._audio.add(2, rng.integers(0, 2**63, 20_000, dtype=np.uint64), np.arange(20_000) * 0.256)
    audio = rng.normal(0, 0.1, AUDIO_RATE * 60).astype(np.float32)
    chunk = int(AUDIO_RATE / FPS)
    real_codes = [int(c) for c in real] * 3
    audio_codes = [int(c) for c in rng.integers(0, 2**63, 2000, dtype=np.uint64)]
    plain = [ScreenFrame.from_gray(i / FPS, grays[i % len(grays)]) for i in range(1000)]
    with_audio = [
        ScreenFrame.from_gray(i / FPS, grays[i % len(grays)], audio[(i % 250) * chunk : (i % 250 + 1) * chunk])
        for i in range(1000)
    ]
    out: dict[str, list[float]] = {}
    for _ in range(repeats):
        runs = mem._video_runs
        fp = AudioFingerprinter()
        step = {"t": 0.0}

        def match(code: int, runs=runs, step=step) -> None:
            step["t"] += 1.0 / FPS
            runs.step(step["t"], *mem._video.match(code, 10))

        samples = {
            "hash_us": timed_us(lambda s: frame_hash(s, 6.0), smalls * 3),
            "hash_gray_us": timed_us(phash64, grays[:300]),
            "match_us": timed_us(match, real_codes),
            "audio_match_us": timed_us(lambda c: mem._audio.match(c, 12), audio_codes),
            "audio_fp_us": timed_us(
                lambda i, fp=fp: fp.feed((i + 1) / FPS, audio[(i % 250) * chunk : (i % 250 + 1) * chunk]),
                list(range(1000)),
            ),
        }
        brk = np.array(real_codes[:900], dtype=np.uint64)
        samples["known_check_900_us"] = timed_us(lambda b: mem._video.nearest_ads(b, 10), [brk] * 3)
        mem.reset()
        samples["observe_us"] = timed_us(mem.observe, plain)
        mem.reset()
        samples["observe_audio_us"] = timed_us(mem.observe, with_audio)
        mem.reset()
        for k, v in samples.items():
            out.setdefault(k, []).append(v)
    return {k: statistics.median(v) for k, v in out.items()}


def distances(clips: dict[str, tuple[list[np.ndarray], list[float]]]) -> dict[str, object]:
    from edge.cues.base import ScreenFrame
    from edge.memory.hashing import frame_hash

    rng = np.random.default_rng(1)
    codes, labels, again = [], [], []
    for name in ADS + PROGRAM:
        for g in sample(*clips[name], 0.0):
            c = frame_hash(ScreenFrame.from_gray(0.0, g).small, 6.0)
            d = frame_hash(ScreenFrame.from_gray(0.0, degrade(g, rng)).small, 6.0)
            if c is not None and d is not None:
                codes.append(c)
                labels.append(name)
                again.append(d)
    h, h2, lab = np.array(codes, dtype=np.uint64), np.array(again, dtype=np.uint64), np.array(labels)
    same = np.bitwise_count(h ^ h2)
    cross = np.bitwise_count(h[:, None] ^ h[None, :])[lab[:, None] != lab[None, :]]
    is_ad = np.isin(lab, ADS)
    ad_prog = np.bitwise_count(h[is_ad][:, None] ^ h[~is_ad][None, :])
    return {
        "frames": int(h.size),
        "same_p50": float(np.percentile(same, 50)),
        "same_p99": float(np.percentile(same, 99)),
        "same_max": int(same.max()),
        "same_le10": float(np.mean(same <= 10)),
        "cross_min": int(cross.min()),
        "cross_le10": int((cross <= 10).sum()) // 2,
        "cross_pairs": int(cross.size) // 2,
        "ad_program_min": int(ad_prog.min()),
    }


def runs(clips: dict[str, tuple[list[np.ndarray], list[float]]]) -> dict[str, object]:
    from edge.cues.base import ScreenFrame
    from edge.memory import AdMemory
    from edge.memory.hashing import frame_hash

    rng = np.random.default_rng(2)
    mem = AdMemory()
    t = 0.0
    prog = {name: sample(*clips[name], 0.0) for name in PROGRAM}
    ad0 = {name: sample(*clips[name], 0.0) for name in ADS}
    ad1 = {name: sample(*clips[name], 0.1) for name in ADS}

    def play(frames: list[np.ndarray], noisy: bool) -> tuple[float, list[float]]:
        nonlocal t
        start, values = t, []
        for g in frames:
            values.append(mem.observe(ScreenFrame.from_gray(t, degrade(g, rng) if noisy else g)))
            t += 1.0 / FPS
        return start, values

    program_values: list[float] = []
    for name in ADS:  # first airings, each remembered
        program_values += play(prog["vtest"][:100], False)[1]
        start, _ = play(ad0[name], False)
        mem.remember(start, t)
    results = []
    for i, name in enumerate(ADS):  # aired again, another phase, degraded
        program_values += play(prog[PROGRAM[i % 3]] + prog["vtest"][200:300], True)[1]
        start, values = play(ad1[name], True)
        found = [r for r in mem.runs(min_s=0.0) if r.start_t >= start - 1.0]
        best = max(found, key=lambda r: r.length_s) if found else None
        pictures = [frame_hash(ScreenFrame.from_gray(0.0, g).small, 6.0) is not None for g in ad1[name]]
        first = pictures.index(True) / FPS  # an ad opening on black (a fade in) can only match from its first picture
        results.append(
            {
                "ad": name,
                "clip_s": round(len(ad1[name]) / FPS, 2),
                "first_picture_s": first,
                "run_start_err_s": None if best is None else round(best.start_t - start - first, 3),
                "run_len_s": None if best is None else round(best.length_s, 2),
                "runs": len(found),
                "frames_matched": float(np.nanmean(values)),
            }
        )
    program_values += play(prog["vtest"][300:], True)[1]
    pv = np.array(program_values, dtype=float)
    return {"ads": results, "program_frames": int(np.isfinite(pv).sum()), "program_matched": int(np.nansum(pv > 0))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parse_args(parser, QUICK)
    log("decoding the bundled clips")
    clips = {name: clip_gray(name) for name in ADS + PROGRAM}
    log("costs")
    c = costs(clips, args.repeats)
    log("distances")
    d = distances(clips)
    log("runs")
    r = runs(clips)
    md = [f"""# Repeated-ad memory

## CPU time per call (medians of {args.repeats} runs, this machine; `os.cpu_count()` = {os.cpu_count()})
| what | us |
|---|---|
| pHash of the 160x90 copy (`frame_hash`) | {c["hash_us"]:.0f} |
| pHash of the 640-wide luma (for comparison) | {c["hash_gray_us"]:.0f} |
| match one frame against 20,000 pHashes + run tracker | {c["match_us"]:.0f} |
| match one audio code against 20,000 codes | {c["audio_match_us"]:.0f} |
| audio fingerprint of 200 ms | {c["audio_fp_us"]:.0f} |
| `observe` (full memory, no audio) | {c["observe_us"]:.0f} |
| `observe` (full memory, 200 ms of audio) | {c["observe_audio_us"]:.0f} |
| `remember`'s known check: a 3-minute break (900 frames) against 20,000 | {c["known_check_900_us"]:.0f} |

## pHash distances on the bundled clips ({d["frames"]} frames at 5 fps)
Same frame shown again (shift, gain, noise, JPEG q50): median {d["same_p50"]:.0f}, p99 {d["same_p99"]:.0f}, max
{d["same_max"]}, {100 * d["same_le10"]:.1f}% within 10. Different clips: min {d["cross_min"]}, {d["cross_le10"]} of
{d["cross_pairs"]} pairs within 10; ad vs program frames: min {d["ad_program_min"]}.

## Runs: each ad clip aired again (another sample phase, degraded)
Run start error is measured from the clip's first non-uniform frame (gillette opens on 1.4 s of black fading in).

| ad | clip s | first picture s | run start error s | run length s | runs | share of frames scoring 1 |
|---|---|---|---|---|---|---|"""]
    for a in r["ads"]:
        md.append(f"| {a['ad']} | {a['clip_s']} | {a['first_picture_s']} | {a['run_start_err_s']} | {a['run_len_s']} | "
                  f"{a['runs']} | {a['frames_matched']:.2f} |")
    md += ["", f"Program frames scoring above 0: {r['program_matched']} of {r['program_frames']}.", "",
           "Reproduce: `.venv/bin/python bench/bench_memory.py`."]
    write_result("memory", {"repeats": args.repeats, "cpu_us": c, "distances": d, "runs": r}, "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
