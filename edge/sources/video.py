"""Video files, V4L2/USB/HDMI capture devices and RTSP/HTTP streams, all decoded by FFmpeg through PyAV."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import av
import av.error

from adbreak.errors import AdbreakError
from edge.sources.base import Frame, FrameSource

log = logging.getLogger(__name__)

#: decode errors in a row after which a stream is declared broken (a few corrupt packets are skipped and counted)
MAX_CONSECUTIVE_ERRORS = 50


class VideoSource(FrameSource):
    """Decodes ``target`` with FFmpeg and yields frames sampled by timestamp.

    ``target`` is a file path, a V4L2 device (``/dev/video0``) or a URL (``rtsp://``, ``http://``...). Corrupt packets
    are skipped and counted in ``decode_errors``; a source that yields no frame at all is an error.
    """

    def __init__(self, target: str, fps: float | None = 5.0, *, threads: bool = True) -> None:
        super().__init__(fps)
        self.target = target
        self.is_device = target.startswith("/dev/video")
        self.is_url = "://" in target
        self.live = self.is_device or self.is_url
        if not (self.is_device or self.is_url):
            path = Path(target)
            if not path.is_file():
                raise AdbreakError(f"video not found: {target}")
        options = {"rtsp_transport": "tcp"} if target.startswith("rtsp://") else {}
        try:
            self._container = av.open(
                target, format="v4l2" if self.is_device else None, options=options, timeout=(10.0, 10.0)
            )
        except (av.error.FFmpegError, OSError) as exc:
            raise AdbreakError(f"cannot open video {target}: {exc}") from exc
        if not self._container.streams.video:
            self._container.close()
            raise AdbreakError(f"{target} has no video stream")
        self._stream = self._container.streams.video[0]
        if threads and not self.live:
            self._stream.thread_type = "AUTO"
        start = self._stream.start_time
        self._t0 = float(start * self._stream.time_base) if start is not None and self._stream.time_base else None

    @property
    def duration_s(self) -> float | None:
        s = self._stream
        if s.duration is not None and s.time_base is not None:
            return float(s.duration * s.time_base)
        if self._container.duration is not None:
            return self._container.duration / 1_000_000
        return None

    def _frame_time(self, frame: av.VideoFrame) -> float | None:
        if frame.pts is None or frame.time_base is None:
            return None
        t = float(frame.pts * frame.time_base)
        if self._t0 is None:
            self._t0 = t
        return t - self._t0

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        errors_in_row = 0
        last_t = -1.0
        demux = self._container.demux(self._stream)
        while True:
            try:
                packet = next(demux)
            except StopIteration:
                break
            except av.error.EOFError:
                break
            except av.error.FFmpegError as exc:
                # a demux error mid-file is usually truncation; count it and stop rather than spin
                self.decode_errors += 1
                log.warning("%s: demux error after %d frames: %s", self.target, index, exc)
                break
            try:
                frames = packet.decode()
                errors_in_row = 0
            except av.error.FFmpegError as exc:
                self.decode_errors += 1
                errors_in_row += 1
                log.debug("%s: skipped a corrupt packet: %s", self.target, exc)
                if errors_in_row >= MAX_CONSECUTIVE_ERRORS:
                    raise AdbreakError(f"{self.target}: {errors_in_row} corrupt packets in a row: {exc}") from exc
                continue
            for vf in frames:
                t = self._frame_time(vf)
                if t is None:
                    t = last_t + (1.0 / float(self._stream.average_rate or 25))
                if t <= last_t:  # duplicate or reordered timestamps: keep time monotonic
                    continue
                last_t = t
                if not self.sampler.take(t):
                    continue
                yield Frame(t=t, image=vf.to_ndarray(format="rgb24"), index=index)
                index += 1
        if index == 0:
            raise AdbreakError(f"cannot decode any frame from {self.target} (unreadable or not a video)")

    def close(self) -> None:
        self._container.close()
