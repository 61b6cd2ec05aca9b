""":func:`scan_recording`: a recording file in, its ad breaks out, coarse to fine on two cores.

1. **Probe** (:func:`probe`): streams, codecs, duration, frame rate.
2. **Coarse** (two workers at once): the whole audio track (:func:`adbreak.scan.passes.audio_pass`) and the intra
   frames with the logo learned from them (:func:`~adbreak.scan.passes.keyframe_pass`).
3. **Plan** (:func:`adbreak.scan.plan.plan_windows`): full-rate windows around every candidate boundary.
4. **Fine** (two workers, the windows split between them): every cue of the live pipeline on the grid frames in the
   windows (:func:`~adbreak.scan.passes.window_pass`), with the logo the coarse pass learned.
5. **Decide**: the values on one grid (:func:`adbreak.scan.timeline.assemble`), the exact offline decision of the
   fusion (:func:`edge.fusion.decode_offline`: duration-aware Viterbi, histograms re-estimated from the recording
   itself), each boundary moved onto the exact black frame (:func:`~adbreak.scan.timeline.snap_to_frames`).

``full=True`` (and any recording without sound) analyses every grid frame instead of windows: the same decision on
complete evidence, at the cost of a full decode. Workers are spawned processes (decoding and analysis hold the
interpreter lock); ``workers=1`` runs everything in this process.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from adbreak.errors import AdbreakError
from adbreak.scan import passes
from adbreak.scan.plan import PlanConfig, merge, plan_windows
from adbreak.scan.result import ScanResult
from adbreak.scan.timeline import assemble, edges, snap_to_frames
from adbreak.segments import PROGRAM_LABEL, Segment
from edge.fusion import FusionConfig
from edge.fusion.decoder import decode_offline

log = logging.getLogger(__name__)

GRID_FPS = 5.0
"""Analysed frames a second: the live pipeline's rate (``edge.pipeline.DEFAULT_FPS``)."""
THUMBNAIL_STEP_S = 10.0
SILENCE_DBFS = -50.0
"""A 50 ms window of sound below this level is silent, for placing a boundary on the edge of a silence (the silence
cue's absolute floor, ``edge.cues.audio.SilenceConfig.max_silence_db``)."""


@dataclass(frozen=True)
class Probe:
    """What a recording holds."""

    container: str
    video_codec: str
    width: int
    height: int
    fps: float
    duration_s: float
    audio_codec: str | None
    interlaced: bool | None
    truncated_packet: bool = False  # an MPEG-TS whose size is not a whole number of 188-byte packets

    def to_json(self) -> dict[str, Any]:
        return {
            "container": self.container,
            "video_codec": self.video_codec,
            "width": self.width,
            "height": self.height,
            "fps": round(self.fps, 3),
            "duration_s": round(self.duration_s, 3),
            "audio_codec": self.audio_codec,
            "interlaced": self.interlaced,
        }


def probe(path: str | Path) -> Probe:
    """Open ``path`` and read its streams; a one-line error for a missing file, not a video, or no video stream."""
    p = Path(path)
    if not p.is_file():
        raise AdbreakError(f"recording not found: {path}")
    container = passes.open_container(p)
    try:
        if not container.streams.video:
            raise AdbreakError(f"{p.name} has no video stream")
        v = container.streams.video[0]
        rate = v.average_rate or v.guessed_rate or v.base_rate
        fps = float(rate) if rate else 25.0
        if not (1.0 <= fps <= 240.0):
            fps = 25.0
        duration = None
        if v.duration is not None and v.time_base is not None:
            duration = float(v.duration * v.time_base)
        if (duration is None or duration <= 0) and container.duration is not None:
            duration = container.duration / 1_000_000
        a = container.streams.audio[0] if container.streams.audio else None
        return Probe(
            container=container.format.name,
            video_codec=v.codec_context.name,
            width=v.codec_context.width,
            height=v.codec_context.height,
            fps=fps,
            duration_s=float(duration or 0.0),
            audio_codec=a.codec_context.name if a is not None else None,
            interlaced=None,  # known once intra frames are decoded
            truncated_packet=container.format.name == "mpegts" and p.stat().st_size % 188 != 0
            and p.stat().st_size % 192 != 0,  # (192: M2TS, a timestamp before each packet)
        )
    finally:
        container.close()


