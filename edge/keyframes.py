"""Keyframes: small JPEGs of what the detector saw, sent to the server for review and retraining (``docs/edge.md``).

Per frame the agent calls :meth:`KeyframeRecorder.observe`. The recorder keeps two bounded rings of thumbnails
(the frame scaled to :attr:`KeyframeConfig.width` pixels wide, JPEG quality ~80, encoded once when taken):

* ``recent``: one thumbnail every ``recent_step_s`` (0.5 s) of stream time for the last ``recent_span_s`` (40 s),
  longer than the decision's look-back (30 s), so the frame at a back-dated boundary is still there when the
  change is decided;
* ``sparse``: one every ``sparse_step_s`` (2 s) for the last ``sparse_span_s`` (30 min), capped at ``max_bytes``
  (the oldest go first), for the middle of a segment.

What is sent (:class:`Pick`, built into a :class:`~adbreak.wire.KeyframePayload` by :func:`build_keyframe`):

* at the initial decision: ``start`` of the first segment (the first frame);
* at every decided change: ``end`` of the old segment (the last thumbnail before the boundary), ``middle`` of the
  old segment (the thumbnail nearest its middle, from the rings), ``start`` of the new one (the first thumbnail at or
  after the boundary), and ``sample`` s with reason ``boundary`` every ``sample_step_s`` from ``-sample_span_s`` to
  ``+sample_span_s`` around the boundary (those still in the future are taken as the frames arrive);
* during a low-confidence stretch (smoothed ``p_ad`` strictly between the exit and enter thresholds for at least
  ``low_conf_min_s``): a ``sample`` with reason ``low_confidence``, at most one per ``low_conf_interval_s``;
* at the end of the stream (:meth:`KeyframeRecorder.finish`): ``end`` and ``middle`` of the open segment.

Encoding cost: at most one thumbnail per ``recent_step_s`` plus the low-confidence samples, i.e. about one frame in
``fps x recent_step_s`` (1 in 2.5 at 5 fps) pays a resize and a JPEG encode (``encode_thumbnail``: ~0.5 ms for a
640x360 frame, ~0.8 ms for 1280x720 on one desktop core, so ~0.3 ms per analysed frame on average); the others pay
nothing. It runs in the inference loop after the frame's events and state are out. Memory: the rings hold only the
JPEG bytes (~15-25 KB each): at most ``recent_max`` recent ones and ``max_bytes`` of sparse ones.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from adbreak.wire import MAX_KEYFRAME_BYTES, KeyframePayload, new_event_id

log = logging.getLogger(__name__)

MAX_JPEG_BYTES = (MAX_KEYFRAME_BYTES - 1024) * 3 // 4
"""The largest JPEG that fits a keyframe message once in base64 beside the other fields."""
_QUALITY_STEPS = (65, 50, 35)  # tried in turn when a thumbnail at the configured quality is too large


@dataclass(frozen=True)
class KeyframeConfig:
    width: int = 384
    quality: int = 80
    recent_step_s: float = 0.5
    recent_span_s: float = 40.0
    sparse_step_s: float = 2.0
    sparse_span_s: float = 1800.0
    max_bytes: int = 24 * 1024 * 1024
    """Cap of the sparse ring's JPEG bytes (the recent ring is bounded by its count)."""
    sample_span_s: float = 5.0
    sample_step_s: float = 1.0
    low_conf_min_s: float = 2.0
    low_conf_interval_s: float = 5.0

    def __post_init__(self) -> None:
        if not 16 <= self.width <= 4096:
            raise ValueError(f"width must be 16..4096 pixels, got {self.width}")
        if not 1 <= self.quality <= 100:
            raise ValueError(f"quality must be 1..100, got {self.quality}")
        for name in ("recent_step_s", "recent_span_s", "sparse_step_s", "sparse_span_s", "sample_step_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0")
        if self.max_bytes <= 0:
            raise ValueError("max_bytes must be > 0")

    @property
    def recent_max(self) -> int:
        """Thumbnails the recent ring holds at most."""
        return int(self.recent_span_s / self.recent_step_s) + 2

    @property
    def sparse_max(self) -> int:
        return int(self.sparse_span_s / self.sparse_step_s) + 2

    def sample_offsets(self) -> list[float]:
        n = int(round(self.sample_span_s / self.sample_step_s))
        return [k * self.sample_step_s for k in range(-n, n + 1) if k != 0]


