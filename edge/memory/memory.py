"""Repeated-ad memory: fingerprints of what the decision called ad, matched against what is on screen now.

Ads air again and again within hours; program footage mostly does not. :class:`AdMemory` keeps a 64-bit pHash of
every analysed frame of the last ``buffer_s`` (15 minutes) and, where the source has audio, a 64-bit audio code
every 256 ms. When the decision reports an ad break, :meth:`AdMemory.remember` stores that range's fingerprints as
one ad entry. Every frame is then matched against all stored fingerprints (one XOR and one popcount over a uint64
array), and matches become *runs* that follow a stored ad's own timeline (``edge.memory.runs``): a run of 5 s or more
is strong ad evidence, and its start is the ad's first frame on screen, exact to one frame.

Thresholds (``MemoryConfig``):

- ``max_distance = 10`` bits of 64. Research (Covell, Baluja, Fink 2006 in ``docs/research.md``): over 57,000
  broadcast frames, pHash distances up to 11 never joined an ad frame to a show frame. Measured here on crops of the
  scikit-image photos (``bench/bench_memory.py``): the same frame shifted by up to 3 px, with gain, offset and
  noise and re-encoded as JPEG at quality 40 lands within 8 bits 99% of the time; crops of different photos are 14 or
  more apart. pHash distances are even (the median splits the 64 bits in half), so 10 is the last step below 11.
- ``min_std = 6`` (luma levels on the 160x90 copy): black, grey (a camera films black as luma 36-38 with a soft
  vignette, std 2-4), fades. Their hash is noise; they are never stored and never matched (the frame scores 0).
- Runs: consecutive matches agree on the position within the ad to ``tolerance_s = 0.5`` s, and a run survives
  ``max_gap_s = 1.5`` s without a consistent match (noise, a missed frame) before it ends.
- ``known_fraction = 0.8``: a remembered range whose frames already match stored ones this much refreshes those
  ads and stores nothing; a break of old and new spots stores only the frames not yet known.
- ``max_frames = 20_000`` stored pHashes (over an hour of ads at 5 fps; 8 bytes each plus a 4-byte ad id and a 4-byte
  offset: 320 KB) and ``max_audio_codes = 20_000`` (about 85 min of ad audio): past either, the ads seen least
  recently are forgotten first.
- Audio (``edge.memory.audio``): ``audio_max_distance = 12`` bits of 64, and an audio step scores only once its run
  has lasted ``audio_raw_run_s = 2`` s. Measured on made music (notes with harmonics and percussion): the same audio
  aired again quieter, low-passed and with noise 20 dB under it is a code within 8 bits at the median and 13 at the
  90th percentile of the best-aligned step; against a full memory of 20,160 codes of other music, chance matches
  chained into runs of at most 1.6 s at 12 bits (2.6 s at 14), while the ad aired again made one run over its whole
  length at 10, 12 or 14 bits. Single chance matches are common (18% of steps at 12 bits with 20,000 codes), which
  is why a code alone never scores.

Per frame :meth:`AdMemory.observe` returns the raw match: 1 when the frame continues a run (video or, where there is
audio, audio), 0 when it does not, ``UNKNOWN`` (NaN) while the memory is empty. With audio both are scored: both
matching gives 1, one of the two ``either_value`` (0.75). The first frame of a run scores 0 (nothing confirms it yet);
the run's start is still that frame's time.

The memory is per device: :meth:`AdMemory.save` writes it atomically as an ``.npz``; construction loads it; a file
that cannot be read is moved aside as ``<name>.corrupt-<timestamp>`` and the memory starts empty.
"""

from __future__ import annotations

import io
import logging
import math
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adbreak.atomic import atomic_path, set_aside
from edge.cues.base import UNKNOWN, ScreenFrame
from edge.memory.audio import CONTEXT_S, STORE_EVERY, AudioFingerprinter
from edge.memory.hashing import frame_hash, hamming
from edge.memory.runs import Run, RunTracker

