"""From a camera or capture frame to the model's 224x224 RGB input: optional crop or four-corner screen warp.

A camera pointed at a TV sees the screen as a quadrilateral; ``Geometry.corners`` (top-left, top-right,
bottom-right, bottom-left, in frame pixels) maps it back to a frontal picture before the resize, so a model trained on
one view keeps working. The resize works on the whole picture (no centre crop: the channel logo sits in a corner). A
model bundle names its resize (``Preprocessing.resize``), and training, ``evaluate`` and the edge all use the bundle's
one, so a model never sees another resize than it was trained with:

- ``halve-linear`` (:data:`DEFAULT_RESIZE`, bundles trained since 2026-12-07): exact 2x2 box averages while both sides
  are at least twice the input size, then one bilinear step (at most 2.5x smaller on either side, so every source
  pixel still weighs in; beyond that, area averaging). 0.21 ms against 2.0 ms for a 960x540 frame here, within 0.7
  grey levels of ``area`` on average (``docs/decisions.md``).
- ``area``: ``cv2.INTER_AREA`` in one step, which at a non-integer ratio OpenCV runs without vector instructions.
  Bundles made before keep it (their ``bundle.json`` reads ``cv2.INTER_AREA, ...``), bit for bit; the backbone's
  reference inputs (``tests/data/backbone_reference.npz``) were made with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from adbreak.errors import AdbreakError

INPUT_SIZE = 224
RESIZE_AREA = "area"
RESIZE_HALVE_LINEAR = "halve-linear"
RESIZES: tuple[str, ...] = (RESIZE_HALVE_LINEAR, RESIZE_AREA)
DEFAULT_RESIZE = RESIZE_HALVE_LINEAR
"""The resize of bundles trained now (see the module's text)."""
LINEAR_MAX_RATIO = 2.5
"""The last step of ``halve-linear`` is bilinear up to this shrink factor on either side (a 2-tap filter then still
reads 80 % of the source pixels); a larger one is area-averaged."""


def resize_input(image: np.ndarray, size: int = INPUT_SIZE, method: str = DEFAULT_RESIZE) -> np.ndarray:
    """Whole image to size x size by ``method`` (:data:`RESIZES`)."""
    if image.shape[0] == size and image.shape[1] == size:
        return image
    if method == RESIZE_AREA:
        return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    if method != RESIZE_HALVE_LINEAR:
        raise AdbreakError(f"unknown resize {method!r}; choose one of {', '.join(RESIZES)}")
    h, w = image.shape[:2]
    while min(h, w) >= 2 * size:
        # OpenCV averages exact 2x2 blocks with vector instructions; an odd last row or column is dropped so the
        # ratio stays exactly 2
        h, w = h // 2, w // 2
        image = cv2.resize(image[: 2 * h, : 2 * w], (w, h), interpolation=cv2.INTER_AREA)
    linear = max(h, w) <= LINEAR_MAX_RATIO * size
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR if linear else cv2.INTER_AREA)


def resize_name(value: Any) -> str:
    """A bundle's ``preprocessing.resize`` as a method of :data:`RESIZES`; bundles made before it named one hold a
    description of ``cv2.INTER_AREA`` (or nothing), which is ``area``."""
    if value is None or (isinstance(value, str) and value.startswith("cv2.INTER_AREA")):
        return RESIZE_AREA
    if value not in RESIZES:
        raise AdbreakError(f"unknown resize {value!r} in the model bundle; this adbreak knows {', '.join(RESIZES)}")
    return str(value)