@dataclass(frozen=True, slots=True, eq=False)
class Thumb:
    """One encoded thumbnail and what the detector said about its frame."""

    t: float
    jpeg: bytes
    width: int
    height: int
    p_ad: float
    label: str | None
    """The decided state when the frame was analysed."""


@dataclass(frozen=True, slots=True)
class Pick:
    """A thumbnail chosen to be sent."""

    kind: str  # start | middle | end | sample
    reason: str | None
    label: str | None
    thumb: Thumb


Encoder = Callable[[np.ndarray], tuple[bytes, int, int] | None]


def encode_thumbnail(image: np.ndarray, width: int = 384, quality: int = 80,
                     max_bytes: int = MAX_JPEG_BYTES) -> tuple[bytes, int, int] | None:
    """``(jpeg, width, height)`` of an RGB frame scaled to ``width`` pixels wide (never up), aspect kept; the quality
    is lowered until the JPEG fits ``max_bytes``; ``None`` if it never does.

    The scaling halves the frame with bilinear steps (exactly 2x: each output pixel is the mean of 2x2, a box filter)
    while it is at least twice the target, then one bilinear step: within ~1 grey level of ``INTER_AREA`` and 3-6
    times faster than it at non-integer ratios (a thumbnail needs no canonical resize: it is never classified)."""
    import cv2

    h, w = image.shape[:2]
    small = image
    if w > width:
        height = max(1, int(round(h * width / w)))
        while small.shape[1] >= 2 * width and small.shape[0] >= 2:
            small = cv2.resize(small, (small.shape[1] // 2, small.shape[0] // 2), interpolation=cv2.INTER_LINEAR)
        small = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    bgr = cv2.cvtColor(small, cv2.COLOR_RGB2BGR)
    for q in (quality, *(s for s in _QUALITY_STEPS if s < quality)):
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(q)])
        if ok and len(buf) <= max_bytes:
            return buf.tobytes(), bgr.shape[1], bgr.shape[0]
    return None


def _slot(t: float, step: float) -> int:
    return math.floor(t / step + 1e-6)


class ThumbRing:
    """Thumbnails in stream-time order, at least ``step_s`` apart, at most ``maxlen`` of them and (optionally) at
    most ``max_bytes`` of JPEG; the oldest leave first."""

    def __init__(self, step_s: float, maxlen: int, max_bytes: int | None = None) -> None:
        self.step_s = step_s
        self.max_bytes = max_bytes
        self._items: deque[Thumb] = deque(maxlen=maxlen)
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self):
        return iter(self._items)

    @property
    def last_t(self) -> float | None:
        return self._items[-1].t if self._items else None

    def due(self, t: float) -> bool:
        """Whether a frame at ``t`` is the first of its ``step_s`` slot of stream time (one per slot is kept, so
        thumbnails are ``step_s`` apart on average whatever the frame rate)."""
        last = self.last_t
        return last is None or _slot(t, self.step_s) > _slot(last, self.step_s)

    def add(self, thumb: Thumb) -> None:
        items = self._items
        if len(items) == items.maxlen:
            self.bytes -= len(items[0].jpeg)
        items.append(thumb)
        self.bytes += len(thumb.jpeg)
        if self.max_bytes is not None:
            while self.bytes > self.max_bytes and len(items) > 1:
                self.bytes -= len(items.popleft().jpeg)

    def oldest_t(self) -> float | None:
        return self._items[0].t if self._items else None


def nearest(thumbs: Iterable[Thumb], t: float, *, before: float | None = None, at_or_after: float | None = None,
            tolerance: float | None = None) -> Thumb | None:
    """The thumbnail nearest ``t`` (the later one on a tie), optionally only those with ``t < before`` or
    ``t >= at_or_after``, and within ``tolerance`` of ``t``."""
    best: Thumb | None = None
    best_d = float("inf")
    for th in thumbs:
        if before is not None and not th.t < before:
            continue
        if at_or_after is not None and th.t < at_or_after:
            continue
        d = abs(th.t - t)
        if d <= best_d:
            best, best_d = th, d
    if best is not None and tolerance is not None and best_d > tolerance:
        return None
    return best


