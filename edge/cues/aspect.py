"""Aspect changes: the active picture's letterbox or pillarbox bars differ from those that held for the last while.

A 4:3 ad pillarboxed inside a 16:9 programme (or a 2.35:1 film letterboxed) shows as dark bars along the edges. On
:attr:`ScreenFrame.small` a column (row) belongs to a bar when its brightest pixel is within ``bar_tolerance`` of
the frame's darkest pixel: bars are at the black level, whatever it is on this source (through a camera they are
grey and carry the glare and vignetting, hence the wide default tolerance), while any column of picture content
has a brighter pixel somewhere. Bars count only as a symmetric pair (the narrower of the two sides, twice), so a dark
edge of one shot does not read as an aspect.

The per-frame measure is the fraction of the width covered by pillarbox bars and of the height covered by letterbox
bars; the current aspect is their median over ``recent_s`` seconds, the held one their running median with a
half-life of ``hold_s`` seconds. ``aspect`` scores the larger of the two differences. Frames with no active picture
(black or uniform: too little detail, or the whole frame within ``bar_tolerance``) are ignored: UNKNOWN, and not
counted. UNKNOWN too for the first ``min_history_s`` seconds of measured frames.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

from edge.cues.base import SMALL_SIZE, UNKNOWN, DecayedHistogram, ScreenFrame, detail, logistic

_W, _H = SMALL_SIZE


@dataclass(frozen=True, slots=True)
class AspectConfig:
    """Parameters of :class:`AspectCue`."""

    bar_tolerance: float = 28.0
    """A bar's brightest pixel is within this many levels of the frame's darkest pixel."""
    max_bar_level: float = 80.0
    """A frame whose darkest pixel is brighter than this has no bars."""
    min_detail: float = 1.5
    """A frame with less detail than this (:func:`~edge.cues.base.detail`) is black or uniform: no active picture."""
    min_picture: float = 0.2
    """A frame whose active picture is narrower or shorter than this fraction has none (it is not counted)."""
    recent_s: float = 1.0
    """The current aspect: median of the measures over this many seconds."""
    hold_s: float = 60.0
    """Half-life, in stream seconds, of the held aspect's running median."""
    min_history_s: float = 10.0
    """UNKNOWN until frames have been measured for this long."""
    change: float = 0.06
    """Difference in bar coverage (fraction of width or height) that scores 0.5."""
    softness: float = 0.015
    """Width of the logistic ramp on the difference."""

    def __post_init__(self) -> None:
        for name in ("bar_tolerance", "max_bar_level", "min_detail", "recent_s", "hold_s", "change", "softness"):
            if not getattr(self, name) > 0:
                raise ValueError(f"AspectConfig.{name} must be > 0")
        if not 0 < self.min_picture < 1:
            raise ValueError("AspectConfig.min_picture must be in (0, 1)")
        if not self.min_history_s >= 0:
            raise ValueError("AspectConfig.min_history_s must be >= 0")


def _bar(profile: np.ndarray, threshold: float) -> int:
    """Length of the symmetric bar pair along ``profile`` (per-column or per-row maxima): the shorter side's run of
    values at or below ``threshold``."""
    above = profile > threshold
    return min(int(np.argmax(above)), int(np.argmax(above[::-1])))


class AspectCue:
    """``aspect``: the bars around the picture changed from those that held recently; see the module doc."""

    names = ("aspect",)

    def __init__(self, config: AspectConfig | None = None) -> None:
        self.config = config or AspectConfig()
        c = self.config
        # bar widths in columns / rows of `small`, one bin each (centred on the integers)
        self._pillar = DecayedHistogram(-0.5, _W // 2 + 0.5, _W // 2 + 1, c.hold_s)
        self._letter = DecayedHistogram(-0.5, _H // 2 + 0.5, _H // 2 + 1, c.hold_s)
        self._recent: deque[tuple[float, int, int]] = deque()
        self._since: float | None = None

    def reset(self) -> None:
        self._pillar.clear()
        self._letter.clear()
        self._recent.clear()
        self._since = None

    def bars(self, frame: ScreenFrame) -> tuple[int, int] | None:
        """(pillarbox, letterbox) bar width in columns / rows of ``small`` (one side), or None: no active picture."""
        c = self.config
        small = frame.small
        lo, hi, _, _ = cv2.minMaxLoc(small)
        threshold = lo + c.bar_tolerance
        if hi <= threshold or detail(small) < c.min_detail:
            return None
        if lo > c.max_bar_level:
            return 0, 0
        pillar = _bar(small.max(axis=0), threshold)
        letter = _bar(small.max(axis=1), threshold)
        if _W - 2 * pillar < c.min_picture * _W or _H - 2 * letter < c.min_picture * _H:
            return None
        return pillar, letter

    def update(self, frame: ScreenFrame) -> dict[str, float]:
        c = self.config
        bars = self.bars(frame)
        if bars is None:
            return {"aspect": UNKNOWN}
        t = frame.t
        recent = self._recent
        recent.append((t, *bars))
        while recent[0][0] < t - c.recent_s:
            recent.popleft()
        if self._since is None:
            self._since = t
        value = UNKNOWN
        if t - self._since >= c.min_history_s:
            pillar = abs(statistics.median([r[1] for r in recent]) - self._pillar.quantile(0.5)) * 2 / _W
            letter = abs(statistics.median([r[2] for r in recent]) - self._letter.quantile(0.5)) * 2 / _H
            value = logistic((max(pillar, letter) - c.change) / c.softness)
        self._pillar.add(bars[0], t)
        self._letter.add(bars[1], t)
        return {"aspect": value}