@dataclass(frozen=True)
class Geometry:
    crop: tuple[int, int, int, int] | None = None  # x, y, width, height in frame pixels
    corners: tuple[tuple[float, float], ...] | None = None  # 4 points: TL, TR, BR, BL

    def __post_init__(self) -> None:
        if self.crop is not None and self.corners is not None:
            raise AdbreakError("give either a crop or four screen corners, not both")
        if self.crop is not None:
            x, y, w, h = self.crop
            if w <= 0 or h <= 0 or x < 0 or y < 0:
                raise AdbreakError(f"bad crop {self.crop}: x,y must be >= 0 and width,height > 0")
        if self.corners is not None:
            pts = np.asarray(self.corners, dtype=np.float32)
            if pts.shape != (4, 2):
                raise AdbreakError("screen corners must be four x,y points: TL, TR, BR, BL")
            if abs(cv2.contourArea(pts)) < 100:
                raise AdbreakError("screen corners enclose (almost) no area")

    @property
    def is_identity(self) -> bool:
        return self.crop is None and self.corners is None

    def to_input(self, image: np.ndarray, size: int = INPUT_SIZE, resize: str = DEFAULT_RESIZE) -> np.ndarray:
        """Map a full RGB frame to the size x size model input; ``resize``: the bundle's method (:data:`RESIZES`)."""
        if self.crop is not None:
            x, y, w, h = self.crop
            if x + w > image.shape[1] or y + h > image.shape[0]:
                raise AdbreakError(f"crop {self.crop} lies outside the {image.shape[1]}x{image.shape[0]} frame")
            return resize_input(image[y : y + h, x : x + w], size, resize)
        if self.corners is not None:
            # warp at twice the input size with bilinear sampling, then area-downscale: no aliasing either way (an
            # exact 2x2 average, the same for either resize method)
            big = 2 * size
            dst = np.float32([[0, 0], [big - 1, 0], [big - 1, big - 1], [0, big - 1]])
            m = cv2.getPerspectiveTransform(np.asarray(self.corners, dtype=np.float32), dst)
            warped = cv2.warpPerspective(image, m, (big, big), flags=cv2.INTER_LINEAR)
            return cv2.resize(warped, (size, size), interpolation=cv2.INTER_AREA)
        return resize_input(image, size, resize)

    def to_screen_gray(self, image: np.ndarray, width: int = 640) -> np.ndarray:
        """The screen's luma at ``width`` pixels wide (the cues' analysis size): the crop, or the four corners warped
        to a 16:9 frontal picture, or the whole frame; the height keeps the picture's aspect."""
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
        if self.corners is not None:
            height = width * 9 // 16 // 2 * 2
            dst = np.float32([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]])
            m = cv2.getPerspectiveTransform(np.asarray(self.corners, dtype=np.float32), dst)
            return cv2.warpPerspective(gray, m, (width, height), flags=cv2.INTER_AREA)
        if self.crop is not None:
            x, y, w, h = self.crop
            gray = gray[y : y + h, x : x + w]
        from edge.cues.base import resize_luma

        return resize_luma(gray, width)

    # --- (de)serialisation, for the model bundle and the CLI ---
    def to_dict(self) -> dict[str, Any]:
        return {
            "crop": list(self.crop) if self.crop else None,
            "corners": [list(p) for p in self.corners] if self.corners else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Geometry:
        if not data:
            return cls()
        crop = data.get("crop")
        corners = data.get("corners")
        return cls(
            crop=tuple(int(v) for v in crop) if crop else None,  # type: ignore[arg-type]
            corners=tuple((float(x), float(y)) for x, y in corners) if corners else None,
        )

    @classmethod
    def parse(cls, crop: str | None = None, corners: str | None = None) -> Geometry:
        """From the CLI's ``--crop x,y,w,h`` / ``--corners x1,y1,...,x4,y4`` strings."""
        try:
            c = tuple(int(float(v)) for v in crop.split(",")) if crop else None
            k = [float(v) for v in corners.split(",")] if corners else None
        except ValueError as exc:
            raise AdbreakError(f"bad geometry: {exc}") from exc
        if c is not None and len(c) != 4:
            raise AdbreakError("--crop takes x,y,width,height")
        if k is not None and len(k) != 8:
            raise AdbreakError("--corners takes eight numbers: x,y of top-left, top-right, bottom-right, bottom-left")
        return cls(
            crop=c,  # type: ignore[arg-type]
            corners=tuple((k[i], k[i + 1]) for i in range(0, 8, 2)) if k else None,
        )
