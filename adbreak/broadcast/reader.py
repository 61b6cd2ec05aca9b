"""Frame-exact reading of the shipped clips: which source frame shows at each output frame of an excerpt."""

from __future__ import annotations

import math
from collections.abc import Iterator

import av
import numpy as np

from adbreak.broadcast.clips import Clip
from adbreak.errors import AdbreakError


def source_indices(clip: Clip, in_s: float, speed: float, frames: int, fps: int, start: int = 0) -> list[int]:
    """Source frame index shown at each of ``frames`` output frames ``start``, ``start + 1``, ... of an excerpt that
    shows ``in_s`` of the clip at its output frame 0.

    Output frame ``j`` shows the source frame on screen at source time ``in_s + j * speed / fps`` (the latest frame
    that started at or before it), clamped to the clip's first and last frames (``j`` may be negative: a dissolve
    shows the frames before an excerpt).
    """
    rate = clip.fps
    last = clip.frames - 1
    return [min(last, max(0, math.floor((in_s + j * speed / fps) * rate + 1e-6))) for j in range(start, start + frames)]


def plane_views(frame: av.VideoFrame) -> list[np.ndarray]:
    """Writable numpy views (no copy) of a yuv420p frame's Y, U and V planes, each ``(height, width)``."""
    views = []
    for plane in frame.planes:
        buf = np.frombuffer(plane, np.uint8)
        views.append(buf.reshape(-1, plane.line_size)[: plane.height, : plane.width])
    return views


def iter_source_frames(clip: Clip, indices: list[int]) -> Iterator[tuple[int, av.VideoFrame]]:
    """Yield ``(index, decoded yuv420p frame)`` for each wanted, non-decreasing source index.

    A repeated index yields the same frame object. The shipped copies are yuv420p, BT.601 limited range.
    """
    if not indices:
        return
    path = clip.path
    if not path.is_file():
        raise AdbreakError(f"shipped clip {path} is missing; reinstall adbreak or run adbreak.broadcast.make_media")
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        tb = stream.time_base
        rate = clip.fps
        first = indices[0]
        if first > 0:
            # the keyframe at or before the first wanted frame; frames before the wanted one are decoded and dropped
            container.seek(int(first / rate / tb), stream=stream, backward=True, any_frame=False)
        decoded = container.decode(stream)
        cur_idx = -1
        cur: av.VideoFrame | None = None
        pending: av.VideoFrame | None = None
        for want in indices:
            if want == cur_idx and cur is not None:
                yield cur_idx, cur
                continue
            while True:
                if pending is not None:
                    frame, pending = pending, None
                else:
                    frame = next(decoded, None)
                if frame is None:  # past the end: keep showing the last frame
                    break
                idx = int(round(float(frame.pts * tb * rate)))
                if idx > want:  # a gap in the source: keep showing the current frame
                    pending = frame
                    break
                if idx == want:
                    cur_idx, cur = idx, frame
                    break
            if cur is None:
                raise AdbreakError(f"{clip.file}: cannot decode frame {want}")
            if cur.format.name != "yuv420p":
                raise AdbreakError(f"{clip.file}: expected yuv420p frames, got {cur.format.name}")
            yield cur_idx, cur