class KeyframeRecorder:
    """Chooses and encodes the keyframes of one stream (see the module doc). ``emit`` gets every :class:`Pick`."""

    def __init__(self, emit: Callable[[Pick], None], config: KeyframeConfig | None = None, *,
                 thresholds: tuple[float, float] = (0.7, 0.3), encoder: Encoder | None = None) -> None:
        self.config = config or KeyframeConfig()
        cfg = self.config
        self._emit = emit
        self._encode: Encoder = encoder or (lambda img: encode_thumbnail(img, cfg.width, cfg.quality))
        self.recent = ThumbRing(cfg.recent_step_s, cfg.recent_max)
        self.sparse = ThumbRing(cfg.sparse_step_s, cfg.sparse_max, cfg.max_bytes)
        self.enter, self.exit = thresholds
        self.seg_start: float | None = None
        self.seg_label: str | None = None
        self._pending: list[tuple[float, str | None]] = []  # boundary samples still in the future: (t, label)
        self._low_since: float | None = None
        self._last_low_sample: float | None = None
        self._last_t: float | None = None
        self._tried_slot = -(2**62)
        self._failure_logged = float("-inf")
        self.encoded = 0
        self.failed = 0
        self.sent = 0

    def set_thresholds(self, enter: float, exit_: float) -> None:
        """The decision's thresholds changed (settings from the server)."""
        self.enter, self.exit = enter, exit_

    @property
    def memory_bytes(self) -> int:
        """JPEG bytes held by the rings (a thumbnail in both counts once)."""
        seen = {id(th) for th in self.sparse}
        return self.sparse.bytes + sum(len(th.jpeg) for th in self.recent if id(th) not in seen)

    # -- per frame
    def observe(self, t: float, image: np.ndarray, *, p_ad: float, smoothed: float, state: str | None,
                transition_boundary_t: float | None = None, from_label: str | None = None,
                initial_t: float | None = None) -> None:
        """One analysed frame: its stream time, the RGB image, the detector's ``p_ad`` / ``smoothed`` / decided
        ``state`` after it; on the frame that decided a change, ``transition_boundary_t`` and ``from_label``;
        ``initial_t`` is the decision machine's first-frame time (used at the initial decision)."""
        low_due = self._low_confidence_due(t, smoothed, state)
        thumb = None
        if low_due or (self.recent.due(t) and _slot(t, self.recent.step_s) > self._tried_slot):
            self._tried_slot = _slot(t, self.recent.step_s)  # a failed encode is not retried on every frame
            thumb = self._take(t, image, p_ad, state)
        if thumb is not None:
            if self.recent.due(t):
                self.recent.add(thumb)
            if self.sparse.due(t):
                self.sparse.add(thumb)
        self._last_t = t

        if state is not None and self.seg_start is None and transition_boundary_t is None:
            # the initial decision: the first segment starts at the first frame
            self.seg_start = initial_t if initial_t is not None else t
            self.seg_label = state
            first = nearest(self.recent, self.seg_start)
            if first is not None:
                self._send("start", None, state, first)
        if transition_boundary_t is not None and state is not None:
            self._on_change(transition_boundary_t, from_label, state)
        if thumb is not None:
            self._fulfil_pending()
        if low_due and thumb is not None:
            self._last_low_sample = t
            self._send("sample", "low_confidence", state, thumb)

    def _take(self, t: float, image: np.ndarray, p_ad: float, state: str | None) -> Thumb | None:
        try:
            encoded = self._encode(image)
        except Exception:  # a thumbnail is never worth stopping the detection for
            if time.monotonic() - self._failure_logged >= 60.0:
                self._failure_logged = time.monotonic()
                log.exception("encoding a keyframe failed (%d failures so far; logged at most once a minute)",
                              self.failed + 1)
            encoded = None
        if encoded is None:
            self.failed += 1
            return None
        self.encoded += 1
        jpeg, w, h = encoded
        return Thumb(t=t, jpeg=jpeg, width=w, height=h, p_ad=float(p_ad), label=state)

    def _low_confidence_due(self, t: float, smoothed: float, state: str | None) -> bool:
        cfg = self.config
        if state is None or not self.exit < smoothed < self.enter:
            self._low_since = None
            return False
        if self._low_since is None:
            self._low_since = t
        if t - self._low_since < cfg.low_conf_min_s - 1e-9:
            return False
        return self._last_low_sample is None or t - self._last_low_sample >= cfg.low_conf_interval_s - 1e-9

    def _pool(self) -> list[Thumb]:
        """Every thumbnail held, sparse and recent, by time (each once)."""
        seen: set[int] = set()
        out = []
        for th in (*self.sparse, *self.recent):
            if id(th) not in seen:
                seen.add(id(th))
                out.append(th)
        out.sort(key=lambda th: th.t)
        return out

    def _close_segment(self, end_t: float, label: str | None, *, final: bool) -> set[int]:
        """Send ``end`` and ``middle`` of the segment ending at ``end_t``; the thumbnails used."""
        used: set[int] = set()
        if self.seg_start is None:
            return used
        end = nearest(self.recent, end_t) if final else nearest(self.recent, end_t, before=end_t)
        if end is None and not final:
            end = nearest(self.recent, end_t)
        if end is not None:
            self._send("end", None, label, end)
            used.add(id(end))
        mid_t = 0.5 * (self.seg_start + end_t)
        oldest = self.sparse.oldest_t()
        if oldest is not None and oldest - self.config.sparse_step_s > mid_t:
            log.debug("the middle of the segment from %.1f is older than the rings", self.seg_start)
        else:
            lo, hi = min(self.seg_start, end_t), max(self.seg_start, end_t)
            mid = nearest([th for th in self._pool() if lo <= th.t <= hi], mid_t)
            if mid is not None and id(mid) not in used:
                self._send("middle", None, label, mid)
                used.add(id(mid))
        return used

    def _on_change(self, boundary: float, from_label: str | None, to_label: str) -> None:
        cfg = self.config
        # pending samples past the new boundary were labelled with the old segment's future: drop them
        self._pending = [(pt, lab) for pt, lab in self._pending if pt < boundary]
        used = self._close_segment(boundary, from_label if from_label is not None else self.seg_label, final=False)
        start = nearest(self.recent, boundary, at_or_after=boundary)
        if start is not None:
            self._send("start", None, to_label, start)
            used.add(id(start))
        latest = self.recent.last_t
        for off in cfg.sample_offsets():
            want = boundary + off
            label = to_label if want >= boundary else (from_label or self.seg_label)
            if latest is not None and want <= latest:
                self._sample_at(want, label, used)
            else:
                self._pending.append((want, label))
        self.seg_start = boundary
        self.seg_label = to_label

    def _sample_at(self, want: float, label: str | None, used: set[int] | None = None) -> None:
        th = nearest(self.recent, want, tolerance=self.config.recent_step_s)
        if th is None or (used is not None and id(th) in used):
            return
        if used is not None:
            used.add(id(th))
        self._send("sample", "boundary", label, th)

    def _fulfil_pending(self) -> None:
        latest = self.recent.last_t
        if latest is None or not self._pending:
            return
        ready = [(pt, lab) for pt, lab in self._pending if pt <= latest]
        if ready:
            self._pending = [(pt, lab) for pt, lab in self._pending if pt > latest]
            for pt, lab in ready:
                self._sample_at(pt, lab)

    def finish(self) -> None:
        """The stream ended: ``end`` and ``middle`` of the open segment, and the boundary samples taken so far."""
        if self._last_t is None or self.seg_start is None:
            return
        for pt, lab in self._pending:
            self._sample_at(pt, lab)
        self._pending = []
        self._close_segment(self._last_t, self.seg_label, final=True)

    def _send(self, kind: str, reason: str | None, label: str | None, thumb: Thumb) -> None:
        self.sent += 1
        try:
            self._emit(Pick(kind=kind, reason=reason, label=label, thumb=thumb))
        except Exception:
            log.exception("sending a %s keyframe failed", kind)


def build_keyframe(pick: Pick, *, device: str, model_version: str, to_wall: Callable[[float], float],
                   frame_id: str | None = None) -> KeyframePayload:
    """The wire payload of a chosen thumbnail; stream time mapped to wall time with ``to_wall``."""
    th = pick.thumb
    return KeyframePayload.build(
        jpeg_bytes=th.jpeg, device=device, frame_id=frame_id or new_event_id(), ts=to_wall(th.t), stream_t=th.t,
        kind=pick.kind, reason=pick.reason, p_ad=min(max(th.p_ad, 0.0), 1.0), label=pick.label,
        model_version=model_version, width=th.width, height=th.height,
    )
