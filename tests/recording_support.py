"""A scanned recording made by hand for the tests of recordings sent for review: a :class:`ScanResult` with real JPEG
thumbnails (OpenCV): one every 10 s and one on each side of every boundary (more than a scan's intra frames give,
so the tests also see pictures at the edges), 384 pixels wide like the edge's keyframes, ad pictures red and
program pictures blue."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from adbreak.scan import ScanResult
from adbreak.segments import Segment

NAME = "The Show (2026).ts"
DURATION = 600.0
AD = (120.0, 240.0)
THUMB_STEP_S = 10.0
WIDTH, HEIGHT = 384, 216


def thumbnail(label: str, t: float) -> bytes:
    """A 384x216 JPEG: red for ad, blue for program, with its time written on it."""
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    image[:] = (30, 30, 210) if label == "ad" else (200, 90, 20)  # BGR
    cv2.putText(image, f"{label} {t:.1f}", (12, 120), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (255, 255, 255), 2)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert ok
    return data.tobytes()


def segments_for(ad: tuple[float, float], duration: float) -> list[Segment]:
    return [Segment(0.0, ad[0], "program"), Segment(ad[0], ad[1], "ad"), Segment(ad[1], duration, "program")]


def thumb_times(ad: tuple[float, float], duration: float) -> list[float]:
    times = {round(k * THUMB_STEP_S, 3) for k in range(int(duration // THUMB_STEP_S) + 1)}
    for b in ad:
        times |= {b - 0.5, b + 0.5}
    return sorted(t for t in times if 0 <= t <= duration)


def scan_result(name: str = NAME, *, ad: tuple[float, float] = AD, duration: float = DURATION,
                thumbnails: bool = True) -> ScanResult:
    """A scan of ``name``: program, one ad break ``ad``, program; thumbnails labelled as the scan decided."""
    segs = segments_for(ad, duration)
    thumbs = []
    if thumbnails:
        for t in thumb_times(ad, duration):
            label = "ad" if ad[0] <= t < ad[1] else "program"
            thumbs.append((t, thumbnail(label, t)))
    return ScanResult(recording=Path("/recordings") / name, duration_s=duration, fps=25.0, segments=segs,
                      mode="fast", frames_analysed=int(duration * 2), timings={"total": 12.5},
                      info={"container": "mpegts", "video": "h264 1920x1080", "size_bytes": 123456789},
                      thumbnails=thumbs)
