"""Scene cuts: the picture changed at once since the previous analysed frame.

The change between two frames is measured on local histograms: :attr:`ScreenFrame.small` is split into a grid of
blocks (4 x 3 by default) and each block's luma histogram (8 levels) is compared with the same block's in the
previous frame (total variation distance, 0 same, 1 disjoint), averaged over the blocks. A cut changes what every
part of the picture holds; motion moves content within and across neighbouring blocks, which changes their
histograms far less, and a global histogram would miss a cut between two shots of similar tones. Steady motion still
makes every frame differ from the last by a level of its own, so the change is scored against a running level: the
median change over the last ``level_window_s`` seconds, this one included (so the first change after a start or a
reset, with no level known yet, is no cut). A cut scores above 0.5 when the change exceeds both ``ratio`` x that
level and ``min_change``.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass

import numpy as np

from edge.cues.base import SMALL_SIZE, UNKNOWN, ScreenFrame, logistic


@dataclass(frozen=True, slots=True)
class CutConfig:
    """Parameters of :class:`CutCue`."""

    grid: tuple[int, int] = (4, 3)
    """Blocks across and down :attr:`ScreenFrame.small` whose histograms are compared."""
    levels: int = 8
    """Luma levels per block histogram (a power of two, up to 256)."""
    level_window_s: float = 10.0
    """The running level of frame-to-frame change is the median over this many seconds."""
    ratio: float = 2.5
    """A cut changes the picture this many times more than the running level ..."""
    min_change: float = 0.2
    """... and by at least this much (0..1): a still scene's tiny level must not turn noise into cuts."""
    softness: float = 0.1
    """Width of the logistic ramp on log(change / threshold)."""

    def __post_init__(self) -> None:
        w, h = SMALL_SIZE
        if len(self.grid) != 2 or not (1 <= self.grid[0] <= w and 1 <= self.grid[1] <= h):
            raise ValueError(f"CutConfig.grid must be (across, down) within {SMALL_SIZE}")
        if self.levels not in (2, 4, 8, 16, 32, 64, 128, 256):
            raise ValueError("CutConfig.levels must be a power of two from 2 to 256")
        for name in ("level_window_s", "softness"):
            if not getattr(self, name) > 0:
                raise ValueError(f"CutConfig.{name} must be > 0")
        if not self.ratio >= 1:
            raise ValueError("CutConfig.ratio must be >= 1")
        if not 0 < self.min_change < 1:
            raise ValueError("CutConfig.min_change must be in (0, 1)")


class CutCue:
    """``cut``: a scene cut since the previous analysed frame; UNKNOWN on the first frame."""

    names = ("cut",)

    def __init__(self, config: CutConfig | None = None) -> None:
        self.config = config or CutConfig()
        c = self.config
        w, h = SMALL_SIZE
        across, down = c.grid
        block = (np.arange(h)[:, None] * down // h) * across + np.arange(w)[None, :] * across // w
        self._base = (block * c.levels).astype(np.intp)  # each pixel's first histogram bin
        self._shift = 8 - int(math.log2(c.levels))
        self._bins = across * down * c.levels
        sizes = np.bincount(block.ravel(), minlength=across * down).astype(np.float64)
        self._scale = np.repeat(1.0 / sizes, c.levels)  # counts to per-block fractions
        self._blocks = across * down
        self._previous: np.ndarray | None = None
        self._changes: deque[tuple[float, float]] = deque()

    def reset(self) -> None:
        self._previous = None
        self._changes.clear()

    def _histograms(self, small: np.ndarray) -> np.ndarray:
        """Every block's luma histogram as fractions of the block, end to end."""
        return np.bincount((self._base + (small >> self._shift)).ravel(), minlength=self._bins) * self._scale

    def update(self, frame: ScreenFrame) -> dict[str, float]:
        c = self.config
        current = self._histograms(frame.small)
        previous, self._previous = self._previous, current
        if previous is None:
            return {"cut": UNKNOWN}
        change = 0.5 * float(np.abs(current - previous).sum()) / self._blocks

        changes = self._changes
        while changes and changes[0][0] < frame.t - c.level_window_s:
            changes.popleft()
        changes.append((frame.t, change))  # counted in its own level: no cut before a level is known
        level = statistics.median([v for _, v in changes])
        threshold = max(c.min_change, c.ratio * level)
        return {"cut": logistic(math.log(max(change, 1e-6) / threshold) / c.softness)}
