"""Decode in a background thread so decoding and inference overlap on two cores.

For a file (``drop_oldest=False``) the queue blocks the decoder when full: nothing is lost. For a live source
(``drop_oldest=True``) the decoder never blocks: when inference falls behind, the oldest waiting frame is dropped and
counted, so the camera is always read and the analysed frame is the freshest one.

``transform`` runs on each frame in the decoding thread before it is queued (e.g. ``Detector.prepare``: the resize
then overlaps inference too, and the queue holds model inputs instead of full-size frames).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

from edge.sources.base import Frame, FrameSource

_END = object()


class Prefetcher:
    def __init__(
        self,
        source: FrameSource,
        maxsize: int = 8,
        *,
        drop_oldest: bool | None = None,
        transform: Callable[[Frame], Any] | None = None,
    ) -> None:
        self.source = source
        self.transform = transform
        self.drop_oldest = source.live if drop_oldest is None else drop_oldest
        self.dropped = 0
        self._queue: queue.Queue[object] = queue.Queue(maxsize=maxsize)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="frame-decoder", daemon=True)
        self._thread.start()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                if self.drop_oldest and item is not _END:
                    try:
                        self._queue.get_nowait()
                        self.dropped += 1
                    except queue.Empty:
                        pass
        return False

    def _run(self) -> None:
        try:
            transform = self.transform
            for frame in self.source:
                if not self._put(frame if transform is None else transform(frame)):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            self._error = exc
        self._put(_END)

    def __iter__(self) -> Iterator[Frame]:
        while True:
            item = self._queue.get()
            if item is _END:
                if self._error is not None:
                    raise self._error
                return
            yield item  # type: ignore[misc]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.source.close()

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
