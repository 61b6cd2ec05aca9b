"""The decoding passes of a scan, each a plain function that a worker process runs on the recording.

* :func:`audio_pass` - the whole audio track: the live pipeline's silence and loudness cues on every frame of the
  analysis grid, plus each 50 ms window's level (for boundaries on the exact edge of a silence).
* :func:`keyframe_pass` - the intra frames only (H.264/HEVC ``skip_frame="NONINTRA"``: broadcast streams carry
  I-frames that are not IDR, so ``NONKEY`` would miss some; MPEG-2 ``NONKEY``, its decoder's "I-frames only"):
  black/uniform, the picture's level, and the channel logo learned from them (:class:`edge.logo.LogoLearner`);
  optional thumbnails. A tenth of a full decode or less.
* :func:`window_pass` - full-rate decoding of chosen windows (seek to the intra frame before each, decode on): every
  cue of the live pipeline on the grid frames inside, the logo's presence with the logo the keyframe pass learned,
  the head's p(ad) with a model, and each decoded frame's black test for frame-accurate black edges.

Times are seconds on the video's clock (0 = the first video frame's timestamp), as ``adbreak evaluate`` has them.
The grid is the live pipeline's sampling: frame slot ``k`` at ``k / fps`` takes the first decoded frame at or after
it. Every pass reports the stretches it could not decode (``gaps``) instead of failing, unless nothing decodes.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import av
import av.error
import cv2
import numpy as np

from adbreak.errors import AdbreakError
from edge.cues.aspect import AspectCue
from edge.cues.audio import SilenceCue
from edge.cues.base import ANALYSIS_WIDTH, AUDIO_RATE, ScreenFrame, resize_luma
from edge.cues.black import BlackCue
from edge.cues.cut import CutCue
from edge.logo import LogoConfig, LogoLearner, LogoScorer
from edge.sources.base import TimestampSampler
from edge.sources.video import LOOP_FILTER_CODECS

log = logging.getLogger(__name__)

GAP_MIN_S = 1.0
"""A jump in decoded timestamps longer than this (and than two frame intervals) is reported as a gap."""
THUMBNAIL_WIDTH = 384
THUMBNAIL_QUALITY = 80
MAX_EARLY_FRAMES = 150
"""Intra frames (at the analysis size, ~230 KB each) kept until the logo is learned, to be scored then."""
MAX_ERRORS_IN_ROW = 200
"""Decode errors in a row after which the rest of a pass is given up (what decoded so far is kept)."""


# --------------------------------------------------------------------------------------------- opening and frames
def open_container(path: str | Path) -> av.container.InputContainer:
    try:
        return av.open(str(path), timeout=(10.0, 10.0))
    except (av.error.FFmpegError, OSError) as exc:
        raise AdbreakError(f"cannot open {path}: {exc}") from exc


LOWRES_CODECS = frozenset({"mpeg1video", "mpeg2video", "mjpeg"})
"""Decoders that can decode at half size (FFmpeg's ``lowres``), which saves a fifth of a 1080i MPEG-2 decode."""




def video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream:
    """The first video stream, set up for a scan's worker: one decoding thread (the workers use the cores),
    half-size decoding where the codec can and the picture stays at least the analysis width, and no deblocking
    (:data:`LOOP_FILTER_CODECS`)."""
    stream = container.streams.video[0]
    ctx = stream.codec_context
    ctx.thread_count = 1
    options = dict(ctx.options or {})
    if ctx.name in LOWRES_CODECS and (ctx.width or 0) // 2 >= ANALYSIS_WIDTH:
        options["lowres"] = "1"
    if ctx.name in LOOP_FILTER_CODECS:
        options["skip_loop_filter"] = "all"
    ctx.options = options
    return stream


def video_origin(container: av.container.InputContainer) -> float:
    """The video stream's first timestamp on the container's clock (seconds), 0 when unknown."""
    stream = container.streams.video[0]
    if stream.start_time is not None and stream.time_base is not None:
        return float(stream.start_time * stream.time_base)
    return 0.0


_LIMITED_TO_FULL = np.clip(np.round((np.arange(256) - 16) * 255.0 / 219.0), 0, 255).astype(np.uint8)
_PLANAR_8BIT = frozenset({"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "nv21",
                          "yuv411p", "yuv410p", "yuv440p", "gray"})


def frame_luma(frame: av.VideoFrame, width: int = ANALYSIS_WIDTH) -> np.ndarray:
    """The frame's luma at ``width`` pixels wide (aspect kept, even height), full range, as the live pipeline's
    FFmpeg conversion to ``gray`` gives it; read straight from the decoder's luma plane (a tenth of the cost of a
    conversion), falling back to FFmpeg's conversion for other pixel formats."""
    name = frame.format.name
    if name in _PLANAR_8BIT:
        plane = frame.planes[0]
        y = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width]
        small = resize_luma(y, width)
        if small is y:
            small = y.copy()
        full = name.startswith("yuvj") or name == "gray" or int(frame.color_range or 0) == 2
        return small if full else cv2.LUT(small, _LIMITED_TO_FULL)
    height = max(2, int(round(width * frame.height / max(1, frame.width) / 2)) * 2)
    return frame.to_ndarray(width=width, height=height, format="gray")


