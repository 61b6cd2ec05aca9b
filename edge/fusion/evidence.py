"""From per-frame cue values to blocks: the stretches between cut points, each with its features.

A *cut point* is where a break or a spot can begin or end: the edges of a run of separator frames (black, uniform
or a dip that does not reach black), a scene cut with silence next to it (spots joined without black), optionally
the moment the picture's bars change (``aspect_cuts``), and the edges of a run that matches a remembered ad for at least
``repeat_min_s``.
Between two cut points lies a *block*. A program segment is usually one long block (its scene cuts are not cut
points unless the sound drops out with them), a break a row of short ones: its spots and separators. This is what
makes a cold open (a program stretch without the logo) decidable: it shares its block with the program it opens,
and the block's logo share is the program's.

Everything here is pure numpy over arrays of frames; :func:`make_blocks` is called on the whole recording offline
and on the recent window live.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from edge.fusion.config import FusionConfig

CUE_COLUMNS: tuple[str, ...] = (
    "p_ad", "logo", "black", "dip", "silence", "loudness", "cut", "aspect", "repeat", "luma",
)
"""The per-frame values the fusion reads (the scores file's columns); any may be NaN (not measured)."""

SECOND_FEATURES: tuple[str, ...] = ("logo", "logo_framed", "p_ad", "repeat")
"""Block features whose evidence counts once per second of the block (``logo_framed`` only for ad: the logo inside
a block framed by separators may be the channel's own promo; see :mod:`edge.fusion.calibration`)."""
BLOCK_FEATURES: tuple[str, ...] = ("separator", "spot_length", "bracketed", "length", "loudness", "cuts")
"""Block features whose evidence counts once per block: statistics of the whole block (its loudness, its rate of
scene cuts) say one thing about it however long it is."""


@dataclass(frozen=True)
class Blocks:
    """The blocks of a stretch of frames, as parallel arrays (one entry per block)."""

    first: np.ndarray  # index of the block's first frame
    stop: np.ndarray  # index after its last frame
    t0: np.ndarray  # start time (s): midway between the previous frame and its first frame, or the stretch's start
    t1: np.ndarray  # end time (s)
    features: dict[str, np.ndarray]  # SECOND_FEATURES and BLOCK_FEATURES, NaN where unknown

    def __len__(self) -> int:
        return len(self.first)

    @property
    def duration(self) -> np.ndarray:
        return self.t1 - self.t0


def _near(mask: np.ndarray, t: np.ndarray, gap_s: float) -> np.ndarray:
    """True at frames with a True frame of ``mask`` within ``gap_s`` seconds (frame times ``t``, increasing)."""
    if not mask.any():
        return mask
    hits = t[mask]
    lo = np.searchsorted(hits, t - gap_s - 1e-9, side="left")
    hi = np.searchsorted(hits, t + gap_s + 1e-9, side="right")
    return hi > lo


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and stop indices of the runs of True."""
    d = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)


def _ge(values: np.ndarray, threshold: float) -> np.ndarray:
    """``values >= threshold`` with NaN (not measured) never reaching it: every threshold here is > 0 (``FusionConfig``
    checks its own), and a comparison with NaN is False."""
    return values >= threshold


def repeat_mask(t: np.ndarray, repeat: np.ndarray, cfg: FusionConfig) -> np.ndarray:
    """Frames inside a run of remembered-ad matches that lasts at least ``repeat_min_s``."""
    hit = _ge(repeat, 0.5)
    out = np.zeros(len(t), bool)
    for a, b in zip(*_runs(hit), strict=True):
        if t[b - 1] - t[a] + _frame_step(t) >= cfg.repeat_min_s - 1e-6:
            out[a:b] = True
    return out


def _frame_step(t: np.ndarray) -> float:
    if len(t) < 2:
        return 0.2
    return float(np.median(np.diff(t[-64:])))


def _true_dips(t: np.ndarray, cols: Mapping[str, np.ndarray], cfg: FusionConfig) -> np.ndarray:
    """Runs of ``dip`` frames that are a fade through a dim picture: short, and darker than the picture on *both*
    sides (a cut to a darker scene also dips, but stays there). Without a ``luma`` column every dip run counts."""
    dip = _ge(cols["dip"], cfg.separator_threshold)
    out = np.zeros(len(t), bool)
    a, b = _runs(dip)
    if len(a) == 0:
        return out
    short = t[b - 1] - t[a] <= cfg.max_dip_s
    luma = cols["luma"]
    n = len(t)
    known = _count_known(luma, a, b)
    # up to 5 frames on either side; fewer than 3 (the stream's edge, or not seen yet): not a fade (yet)
    side_k = np.arange(5)
    before_idx = a[:, None] - 5 + side_k
    after_idx = b[:, None] + side_k
    before = np.where(before_idx >= 0, luma[np.clip(before_idx, 0, n - 1)], np.nan)
    after = np.where(after_idx < n, luma[np.clip(after_idx, 0, n - 1)], np.nan)
    enough = (np.minimum(a, 5) >= 3) & (np.minimum(n - b, 5) >= 3)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN sides: no fade
        side = np.minimum(_row_nanmedian(before), _row_nanmedian(after))
        # the dimmest known frame of each run: reduce over [a, b) (the extra last value lets b reach the end)
        bottom = np.fmin.reduceat(np.append(np.where(np.isnan(luma), np.inf, luma), np.inf),
                                  np.column_stack((a, b)).ravel())[::2]
        deep = bottom < cfg.dip_depth * side
    fade = short & np.where(known == 0, True, enough & deep)
    for ra, rb in zip(a[fade].tolist(), b[fade].tolist(), strict=True):
        out[ra:rb] = True
    return out


def _row_nanmedian(values: np.ndarray) -> np.ndarray:
    """``np.nanmedian(values, axis=1)`` for a few columns, without its masked-array path (a tenth of the time here;
    the live decision computes it for every dip run of its window on every frame). All-NaN rows give NaN."""
    v = np.sort(values, axis=1)  # NaN sorts last
    n = np.sum(~np.isnan(values), axis=1)
    lo = np.take_along_axis(v, np.maximum((n - 1) // 2, 0)[:, None], axis=1)[:, 0]
    hi = np.take_along_axis(v, np.maximum(n // 2, 0)[:, None].clip(max=v.shape[1] - 1), axis=1)[:, 0]
    return np.where(n > 0, 0.5 * (lo + hi), np.nan)


def _count_known(values: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """How many non-NaN values each run ``[a, b)`` holds."""
    c = np.concatenate(([0], np.cumsum(~np.isnan(values))))
    return c[b] - c[a]


def cut_points(
    t: np.ndarray, cols: Mapping[str, np.ndarray], cfg: FusionConfig, *, rep: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(cut, separator)``: ``cut[k]`` is True when a block boundary lies between frame ``k - 1`` and frame ``k``
    (``cut[0]`` is always False); ``separator[k]`` marks separator frames. ``rep``: :func:`repeat_mask`, if known."""
    n = len(t)
    cols = columns_from_rows(cols, n)
    silent = _ge(cols["silence"], cfg.silence_threshold)
    scene = _ge(cols["cut"], cfg.cut_threshold)
    # a scene cut with silence next to it is a join between items (spots without black still fade their sound); a
    # dissolve makes several such frames in a row: together they are one separator, like a run of black frames
    joins = scene & _near(silent, t, cfg.silence_cut_gap_s)
    dark = _ge(cols["black"], cfg.separator_threshold) | _true_dips(t, cols, cfg)
    if cfg.separator_logo > 0:
        # the channel's logo on a dark frame: the show's own dark moment, not a break's separator
        dark &= ~_ge(cols["logo"], cfg.separator_logo)
    sep = dark | joins
    cut = np.zeros(n, bool)
    if n < 2:
        return cut, sep
    cut[1:] |= sep[1:] != sep[:-1]
    if cfg.aspect_cuts:
        aspect = _ge(cols["aspect"], cfg.aspect_threshold)
        cut[1:] |= aspect[1:] & ~aspect[:-1]  # the moment the picture's bars change, not every frame after it
    if rep is None:
        rep = repeat_mask(t, cols["repeat"], cfg)
    cut[1:] |= rep[1:] != rep[:-1]
    cut[0] = False
    return cut, sep


def _logo_share(t: np.ndarray, logo: np.ndarray, first: np.ndarray, stop: np.ndarray, cfg: FusionConfig) -> np.ndarray:
    """Each block's logo share. When the logo appears inside a block and stays for ``logo_onset_s`` (no cut point at
    its appearance), what came before it is the same footage as what follows: a show's cold open, or its picture
    before the channel put the logo back. The share is then measured from that onset on."""
    share = _nanmean_blocks(logo, first, stop)
    on = _ge(logo, 0.5)
    need = cfg.logo_onset_s
    for k, (a, b) in enumerate(zip(first.tolist(), stop.tolist(), strict=True)):
        if b - a < 3 or share[k] >= 0.5 or np.isnan(share[k]):
            continue
        for ra, rb in zip(*_runs(on[a:b]), strict=True):
            if ra > 0 and t[a + rb - 1] - t[a + ra] >= need - 1e-9:
                share[k] = float(np.nanmean(logo[a + ra : b]))
                break
    return share


def _nanmean_blocks(values: np.ndarray, first: np.ndarray, stop: np.ndarray) -> np.ndarray:
    ok = ~np.isnan(values)
    s = np.add.reduceat(np.where(ok, values, 0.0), first)
    c = np.add.reduceat(ok.astype(np.float64), first)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(c > 0, s / np.maximum(c, 1), np.nan)


def make_blocks(
    t: np.ndarray,
    cols: Mapping[str, np.ndarray],
    cfg: FusionConfig,
    *,
    start_t: float | None = None,
    end_t: float | None = None,
) -> Blocks:
    """Split frames (times ``t``, cue columns ``cols``) into blocks and measure each block's features.

    ``start_t`` / ``end_t`` are the stretch's edges (default: half a frame before the first frame and after the
    last). A block's ``spot_length`` is 1 when both its ends are cut points inside the stretch and its length is a
    standard spot length, 0 when closed but not standard, NaN when an end is open (the stretch's edge).
    """
    n = len(t)
    cols = columns_from_rows(cols, n)
    if n == 0:
        empty = np.zeros(0)
        return Blocks(empty.astype(int), empty.astype(int), empty, empty, {})
    step = _frame_step(t)
    rep_mask = repeat_mask(t, cols["repeat"], cfg)
    cut, sep = cut_points(t, cols, cfg, rep=rep_mask)
    first = np.flatnonzero(cut)
    first = np.concatenate(([0], first)).astype(np.int64)
    stop = np.concatenate((first[1:], [n])).astype(np.int64)
    mids = np.empty(n + 1)
    mids[1:-1] = 0.5 * (t[1:] + t[:-1])
    mids[0] = t[0] - 0.5 * step if start_t is None else start_t
    mids[-1] = t[-1] + 0.5 * step if end_t is None else end_t
    t0, t1 = mids[first], mids[stop]
    dur = np.maximum(t1 - t0, 1e-6)

    feats: dict[str, np.ndarray] = {}
    logo = _logo_share(t, cols["logo"], first, stop, cfg)
    feats["p_ad"] = _nanmean_blocks(cols["p_ad"], first, stop)
    feats["loudness"] = _nanmean_blocks(cols["loudness"], first, stop)
    rep_known = np.where(np.isnan(cols["repeat"]), np.nan, rep_mask.astype(np.float64))
    feats["repeat"] = _nanmean_blocks(rep_known, first, stop)
    scene = _ge(cols["cut"], cfg.cut_threshold).astype(np.float64)
    cut_known = np.where(np.isnan(cols["cut"]), np.nan, scene)
    n_cuts = np.add.reduceat(np.nan_to_num(cut_known), first)
    feats["cuts"] = np.where(np.isnan(_nanmean_blocks(cut_known, first, stop)), np.nan, n_cuts / dur)
    is_sep = np.add.reduceat(sep.astype(np.int64), first) == (stop - first)
    feats["separator"] = is_sep.astype(np.float64)
    closed = np.ones(len(first), bool)
    closed[0] = False
    closed[-1] = False
    k = np.round(dur / cfg.spot_step_s)
    tol = cfg.spot_tolerance_s
    standard = np.abs(dur - k * cfg.spot_step_s) <= tol
    standard &= (dur >= cfg.spot_min_s - tol) & (dur <= cfg.spot_max_s + tol)
    # a block with a separator on both sides: a spot, a promo, an ident (a show is not framed by blacks that close)
    prev_sep = np.concatenate(([False], is_sep[:-1]))
    next_sep = np.concatenate((is_sep[1:], [False]))
    short = dur <= cfg.spot_max_s + cfg.spot_tolerance_s
    framed = prev_sep & next_sep & short & ~is_sep & closed
    feats["bracketed"] = np.where(is_sep | ~closed, np.nan, framed.astype(np.float64))
    # the logo means less inside a framed block: the channel's own promos and idents carry it between the spots, so
    # its histograms there are learned apart (``logo_framed``)
    feats["logo"] = np.where(framed | is_sep, np.nan, logo)  # a black or dim separator hides the logo anyway
    feats["logo_framed"] = np.where(framed, logo, np.nan)
    feats["length"] = dur
    feats["spot_length"] = np.where(is_sep, np.nan, np.where(closed, standard.astype(np.float64), np.nan))
    return Blocks(first, stop, t0, t1, feats)


def columns_from_rows(rows: Mapping[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """Every cue column, as float arrays of ``n`` values; a missing column is all NaN (not measured)."""
    out: dict[str, np.ndarray] = {}
    for name in CUE_COLUMNS:
        values = rows.get(name)
        out[name] = np.full(n, math.nan) if values is None else np.asarray(values, dtype=np.float64).reshape(-1)[:n]
    return out
