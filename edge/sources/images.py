"""A folder of still images played as a stream: one image per 1/fps seconds, in name order."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import cv2

from adbreak.errors import AdbreakError
from edge.sources.base import Frame, FrameSource

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})


def read_rgb(path: Path):
    """Read an image file as RGB uint8, or raise AdbreakError naming the file."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise AdbreakError(f"cannot read image {path} (corrupt or not an image)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class ImageFolderSource(FrameSource):
    """Each image of ``folder`` (sorted by name) is one frame at ``index / rate`` seconds.

    ``rate`` is the folder's own frame rate (default: one image per sampled frame). Unreadable images are skipped,
    logged and counted in ``decode_errors``.
    """

    def __init__(self, folder: str | Path, fps: float | None = 5.0, *, rate: float | None = None) -> None:
        super().__init__(fps)
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise AdbreakError(f"image folder not found: {folder}")
        self.paths = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.paths:
            raise AdbreakError(f"no images in {folder}")
        self.rate = rate or fps or 1.0

    @property
    def duration_s(self) -> float:
        return len(self.paths) / self.rate

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        for i, path in enumerate(self.paths):
            t = i / self.rate
            if not self.sampler.take(t):
                continue
            try:
                image = read_rgb(path)
            except AdbreakError as exc:
                self.decode_errors += 1
                log.warning("%s", exc)
                continue
            yield Frame(t=t, image=image, index=index)
            index += 1
        if index == 0:
            raise AdbreakError(f"no readable image in {self.folder}")
