"""``adbreak evaluate``: the live pipeline run over a recording as if live, or the decision stage alone on scores.

Online mode decodes, samples, preprocesses, runs the backbone, the head and the decision exactly as the edge agent
does, frame by frame (decoding overlaps inference in a second thread, as on the edge; here the resize runs in that
thread too). Each transition's latency is its decision's stream time minus the true transition time, plus the wall
time the pipeline took on that frame (its resize included).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from adbreak.errors import AdbreakError
from adbreak.metrics import evaluate_segments, transition_latencies
from adbreak.scores import read_scores, write_scores
from adbreak.segments import Segment, read_segments
from edge.bundle import ModelBundle
from edge.decision import AdStateMachine, DecisionConfig, Transition, transitions_to_segments
from edge.fusion import CUE_COLUMNS, FusionConfig, FusionDecision
from edge.geometry import Geometry
from edge.pipeline import Decider, Detector
from edge.sources import Prefetcher
from edge.sources.process import ProcessSource


@dataclass
class EvaluationRun:
    metrics: dict[str, Any]
    predicted: list[Segment]
    transitions: list[Transition]
    decision: DecisionConfig
    scores: dict[str, np.ndarray] = field(default_factory=dict)


def _predicted(
    machine: AdStateMachine | FusionDecision, transitions: list[Transition], duration: float
) -> list[Segment]:
    initial = machine.initial_state
    if initial is None:
        raise AdbreakError("too few frames to reach a decision (the recording is shorter than the smoothing window)")
    return transitions_to_segments(initial, transitions, duration)


def evaluate_video(
    video: str | Path,
    truth_path: str | Path,
    bundle_path: str | Path | None = None,
    *,
    decision: DecisionConfig | None = None,
    fusion: FusionConfig | None = None,
    decider: Decider = "fusion",
    geometry: Geometry | None = None,
    fps: float | None = None,
    record_scores: str | Path | None = None,
    progress: bool = True,
    state_dir: str | Path | None = None,
) -> EvaluationRun:
    """The live pipeline over a recording as if live; without ``bundle_path`` on the cues alone. ``state_dir``: a
    device's learned state to start from and to keep (default: a brand-new device, nothing kept)."""
    from tqdm import tqdm

    truth = read_segments(truth_path)
    duration = truth[-1].end
    bundle = ModelBundle.load(bundle_path) if bundle_path is not None else None
    detector = Detector(bundle, decision, geometry, fusion=fusion, decider=decider, state_dir=state_dir)
    # decoded in a child process (the interpreter lock would make a decoding thread and the analysis take turns); the
    # child also converts each frame to its model input and screen luma, so only those small pictures cross over.
    # With a model the child measures the per-frame cues too (Detector.stream_converter): the backbone makes this
    # process the busier one. Without a model decoding is the bulk of the work, and the cues stay here.
    # With two cores or fewer and a model, the backbone needs the other core: the decoder then uses one thread
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    convert = detector.stream_converter() if bundle is not None else detector.converter
    source = ProcessSource(str(video), fps or detector.fps, convert=convert,
                           threads=cores > 2 or bundle is None, luma_only=bundle is None and detector.cues is not None)
    ts: list[float] = []
    cue_rows: dict[str, list[float]] = {name: [] for name in CUE_COLUMNS if name != "p_ad"}
    p_ads: list[float] = []
    smoothed: list[float] = []
    probs: list[np.ndarray] = []
    transitions: list[Transition] = []
    decided: list[tuple[float, float, str]] = []
    bar = tqdm(total=round(duration, 1), desc="evaluate", unit="s", disable=not progress, leave=False)
    started = time.perf_counter()
    # the resize runs in the decoding thread (Detector.prepare), so the queue holds model inputs, not full frames
    with Prefetcher(source, maxsize=16, drop_oldest=False, transform=detector.prepare) as frames:
        for frame in frames:
            if frame.t >= duration:
                break
            r = detector.process(frame)
            ts.append(r.t)
            p_ads.append(r.p_ad)
            smoothed.append(r.smoothed)
            probs.append(r.probs)
            for name, values in cue_rows.items():
                values.append(r.cues.get(name, math.nan))
            if r.transition is not None:
                transitions.append(r.transition)
                decided.append(
                    (r.transition.decided_t + r.latency_s, r.transition.boundary_t, r.transition.to_label.value)
                )
            bar.update(round(r.t - bar.n, 1))
    wall = time.perf_counter() - started
    bar.close()
    detector.close()  # keeps what the device learned when it has a state folder
    end = ts[-1] if ts else 0.0
    if end < duration - 2.0:
        raise AdbreakError(
            f"{video} ends at {end:.1f} s but its truth runs to {duration:.1f} s (truncated video or wrong truth file?)"
        )
    if source.decode_errors:
        import logging

        logging.getLogger(__name__).warning("%s: %d corrupt packets skipped", video, source.decode_errors)
    predicted = _predicted(detector.machine, transitions, duration)
    metrics = evaluate_segments(
        truth,
        predicted,
        latencies_s=transition_latencies(truth, decided),
        frames=len(ts),
        wall_s=wall,
        duration_s=duration,
    )
    head_p = np.array(p_ads) if bundle is not None else np.full(len(ts), math.nan)
    columns = {"t": np.array(ts), "p_ad": head_p, "smoothed": np.array(smoothed)}
    if detector.cues is not None:  # every cue column, empty where it could not be measured (no audio, no logo yet)
        for name, values in cue_rows.items():
            columns[name] = np.array(values)
    if probs and bundle is not None:
        stacked = np.vstack(probs)
        for k, label in enumerate(bundle.labels):
            columns[f"p_{label}"] = stacked[:, k]
    if record_scores:
        extras = {k: v for k, v in columns.items() if k not in ("t", "p_ad")}
        write_scores(record_scores, columns["t"], columns["p_ad"], extras)
    return EvaluationRun(metrics, predicted, transitions, detector.decision, columns)


