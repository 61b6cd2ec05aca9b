"""Every pass's values on one frame grid, and the decided boundaries moved onto the exact frame.

:func:`assemble` lays the audio pass (silence and loudness on every grid frame), the intra frames (black, level and
logo on the grid frame each falls in) and the full-rate windows (every cue on every grid frame inside) onto the
grid. Between two known logo values that agree, with no window between them, the logo is held: the same show (or
the same spot) was on screen, as the planner made sure (:mod:`adbreak.scan.plan`), so a stretch's logo share and the
fusion's cold-open test see it whole. Everything else not measured stays NaN: the fusion's block statistics average
what is known (:mod:`edge.fusion.evidence`).

:func:`snap_to_frames` moves each decided boundary that lies at the edge of a black run onto the exact decoded
frame where the run begins or ends (the analysis grid is 5 frames a second; the recording has 25 or 30).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from adbreak.segments import Segment, is_ad, merge_adjacent
from edge.fusion import CUE_COLUMNS

LOGO_HOLD_TOLERANCE = 0.25
"""Two logo values closer than this are the same state (held between them)."""


def assemble(
    n: int,
    fps: float,
    *,
    audio: dict[str, np.ndarray] | None,
    key_k: np.ndarray,
    key_values: dict[str, np.ndarray],
    windows: Sequence[tuple[Sequence[int], dict[str, Sequence[float]]]],
    spans: Sequence[tuple[int, int]] = (),
    max_hold_s: float,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``(t, columns)`` on the grid ``k / fps`` for ``k < n``: the scores file's columns (NaN = not measured).
    ``windows``: per worker, its grid frames and their values; ``spans``: the first and last grid frame of every
    full-rate window (the logo is never held across one)."""
    t = np.arange(n, dtype=np.float64) / fps
    cols = {name: np.full(n, math.nan) for name in CUE_COLUMNS}
    if audio is not None:
        for name, values in audio.items():
            cols[name][: len(values)] = values[:n]
    ok = (key_k >= 0) & (key_k < n)
    for name, values in key_values.items():
        cols[name][key_k[ok]] = np.asarray(values)[ok]
    in_window = np.zeros(n, bool)
    for ks, values in windows:
        idx = np.asarray(ks, dtype=np.int64)
        keep = (idx >= 0) & (idx < n)
        idx = idx[keep]
        for name, vals in values.items():
            if name in cols:
                cols[name][idx] = np.asarray(vals, dtype=np.float64)[keep]
    for k0, k1 in spans:
        in_window[max(0, k0) : min(n, k1 + 1)] = True
    cols["logo"] = _hold(cols["logo"], in_window, max(1, int(round(max_hold_s * fps))))
    return t, cols


def _hold(values: np.ndarray, fixed: np.ndarray, max_gap: int) -> np.ndarray:
    """Fill NaN runs (outside ``fixed``, at most ``max_gap`` frames) between two known values that agree."""
    out = values.copy()
    known = np.flatnonzero(np.isfinite(values))
    for i, j in zip(known[:-1].tolist(), known[1:].tolist(), strict=True):
        if j - i <= 1 or j - i > max_gap or fixed[i + 1 : j].any():
            continue
        a, b = values[i], values[j]
        if abs(a - b) < LOGO_HOLD_TOLERANCE:
            out[i + 1 : j] = 0.5 * (a + b)
    return out


def edges(t: np.ndarray, on: np.ndarray, *, max_step_s: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """``(starts, ends)``: the times where ``on`` turns on (the first frame that is on) and off (the first frame that
    is off again), counting only changes between neighbouring samples (``max_step_s`` apart at most)."""
    if len(t) < 2:
        return np.zeros(0), np.zeros(0)
    order = np.argsort(t, kind="stable")
    tt, oo = t[order], on[order]
    close = np.diff(tt) <= max_step_s
    rise = close & ~oo[:-1] & oo[1:]
    fall = close & oo[:-1] & ~oo[1:]
    return tt[1:][rise], tt[1:][fall]


def snap_to_frames(
    segments: Sequence[Segment],
    black: tuple[np.ndarray, np.ndarray],
    silence: tuple[np.ndarray, np.ndarray] | None = None,
    *,
    reach_s: float = 0.3,
) -> list[Segment]:
    """Move each boundary onto the exact edge of the separator it was decided at: a break begins with its first black
    frame and ends after its last one (the segment file's convention), so program -> ad moves to the nearest start of
    a black run within ``reach_s``, ad -> program to the nearest end of one; where no black edge is that close, the
    edge of a silent run (``silence``: the sound's own starts and ends of silence, 50 ms apart) is used the same way
    (spots joined without black still open and close on silence). Other boundaries stay."""
    out = list(segments)
    for i in range(len(out) - 1):
        b = out[i].end
        into_ad = is_ad(out[i + 1].label) and not is_ad(out[i].label)
        out_of_ad = is_ad(out[i].label) and not is_ad(out[i + 1].label)
        if not (into_ad or out_of_ad):
            continue
        choice = None
        for starts, ends in (black, silence) if silence is not None else (black,):
            candidates = starts if into_ad else ends
            if candidates.size:
                j = int(np.argmin(np.abs(candidates - b)))
                if abs(candidates[j] - b) <= reach_s:
                    choice = float(candidates[j])
                    break
        if choice is not None and out[i].start < choice < out[i + 1].end:
            out[i] = Segment(out[i].start, choice, out[i].label)
            out[i + 1] = Segment(choice, out[i + 1].end, out[i + 1].label)
    return merge_adjacent(out)
