"""Decode a video file in a child process, so that decoding and analysis run on two cores for real.

A decoding thread (``Prefetcher``) shares the interpreter lock with the analysis: the decoder's own Python work
(packets, timestamps, audio resampling) and the cues' many small numpy steps then take turns, and on two cores
``adbreak evaluate`` used about 1.45 of them. :class:`ProcessSource` runs :class:`VideoSource` in a child process
(``spawn``) and sends the sampled frames back in small batches through a bounded queue; ``convert`` (a picklable
callable, e.g. ``edge.pipeline.FrameConverter``) runs in the child too, so what crosses the process boundary is the
small analysis picture and model input, not the decoded frame.

It is for files read as fast as they decode (``adbreak evaluate``); live sources keep the thread, which can drop
frames. Errors keep their meaning: a file that cannot be opened raises the same ``AdbreakError`` from the
constructor, a decoding error raises from the iteration, and a child that dies says so instead of hanging.
"""

from __future__ import annotations

import multiprocessing as mp
import pickle
import queue
from collections.abc import Callable, Iterator
from typing import Any

from adbreak.errors import AdbreakError
from edge.sources.base import FrameSource

_POLL_S = 0.5
_START_TIMEOUT_S = 60.0


def _picklable(exc: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - any exception that does not survive pickling is described instead
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def _child(out: Any, target: str, fps: float | None, kwargs: dict[str, Any], convert: Callable | None,
           batch: int) -> None:
    import cv2

    from edge.sources.video import VideoSource

    # this process is one core's work beside the analysis: OpenCV's worker threads would split each resize across
    # the cores and wait on each other (1.2 ms of CPU a frame more for a 960x540 frame here, for no time saved)
    cv2.setNumThreads(1)

    try:
        source = VideoSource(target, fps, **kwargs)
    except BaseException as exc:  # noqa: BLE001 - handed to the parent, raised there
        out.put(("error", _picklable(exc)))
        return
    out.put(("ready", {"duration_s": source.duration_s, "has_audio": source.has_audio}))
    items: list[Any] = []
    try:
        for frame in source:
            items.append(convert(frame) if convert is not None else frame)
            if len(items) >= batch:
                out.put(("frames", items))
                items = []
        if items:
            out.put(("frames", items))
        out.put(("end", {"decode_errors": source.decode_errors, "audio_errors": source.audio_errors}))
    except BaseException as exc:  # noqa: BLE001
        if items:
            out.put(("frames", items))
        out.put(("error", _picklable(exc)))
    finally:
        source.close()


class ProcessSource(FrameSource):
    """A :class:`VideoSource` (``target``, ``fps``, ``**source_kwargs``) decoded in a child process; yields its frames,
    or what ``convert(frame)`` returns for each. ``decode_errors`` / ``audio_errors`` are the child's counts once the
    file has been read to its end."""

    live = False

    def __init__(self, target: str, fps: float | None = 5.0, *, convert: Callable | None = None, batch: int = 4,
                 maxsize: int = 4, **source_kwargs: Any) -> None:
        super().__init__(fps)
        self.target = target
        self.audio_errors = 0
        ctx = mp.get_context("spawn")
        self._queue = ctx.Queue(maxsize=maxsize)
        self._process = ctx.Process(target=_child, name="frame-decoder",
                                    args=(self._queue, target, fps, source_kwargs, convert, batch), daemon=True)
        self._process.start()
        self._done = False
        kind, payload = self._next(_START_TIMEOUT_S)
        if kind == "error":
            self.close()
            raise payload
        self._duration_s = payload["duration_s"]
        self.has_audio = bool(payload["has_audio"])

    @property
    def duration_s(self) -> float | None:
        return self._duration_s

    def _next(self, timeout_s: float | None = None) -> tuple[str, Any]:
        waited = 0.0
        while True:
            try:
                return self._queue.get(timeout=_POLL_S)
            except queue.Empty:
                waited += _POLL_S
                if not self._process.is_alive():
                    try:  # it may have put its last message just before it ended
                        return self._queue.get(timeout=_POLL_S)
                    except queue.Empty:
                        raise AdbreakError(
                            f"the decoder of {self.target} stopped (exit code {self._process.exitcode})"
                        ) from None
                if timeout_s is not None and waited >= timeout_s:
                    raise AdbreakError(f"the decoder of {self.target} did not start within {timeout_s:g} s") from None

    def __iter__(self) -> Iterator[Any]:
        while not self._done:
            kind, payload = self._next()
            if kind == "frames":
                yield from payload
            elif kind == "end":
                self.decode_errors = int(payload["decode_errors"])
                self.audio_errors = int(payload["audio_errors"])
                self._done = True
            else:
                self._done = True
                raise payload

    def close(self) -> None:
        if self._process.is_alive():
            self._process.terminate()
        self._process.join(timeout=5)
        self._queue.close()
        self._queue.cancel_join_thread()
