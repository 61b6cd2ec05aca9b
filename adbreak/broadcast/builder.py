"""Assemble a test broadcast with exact truth from the shipped real clips.

A broadcast alternates program segments and ad breaks, starting and ending with program:

* program segments last 60-240 s (scaled down for short broadcasts) and loop through the pool's program excerpts in
  a shuffled order, continuing where the previous segment stopped; every program frame carries the channel logo;
* an ad break holds 2-5 spots (a single spot only when the broadcast is too short for the target ad share), each
  spot 10-45 s, with 0.4-1.0 s fully black separators at both edges of the break and between spots. Per the
  contract, the whole break, separators included, is labelled ``ad``. The same spots recur across breaks;
* ads take about 21-27% of the time (short broadcasts vary more: spots come in 5 s steps); a break lasts at most
  ~65 s because the pools' spots last 10-15 s, so a 30-minute broadcast has 7 breaks (at least one per ~62 s of
  ads) and a 150 s one 2.

Every picture is fitted into the frame keeping its aspect (black bars where it differs: a bar is not a black frame,
a fully black frame appears only in separators). All times are whole frames, so every truth boundary is at ``k /
fps``. Every random choice comes from ``numpy.random.default_rng(seed)``: the same seed gives a byte-identical
truth file and the same frames.

Outputs (written atomically): ``<name>.mp4`` (H.264, yuv420p, BT.601 limited range, constant ``fps``, no audio),
``<name>.csv`` (the contract's segment file) and ``<name>.json`` (seed, pool, every clip play with its in/out
points, fps, size, logo box, screen corners, camera profile).
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
from adbreak.broadcast.camera import CameraProfile, CameraView
from adbreak.broadcast.clips import CLIPS, Excerpt, Pool, get_pool
from adbreak.broadcast.logo import logo_for
from adbreak.broadcast.reader import iter_source_frames, plane_views, source_indices
from adbreak.errors import AdbreakError
from adbreak.segments import AD_LABEL, PROGRAM_LABEL, Segment, write_segments

FORMAT = "adbreak-broadcast/1"
BUILDER_VERSION = 1  # bump when the same arguments would build a different broadcast (load_broadcast then says None)

# structure
MIN_DURATION_S = 90.0
MAX_DURATION_S = 24 * 3600.0
AD_SHARE = (0.21, 0.27)
BREAK_EVERY_S = 300.0  # about one break per 5 minutes
PROGRAM_MIN_S, PROGRAM_MAX_S = 60.0, 240.0
PROGRAM_MEAN_MAX_S = 220.0
PROGRAM_FULL_SCALE_S = 150.0  # program segments averaging less than this get proportionally shorter bounds
SEPARATOR_S = (0.4, 1.0)
SPOTS_PER_BREAK = (2, 5)
SPOT_CANDIDATES = 64

# encoding: x264's ultrafast preset plus CABAC, deblocking and 2 B-frames. On the 2-core development machine this
# encodes these pictures about 2x faster than "veryfast" (~4 ms vs ~9.5 ms of CPU per 960x540 frame) for about
# twice the file size (mbtree is what makes veryfast smaller, and it alone costs ~2 ms a frame).
PRESET = "ultrafast"
X264_PARAMS = "cabac=1:deblock=1:bframes=2:b-adapt=0"
CRF_CLEAN = 23
CRF_CAMERA = 26  # the camera's blur and noise: finer quantisation would only spend bits on noise
X264_COLOUR = "colorprim=smpte170m:transfer=smpte170m:colormatrix=smpte170m:range=tv"

KIND_PROGRAM = "program"
KIND_AD = "ad"
KIND_BLACK = "black"


@dataclass(frozen=True)
class Play:
    """A run of output frames showing one thing: a stretch of a clip, or black."""

    kind: str  # KIND_PROGRAM, KIND_AD or KIND_BLACK
    start_frame: int
    frames: int
    clip: str | None = None
    in_s: float = 0.0
    speed: float = 1.0
    spot: str | None = None

    @property
    def end_frame(self) -> int:
        return self.start_frame + self.frames

    @property
    def label(self) -> str:
        return PROGRAM_LABEL if self.kind == KIND_PROGRAM else AD_LABEL


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


# ================================================================================================ planning
def _partition(rng: np.random.Generator, total: int, parts: int, lo: float, hi: float) -> list[int]:
    """Split ``total`` frames into ``parts`` random integers, each within [lo, hi] as far as the total allows."""
    x = rng.uniform(0.75, 1.25, parts)
    x = x / x.sum() * total
    for _ in range(100):
        x = np.clip(x, lo, hi)
        diff = total - x.sum()
        if abs(diff) < 1e-6:
            break
        free = x < hi if diff > 0 else x > lo
        if not free.any():
            break
        x[free] += diff / free.sum()
    out = np.floor(x).astype(int)
    rest = total - int(out.sum())
    order = np.argsort(-(x - out), kind="stable")
    for i in range(rest):
        out[order[i % parts]] += 1
    return [int(v) for v in out]


def _choose_spots(rng: np.random.Generator, spots: tuple[Excerpt, ...], budget_s: float, k_lo: int) -> list[Excerpt]:
    """Of a few random spot sequences, the one whose break length best fits the budget.

    Two cut-downs of the same commercial never play back to back (where the pool has more than one commercial).
    """
    best: list[Excerpt] = []
    best_err = math.inf
    sep_mean = sum(SEPARATOR_S) / 2
    for _ in range(SPOT_CANDIDATES):
        k = int(rng.integers(k_lo, SPOTS_PER_BREAK[1] + 1))
        seq: list[Excerpt] = []
        for _ in range(k):
            choices = [s for s in spots if not seq or s.clip != seq[-1].clip] or list(spots)
            seq.append(choices[int(rng.integers(len(choices)))])
        err = abs(sum(s.length_s for s in seq) + (k + 1) * sep_mean - budget_s)
        if err < best_err:
            best, best_err = seq, err
    return best


def plan_broadcast(pool: Pool, frames: int, fps: int, rng: np.random.Generator) -> list[Play]:
    """The frame-exact sequence of plays for a broadcast of ``frames`` frames; all randomness from ``rng``."""
    duration = frames / fps
    share = float(rng.uniform(*AD_SHARE))
    breaks = max(2, int(round(duration / BREAK_EVERY_S + rng.uniform(-0.75, 0.75))))
    sep_mean = sum(SEPARATOR_S) / 2
    min_spot = min(s.length_s for s in pool.spots)
    full_break = SPOTS_PER_BREAK[0] * min_spot + (SPOTS_PER_BREAK[0] + 1) * sep_mean
    # the longest break the pool can fill: the longest spot alternating with the longest of another commercial
    longest = max(pool.spots, key=lambda s: s.length_s)
    other = max((s.length_s for s in pool.spots if s.clip != longest.clip), default=longest.length_s)
    n_max = SPOTS_PER_BREAK[1]
    capacity = 0.9 * ((n_max + 1) // 2 * longest.length_s + n_max // 2 * other + (n_max + 1) * sep_mean)
    for _ in range(3):
        # program segments must not get too long, and the pool's spots must be able to fill the breaks: more
        # breaks first, then a lower ad share (down to the target's low end, then more breaks again)
        while duration * (1 - share) / (breaks + 1) > PROGRAM_MEAN_MAX_S:
            breaks += 1
        share = min(share, max(AD_SHARE[0], breaks * capacity / duration))
        while share * duration / breaks > capacity * (1 + 1e-9):
            breaks += 1
    while breaks > 2 and share * duration / breaks < full_break:
        breaks -= 1

    # ad breaks: spots fitted to a per-break budget that keeps the running total on target
    sep_lo, sep_hi = math.ceil(SEPARATOR_S[0] * fps - 1e-9), max(1, math.floor(SEPARATOR_S[1] * fps + 1e-9))
    sep_lo = min(max(1, sep_lo), sep_hi)
    remaining = share * duration
    break_plans: list[list[tuple[str, int, Excerpt | None]]] = []
    for b in range(breaks):
        left = breaks - b
        budget = remaining / left * (float(rng.uniform(0.8, 1.2)) if left > 1 else 1.0)
        budget = min(budget, capacity)
        k_lo = SPOTS_PER_BREAK[0] if budget >= full_break else 1
        seq = _choose_spots(rng, pool.spots, budget, k_lo)
        items: list[tuple[str, int, Excerpt | None]] = []
        for s in seq:
            items.append((KIND_BLACK, int(rng.integers(sep_lo, sep_hi + 1)), None))
            items.append((KIND_AD, int(round(s.length_s * fps)), s))
        items.append((KIND_BLACK, int(rng.integers(sep_lo, sep_hi + 1)), None))
        break_plans.append(items)
        remaining -= sum(n for _, n, _ in items) / fps

    ad_frames = sum(n for items in break_plans for _, n, _ in items)
    program_frames = frames - ad_frames
    mean_s = program_frames / fps / (breaks + 1)
    if mean_s < 10.0:
        raise AdbreakError(
            f"a {duration:g} s broadcast is too short for {breaks} ad breaks; use at least {MIN_DURATION_S:g} s"
        )
    scale = min(1.0, mean_s / PROGRAM_FULL_SCALE_S)
    lengths = _partition(rng, program_frames, breaks + 1, PROGRAM_MIN_S * scale * fps, PROGRAM_MAX_S * scale * fps)

    # program footage: loop through the pool's excerpts, shuffled on every pass, continuing across breaks
    excerpts = pool.program
    order: list[int] = []
    last = [-1]  # the excerpt playing last
    offset = 0  # output frames already played of the current excerpt

    def program_plays(start: int, n: int) -> list[Play]:
        nonlocal order, offset
        plays = []
        while n > 0:
            if not order:
                order = [int(i) for i in rng.permutation(len(excerpts))]
                if len(order) > 1 and order[0] == last[0]:  # no excerpt twice in a row across passes
                    order[0], order[1] = order[1], order[0]
            last[0] = order[0]
            ex = excerpts[order[0]]
            length = math.floor(ex.length_s * fps + 1e-6)
            take = min(n, length - offset)
            if take > 0:
                plays.append(Play(KIND_PROGRAM, start, take, ex.clip, ex.start_s + offset * ex.speed / fps, ex.speed))
                start, n, offset = start + take, n - take, offset + take
            if offset >= length:
                order.pop(0)
                offset = 0
        return plays

    plays: list[Play] = []
    pos = 0
    for i, length in enumerate(lengths):
        plays += program_plays(pos, length)
        pos += length
        if i < breaks:
            for kind, n, s in break_plans[i]:
                if kind == KIND_BLACK:
                    plays.append(Play(KIND_BLACK, pos, n))
                else:
                    assert s is not None
                    plays.append(Play(KIND_AD, pos, n, s.clip, s.start_s, s.speed, s.name))
                pos += n
    assert pos == frames
    return plays


def truth_segments(plays: list[Play], fps: int) -> list[Segment]:
    """The truth: program plays are ``program``, everything in a break (spots and separators) is ``ad``."""
    out: list[tuple[int, int, str]] = []
    for p in plays:
        if out and out[-1][2] == p.label:
            out[-1] = (out[-1][0], p.end_frame, p.label)
        else:
            out.append((p.start_frame, p.end_frame, p.label))
    return [Segment(a / fps, b / fps, label) for a, b, label in out]


# ================================================================================================ rendering
def _fit(clip_w: int, clip_h: int, w: int, h: int) -> tuple[int, int, int, int]:
    """x, y, width, height (all even) of a clip fitted into the frame keeping its aspect; black bars elsewhere."""
    s = min(w / clip_w, h / clip_h)
    fw, fh = min(w, int(round(clip_w * s / 2)) * 2), min(h, int(round(clip_h * s / 2)) * 2)
    return (w - fw) // 4 * 2, (h - fh) // 4 * 2, fw, fh


def _fill(planes: list[np.ndarray], x: int, y: int, fw: int, fh: int, values: tuple[int, int, int]) -> None:
    """Paint everything outside the picture rectangle (the bars) of 4:2:0 planes."""
    for k, (plane, value) in enumerate(zip(planes, values, strict=True)):
        d = 1 if k == 0 else 2
        px, py, pw, ph = x // d, y // d, fw // d, fh // d
        plane[:py] = value
        plane[py + ph :] = value
        plane[py : py + ph, :px] = value
        plane[py : py + ph, px + pw :] = value


BLACK_YUV = (16, 128, 128)


def _clean_frames(
    plays: list[Play], size: tuple[int, int], fps: int, bgr: bool = False
) -> Iterator[tuple[bool, object]]:
    """Every output frame as ``(new, picture)``; ``new`` is False when it repeats the previous frame's picture.

    The picture is a new ``av.VideoFrame`` (yuv420p, BT.601 limited range) or, with ``bgr``, a BGR uint8 array in a
    reused buffer (valid until the next one is requested).
    """
    w, h = size
    logo = logo_for(w, h)
    if bgr:
        black: object = np.zeros((h, w, 3), np.uint8)
        canvases: dict[tuple[int, int, int, int], np.ndarray] = {}  # one per picture placement
    else:
        black = av.VideoFrame(w, h, "yuv420p")
        _fill(plane_views(black), 0, 0, 0, 0, BLACK_YUV)
    lx0, ly0, lx1, ly1 = logo.box
    for play in plays:
        if play.kind == KIND_BLACK:
            for i in range(play.frames):
                yield i == 0, black
            continue
        assert play.clip is not None
        clip = CLIPS[play.clip]
        x, y, fw, fh = fit = _fit(clip.width, clip.height, w, h)
        # bilinear up to a 2x reduction (INTER_AREA is ~5x slower at non-integer ratios), area averaging beyond
        interp = cv2.INTER_AREA if 2 * fw < clip.width else cv2.INTER_LINEAR
        last: av.VideoFrame | None = None
        picture: object = black
        for _, src in iter_source_frames(clip, source_indices(clip, play.in_s, play.speed, play.frames, fps)):
            new = src is not last
            if new:
                last = src
                if bgr:
                    canvas = canvases.get(fit)
                    if canvas is None:
                        canvas = canvases[fit] = np.zeros((h, w, 3), np.uint8)
                    canvas[ly0:ly1, lx0:lx1] = 0  # the logo may have been drawn on a bar
                    img = cv2.cvtColor(src.to_ndarray(format="yuv420p"), cv2.COLOR_YUV2BGR_I420)
                    cv2.resize(img, (fw, fh), dst=canvas[y : y + fh, x : x + fw], interpolation=interp)
                    if play.kind == KIND_PROGRAM:
                        logo.apply(canvas)
                    picture = canvas
                else:
                    frame = av.VideoFrame(w, h, "yuv420p")
                    dst = plane_views(frame)
                    _fill(dst, x, y, fw, fh, BLACK_YUV)
                    for k, (d, s) in enumerate(zip(dst, plane_views(src), strict=True)):
                        q = 1 if k == 0 else 2
                        cv2.resize(
                            s,
                            (fw // q, fh // q),
                            dst=d[y // q : (y + fh) // q, x // q : (x + fw) // q],
                            interpolation=interp,
                        )
                    if play.kind == KIND_PROGRAM:
                        logo.apply_yuv(*dst)
                    picture = frame
            yield new, picture


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
    plays: list[Play], size: tuple[int, int], fps: int, camera: CameraView | None
) -> Iterator[av.VideoFrame]:
    """Every output frame, ready for the encoder; a repeated frame is the same object."""
    if camera is None:
        for _, frame in _clean_frames(plays, size, fps):
            yield frame
        return
    w, h = size
    yuv = np.empty((h * 3 // 2, w), np.uint8)
    for i, (_, img) in enumerate(_clean_frames(plays, size, fps, bgr=True)):
        cv2.cvtColor(camera.render(img, i), cv2.COLOR_BGR2YUV_I420, dst=yuv)
        yield av.VideoFrame.from_ndarray(yuv, format="yuv420p")


def _encode(
    path: Path,
    frames: Iterator[av.VideoFrame],
    total: int,
    size: tuple[int, int],
    fps: int,
    crf: int,
    progress: bool,
    desc: str,
) -> None:
    from tqdm import tqdm

    w, h = size
    n = 0
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"preset": PRESET, "crf": str(crf), "x264-params": f"{X264_PARAMS}:{X264_COLOUR}"}
        with tqdm(total=total, unit="frame", desc=desc, disable=not progress, dynamic_ncols=True) as bar:
            for vf in frames:
                vf.pts = n  # a repeated frame object is re-sent with the next timestamp; the encoder copied it
                for packet in stream.encode(vf):
                    out.mux(packet)
                n += 1
                if n % 25 == 0:
                    bar.update(25)
            bar.update(n % 25)
            for packet in stream.encode():
                out.mux(packet)
    if n != total:
        raise AdbreakError(f"internal error: rendered {n} frames, planned {total}")


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
) -> BroadcastInfo:
    """Build ``<name>.mp4``, ``<name>.csv`` (truth) and ``<name>.json`` (metadata) in ``out_dir``.

    ``duration_s`` is rounded to whole frames. ``camera=True`` renders the camera view of the same broadcast (same
    truth) with ``camera_profile`` (default :meth:`CameraProfile.living_room`). Bad arguments raise
    :class:`AdbreakError`.
    """
    out = Path(out_dir)
    w, h = _validate(out, name, duration_s, fps, size)
    fps = int(fps)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise AdbreakError(f"seed must be a whole number >= 0, got {seed!r}")
    the_pool = get_pool(pool)
    frames = int(round(duration_s * fps))
    rng = np.random.default_rng(int(seed))
    plays = plan_broadcast(the_pool, frames, fps, rng)
    segments = truth_segments(plays, fps)
    profile = (camera_profile or CameraProfile.living_room()) if camera else None
    view = CameraView(profile, (w, h), fps, rng.spawn(1)[0]) if profile is not None else None

    video, truth, meta = out / f"{name}.mp4", out / f"{name}.csv", out / f"{name}.json"
    full = [[0.0, 0.0], [float(w - 1), 0.0], [float(w - 1), float(h - 1)], [0.0, float(h - 1)]]
    ad_frames = sum(p.frames for p in plays if p.kind != KIND_PROGRAM)
    info = {
        "format": FORMAT,
        "builder_version": BUILDER_VERSION,
        "generator": f"adbreak {__version__}",
        "name": name,
        "seed": int(seed),
        "pool": the_pool.name,
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
        "logo": logo_for(w, h).to_dict(),
        "screen_corners": profile.corners_px((w, h)) if profile else full,
        "camera": profile.to_dict((w, h)) if profile else None,
        "plays": [_play_dict(p, fps) for p in plays],
    }
    # all three appear together at the end (or none, on any error or interrupt); temporary files are 0600
    with (
        atomic_path(video) as v_tmp,
        atomic_path(truth) as t_tmp,
        atomic_path(meta) as m_tmp,
        contextlib.closing(_threaded(_output_frames(plays, (w, h), fps, view))) as frames_it,
    ):
        _encode(
            v_tmp,
            frames_it,
            frames,
            (w, h),
            fps,
            CRF_CAMERA if camera else CRF_CLEAN,
            progress,
            f"{name}{' (camera)' if camera else ''}",
        )
        write_segments(t_tmp, segments)
        m_tmp.write_text(_json_text(info), encoding="utf-8")
        for tmp in (v_tmp, t_tmp, m_tmp):
            tmp.chmod(0o644)
    return BroadcastInfo(
        video, truth, meta, frames / fps, tuple(segments), fps, frames, int(seed), the_pool.name, (w, h), camera
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
        )
    except (OSError, ValueError, KeyError, TypeError, AdbreakError):
        return None


def _json_text(info: dict) -> str:
    """Indented JSON with one line per play."""
    items = list(info.items())
    lines = ["{"]
    for i, (key, value) in enumerate(items):
        comma = "," if i < len(items) - 1 else ""
        if key == "plays":
            inner = ",\n".join("  " + json.dumps(p) for p in value)
            lines.append(f' "{key}": [\n{inner}\n ]{comma}')
        else:
            lines.append(f" {json.dumps(key)}: {json.dumps(value)}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _play_dict(p: Play, fps: int) -> dict:
    d: dict = {
        "kind": p.kind,
        "start": round(p.start_frame / fps, 6),
        "end": round(p.end_frame / fps, 6),
        "start_frame": p.start_frame,
        "frames": p.frames,
    }
    if p.clip is not None:
        d.update(
            {
                "clip": p.clip,
                "file": CLIPS[p.clip].file,
                "in_s": round(p.in_s, 6),
                "out_s": round(p.in_s + p.frames * p.speed / fps, 6),
                "speed": p.speed,
            }
        )
    if p.spot is not None:
        d["spot"] = p.spot
    return d
