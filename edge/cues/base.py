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
        """From a luma image of any size: resized to the analysis width (area averaging) and the small copy made."""
        h, w = gray.shape[:2]
        if w != ANALYSIS_WIDTH:
            height = max(2, int(round(ANALYSIS_WIDTH * h / w / 2)) * 2)
            gray = cv2.resize(gray, (ANALYSIS_WIDTH, height), interpolation=cv2.INTER_AREA)
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
