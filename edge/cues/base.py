"""What every cue sees of one analysed frame, and the shape every cue has.

The detection core computes broadcast-structure cues on each analysed frame (``docs/architecture.md``, "Detection
stages"). They all read one :class:`ScreenFrame`: the screen's luma at the analysis size (the warped screen when a
camera films the TV), a small copy for whole-frame statistics, and the source's audio since the previous analysed
frame. Each cue is a small object with a frozen config and an ``update(frame) -> dict[str, float]`` that returns
its values in [0, 1], or ``UNKNOWN`` (NaN) where the cue cannot be measured (no audio, not enough history yet).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

UNKNOWN = math.nan
"""A cue value that could not be measured (written as an empty cell in a scores file)."""

ANALYSIS_WIDTH = 640
"""Width of :attr:`ScreenFrame.gray`; its height keeps the screen's aspect (360 for 16:9)."""
SMALL_SIZE = (160, 90)
"""(width, height) of :attr:`ScreenFrame.small`."""
AUDIO_RATE = 16_000
"""Sample rate of :attr:`ScreenFrame.audio` (mono float32 in [-1, 1])."""


def resize_luma(gray: np.ndarray, width: int) -> np.ndarray:
    """``gray`` at ``width`` pixels wide, keeping its aspect (even height). Shrinking by 2x or more averages areas;
    by less (960 -> 640) bilinear sampling already reads every source pixel and costs a fifth of OpenCV's
    non-integer area averaging (0.15 ms against 0.77 ms here)."""
    h, w = gray.shape[:2]
    if w == width:
        return gray
    height = max(2, int(round(width * h / w / 2)) * 2)
    interp = cv2.INTER_AREA if w >= 2 * width else cv2.INTER_LINEAR
    return cv2.resize(gray, (width, height), interpolation=interp)


@dataclass(frozen=True, slots=True)
class ScreenFrame:
    """One analysed frame as the cues see it."""

    t: float
    """Stream time in seconds."""
    gray: np.ndarray
    """(H, 640) uint8 luma of the screen (the whole frame, or the warped screen through a camera)."""
    small: np.ndarray
    """(90, 160) uint8 luma, an area-averaged copy of ``gray`` for whole-frame statistics."""
    audio: np.ndarray | None = None
    """Mono float32 PCM at :data:`AUDIO_RATE` covering the time since the previous analysed frame; ``None`` when the
    source has no audio (the audio cues are then UNKNOWN, never read as silence); empty when none arrived."""

    @classmethod
    def from_gray(cls, t: float, gray: np.ndarray, audio: np.ndarray | None = None) -> ScreenFrame:
        """From a luma image of any size: resized to the analysis width (:func:`resize_luma`) and the small copy
        made."""
        gray = resize_luma(gray, ANALYSIS_WIDTH)
        small = cv2.resize(gray, SMALL_SIZE, interpolation=cv2.INTER_AREA)
        return cls(t, gray, small, audio)

    @classmethod
    def from_rgb(cls, t: float, rgb: np.ndarray, audio: np.ndarray | None = None) -> ScreenFrame:
        """From an RGB uint8 frame (BT.601 luma)."""
        return cls.from_gray(t, cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), audio)


class Cue(Protocol):
    """One broadcast-structure cue: frame in, named values in [0, 1] (or UNKNOWN) out."""

    names: tuple[str, ...]
    """The value names it returns (the scores file's columns)."""

    def update(self, frame: ScreenFrame) -> dict[str, float]: ...

    def reset(self) -> None:
        """Forget all history (a new source, a channel change)."""


class DecayedHistogram:
    """A running distribution of one scalar: a histogram over fixed bins whose counts halve every ``half_life_s``
    seconds of stream time, so its quantiles follow the recent past with a slow decay. O(bins) per update; values
    outside ``[lo, hi)`` count in the end bins, non-finite values are ignored."""

    def __init__(self, lo: float, hi: float, bins: int, half_life_s: float) -> None:
        if not (hi > lo and bins > 0 and half_life_s > 0):
            raise ValueError("DecayedHistogram needs hi > lo, bins > 0 and half_life_s > 0")
        self.lo, self.hi, self.bins, self.half_life_s = float(lo), float(hi), int(bins), float(half_life_s)
        self.width = (self.hi - self.lo) / self.bins
        self.counts = np.zeros(self.bins)
        self._t: float | None = None

    def add(self, values: float | np.ndarray, t: float) -> None:
        """Count ``values`` (one or many) observed at stream time ``t``, after decaying the older counts."""
        if self._t is not None and t > self._t:
            self.counts *= 0.5 ** ((t - self._t) / self.half_life_s)
        self._t = t if self._t is None else max(self._t, t)
        if isinstance(values, float | int):  # the common case, without array overhead
            if math.isfinite(values):
                self.counts[min(max(int((values - self.lo) // self.width), 0), self.bins - 1)] += 1.0
            return
        v = np.asarray(values, dtype=np.float64).ravel()
        v = v[np.isfinite(v)]
        if v.size == 0:
            return
        idx = np.clip(((v - self.lo) / self.width).astype(np.int64), 0, self.bins - 1)
        if idx.size == 1:
            self.counts[idx[0]] += 1.0
        else:
            self.counts += np.bincount(idx, minlength=self.bins)

    @property
    def weight(self) -> float:
        """The decayed number of values counted."""
        return float(self.counts.sum())

    def quantile(self, q: float) -> float:
        """The ``q`` quantile (0..1), interpolated within its bin; NaN while empty."""
        cum = np.cumsum(self.counts)
        total = cum[-1]
        if total <= 0:
            return math.nan
        target = q * total
        i = min(int(np.searchsorted(cum, target)), self.bins - 1)
        below = cum[i - 1] if i > 0 else 0.0
        frac = (target - below) / self.counts[i] if self.counts[i] > 0 else 0.0
        return self.lo + (i + min(max(frac, 0.0), 1.0)) * self.width

    def clear(self) -> None:
        self.counts[:] = 0.0
        self._t = None


def logistic(x: float) -> float:
    """The soft step every cue uses to turn a margin into a score in (0, 1): 0.5 at 0, ~0.95 at +3."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def detail(small: np.ndarray) -> float:
    """Mean absolute difference between neighbouring pixels (horizontal and vertical) of a luma image: ~0 on a flat
    frame, under ~1 for a black or uniform screen filmed by a camera (noise averaged down, smooth glare and
    vignetting), above ~2 for any picture content at :data:`SMALL_SIZE`."""
    h, w = small.shape[:2]
    horizontal = cv2.norm(small[:, 1:], small[:, :-1], cv2.NORM_L1) / (h * (w - 1))
    return 0.5 * (horizontal + cv2.norm(small[1:], small[:-1], cv2.NORM_L1) / ((h - 1) * w))
