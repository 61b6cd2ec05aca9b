"""Video files, V4L2/USB/HDMI capture devices and RTSP/HTTP streams, all decoded by FFmpeg through PyAV."""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import av
import av.error
import numpy as np
from av.video.reformatter import VideoReformatter

from adbreak.errors import AdbreakError
from edge.cues.base import AUDIO_RATE
from edge.sources.base import Frame, FrameSource

log = logging.getLogger(__name__)

#: decode errors in a row after which a stream is declared broken (a few corrupt packets are skipped and counted)
MAX_CONSECUTIVE_ERRORS = 50
#: seconds of video a sampled frame may wait for its audio (audio and video packets interleave in the container)
AUDIO_MAX_WAIT_S = 2.0


LOOP_FILTER_CODECS = frozenset({"h264", "hevc"})
"""Decoders whose in-loop deblocking is skipped: 40 % less CPU per H.264 frame on this project's machines (1.75 ->
1.08 ms at 540p). The pictures differ from a full decode by faint block edges, which the cues (frame statistics on a
160x90 copy, the logo's strong edges, histogram changes) and a head at 224x224 do not see; on a Raspberry Pi
replaying a recording or decoding an RTSP camera, the saved CPU is the backbone's."""


class VideoSource(FrameSource):
    """Decodes ``target`` with FFmpeg and yields frames sampled by timestamp.

    ``target`` is a file path, a V4L2 device (``/dev/video0``) or a URL (``rtsp://``, ``http://``...). Corrupt packets
    are skipped and counted in ``decode_errors``; a source that yields no frame at all is an error.

    Only sampled frames are converted to RGB. A non-reference frame (one no other frame is predicted from, e.g. the
    unreferenced B-frames of H.264) is not decoded at all when the sampler cannot take it: its packet's time falls in
    a sampling slot that an earlier frame, already sent to the decoder in full, fills. The frames yielded are exactly
    those a full decode yields (in a damaged stream, the pixels that error concealment makes up may differ, as they
    already do between threaded and unthreaded decoding); after a decode error or a frame time the packets did not
    announce, every frame is decoded again. ``skip_unsampled=False`` turns this off. ``threads=False`` decodes on the
    calling thread only. H.264 and HEVC are decoded without their in-loop deblocking (:data:`LOOP_FILTER_CODECS`)
    unless ``deblock=True``.

    Audio (``audio=True``, the default): the first audio stream of a file or an RTSP/HTTP stream is decoded too,
    resampled to mono float32 at :data:`~edge.cues.base.AUDIO_RATE` (16 kHz) and cut at the yielded frames' times:
    each :class:`Frame` carries the samples from the previous yielded frame's time up to its own. Decoded audio is
    buffered by its timestamps, and a sampled frame waits (at most :data:`AUDIO_MAX_WAIT_S` of video) until the audio
    up to its time has been demuxed. Audio decode errors are counted in ``decode_errors`` (and ``audio_errors``) and
    skipped, leaving a shorter slice, never made-up silence; after :data:`MAX_CONSECUTIVE_ERRORS` in a row the audio
    is given up and frames carry ``audio=None``. A source without an audio stream, ``audio=False``, and a V4L2 device
    (a capture stick's sound is a separate ALSA device, not read here) give ``audio=None``.
    """

    def __init__(
        self,
        target: str,
        fps: float | None = 5.0,
        *,
        threads: bool = True,
        skip_unsampled: bool = True,
        audio: bool = True,
        luma_only: bool = False,
        deblock: bool = False,
    ) -> None:
        super().__init__(fps)
        # luma_only: frames carry the (H, W) luma plane instead of RGB, for a consumer that needs nothing else (the
        # cues without a model): the colour conversion is skipped
        self.pixel_format = "gray" if luma_only else "rgb24"
        self.skip_unsampled = skip_unsampled and fps is not None
        self.skippable_packets = 0  # packets sent with "skip if non-reference" (the decoder drops those that are)
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
        elif not threads:  # one decoding thread (FFmpeg would otherwise decode a multi-slice frame on several)
            self._stream.codec_context.thread_count = 1
        if not deblock and self._stream.codec_context.name in LOOP_FILTER_CODECS:
            ctx = self._stream.codec_context
            ctx.options = {**dict(ctx.options or {}), "skip_loop_filter": "all"}
        start = self._stream.start_time
        self._t0 = float(start * self._stream.time_base) if start is not None and self._stream.time_base else None
        self.audio_errors = 0
        streams = self._container.streams
        self._audio = streams.audio[0] if audio and not self.is_device and streams.audio else None
        self._resampler: av.AudioResampler | None = None
        self._audio_chunks: deque[tuple[float, np.ndarray]] = deque()  # (start on the container's clock, samples)
        self._audio_end = -math.inf  # container time up to which audio has been decoded
        self._audio_taken: float | None = None  # frame time up to which audio has been handed out
        self._audio_errors_in_row = 0

    @property
    def has_audio(self) -> bool:
        """Whether frames carry audio (the source has an audio stream, asked for and not given up)."""
        return self._audio is not None

    @property
    def duration_s(self) -> float | None:
        s = self._stream
        if s.duration is not None and s.time_base is not None:
            return float(s.duration * s.time_base)
        if self._container.duration is not None:
            return self._container.duration / 1_000_000
        return None

    def _packet_time(self, packet: av.Packet) -> float | None:
        """A packet's presentation time on the frames' clock (None until that clock's origin is known)."""
        if packet.pts is None or packet.time_base is None or self._t0 is None:
            return None
        return float(packet.pts * packet.time_base) - self._t0

    def _frame_time(self, frame: av.VideoFrame) -> float | None:
        if frame.pts is None or frame.time_base is None:
            return None
        t = float(frame.pts * frame.time_base)
        if self._t0 is None:
            self._t0 = t
        return t - self._t0

    # ---------------------------------------------------------------- audio
    def _resample(self, frame: av.AudioFrame | None) -> None:
        """Resample one decoded audio frame (``None``: flush) and buffer the result by its timestamps."""
        if self._resampler is None:
            if frame is None:
                return
            self._resampler = av.AudioResampler(format="flt", layout="mono", rate=AUDIO_RATE)
        try:
            out = self._resampler.resample(frame)
        except ValueError:  # the stream's format, layout or rate changed: a new resampler for the new format
            self._resampler = av.AudioResampler(format="flt", layout="mono", rate=AUDIO_RATE)
            try:
                out = self._resampler.resample(frame)
            except (ValueError, av.error.FFmpegError) as exc:
                self._audio_error(exc)
                return
        except av.error.FFmpegError as exc:
            self._audio_error(exc)
            return
        for chunk in out:
            samples = chunk.to_ndarray().reshape(-1).astype(np.float32, copy=False)
            if samples.size == 0:
                continue
            start = float(chunk.pts * chunk.time_base) if chunk.pts is not None and chunk.time_base else None
            if start is None:
                start = self._audio_end if math.isfinite(self._audio_end) else 0.0
            self._audio_chunks.append((start, samples))
            self._audio_end = max(self._audio_end, start + samples.size / AUDIO_RATE)

    def _audio_error(self, exc: Exception) -> None:
        """Count an audio decode error; after too many in a row, give the audio up (frames then carry None)."""
        self.decode_errors += 1
        self.audio_errors += 1
        self._audio_errors_in_row += 1
        log.debug("%s: skipped corrupt audio: %s", self.target, exc)
        if self._audio_errors_in_row >= MAX_CONSECUTIVE_ERRORS:
            log.warning("%s: %d corrupt audio packets in a row: no audio", self.target, MAX_CONSECUTIVE_ERRORS)
            self._audio = None
            self._audio_chunks.clear()

    def _decode_audio(self, packet: av.Packet) -> None:
        try:
            frames = packet.decode()
        except av.error.FFmpegError as exc:
            self._audio_error(exc)
            return
        self._audio_errors_in_row = 0
        for frame in frames:
            self._resample(frame)

    def _audio_ready(self, t: float) -> bool:
        """Whether the audio up to frame time ``t`` has been decoded (or there is none to wait for)."""
        return self._audio is None or self._audio_end >= t + (self._t0 or 0.0)

    def _take_audio(self, t: float) -> np.ndarray | None:
        """The buffered samples from the previous frame's time up to ``t`` (frame times); older ones are dropped."""
        if self._audio is None:
            return None
        t0 = self._t0 or 0.0
        a = -math.inf if self._audio_taken is None else self._audio_taken + t0
        b = t + t0
        self._audio_taken = t
        pieces = []
        keep: deque[tuple[float, np.ndarray]] = deque()
        for start, samples in self._audio_chunks:
            n = samples.size
            i0 = 0 if a == -math.inf else min(n, max(0, round((a - start) * AUDIO_RATE)))
            i1 = min(n, max(0, round((b - start) * AUDIO_RATE)))
            if i1 > i0:
                pieces.append(samples[i0:i1])
            if i1 < n:
                keep.append((start, samples))
        self._audio_chunks = keep
        return np.concatenate(pieces) if pieces else np.zeros(0, np.float32)

    # ---------------------------------------------------------------- frames
    def __iter__(self) -> Iterator[Frame]:
        index = 0
        errors_in_row = 0
        last_t = -1.0
        audio = self._audio
        demux = self._container.demux(self._stream) if audio is None else self._container.demux(self._stream, audio)
        # sampled frames (time, RGB) waiting for the audio up to their time to be demuxed
        pending: deque[tuple[float, np.ndarray]] = deque()

        def release(final: bool) -> Iterator[Frame]:
            nonlocal index
            while pending and (
                final or self._audio_ready(pending[0][0]) or pending[-1][0] - pending[0][0] > AUDIO_MAX_WAIT_S
            ):
                t, image = pending.popleft()
                yield Frame(t=t, image=image, index=index, audio=self._take_audio(t))
                index += 1

        ctx = self._stream.codec_context
        # one converter for the whole stream (a new one per frame rebuilds its scaler context every time); one thread:
        # the decoder (and, with a Prefetcher, the consumer) already use the other cores
        rgb = VideoReformatter()
        # skip_unsampled bookkeeping: per sampling slot, the earliest packet time sent to the decoder in full; and the
        # packet times not yet seen again as frames (a frame time the packets did not announce ends the skipping)
        gate = self.skip_unsampled and self._t0 is not None  # packet times need the clock's origin up front
        full_in_slot: dict[int, float] = {}
        announced: set[float] = set()
        skipping = False
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
            if audio is not None and packet.stream_index == audio.index:
                if self._audio is not None:
                    self._decode_audio(packet)
                    yield from release(False)
                continue
            if gate:
                pt = self._packet_time(packet)
                skip = False
                if pt is not None:
                    slot = self.sampler.slot(pt)
                    first = full_in_slot.get(slot)
                    skip = first is not None and first < pt
                    if not skip:
                        full_in_slot[slot] = pt if first is None else min(first, pt)
                        if len(full_in_slot) > 64:
                            del full_in_slot[min(full_in_slot)]
                    announced.add(pt)
                if skip != skipping:
                    ctx.skip_frame = "NONREF" if skip else "DEFAULT"
                    skipping = skip
                self.skippable_packets += skip
            try:
                frames = packet.decode()
                errors_in_row = 0
            except av.error.FFmpegError as exc:
                self.decode_errors += 1
                errors_in_row += 1
                if gate:
                    gate = skipping = False
                    ctx.skip_frame = "DEFAULT"
                log.debug("%s: skipped a corrupt packet: %s", self.target, exc)
                if errors_in_row >= MAX_CONSECUTIVE_ERRORS:
                    raise AdbreakError(f"{self.target}: {errors_in_row} corrupt packets in a row: {exc}") from exc
                continue
            while frames:
                vf = frames.pop(0)
                t = self._frame_time(vf)
                if gate and (t is None or t not in announced or t <= last_t):
                    gate = skipping = False  # frames the packet times did not predict: decode everything from now on
                    ctx.skip_frame = "DEFAULT"
                if gate:
                    announced.discard(t)  # type: ignore[arg-type]
                    if len(announced) > 256:  # times of skipped frames never come back: forget those already passed
                        announced = {a for a in announced if a > t}
                if t is None:
                    t = last_t + (1.0 / float(self._stream.average_rate or 25))
                if t <= last_t:  # duplicate or reordered timestamps: keep time monotonic
                    continue
                last_t = t
                if not self.sampler.take(t):
                    continue
                image = rgb.reformat(vf, format=self.pixel_format, threads=1).to_ndarray()
                del vf
                pending.append((t, image))
                yield from release(False)
        if self._audio is not None:
            self._resample(None)
        yield from release(True)
        if index == 0:
            raise AdbreakError(f"cannot decode any frame from {self.target} (unreadable or not a video)")

    def close(self) -> None:
        self._container.close()
