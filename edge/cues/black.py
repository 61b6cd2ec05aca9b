"""Black and uniform frames, and dips: the separators a broadcast puts between its ads.

``black``: the frame is black or one uniform colour (Comskip's "black" and "uniform" frames in one score). What black
looks like depends on the source: a limited-range source shows black at luma 16, a camera filming a TV in a dim room
at 36-38, with the camera's vignetting, the glare on the glass and sensor noise on top, so a black screen seen by a
camera spreads over ~30 levels. The cue therefore judges flatness on two measures of :attr:`ScreenFrame.small`:

- *detail*: the mean absolute difference between neighbouring pixels. Noise averaged down to 160x90, vignetting and
  glare (smooth by nature) leave it under ~1 level; any picture content puts it above ~2.
- *spread*: the 2nd-98th percentile range. It rejects smooth gradients (a sky, a blurred background) that have
  little detail but many levels. Its tolerance adapts to the source: it is learned from the frames at the source's
  darkest level (a running low quantile of frame means, decaying slowly, at most ``black_level_max``) that have no
  detail, i.e. from what black looks like on this source, and widens with brightness (vignetting scales with it),
  so a white or blue card through the same camera still counts.

``dip``: a fade that need not reach black. The frame's mean luma, above the source's darkest level, fell below
``dip_ratio`` of the median of the last ``dip_window_s`` seconds. The cue is causal: a drop that does not recover
(a cut to a darker scene) stops scoring once it fills half of the window, so only a dip that returns within about
``dip_window_s / 2`` scores throughout. It scores highest at the dip's bottom and fires on a black frame reached by
a drop as well.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

from edge.cues.base import UNKNOWN, DecayedHistogram, ScreenFrame, detail, logistic


@dataclass(frozen=True, slots=True)
class BlackConfig:
    """Parameters of :class:`BlackCue`; levels are 8-bit luma on :attr:`ScreenFrame.small`."""

    max_detail: float = 1.5
    """Mean absolute neighbour difference at which a frame scores 0.5 on flatness (a flat frame is under ~1)."""
    detail_softness: float = 0.2
    """Width of the logistic ramp on detail (levels)."""
    spread_prior: float = 30.0
    """Spread (2nd-98th percentile range) assumed for this source's black until black frames were seen (a camera's)."""
    spread_gain: float = 1.3
    """The spread tolerance is ``spread_gain`` x black's learned spread + ``spread_slack`` ..."""
    spread_slack: float = 8.0
    spread_per_level: float = 0.15
    """... + this much per level of mean luma above the darkest level (a camera's vignetting scales with brightness)."""
    spread_softness: float = 2.0
    """Width of the logistic ramp on spread (levels)."""
    floor_quantile: float = 0.01
    """The source's darkest level: this quantile of the frame means seen recently ..."""
    black_level_max: float = 48.0
    """... but at most this: until a source has shown black, its darkest scene is not taken for its black."""
    dark_margin: float = 12.0
    """Frames within this many levels of the darkest level, and flat in detail, teach black's spread."""
    memory_s: float = 600.0
    """Half-life, in stream seconds, of the running distributions (darkest level, black's spread)."""
    dip_window_s: float = 3.0
    """The recent level a dip is measured against: median frame mean over this many seconds."""
    dip_ratio: float = 0.45
    """A frame whose mean (above the darkest level) is below this fraction of the recent level scores > 0.5."""
    dip_softness: float = 0.06
    """Width of the logistic ramp on the ratio."""
    dip_min_level: float = 10.0
    """The recent level must be at least this many levels above the darkest level for a dip to be measurable."""

    def __post_init__(self) -> None:
        positive = ("detail_softness", "spread_softness", "spread_gain", "memory_s", "dip_window_s", "dip_softness")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"BlackConfig.{name} must be > 0")
        if not 0 < self.floor_quantile < 0.5:
            raise ValueError("BlackConfig.floor_quantile must be in (0, 0.5)")
        if not 0 < self.dip_ratio < 1:
            raise ValueError("BlackConfig.dip_ratio must be in (0, 1)")
        for name in (
            "max_detail",
            "spread_prior",
            "spread_slack",
            "spread_per_level",
            "dark_margin",
            "dip_min_level",
            "black_level_max",
        ):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"BlackConfig.{name} must be a finite number >= 0")


class BlackCue:
    """``black`` (a black or uniform frame) and ``dip`` (a deep, short drop of brightness); see the module doc."""

    names = ("black", "dip")

    def __init__(self, config: BlackConfig | None = None) -> None:
        self.config = config or BlackConfig()
        c = self.config
        self._means = DecayedHistogram(0, 256, 256, c.memory_s)
        self._black_spread = DecayedHistogram(0, 128, 128, c.memory_s)
        self._recent: deque[tuple[float, float]] = deque()

    def reset(self) -> None:
        self._means.clear()
        self._black_spread.clear()
        self._recent.clear()

    @property
    def darkest(self) -> float:
        """The source's darkest level so far (NaN before the first frame)."""
        level = self._means.quantile(self.config.floor_quantile)
        return level if math.isnan(level) else min(level, self.config.black_level_max)

    @property
    def black_spread(self) -> float:
        """The spread black frames show on this source (the prior until one was seen)."""
        if self._black_spread.weight < 0.5:
            return self.config.spread_prior
        return self._black_spread.quantile(0.5)

    def forget_recent(self) -> None:
        """A jump in time (a scan's next window): the dip's recent level starts again; the learned levels stay."""
        self._recent.clear()

    def peek(self, small: np.ndarray) -> float:
        """``black`` of a (90, 160) luma picture with what was learned so far, learning nothing from it (a scan
        tests the frames between two analysed ones for the exact edge of a black run)."""
        spread, mean, flat_detail = self._measure(small)
        return self._black(spread, mean, flat_detail, self.darkest)

    def _measure(self, small: np.ndarray) -> tuple[float, float, float]:
        c = self.config
        hist = cv2.calcHist([small], [0], None, [256], [0, 256]).ravel()
        cum = np.cumsum(hist)
        p2, p98 = np.searchsorted(cum, (0.02 * cum[-1], 0.98 * cum[-1]))
        spread = float(p98 - p2)
        mean = float(cv2.mean(small)[0])
        flat_detail = logistic((c.max_detail - detail(small)) / c.detail_softness)
        return spread, mean, flat_detail

    def _black(self, spread: float, mean: float, flat_detail: float, floor: float) -> float:
        c = self.config
        if math.isnan(floor):  # nothing seen yet (peek before any update)
            floor = mean
        tolerance = c.spread_gain * self.black_spread + c.spread_slack + c.spread_per_level * max(0.0, mean - floor)
        return flat_detail * logistic((tolerance - spread) / c.spread_softness)

    def update(self, frame: ScreenFrame) -> dict[str, float]:
        c = self.config
        spread, mean, flat_detail = self._measure(frame.small)
        self._means.add(mean, frame.t)
        floor = self.darkest
        if mean <= floor + c.dark_margin and flat_detail > 0.5:
            self._black_spread.add(spread, frame.t)
        black = self._black(spread, mean, flat_detail, floor)

        t0 = frame.t - c.dip_window_s
        recent = self._recent
        while recent and recent[0][0] < t0:
            recent.popleft()
        dip = UNKNOWN  # no recent level yet
        if recent:
            dip = 0.0
            level = statistics.median([m for _, m in recent]) - floor
            if level >= c.dip_min_level:
                ratio = max(0.0, mean - floor) / level
                dip = logistic((c.dip_ratio - ratio) / c.dip_softness)
        recent.append((frame.t, mean))
        return {"black": black, "dip": dip}