def thumbnail(frame: av.VideoFrame) -> bytes:
    """A JPEG of the frame, :data:`THUMBNAIL_WIDTH` wide (as the edge agent's keyframes)."""
    height = max(2, int(round(THUMBNAIL_WIDTH * frame.height / max(1, frame.width) / 2)) * 2)
    rgb = frame.to_ndarray(width=THUMBNAIL_WIDTH, height=height, format="bgr24", interpolation="AREA")
    ok, buf = cv2.imencode(".jpg", rgb, [cv2.IMWRITE_JPEG_QUALITY, THUMBNAIL_QUALITY])
    if not ok:  # pragma: no cover - OpenCV encodes any 8-bit picture
        raise AdbreakError("cannot encode a thumbnail")
    return buf.tobytes()


@dataclass
class _Gaps:
    """Collects the stretches a pass could not decode."""

    min_step: float
    spans: list[tuple[float, float]] = field(default_factory=list)
    errors: int = 0
    last_t: float | None = None

    def see(self, t: float) -> None:
        if self.last_t is not None and t - self.last_t > max(GAP_MIN_S, 2 * self.min_step):
            self.spans.append((self.last_t, t))
        self.last_t = t if self.last_t is None else max(self.last_t, t)


def _decode(container: av.container.InputContainer, stream: av.stream.Stream, gaps: _Gaps,
            packets: Iterator[av.Packet] | None = None) -> Iterator[av.frame.Frame]:
    """Decoded frames of ``stream``; corrupt packets are counted and skipped (too many in a row end the pass)."""
    in_row = 0
    for packet in packets if packets is not None else container.demux(stream):
        try:
            frames = packet.decode()
        except av.error.FFmpegError as exc:
            gaps.errors += 1
            in_row += 1
            log.debug("skipped a corrupt packet: %s", exc)
            if in_row >= MAX_ERRORS_IN_ROW:
                log.warning("%d corrupt packets in a row: the rest of this pass is given up", in_row)
                return
            continue
        in_row = 0
        yield from frames


# ---------------------------------------------------------------------------------------------------- audio pass
@dataclass
class AudioResult:
    """Per grid frame ``silence`` and ``loudness`` (NaN where no audio covered the frame), and the level in dBFS of
    every 50 ms window (``levels``, window ``i`` starts at ``levels_t0 + i * level_step``)."""

    silence: np.ndarray
    loudness: np.ndarray
    levels: np.ndarray
    levels_t0: float
    level_step: float
    gaps: list[tuple[float, float]]
    errors: int
    seconds: float


