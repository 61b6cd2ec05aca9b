"""A two-state semi-Markov decoder over blocks: exact Viterbi with duration priors.

The states are program and ad. A *segment* is a run of consecutive blocks with one state; its score is the sum of
its blocks' evidence for that state (``e`` = log-likelihood ratio of ad over program, so program scores 0), plus
the log-prior of its duration (:func:`duration_logprior`), minus ``switch_cost`` for every change. The decoder
finds the segmentation with the highest total score exactly, in O(B^2) for B blocks (a program segment is usually
one or a few blocks, so B stays small: about 150 for a 30-minute recording).

Edges: the first segment may be pinned to a state (live, the state already decided) and may have begun before the
first block (``first_start_t``); a segment touching an edge of the stretch has an unknown length, so the minimum
duration does not apply to it there (``first_exempt``, ``open_end``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.fusion.config import FusionConfig

PROGRAM, AD = 0, 1
_NEG = -1e18


def duration_logprior(label: int, duration: np.ndarray, cfg: FusionConfig, exempt_min: bool | np.ndarray) -> np.ndarray:
    """Log-prior (nats, <= 0) of segments of ``label`` lasting ``duration`` seconds: flat between the minimum and the
    maximum, falling linearly outside (``short_penalty`` / ``long_penalty`` per second)."""
    d = np.asarray(duration, dtype=np.float64)
    lo = cfg.min_break_s if label == AD else cfg.min_program_s
    short = np.where(exempt_min, 0.0, cfg.short_penalty * np.maximum(0.0, lo - d))
    long = cfg.long_penalty * np.maximum(0.0, d - cfg.max_break_s) if label == AD else 0.0
    return -(short + long)


@dataclass(frozen=True)
class Decoded:
    """The best segmentation: ``segments`` as (first block, last block inclusive, state); ``best_end`` the best total
    score of a segmentation whose last segment has each state (index PROGRAM, AD)."""

    segments: list[tuple[int, int, int]]
    best_end: tuple[float, float]
    best_path_end: dict[int, list[tuple[int, int, int]]]


def viterbi(
    t0: np.ndarray,
    t1: np.ndarray,
    e: np.ndarray,
    cfg: FusionConfig,
    *,
    first_label: int | None = None,
    first_start_t: float | None = None,
    first_exempt: bool = True,
    open_end: bool = True,
) -> Decoded:
    """Exact semi-Markov Viterbi over ``len(e)`` blocks (see the module doc)."""
    n = len(e)
    if n == 0:
        return Decoded([], (0.0, 0.0), {PROGRAM: [], AD: []})
    cum = np.concatenate(([0.0], np.cumsum(e)))
    starts = t0.astype(np.float64).copy()
    if first_start_t is not None:
        starts[0] = min(first_start_t, starts[0])
    best = np.full((n, 2), _NEG)  # best score of blocks [0..j] with a segment of state L ending at j (closed)
    back = np.zeros((n, 2), dtype=np.int64)
    final = np.full(2, _NEG)
    final_back = np.zeros(2, dtype=np.int64)
    for j in range(n):
        i = np.arange(j + 1)
        dur = t1[j] - starts[: j + 1]
        for label in (PROGRAM, AD):
            prev = np.empty(j + 1)
            if first_label is None or first_label == label:
                prev[0] = 0.0
            else:
                prev[0] = _NEG
            if j > 0:
                prev[1:] = best[: j, 1 - label] - cfg.switch_cost
            ev = (cum[j + 1] - cum[: j + 1]) if label == AD else np.zeros(j + 1)
            exempt_first = (i == 0) & first_exempt
            closed = prev + ev + duration_logprior(label, dur, cfg, exempt_first)
            k = int(np.argmax(closed))
            best[j, label], back[j, label] = closed[k], k
            if j == n - 1:
                last = prev + ev + duration_logprior(label, dur, cfg, exempt_first | open_end)
                k = int(np.argmax(last))
                final[label], final_back[label] = last[k], k

    def trace(label: int) -> list[tuple[int, int, int]]:
        segs: list[tuple[int, int, int]] = []
        j, k = n - 1, int(final_back[label])
        while True:
            segs.append((k, j, label))
            if k == 0:
                break
            j, label = k - 1, 1 - label
            k = int(back[j, label])
        return segs[::-1]

    paths = {label: trace(label) if final[label] > _NEG / 2 else [] for label in (PROGRAM, AD)}
    winner = AD if final[AD] > final[PROGRAM] else PROGRAM
    return Decoded(paths[winner], (float(final[PROGRAM]), float(final[AD])), paths)
