"""The pixel work of the logo learner: corner regions, polarity edges, the mask search and the on/off threshold.

Everything here is a pure function of its arguments (the state lives in :mod:`edge.logo.learner`).

Edges are signed: a pixel's edge across x is the luma of the pixel after it minus the pixel before it (two pixels
apart, as in Comskip), kept as +1 / -1 where that difference reaches the threshold and 0 elsewhere; the same across
y. A white logo is brighter than whatever it is blended over, so each of its edges keeps one sign on every
background, while the edges of moving content and noise take either sign and average out. The persistence maps are
running means of these signs, in [-1, 1]: near +-1 where an edge of one polarity is (almost) always there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

# |difference| quartile of zero-mean Gaussian noise, in units of its standard deviation (difference of two pixels)
_Q25_PER_SIGMA = 0.3186


@dataclass(frozen=True)
class Corners:
    """The four corner regions of an ``height`` x ``width`` screen: top-left, top-right, bottom-left, bottom-right."""

    height: int
    width: int
    ch: int
    cw: int

    @classmethod
    def for_shape(cls, height: int, width: int, corner_w: float, corner_h: float) -> Corners:
        cw = min(width, max(16, int(round(width * corner_w))))
        ch = min(height, max(16, int(round(height * corner_h))))
        return cls(height, width, ch, cw)

    def origin(self, k: int) -> tuple[int, int]:
        """(x, y) of corner ``k``'s top-left pixel on the screen."""
        return (0 if k % 2 == 0 else self.width - self.cw), (0 if k < 2 else self.height - self.ch)

    def stack(self, gray: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The four regions as one (4, ch, cw) int16 array."""
        if out is None:
            out = np.empty((4, self.ch, self.cw), np.int16)
        for k in range(4):
            x, y = self.origin(k)
            out[k] = gray[y : y + self.ch, x : x + self.cw]
        return out


def gradients(regions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Luma differences two pixels apart across x and y (int16, same shape; 0 on the outermost rows/columns)."""
    gx = np.empty_like(regions)
    gy = np.empty_like(regions)
    np.subtract(regions[..., :, 2:], regions[..., :, :-2], out=gx[..., :, 1:-1])
    np.subtract(regions[..., 2:, :], regions[..., :-2, :], out=gy[..., 1:-1, :])
    gx[..., :, 0] = gx[..., :, -1] = 0
    gy[..., 0, :] = gy[..., -1, :] = 0
    return gx, gy


def edge_thresholds(gx: np.ndarray, edge_min: float, noise_k: float, edge_max: float) -> np.ndarray:
    """Per-region edge threshold (shape (n, 1, 1)): ``noise_k`` times the region's noise, within the bounds.

    The noise is read from the flattest quarter of the region's horizontal differences (a sparse sample): on a
    clean picture that quarter is exactly flat and the threshold stays at ``edge_min``; through a camera it holds
    the sensor noise left after blur and compression.
    """
    n = gx.shape[0]
    sample = np.minimum(np.abs(gx[:, 1::3, 1:-1:3]), 63).reshape(n, -1)
    sample += (np.arange(n, dtype=sample.dtype) * 64)[:, None]  # one histogram of 64 bins per region
    cum = np.cumsum(np.bincount(sample.ravel(), minlength=64 * n).reshape(n, 64), axis=1)
    q25 = np.argmax(cum >= (cum[:, -1:] + 3) // 4, axis=1).astype(np.float32)
    thr = np.clip(noise_k * q25 / _Q25_PER_SIGMA, edge_min, edge_max)
    return thr.reshape(-1, 1, 1)


def edge_codes(g: np.ndarray, thr: np.ndarray | float) -> np.ndarray:
    """The signed edges of ``g`` plus one, as uint8: 2 where ``g`` >= ``thr``, 0 where ``g`` <= -``thr``, else 1."""
    pos = (g >= thr).view(np.uint8)
    neg = (g <= -thr).view(np.uint8)
    return pos - neg + np.uint8(1)  # wraps through 255 where neg: 0 - 1 + 1 = 0


@dataclass
class Candidate:
    """A logo found in the persistence maps: its corner, box, and the signed edge mask over the box."""

    corner: int
    box: tuple[int, int, int, int]
    """x0, y0, x1, y1 on the screen (x1, y1 exclusive)."""
    sign_x: np.ndarray
    """(h, w) int8: the expected sign of each mask pixel's x difference, 0 where it is not in the x mask."""
    sign_y: np.ndarray
    weight_x: np.ndarray
    """(h, w) float32: how persistent each mask pixel was (0 outside the mask); presence weighs pixels by it."""
    weight_y: np.ndarray
    share: float
    """Mean persistence of the mask's pixels."""
    _probes: dict = field(default_factory=dict, repr=False, compare=False)

    def probe(self, width: int) -> Probe:
        """The mask as flat pixel indices into a ``width``-wide screen (cached): what presence reads per frame."""
        p = self._probes.get(width)
        if p is None:
            x0, y0 = self.box[0], self.box[1]
            parts = []
            for sign, weight, step in ((self.sign_x, self.weight_x, 1), (self.sign_y, self.weight_y, width)):
                ys, xs = np.nonzero(sign)
                at = (ys + y0) * width + (xs + x0)
                parts.append((at + step, at - step, sign[ys, xs].astype(np.float32), weight[ys, xs]))
            plus, minus, sgn, wgt = (np.concatenate(v) for v in zip(*parts, strict=True))
            total = float(wgt.sum())
            p = self._probes[width] = Probe(plus, minus, sgn, (wgt / total if total > 0 else wgt).astype(np.float32))
        return p

    @property
    def pixels(self) -> int:
        return int(np.count_nonzero(self.sign_x) + np.count_nonzero(self.sign_y))

    @property
    def mask(self) -> np.ndarray:
        """(h, w) bool: the pixels that are edges of the logo in either direction."""
        return (self.sign_x != 0) | (self.sign_y != 0)

    def iou(self, other: Candidate) -> float:
        return box_iou(self.box, other.box)


@dataclass(frozen=True)
class Probe:
    """A logo's mask pixels as flat screen indices: the pixel after and before each (two apart, across the
    pixel's edge direction), the edge's learned sign, and the pixel's weight (summing to 1)."""

    plus: np.ndarray
    minus: np.ndarray
    sign: np.ndarray
    weight: np.ndarray


def box_iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _without_long_lines(mx: np.ndarray, my: np.ndarray, line_y: int, line_x: int) -> tuple[np.ndarray, np.ndarray]:
    """Remove straight lines longer than a logo's box from one corner's x-edge and y-edge masks (uint8 0/1):
    a pillarbox border (edges across x, running down) and a letterbox border (across y, running along)."""
    if line_y <= mx.shape[0]:
        mx = mx & ~cv2.morphologyEx(mx, cv2.MORPH_OPEN, np.ones((line_y, 1), np.uint8))
    if line_x <= my.shape[1]:
        my = my & ~cv2.morphologyEx(my, cv2.MORPH_OPEN, np.ones((1, line_x), np.uint8))
    return mx, my


def _supported(mx: np.ndarray, my: np.ndarray, radius: int, need: int) -> tuple[np.ndarray, np.ndarray]:
    """x-edge pixels with >= ``need`` y-edge pixels within ``radius``, and vice versa (uint8 0/1)."""
    size = (2 * radius + 1, 2 * radius + 1)
    ny = cv2.boxFilter(my, cv2.CV_16U, size, normalize=False, borderType=cv2.BORDER_CONSTANT)
    nx = cv2.boxFilter(mx, cv2.CV_16U, size, normalize=False, borderType=cv2.BORDER_CONSTANT)
    return mx & (ny >= need).view(np.uint8), my & (nx >= need).view(np.uint8)


def _touches(box, inner: tuple[bool, bool, bool, bool], corners: Corners):
    """Whether a box (corner coordinates; arrays or ints) reaches one of the corner region's inner sides."""
    x0, y0, x1, y1 = box
    return (
        (inner[0] & (x0 <= 2))
        | (inner[1] & (y0 <= 2))
        | (inner[2] & (x1 >= corners.cw - 2))
        | (inner[3] & (y1 >= corners.ch - 2))
    )


_GROUP_KERNEL = np.ones((5, 5), np.uint8)  # strokes up to 4 px apart are one group
_LEVEL_STEP = 0.05  # MythTV-style rising thresholds: share levels tried for a group too large for a logo
_MAX_LEVEL = 0.97


def find_logo(
    sx: np.ndarray,
    sy: np.ndarray,
    corners: Corners,
    cfg,
    *,
    only_corner: int | None = None,
    share: float | None = None,
) -> Candidate | None:
    """The logo in the persistence maps ``sx``, ``sy`` ((4, ch, cw), signed, in [-1, 1]), or None.

    Pixels persistent in at least ``share`` (default ``share_min``) of the samples are kept, lines longer than a logo
    removed (:func:`_without_long_lines`) and the survivors grouped (a 5x5 dilation joins a logo's strokes). A group
    is a logo when it has edges across both directions, its box has a logo's size and density and it does not reach
    the corner region's inner sides (scene content continues
    beyond them; a logo sits inside the corner). A group too large for a logo is searched again at a higher share,
    as MythTV tries rising thresholds until a plausible logo appears: a logo persists in more frames than the scene
    structure it is joined to. Of all plausible groups, the one with the largest persistent edge mass (the sum of
    its pixels' persistence) wins; its mask is every kept pixel inside its box.
    """
    ax, ay = np.abs(sx), np.abs(sy)
    h_max = max(4, int(cfg.max_box_h * corners.height))
    w_max = max(4, int(cfg.max_box_w * corners.width))
    area_max = cfg.max_box_area * corners.height * corners.width
    base = cfg.share_min if share is None else share
    best: tuple | None = None  # (mass, corner, box in corner coordinates, x mask, y mask)
    for k in range(4) if only_corner is None else (only_corner,):
        ox, oy = corners.origin(k)
        # the sides of this corner region that face the screen's centre (content crossing them is not a logo)
        inner = (ox > 0, oy > 0, ox + corners.cw < corners.width, oy + corners.ch < corners.height)
        # the window still searched (corner coordinates) and, inside it, the pixels still in play
        wx0, wy0, wx1, wy1 = 0, 0, corners.cw, corners.ch
        allowed: np.ndarray | None = None
        level = base
        while level <= _MAX_LEVEL:
            win = (slice(wy0, wy1), slice(wx0, wx1))
            px, py = ax[k][win], ay[k][win]
            mx = (px >= level).view(np.uint8)
            my = (py >= level).view(np.uint8)
            if allowed is not None:
                mx = mx & allowed
                my = my & allowed
            if np.count_nonzero(mx) + np.count_nonzero(my) < cfg.min_pixels:
                break
            kx, ky = _without_long_lines(mx, my, h_max + 1, w_max + 1)
            # Comskip removes isolated lines: only pixels with edges across the other direction nearby group and
            # size a logo (text and shapes have both; a border running past the logo has one), and a group needs
            # both directions; the logo's own straight strokes stay in its mask inside the box
            ux, uy = _supported(kx, ky, cfg.cross_radius, cfg.cross_min)
            m = ux | uy
            if np.count_nonzero(m) < cfg.min_pixels:
                break
            count, labels, stats, _ = cv2.connectedComponentsWithStats(cv2.dilate(m, _GROUP_KERNEL), connectivity=8)
            on = m.view(bool)
            lab = labels[on]
            pixels = np.bincount(lab, minlength=count)
            across_x = np.bincount(labels[ux.view(bool)], minlength=count)
            across_y = np.bincount(labels[uy.view(bool)], minlength=count)
            line = np.minimum(across_x, across_y) < cfg.cross_share * pixels
            mass = np.bincount(lab, weights=np.maximum(px * ux, py * uy)[on], minlength=count)
            # each group's box in corner coordinates; the dilation grew it by 2 px where it was not at the border
            x, y = stats[:, cv2.CC_STAT_LEFT] + wx0, stats[:, cv2.CC_STAT_TOP] + wy0
            x1 = x + stats[:, cv2.CC_STAT_WIDTH]
            y1 = y + stats[:, cv2.CC_STAT_HEIGHT]
            x0, y0 = x + 2 * (x > 0), y + 2 * (y > 0)
            x1, y1 = x1 - 2 * (x1 < corners.cw), y1 - 2 * (y1 < corners.ch)
            w, h = x1 - x0, y1 - y0
            touches = _touches((x0, y0, x1, y1), inner, corners)
            big = (pixels >= cfg.min_pixels) & ~line & ((w > w_max) | (h > h_max) | (w * h > area_max) | touches)
            big[0] = False
            fit = (pixels >= cfg.min_pixels) & ~big & ~line & (pixels >= cfg.min_density * w * h) & (w >= 3) & (h >= 3)
            fit[0] = False
            if fit.any():
                j = int(np.flatnonzero(fit)[np.argmax(mass[fit])])
                # pieces of the same logo split where a long straight stroke had no support (the middle of an
                # outline's sides) join it while the whole still fits a logo's box
                box, total = (int(x0[j]), int(y0[j]), int(x1[j]), int(y1[j])), float(mass[j])
                free = ~big & ~line & (pixels > 0)
                free[[0, j]] = False
                gap = cfg.cross_radius
                while free.any():
                    near = (
                        free & (x0 <= box[2] + gap) & (x1 >= box[0] - gap) & (y0 <= box[3] + gap) & (y1 >= box[1] - gap)
                    )
                    if not near.any():
                        break
                    i = int(np.flatnonzero(near)[np.argmax(mass[near])])
                    free[i] = False
                    union = (
                        min(box[0], int(x0[i])),
                        min(box[1], int(y0[i])),
                        max(box[2], int(x1[i])),
                        max(box[3], int(y1[i])),
                    )
                    uw, uh = union[2] - union[0], union[3] - union[1]
                    if uw <= w_max and uh <= h_max and uw * uh <= area_max and not _touches(union, inner, corners):
                        box, total = union, total + float(mass[i])
                if best is None or total > best[0]:
                    bx0, by0, bx1, by1 = box
                    inside = (slice(by0 - wy0, by1 - wy0), slice(bx0 - wx0, bx1 - wx0))
                    best = (total, k, box, kx[inside].copy(), ky[inside].copy())
            if not big.any():
                break
            # too large, or scene content reaching the inner sides: look again at a higher share, only there
            sel = np.flatnonzero(big)
            nx0, ny0 = int(stats[sel, cv2.CC_STAT_LEFT].min()), int(stats[sel, cv2.CC_STAT_TOP].min())
            nx1 = int((stats[sel, cv2.CC_STAT_LEFT] + stats[sel, cv2.CC_STAT_WIDTH]).max())
            ny1 = int((stats[sel, cv2.CC_STAT_TOP] + stats[sel, cv2.CC_STAT_HEIGHT]).max())
            allowed = big[labels[ny0:ny1, nx0:nx1]].view(np.uint8)
            wx0, wy0, wx1, wy1 = wx0 + nx0, wy0 + ny0, wx0 + nx1, wy0 + ny1
            level += _LEVEL_STEP
    if best is None:
        return None
    _, k, (x0, y0, x1, y1), kx, ky = best
    win = (slice(y0, y1), slice(x0, x1))
    # the mask: every pixel kept at the winning level inside the box (text inside an outline included)
    keep_x, keep_y = kx.view(bool), ky.view(bool)
    sign_x = (np.sign(sx[k][win]) * keep_x).astype(np.int8)
    sign_y = (np.sign(sy[k][win]) * keep_y).astype(np.int8)
    weight_x = (ax[k][win] * keep_x).astype(np.float32)
    weight_y = (ay[k][win] * keep_y).astype(np.float32)
    n = int(keep_x.sum() + keep_y.sum())
    mean = float((weight_x.sum() + weight_y.sum()) / max(1, n))
    ox, oy = corners.origin(k)
    return Candidate(k, (ox + x0, oy + y0, ox + x1, oy + y1), sign_x, sign_y, weight_x, weight_y, mean)


def presence_score(gray: np.ndarray, cand: Candidate, floor: float) -> float:
    """How well the edges under the logo's mask match the logo in ``gray``, in [0, 1].

    The normalised correlation of each mask pixel's luma difference (two pixels apart, across its edge direction)
    with its learned sign, weighted by the pixel's persistence: 1 when every edge is there with its sign, whatever
    its strength (so a transparent logo that a bright sky or a camera's blur has made faint still counts fully),
    about 0 on unrelated content (a logo's strokes have edges of both signs), clipped at 0 below. ``floor`` (luma
    levels) joins the differences' energy, so a box with hardly any contrast (a black separator, compression noise)
    reads as no logo.
    """
    p = cand.probe(gray.shape[1])
    flat = gray.reshape(-1)  # a view for a contiguous frame (a copy otherwise)
    g = flat[p.plus].astype(np.float32)
    g -= flat[p.minus]
    energy = float((g * g) @ p.weight) + floor * floor
    g *= p.sign
    return max(0.0, float(g @ p.weight) / math.sqrt(energy))


@dataclass(frozen=True)
class Threshold:
    """The on/off split of the raw presence scores: the low mode, the valley between the modes, the high mode."""

    low: float
    valley: float
    high: float
    bimodal: bool

    def map(self, score: float) -> float:
        """Raw score -> presence in [0, 1]: the low mode -> 0, the valley -> 0.5, the high mode -> 1 (linear)."""
        if score >= self.valley:
            span = max(1e-6, self.high - self.valley)
            return min(1.0, 0.5 + 0.5 * (score - self.valley) / span)
        span = max(1e-6, self.valley - self.low)
        return max(0.0, 0.5 - 0.5 * (self.valley - score) / span)


def split_scores(scores: np.ndarray, cfg, reference: float) -> Threshold:
    """The valley of the bimodal histogram of recent raw scores (MythTV's way of setting the logo threshold).

    Otsu's split locates the two modes; the valley is the emptiest bin of the smoothed histogram between their
    centres, kept within ``off_spread_k`` spreads of the low mode. With one mode only (no ad break seen yet) the
    threshold sits ``prior_valley`` of the way from 0 to ``reference``, the logo's typical score.
    """
    prior = Threshold(0.0, cfg.prior_valley * reference, reference, False)
    if scores.size < 20:
        return prior
    bins = cfg.score_bins
    hist, _ = np.histogram(np.clip(scores, 0.0, 1.0), bins=bins, range=(0.0, 1.0))
    p = hist.astype(np.float64) / scores.size
    centres = (np.arange(bins) + 0.5) / bins
    # Otsu: the split that maximises the between-class variance
    w0 = np.cumsum(p)
    mu = np.cumsum(p * centres)
    mu_t = mu[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mu_t * w0 - mu) ** 2 / (w0 * (1.0 - w0))
    between[~np.isfinite(between)] = -1.0
    cut = int(np.argmax(between[:-1]))
    lo_w, hi_w = w0[cut], 1.0 - w0[cut]
    if lo_w < cfg.min_mode_share or hi_w < cfg.min_mode_share:
        return prior
    lo_m = float(mu[cut] / lo_w)
    hi_m = float((mu_t - mu[cut]) / hi_w)
    if hi_m - lo_m < cfg.min_mode_gap:
        return prior
    smooth = np.convolve(p, np.array([1.0, 2.0, 3.0, 2.0, 1.0]) / 9.0, mode="same")
    a, b = int(lo_m * bins), int(hi_m * bins)
    if b - a < 2:
        return Threshold(lo_m, (lo_m + hi_m) / 2, hi_m, True)
    inner = smooth[a + 1 : b]
    low_bins = np.flatnonzero(inner <= inner.min() + 1e-12) + a + 1
    valley = float(centres[low_bins].mean())  # the middle of a flat-bottomed valley
    # scores without the logo cluster tightly (content averages out), scores with it spread downwards (a faint
    # logo on a bright scene): the threshold stays within a few spreads of the absent mode
    lo_sd = math.sqrt(max(0.0, float((p[: cut + 1] * (centres[: cut + 1] - lo_m) ** 2).sum() / lo_w)))
    near = lo_m + max(cfg.min_mode_gap, cfg.off_spread_k * lo_sd)
    return Threshold(lo_m, min(valley, near), hi_m, True)
