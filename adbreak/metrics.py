"""The contract's evaluation metrics: predicted segments against true segments.

Everything is binary: a segment is ad when its label is ``"ad"`` (:func:`adbreak.segments.is_ad`) and non-ad
("program") otherwise, so a truth with extra classes (``bumper``, ``news``...) is scored as program wherever it is not
``ad``. Definitions (JSON keys exactly these, in this order):

- Time-based keys use a 0.1 s grid over the truth's duration, sampled at cell centres (0.05, 0.15, ...):
  ``accuracy`` is the fraction of cells whose predicted ad/non-ad equals the truth's; ``ad_missed_s`` counts ad cells
  predicted as program, ``program_lost_s`` program cells predicted as ad (0.1 s each). A prediction that ends before
  the truth is extended with its last label; one that goes on past it is cut.
- Segment-based keys first merge adjacent segments into alternating ad / non-ad runs; the ad runs are *breaks*.
  ``false_breaks``: predicted breaks that overlap no true ad time. ``missed_breaks``: true breaks of which less than
  half is predicted ad.
- ``transitions_*``: changes between ad and non-ad (the recording's start is not one). Matched = same direction,
  within ±10 s, one-to-one, greedily by increasing time error. ``boundary_err_median_s`` / ``boundary_err_p95_s``:
  absolute errors of the matched ones (numpy linear percentile; None when none matched).
- ``flaps``: predicted runs shorter than 10 s, not counting a run that touches the start or end of the recording
  (the recording truncated it, so its length says nothing about the decision).
- ``segment_f1``: F1 of predicted breaks against true breaks matched one-to-one at IoU >= 0.5 (greedily by
  decreasing IoU); 1.0 when neither side has a break.
- ``latency_median_s`` / ``latency_p95_s``: from ``latencies_s`` (see :func:`transition_latencies`); None without.
- ``frames`` as given; ``fps_analysed`` = frames / wall_s; ``realtime_factor`` = duration / wall_s (video seconds per
  wall second); None when not given.

Floats are rounded to 4 decimals.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from adbreak.segments import Segment, is_ad

GRID_S = 0.1
MATCH_WINDOW_S = 10.0
FLAP_S = 10.0
IOU_MIN = 0.5
_EPS = 1e-9

METRIC_KEYS: tuple[str, ...] = (
    "accuracy",
    "ad_missed_s",
    "program_lost_s",
    "false_breaks",
    "missed_breaks",
    "transitions_true",
    "transitions_pred",
    "transitions_matched",
    "boundary_err_median_s",
    "boundary_err_p95_s",
    "flaps",
    "segment_f1",
    "latency_median_s",
    "latency_p95_s",
    "frames",
    "fps_analysed",
    "realtime_factor",
)

_UNITS: dict[str, str] = {
    "ad_missed_s": "s",
    "program_lost_s": "s",
    "boundary_err_median_s": "s",
    "boundary_err_p95_s": "s",
    "latency_median_s": "s",
    "latency_p95_s": "s",
    "fps_analysed": "frames/s",
    "realtime_factor": "x",
}

Run = tuple[float, float, bool]
"""``(start, end, is_ad)`` — one run of a binary (ad / non-ad) timeline."""


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def _binary_runs(segments: Sequence[Segment], duration: float) -> list[Run]:
    """Alternating ad / non-ad runs tiling ``[0, duration]``: merged, cut at ``duration``, last one extended to it."""
    runs: list[Run] = []
    for seg in segments:
        start, end = max(seg.start, 0.0), min(seg.end, duration)
        if end <= start:
            continue
        ad = is_ad(seg.label)
        if runs and runs[-1][2] == ad:
            runs[-1] = (runs[-1][0], end, ad)
        else:
            runs.append((start, end, ad))
    if runs and runs[-1][1] < duration:
        runs[-1] = (runs[-1][0], duration, runs[-1][2])
    return runs


def _transitions(runs: Sequence[Run]) -> list[tuple[float, bool]]:
    """``(time, to_ad)`` for each change between consecutive runs."""
    return [(runs[i][0], runs[i][2]) for i in range(1, len(runs))]


def _match_transitions(
    truth: Sequence[tuple[float, bool]], pred: Sequence[tuple[float, bool]], window: float = MATCH_WINDOW_S
) -> list[tuple[int, int, float]]:
    """One-to-one matches ``(truth index, pred index, pred time - truth time)``: same direction, ``|dt| <= window``,
    greedily by increasing ``|dt|`` (ties by time order)."""
    candidates = [
        (abs(pt - tt), i, j, pt - tt)
        for i, (tt, t_ad) in enumerate(truth)
        for j, (pt, p_ad) in enumerate(pred)
        if t_ad == p_ad and abs(pt - tt) <= window + _EPS
    ]
    candidates.sort()
    used_t: set[int] = set()
    used_p: set[int] = set()
    matches: list[tuple[int, int, float]] = []
    for _, i, j, dt in candidates:
        if i not in used_t and j not in used_p:
            used_t.add(i)
            used_p.add(j)
            matches.append((i, j, dt))
    matches.sort()
    return matches


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def _percentiles(values: Sequence[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    arr = np.asarray(values, dtype=np.float64)
    return _round(float(np.percentile(arr, 50))), _round(float(np.percentile(arr, 95)))


def _grid_labels(segments: Sequence[Segment], centres: np.ndarray) -> np.ndarray:
    """Boolean is-ad at each grid centre; before the first segment its label, after the last one its label."""
    starts = np.asarray([seg.start for seg in segments], dtype=np.float64)
    flags = np.asarray([is_ad(seg.label) for seg in segments], dtype=bool)
    idx = np.clip(np.searchsorted(starts, centres, side="right") - 1, 0, len(segments) - 1)
    return flags[idx]


def evaluate_segments(
    truth: Sequence[Segment],
    predicted: Sequence[Segment],
    *,
    latencies_s: Sequence[float] | None = None,
    frames: int | None = None,
    wall_s: float | None = None,
    duration_s: float | None = None,
) -> dict[str, Any]:
    """The contract's metrics of ``predicted`` against ``truth`` (see the module doc), keys in contract order.

    ``duration_s`` is the analysed video's duration for ``realtime_factor`` (default: the truth's end); the grid
    always covers the truth. Raises ``ValueError`` when either list is empty or the truth has no length.
    """
    if not truth:
        raise ValueError("truth has no segments")
    if not predicted:
        raise ValueError("prediction has no segments")
    duration = float(truth[-1].end)
    if not duration > 0:
        raise ValueError("truth has no length")

    n = max(1, int(round(duration / GRID_S)))
    centres = np.minimum((np.arange(n, dtype=np.float64) + 0.5) * GRID_S, duration)
    truth_ad = _grid_labels(truth, centres)
    pred_ad = _grid_labels(predicted, centres)
    accuracy = float(np.mean(truth_ad == pred_ad))
    ad_missed = int(np.count_nonzero(truth_ad & ~pred_ad)) * GRID_S
    program_lost = int(np.count_nonzero(~truth_ad & pred_ad)) * GRID_S

    truth_runs = _binary_runs(truth, duration)
    pred_runs = _binary_runs(predicted, duration)
    true_breaks = [(s, e) for s, e, ad in truth_runs if ad]
    pred_breaks = [(s, e) for s, e, ad in pred_runs if ad]

    false_breaks = sum(1 for pb in pred_breaks if sum(_overlap(pb, tb) for tb in true_breaks) <= _EPS)
    missed_breaks = sum(
        1 for tb in true_breaks if sum(_overlap(tb, pb) for pb in pred_breaks) < 0.5 * (tb[1] - tb[0]) - _EPS
    )

    true_tr = _transitions(truth_runs)
    pred_tr = _transitions(pred_runs)
    matches = _match_transitions(true_tr, pred_tr)
    err_median, err_p95 = _percentiles([abs(dt) for _, _, dt in matches])

    flaps = sum(1 for s, e, _ in pred_runs if e - s < FLAP_S and s > _EPS and e < duration - _EPS)

    segment_f1 = _segment_f1(true_breaks, pred_breaks)
    lat_median, lat_p95 = _percentiles([] if latencies_s is None else [float(x) for x in latencies_s])

    run_duration = float(duration_s) if duration_s is not None else duration
    fps = realtime = None
    if wall_s is not None and wall_s > 0:
        realtime = run_duration / wall_s
        if frames is not None:
            fps = frames / wall_s

    metrics: dict[str, Any] = {
        "accuracy": _round(accuracy),
        "ad_missed_s": _round(ad_missed),
        "program_lost_s": _round(program_lost),
        "false_breaks": false_breaks,
        "missed_breaks": missed_breaks,
        "transitions_true": len(true_tr),
        "transitions_pred": len(pred_tr),
        "transitions_matched": len(matches),
        "boundary_err_median_s": err_median,
        "boundary_err_p95_s": err_p95,
        "flaps": flaps,
        "segment_f1": _round(segment_f1),
        "latency_median_s": lat_median,
        "latency_p95_s": lat_p95,
        "frames": None if frames is None else int(frames),
        "fps_analysed": _round(fps),
        "realtime_factor": _round(realtime),
    }
    return metrics


def _segment_f1(true_breaks: Sequence[tuple[float, float]], pred_breaks: Sequence[tuple[float, float]]) -> float:
    """F1 of breaks matched one-to-one at IoU >= 0.5, greedily by decreasing IoU; 1.0 when both sides are empty."""
    if not true_breaks and not pred_breaks:
        return 1.0
    candidates: list[tuple[float, int, int]] = []
    for i, tb in enumerate(true_breaks):
        for j, pb in enumerate(pred_breaks):
            inter = _overlap(tb, pb)
            union = (tb[1] - tb[0]) + (pb[1] - pb[0]) - inter
            iou = inter / union if union > 0 else 0.0
            if iou >= IOU_MIN - _EPS:
                candidates.append((-iou, i, j))
    candidates.sort()
    used_t: set[int] = set()
    used_p: set[int] = set()
    for _, i, j in candidates:
        if i not in used_t and j not in used_p:
            used_t.add(i)
            used_p.add(j)
    return 2.0 * len(used_t) / (len(true_breaks) + len(pred_breaks))


def transition_latencies(truth: Sequence[Segment], decided: Sequence[tuple[float, float, str]]) -> list[float]:
    """Online decision latencies: ``decided_t - true transition time`` for each true transition matched by a decided
    one (``(decided_t, boundary_t, new_label)``): same direction (ad / non-ad of ``new_label``), ``boundary_t``
    within ±10 s, one-to-one, greedily by increasing boundary error. Returned in the true transitions' time order.
    """
    if not truth:
        raise ValueError("truth has no segments")
    true_tr = _transitions(_binary_runs(truth, float(truth[-1].end)))
    pred_tr = [(float(boundary_t), is_ad(label)) for _, boundary_t, label in decided]
    return [float(decided[j][0]) - true_tr[i][0] for i, j, _ in _match_transitions(true_tr, pred_tr)]


def format_metrics(metrics: Mapping[str, Any]) -> str:
    """A readable two-column table of the metrics (contract keys first, in order, then any others)."""
    keys = [k for k in METRIC_KEYS if k in metrics] + [k for k in metrics if k not in METRIC_KEYS]
    width = max((len(k) for k in keys), default=0)
    lines = []
    for key in keys:
        value = metrics[key]
        if value is None:
            text = "n/a"
        elif isinstance(value, float):
            text = "n/a" if math.isnan(value) else f"{value:.4f}"
        else:
            text = str(value)
        unit = _UNITS.get(key, "")
        lines.append(f"{key:<{width}}  {text}{' ' + unit if unit else ''}")
    return "\n".join(lines)