def evaluate_scores(
    scores_path: str | Path,
    truth_path: str | Path,
    *,
    decision: DecisionConfig | None = None,
    fusion: FusionConfig | None = None,
    decider: Decider = "fusion",
) -> EvaluationRun:
    """Re-run only the decision on recorded per-frame scores: the fusion of every cue column present (default), or
    the smoothing state machine on ``p_ad`` alone. Both run frame by frame, as live."""
    truth = read_segments(truth_path)
    duration = truth[-1].end
    t, p_ad, extras = read_scores(scores_path)
    cfg = decision or DecisionConfig()
    machine: AdStateMachine | FusionDecision
    if decider == "smoothing":
        if np.isnan(p_ad).any():
            raise AdbreakError(f"{Path(scores_path).name}: the smoothing decider needs p_ad on every row")
        machine = AdStateMachine(cfg)
        feed = [float(v) for v in p_ad]
    else:
        machine = FusionDecision(fusion)
        names = [n for n in CUE_COLUMNS if n == "p_ad" or n in extras]
        matrix = np.vstack([p_ad if n == "p_ad" else extras[n] for n in names])
        feed = [dict(zip(names, matrix[:, i].tolist(), strict=True)) for i in range(len(t))]
    transitions: list[Transition] = []
    decided: list[tuple[float, float, str]] = []
    started = time.perf_counter()
    for ti, pi in zip(t.tolist(), feed, strict=True):
        if ti >= duration:
            break
        step = machine.update(ti, pi)
        if step.transition is not None:
            transitions.append(step.transition)
            decided.append((step.transition.decided_t, step.transition.boundary_t, step.transition.to_label.value))
    wall = time.perf_counter() - started
    predicted = _predicted(machine, transitions, duration)
    metrics = evaluate_segments(
        truth,
        predicted,
        latencies_s=transition_latencies(truth, decided),
        frames=int((t < duration).sum()),
        wall_s=wall,
        duration_s=duration,
    )
    return EvaluationRun(metrics, predicted, transitions, cfg)