log = logging.getLogger(__name__)

FILE_FORMAT = 1
_BACKWARDS_S = 1.0  # stream time going back more than this is a new source: buffers and runs restart
_KNOWN_CHUNK = 32  # codes per block when checking a remembered range against the memory (32 x 20,000 x 8 B = 5 MB)


@dataclass(frozen=True, kw_only=True)
class MemoryConfig:
    """Settings of the repeated-ad memory (the module docstring explains each choice)."""

    max_distance: int = 10
    """pHash Hamming distance (of 64 bits) at or under which two frames are the same picture."""
    min_std: float = 6.0
    """Frames whose small luma has a spatial standard deviation under this are uniform: never stored or matched."""
    buffer_s: float = 900.0
    """Recent fingerprints kept for :meth:`AdMemory.remember` (stream seconds)."""
    max_buffer: int = 30_000
    """Recent frames kept whatever their times (25 fps for 20 minutes)."""
    max_frames: int = 20_000
    """Stored pHashes at most; the least recently seen ads are forgotten first."""
    tolerance_s: float = 0.5
    """How far a match may be from the position the run predicts within the ad."""
    max_gap_s: float = 1.5
    """A run ends after this long without a consistent match."""
    min_run_s: float = 5.0
    """Runs this long are evidence: :meth:`AdMemory.runs`' default, and they refresh their ad's last-seen time."""
    known_fraction: float = 0.8
    """A remembered range this much already matched is a known ad: refreshed, not stored again."""
    audio: bool = True
    """Fingerprint the audio where the source has it."""
    audio_max_distance: int = 12
    """Audio-code Hamming distance (of 64 bits) at or under which two steps are the same sound."""
    audio_raw_run_s: float = 2.0
    """An audio step scores only when it continues an audio run at least this long (single codes are weaker)."""
    audio_min_dbfs: float = -50.0
    """Audio quieter than this (band-limited level over a code's 1.28 s) is silence: no code."""
    max_audio_codes: int = 20_000
    """Stored audio codes at most (one every 256 ms)."""
    either_value: float = 0.75
    """The raw match when only one of video and audio continues a run (both: 1)."""

    def __post_init__(self) -> None:
        if not 0 <= self.max_distance < 32 or not 0 <= self.audio_max_distance < 32:
            raise ValueError("Hamming thresholds must be in [0, 32)")
        if self.max_frames < 1 or self.max_audio_codes < 1 or self.max_buffer < 1:
            raise ValueError("memory bounds must be positive")
        if self.tolerance_s <= 0 or self.max_gap_s <= 0 or self.buffer_s <= 0:
            raise ValueError("tolerance_s, max_gap_s and buffer_s must be positive")
        if not 0 < self.known_fraction <= 1 or not 0 <= self.either_value <= 1:
            raise ValueError("known_fraction must be in (0, 1] and either_value in [0, 1]")


