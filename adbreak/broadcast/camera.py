"""The camera-view variant: the clean broadcast as a fixed camera (a Pi camera on a shelf) sees it on a TV in a room.

Each clean frame is mapped into the TV screen's quadrilateral (a slightly skewed perspective: the camera stands a
little to the left of and below the TV's axis) over a static room: a lit wall, a blurred photo in a frame, a
cabinet, the TV's bezel and stand. The camera then adds what a cheap camera adds: the screen's raised black level
and colour cast, a little glare on the glass, optical blur, vignetting, a brightness flicker (mains-powered lights
at twice the mains frequency, aliased by a camera clock that runs a hair off the nominal frame rate: a slow beat of
a few percent) and sensor noise.

Everything about the camera and the room comes from a :class:`CameraProfile`, which is independent of the
broadcast's seed, so a ``train`` and a ``heldout`` recording are "taken by the same camera". Only the sensor noise
is random per frame; it is drawn from the generator the builder passes in (derived from the broadcast seed).
Sensor noise is drawn per frame as two random offsets into a seeded bank of Gaussian noise (added and subtracted
halves), so every frame gets a different noise field at a fraction of the cost of drawing 1.5 M normals a frame.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from adbreak.errors import AdbreakError

Point = tuple[float, float]


@dataclass(frozen=True)
class CameraProfile:
    """A fixed camera looking at a TV. Lengths in pixels are for a 960 px wide frame and scale with the width."""

    name: str
    # TV screen corners as fractions of the frame (x / width, y / height): top-left, top-right, bottom-right,
    # bottom-left
    screen_corners: tuple[Point, Point, Point, Point]
    bezel: float = 0.016  # bezel width as a fraction of the screen width
    blur_sigma_px: float = 1.1  # optical blur (Gaussian sigma)
    noise_sigma: float = 3.5  # sensor noise, 8-bit levels
    flicker_amplitude: float = 0.03  # relative brightness swing
    mains_hz: float = 50.0  # lights flicker at twice this
    clock_error: float = 0.0025  # camera frame clock vs nominal: 100 Hz beats at ~0.25 Hz against 25 fps
    vignette: float = 0.22  # brightness lost in the frame corners
    glare: float = 26.0  # 8-bit levels added at the centre of the glare spot
    glare_center: Point = (0.30, 0.22)  # on the screen, as fractions of its width and height
    glare_radius: float = 0.28  # fraction of the screen width
    screen_black: float = 16.0  # what a black screen shows (room light on the glass), 8-bit levels
    screen_white: float = 232.0  # what full white shows
    tint_bgr: tuple[float, float, float] = (1.05, 1.0, 0.93)  # white balance of the camera against the TV
    room_seed: int = 7  # the room's texture: part of the profile, not of the broadcast

    @classmethod
    def living_room(cls) -> CameraProfile:
        """The default: a TV filling about 70% of the frame width, seen slightly from the left and below."""
        return cls(
            name="living-room",
            screen_corners=((0.150, 0.135), (0.842, 0.175), (0.848, 0.795), (0.146, 0.842)),
        )

    def corners_px(self, size: tuple[int, int]) -> list[list[float]]:
        """The screen corners in output pixels (TL, TR, BR, BL); pixel centres at integer coordinates."""
        w, h = size
        return [[round(fx * (w - 1), 2), round(fy * (h - 1), 2)] for fx, fy in self.screen_corners]

    def to_dict(self, size: tuple[int, int]) -> dict:
        d = asdict(self)
        d["screen_corners"] = [list(p) for p in self.screen_corners]
        d["screen_corners_px"] = self.corners_px(size)
        return d


def _skimage_photo() -> np.ndarray:
    try:
        from skimage import data
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise AdbreakError("the camera view needs scikit-image for its room: pip install 'adbreak[train]'") from exc
    return cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR)


class CameraView:
    """Renders camera frames for one profile, frame size and frame rate."""

    NOISE_PAD = 64

    def __init__(self, profile: CameraProfile, size: tuple[int, int], fps: int, rng: np.random.Generator):
        self.profile = profile
        self.size = size
        self.fps = fps
        self.rng = rng
        w, h = size
        scale = w / 960.0
        src = np.float32([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]])
        dst = np.float32(profile.corners_px(size))
        if abs(cv2.contourArea(dst)) < 0.05 * w * h:
            raise AdbreakError("camera profile: the screen corners enclose almost nothing")
        self.matrix = cv2.getPerspectiveTransform(src, dst)
        self.background = self._room(w, h, scale)
        # the screen's bounding box, and the warp into it alone (the rest of the frame is the static room)
        x0, y0 = (max(0, int(math.floor(v)) - 1) for v in dst.min(axis=0))
        x1, y1 = min(w, int(math.ceil(dst[:, 0].max())) + 2), min(h, int(math.ceil(dst[:, 1].max())) + 2)
        self.box = (x0, y0, x1, y1)
        # where each box pixel samples the clean picture: precomputed once (a remap is ~2x faster than a warp)
        inverse = np.linalg.inv(np.float64([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]]) @ self.matrix)
        yy, xx = np.mgrid[0 : y1 - y0, 0 : x1 - x0].astype(np.float64)
        p = np.stack([xx, yy, np.ones_like(xx)], axis=-1) @ inverse.T
        self.maps = cv2.convertMaps(
            (p[..., 0] / p[..., 2]).astype(np.float32), (p[..., 1] / p[..., 2]).astype(np.float32), cv2.CV_16SC2
        )
        # per-pixel response, applied per frame as out = out * gain + offset: on the screen the TV's black level,
        # white level and the camera's colour cast; everywhere the vignetting; the glare on the glass
        screen = cv2.warpPerspective(np.ones((h, w), np.float32), self.matrix, (w, h), flags=cv2.INTER_LINEAR)
        screen = screen[..., None]
        tint = np.float32(profile.tint_bgr)[None, None, :]
        vignette = self._vignette(w, h)[..., None]
        gain = vignette * (1 - screen + screen * tint * (profile.screen_white - profile.screen_black) / 255.0)
        offset = vignette * (screen * tint * profile.screen_black + self._glare(w, h)[..., None])
        self.gain_max = float(gain.max())
        self.gain = np.rint(gain / self.gain_max * 255).astype(np.uint8)
        self.offset = np.clip(np.rint(offset), 0, 255).astype(np.uint8)
        self.blur_sigma = profile.blur_sigma_px * scale
        self.blur_ksize = 2 * max(1, int(round(2 * self.blur_sigma))) + 1  # +-2 sigma
        # only the screen and its surroundings need blurring per frame: the room is static and already soft
        m = int(math.ceil(2 * self.blur_sigma)) + 2
        self.blur_box = (max(0, x0 - m), max(0, y0 - m), min(w, x1 + m), min(h, y1 + m))
        # noise bank: positive and negative halves of one Gaussian field, indexed at two random offsets per frame
        pad = self.NOISE_PAD
        field = np.rint(rng.standard_normal((h + pad, w + pad, 3), dtype=np.float32) * profile.noise_sigma)
        field = np.clip(field, -127, 127)
        self.noise_pos = np.maximum(field, 0).astype(np.uint8)
        self.noise_neg = np.maximum(-field, 0).astype(np.uint8)
        self._buffers = (np.empty((h, w, 3), np.uint8), np.empty((h, w, 3), np.uint8))

    # ---------------------------------------------------------------- static parts
    def _screen_quad(self, inset: float) -> np.ndarray:
        """The screen outline grown by ``inset`` (fraction of the screen width) on the TV's own plane."""
        w, h = self.size
        e = inset * w
        pts = np.float32([[[-e, -e]], [[w - 1 + e, -e]], [[w - 1 + e, h - 1 + e]], [[-e, h - 1 + e]]])
        return cv2.perspectiveTransform(pts, self.matrix).reshape(4, 2)

    def _room(self, w: int, h: int, scale: float) -> np.ndarray:
        room_rng = np.random.default_rng(self.profile.room_seed)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        # a warm wall lit from the top left, with soft blotches
        light = 0.75 + 0.35 * np.exp(-(((xx / w - 0.1) ** 2) / 0.35 + ((yy / h - 0.0) ** 2) / 0.5))
        blotch = cv2.GaussianBlur(room_rng.standard_normal((h, w)).astype(np.float32), (0, 0), 25 * scale)
        blotch *= 0.06 / max(1e-6, float(blotch.std()))
        wall = np.float32([120, 142, 160])  # BGR
        room = wall[None, None, :] * (light * (1 + blotch))[..., None]
        # a framed photo on the wall, left of the TV, out of focus
        photo = _skimage_photo()
        px0, py0, pw, ph = int(0.012 * w), int(0.12 * h), int(0.105 * w), int(0.24 * h)
        frame_t = max(2, int(round(5 * scale)))
        room[py0 - frame_t : py0 + ph + frame_t, px0 - frame_t : px0 + pw + frame_t] = (40, 52, 70)
        room[py0 : py0 + ph, px0 : px0 + pw] = cv2.resize(photo, (pw, ph), interpolation=cv2.INTER_AREA) * 0.8
        # a cabinet along the bottom
        cab_y = int(0.9 * h)
        room[cab_y:] = np.float32([38, 55, 78]) * (0.85 + 0.15 * (xx[cab_y:] / w))[..., None]
        room[cab_y : cab_y + max(2, int(3 * scale))] = (70, 92, 118)
        room = cv2.GaussianBlur(np.clip(room, 0, 255), (0, 0), 2.5 * scale)  # the room is out of focus
        room = room.astype(np.uint8)
        # the TV: stand, bezel (dark plastic with a lighter top edge), then the screen goes on top per frame
        outer = self._screen_quad(self.profile.bezel)
        bl, br = outer[3], outer[2]
        cx = (bl[0] + br[0]) / 2
        sw = 0.09 * (br[0] - bl[0])
        stand = np.int32(
            [
                [cx - sw, (bl[1] + br[1]) / 2],
                [cx + sw, (bl[1] + br[1]) / 2],
                [cx + 1.6 * sw, cab_y + 2],
                [cx - 1.6 * sw, cab_y + 2],
            ]
        )
        cv2.fillConvexPoly(room, stand, (22, 22, 24), cv2.LINE_AA)
        cv2.fillConvexPoly(room, np.int32(np.round(outer)), (18, 18, 20), cv2.LINE_AA)
        top = np.int32(np.round([outer[0], outer[1], *self._screen_quad(self.profile.bezel * 0.45)[[1, 0]]]))
        cv2.fillConvexPoly(room, top, (40, 40, 44), cv2.LINE_AA)
        cv2.fillConvexPoly(room, np.int32(np.round(self._screen_quad(0.0))), (14, 14, 15), cv2.LINE_AA)
        # a small standby LED under the screen
        led = outer[2] * 0.2 + outer[3] * 0.8
        cv2.circle(
            room,
            (int(led[0]), int(led[1] - 0.3 * self.profile.bezel * w)),
            max(1, int(2 * scale)),
            (60, 60, 200),
            -1,
            cv2.LINE_AA,
        )
        return room

    def _glare(self, w: int, h: int) -> np.ndarray:
        p = self.profile
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        cx, cy = p.glare_center[0] * w, p.glare_center[1] * h
        r = p.glare_radius * w
        spot = p.glare * np.exp(-(((xx - cx) / r) ** 2 + ((yy - cy) / (0.6 * r)) ** 2))
        spot += 0.25 * p.glare * np.clip(1.0 - (xx / w + yy / h), 0, 1)  # a faint sheen towards the top left
        return cv2.warpPerspective(spot.astype(np.float32), self.matrix, (w, h), flags=cv2.INTER_LINEAR)

    def _vignette(self, w: int, h: int) -> np.ndarray:
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        r2 = ((xx - (w - 1) / 2) / (w / 2)) ** 2 + ((yy - (h - 1) / 2) / (h / 2)) ** 2  # 2 at the corners
        return np.clip(1.0 - self.profile.vignette * (r2 / 2.0), 0, 1).astype(np.float32)

    # ---------------------------------------------------------------- per frame
    def flicker(self, index: int) -> float:
        """Brightness gain of frame ``index``: lights at 2x mains sampled by a camera clock slightly off nominal."""
        p = self.profile
        t = index / (self.fps * (1.0 + p.clock_error))
        return 1.0 + p.flicker_amplitude * math.sin(2 * math.pi * 2 * p.mains_hz * t)

    def render(self, clean_bgr: np.ndarray, index: int) -> np.ndarray:
        """The camera frame (BGR uint8, output size) for clean frame number ``index``.

        The result lives in a buffer that the next call overwrites: copy it to keep it.
        """
        w, h = self.size
        x0, y0, x1, y1 = self.box
        room, out = self._buffers
        np.copyto(room, self.background)
        cv2.remap(
            clean_bgr,
            self.maps[0],
            self.maps[1],
            cv2.INTER_LINEAR,
            dst=room[y0:y1, x0:x1],
            borderMode=cv2.BORDER_TRANSPARENT,
        )
        cv2.multiply(room, self.gain, dst=out, scale=self.flicker(index) * self.gain_max / 255.0)
        cv2.add(out, self.offset, dst=out)
        bx0, by0, bx1, by1 = self.blur_box
        roi = out[by0:by1, bx0:bx1]
        cv2.GaussianBlur(roi, (self.blur_ksize, self.blur_ksize), self.blur_sigma, dst=roi)
        pad = self.NOISE_PAD
        ay, ax, by, bx = (int(v) for v in self.rng.integers(0, pad, 4))
        cv2.add(out, self.noise_pos[ay : ay + h, ax : ax + w], dst=out)
        cv2.subtract(out, self.noise_neg[by : by + h, bx : bx + w], dst=out)
        return out
