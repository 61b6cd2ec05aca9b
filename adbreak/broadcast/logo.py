"""Channel logos ("bugs"): a fixed, semi-transparent mark in one corner of every program frame, one per channel.

:data:`CHANNELS` is the table of channels a broadcast can be built for. Each has its own call sign, corner, look,
colour and transparency:

* ``ch1`` (the default): "TV5" inside a rounded-rectangle outline, white at alpha 0.6, top-right corner, about 9% of
  the frame width;
* ``ch2``: "NOVA" knocked out of a filled amber badge with a small dot, alpha 0.45, bottom-left corner, about 11% of
  the frame width.

With the ``transparent`` difficulty a channel's logo is drawn at its ``alpha_transparent`` (about 0.25) instead: on
bright scenes it nearly vanishes, as semi-transparent logos do on real channels. The logo is always in the same place
with the same look, on program frames and the channel's own promos, never on ads or separators (on real channels
its presence is one of the strongest program cues). :func:`logo_mask` draws the same mark at any size, for idents.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from adbreak.errors import AdbreakError


@dataclass(frozen=True)
class Channel:
    """How one channel's logo looks and where it sits. Fractions are of the frame width (x) or height (y)."""

    name: str
    text: str
    style: str  # "outline": text in a rounded-rectangle outline; "badge": text knocked out of a filled badge
    corner: str  # "top-right", "top-left", "bottom-right" or "bottom-left"
    colour: tuple[int, int, int]  # RGB
    alpha: float
    alpha_transparent: float
    width_frac: float
    aspect: float  # logo height / logo width
    margin_x_frac: float
    margin_y_frac: float
    ident_colours: tuple[tuple[int, int, int], tuple[int, int, int]]  # RGB, top and bottom of an ident's background


CHANNELS: dict[str, Channel] = {
    c.name: c
    for c in (
        Channel(
            "ch1", "TV5", "outline", "top-right", (255, 255, 255), 0.6, 0.25, 0.09, 0.5, 0.035, 0.05,
            ((40, 30, 120), (10, 110, 200)),
        ),
        Channel(
            "ch2", "NOVA", "badge", "bottom-left", (255, 176, 32), 0.45, 0.2, 0.11, 0.42, 0.04, 0.06,
            ((0, 110, 110), (230, 120, 20)),
        ),
    )
}  # fmt: skip
DEFAULT_CHANNEL = "ch1"

# the default channel's look, for callers of the single-logo API
TEXT = CHANNELS[DEFAULT_CHANNEL].text
ALPHA = CHANNELS[DEFAULT_CHANNEL].alpha


def get_channel(name: str) -> Channel:
    try:
        return CHANNELS[name]
    except KeyError:
        raise AdbreakError(f"unknown channel {name!r}; choose one of {', '.join(sorted(CHANNELS))}") from None


