"""``adbreak collect`` and ``adbreak extract``: build labelled frame folders (``DIR/<label>/<rec>_t<sec>.jpg``)."""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np

from adbreak.errors import AdbreakError
from adbreak.segments import read_segments
from adbreak.training.dataset import frame_name
from edge.sources import Frame, open_source

log = logging.getLogger(__name__)

JPEG_QUALITY = 92


def save_frame(folder: Path, recording: str, frame: Frame) -> Path:
    """Write one frame as JPEG, atomically (a reader never sees half a file)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{frame_name(recording, frame.t)}.jpg"
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    )
    if not ok:
        raise AdbreakError(f"cannot encode frame at {frame.t:.3f} s")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(np.asarray(buf).tobytes())
    os.replace(tmp, path)
    return path


def extract(
    video: str | Path,
    segments_path: str | Path,
    out: str | Path,
    *,
    fps: float = 2.0,
    margin_s: float = 0.0,
    progress: bool = True,
) -> Counter[str]:
    """Cut a labelled recording into frames under ``out/<label>/``; frames within ``margin_s`` of a label change are
    skipped (they are the ambiguous ones)."""
    from tqdm import tqdm

    segments = read_segments(segments_path)
    duration = segments[-1].end
    recording = Path(video).stem
    counts: Counter[str] = Counter()
    out = Path(out)
    seg_i = 0
    with (
        open_source(str(video), fps) as source,
        tqdm(total=round(duration), desc="extract", unit="s", disable=not progress, leave=False) as bar,
    ):
        for frame in source:
            if frame.t >= duration:
                break
            while segments[seg_i].end <= frame.t:
                seg_i += 1
            seg = segments[seg_i]
            if margin_s > 0 and (
                frame.t - seg.start < margin_s
                and seg_i > 0
                or seg.end - frame.t < margin_s
                and seg_i < len(segments) - 1
            ):
                continue
            save_frame(out / seg.label, recording, frame)
            counts[seg.label] += 1
            bar.update(int(frame.t) - bar.n)
    if not counts:
        raise AdbreakError(f"no frame of {video} falls inside the segments of {segments_path}")
    return counts


def collect(
    source_spec: str,
    label: str,
    out: str | Path,
    *,
    fps: float = 1.0,
    duration_s: float | None = None,
    max_frames: int | None = None,
    progress: bool = True,
) -> int:
    """Save frames from a live or recorded source into ``out/<label>/`` until the source ends, ``duration_s`` of
    stream time or ``max_frames`` frames, or Ctrl-C."""
    from tqdm import tqdm

    if not label or "/" in label or label.startswith("."):
        raise AdbreakError(f"bad label {label!r}: use a plain class name such as 'ad' or 'program'")
    stem = Path(source_spec).stem if "://" not in source_spec else "stream"
    recording = f"{stem}-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    folder = Path(out) / label
    n = 0
    started = time.monotonic()
    with (
        open_source(source_spec, fps) as source,
        tqdm(desc=f"collect {label}", unit="frame", disable=not progress) as bar,
    ):
        try:
            for frame in source:
                if duration_s is not None and frame.t >= duration_s:
                    break
                save_frame(folder, recording, frame)
                n += 1
                bar.update(1)
                if max_frames is not None and n >= max_frames:
                    break
        except KeyboardInterrupt:
            log.info("stopped after %d frames (%.0f s)", n, time.monotonic() - started)
    return n
