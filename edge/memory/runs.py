"""Runs: consecutive matches that follow one remembered ad's own timeline.

A single frame (or audio step) that looks like a stored one proves little: a static show shot can sit a few bits
from an ad's pack shot. What an ad seen again has, and program footage does not, is a *run*: frame after frame each
matches the stored ad at the position the elapsed time predicts. :class:`RunTracker` keeps such runs as tracks:

- A track belongs to one ad and holds its alignment hypotheses ``offset - t`` (where in the ad the stream is).
  When it starts, every matched position of that ad is a hypothesis (a static opening or a shot the ad repeats
  matches several); a later match keeps the hypotheses it agrees with within ``tolerance_s`` and drops the rest.
  Hypotheses are never moved, so a static show shot against a static stretch of an ad cannot outlast that stretch.
- A match consistent with a track extends it; a frame with no match leaves it alone, and a track not extended for
  more than ``max_gap_s`` ends (one noisy or black frame does not cut a run).
- A frame that matches the track's ad only at positions the track has ruled out contradicts it: the track ends at
  its second contradiction in a row, or once contradictions are more than a quarter of its steps. Without this,
  frames of a few static shots in any order would keep a run alive, each one consistent a third of the time.
- Matches of an ad that no live track explained start a new track (a new spot, or the same ad entered elsewhere).
  Two tracks of one ad that come to agree are merged into the older.

A track's run is ``[start_t, end_t]``: the time of its first and its last matched frame, exact to one frame.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

_MAX_HYPOTHESES = 64
_MAX_TRACKS = 16
_MAX_SPAWN = 4  # new tracks per step, the ads with the closest matches first


class Run(NamedTuple):
    """One run of consistent matches to one remembered ad."""

    start_t: float
    """Stream time of the run's first matched frame."""
    end_t: float
    """Stream time of its last matched frame."""
    ad_id: int
    source: str
    """What matched: ``"video"``, ``"audio"`` or ``"both"``."""

    @property
    def length_s(self) -> float:
        return self.end_t - self.start_t


@dataclass(slots=True, eq=False)  # identity: two tracks are never the same track
class _Track:
    ad_id: int
    start_t: float
    last_t: float
    aligns: np.ndarray  # float64 offset - t hypotheses still consistent
    matches: int = 1
    contradictions: int = 0
    in_a_row: int = 0

    def contradicted(self) -> bool:
        self.contradictions += 1
        self.in_a_row += 1
        return self.in_a_row >= 2 or 4 * self.contradictions > self.matches + self.contradictions

    def run(self, source: str) -> Run:
        return Run(self.start_t, self.last_t, self.ad_id, source)


class RunTracker:
    """Turns per-step candidate matches (ad, offset) into runs along the ads' timelines."""

    def __init__(self, tolerance_s: float, max_gap_s: float, source: str, history: int = 256) -> None:
        self.source = source
        self.tolerance_s = float(tolerance_s)
        self.max_gap_s = float(max_gap_s)
        self._tracks: list[_Track] = []
        self._done: deque[Run] = deque(maxlen=history)

    def reset(self) -> None:
        """End every track (a new source or a jump in stream time); finished runs are kept."""
        for track in self._tracks:
            self._finish(track)
        self._tracks = []

    def clear(self) -> None:
        self._tracks = []
        self._done.clear()

    def forget_ads(self, ad_ids: set[int]) -> None:
        """Drop the live tracks of ads no longer remembered."""
        self._tracks = [tr for tr in self._tracks if tr.ad_id not in ad_ids]

    def step(self, t: float, ads: np.ndarray, offsets: np.ndarray, dists: np.ndarray) -> list[Run]:
        """Feed one step's candidate matches; return the runs (two or more matches) this step extended."""
        self._expire(t)
        extended: list[_Track] = []
        explained: set[int] = set()
        if len(ads):
            ended: list[_Track] = []
            for track in self._tracks:
                mask = ads == track.ad_id
                if not mask.any():
                    continue
                cand = offsets[mask].astype(np.float64) - t
                near = np.abs(track.aligns[:, None] - cand[None, :]).min(axis=1) <= self.tolerance_s
                if near.any():
                    track.aligns = track.aligns[near]
                    track.last_t = t
                    track.matches += 1
                    track.in_a_row = 0
                    extended.append(track)
                    explained.add(track.ad_id)
                elif track.contradicted():
                    ended.append(track)
            for track in ended:
                self._finish(track)
            self._tracks = [tr for tr in self._tracks if tr not in ended]
            self._merge(extended)
            self._spawn(t, ads, offsets, dists, explained)
        return [tr.run(self.source) for tr in extended if tr in self._tracks]  # extended: two matches or more

    def current(self) -> Run | None:
        """The longest live run (two or more matches), or ``None``."""
        live = [tr for tr in self._tracks if tr.matches >= 2]
        if not live:
            return None
        return max(live, key=lambda tr: (tr.last_t - tr.start_t, -tr.start_t)).run(self.source)

    def runs(self, min_s: float = 0.0) -> list[Run]:
        """Finished and live runs lasting at least ``min_s``, by start time."""
        out = [r for r in self._done if r.length_s >= min_s]
        out += [tr.run(self.source) for tr in self._tracks if tr.matches >= 2 and tr.last_t - tr.start_t >= min_s]
        return sorted(out)

    def _expire(self, t: float) -> None:
        keep = []
        for track in self._tracks:
            if t - track.last_t > self.max_gap_s:
                self._finish(track)
            else:
                keep.append(track)
        self._tracks = keep

    def _finish(self, track: _Track) -> None:
        if track.matches >= 2:
            self._done.append(track.run(self.source))

    def _merge(self, extended: list[_Track]) -> None:
        """Of two extended tracks of one ad whose hypotheses agree, keep the older one."""
        drop: set[int] = set()
        ordered = sorted(extended, key=lambda tr: tr.start_t)
        for i, old in enumerate(ordered):
            if id(old) in drop:
                continue
            for young in ordered[i + 1 :]:
                if young.ad_id != old.ad_id or id(young) in drop:
                    continue
                gap = np.abs(old.aligns[:, None] - young.aligns[None, :]).min()
                if gap <= self.tolerance_s:
                    drop.add(id(young))
        if drop:
            self._tracks = [tr for tr in self._tracks if id(tr) not in drop]

    def _spawn(self, t: float, ads: np.ndarray, offsets: np.ndarray, dists: np.ndarray, explained: set[int]) -> None:
        order = np.argsort(dists, kind="stable")
        new_ads: list[int] = []
        for ad in ads[order]:
            ad = int(ad)
            if ad not in explained and ad not in new_ads:
                new_ads.append(ad)
                if len(new_ads) == _MAX_SPAWN:
                    break
        for ad in new_ads:
            aligns = np.unique(np.sort(offsets[ads == ad].astype(np.float64))[:_MAX_HYPOTHESES] - t)
            self._tracks.append(_Track(ad, t, t, aligns))
        if len(self._tracks) > _MAX_TRACKS:
            # Keep the tracks with the most matches (ties: the newest, which the latest frames support).
            ranked = sorted(enumerate(self._tracks), key=lambda it: (it[1].matches, it[0]), reverse=True)
            kept = {idx for idx, _ in ranked[:_MAX_TRACKS]}
            for idx, track in enumerate(self._tracks):
                if idx not in kept:
                    self._finish(track)
            self._tracks = [tr for idx, tr in enumerate(self._tracks) if idx in kept]