def rgb_to_yuv(rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    """BT.601 limited-range Y, U, V of an RGB colour (what the encoder's yuv420p frames hold)."""
    r, g, b = (float(v) for v in rgb)
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    return y, u, v


@dataclass(frozen=True)
class Logo:
    """A rendered logo for one frame size: its box, colour and a per-pixel alpha over that box."""

    x0: int
    y0: int
    alpha: np.ndarray  # (h, w, 1) float32 in [0, alpha_max]; x0, y0, h, w are even (4:2:0 chroma alignment)
    alpha_half: np.ndarray  # (h / 2, w / 2) float32: the alpha at chroma resolution
    channel: Channel
    alpha_max: float
    transparent: bool = False

    @property
    def box(self) -> tuple[int, int, int, int]:
        """x0, y0, x1, y1 in frame pixels (x1, y1 exclusive)."""
        h, w = self.alpha.shape[:2]
        return self.x0, self.y0, self.x0 + w, self.y0 + h

    def stroke_mask(self) -> np.ndarray:
        """Boolean (h, w) mask of the pixels the logo covers at (nearly) full strength: for checks and tests."""
        return self.alpha[..., 0] >= 0.9 * self.alpha_max

    def clear_mask(self) -> np.ndarray:
        """Boolean (h, w) mask of the box's pixels the logo leaves untouched (its background): for checks and tests."""
        return self.alpha[..., 0] <= 0.02 * self.alpha_max

    def apply(self, frame: np.ndarray) -> None:
        """Blend the logo into an RGB uint8 frame in place."""
        x0, y0, x1, y1 = self.box
        roi = frame[y0:y1, x0:x1].astype(np.float32)
        roi += (np.float32(self.channel.colour) - roi) * self.alpha
        frame[y0:y1, x0:x1] = np.clip(roi + 0.5, 0, 255).astype(np.uint8)

    def apply_yuv(self, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
        """Blend the logo into the Y, U and V planes of a 4:2:0 frame (BT.601 limited range) in place.

        Equivalent to :meth:`apply` followed by the colour conversion.
        """
        x0, y0, x1, y1 = self.box
        cy, cu, cv = rgb_to_yuv(self.channel.colour)
        roi = y[y0:y1, x0:x1].astype(np.float32)
        y[y0:y1, x0:x1] = np.clip(roi + (cy - roi) * self.alpha[..., 0] + 0.5, 0, 255).astype(np.uint8)
        for plane, target in ((u, cu), (v, cv)):
            roi = plane[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2].astype(np.float32)
            plane[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2] = np.clip(
                roi + (target - roi) * self.alpha_half + 0.5, 0, 255
            ).astype(np.uint8)

    def to_dict(self) -> dict:
        c = self.channel
        return {
            "channel": c.name,
            "text": c.text,
            "style": c.style,
            "colour": list(c.colour),
            "alpha": self.alpha_max,
            "transparent": self.transparent,
            "box": list(self.box),
            "corner": c.corner,
        }


def _rounded_rect(img: np.ndarray, x0: int, y0: int, x1: int, y1: int, r: int, thickness: int) -> None:
    """A rounded rectangle, outlined (``thickness`` > 0) or filled (``thickness`` < 0), in 255 on a uint8 mask."""
    color = 255
    aa = cv2.LINE_AA
    if thickness < 0:
        cv2.rectangle(img, (x0 + r, y0), (x1 - r, y1), color, -1, aa)
        cv2.rectangle(img, (x0, y0 + r), (x1, y1 - r), color, -1, aa)
        for cx, cy in ((x0 + r, y0 + r), (x1 - r, y0 + r), (x1 - r, y1 - r), (x0 + r, y1 - r)):
            cv2.circle(img, (cx, cy), r, color, -1, aa)
        return
    cv2.line(img, (x0 + r, y0), (x1 - r, y0), color, thickness, aa)
    cv2.line(img, (x0 + r, y1), (x1 - r, y1), color, thickness, aa)
    cv2.line(img, (x0, y0 + r), (x0, y1 - r), color, thickness, aa)
    cv2.line(img, (x1, y0 + r), (x1, y1 - r), color, thickness, aa)
    cv2.ellipse(img, (x0 + r, y0 + r), (r, r), 180, 0, 90, color, thickness, aa)
    cv2.ellipse(img, (x1 - r, y0 + r), (r, r), 270, 0, 90, color, thickness, aa)
    cv2.ellipse(img, (x1 - r, y1 - r), (r, r), 0, 0, 90, color, thickness, aa)
    cv2.ellipse(img, (x0 + r, y1 - r), (r, r), 90, 0, 90, color, thickness, aa)


def logo_mask(channel: Channel, w: int, h: int) -> np.ndarray:
    """The channel's mark drawn into a ``h`` x ``w`` uint8 mask (255 = logo)."""
    t = max(2, int(round(w / 29)))  # stroke thickness: 3 px for the 86 px wide ch1 logo of a 960 px frame
    mask = np.zeros((h, w), np.uint8)
    half = t // 2 + 1
    font = cv2.FONT_HERSHEY_DUPLEX
    if channel.style == "outline":
        _rounded_rect(mask, half, half, w - 1 - half, h - 1 - half, max(2, h // 4), t)
        text_w, text_h, text_x = 0.62 * w, 0.5 * h, None
    elif channel.style == "badge":
        _rounded_rect(mask, 1, 1, w - 2, h - 2, max(2, h // 3), -1)
        cv2.circle(mask, (int(0.14 * w), h // 2), max(1, int(0.07 * h)), 0, -1, cv2.LINE_AA)  # a dot before the text
        text_w, text_h, text_x = 0.66 * w, 0.52 * h, int(0.24 * w)
    else:  # pragma: no cover - the table is plain data checked by the tests
        raise ValueError(f"unknown logo style {channel.style!r}")
    (tw, th), _ = cv2.getTextSize(channel.text, font, 1.0, t)
    scale = min(text_w / tw, text_h / th)
    (tw, th), _ = cv2.getTextSize(channel.text, font, scale, t)
    org = ((w - tw) // 2 if text_x is None else text_x, (h + th) // 2)
    cv2.putText(mask, channel.text, org, font, scale, 0 if channel.style == "badge" else 255, t, cv2.LINE_AA)
    return mask


@lru_cache(maxsize=16)
def logo_for(width: int, height: int, channel: str = DEFAULT_CHANNEL, transparent: bool = False) -> Logo:
    """The logo of ``channel`` for a ``width`` x ``height`` frame (cached; treat the result as read-only)."""
    c = get_channel(channel)
    w = max(24, int(round(c.width_frac * width / 2)) * 2)
    h = max(12, int(round(w * c.aspect / 2)) * 2)
    a = c.alpha_transparent if transparent else c.alpha
    alpha = (logo_mask(c, w, h).astype(np.float32) / 255.0 * a)[..., None]
    alpha_half = cv2.resize(alpha[..., 0], (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    mx, my = int(round(c.margin_x_frac * width)), int(round(c.margin_y_frac * height))
    x0 = (width - mx - w) // 2 * 2 if c.corner.endswith("right") else (mx + 1) // 2 * 2
    y0 = (height - my - h) // 2 * 2 if c.corner.startswith("bottom") else (my + 1) // 2 * 2
    return Logo(x0, y0, alpha, alpha_half, c, a, transparent)
