"""Where a scan decodes at full rate: windows around every place a break could begin or end.

A break's edges are cut points of the fusion (``edge.fusion.evidence``): black or dim separators, a scene cut with
silence next to it, a change of the channel logo. The cheap passes see all of them coarsely:

* every separator of real TV has its sound drop out (spots are padded with silence; Comskip relies on it too), and
  the audio pass has the silence cue on *every* grid frame: each silent run gets a window;
* an intra frame that is black or dim is a separator the sound may not have shown: a window from the intra frame
  before it to the one after it;
* two intra frames in a row whose logo presence differs enclose a change of the logo (a break without separators,
  a cold open, a promo): a window over the stretch between them.

Everything else - the long stretches of one show or one spot between those windows - holds no cut point, so the
fusion needs only its block statistics there (the logo share, which the intra frames give). Windows are padded
(the fade test looks at the frames around a dip, the cut cue needs a few frames to know its level) and merged
when close (the decoder would read the frames between them anyway). A recording without sound, or one whose
windows would cover most of it, is analysed whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PlanConfig:
    pad_s: float = 2.0
    """Seconds of context on each side of a candidate."""
    silence_threshold: float = 0.5
    """A grid frame whose silence cue reaches this is silent (the fusion's own threshold)."""
    black_threshold: float = 0.3
    """An intra frame whose black cue reaches this is a candidate separator (below the fusion's 0.5: a window costs
    little, a missed separator a boundary)."""
    logo_change: float = 0.3
    """Two intra frames in a row whose logo presence differs by this much enclose a change of the logo."""
    max_span_s: float = 12.0
    """A window opened by an intra frame reaches at most this far to its neighbours."""
    merge_gap_s: float = 3.0
    """Windows closer than this are one window."""
    full_share: float = 0.7
    """Windows covering more than this share of the recording: analyse it whole (cheaper than many seeks)."""


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    d = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist(), strict=True))


def merge(windows: Sequence[tuple[float, float]], gap_s: float, duration: float) -> list[tuple[float, float]]:
    """Sorted, clipped to ``[0, duration]``, overlapping or close windows joined."""
    out: list[tuple[float, float]] = []
    for a, b in sorted((max(0.0, a), min(duration, b)) for a, b in windows):
        if b <= a:
            continue
        if out and a <= out[-1][1] + gap_s:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def plan_windows(
    duration: float,
    fps: float,
    silence: np.ndarray | None,
    key_t: np.ndarray,
    key_black: np.ndarray,
    key_logo: np.ndarray,
    cfg: PlanConfig | None = None,
) -> list[tuple[float, float]] | None:
    """The full-rate windows, or None when the whole recording must be analysed (no sound, or windows everywhere).

    ``silence``: the audio pass's silence cue per grid frame (None without sound); ``key_*``: per intra frame, its
    time, black cue and logo presence (NaN where unknown).
    """
    cfg = cfg or PlanConfig()
    if silence is None or not np.isfinite(silence).any():
        return None
    pad = cfg.pad_s
    wins: list[tuple[float, float]] = []
    for a, b in _runs(silence >= cfg.silence_threshold):
        wins.append((a / fps - pad, (b - 1) / fps + pad))
    n = len(key_t)
    for i in np.flatnonzero(key_black >= cfg.black_threshold).tolist():
        lo = key_t[i - 1] if i > 0 else 0.0
        hi = key_t[i + 1] if i + 1 < n else duration
        t = key_t[i]
        wins.append((max(lo, t - cfg.max_span_s) - pad, min(hi, t + cfg.max_span_s) + pad))
    logo = key_logo
    known = np.isfinite(logo)
    for i in range(n - 1):
        if known[i] and known[i + 1] and abs(logo[i + 1] - logo[i]) >= cfg.logo_change:
            wins.append((key_t[i] - pad, key_t[i + 1] + pad))
    merged = merge(wins, cfg.merge_gap_s, duration)
    covered = sum(b - a for a, b in merged)
    if duration > 0 and covered > cfg.full_share * duration:
        return None
    return merged
