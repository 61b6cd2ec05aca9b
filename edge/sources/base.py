"""The frame-source interface and timestamp sampling shared by every source."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Frame:
    """One sampled frame: RGB uint8 (H, W, 3), its stream time in seconds from the start, its sample index, and the
    source's audio since the previous sampled frame."""

    t: float
    image: np.ndarray
    index: int
    audio: np.ndarray | None = None
    """Mono float32 PCM at 16 kHz (``edge.cues.base.AUDIO_RATE``) covering [previous frame's ``t``, ``t``) (for the
    first frame: everything before ``t``); empty when none arrived; ``None`` when the source has no audio."""


class TimestampSampler:
    """Takes frames on a fixed grid of stream times: the first frame at or after each k / fps.

    Sampling by timestamp (not by frame count) keeps the analysed rate exact whatever the source's frame rate, and
    skips grid points that had no frame (a dropped or missing frame never shifts later samples).
    ``fps=None`` takes every frame.
    """

    EPS = 1e-3  # seconds: container timestamps are rounded to milliseconds or coarser

    def __init__(self, fps: float | None) -> None:
        if fps is not None and not (fps > 0 and math.isfinite(fps)):
            raise ValueError(f"fps must be a positive number, got {fps}")
        self.period = None if fps is None else 1.0 / fps
        self._next: float | None = None

    def slot(self, t: float) -> int:
        """The grid interval ``t`` falls in: frames of one slot compete for one sample, and the first of them (in
        time) is the one taken. Needs a rate (``fps`` not None)."""
        return math.floor((t + self.EPS) / self.period)  # type: ignore[operator]

    def take(self, t: float) -> bool:
        if self.period is None:
            return True
        if self._next is not None and t < self._next - self.EPS:
            return False
        # next grid point strictly after t (anchored at 0, so samples land on k / fps)
        self._next = (self.slot(t) + 1) * self.period
        return True


class FrameSource(ABC):
    """A source of sampled RGB frames. Use as an iterator and a context manager."""

    #: a camera or network stream (frames arrive in real time) rather than a file read as fast as it decodes
    live: bool = False

    def __init__(self, fps: float | None) -> None:
        self.fps = fps
        self.sampler = TimestampSampler(fps)
        self.decode_errors = 0

    @property
    def duration_s(self) -> float | None:
        """Length of a file source in seconds, if known."""
        return None

    @abstractmethod
    def __iter__(self) -> Iterator[Frame]: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the device or file."""

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
