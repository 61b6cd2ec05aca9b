"""Frame sources behind one interface; every source samples by timestamp at the requested rate."""

from __future__ import annotations

from pathlib import Path

from edge.sources.base import Frame, FrameSource, TimestampSampler
from edge.sources.images import IMAGE_SUFFIXES, ImageFolderSource, read_rgb
from edge.sources.prefetch import Prefetcher
from edge.sources.video import VideoSource

__all__ = [
    "IMAGE_SUFFIXES",
    "Frame",
    "FrameSource",
    "ImageFolderSource",
    "Prefetcher",
    "TimestampSampler",
    "VideoSource",
    "open_source",
    "read_rgb",
]


def open_source(spec: str, fps: float | None = 5.0) -> FrameSource:
    """Open ``spec``: ``picamera2``, a V4L2 device (``/dev/video0``), a video file, a URL, or an image folder."""
    if spec == "picamera2":
        from edge.sources.picamera import PiCameraSource

        return PiCameraSource(fps)
    if "://" not in spec and Path(spec).is_dir():
        return ImageFolderSource(spec, fps)
    return VideoSource(spec, fps)
