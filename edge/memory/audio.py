"""A compact streaming audio fingerprint: 64 bits per step from band-energy differences (numpy only).

The Philips / Haitsma-Kalker scheme (the one Chromaprint refines) reduced to what a repeated-ad memory needs.
Chromaprint itself (``libchromaprint`` through ``pyacoustid``) fingerprints a whole file or stream and hands its raw
codes out only after ``finish()``, with no incremental read-out and no timestamps per code, so live matching would
mean re-fingerprinting overlapping windows every second; this is cheaper and gives each code a stream time.

- Power spectra of 32 ms Hann frames (512 samples at 16 kHz) every 16 ms, summed into 17 log-spaced bands from
  300 Hz to 3.4 kHz (the band a TV speaker, a codec and a room all keep).
- Every *step* (64 ms) the band energies of the last 1.28 s are summed in five 256 ms blocks; in each block the
  energy difference between neighbouring bands (16 values, in log) is compared with the same difference one block
  earlier: 4 x 16 = 64 sign bits, packed into one uint64. Level changes cancel (differences of logs) and so do
  smooth filters (an EQ, a speaker): what is left is how the spectrum's shape changes over time.
- A step whose 1.28 s are near silence (under ``min_dbfs``) has no code (``None``): silence between spots would
  otherwise match every other silence.

A memory stores one code in four (every 256 ms, about 31 bytes a second) and queries every step, so one of every
four query steps lies within 32 ms of a stored step whatever the two airings' sample phases.
"""

from __future__ import annotations

import math

import numpy as np

from edge.cues.base import AUDIO_RATE

FFT_SIZE = 512
FFT_HOP = 256
HOPS_PER_STEP = 4
STEP_SAMPLES = FFT_HOP * HOPS_PER_STEP
STEP_S = STEP_SAMPLES / AUDIO_RATE
"""Time between codes: 64 ms."""
STEPS_PER_BLOCK = 4
BLOCKS = 5
CONTEXT_S = STEP_S * STEPS_PER_BLOCK * BLOCKS
"""Audio one code describes: 1.28 s ending at the code's time."""
STORE_EVERY = 4
"""A memory stores the codes of every fourth step."""
_N_BANDS = 17
_LOW_HZ, _HIGH_HZ = 300.0, 3400.0
_RESYNC_S = 0.5  # audio this far off the frames' clock (a gap, a seek) restarts the fingerprint


def _band_matrix() -> np.ndarray:
    freqs = np.fft.rfftfreq(FFT_SIZE, 1.0 / AUDIO_RATE)
    edges = np.geomspace(_LOW_HZ, _HIGH_HZ, _N_BANDS + 1)
    bands = np.zeros((freqs.size, _N_BANDS), dtype=np.float64)
    for b in range(_N_BANDS):
        bands[(freqs >= edges[b]) & (freqs < edges[b + 1]), b] = 1.0
    return bands


_BANDS = _band_matrix()
_WINDOW = np.hanning(FFT_SIZE).astype(np.float64)
_BIT_WEIGHTS = (np.uint64(1) << np.arange(63, -1, -1, dtype=np.uint64)).astype(np.uint64)


def codes_from_block_energies(blocks: np.ndarray) -> np.ndarray:
    """64-bit codes from ``(n, BLOCKS, 17)`` block band energies (newest block last)."""
    logs = np.log(blocks + 1e-12)
    shape = logs[..., :-1] - logs[..., 1:]  # (n, BLOCKS, 16): neighbouring-band differences
    bits = (shape[:, 1:, :] - shape[:, :-1, :]) > 0  # (n, 4, 16): change of the shape block to block
    return (bits.reshape(len(bits), 64).astype(np.uint64) * _BIT_WEIGHTS).sum(axis=1, dtype=np.uint64)


class AudioFingerprinter:
    """Streaming fingerprint: feed each frame's audio, get ``(t, step, code or None)`` for every completed step."""

    def __init__(self, min_dbfs: float = -50.0) -> None:
        self.min_dbfs = float(min_dbfs)
        # The context's mean band power under this is silence (Hann power gain and the FFT's scale included).
        self._min_power = (10.0 ** (min_dbfs / 10.0)) * float(np.sum(_WINDOW**2)) * FFT_SIZE
        self.reset()

    def reset(self) -> None:
        self._anchor_t: float | None = None  # stream time of sample 0
        self._fed = 0  # samples fed since the anchor
        self._pending = np.zeros(0, dtype=np.float64)  # samples not yet in a whole hop
        self._hop_power: list[np.ndarray] = []  # band power per FFT hop of the current step
        self._steps = np.zeros((0, _N_BANDS), dtype=np.float64)  # band power per step, the last CONTEXT only
        self._step_index = 0

    def feed(self, t: float, audio: np.ndarray) -> list[tuple[float, int, int | None]]:
        """Add the samples that end at stream time ``t``; return the steps completed, oldest first."""
        samples = np.asarray(audio, dtype=np.float64).ravel()
        if self._anchor_t is None or abs(self._anchor_t + (self._fed + samples.size) / AUDIO_RATE - t) > _RESYNC_S:
            self.reset()
            self._anchor_t = t - samples.size / AUDIO_RATE
        self._fed += samples.size
        if samples.size == 0:
            return []
        buf = np.concatenate([self._pending, samples])
        n_frames = max(0, (buf.size - FFT_SIZE) // FFT_HOP + 1)
        out: list[tuple[float, int, int | None]] = []
        if n_frames:
            frames = np.lib.stride_tricks.sliding_window_view(buf, FFT_SIZE)[::FFT_HOP][:n_frames]
            power = np.abs(np.fft.rfft(frames * _WINDOW, axis=1)) ** 2 @ _BANDS  # (n_frames, 17)
            for row in power:
                self._hop_power.append(row)
                if len(self._hop_power) == HOPS_PER_STEP:
                    out.append(self._close_step())
            buf = buf[n_frames * FFT_HOP :]
        self._pending = buf
        return out

    def _close_step(self) -> tuple[float, int, int | None]:
        step_power = np.sum(self._hop_power, axis=0)
        self._hop_power = []
        need = STEPS_PER_BLOCK * BLOCKS
        self._steps = np.vstack([self._steps, step_power[None, :]])[-need:]
        index = self._step_index
        self._step_index += 1
        # The step ends where its last FFT frame ends.
        assert self._anchor_t is not None
        end_sample = (index + 1) * STEP_SAMPLES + (FFT_SIZE - FFT_HOP)
        t = self._anchor_t + end_sample / AUDIO_RATE
        if len(self._steps) < need:
            return t, index, None
        blocks = self._steps.reshape(BLOCKS, STEPS_PER_BLOCK, _N_BANDS).sum(axis=1)
        mean_power = float(blocks.sum()) / (need * HOPS_PER_STEP * _N_BANDS)
        if not math.isfinite(mean_power) or mean_power < self._min_power / _N_BANDS:
            return t, index, None
        return t, index, int(codes_from_block_energies(blocks[None])[0])
