"""The broadcast's sound: speech-like program audio, music-like ads, digital silence in separators.

The track is a sequence of :class:`AudioItem` that tiles the broadcast exactly (every boundary at the sample of a
frame boundary): one item per program segment, per ad spot, per promo and per separator. Each item is synthesised
on its own from its ``seed`` (NumPy only, deterministic), so the same plan always gives the same samples:

* ``speech`` (program): a voice of harmonic tones whose pitch glides down each phrase, shaped by two formants that
  change every syllable, with a syllable-rate envelope (about 3-7 syllables a second), noise bursts for consonants
  and 0.15-1.8 s pauses between phrases, over room tone 20 dB below the voice (a show is never digitally silent
  between its words); two speakers take turns. About a quarter of program segments have a quiet
  music bed under the voice (16 dB down);
* ``music`` (ads): a chord progression (triads and sevenths, one chord a bar) over a bass line, a kick and a snare on
  alternate beats and hi-hats on eighths, at 88-136 BPM; some spots have a voice-over on top. Cut-downs of one
  commercial play the same music (it is a function of the time in the commercial);
* ``promo`` (the channel's promos): music with a voice-over;
* ``silence``: digital silence (zeros), for black and dimmed separators.

Levels are exact: each item's RMS over its interior (pauses included, the faded edges excluded) is its
``level_dbfs``: program :data:`PROGRAM_DBFS`, ads and promos :data:`AD_BOOST_DB` louder unless the ``loud`` difficulty
puts them at program level. Every spot and promo starts and ends with :data:`EDGE_SILENCE_S` of silence and a
:data:`EDGE_FADE_S` fade (0.25 s in all, as real spots are padded), so a short silence separates spots even where no
black separates them; program audio is cut with 10 ms ramps.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 48000
CHANNELS = 1
CODEC = "aac"
BIT_RATE = 96000
AAC_CODER = "fast"  # FFmpeg's native AAC encoder: 2.4x faster than its default "twoloop", as loud and nearly as clean
PROGRAM_DBFS = -24.0
AD_BOOST_DB = 5.0
EDGE_SILENCE_S = 0.10
EDGE_FADE_S = 0.15
CUT_RAMP_S = 0.01
BED_DB = -16.0  # a program segment's music bed, relative to the voice
ROOM_DB = -20.0  # a program's room tone (ambience under and between the words), relative to the voice
VOICE_OVER_DB = -2.0  # an ad's voice-over, relative to its music

SPEECH = "speech"
MUSIC = "music"
PROMO = "promo"
SILENCE = "silence"
EDGES_SPOT = "spot"
EDGES_CUT = "cut"


@dataclass(frozen=True)
class AudioItem:
    """A stretch of the track: samples ``start`` .. ``start + samples - 1``."""

    kind: str  # SPEECH, MUSIC, PROMO or SILENCE
    start: int
    samples: int
    seed: int = 0
    level_dbfs: float | None = None  # None for silence
    edges: str = EDGES_CUT
    offset_s: float = 0.0  # music: where in its commercial's timeline the item starts
    layer: bool = False  # speech: a music bed under it; music: a voice-over on top

    @property
    def end(self) -> int:
        return self.start + self.samples

    def edge_samples(self, sr: int = SAMPLE_RATE) -> int:
        """Samples at each end that are not at the item's level (silence, fade or ramp)."""
        if self.kind == SILENCE:
            return 0
        s = EDGE_SILENCE_S + EDGE_FADE_S if self.edges == EDGES_SPOT else CUT_RAMP_S
        return min(self.samples // 2, int(round(s * sr)))

    def to_dict(self, sr: int = SAMPLE_RATE) -> dict:
        d: dict = {
            "kind": self.kind,
            "start": round(self.start / sr, 6),
            "end": round(self.end / sr, 6),
            "start_sample": self.start,
            "samples": self.samples,
        }
        if self.kind != SILENCE:
            d.update({"level_dbfs": self.level_dbfs, "seed": self.seed, "edges": self.edges})
            if self.kind == MUSIC:
                d["offset_s"] = round(self.offset_s, 6)
            if self.layer:
                d["layer"] = "music bed" if self.kind == SPEECH else "voice-over"
        return d


def family_seed(family: str) -> int:
    """The fixed seed of a commercial's music: the same spot sounds the same in every break and broadcast."""
    return zlib.crc32(f"adbreak-spot:{family}".encode())


# ================================================================================================ synthesis
def _wavetable(amps: np.ndarray, size: int = 2048) -> np.ndarray:
    spectrum = np.zeros(size // 2 + 1, np.complex128)
    spectrum[1 : len(amps) + 1] = -0.5j * size * np.asarray(amps, np.float64)
    table = np.fft.irfft(spectrum, size)  # sum of amps[k - 1] * sin(2 pi k theta)
    return (table / max(1e-9, float(np.sqrt(np.mean(table**2))))).astype(np.float32)


def _burst(seed: list[int], n: int, order: int) -> np.ndarray:
    """White noise differentiated ``order`` times (a rising, hiss-like spectrum), unit RMS."""
    x = np.random.default_rng(seed).standard_normal(n + order)
    for _ in range(order):
        x = np.diff(x)
    return (x / max(1e-9, float(np.sqrt(np.mean(x**2))))).astype(np.float32)


def _room(seed: int, n: int) -> np.ndarray:
    """Room tone: soft, dull noise (white noise through an 8-sample moving average), unit RMS. A show's sound never
    drops to digital silence between its words; only the separators around ads do."""
    x = np.random.default_rng([seed, 6]).standard_normal(n + 7).astype(np.float32)
    x = np.convolve(x, np.full(8, 0.125, np.float32), mode="valid")
    return x / max(1e-9, float(np.sqrt(np.mean(x.astype(np.float64) ** 2))))


def _speech(seed: int, n: int, sr: int) -> np.ndarray:
    rng = np.random.default_rng([seed, 1])
    out = np.zeros(n, np.float32)
    dur = n / sr
    speakers = [(float(rng.uniform(95, 140)), float(rng.uniform(0.9, 1.0))), (float(rng.uniform(170, 240)), 1.12)]
    t = float(rng.uniform(0.0, 0.4))
    syllable = 0
    while t < dur:
        f_speaker, formant_scale = speakers[int(rng.integers(2))]
        phrase_end = t + float(rng.uniform(1.2, 4.5))
        f_phrase = f_speaker * float(rng.uniform(0.92, 1.08))
        p0 = t
        while t < min(phrase_end, dur):
            d = float(rng.uniform(0.11, 0.32))
            progress = (t - p0) / max(1e-6, phrase_end - p0)
            f0 = f_phrase * (1.08 - 0.2 * progress) * float(1 + 0.05 * rng.standard_normal())
            glide = float(rng.uniform(-0.25, 0.1))  # relative pitch change over the syllable
            f1 = float(rng.uniform(300, 800)) * formant_scale
            f2 = float(rng.uniform(900, 2300)) * formant_scale
            k = np.arange(1, max(2, int(3800 / f0)) + 1)
            fk = k * f0
            amps = k**-0.8 * (0.3 + np.exp(-(((fk - f1) / 130) ** 2)) + 0.6 * np.exp(-(((fk - f2) / 220) ** 2)))
            table = _wavetable(amps)
            i0, i1 = int(t * sr), min(n, int((t + d) * sr))
            if i1 > i0:
                tt = np.arange(i1 - i0, dtype=np.float64) / sr
                cycles = f0 * (tt + glide * tt**2 / (2 * d))
                idx = ((cycles % 1.0) * len(table)).astype(np.int64)
                env = np.sin(np.pi * np.clip(tt / d, 0, 1)) ** 0.7
                amp = float(rng.uniform(0.6, 1.0))
                out[i0:i1] += amp * env.astype(np.float32) * table[idx]
                if rng.random() < 0.55:  # a consonant: a short hiss at the syllable's start
                    m = min(i1 - i0, int(float(rng.uniform(0.03, 0.07)) * sr))
                    hiss = _burst([seed, 2, syllable], m, 2) * np.exp(-np.arange(m) / (0.4 * m)).astype(np.float32)
                    out[i0 : i0 + m] += 0.3 * amp * hiss
            syllable += 1
            t += d * float(rng.uniform(0.85, 1.05))
        t += float(rng.uniform(0.8, 1.8)) if rng.random() < 0.2 else float(rng.uniform(0.15, 0.6))
    return out


PROGRESSIONS = ((0, 7, 9, 5), (0, 5, 7, 5), (9, 5, 0, 7), (0, 9, 5, 7), (2, 7, 0, 0))  # semitones above the key


def _add(out: np.ndarray, at: int, sig: np.ndarray) -> None:
    """Add ``sig`` into ``out`` starting at index ``at`` (either may stick out of ``out``: that part is dropped)."""
    a, b = max(0, at), min(len(out), at + len(sig))
    if b > a:
        out[a:b] += sig[a - at : b - at]


def _music(seed: int, n: int, sr: int, offset_s: float) -> np.ndarray:
    rng = np.random.default_rng([seed, 3])
    bpm = float(rng.uniform(88, 136))
    beat = 60.0 / bpm
    bar = 4 * beat
    key = 55.0 * 2 ** (int(rng.integers(0, 12)) / 12)  # A1 .. G#2: bass octave
    prog = PROGRESSIONS[int(rng.integers(len(PROGRESSIONS)))]
    minor_bars = {i for i, s in enumerate(prog) if s in (2, 9)}
    seventh = bool(rng.random() < 0.5)
    timbre = _wavetable(np.array([1.0, 0.45, 0.25, 0.12]))
    out = np.zeros(n, np.float64)
    t0, t1 = offset_s, offset_s + n / sr
    for b in range(int(t0 // bar), int(math.ceil(t1 / bar)) + 1):
        bs = b * bar
        i0, i1 = max(0, int(round((bs - t0) * sr))), min(n, int(round((bs + bar - t0) * sr)))
        if i1 <= i0:  # beat events never ring past their bar (a beat is longer than any of them)
            continue
        tt = (np.arange(i0, i1) / sr + t0) - bs  # time since the bar started
        degree = b % len(prog)
        root = key * 2 ** (prog[degree] / 12)
        third = 3 if degree in minor_bars else 4
        notes = [0, third, 7] + ([10] if seventh else [])
        env = (0.35 + 0.65 * np.exp(-tt / 1.2)) * np.clip(tt / 0.02, 0, 1)
        for s in notes:
            f = root * 4 * 2 ** (s / 12)  # two octaves above the bass
            idx = ((f * tt) % 1.0 * len(timbre)).astype(np.int64)
            out[i0:i1] += 0.22 * env * timbre[idx]
        beat_len = int(0.35 * sr)
        tb = np.arange(beat_len) / sr
        for q in range(4):  # the beats of this bar
            sig = 0.45 * np.exp(-tb / 0.25) * np.sin(2 * np.pi * root * tb)  # bass
            if q % 2 == 0:  # kick: a falling sine
                phase = 2 * np.pi * (45 * tb + 65 * 0.05 * (1 - np.exp(-tb / 0.05)))
                sig += 0.9 * np.exp(-tb / 0.12) * np.sin(phase)
            else:  # snare: a noise burst
                k = int(0.2 * sr)
                sig[:k] += 0.35 * np.exp(-tb[:k] / 0.06) * _burst([seed, 4, b, q], k, 1)
            _add(out, int(round((bs + q * beat - t0) * sr)), sig)
        hat_len = int(0.06 * sr)
        for e in range(8):  # hi-hats on eighths
            hat = 0.12 * np.exp(-np.arange(hat_len) / (0.015 * sr)) * _burst([seed, 5, b, e], hat_len, 2)
            _add(out, int(round((bs + e * beat / 2 - t0) * sr)), hat)
    return out.astype(np.float32)


def _normalise(x: np.ndarray, level_dbfs: float, edge: int) -> np.ndarray:
    interior = x[edge : len(x) - edge] if len(x) > 2 * edge else x
    rms = float(np.sqrt(np.mean(interior.astype(np.float64) ** 2))) if len(interior) else 0.0
    if rms > 0:
        x = x * np.float32(10 ** (level_dbfs / 20) / rms)
    return x


def _mix(a: np.ndarray, b: np.ndarray, b_db: float) -> np.ndarray:
    ra = float(np.sqrt(np.mean(a.astype(np.float64) ** 2))) or 1.0
    rb = float(np.sqrt(np.mean(b.astype(np.float64) ** 2))) or 1.0
    return a / np.float32(ra) + b * np.float32(10 ** (b_db / 20) / rb)


def synthesise(item: AudioItem, sr: int = SAMPLE_RATE) -> np.ndarray:
    """The item's samples (float32, mono, full scale = 1.0)."""
    n = item.samples
    if item.kind == SILENCE or n == 0:
        return np.zeros(n, np.float32)
    if item.kind == SPEECH:
        x = _mix(_speech(item.seed, n, sr), _room(item.seed, n), ROOM_DB)
        if item.layer:
            x = _mix(x, _music(item.seed ^ 0x5EED, n, sr, 0.0), BED_DB)
    elif item.kind == MUSIC:
        x = _music(item.seed, n, sr, item.offset_s)
        if item.layer:
            x = _mix(x, _speech(item.seed ^ 0x0F0F, n, sr), VOICE_OVER_DB)
    elif item.kind == PROMO:
        x = _mix(_music(item.seed, n, sr, 0.0), _speech(item.seed ^ 0x0F0F, n, sr), VOICE_OVER_DB)
    else:  # pragma: no cover - the plan only makes the kinds above
        raise ValueError(f"unknown audio item kind {item.kind!r}")
    edge = item.edge_samples(sr)
    assert item.level_dbfs is not None
    x = _normalise(x.astype(np.float32), item.level_dbfs, edge)
    if item.edges == EDGES_SPOT:
        silent = min(n // 2, int(round(EDGE_SILENCE_S * sr)))
        ramp = max(0, edge - silent)
        gain = np.ones(n, np.float32)
        gain[:silent] = 0
        gain[n - silent :] = 0
        if ramp:
            r = (np.sin(0.5 * np.pi * (np.arange(ramp) + 0.5) / ramp) ** 2).astype(np.float32)
            gain[silent : silent + ramp] = r
            gain[n - silent - ramp : n - silent] = r[::-1]
        x *= gain
    elif edge:
        r = ((np.arange(edge) + 0.5) / edge).astype(np.float32)
        x[:edge] *= r
        x[n - edge :] *= r[::-1]
    return np.clip(x, -1.0, 1.0)


class AudioTrack:
    """Streams the items' samples in order, synthesising one item at a time."""

    def __init__(self, items: list[AudioItem], sr: int = SAMPLE_RATE):
        self.items = items
        self.sr = sr
        self.pos = 0
        self._index = 0
        self._samples: np.ndarray | None = None

    def read_until(self, end: int) -> np.ndarray:
        """The samples from the current position up to ``end`` (exclusive)."""
        parts = []
        while self.pos < end and self._index < len(self.items):
            item = self.items[self._index]
            if self._samples is None:
                self._samples = synthesise(item, self.sr)
            take = min(end, item.end) - self.pos
            a = self.pos - item.start
            parts.append(self._samples[a : a + take])
            self.pos += take
            if self.pos >= item.end:
                self._index += 1
                self._samples = None
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)