class _Pool:
    """Runs pass functions on ``workers`` cores: one here, the others each on a spawned worker process (spawned once,
    reused by every pass: its imports are paid once)."""

    def __init__(self, workers: int) -> None:
        self._executor = (
            ProcessPoolExecutor(max_workers=workers - 1, mp_context=get_context("spawn")) if workers > 1 else None
        )

    def run(self, calls: list[tuple[Callable[..., Any], tuple, dict]]) -> list[Any]:
        """Every ``(fn, args, kwargs)``'s result, in order: the last runs here while the others run on the
        workers."""
        if self._executor is None or len(calls) == 1:
            return [fn(*args, **kwargs) for fn, args, kwargs in calls]
        futures: list[Future] = [self._executor.submit(fn, *args, **kwargs) for fn, args, kwargs in calls[:-1]]
        fn, args, kwargs = calls[-1]
        here = fn(*args, **kwargs)
        return [f.result() for f in futures] + [here]

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)


def _split(windows: list[tuple[float, float]], parts: int) -> list[list[tuple[float, float]]]:
    """Windows in time order cut into ``parts`` contiguous runs of about equal total length."""
    if parts <= 1 or len(windows) <= 1:
        return [windows]
    total = sum(b - a for a, b in windows)
    out: list[list[tuple[float, float]]] = [[] for _ in range(parts)]
    acc = 0.0
    for w in windows:
        i = min(parts - 1, int(acc / total * parts)) if total > 0 else 0
        out[i].append(w)
        acc += w[1] - w[0]
    return [o for o in out if o]


