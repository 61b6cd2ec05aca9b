"""The capture side of the live agent: a thread that reads a frame source into the bounded frame queue.

* **Live sources** (camera, capture device, stream) are read as fast as they deliver; the queue drops the oldest frame
  when inference falls behind, so the capture never blocks. A live source that fails or ends mid-stream is logged
  and reopened with exponential back-off; stream time carries on across the gap in step with the wall clock, so the
  decision's time never goes backwards.
* **Files** (video, image folder) in real-time mode are paced: frame ``k`` is released at ``t0 + t_k / speed``
  of the monotonic clock, exactly as if it were live (and dropped the same way if inference cannot keep up). In
  loop mode the file is reopened at its end and the file's duration is added to stream time on every loop, so stream
  time increases monotonically. Without real-time mode a file is read as fast as it decodes and the queue blocks the
  reader instead of dropping: every frame is analysed, as in ``adbreak evaluate``.

:class:`StreamClock` maps stream time to wall time for the events (see ``docs/edge.md``, "Timing").
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from edge.frames_queue import DropOldestQueue, QueueClosed
from edge.sources.base import Frame, FrameSource

log = logging.getLogger(__name__)

DEFAULT_FRAME_STEP_S = 0.04  # one frame at 25 fps: the gap assumed after a file's last frame when its rate is unknown


def stream_to_wall(stream_t: float, ref_stream_t: float, ref_wall: float, speed: float = 1.0) -> float:
    """Wall time (Unix seconds) of stream instant ``stream_t``, given one instant known on both clocks.

    ``wall = ref_wall + (stream_t - ref_stream_t) / speed``. For a paced replay the reference is stream time 0 and
    the wall time it was released; for a live source it is a frame's stream time and its capture wall time.
    """
    return ref_wall + (stream_t - ref_stream_t) / speed


class StreamClock:
    """Stream time -> wall time, anchored by the capture clock.

    ``paced=True`` (a replayed file): one fixed anchor, ``wall = t0_wall + stream_t / speed``, where ``t0_wall`` is
    the wall time at which stream time 0 was released. ``paced=False`` (a live source, or a file read as fast as it
    decodes): the anchor follows the frames, ``wall = capture_wall - (frame_t - stream_t)`` for the latest frame
    observed, so wall times track the capture even if the source's own clock drifts.
    """

    def __init__(self, *, paced: bool, speed: float = 1.0) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.paced = paced
        self.speed = speed if paced else 1.0
        self._ref: tuple[float, float] | None = None

    def observe(self, stream_t: float, capture_wall: float) -> None:
        """A frame with stream time ``stream_t`` was captured at ``capture_wall``; re-anchors unless paced."""
        if not self.paced or self._ref is None:
            if self.paced:
                self._ref = (0.0, stream_to_wall(0.0, stream_t, capture_wall, self.speed))
            else:
                self._ref = (stream_t, capture_wall)

    @property
    def ready(self) -> bool:
        return self._ref is not None

    def wall(self, stream_t: float) -> float:
        if self._ref is None:
            raise RuntimeError("StreamClock has no anchor yet: observe a frame first")
        return stream_to_wall(stream_t, self._ref[0], self._ref[1], self.speed)


@dataclass(frozen=True, slots=True)
class CapturedFrame:
    """A frame on the agent's continuous stream timeline and the wall time the capture released it."""

    frame: Frame
    wall: float


@dataclass
class Backoff:
    """Exponential back-off between reopen attempts of a live source: ``initial``, doubled up to ``maximum``."""

    initial: float = 1.0
    maximum: float = 30.0

    def __post_init__(self) -> None:
        self._next = self.initial

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self._next * 2.0, self.maximum)
        return delay

    def reset(self) -> None:
        self._next = self.initial


