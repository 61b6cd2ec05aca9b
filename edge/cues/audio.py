"""Silence and loudness from the source's audio (:attr:`ScreenFrame.audio`, mono float32 at 16 kHz).

The audio is cut into consecutive windows of ``window_s`` seconds (50 ms by default; a window may straddle two
frames' audio: the remainder is carried). Each window's level is its RMS in dBFS.

``silence``: the quietest window that ended since the previous frame is silent. Silent means below both an absolute
floor (``max_silence_db``, -50 dBFS) and ``below_typical_db`` under this source's typical window level (the running
median of the window levels, half-life ``memory_s``), so a quiet programme's noise floor is not read as silence
while a loud channel's separators still are. Comskip likewise estimates the silence level per recording.

``loudness``: the level of the last ``loudness_window_s`` seconds (1 s) against its own running median, through a
logistic: 0.5 is typical, towards 1 when louder (ads are often mastered louder), towards 0 when quieter.

No audio at all (``frame.audio is None``: the source has no audio stream) gives UNKNOWN for both, never silence. An
empty array (no audio arrived since the previous frame) repeats the last values (UNKNOWN before any). Loudness is
UNKNOWN, and silence uses the absolute floor alone, until ``min_history_s`` seconds of audio were heard.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from edge.cues.base import AUDIO_RATE, UNKNOWN, DecayedHistogram, ScreenFrame, logistic

_FLOOR_DB = -100.0  # digital silence reads as this level


@dataclass(frozen=True, slots=True)
class SilenceConfig:
    """Parameters of :class:`SilenceCue`; levels in dBFS (a full-scale sine is -3 dBFS)."""

    window_s: float = 0.05
    """Length of the windows whose RMS levels are measured."""
    max_silence_db: float = -50.0
    """Silence is always below this level ..."""
    below_typical_db: float = 25.0
    """... and this far below the typical (median) window level of the source."""
    silence_softness_db: float = 1.5
    """Width of the logistic ramp on the silence margin."""
    loudness_window_s: float = 1.0
    """The short-term level behind ``loudness``."""
    loudness_softness_db: float = 4.0
    """Width of the logistic ramp on loudness: this many dB above typical scores ~0.73, twice that ~0.88."""
    memory_s: float = 300.0
    """Half-life, in stream seconds, of the running level distributions."""
    min_history_s: float = 2.0
    """Seconds of audio before the typical levels are trusted."""

    def __post_init__(self) -> None:
        for name in ("window_s", "silence_softness_db", "loudness_window_s", "loudness_softness_db", "memory_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"SilenceConfig.{name} must be > 0")
        if round(self.window_s * AUDIO_RATE) < 1 or self.loudness_window_s < self.window_s:
            raise ValueError("SilenceConfig: window_s must hold a sample and loudness_window_s >= window_s")
        if not (_FLOOR_DB < self.max_silence_db <= 0):
            raise ValueError(f"SilenceConfig.max_silence_db must be in ({_FLOOR_DB}, 0]")
        if not self.below_typical_db >= 0 or not self.min_history_s >= 0:
            raise ValueError("SilenceConfig.below_typical_db and min_history_s must be >= 0")


def _db(mean_square: np.ndarray | float) -> np.ndarray:
    return np.maximum(10.0 * np.log10(np.asarray(mean_square, dtype=np.float64) + 1e-12), _FLOOR_DB)


class SilenceCue:
    """``silence`` and ``loudness`` of the audio since the previous frame; see the module doc."""

    names = ("silence", "loudness")

    def __init__(self, config: SilenceConfig | None = None) -> None:
        self.config = config or SilenceConfig()
        c = self.config
        self._window = round(c.window_s * AUDIO_RATE)
        self._levels = DecayedHistogram(_FLOOR_DB, 0.0, 200, c.memory_s)
        self._loudness = DecayedHistogram(_FLOOR_DB, 0.0, 200, c.memory_s)
        self._energy: deque[float] = deque(maxlen=max(1, round(c.loudness_window_s / c.window_s)))
        self._rest = np.zeros(0, np.float32)
        self._heard_s = 0.0
        self._last = {"silence": UNKNOWN, "loudness": UNKNOWN}

    def reset(self) -> None:
        self._levels.clear()
        self._loudness.clear()
        self._energy.clear()
        self._rest = np.zeros(0, np.float32)
        self._heard_s = 0.0
        self._last = {"silence": UNKNOWN, "loudness": UNKNOWN}

    def update(self, frame: ScreenFrame) -> dict[str, float]:
        if frame.audio is None:
            return {"silence": UNKNOWN, "loudness": UNKNOWN}
        c = self.config
        samples = np.concatenate((self._rest, np.asarray(frame.audio, dtype=np.float32).ravel()))
        n = samples.size // self._window
        self._rest = samples[n * self._window :].copy()
        if n == 0:
            return dict(self._last)
        windows = samples[: n * self._window].reshape(n, self._window)
        mean_square = np.einsum("ij,ij->i", windows, windows, dtype=np.float64) / self._window
        levels = _db(mean_square)

        trusted = self._heard_s >= c.min_history_s
        threshold = c.max_silence_db
        if trusted:
            threshold = min(threshold, self._levels.quantile(0.5) - c.below_typical_db)
        silence = logistic((threshold - float(levels.min())) / c.silence_softness_db)

        self._energy.extend(mean_square.tolist())
        short_term = float(_db(math.fsum(self._energy) / len(self._energy)))
        loudness = UNKNOWN
        if trusted:
            loudness = logistic((short_term - self._loudness.quantile(0.5)) / c.loudness_softness_db)

        self._levels.add(levels, frame.t)
        self._loudness.add(np.full(n, short_term), frame.t)
        self._heard_s += n * c.window_s
        self._last = {"silence": silence, "loudness": loudness}
        return dict(self._last)