def scan_recording(
    recording: str | os.PathLike[str],
    *,
    bundle_path: str | os.PathLike[str] | None = None,
    full: bool = False,
    workers: int = 2,
    thumbnails: bool = False,
    fusion: FusionConfig | None = None,
    plan: PlanConfig | None = None,
    progress: bool = False,
) -> ScanResult:
    """Scan ``recording`` for ad breaks (module doc). ``bundle_path`` adds a trained head's p(ad) to the cues.
    Raises :class:`AdbreakError` (one line) when the file is missing or nothing of it decodes; a damaged recording
    is scanned as far as it decodes, its gaps and a warning in the result. ``progress``: a bar on stderr, one step
    per pass."""
    from tqdm import tqdm

    started = time.perf_counter()
    path = Path(recording)
    timings: dict[str, float] = {}
    info = probe(path)
    timings["probe"] = time.perf_counter() - started
    bundle = str(bundle_path) if bundle_path is not None else None
    if bundle is not None:
        from edge.bundle import ModelBundle

        ModelBundle.load(bundle)  # a bad bundle fails here, with its own one-line error, before any decoding
    cfg = fusion or FusionConfig()
    workers = max(1, int(workers))
    warnings: list[str] = []
    pool = _Pool(workers)
    bar = tqdm(total=3, desc=f"scan {path.name}: sound and intra frames", unit="pass", disable=not progress,
               leave=False)
    try:
        # 2. coarse: the duration may be unknown or wrong (a cut-off recording): the grid follows what decodes
        t0 = time.perf_counter()
        n_guess = int(math.ceil((info.duration_s + 5.0) * GRID_FPS)) if info.duration_s > 0 else 0
        calls: list[tuple[Callable[..., Any], tuple, dict]] = [
            (passes.keyframe_pass, (str(path),), {"thumbnails": thumbnails, "thumbnail_step_s": THUMBNAIL_STEP_S})]
        if n_guess:  # the sound here (FFmpeg's program decodes it beside both), the intra frames on the worker
            calls.append((passes.audio_pass, (str(path), n_guess, GRID_FPS), {}))
        coarse = pool.run(calls)
        keys: passes.KeyframeResult = coarse[0]
        audio: passes.AudioResult | None = coarse[1] if n_guess else None
        timings["coarse"] = time.perf_counter() - t0
        last_t = float(keys.t[-1])
        duration = info.duration_s if info.duration_s > 0 else last_t + keys.intervals
        if last_t > duration:
            duration = last_t + min(keys.intervals, 1.0)
        n = int(math.floor(duration * GRID_FPS - 1e-9)) + 1
        if info.audio_codec is None:
            warnings.append("no sound track: the picture alone decides (every frame analysed)")
        elif audio is None:
            warnings.append("the audio track did not decode: the picture alone decides")
        if audio is not None and not np.isfinite(audio.silence[:n]).any():
            audio = None
            warnings.append("the audio track did not decode: the picture alone decides")

        # 3. plan
        t0 = time.perf_counter()
        windows = None
        if not full:
            windows = plan_windows(duration, GRID_FPS, audio.silence[:n] if audio is not None else None, keys.t,
                                   keys.black, keys.logo, plan)
        mode = "fast" if windows is not None else "full"
        if windows is None:
            windows = [(0.0, duration + 1.0)]
        else:  # the last intra frame's group to the end: where the video really ends (a cut-off recording)
            windows = merge([*windows, (last_t, duration + keys.intervals + 1.0)], 3.0, duration + keys.intervals + 1.0)
        timings["plan"] = time.perf_counter() - t0
        bar.update(1)
        bar.set_description(f"scan {path.name}: {sum(b - a for a, b in windows):.0f} s at full rate")

        # 4. fine
        t0 = time.perf_counter()
        parts = _split(windows, workers)
        fine: list[passes.GridValues] = pool.run([
            (passes.window_pass, (str(path), part, GRID_FPS),
             {"scorer": keys.scorer, "bundle_path": bundle, "lead_s": keys.intervals + 1.0}) for part in parts])
        timings["fine"] = time.perf_counter() - t0
        bar.update(1)
        bar.set_description(f"scan {path.name}: deciding")
    finally:
        pool.close()

    # 5. decide: the recording lasts to its last decoded frame when that is well before what its header says
    t0 = time.perf_counter()
    frames_end = max([last_t, *(g.frame_t[-1] for g in fine if g.frame_t)]) + 1.0 / info.fps
    if frames_end < duration - 2.0:
        warnings.append(f"the video ends at {frames_end:.1f} s, not at {duration:.1f} s as its header says (cut off?)")
        duration = frames_end
        n = int(math.floor(duration * GRID_FPS - 1e-9)) + 1
    key_k = np.floor((keys.t + 1e-3) * GRID_FPS).astype(np.int64)
    key_values = {"black": keys.black, "luma": keys.luma, "logo": keys.logo}
    audio_cols = {"silence": audio.silence, "loudness": audio.loudness} if audio is not None else None
    t, cols = assemble(n, GRID_FPS, audio=audio_cols, key_k=key_k, key_values=key_values,
                       windows=[(g.k, g.columns) for g in fine], spans=[sp for g in fine for sp in g.spans],
                       max_hold_s=max(3 * keys.intervals, 30.0))
    if not np.isfinite(cols["logo"]).any() and keys.scorer is None:
        warnings.append("no channel logo found: the other cues decide")
    decided = decode_offline(t, cols, cfg, duration=duration)
    if not any(seg.label == PROGRAM_LABEL for seg in decided.segments):
        # all of it an ad break: no structure was found that tells a show from its breaks (no logo, no separators
        # framing a break inside program); marking nothing is the safe answer, as a player would skip everything
        warnings.append("no show and break structure found (no logo, no separated break): nothing marked")
        decided = dataclasses.replace(decided, segments=[Segment(0.0, duration, PROGRAM_LABEL)])
    frame_t = np.concatenate([np.asarray(g.frame_t) for g in fine]) if fine else np.zeros(0)
    frame_black = np.concatenate([np.asarray(g.frame_black) for g in fine]) if fine else np.zeros(0)
    black_edges = edges(frame_t, frame_black >= 0.5, max_step_s=1.5 / info.fps)
    silence_edges = None
    if audio is not None and audio.levels.size:
        level_t = audio.levels_t0 + audio.level_step * np.arange(audio.levels.size)
        silence_edges = edges(level_t, audio.levels < SILENCE_DBFS, max_step_s=1.5 * audio.level_step)
    segments = snap_to_frames(decided.segments, black_edges, silence_edges)
    timings["decide"] = time.perf_counter() - t0
    bar.update(1)
    bar.close()

    gaps = sorted({*keys.gaps, *(audio.gaps if audio else []), *(s for g in fine for s in g.gaps)})
    errors = keys.errors + (audio.errors if audio else 0) + sum(g.errors for g in fine)
    corrupt = sum(g.corrupt for g in fine)
    if gaps or errors or corrupt:
        what = []
        if gaps:
            where = ", ".join(f"{a:.1f}-{b:.1f} s" for a, b in gaps[:5]) + (" ..." if len(gaps) > 5 else "")
            what.append(f"missing at {where}")
        if errors:
            what.append(f"{errors} corrupt packet{'s' if errors != 1 else ''} skipped")
        if corrupt:
            what.append(f"{corrupt} damaged frame{'s' if corrupt != 1 else ''} concealed by the decoder")
        warnings.append("damaged recording: " + "; ".join(what))
    if info.truncated_packet:
        warnings.append("the recording ends inside a TS packet (cut off?)")
    timings["total"] = time.perf_counter() - started
    frames = sum(len(g.k) for g in fine)
    thumbs = keys.thumbnails
    return ScanResult(
        recording=path,
        duration_s=duration,
        fps=info.fps,
        segments=segments,
        mode=mode,
        frames_analysed=frames,
        timings=timings,
        gaps=gaps,
        warnings=warnings,
        info={**info.to_json(), "interlaced": keys.interlaced, "windows": len(windows) if mode == "fast" else 0,
              "window_s": round(sum(b - a for a, b in windows), 1) if mode == "fast" else round(duration, 1),
              "intra_frames": len(keys.t), "intra_interval_s": round(keys.intervals, 3),
              "logo": keys.scorer is not None, "audio": audio is not None, "corrupt_packets": errors},
        thumbnails=thumbs,
    )
