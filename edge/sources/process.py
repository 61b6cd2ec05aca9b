"""Decode a video file in a child process, so that decoding and analysis run on two cores for real.

A decoding thread (``Prefetcher``) shares the interpreter lock with the analysis: the decoder's own Python work
(packets, timestamps, audio resampling) and the cues' many small numpy steps then take turns, and on two cores
``adbreak evaluate`` used about 1.45 of them. :class:`ProcessSource` runs :class:`VideoSource` in a child process
(``spawn``) and sends the sampled frames back in small batches through a bounded queue; ``convert`` (a picklable
callable, e.g. ``edge.pipeline.FrameConverter``) runs in the child too, so what crosses the process boundary is the
small analysis picture and model input, not the decoded frame.

The pictures cross through shared memory: the child pickles each batch with its arrays as out-of-band buffers
(pickle protocol 5) and copies those into a slot of a ring of shared memory; the pipe carries only the small rest.
A frame's ~400 KB (model input, screen luma) through the pipe cost 0.2-0.7 ms of pickling a frame over both
processes, plus the pipe's own copies; this costs about 0.1 ms. The ring's slots are handed back by a semaphore once
the parent has copied a batch out, and the parent removes the ring when it closes.

It is for files read as fast as they decode (``adbreak evaluate``); live sources keep the thread, which can drop
frames. Errors keep their meaning: a file that cannot be opened raises the same ``AdbreakError`` from the
constructor, a decoding error raises from the iteration, and a child that dies says so instead of hanging.
"""

from __future__ import annotations

import multiprocessing as mp
import pickle
import queue
import uuid
from collections.abc import Callable, Iterator
from multiprocessing import shared_memory
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


class _RingWriter:
    """The child's side of the shared-memory ring: ``send`` puts one batch on the queue, its arrays through a slot."""

    def __init__(self, out: Any, free: Any, name: str, slots: int) -> None:
        self.out, self.free, self.name, self.slots = out, free, name, slots
        self.shm: shared_memory.SharedMemory | None = None
        self.slot_bytes = 0
        self.next = 0
        self.unavailable = False

    def send(self, items: list[Any]) -> None:
        buffers: list[pickle.PickleBuffer] = []
        data = pickle.dumps(items, protocol=5, buffer_callback=buffers.append)
        views = [b.raw() for b in buffers]
        total = sum(v.nbytes for v in views)
        if self.shm is None and total and not self.unavailable:
            self.slot_bytes = 2 * total  # room for the batches to come (a larger one goes through the pipe whole)
            try:
                self.shm = shared_memory.SharedMemory(name=self.name, create=True, size=self.slot_bytes * self.slots)
            except OSError:  # no /dev/shm, or too small for it (a container's): the pipe carries everything
                self.unavailable = True
        if self.shm is None or total > self.slot_bytes:
            self.out.put(("frames", items))
            return
        self.free.acquire()
        offset = self.next * self.slot_bytes
        sizes = []
        for v in views:
            self.shm.buf[offset : offset + v.nbytes] = v
            offset += v.nbytes
            sizes.append(v.nbytes)
        self.out.put(("shared", (data, self.next * self.slot_bytes, sizes)))
        self.next = (self.next + 1) % self.slots

    def close(self) -> None:
        if self.shm is not None:
            self.shm.close()  # the parent removes it (it may still be reading the last slots)


def _child(out: Any, target: str, fps: float | None, kwargs: dict[str, Any], convert: Callable | None,
           batch: int, ring: tuple[Any, str, int]) -> None:
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
    writer = _RingWriter(out, *ring)
    items: list[Any] = []
    try:
        for frame in source:
            items.append(convert(frame) if convert is not None else frame)
            if len(items) >= batch:
                writer.send(items)
                items = []
        if items:
            writer.send(items)
        out.put(("end", {"decode_errors": source.decode_errors, "audio_errors": source.audio_errors}))
    except BaseException as exc:  # noqa: BLE001
        if items:
            out.put(("frames", items))
        out.put(("error", _picklable(exc)))
    finally:
        source.close()
        writer.close()


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
        # a slot for each batch the queue holds, one being read here and one being written there
        slots = maxsize + 2
        self._free = ctx.Semaphore(slots)
        self._ring_name = f"adbreak-{uuid.uuid4().hex[:16]}"
        self._ring: shared_memory.SharedMemory | None = None
        self._process = ctx.Process(target=_child, name="frame-decoder", daemon=True,
                                    args=(self._queue, target, fps, source_kwargs, convert, batch,
                                          (self._free, self._ring_name, slots)))
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
            if kind == "shared":
                yield from self._unpack(*payload)
            elif kind == "frames":
                yield from payload
            elif kind == "end":
                self.decode_errors = int(payload["decode_errors"])
                self.audio_errors = int(payload["audio_errors"])
                self._done = True
            else:
                self._done = True
                raise payload

    def _unpack(self, data: bytes, offset: int, sizes: list[int]) -> list[Any]:
        if self._ring is None:
            self._ring = shared_memory.SharedMemory(name=self._ring_name)
        buffers = []
        for n in sizes:
            buffers.append(bytearray(self._ring.buf[offset : offset + n]))  # a copy: the slot is reused
            offset += n
        self._free.release()
        return pickle.loads(data, buffers=buffers)

    def close(self) -> None:
        if self._process.is_alive():
            self._process.terminate()
        self._process.join(timeout=5)
        self._queue.close()
        self._queue.cancel_join_thread()
        try:  # the child made the ring (if it sent a batch); whoever ends first, it goes here
            ring = self._ring or shared_memory.SharedMemory(name=self._ring_name)
        except FileNotFoundError:
            return
        self._ring = None
        ring.close()
        ring.unlink()