def ffmpeg_exe() -> str | None:
    """FFmpeg's own program (``$ADBREAK_FFMPEG``, else ``ffmpeg`` on the PATH), or None: the audio pass then decodes
    in Python through PyAV (the same values, several times the CPU on a long recording)."""
    exe = os.environ.get("ADBREAK_FFMPEG") or shutil.which("ffmpeg")
    return exe if exe and os.access(exe, os.X_OK) else None


PCM_CHUNK_S = 10.0


def _pcm_ffmpeg(exe: str, path: str | Path, errors: list[str]) -> Iterator[np.ndarray]:
    """Mono float32 PCM at 16 kHz from the first audio stream, decoded by an FFmpeg child process in 10 s pieces
    (``aresample=async``: samples keep to their timestamps across a damaged stretch)."""
    cmd = [exe, "-nostdin", "-hide_banner", "-v", "error", "-i", str(path), "-map", "0:a:0", "-vn", "-sn", "-dn",
           "-ac", "1", "-af", f"aresample={AUDIO_RATE}:async=1000", "-f", "f32le", "pipe:1"]
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL)
        assert proc.stdout is not None
        try:
            chunk = int(PCM_CHUNK_S * AUDIO_RATE) * 4
            while data := proc.stdout.read(chunk):
                yield np.frombuffer(data[: len(data) // 4 * 4], np.float32)
        finally:
            proc.stdout.close()
            if proc.poll() is None:
                proc.kill()
            rc = proc.wait()
            err.seek(0)
            errors.extend(err.read().decode("utf-8", "replace").splitlines())
            if rc not in (0, -9):
                errors.append(f"ffmpeg exited with {rc}")


def _pcm_pyav(path: str | Path, errors: list[str]) -> Iterator[np.ndarray]:
    """The same PCM decoded in this process through PyAV (no FFmpeg program installed)."""
    container = open_container(path)
    try:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=AUDIO_RATE)
        gaps = _Gaps(min_step=1.0)
        for frame in _decode(container, container.streams.audio[0], gaps):
            try:
                chunks = resampler.resample(frame)
            except (ValueError, av.error.FFmpegError) as exc:  # the format changed: a new resampler
                resampler = av.AudioResampler(format="flt", layout="mono", rate=AUDIO_RATE)
                errors.append(str(exc))
                continue
            for c in chunks:
                yield c.to_ndarray().reshape(-1).astype(np.float32, copy=False)
        errors.extend(["corrupt audio packet"] * gaps.errors)
    finally:
        container.close()


def audio_pass(path: str | Path, n_grid: int, fps: float) -> AudioResult | None:
    """The silence and loudness cues over the whole audio track (None without an audio stream, or when none of it
    decodes). Each grid frame gets the live pipeline's :class:`~edge.cues.audio.SilenceCue` values for the sound
    since the previous grid frame; the sound is decoded by FFmpeg's program where installed (no per-packet Python
    work: a 2-hour recording has ~300,000 audio frames), else through PyAV."""
    started = time.perf_counter()
    container = open_container(path)
    try:
        if not container.streams.audio or not container.streams.video:
            return None
        origin = video_origin(container)
        a = container.streams.audio[0]
        offset = float(a.start_time * a.time_base) - origin if a.start_time is not None and a.time_base else 0.0
    finally:
        container.close()
    cue = SilenceCue()
    window = max(1, round(cue.config.window_s * AUDIO_RATE))
    silence = np.full(n_grid, math.nan)
    loudness = np.full(n_grid, math.nan)
    levels: list[np.ndarray] = []
    errors: list[str] = []
    exe = ffmpeg_exe()
    pcm = _pcm_ffmpeg(exe, path, errors) if exe else _pcm_pyav(path, errors)
    k = max(0, math.ceil(offset * fps - 1e-9))  # frames before the sound starts get none
    buf_t = offset  # time of buf[0]
    buf = np.zeros(0, np.float32)
    carry = np.zeros(0, np.float32)
    for samples in pcm:
        joined = np.concatenate((carry, samples)) if carry.size else samples
        whole = joined.size // window * window
        if whole:
            w = joined[:whole].reshape(-1, window).astype(np.float64)
            levels.append(10.0 * np.log10(np.maximum(np.mean(w * w, axis=1), 1e-10)))
        carry = joined[whole:]
        buf = np.concatenate((buf, samples)) if buf.size else samples
        end_t = buf_t + buf.size / AUDIO_RATE
        while k < n_grid and k / fps <= end_t:
            t = k / fps
            cut = max(0, min(buf.size, round((t - buf_t) * AUDIO_RATE)))
            piece, buf = buf[:cut], buf[cut:]
            buf_t += cut / AUDIO_RATE
            v = cue.update(ScreenFrame(t, None, None, piece))  # type: ignore[arg-type]
            silence[k], loudness[k] = v["silence"], v["loudness"]
            k += 1
    if not levels:
        log.warning("%s: the audio does not decode%s", Path(path).name, f": {errors[-1]}" if errors else "")
        return None
    return AudioResult(silence, loudness, np.concatenate(levels), offset, window / AUDIO_RATE, [], len(errors),
                       time.perf_counter() - started)


# ------------------------------------------------------------------------------------------------- keyframe pass
@dataclass
class KeyframeResult:
    """One entry per decoded intra frame: its time, ``black``, ``dip`` (NaN), mean ``luma`` (0-1), the logo's
    ``logo`` presence as the learner saw it then; the learned logo at the end (``scorer``); thumbnails."""

    t: np.ndarray
    black: np.ndarray
    luma: np.ndarray
    logo: np.ndarray
    scorer: LogoScorer | None
    learned_at_t: float | None
    thumbnails: list[tuple[float, bytes]]
    gaps: list[tuple[float, float]]
    errors: int
    seconds: float
    intervals: float  # median seconds between intra frames
    interlaced: bool = False  # most intra frames are coded as interlaced (1080i)


def _intra_packets(container: av.container.InputContainer, stream: av.stream.Stream, only_key: bool,
                   min_interval_s: float, origin: float, gaps: _Gaps) -> Iterator[av.Packet]:
    """The video packets worth sending to an intra-only decoder: at most one flagged intra frame per
    ``min_interval_s`` (MPEG-2 broadcasts carry two a second; the logo learner looks at one a second), and, unless
    ``only_key``, every unflagged packet too (H.264 I-frames that are not IDR carry no flag; the decoder skips the
    rest itself). Every packet's decoding timestamp is watched: a jump of more than :data:`GAP_MIN_S` is a stretch
    of the recording that is missing (``gaps``); packets the demuxer flags as corrupt are counted."""
    last = -math.inf
    prev_dts: float | None = None
    for packet in container.demux(stream):
        stamp = packet.dts if packet.dts is not None else packet.pts
        if stamp is not None and packet.time_base:
            dts = float(stamp * packet.time_base) - origin
            if prev_dts is not None and dts - prev_dts > GAP_MIN_S:
                gaps.spans.append((prev_dts, dts))
            prev_dts = dts if prev_dts is None else max(prev_dts, dts)
        if packet.is_corrupt:
            gaps.errors += 1
        if packet.is_keyframe:
            t = float(packet.pts * packet.time_base) if packet.pts is not None and packet.time_base else None
            if t is not None and t < last + min_interval_s:
                continue
            if t is not None:
                last = t
            yield packet
        elif not only_key or packet.size == 0:  # (an empty packet flushes the decoder at the end)
            yield packet


def keyframe_pass(path: str | Path, *, thumbnails: bool = False, thumbnail_step_s: float = 10.0,
                  min_interval_s: float = 0.9) -> KeyframeResult:
    """Decode the intra frames only (at most one per ``min_interval_s``); learn the channel logo from them."""
    started = time.perf_counter()
    container = open_container(path)
    try:
        stream = video_stream(container)
        origin = video_origin(container)
        ctx = stream.codec_context
        # H.264 and HEVC: IDR frames are "key", but broadcasts carry other I-frames too; MPEG-2's decoder reads only
        # "non-key" as "not an I-frame" (with NONINTRA it decodes its P-frames)
        ctx.skip_frame = "NONINTRA" if ctx.name in ("h264", "hevc") else "NONKEY"
        black_cue = BlackCue()
        learner: LogoLearner | None = None
        first: list[ScreenFrame] = []
        ts, blacks, lumas, logos = [], [], [], []
        interlaced = 0
        early: list[tuple[int, np.ndarray]] = []  # intra frames seen before the logo was known, scored once it is
        thumbs: list[tuple[float, bytes]] = []
        gaps = _Gaps(min_step=10.0)
        next_thumb = 0.0
        only_key = ctx.name not in ("h264", "hevc")  # their I-frames all carry the key flag (the parser sets it)
        packets = _intra_packets(container, stream, only_key, min_interval_s, origin, gaps)
        for frame in _decode(container, stream, gaps, packets):
            if frame.pts is None or frame.time_base is None:
                continue
            t = float(frame.pts * frame.time_base) - origin
            if ts and t <= ts[-1]:
                continue
            screen = ScreenFrame.from_gray(t, frame_luma(frame))
            blacks.append(black_cue.update(screen)["black"])
            lumas.append(float(screen.small.mean()) / 255.0)
            ts.append(t)
            gaps.errors += bool(frame.is_corrupt)
            interlaced += bool(getattr(frame, "interlaced_frame", False))
            if thumbnails and t >= next_thumb:
                thumbs.append((t, thumbnail(frame)))
                next_thumb = t + thumbnail_step_s
            if learner is None:  # the learner's clock follows the intra frames' spacing, once it is known
                first.append(screen)
                if len(first) == 4:
                    learner = _learner_for(first)
                    for i, earlier in enumerate(first):
                        logos.append(learner.update(earlier))
                        early.append((i, earlier.gray))
                    first = []
                continue
            logo = learner.update(screen)
            logos.append(logo)
            if math.isnan(logo) and learner.learned_at_t is None and len(early) < MAX_EARLY_FRAMES:
                early.append((len(logos) - 1, screen.gray))
            elif early and not math.isnan(logo):
                _rescore(early, logos, learner.scorer())
        if learner is None and first:  # fewer than four intra frames in all
            learner = _learner_for(first)
            logos.extend(learner.update(f) for f in first)
        if early and learner is not None:
            _rescore(early, logos, learner.scorer())
        if not ts:
            raise AdbreakError(f"{Path(path).name}: no video frame decodes")
        t_arr = np.array(ts)
        step = float(np.median(np.diff(t_arr))) if len(t_arr) > 1 else 10.0
        scorer = learner.scorer() if learner is not None else None
        learned_at = learner.learned_at_t if learner is not None else None
        return KeyframeResult(t_arr, np.array(blacks), np.array(lumas), np.array(logos), scorer, learned_at, thumbs,
                              _merge_spans(gaps.spans), gaps.errors, time.perf_counter() - started, step,
                              interlaced * 2 > len(ts))
    finally:
        container.close()


def _learner_for(first: list[ScreenFrame]) -> LogoLearner:
    """A logo learner whose sampling follows the intra frames: the live learner looks at one frame a second and its
    running means count samples, so with an intra frame every 10 s (x264's default GOP) it would learn ten times
    slower in stream time; told the real spacing, its means keep their time constants (about two minutes)."""
    times = [f.t for f in first]
    spacing = float(np.median(np.diff(times))) if len(times) > 1 else 1.0
    base = LogoConfig()
    if spacing <= 1.5 * base.sample_interval_s:
        return LogoLearner(base)
    return LogoLearner(dataclasses.replace(base, sample_interval_s=0.95 * spacing,
                                           search_interval_s=max(base.search_interval_s, 0.95 * spacing)))


def _merge_spans(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _rescore(early: list[tuple[int, np.ndarray]], logos: list[float], scorer: LogoScorer | None) -> None:
    """The logo's presence on the intra frames seen before it was learned, with the logo as learned now."""
    if scorer is not None:
        for i, gray in early:
            logos[i] = scorer(gray)
    early.clear()


# ---------------------------------------------------------------------------------------------------- full rate
@dataclass
class GridValues:
    """Cue values on grid frames (``k`` indices) and the black test of every decoded frame (``frame_t``,
    ``frame_black``) for frame-accurate edges."""

    k: list[int] = field(default_factory=list)
    columns: dict[str, list[float]] = field(default_factory=dict)
    frame_t: list[float] = field(default_factory=list)
    frame_black: list[float] = field(default_factory=list)
    gaps: list[tuple[float, float]] = field(default_factory=list)
    spans: list[tuple[int, int]] = field(default_factory=list)  # first and last grid frame of each window
    errors: int = 0
    corrupt: int = 0  # decoded frames FFmpeg flagged as damaged (error concealment)
    decoded: int = 0
    seconds: float = 0.0

    def add(self, k: int, values: dict[str, float]) -> None:
        self.k.append(k)
        for name, v in values.items():
            self.columns.setdefault(name, [math.nan] * (len(self.k) - 1)).append(v)
        for col in self.columns.values():
            if len(col) < len(self.k):
                col.append(math.nan)


class _FrameAnalyser:
    """The live pipeline's per-frame cues (black/dip, cut, aspect), the logo's presence with a frozen logo and,
    with a model, the head's p(ad), on one grid frame at a time; ``gap()`` after a jump in time."""

    def __init__(self, scorer: LogoScorer | None, bundle_path: str | None) -> None:
        self.black = BlackCue()
        self.cut = CutCue()
        self.aspect = AspectCue()
        self.scorer = scorer
        self.detector = None
        if bundle_path is not None:
            from edge.bundle import ModelBundle
            from edge.pipeline import Detector

            self.detector = Detector(ModelBundle.load(bundle_path), cues=False, decider="smoothing")

    def gap(self) -> None:
        self.cut.reset()
        self.black.forget_recent()

    def analyse(self, t: float, frame: av.VideoFrame) -> dict[str, float]:
        screen = ScreenFrame.from_gray(t, frame_luma(frame))
        values = self.black.update(screen)
        values.update(self.cut.update(screen))
        values.update(self.aspect.update(screen))
        values["luma"] = float(screen.small.mean()) / 255.0
        values["logo"] = self.scorer(screen.gray) if self.scorer is not None else math.nan
        if self.detector is not None:
            rgb = frame.to_ndarray(format="rgb24")
            probs = self.detector.classify(self.detector.preprocess(rgb))
            values["p_ad"] = float(probs[self.detector.ad_index])
        return values

    def black_of(self, small: np.ndarray) -> float:
        return self.black.peek(small)


def _small(frame: av.VideoFrame) -> np.ndarray:
    return cv2.resize(frame_luma(frame), (160, 90), interpolation=cv2.INTER_AREA)


def _frames_from(container: av.container.InputContainer, stream: av.stream.Stream, a: float, lead_s: float,
                 origin: float, gaps: _Gaps) -> Iterator[tuple[float, av.VideoFrame]]:
    """Decoded frames (with their times) from the intra frame before ``a`` on. A seek lands on the intra frame at or
    before the target in a file with an index (MP4, MKV), but by bytes and timestamps in an MPEG-TS, sometimes just
    after the target: the first frame must then start no later than ``a``, else the seek goes further back."""
    tb = stream.time_base
    for attempt in range(4):
        target_t = max(0.0, a - lead_s * 3**attempt)
        try:
            container.seek(max(0, int((target_t + origin) / tb)), stream=stream, backward=True, any_frame=False)
        except av.error.FFmpegError as exc:
            log.debug("seek to %.1f s failed: %s", target_t, exc)
            gaps.errors += 1
            return
        frames = _decode(container, stream, gaps)
        for frame in frames:
            if frame.pts is None or frame.time_base is None:
                continue
            t = float(frame.pts * frame.time_base) - origin
            if t > a + 0.5 and target_t > 0.0 and attempt < 3:
                break  # landed after the window's start: further back
            yield t, frame
            for frame in frames:
                if frame.pts is not None and frame.time_base is not None:
                    yield float(frame.pts * frame.time_base) - origin, frame
            return
        else:
            return  # nothing decodes from there to the end


def window_pass(
    path: str | Path,
    windows: Sequence[tuple[float, float]],
    fps: float,
    *,
    scorer: LogoScorer | None = None,
    bundle_path: str | None = None,
    edges: bool = True,
    lead_s: float = 1.0,
) -> GridValues:
    """Full-rate analysis of ``windows`` (sorted, disjoint ``(start, end)`` seconds): the grid frames inside get
    every per-frame cue; with ``edges``, every decoded frame between two grid frames whose black tests differ gets
    its own black test (``frame_t`` / ``frame_black``). ``lead_s``: how far before a window its intra frame may lie
    (the recording's intra-frame interval). A stretch inside a window where nothing decodes is a gap."""
    started = time.perf_counter()
    out = GridValues()
    container = open_container(path)
    analyser = _FrameAnalyser(scorer, bundle_path)
    try:
        stream = video_stream(container)
        origin = video_origin(container)
        ctx = stream.codec_context
        gaps = _Gaps(min_step=1.0 / fps)
        for a, b in windows:
            analyser.gap()
            sampler = TimestampSampler(fps)
            sampler.take(a - 1.0 / fps)  # the first frame taken is the first at or after the grid point >= a
            ctx.skip_frame = "NONREF"  # the lead-in from the intra frame: frames nothing refers to are not needed
            lead_in = True
            pending: list[tuple[float, av.VideoFrame]] = []  # decoded frames since the last grid frame
            last_black: float | None = None  # the black test of the last grid frame
            first_k = last_k = None
            gaps.last_t = a
            for t, frame in _frames_from(container, stream, a, lead_s, origin, gaps):
                if t > b:
                    break
                if lead_in and t >= a - 1.0:
                    ctx.skip_frame = "DEFAULT"
                    lead_in = False
                if t < a - sampler.EPS:
                    continue
                out.decoded += 1
                out.corrupt += bool(frame.is_corrupt)
                gaps.see(t)
                if not sampler.take(t):
                    if edges:
                        pending.append((t, frame))  # measured only if a black edge lies before the next grid frame
                    continue
                values = analyser.analyse(t, frame)
                k = sampler.slot(t)
                out.add(k, values)
                first_k = k if first_k is None else first_k
                last_k = k
                black = values["black"]
                if edges and last_black is not None and pending and (last_black >= 0.5) != (black >= 0.5):
                    for pt, pframe in pending:  # a black edge between two grid frames: find its frame
                        out.frame_t.append(pt)
                        out.frame_black.append(analyser.black_of(_small(pframe)))
                if edges:
                    out.frame_t.append(t)
                    out.frame_black.append(black)
                pending = []
                last_black = black
            ctx.skip_frame = "DEFAULT"
            if first_k is not None:
                out.spans.append((first_k, last_k))
        out.gaps = gaps.spans
        out.errors += gaps.errors
    finally:
        container.close()
    out.seconds = time.perf_counter() - started
    return out