class Capture:
    """Reads ``first`` (then sources from ``opener`` when looping or reopening) into ``out`` on its own thread.

    ``error`` holds the exception that ended a file source (a live source's failures are retried, never fatal).
    The queue is closed when the capture ends, for whatever reason, so the consumer always sees the end.
    """

    def __init__(
        self,
        first: FrameSource,
        opener: Callable[[], FrameSource],
        out: DropOldestQueue[CapturedFrame],
        *,
        realtime: bool = True,
        speed: float = 1.0,
        loop: bool = False,
        duration_s: float | None = None,
        backoff: Backoff | None = None,
        wall_clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.live = bool(first.live)
        self.paced = realtime and not self.live
        self.speed = speed
        self.loop = loop and not self.live
        self.duration_s = duration_s
        self.out = out
        self.error: BaseException | None = None
        self.frames = 0
        self.reopens = 0
        self.t0_wall: float | None = None  # paced replay: wall time at which stream time 0 was released
        self._first: FrameSource | None = first
        self._opener = opener
        self._backoff = backoff or Backoff()
        self._wall = wall_clock
        self._mono = monotonic
        self._stop = threading.Event()
        self._t0_mono: float | None = None
        self._last_t: float | None = None
        self._last_mono: float | None = None
        self._thread = threading.Thread(target=self._run, name="frame-capture", daemon=True)

    # -- control
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop releasing frames (safe from any thread or a signal handler); the queue is closed shortly after."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end; True when it has (a capture never started just releases its source)."""
        if self._thread.ident is None:
            if self._first is not None:
                self._first.close()
                self._first = None
            self.out.close()
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # -- the thread
    def _run(self) -> None:
        try:
            self._capture()
        except BaseException as exc:  # handed to the agent through .error
            self.error = exc
        finally:
            if self._first is not None:
                self._first.close()
                self._first = None
            self.out.close()

    def _capture(self) -> None:
        offset = 0.0
        source: FrameSource | None = self._first
        while not self._stop.is_set():
            if source is None:
                source = self._reopen()
                if source is None:
                    return  # stopped while waiting to reopen
            self._first = None
            try:
                ended, offset = self._pump(source, offset)
            except Exception as exc:
                if not self.live:
                    raise
                log.warning("live source failed after %d frames: %s; reopening", self.frames, exc)
                continue
            finally:
                skipped = getattr(source, "decode_errors", 0)
                if skipped:
                    log.warning("%s: %d corrupt packet(s) skipped", getattr(source, "target", "the source"), skipped)
                source.close()
                source = None
            if ended:
                return
            if self.live:
                log.warning("live source ended after %d frames; reopening", self.frames)
            elif not self.loop:
                return
            elif self.duration_s is not None and offset >= self.duration_s:
                return  # the next loop would start at or after --duration

    def _reopen(self) -> FrameSource | None:
        """Open the next source: at once for a loop, with back-off for a live source that failed."""
        if not self.live:
            return self._opener()
        while not self._stop.is_set():
            delay = self._backoff.next_delay()
            log.info("reopening the live source in %.0f s", delay)
            if self._stop.wait(delay):
                return None
            try:
                source = self._opener()
            except Exception as exc:
                log.warning("cannot reopen the live source: %s", exc)
                continue
            self.reopens += 1
            return source
        return None

    def _live_offset_after_gap(self) -> float:
        """Stream-time offset for a reopened live source: stream time keeps pace with the monotonic clock."""
        if self._last_t is None or self._last_mono is None:
            return 0.0
        return self._last_t + max(self._mono() - self._last_mono, 0.0)

    def _pump(self, source: FrameSource, offset: float) -> tuple[bool, float]:
        """Release the frames of one source. Returns ``(finished, offset for the next loop)``; ``finished`` means
        stop (duration reached, stopped, queue closed); otherwise the source simply ran out."""
        last_raw: float | None = None
        first_raw: float | None = None
        step = 1.0 / source.fps if source.fps else DEFAULT_FRAME_STEP_S
        for frame in source:
            if self._stop.is_set():
                return True, offset
            if first_raw is None:
                first_raw = frame.t
                if self.live and self._last_t is not None:
                    # a reopened camera restarts its own clock: continue from the last frame plus the gap
                    offset = self._live_offset_after_gap() - frame.t
            last_raw = frame.t
            t = frame.t + offset
            if self._last_t is not None and t <= self._last_t:
                t = self._last_t + 1e-3  # never let the decision's time go backwards
            if self.duration_s is not None and t >= self.duration_s:
                return True, offset
            if self.paced and not self._wait_release(t):
                return True, offset
            wall = self._wall()
            if self.paced and self.t0_wall is not None:
                wall = stream_to_wall(t, 0.0, self.t0_wall, self.speed)
            item = CapturedFrame(Frame(t=t, image=frame.image, index=self.frames, audio=frame.audio), wall)
            if not self._put(item):
                return True, offset
            self.frames += 1
            self._last_t = t
            self._last_mono = self._mono()
            self._backoff.reset()
        if self.live or last_raw is None:
            return False, offset
        duration = source.duration_s
        span = max(duration if duration else 0.0, last_raw + step)
        return False, offset + span

    def _wait_release(self, t: float) -> bool:
        """Paced replay: sleep until stream time ``t`` is due. False if stopped while waiting."""
        if self._t0_mono is None:
            now_mono, now_wall = self._mono(), self._wall()
            self._t0_mono = now_mono - t / self.speed
            self.t0_wall = now_wall - t / self.speed
            return True
        delay = self._t0_mono + t / self.speed - self._mono()
        if delay > 0:
            return not self._stop.wait(delay)
        return not self._stop.is_set()

    def _put(self, item: CapturedFrame) -> bool:
        try:
            if self.paced or self.live:
                self.out.put(item)
                return True
            while not self._stop.is_set():  # a file read as fast as it decodes: wait for room, lose nothing
                try:
                    self.out.put(item, block=True, timeout=0.2)
                    return True
                except queue.Full:
                    continue
        except QueueClosed:
            pass
        return False
