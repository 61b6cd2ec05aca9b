"""Rendering shots into 4:2:0 frames (BT.601 limited range), the builder's one picture format.

A :class:`Shot` is one continuous piece of picture: a stretch of a shipped clip, a slow pan and zoom over a photo
("Ken Burns", optionally inside a rectangle on a coloured background, as ad cards are), or a channel ident (the
channel's logo big on its colours). Any shot can carry a colour :class:`Grade` and :class:`Caption` text. A
:class:`Renderer` draws any frame of a shot's own timeline into one reused I420 buffer, including frames just
outside it (a dissolve shows the outgoing shot continuing and the incoming one before its first frame).

Speed: photos are converted, graded and (for small outputs) shrunk once per photo, grade and scale and then warped
plane by plane with ``cv2.warpAffine``; backgrounds, captions and ident artwork are rendered once per look and size.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from functools import lru_cache

import cv2
import numpy as np

from adbreak.broadcast import reader
from adbreak.broadcast.clips import CLIPS
from adbreak.broadcast.logo import get_channel, logo_mask, rgb_to_yuv
from adbreak.broadcast.photos import load_photo

RGB = tuple[int, int, int]
BLACK_YUV = (16, 128, 128)


# ================================================================================================ shot descriptions
@dataclass(frozen=True)
class Grade:
    """A colour grade: contrast around mid-grey, saturation, warmth (+ warm, - cool) and a brightness offset."""

    name: str = "none"
    contrast: float = 1.0
    saturation: float = 1.0
    warmth: float = 0.0
    brightness: float = 0.0

    @property
    def identity(self) -> bool:
        return (self.contrast, self.saturation, self.warmth, self.brightness) == (1.0, 1.0, 0.0, 0.0)

    def luts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """256-entry uint8 look-up tables for the Y, U and V planes."""
        return _grade_luts(self)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "contrast": self.contrast,
            "saturation": self.saturation,
            "warmth": self.warmth,
            "brightness": self.brightness,
        }


NO_GRADE = Grade()
WARMTH_UV = (-9.0, 11.0)  # U and V shift of a full warm grade (8-bit levels): less blue, more red


@lru_cache(maxsize=256)
def _grade_luts(g: Grade) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.arange(256, dtype=np.float64)
    yn = (x - 16.0) / 219.0
    y = 16.0 + 219.0 * ((yn - 0.5) * g.contrast + 0.5 + g.brightness)
    u = 128.0 + g.saturation * (x - 128.0) + WARMTH_UV[0] * g.warmth
    v = 128.0 + g.saturation * (x - 128.0) + WARMTH_UV[1] * g.warmth
    ranges = ((y, 16, 235), (u, 16, 240), (v, 16, 240))
    return tuple(np.clip(np.rint(a), lo, hi).astype(np.uint8) for a, lo, hi in ranges)  # type: ignore[return-value]


@dataclass(frozen=True)
class Caption:
    """Text fitted into ``box`` (x0, y0, x1, y1 as fractions of the frame), optionally on a filled banner."""

    text: str
    box: tuple[float, float, float, float]
    ink: RGB
    fill: RGB | None = None
    fill_alpha: float = 1.0
    align: str = "center"  # or "left"

    def to_dict(self) -> dict:
        d: dict = {"text": self.text, "box": list(self.box), "ink": list(self.ink)}
        if self.fill is not None:
            d.update({"fill": list(self.fill), "fill_alpha": self.fill_alpha})
        return d


@dataclass(frozen=True)
class Shot:
    """One continuous piece of picture, ``frames`` long. Exactly one of ``clip``, ``photo`` or ``ident`` is set.

    * ``clip``: the clip's timeline from ``in_s`` at ``speed``, fitted into the frame keeping its aspect;
    * ``photo``: a pan and zoom along ``path`` = (zoom, x, y) at the start and at the end of the motion, where zoom
      is the crop's size relative to the largest crop of the picture's aspect (1.0 = all of it, 0.5 = half as wide)
      and x, y place the crop in the room left over (0 = left/top, 1 = right/bottom). The motion lasts ``total``
      frames (0: ``frames``) of which this shot shows frames ``offset`` onwards (a shot split across plays). The
      picture fills ``rect`` (fractions of the frame; elsewhere ``background``);
    * ``ident``: the named channel's logo, big, slowly growing, on the channel's colours.
    """

    frames: int
    clip: str | None = None
    in_s: float = 0.0
    speed: float = 1.0
    photo: str | None = None
    path: tuple[float, float, float, float, float, float] | None = None
    offset: int = 0
    total: int = 0
    rect: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)
    background: RGB | None = None
    ident: str | None = None
    grade: Grade = field(default=NO_GRADE)
    captions: tuple[Caption, ...] = ()

    @property
    def source(self) -> str:
        if self.clip is not None:
            return f"clip:{self.clip}"
        if self.photo is not None:
            return f"photo:{self.photo}"
        return f"ident:{self.ident}"

    @property
    def motion_frames(self) -> int:
        return self.total or self.frames

    def split(self, n: int, fps: int) -> tuple[Shot, Shot]:
        """The first ``n`` frames and the rest, continuing the same motion."""
        assert 0 < n < self.frames
        total = self.motion_frames
        first = replace(self, frames=n, total=total if self.photo or self.ident else 0)
        if self.clip is not None:
            rest = replace(self, frames=self.frames - n, in_s=self.in_s + n * self.speed / fps)
        else:
            rest = replace(self, frames=self.frames - n, offset=self.offset + n, total=total)
        return first, rest

    def to_dict(self, fps: int) -> dict:
        d: dict = {"frames": self.frames}
        if self.clip is not None:
            d.update(
                {
                    "clip": self.clip,
                    "file": CLIPS[self.clip].file,
                    "in_s": round(self.in_s, 6),
                    "out_s": round(self.in_s + self.frames * self.speed / fps, 6),
                    "speed": self.speed,
                }
            )
        elif self.photo is not None:
            d.update({"photo": self.photo, "path": list(self.path or ())})
            if self.total:
                d.update({"offset": self.offset, "total": self.total})
            if self.rect != (0.0, 0.0, 1.0, 1.0):
                d["rect"] = list(self.rect)
        else:
            d.update({"ident": self.ident, "offset": self.offset, "total": self.motion_frames})
        if self.background is not None:
            d["background"] = list(self.background)
        if not self.grade.identity:
            d["grade"] = self.grade.to_dict()
        if self.captions:
            d["captions"] = [c.to_dict() for c in self.captions]
        return d


# ================================================================================================ helpers
def i420_planes(buf: np.ndarray, w: int, h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Y, U, V views of an I420 buffer of shape (h * 3 / 2, w)."""
    flat = buf.reshape(-1)
    n = w * h
    u = flat[n : n + n // 4].reshape(h // 2, w // 2)
    return flat[:n].reshape(h, w), u, flat[n + n // 4 :].reshape(h // 2, w // 2)


def _rgb_to_i420(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2YUV_I420)


def _even_rect(rect: tuple[float, float, float, float], w: int, h: int) -> tuple[int, int, int, int]:
    """x, y, width, height in pixels, all even, of a rectangle given in fractions of the frame."""
    x0, y0, x1, y1 = rect
    px0, py0 = int(round(x0 * w / 2)) * 2, int(round(y0 * h / 2)) * 2
    px1, py1 = int(round(x1 * w / 2)) * 2, int(round(y1 * h / 2)) * 2
    return px0, py0, max(2, px1 - px0), max(2, py1 - py0)


def fit_rect(clip_w: int, clip_h: int, w: int, h: int) -> tuple[int, int, int, int]:
    """x, y, width, height (all even) of a clip fitted into the frame keeping its aspect; black bars elsewhere."""
    s = min(w / clip_w, h / clip_h)
    fw, fh = min(w, int(round(clip_w * s / 2)) * 2), min(h, int(round(clip_h * s / 2)) * 2)
    return (w - fw) // 4 * 2, (h - fh) // 4 * 2, fw, fh


def _fill_bars(planes, x: int, y: int, fw: int, fh: int) -> None:
    """Paint everything outside the picture rectangle (the bars) black."""
    for k, (plane, value) in enumerate(zip(planes, BLACK_YUV, strict=True)):
        d = 1 if k == 0 else 2
        px, py, pw, ph = x // d, y // d, fw // d, fh // d
        plane[:py] = value
        plane[py + ph :] = value
        plane[py : py + ph, :px] = value
        plane[py : py + ph, px + pw :] = value


def _blend(plane: np.ndarray, ov: np.ndarray, a: np.ndarray) -> None:
    """plane = plane * (1 - a) + ov * a, with ``ov`` and ``a`` (0-255) as uint16 arrays of the plane's shape."""
    p = plane.astype(np.uint16)
    p *= 255 - a
    p += ov * a
    p += 127
    p //= 255
    plane[:] = p


def _gradient_rgb(top: RGB, bottom: RGB, w: int, h: int) -> np.ndarray:
    t = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    img = np.float32(top)[None, None, :] * (1 - t) + np.float32(bottom)[None, None, :] * t
    # a soft diagonal sheen, so a background is never one flat colour
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    sheen = 1.0 + 0.12 * np.exp(-(((xx / w - 0.25) + (yy / h - 0.2)) ** 2) / 0.08)
    return np.clip(img * sheen[..., None], 0, 255).astype(np.uint8)


@lru_cache(maxsize=32)
def _background_i420(colour: RGB, w: int, h: int) -> np.ndarray:
    c = np.float32(colour)
    bottom = tuple(int(v) for v in np.clip(c * 0.72, 0, 255))
    return _rgb_to_i420(_gradient_rgb(colour, bottom, w, h))


def _fit_text(text: str, bw: int, bh: int) -> tuple[float, int, int, int]:
    """Font scale, thickness, text width and height that fit ``text`` into bw x bh pixels."""
    font = cv2.FONT_HERSHEY_DUPLEX
    thick = max(1, int(round(bh / 14)))
    (tw, th), _ = cv2.getTextSize(text, font, 1.0, thick)
    scale = min(0.88 * bw / max(1, tw), 0.62 * bh / max(1, th))
    thick = max(1, int(round(scale * 1.6)))
    (tw, th), _ = cv2.getTextSize(text, font, scale, thick)
    return scale, thick, tw, th


@lru_cache(maxsize=64)
def _caption_layer(captions: tuple[Caption, ...], w: int, h: int):
    """The captions pre-rendered: their even bounding box and Y/U/V overlays with alphas (uint16)."""
    img = np.zeros((h, w, 3), np.uint8)
    alpha = np.zeros((h, w), np.float32)
    for cap in captions:
        x, y, bw, bh = _even_rect(cap.box, w, h)
        if cap.fill is not None:
            img[y : y + bh, x : x + bw] = cap.fill
            alpha[y : y + bh, x : x + bw] = np.maximum(alpha[y : y + bh, x : x + bw], cap.fill_alpha)
        scale, thick, tw, th = _fit_text(cap.text, bw, bh)
        mask = np.zeros((h, w), np.uint8)
        ox = x + (bw - tw) // 2 if cap.align == "center" else x + int(0.06 * bw)
        oy = y + (bh + th) // 2
        cv2.putText(mask, cap.text, (ox, oy), cv2.FONT_HERSHEY_DUPLEX, scale, 255, thick, cv2.LINE_AA)
        m = mask.astype(np.float32) / 255.0
        img[:] = np.clip(img * (1 - m[..., None]) + np.float32(cap.ink) * m[..., None] + 0.5, 0, 255).astype(np.uint8)
        alpha = np.maximum(alpha, m)
    ys, xs = np.nonzero(alpha > 0)
    if len(ys) == 0:
        return None
    x0, y0 = int(xs.min()) // 2 * 2, int(ys.min()) // 2 * 2
    x1, y1 = min(w, (int(xs.max()) + 2) // 2 * 2), min(h, (int(ys.max()) + 2) // 2 * 2)
    oy, ou, ov = i420_planes(_rgb_to_i420(img), w, h)
    a = alpha[y0:y1, x0:x1]
    a_half = cv2.resize(a, ((x1 - x0) // 2, (y1 - y0) // 2), interpolation=cv2.INTER_AREA)

    def u16(x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(x).astype(np.uint16)

    return (
        (x0, y0, x1, y1),
        u16(oy[y0:y1, x0:x1]),
        u16(np.rint(a * 255)),
        u16(ou[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2]),
        u16(ov[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2]),
        u16(np.rint(a_half * 255)),
    )


@lru_cache(maxsize=64)
def _photo_planes(name: str, grade: Grade, scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A photo as graded Y, U, V planes, shrunk by ``scale`` (<= 1) first."""
    img = load_photo(name)
    if scale < 1.0:
        ph, pw = img.shape[:2]
        img = cv2.resize(
            img, (max(2, int(pw * scale) // 2 * 2), max(2, int(ph * scale) // 2 * 2)), interpolation=cv2.INTER_AREA
        )
    ph, pw = img.shape[:2]
    y, u, v = (np.ascontiguousarray(p) for p in i420_planes(_rgb_to_i420(img), pw, ph))
    if not grade.identity:
        ly, lu, lv = grade.luts()
        y, u, v = cv2.LUT(y, ly), cv2.LUT(u, lu), cv2.LUT(v, lv)
    return y, u, v


IDENT_WIDTH = 0.42  # the ident's logo width at its start, fraction of the frame width
IDENT_GROWTH = 0.15  # how much it grows over the ident


@lru_cache(maxsize=8)
def _ident_art(channel: str, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """The ident's background (I420) and the logo mask at its largest size (float32, 0-1)."""
    c = get_channel(channel)
    top, bottom = c.ident_colours
    bg = _rgb_to_i420(_gradient_rgb(top, bottom, w, h))
    lw = int(IDENT_WIDTH * (1 + IDENT_GROWTH) * w) // 2 * 2
    lh = max(2, int(lw * c.aspect) // 2 * 2)
    mask = logo_mask(c, lw, lh).astype(np.float32) / 255.0
    return bg, mask


# ================================================================================================ renderer
class Renderer:
    """Draws shot frames for one output size into :attr:`buf`, an I420 array of shape (h * 3 / 2, w)."""

    def __init__(self, size: tuple[int, int], fps: int):
        self.w, self.h = size
        self.fps = fps
        self.buf = np.empty((self.h * 3 // 2, self.w), np.uint8)
        self.planes = i420_planes(self.buf, self.w, self.h)

    # ---------------------------------------------------------------- whole-frame operations
    def black(self) -> None:
        y, u, v = self.planes
        y[:] = BLACK_YUV[0]
        u[:] = BLACK_YUV[1]
        v[:] = BLACK_YUV[2]

    def dim(self, gain: float) -> None:
        """Scale the picture's brightness and colour towards black by ``gain`` (1: unchanged, 0: black)."""
        n = self.w * self.h
        flat = self.buf.reshape(-1)
        cv2.convertScaleAbs(flat[:n], dst=flat[:n], alpha=gain, beta=16.0 * (1 - gain))
        cv2.convertScaleAbs(flat[n:], dst=flat[n:], alpha=gain, beta=128.0 * (1 - gain))

    # ---------------------------------------------------------------- shots
    def frames(self, shot: Shot, start: int, count: int, always: bool = False) -> Iterator[bool]:
        """Render frames ``start`` .. ``start + count - 1`` of the shot's timeline into :attr:`buf`, one per step.

        Yields True when the buffer holds a new picture, False when it still holds the previous one (a still or a
        repeated source frame; then nothing was drawn, unless ``always``). Frames outside the shot continue its
        motion (clips: earlier or later source frames where the clip has them).
        """
        if count <= 0:
            return
        if shot.clip is not None:
            yield from self._clip_frames(shot, start, count, always)
        elif shot.photo is not None:
            yield from self._photo_frames(shot, start, count, always)
        else:
            yield from self._ident_frames(shot, start, count)

    def _finish(self, shot: Shot) -> None:
        if shot.captions:
            layer = _caption_layer(shot.captions, self.w, self.h)
            if layer is not None:
                (x0, y0, x1, y1), oy, ay, ou, ov, ac = layer
                y, u, v = self.planes
                _blend(y[y0:y1, x0:x1], oy, ay)
                _blend(u[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2], ou, ac)
                _blend(v[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2], ov, ac)

    def _clip_frames(self, shot: Shot, start: int, count: int, always: bool) -> Iterator[bool]:
        assert shot.clip is not None
        clip = CLIPS[shot.clip]
        x, y, fw, fh = fit_rect(clip.width, clip.height, self.w, self.h)
        # bilinear up to a 2x reduction (INTER_AREA is ~5x slower at non-integer ratios), area averaging beyond
        interp = cv2.INTER_AREA if 2 * fw < clip.width else cv2.INTER_LINEAR
        luts = None if shot.grade.identity else shot.grade.luts()
        indices = reader.source_indices(clip, shot.in_s, shot.speed, count, self.fps, start=start)
        last = None
        for _, src in reader.iter_source_frames(clip, indices):
            if src is last and not always:
                yield False
                continue
            last = src
            _fill_bars(self.planes, x, y, fw, fh)
            for k, (d, s) in enumerate(zip(self.planes, reader.plane_views(src), strict=True)):
                q = 1 if k == 0 else 2
                dst = d[y // q : (y + fh) // q, x // q : (x + fw) // q]
                cv2.resize(s, (fw // q, fh // q), dst=dst, interpolation=interp)
                if luts is not None:
                    cv2.LUT(dst, luts[k], dst=dst)
            self._finish(shot)
            yield True

    def _photo_frames(self, shot: Shot, start: int, count: int, always: bool) -> Iterator[bool]:
        assert shot.photo is not None and shot.path is not None
        dx, dy, dw, dh = _even_rect(shot.rect, self.w, self.h)
        full = (dx, dy, dw, dh) == (0, 0, self.w, self.h)
        ph, pw = load_photo(shot.photo).shape[:2]
        z0, x0, y0, z1, x1, y1 = shot.path
        crop_w = min(pw, ph * dw / dh)  # the largest crop of the rectangle's aspect
        s_min = dw / (max(z0, z1) * crop_w)
        scale = 1.0 if s_min >= 0.67 else min(1.0, math.ceil(1.5 * s_min * 20) / 20)
        py, pu, pv = _photo_planes(shot.photo, shot.grade, scale)
        sph, spw = py.shape
        crop_w = min(spw, sph * dw / dh)
        still = (z0, x0, y0) == (z1, x1, y1)
        total = shot.motion_frames
        background = None if full else _background_i420(shot.background or (0, 0, 0), self.w, self.h)
        y_pl, u_pl, v_pl = self.planes
        for j in range(start, start + count):
            if still and j > start and not always:
                yield False
                continue
            t = min(1.0, max(0.0, (shot.offset + j) / max(1, total - 1)))
            e = t * t * (3 - 2 * t)  # ease in and out
            z, px, py_ = z0 + (z1 - z0) * e, x0 + (x1 - x0) * e, y0 + (y1 - y0) * e
            cw = z * crop_w
            ch = cw * dh / dw
            cx, cy = px * (spw - cw), py_ * (sph - ch)
            s = dw / cw
            if background is not None:
                np.copyto(self.buf, background)
            for plane, src, q in ((y_pl, py, 1), (u_pl, pu, 2), (v_pl, pv, 2)):
                m = np.float32([[s, 0, -(cx / q) * s], [0, s, -(cy / q) * s]])
                dst = plane[dy // q : (dy + dh) // q, dx // q : (dx + dw) // q]
                cv2.warpAffine(
                    src, m, (dw // q, dh // q), dst=dst, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
                )
            self._finish(shot)
            yield True

    def _ident_frames(self, shot: Shot, start: int, count: int) -> Iterator[bool]:
        assert shot.ident is not None
        channel = get_channel(shot.ident)
        bg, mask = _ident_art(shot.ident, self.w, self.h)
        cy_, cu, cv_ = rgb_to_yuv(channel.colour)
        mh, mw = mask.shape
        total = shot.motion_frames
        y_pl, u_pl, v_pl = self.planes
        # the logo's region: centred, a little above the middle; even-aligned
        rx0, ry0 = (self.w - mw) // 4 * 2, max(0, int(0.42 * self.h - mh / 2)) // 2 * 2
        rw, rh = min(mw, self.w - rx0) // 2 * 2, min(mh, self.h - ry0) // 2 * 2
        for j in range(start, start + count):
            t = min(1.0, max(0.0, (shot.offset + j) / max(1, total - 1)))
            s = (1 + IDENT_GROWTH * t) / (1 + IDENT_GROWTH)
            m = np.float32([[s, 0, (1 - s) * mw / 2], [0, s, (1 - s) * mh / 2]])
            a = cv2.warpAffine(mask, m, (rw, rh), flags=cv2.INTER_LINEAR) * 0.92
            np.copyto(self.buf, bg)
            ya = np.rint(a * 255).astype(np.uint16)
            ah = np.rint(cv2.resize(a, (rw // 2, rh // 2), interpolation=cv2.INTER_AREA) * 255).astype(np.uint16)
            _blend(y_pl[ry0 : ry0 + rh, rx0 : rx0 + rw], np.full(ya.shape, round(cy_), np.uint16), ya)
            sl = (slice(ry0 // 2, (ry0 + rh) // 2), slice(rx0 // 2, (rx0 + rw) // 2))
            _blend(u_pl[sl], np.full(ah.shape, round(cu), np.uint16), ah)
            _blend(v_pl[sl], np.full(ah.shape, round(cv_), np.uint16), ah)
            self._finish(shot)
            yield True
