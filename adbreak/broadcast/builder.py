"""Assemble a test broadcast with exact truth, a sound track and optional real-TV difficulties.

``plan.py`` decides what plays when (program shots from the pool's clips and photos, ad breaks of spots and
separators, the difficulties' promos, cold opens, dissolves and missing blacks) and the sound; ``render.py`` draws
the pictures; this module renders, encodes and writes the files. See ``plan.py`` for the structure of a broadcast
and the difficulties, ``clips.py`` for the two clip-disjoint pools, ``audio.py`` for the sound, ``logo.py`` for the
channels and ``camera.py`` for the camera-view variant.

Every picture of a clip is fitted into the frame keeping its aspect (black bars where it differs: a bar is not a
black frame; a fully black frame appears only in separators). All times are whole frames, so every truth boundary
is at ``k / fps``; every audio item starts at the sample where its first frame starts. Every random choice comes
from ``numpy.random.default_rng(seed)``: the same seed and options give a byte-identical truth file, the same frames
and the same samples.

Outputs (written atomically): ``<name>.mp4`` (H.264, yuv420p, BT.601 limited range, constant ``fps``; AAC mono
48 kHz audio; the container's ``comment`` tag names the pool, channel and difficulties), ``<name>.csv`` (the
contract's segment file) and ``<name>.json`` (seed, pool, channel, difficulties, every play with its shots, fps,
size, logo, screen corners, camera profile, and the audio's format, levels and items).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from adbreak import __version__
from adbreak.atomic import atomic_path
from adbreak.broadcast import audio
from adbreak.broadcast.camera import CameraProfile, CameraView
from adbreak.broadcast.clips import POOLS, get_pool
from adbreak.broadcast.clips import validate as validate_catalogue
from adbreak.broadcast.logo import DEFAULT_CHANNEL, Logo, get_channel, logo_for
from adbreak.broadcast.plan import (
    DIFFICULTIES,
    KIND_AD,
    KIND_BLACK,
    KIND_DIM,
    KIND_PROGRAM,
    KIND_PROMO,
    LOUD,
    MAX_DURATION_S,
    MIN_DURATION_S,
    TRANSPARENT,
    Play,
    check_difficulties,
    plan_audio,
    plan_broadcast,
    sample_at,
    truth_segments,
)
from adbreak.broadcast.render import Renderer
from adbreak.errors import AdbreakError
from adbreak.segments import AD_LABEL, Segment, write_segments

__all__ = [
    "BUILDER_VERSION",
    "DIFFICULTIES",
    "KIND_AD",
    "KIND_BLACK",
    "KIND_DIM",
    "KIND_PROGRAM",
    "KIND_PROMO",
    "BroadcastInfo",
    "Play",
    "build_broadcast",
    "load_broadcast",
    "plan_broadcast",
    "truth_segments",
    "validate",
]

FORMAT = "adbreak-broadcast/2"
BUILDER_VERSION = 4  # bump when the same arguments would build a different broadcast (load_broadcast then says None)

# encoding: x264's ultrafast preset plus CABAC, deblocking and 2 B-frames. On the 2-core development machine this
# encodes these pictures about 2x faster than "veryfast" (~4 ms vs ~9.5 ms of CPU per 960x540 frame) for about
# twice the file size (mbtree is what makes veryfast smaller, and it alone costs ~2 ms a frame).
PRESET = "ultrafast"
X264_PARAMS = "cabac=1:deblock=1:bframes=2:b-adapt=0"
CRF_CLEAN = 23
CRF_CAMERA = 26  # the camera's blur and noise: finer quantisation would only spend bits on noise
X264_COLOUR = "colorprim=smpte170m:transfer=smpte170m:colormatrix=smpte170m:range=tv"


@dataclass(frozen=True)
class BroadcastInfo:
    """A built broadcast: its three files and what it was built from."""

    video: Path
    truth: Path
    meta: Path
    duration_s: float
    segments: tuple[Segment, ...]
    fps: int
    frames: int
    seed: int
    pool: str
    size: tuple[int, int]
    camera: bool
    difficulties: frozenset[str] = frozenset()
    channel: str = DEFAULT_CHANNEL
    audio: bool = True


def validate() -> None:
    """Check the catalogue, and that the pools share no clip and no photo (program or ad); raises ``ValueError``."""
    validate_catalogue()
    pools = list(POOLS.values())
    for i, a in enumerate(pools):
        for b in pools[i + 1 :]:
            if a.clips & b.clips:
                raise ValueError(f"pools {a.name} and {b.name} share clips {sorted(a.clips & b.clips)}")
            if a.all_photos & b.all_photos:
                raise ValueError(f"pools {a.name} and {b.name} share photos {sorted(a.all_photos & b.all_photos)}")


# ================================================================================================ rendering
def _clean_frames(plays: list[Play], size: tuple[int, int], fps: int, logo: Logo) -> Iterator[np.ndarray | None]:
    """Every output frame: the renderer's I420 buffer (valid until the next one) when it holds a new picture, or
    None when the frame repeats the previous one."""
    r = Renderer(size, fps)
    for idx, play in enumerate(plays):
        if play.kind == KIND_BLACK:
            r.black()
            yield r.buf
            for _ in range(play.frames - 1):
                yield None
        elif play.kind == KIND_DIM:
            yield from _dissolve(r, plays, idx, logo)
        else:
            for shot in play.shots:
                for new in r.frames(shot, 0, shot.frames):
                    if not new:
                        yield None
                        continue
                    if play.logo:
                        logo.apply_yuv(*r.planes)
                    yield r.buf


def _dissolve(r: Renderer, plays: list[Play], idx: int, logo: Logo) -> Iterator[np.ndarray]:
    """A dimmed separator: the outgoing picture, continuing, fades down to ``dim``; the incoming one fades up."""
    p = plays[idx]
    assert p.dim is not None and 0 < idx < len(plays) - 1, "a dissolve sits between two plays"
    prev, nxt = plays[idx - 1], plays[idx + 1]
    n_out = p.frames // 2
    n_in = p.frames - n_out
    last = prev.shots[-1]
    for k, _ in enumerate(r.frames(last, last.frames, n_out, always=True)):
        if prev.logo:
            logo.apply_yuv(*r.planes)
        r.dim(1 - (1 - p.dim) * (k + 1) / n_out)
        yield r.buf
    first = nxt.shots[0]
    for k, _ in enumerate(r.frames(first, -n_in, n_in, always=True)):
        if nxt.logo:
            logo.apply_yuv(*r.planes)
        r.dim(p.dim + (1 - p.dim) * k / n_in)
        yield r.buf


_DONE = object()


def _threaded(it: Iterator, depth: int = 16) -> Iterator:
    """Run an iterator in a background thread (OpenCV and the decoder release the GIL while the encoder runs)."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def work() -> None:
        try:
            for item in it:
                while not stop.is_set():
                    try:
                        q.put((True, item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((True, _DONE))
        except BaseException as exc:  # handed to the consumer
            q.put((False, exc))

    t = threading.Thread(target=work, name="broadcast-frames", daemon=True)
    t.start()
    try:
        while True:
            ok, item = q.get()
            if not ok:
                raise item
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        while t.is_alive():
            with contextlib.suppress(queue.Empty):
                q.get(timeout=0.1)
        t.join()


def _output_frames(
    plays: list[Play], size: tuple[int, int], fps: int, logo: Logo, camera: CameraView | None
) -> Iterator[av.VideoFrame]:
    """Every output frame, ready for the encoder; a repeated frame is the same object."""
    frame: av.VideoFrame | None = None
    if camera is None:
        for buf in _clean_frames(plays, size, fps, logo):
            if buf is not None:
                frame = av.VideoFrame.from_ndarray(buf, format="yuv420p")
            assert frame is not None
            yield frame
        return
    w, h = size
    bgr = np.empty((h, w, 3), np.uint8)
    yuv = np.empty((h * 3 // 2, w), np.uint8)
    for i, buf in enumerate(_clean_frames(plays, size, fps, logo)):
        if buf is not None:
            cv2.cvtColor(buf, cv2.COLOR_YUV2BGR_I420, dst=bgr)
        cv2.cvtColor(camera.render(bgr, i), cv2.COLOR_BGR2YUV_I420, dst=yuv)
        yield av.VideoFrame.from_ndarray(yuv, format="yuv420p")


def _encode(
    path: Path,
    frames: Iterator[av.VideoFrame],
    total: int,
    size: tuple[int, int],
    fps: int,
    crf: int,
    track: audio.AudioTrack,
    comment: str,
    progress: bool,
    desc: str,
) -> None:
    from fractions import Fraction

    from tqdm import tqdm

    w, h = size
    sr = track.sr
    n = 0
    with av.open(str(path), "w", format="mp4") as out:
        out.metadata["comment"] = comment
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"preset": PRESET, "crf": str(crf), "x264-params": f"{X264_PARAMS}:{X264_COLOUR}"}
        astream = out.add_stream(audio.CODEC, rate=sr)
        astream.layout = "mono"
        astream.bit_rate = audio.BIT_RATE
        astream.options = {"aac_coder": audio.AAC_CODER}
        apts = 0

        def push_audio(end: int) -> None:
            nonlocal apts
            samples = track.read_until(end)
            if len(samples):
                af = av.AudioFrame.from_ndarray(samples[None, :], format="fltp", layout="mono")
                af.sample_rate, af.pts, af.time_base = sr, apts, Fraction(1, sr)
                apts += len(samples)
                for packet in astream.encode(af):
                    out.mux(packet)

        with tqdm(total=total, unit="frame", desc=desc, disable=not progress, dynamic_ncols=True) as bar:
            for vf in frames:
                vf.pts = n  # a repeated frame object is re-sent with the next timestamp; the encoder copied it
                for packet in stream.encode(vf):
                    out.mux(packet)
                n += 1
                push_audio(sample_at(n, fps, sr))
                if n % 25 == 0:
                    bar.update(25)
            bar.update(n % 25)
            for packet in stream.encode():
                out.mux(packet)
            for packet in astream.encode():
                out.mux(packet)
    if n != total:
        raise AdbreakError(f"internal error: rendered {n} frames, planned {total}")
    if apts != sample_at(total, fps, sr):
        raise AdbreakError(f"internal error: wrote {apts} audio samples, planned {sample_at(total, fps, sr)}")


# ================================================================================================ public API
def _validate(out_dir: Path, name: str, duration_s: float, fps: int, size: tuple[int, int]) -> tuple[int, int]:
    if not name or name.strip() != name or any(c in name for c in '/\\:*?"<>|') or name.startswith("."):
        raise AdbreakError(f"bad broadcast name {name!r}: use letters, digits, '-' or '_' (no path)")
    if isinstance(fps, bool) or not isinstance(fps, int | np.integer) or not 1 <= fps <= 120:
        raise AdbreakError(f"fps must be a whole number from 1 to 120, got {fps!r}")
    try:
        w, h = (int(v) for v in size)
    except (TypeError, ValueError):
        raise AdbreakError(f"size must be (width, height), got {size!r}") from None
    if w < 160 or h < 90 or w > 3840 or h > 2160 or w % 2 or h % 2:
        raise AdbreakError(f"size must be even numbers from 160x90 to 3840x2160, got {w}x{h}")
    if not (isinstance(duration_s, int | float) and math.isfinite(duration_s)):
        raise AdbreakError(f"duration must be a number of seconds, got {duration_s!r}")
    if not MIN_DURATION_S <= duration_s <= MAX_DURATION_S:
        raise AdbreakError(
            f"duration must be {MIN_DURATION_S:g}-{MAX_DURATION_S:g} s (2 ad breaks need room), got {duration_s:g}"
        )
    if out_dir.exists() and not out_dir.is_dir():
        raise AdbreakError(f"output folder {out_dir} is a file")
    return w, h


def build_broadcast(
    out_dir: str | os.PathLike[str],
    name: str,
    *,
    seed: int,
    duration_s: float,
    pool: str = "train",
    fps: int = 25,
    size: tuple[int, int] = (960, 540),
    camera: bool = False,
    progress: bool = False,
    camera_profile: CameraProfile | None = None,
    difficulties: frozenset[str] | set[str] | tuple[str, ...] = frozenset(),
    channel: str = DEFAULT_CHANNEL,
) -> BroadcastInfo:
    """Build ``<name>.mp4``, ``<name>.csv`` (truth) and ``<name>.json`` (metadata) in ``out_dir``.

    ``duration_s`` is rounded to whole frames. ``camera=True`` renders the camera view of the same broadcast (same
    truth) with ``camera_profile`` (default :meth:`CameraProfile.living_room`). ``difficulties`` is any set of
    :data:`DIFFICULTIES` (``"all"``: every one); ``channel`` picks the logo (:data:`~adbreak.broadcast.logo.CHANNELS`).
    Bad arguments raise :class:`AdbreakError`.
    """
    out = Path(out_dir)
    w, h = _validate(out, name, duration_s, fps, size)
    fps = int(fps)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise AdbreakError(f"seed must be a whole number >= 0, got {seed!r}")
    if isinstance(difficulties, str):
        difficulties = frozenset(d.strip() for d in difficulties.split(",") if d.strip())
    diff = check_difficulties(difficulties)
    get_channel(channel)
    the_pool = get_pool(pool)
    frames = int(round(duration_s * fps))
    rng = np.random.default_rng(int(seed))
    plays = plan_broadcast(the_pool, frames, fps, rng, diff, channel)
    segments = truth_segments(plays, fps)
    items = plan_audio(plays, fps, rng, loud=LOUD in diff)
    profile = (camera_profile or CameraProfile.living_room()) if camera else None
    view = CameraView(profile, (w, h), fps, rng.spawn(1)[0]) if profile is not None else None
    logo = logo_for(w, h, channel, TRANSPARENT in diff)
    diff_list = [d for d in DIFFICULTIES if d in diff]

    video, truth, meta = out / f"{name}.mp4", out / f"{name}.csv", out / f"{name}.json"
    full = [[0.0, 0.0], [float(w - 1), 0.0], [float(w - 1), float(h - 1)], [0.0, float(h - 1)]]
    ad_frames = sum(p.frames for p in plays if p.kind != KIND_PROGRAM)
    ad_db = audio.PROGRAM_DBFS + (0.0 if LOUD in diff else audio.AD_BOOST_DB)
    info = {
        "format": FORMAT,
        "builder_version": BUILDER_VERSION,
        "generator": f"adbreak {__version__}",
        "name": name,
        "seed": int(seed),
        "pool": the_pool.name,
        "channel": channel,
        "difficulties": diff_list,
        "fps": fps,
        "size": [w, h],
        "frames": frames,
        "duration_s": frames / fps,
        "ad_share": round(ad_frames / frames, 4),
        "breaks": sum(1 for s in segments if s.label == AD_LABEL),
        "video": video.name,
        "truth": truth.name,
        "encoder": {
            "codec": "libx264",
            "preset": PRESET,
            "x264_params": X264_PARAMS,
            "crf": CRF_CAMERA if camera else CRF_CLEAN,
            "pix_fmt": "yuv420p",
            "colour": "BT.601 limited range",
        },
        "audio": {
            "codec": audio.CODEC,
            "sample_rate": audio.SAMPLE_RATE,
            "channels": audio.CHANNELS,
            "bit_rate": audio.BIT_RATE,
            "aac_coder": audio.AAC_CODER,
            "samples": sample_at(frames, fps),
            "program_dbfs": audio.PROGRAM_DBFS,
            "ad_dbfs": ad_db,
            "level": "RMS of each item's interior (pauses included, edge silence, fades and ramps excluded)",
            "spot_edges_s": {"silence": audio.EDGE_SILENCE_S, "fade": audio.EDGE_FADE_S},
            "program_cut_ramp_s": audio.CUT_RAMP_S,
            "separators": "digital silence",
        },
        "logo": logo.to_dict(),
        "screen_corners": profile.corners_px((w, h)) if profile else full,
        "camera": profile.to_dict((w, h)) if profile else None,
        "plays": [p.to_dict(fps) for p in plays],
        "audio_items": [it.to_dict() for it in items],
    }
    comment = (
        f"adbreak test broadcast {name}: seed={int(seed)} pool={the_pool.name} channel={channel} "
        f"difficulties={','.join(diff_list) or 'none'} camera={'yes' if camera else 'no'} builder={BUILDER_VERSION}"
    )
    # all three appear together at the end (or none, on any error or interrupt); temporary files are 0600
    with (
        atomic_path(video) as v_tmp,
        atomic_path(truth) as t_tmp,
        atomic_path(meta) as m_tmp,
        contextlib.closing(_threaded(_output_frames(plays, (w, h), fps, logo, view))) as frames_it,
    ):
        _encode(
            v_tmp,
            frames_it,
            frames,
            (w, h),
            fps,
            CRF_CAMERA if camera else CRF_CLEAN,
            audio.AudioTrack(items),
            comment,
            progress,
            f"{name}{' (camera)' if camera else ''}",
        )
        write_segments(t_tmp, segments)
        m_tmp.write_text(_json_text(info), encoding="utf-8")
        for tmp in (v_tmp, t_tmp, m_tmp):
            tmp.chmod(0o644)
    return BroadcastInfo(
        video,
        truth,
        meta,
        frames / fps,
        tuple(segments),
        fps,
        frames,
        int(seed),
        the_pool.name,
        (w, h),
        camera,
        frozenset(diff),
        channel,
        True,
    )


def load_broadcast(out_dir: str | os.PathLike[str], name: str) -> BroadcastInfo | None:
    """The broadcast ``name`` built earlier in ``out_dir``, or None when any of its files is missing or unreadable, or
    it was made by a different builder version (so callers rebuild it rather than reuse a stale one)."""
    from adbreak.segments import read_segments

    out = Path(out_dir)
    video, truth, meta = out / f"{name}.mp4", out / f"{name}.csv", out / f"{name}.json"
    if not (video.is_file() and truth.is_file() and meta.is_file()):
        return None
    try:
        info = json.loads(meta.read_text(encoding="utf-8"))
        if info.get("format") != FORMAT or info.get("builder_version") != BUILDER_VERSION:
            return None
        segments = tuple(read_segments(truth))
        fps, frames = int(info["fps"]), int(info["frames"])
        w, h = (int(v) for v in info["size"])
        return BroadcastInfo(
            video,
            truth,
            meta,
            frames / fps,
            segments,
            fps,
            frames,
            int(info["seed"]),
            str(info["pool"]),
            (w, h),
            info.get("camera") is not None,
            frozenset(str(d) for d in info["difficulties"]),
            str(info["channel"]),
            info.get("audio") is not None,
        )
    except (OSError, ValueError, KeyError, TypeError, AdbreakError):
        return None


def _json_text(info: dict) -> str:
    """Indented JSON with one line per play and per audio item."""
    items = list(info.items())
    lines = ["{"]
    for i, (key, value) in enumerate(items):
        comma = "," if i < len(items) - 1 else ""
        if key in ("plays", "audio_items"):
            inner = ",\n".join("  " + json.dumps(p) for p in value)
            lines.append(f' "{key}": [\n{inner}\n ]{comma}')
        else:
            lines.append(f" {json.dumps(key)}: {json.dumps(value)}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"


validate()
