"""The channel logo ("bug"): a fixed, semi-transparent mark in the top-right corner of every program frame.

It is drawn with OpenCV as a rounded-rectangle outline around a short call sign, about 9% of the frame width, white
at alpha 0.6: always the same place and the same look, never on ads or black separators (as on real channels, where
its presence is one of the strongest program cues).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

TEXT = "TV5"
ALPHA = 0.6
WIDTH_FRAC = 0.09  # logo width / frame width
ASPECT = 0.5  # logo height / logo width
MARGIN_X_FRAC = 0.035  # gap to the right edge / frame width
MARGIN_Y_FRAC = 0.05  # gap to the top edge / frame height
COLOR = (255, 255, 255)


@dataclass(frozen=True)
class Logo:
    """A rendered logo for one frame size: its box and a per-pixel alpha over that box."""

    x0: int
    y0: int
    alpha: np.ndarray  # (h, w, 1) float32 in [0, ALPHA]; x0, y0, h, w are even (4:2:0 chroma alignment)
    alpha_half: np.ndarray  # (h / 2, w / 2) float32: the alpha at chroma resolution

    @property
    def box(self) -> tuple[int, int, int, int]:
        """x0, y0, x1, y1 in frame pixels (x1, y1 exclusive)."""
        h, w = self.alpha.shape[:2]
        return self.x0, self.y0, self.x0 + w, self.y0 + h

    def stroke_mask(self) -> np.ndarray:
        """Boolean (h, w) mask of the pixels the logo covers at (nearly) full strength: for checks and tests."""
        return self.alpha[..., 0] >= 0.9 * ALPHA

    def apply(self, frame: np.ndarray) -> None:
        """Blend the logo into a BGR/RGB uint8 frame in place (the logo is white, so channel order does not matter)."""
        x0, y0, x1, y1 = self.box
        roi = frame[y0:y1, x0:x1].astype(np.float32)
        roi += (np.float32(COLOR[0]) - roi) * self.alpha
        frame[y0:y1, x0:x1] = np.clip(roi + 0.5, 0, 255).astype(np.uint8)

    def apply_yuv(self, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
        """Blend the logo into the Y, U and V planes of a 4:2:0 frame (BT.601 limited range) in place.

        Equivalent to :meth:`apply` followed by the colour conversion: white is Y 235 with neutral chroma.
        """
        x0, y0, x1, y1 = self.box
        roi = y[y0:y1, x0:x1].astype(np.float32)
        y[y0:y1, x0:x1] = np.clip(roi + (235.0 - roi) * self.alpha[..., 0] + 0.5, 0, 255).astype(np.uint8)
        for plane in (u, v):
            roi = plane[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2].astype(np.float32)
            plane[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2] = np.clip(
                roi + (128.0 - roi) * self.alpha_half + 0.5, 0, 255
            ).astype(np.uint8)

    def to_dict(self) -> dict:
        return {"text": TEXT, "alpha": ALPHA, "box": list(self.box), "corner": "top-right"}


def _rounded_rect(img: np.ndarray, x0: int, y0: int, x1: int, y1: int, r: int, thickness: int) -> None:
    color = 255
    aa = cv2.LINE_AA
    cv2.line(img, (x0 + r, y0), (x1 - r, y0), color, thickness, aa)
    cv2.line(img, (x0 + r, y1), (x1 - r, y1), color, thickness, aa)
    cv2.line(img, (x0, y0 + r), (x0, y1 - r), color, thickness, aa)
    cv2.line(img, (x1, y0 + r), (x1, y1 - r), color, thickness, aa)
    cv2.ellipse(img, (x0 + r, y0 + r), (r, r), 180, 0, 90, color, thickness, aa)
    cv2.ellipse(img, (x1 - r, y0 + r), (r, r), 270, 0, 90, color, thickness, aa)
    cv2.ellipse(img, (x1 - r, y1 - r), (r, r), 0, 0, 90, color, thickness, aa)
    cv2.ellipse(img, (x0 + r, y1 - r), (r, r), 90, 0, 90, color, thickness, aa)


@lru_cache(maxsize=8)
def logo_for(width: int, height: int) -> Logo:
    """The logo for a ``width`` x ``height`` frame (cached; treat the result as read-only)."""
    w = max(24, int(round(WIDTH_FRAC * width / 2)) * 2)
    h = max(12, int(round(w * ASPECT / 2)) * 2)
    t = max(2, int(round(width / 320)))  # stroke thickness: 3 px at 960 wide
    mask = np.zeros((h, w), np.uint8)
    half = t // 2 + 1
    _rounded_rect(mask, half, half, w - 1 - half, h - 1 - half, max(2, h // 4), t)
    font = cv2.FONT_HERSHEY_DUPLEX
    (tw, th), _ = cv2.getTextSize(TEXT, font, 1.0, t)
    scale = min(0.62 * w / tw, 0.5 * h / th)
    (tw, th), _ = cv2.getTextSize(TEXT, font, scale, t)
    org = ((w - tw) // 2, (h + th) // 2)
    cv2.putText(mask, TEXT, org, font, scale, 255, t, cv2.LINE_AA)
    alpha = (mask.astype(np.float32) / 255.0 * ALPHA)[..., None]
    alpha_half = cv2.resize(alpha[..., 0], (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    x0 = (width - int(round(MARGIN_X_FRAC * width)) - w) // 2 * 2
    y0 = int(round(MARGIN_Y_FRAC * height / 2)) * 2
    return Logo(x0, y0, alpha, alpha_half)