class _Table:
    """One kind of stored fingerprint: uint64 codes, the ad each belongs to, its offset (s) from the ad's start."""

    def __init__(self) -> None:
        self.codes = np.zeros(0, dtype=np.uint64)
        self.ads = np.zeros(0, dtype=np.int32)
        self.offsets = np.zeros(0, dtype=np.float32)

    def __len__(self) -> int:
        return int(self.codes.size)

    def set(self, codes: np.ndarray, ads: np.ndarray, offsets: np.ndarray) -> None:
        self.codes = np.ascontiguousarray(codes, dtype=np.uint64)
        self.ads = np.ascontiguousarray(ads, dtype=np.int32)
        self.offsets = np.ascontiguousarray(offsets, dtype=np.float32)

    def add(self, ad: int, codes: np.ndarray, offsets: np.ndarray) -> None:
        self.set(
            np.concatenate([self.codes, codes.astype(np.uint64)]),
            np.concatenate([self.ads, np.full(codes.size, ad, dtype=np.int32)]),
            np.concatenate([self.offsets, offsets.astype(np.float32)]),
        )

    def keep(self, mask: np.ndarray) -> None:
        self.set(self.codes[mask], self.ads[mask], self.offsets[mask])

    def match(self, code: int, max_distance: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The stored codes within ``max_distance``: their ads, offsets and distances."""
        dist = hamming(self.codes, code)
        idx = np.flatnonzero(dist <= max_distance)
        return self.ads[idx], self.offsets[idx], dist[idx]

    def nearest_ads(self, codes: np.ndarray, max_distance: int) -> np.ndarray:
        """For each code, the ad of its nearest stored code within ``max_distance``, else -1."""
        out = np.full(codes.size, -1, dtype=np.int64)
        if not len(self) or not codes.size:
            return out
        for lo in range(0, codes.size, _KNOWN_CHUNK):
            block = codes[lo : lo + _KNOWN_CHUNK]
            dist = np.bitwise_count(block[:, None] ^ self.codes[None, :])
            best = dist.argmin(axis=1)
            hit = dist[np.arange(block.size), best] <= max_distance
            out[lo : lo + block.size] = np.where(hit, self.ads[best], -1)
        return out


@dataclass(slots=True)
class _Entry:
    created: float
    last_seen: float


class AdMemory:
    """Fingerprints of remembered ads, matched against each analysed frame (see the module docstring)."""

    def __init__(
        self,
        config: MemoryConfig = MemoryConfig(),  # noqa: B008 - frozen, so one shared default is safe
        path: str | os.PathLike[str] | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.path = Path(path) if path is not None else None
        self._clock = clock
        self._video = _Table()
        self._audio = _Table()
        self._entries: dict[int, _Entry] = {}
        self._next_id = 1
        self._last_touch = -math.inf
        self._frames: deque[tuple[float, int | None]] = deque()
        self._audio_steps: deque[tuple[float, int | None]] = deque()
        self._video_runs = RunTracker(config.tolerance_s, config.max_gap_s, "video")
        self._audio_runs = RunTracker(config.tolerance_s, config.max_gap_s, "audio")
        self._fingerprinter = AudioFingerprinter(config.audio_min_dbfs) if config.audio else None
        self._last_t: float | None = None
        self.last_video: float = UNKNOWN
        """The last frame's video match (0/1, or NaN with no stored frames)."""
        self.last_audio: float = UNKNOWN
        """The last frame's audio match (0/1, or NaN without audio or stored audio codes)."""
        if self.path is not None:
            self._load(self.path)

    # -- matching ------------------------------------------------------------------------------------------------

    def observe(self, frame: ScreenFrame) -> float:
        """Fingerprint the frame, buffer it, and return its raw match in [0, 1] (NaN while the memory is empty)."""
        t = float(frame.t)
        if self._last_t is not None and t < self._last_t - _BACKWARDS_S:
            log.info("stream time went back from %.2f s to %.2f s: the memory's buffers restart", self._last_t, t)
            self.reset()
        self._last_t = t
        code = frame_hash(frame.small, self.config.min_std)
        self._frames.append((t, code))
        self._prune(self._frames, t)
        self.last_video = self._match_video(t, code)
        self.last_audio = self._match_audio(t, frame.audio)
        if not self._entries:
            return UNKNOWN
        video, audio = self.last_video, self.last_audio
        if math.isnan(audio):
            return 0.0 if math.isnan(video) else video
        if math.isnan(video):
            return audio
        if video and audio:
            return 1.0
        return self.config.either_value if (video or audio) else 0.0

    def _match_video(self, t: float, code: int | None) -> float:
        if not len(self._video):
            return UNKNOWN
        if code is None:
            extended = self._video_runs.step(t, *_NO_MATCH)
        else:
            extended = self._video_runs.step(t, *self._video.match(code, self.config.max_distance))
        self._refresh(extended)
        return 1.0 if extended else 0.0

    def _match_audio(self, t: float, audio: np.ndarray | None) -> float:
        if self._fingerprinter is None or audio is None:
            return UNKNOWN
        hit = False
        for step_t, index, code in self._fingerprinter.feed(t, audio):
            if index % STORE_EVERY == 0:
                self._audio_steps.append((step_t, code))
                self._prune(self._audio_steps, step_t)
            if not len(self._audio):
                continue
            if code is None:
                extended = self._audio_runs.step(step_t, *_NO_MATCH)
            else:
                extended = self._audio_runs.step(step_t, *self._audio.match(code, self.config.audio_max_distance))
            self._refresh(extended)
            hit = hit or any(run.length_s >= self.config.audio_raw_run_s for run in extended)
        if not len(self._audio):
            return UNKNOWN
        return 1.0 if hit else 0.0

    def _refresh(self, extended: list[Run]) -> None:
        for run in extended:
            if run.length_s >= self.config.min_run_s and run.ad_id in self._entries:
                self._touch(run.ad_id)

    @property
    def run_length_s(self) -> float:
        """How long the current run (video or audio) has lasted in stream seconds; 0 when there is none."""
        lengths = [0.0]
        if (video := self._video_runs.current()) is not None:
            lengths.append(video.length_s)
        if (audio := self._audio_runs.current()) is not None:
            lengths.append(audio.end_t - (audio.start_t - CONTEXT_S))
        return max(lengths)

    def runs(self, min_s: float | None = None) -> list[Run]:
        """Recent runs, finished and ongoing, lasting at least ``min_s`` (default ``min_run_s``), by start time.

        A video run's ``start_t`` is its first matched frame. An audio run's is the start of the 1.28 s its first
        matched code describes (exact to about 0.3 s). A video and an audio run of one ad that overlap are one run
        (``source="both"``) with the video run's start.
        """
        min_s = self.config.min_run_s if min_s is None else float(min_s)
        video = self._video_runs.runs()
        audio = [r._replace(start_t=r.start_t - CONTEXT_S) for r in self._audio_runs.runs()]
        merged: list[Run] = []
        for run in video:
            for other in [
                a for a in audio if a.ad_id == run.ad_id and a.start_t <= run.end_t and run.start_t <= a.end_t
            ]:
                audio.remove(other)
                run = Run(run.start_t, max(run.end_t, other.end_t), run.ad_id, "both")
            merged.append(run)
        merged += audio
        return sorted(r for r in merged if r.length_s >= min_s)

    def reset(self) -> None:
        """A new source or a jump in stream time: forget the buffered frames and the live runs (not the ads)."""
        self._frames.clear()
        self._audio_steps.clear()
        self._video_runs.reset()
        self._audio_runs.reset()
        if self._fingerprinter is not None:
            self._fingerprinter.reset()
        self._last_t = None

    def _prune(self, buf: deque[tuple[float, int | None]], t: float) -> None:
        horizon = t - self.config.buffer_s
        while buf and (buf[0][0] < horizon or len(buf) > self.config.max_buffer):
            buf.popleft()

    # -- remembering ---------------------------------------------------------------------------------------------

    def remember(self, start_t: float, end_t: float) -> int:
        """The decision says ``[start_t, end_t)`` was ad: store its buffered fingerprints as one ad entry.

        Uniform frames and silent steps are skipped. A range that mostly matches what is stored already (at least
        ``known_fraction`` of its frames) only refreshes the ads it matched; otherwise the frames (and audio codes)
        not already known are stored as a new entry. Returns how many frames were stored.
        """
        frames = [(t, c) for t, c in self._frames if start_t <= t < end_t and c is not None]
        # An audio code describes the 1.28 s before its time: keep those mostly inside the range.
        steps = [(t, c) for t, c in self._audio_steps if start_t + CONTEXT_S / 2 <= t < end_t and c is not None]
        v_codes, v_offsets = _arrays(frames, start_t)
        a_codes, a_offsets = _arrays(steps, start_t)
        v_known = self._video.nearest_ads(v_codes, self.config.max_distance)
        a_known = self._audio.nearest_ads(a_codes, self.config.audio_max_distance)
        for ad, count in zip(*np.unique(np.concatenate([v_known, a_known]), return_counts=True), strict=True):
            if ad >= 0 and count >= 2 and int(ad) in self._entries:
                self._touch(int(ad))
        known = v_known if v_codes.size else a_known
        if known.size and np.mean(known >= 0) >= self.config.known_fraction:
            log.debug("ad %.1f-%.1f s is known already", start_t, end_t)
            return 0
        v_new, a_new = v_known < 0, a_known < 0
        if v_new.sum() < 2 and a_new.sum() < 2:
            return 0
        ad = self._next_id
        self._next_id += 1
        now = self._now()
        self._entries[ad] = _Entry(created=now, last_seen=now)
        if v_new.sum() >= 2:
            self._video.add(ad, v_codes[v_new], v_offsets[v_new])
        if a_new.sum() >= 2:
            self._audio.add(ad, a_codes[a_new], a_offsets[a_new])
        self._evict(protect=ad)
        stored = int(np.count_nonzero(self._video.ads == ad))
        log.info(
            "remembered ad %d (%.1f-%.1f s): %d frames, %d audio codes",
            ad,
            start_t,
            end_t,
            stored,
            int(np.count_nonzero(self._audio.ads == ad)),
        )
        return stored

    def _evict(self, protect: int | None = None) -> None:
        cfg = self.config
        forgotten: set[int] = set()
        while len(self._video) > cfg.max_frames or len(self._audio) > cfg.max_audio_codes:
            victims = sorted((e.last_seen, ad) for ad, e in self._entries.items() if ad != protect)
            if not victims:  # one entry alone is over the bound: keep its start
                self._video.keep(np.arange(len(self._video)) < cfg.max_frames)
                self._audio.keep(np.arange(len(self._audio)) < cfg.max_audio_codes)
                break
            ad = victims[0][1]
            del self._entries[ad]
            self._video.keep(self._video.ads != ad)
            self._audio.keep(self._audio.ads != ad)
            forgotten.add(ad)
        if forgotten:
            log.info("forgot %d ads seen least recently (memory bound)", len(forgotten))
            self._video_runs.forget_ads(forgotten)
            self._audio_runs.forget_ads(forgotten)

    def _now(self) -> float:
        """The wall clock, strictly increasing between calls (last-seen order must be total)."""
        self._last_touch = max(float(self._clock()), self._last_touch + 1e-6)
        return self._last_touch

    def _touch(self, ad: int) -> None:
        self._entries[ad].last_seen = self._now()

    # -- introspection ---------------------------------------------------------------------------------------------

    @property
    def ad_ids(self) -> list[int]:
        """Remembered ads, least recently seen first."""
        return [ad for _, ad in sorted((e.last_seen, ad) for ad, e in self._entries.items())]

    @property
    def stored_frames(self) -> int:
        return len(self._video)

    @property
    def stored_audio_codes(self) -> int:
        return len(self._audio)

    def frames_of(self, ad: int) -> int:
        return int(np.count_nonzero(self._video.ads == ad))

    # -- persistence ---------------------------------------------------------------------------------------------

    def save(self) -> Path | None:
        """Write the memory atomically to ``path`` (nothing without a path); returns the path written."""
        if self.path is None:
            return None
        ids = np.array(sorted(self._entries), dtype=np.int32)
        with atomic_path(self.path) as tmp, open(tmp, "wb") as fh:
            np.savez(
                fh,
                format=np.array(FILE_FORMAT, dtype=np.int32),
                hashes=self._video.codes,
                hash_ad=self._video.ads,
                hash_offset=self._video.offsets,
                audio_codes=self._audio.codes,
                audio_ad=self._audio.ads,
                audio_offset=self._audio.offsets,
                ad_id=ids,
                last_seen=np.array([self._entries[int(a)].last_seen for a in ids], dtype=np.float64),
                created=np.array([self._entries[int(a)].created for a in ids], dtype=np.float64),
                next_id=np.array(self._next_id, dtype=np.int64),
            )
        return self.path

    def close(self) -> None:
        """Save (where there is a path)."""
        self.save()

    def __enter__(self) -> AdMemory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _load(self, path: Path) -> None:
        if not path.exists():
            return
        try:
            # Read whole (a few hundred KB): np.load leaves its file open when the zip inside is broken.
            with np.load(io.BytesIO(path.read_bytes()), allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
            self._restore(data)
        except Exception as exc:  # any unreadable file: set it aside, start empty, keep running
            self._video, self._audio, self._entries, self._next_id = _Table(), _Table(), {}, 1
            self._quarantine(path, exc)
            return
        self._evict()
        log.info(
            "ad memory %s: %d ads, %d frames, %d audio codes",
            path,
            len(self._entries),
            len(self._video),
            len(self._audio),
        )

    def _restore(self, z: dict[str, np.ndarray]) -> None:
        if int(z["format"]) != FILE_FORMAT:
            raise ValueError(f"unknown ad memory format {int(z['format'])}")
        ids = _column(z, "ad_id", np.integer)
        last_seen = _column(z, "last_seen", np.floating)
        created = _column(z, "created", np.floating)
        if not (ids.size == last_seen.size == created.size) or np.unique(ids).size != ids.size:
            raise ValueError("ad table is inconsistent")
        if not (np.isfinite(last_seen).all() and np.isfinite(created).all()):
            raise ValueError("ad times are not finite")
        entries = {int(a): _Entry(float(c), float(s)) for a, c, s in zip(ids, created, last_seen, strict=True)}
        for table, prefix in ((self._video, "hash"), (self._audio, "audio")):
            codes = _column(z, "hashes" if prefix == "hash" else "audio_codes", np.unsignedinteger)
            ads = _column(z, f"{prefix}_ad", np.integer)
            offsets = _column(z, f"{prefix}_offset", np.floating)
            if not (codes.size == ads.size == offsets.size):
                raise ValueError(f"{prefix} columns differ in length")
            if not np.isin(ads, ids).all() or not np.isfinite(offsets).all():
                raise ValueError(f"{prefix} rows name unknown ads or bad offsets")
            table.set(codes, ads, offsets)
        self._entries = entries
        self._next_id = max(int(z["next_id"]), int(ids.max(initial=0)) + 1)
        if entries:
            self._last_touch = max(e.last_seen for e in entries.values())

    def _quarantine(self, path: Path, exc: BaseException) -> None:
        try:
            aside = set_aside(path)
        except OSError as move_exc:
            log.error(
                "ad memory %s is unreadable (%s) and could not be moved aside (%s); starting empty", path, exc, move_exc
            )
            return
        log.error(
            "ad memory %s is unreadable (%s: %s); moved to %s, starting empty",
            path,
            type(exc).__name__,
            exc,
            aside.name,
        )


_NO_MATCH = (np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.uint8))


def _arrays(items: list[tuple[float, int | None]], start_t: float) -> tuple[np.ndarray, np.ndarray]:
    codes = np.array([c for _, c in items], dtype=np.uint64)
    offsets = np.array([t - start_t for t, _ in items], dtype=np.float64)
    return codes, offsets


def _column(z: dict[str, np.ndarray], name: str, kind: type) -> np.ndarray:
    arr = z[name]
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, kind):
        raise ValueError(f"column {name!r} has shape {arr.shape} and type {arr.dtype}")
    return arr
