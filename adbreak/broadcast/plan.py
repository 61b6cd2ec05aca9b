"""Planning a broadcast: the frame-exact sequence of plays (what is on screen when), its truth, and its sound.

Structure (all times whole frames; every random choice from the ``rng`` the builder seeds):

* program segments (60-240 s, scaled down for short broadcasts) alternate with ad breaks, starting and ending with
  program. A segment is a run of shots of the pool's program material: random 4-20 s stretches of its clips and
  5-14 s pans and zooms over its photos (never onto a featureless crop), each in a random colour grade (about a
  third ungraded), some (15%) with a lower-third caption. Program frames carry the channel logo;
* an ad break holds 2-5 spots (one only when the broadcast is too short for the target ad share) separated by 0.4-1.0
  s fully black separators at both edges and between spots. Per the contract the whole break, separators included,
  is labelled ``ad``. The same spots recur across breaks, never two cut-downs of one commercial back to back;
* ads take about 21-27% of the time (short broadcasts vary more: spots come in 5 s steps), about one break per 5
  minutes (more where the pool's spots could not fill fewer).

Difficulties (:data:`DIFFICULTIES`, any combination) make it more like real TV:

* ``no_black``: no separators at all: program cuts straight into the first spot, spots into each other, the last
  spot back into program (the spots' own 0.25 s audio fades still leave a short silence);
* ``fades``: separators are dissolves through a dim picture instead of black: the outgoing picture (continuing)
  fades down to 15-35% brightness and the incoming one (from just before its start) fades up from there, within the
  separator's slot. With ``no_black`` as well, each break is one or the other (both kinds occur);
* ``promos``: about half the breaks (at least one) hold a 5-15 s channel promo anywhere in the break, first and last
  included: a trailer of the pool's program footage with "COMING UP"-style captions, or an ident (the channel logo
  big on its colours). Promos carry the channel logo and are labelled ``ad`` (they are in the break);
* ``cold_open``: about 40% (at least one) of the program segments that follow a break open with 15-40 s without
  the logo; the logo then appears mid-shot, without a black frame;
* ``loud``: ads and promos at program loudness instead of 5 dB louder;
* ``transparent``: the logo is drawn at about alpha 0.25 instead of 0.6 (a rendering option: the plan is the same).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, replace
from functools import lru_cache

import cv2
import numpy as np

from adbreak.broadcast import audio
from adbreak.broadcast.clips import PhotoSpot, Pool, Spot, spot
from adbreak.broadcast.logo import get_channel
from adbreak.broadcast.photos import load_photo
from adbreak.broadcast.render import Caption, Grade, Shot
from adbreak.errors import AdbreakError
from adbreak.segments import AD_LABEL, PROGRAM_LABEL, Segment

# structure
MIN_DURATION_S = 90.0
MAX_DURATION_S = 24 * 3600.0
AD_SHARE = (0.21, 0.27)
BREAK_EVERY_S = 300.0  # about one break per 5 minutes
PROGRAM_MIN_S, PROGRAM_MAX_S = 60.0, 240.0
PROGRAM_MEAN_MAX_S = 220.0
PROGRAM_FULL_SCALE_S = 150.0  # program segments averaging less than this get proportionally shorter bounds
SEPARATOR_S = (0.4, 1.0)
SPOTS_PER_BREAK = (2, 5)
SPOT_CANDIDATES = 64
CLIP_SHOT_S = (4.0, 20.0)
PHOTO_SHOT_S = (5.0, 14.0)
CLIP_SHOT_SHARE = 0.5  # chance that a program shot is a clip stretch (where the pool has both)
LOWER_THIRD_SHARE = 0.15
LOWER_THIRDS = ("DR ANNA BERG, ASTRONOMER", "LIVE: CITY CENTRE", "MARK OYELARAN", "EARLIER TODAY", "ARCHIVE FOOTAGE",
                "JUNE KOWALSKI, REPORTER", "THE NIGHT SKY", "IN THE STUDIO")  # fmt: skip
KEN_BURNS_TRIES = 30
MIN_CROP_DETAIL = 12.0  # luma standard deviation every crop of a pan or zoom must have

# difficulties
NO_BLACK, FADES, PROMOS, COLD_OPEN = "no_black", "fades", "promos", "cold_open"
LOUD, TRANSPARENT = "loud", "transparent"
DIFFICULTIES = (NO_BLACK, FADES, PROMOS, COLD_OPEN, LOUD, TRANSPARENT)
DIM_LEVEL = (0.15, 0.35)  # fades: the darkest brightness a dissolve reaches
PROMO_S = (5, 15)  # whole seconds
PROMO_BREAK_SHARE = 0.5
COLD_OPEN_S = (15.0, 40.0)
COLD_OPEN_SHARE = 0.4
COLD_OPEN_MIN_AFTER_S = 5.0  # the logo shows for at least this long before the segment ends

KIND_PROGRAM = "program"
KIND_AD = "ad"
KIND_PROMO = "promo"
KIND_BLACK = "black"
KIND_DIM = "dim"
SEPARATORS = (KIND_BLACK, KIND_DIM)


@dataclass(frozen=True)
class Play:
    """A run of output frames showing one thing: program shots, a spot, a promo, or a separator."""

    kind: str  # KIND_PROGRAM, KIND_AD, KIND_PROMO, KIND_BLACK or KIND_DIM
    start_frame: int
    frames: int
    shots: tuple[Shot, ...] = ()
    logo: bool = False
    spot: str | None = None
    dim: float | None = None  # KIND_DIM: the darkest brightness of the dissolve

    @property
    def end_frame(self) -> int:
        return self.start_frame + self.frames

    @property
    def label(self) -> str:
        return PROGRAM_LABEL if self.kind == KIND_PROGRAM else AD_LABEL

    @property
    def clip(self) -> str | None:
        """The clip of the play's first shot (None for photos, idents and separators)."""
        return self.shots[0].clip if self.shots else None

    def to_dict(self, fps: int) -> dict:
        d: dict = {
            "kind": self.kind,
            "start": round(self.start_frame / fps, 6),
            "end": round(self.end_frame / fps, 6),
            "start_frame": self.start_frame,
            "frames": self.frames,
        }
        if self.kind not in SEPARATORS:
            d["logo"] = self.logo
        if self.spot is not None:
            d["spot"] = self.spot
        if self.dim is not None:
            d["dim"] = self.dim
        if self.shots:
            d["shots"] = [s.to_dict(fps) for s in self.shots]
        return d


def check_difficulties(difficulties) -> frozenset[str]:
    """The difficulty set, with ``all`` expanded; raises :class:`AdbreakError` for an unknown name."""
    names = frozenset(difficulties or ())
    if "all" in names:
        names = (names - {"all"}) | frozenset(DIFFICULTIES)
    bad = sorted(names - set(DIFFICULTIES))
    if bad:
        raise AdbreakError(f"unknown difficulty {', '.join(bad)}; choose from {', '.join(DIFFICULTIES)} or all")
    return names


# ================================================================================================ helpers
def _partition(rng: np.random.Generator, total: int, parts: int, lo: float, hi: float) -> list[int]:
    """Split ``total`` frames into ``parts`` random integers, each within [lo, hi] as far as the total allows."""
    x = rng.uniform(0.75, 1.25, parts)
    x = x / x.sum() * total
    for _ in range(100):
        x = np.clip(x, lo, hi)
        diff = total - x.sum()
        if abs(diff) < 1e-6:
            break
        free = x < hi if diff > 0 else x > lo
        if not free.any():
            break
        x[free] += diff / free.sum()
    out = np.floor(x).astype(int)
    rest = total - int(out.sum())
    order = np.argsort(-(x - out), kind="stable")
    for i in range(rest):
        out[order[i % parts]] += 1
    return [int(v) for v in out]


def _split_frames(total: int, weights: tuple[float, ...]) -> list[int]:
    """``total`` frames split in proportion to ``weights`` (cumulative rounding: the parts sum to ``total``)."""
    c = np.cumsum(weights) / sum(weights)
    edges = [0] + [int(round(v * total)) for v in c]
    return [b - a for a, b in zip(edges, edges[1:], strict=False)]


def _choose_spots(rng: np.random.Generator, spots: tuple[Spot, ...], budget_s: float, k_lo: int, sep_s: float):
    """Of a few random spot sequences, the one whose break length best fits the budget.

    Two cut-downs of the same commercial never play back to back (where the pool has more than one commercial).
    """
    best: list[Spot] = []
    best_err = math.inf
    for _ in range(SPOT_CANDIDATES):
        k = int(rng.integers(k_lo, SPOTS_PER_BREAK[1] + 1))
        seq: list[Spot] = []
        for _ in range(k):
            choices = [s for s in spots if not seq or s.family != seq[-1].family] or list(spots)
            seq.append(choices[int(rng.integers(len(choices)))])
        err = abs(sum(s.length_s for s in seq) + (k + 1) * sep_s - budget_s)
        if err < best_err:
            best, best_err = seq, err
    return best


GRADES = (  # name, probability, (contrast, saturation, warmth, brightness) ranges
    ("none", 0.34, ((1, 1), (1, 1), (0, 0), (0, 0))),
    ("warm", 0.15, ((1.0, 1.15), (1.0, 1.3), (0.5, 1.0), (0.0, 0.03))),
    ("cool", 0.15, ((1.0, 1.15), (0.9, 1.2), (-1.0, -0.5), (-0.03, 0.0))),
    ("desaturated", 0.1, ((0.9, 1.2), (0.1, 0.45), (-0.1, 0.1), (-0.02, 0.02))),
    ("contrast", 0.14, ((1.25, 1.5), (1.0, 1.35), (-0.2, 0.2), (-0.02, 0.02))),
    ("faded", 0.12, ((0.65, 0.8), (0.6, 0.9), (-0.1, 0.3), (0.03, 0.08))),
)


def _random_grade(rng: np.random.Generator) -> Grade:
    p = np.array([g[1] for g in GRADES])
    name, _, ranges = GRADES[int(rng.choice(len(GRADES), p=p / p.sum()))]
    c, s, w, b = (round(float(rng.uniform(lo, hi)), 3) if lo != hi else float(lo) for lo, hi in ranges)
    return Grade(name, c, s, w, b)


def _path_candidate(rng: np.random.Generator) -> tuple[float, float, float, float, float, float]:
    mode = int(rng.integers(3))
    u = rng.uniform
    if mode == 0:  # zoom in
        path = (u(0.85, 1.0), u(0.3, 0.7), u(0.3, 0.7), u(0.5, 0.7), u(0.1, 0.9), u(0.1, 0.9))
    elif mode == 1:  # zoom out
        path = (u(0.5, 0.7), u(0.1, 0.9), u(0.1, 0.9), u(0.85, 1.0), u(0.3, 0.7), u(0.3, 0.7))
    else:  # pan across at a steady zoom
        z = u(0.55, 0.8)
        a, b = u(0.0, 0.3), u(0.7, 1.0)
        if rng.random() < 0.5:
            a, b = b, a
        path = (z, a, u(0.2, 0.8), z, b, u(0.2, 0.8))
    return tuple(round(float(v), 4) for v in path)  # type: ignore[return-value]


@lru_cache(maxsize=32)
def _luma_moments(photo: str) -> tuple[np.ndarray, np.ndarray]:
    """Integral images of a photo's luma and squared luma (for the detail of any crop)."""
    y = cv2.cvtColor(load_photo(photo), cv2.COLOR_RGB2GRAY).astype(np.float64)
    return cv2.integral(y, sdepth=cv2.CV_64F), cv2.integral(y * y, sdepth=cv2.CV_64F)


def crop_detail(photo: str, z: float, x: float, y: float, aspect: float = 16 / 9) -> float:
    """Standard deviation of the luma in the crop a path point shows (``aspect``: the picture's width / height)."""
    s, s2 = _luma_moments(photo)
    ph, pw = s.shape[0] - 1, s.shape[1] - 1
    cw = z * min(pw, ph * aspect)
    ch = cw / aspect
    x0, y0 = int(x * (pw - cw)), int(y * (ph - ch))
    x1, y1 = min(pw, x0 + max(1, int(cw))), min(ph, y0 + max(1, int(ch)))
    n = (x1 - x0) * (y1 - y0)
    total = s[y1, x1] - s[y0, x1] - s[y1, x0] + s[y0, x0]
    total2 = s2[y1, x1] - s2[y0, x1] - s2[y1, x0] + s2[y0, x0]
    return math.sqrt(max(0.0, total2 / n - (total / n) ** 2))


def _ken_burns(rng: np.random.Generator, photo: str, aspect: float = 16 / 9):
    """A slow pan or zoom over ``photo`` whose crops all show some detail (no near-uniform frames: a frame of
    featureless background would pass for a separator)."""
    path = _path_candidate(rng)
    for _ in range(KEN_BURNS_TRIES):
        z0, x0, y0, z1, x1, y1 = path
        points = [(z0 + (z1 - z0) * t, x0 + (x1 - x0) * t, y0 + (y1 - y0) * t) for t in (0.0, 0.25, 0.5, 0.75, 1.0)]
        if min(crop_detail(photo, *p, aspect) for p in points) >= MIN_CROP_DETAIL:
            break
        path = _path_candidate(rng)
    return path


class _ProgramSource:
    """Draws program shots from a pool: clips and photos alternating at random, never one source twice running."""

    def __init__(self, pool: Pool, fps: int, rng: np.random.Generator):
        self.pool, self.fps, self.rng = pool, fps, rng
        self.last: str | None = None

    def shot(self, frames_left: int) -> Shot:
        rng, fps, pool = self.rng, self.fps, self.pool
        # clips share CLIP_SHOT_SHARE of the odds, photos the rest; the source just shown is left out
        sources = [(e.clip, CLIP_SHOT_SHARE / len(pool.program)) for e in pool.program]
        sources += [(p, (1 - CLIP_SHOT_SHARE) / len(pool.photos)) for p in pool.photos]
        choices = [(s, w) for s, w in sources if s != self.last] or sources
        weights = np.array([w for _, w in choices])
        pick = choices[int(rng.choice(len(choices), p=weights / weights.sum()))][0]
        ex = next((e for e in pool.program if e.clip == pick), None)
        if ex is not None:
            available = math.floor(ex.length_s * fps + 1e-6)
            n = min(available, int(round(float(rng.uniform(*CLIP_SHOT_S)) * fps)), frames_left)
            if frames_left - n < 2 * fps and frames_left <= available:
                n = frames_left  # no sliver of a shot at the segment's end
            first = int(rng.integers(0, available - n + 1))
            self.last = ex.clip
            in_s = round(ex.start_s + first * ex.speed / fps, 6)
            return Shot(
                n, clip=ex.clip, in_s=in_s, speed=ex.speed, grade=_random_grade(rng), captions=self._lower_third()
            )
        photo = pick
        n = min(int(round(float(rng.uniform(*PHOTO_SHOT_S)) * fps)), frames_left)
        if frames_left - n < 2 * fps:
            n = frames_left
        self.last = photo
        path = _ken_burns(rng, photo)
        return Shot(n, photo=photo, path=path, grade=_random_grade(rng), captions=self._lower_third())

    def _lower_third(self) -> tuple[Caption, ...]:
        """Now and then a caption over the program too (a name, a place), so text on screen is no ad tell."""
        if self.rng.random() >= LOWER_THIRD_SHARE:
            return ()
        text = LOWER_THIRDS[int(self.rng.integers(len(LOWER_THIRDS)))]
        return (Caption(text, (0.05, 0.73, 0.5, 0.82), (255, 255, 255), (18, 22, 34), 0.7, "left"),)

    def shots(self, frames: int) -> list[Shot]:
        out = []
        while frames > 0:
            s = self.shot(frames)
            out.append(s)
            frames -= s.frames
        return out


# ------------------------------------------------------------------------------------------------ ad and promo art
SPOT_LOOKS = {
    "bold": Grade("bold", 1.12, 1.3, 0.0, 0.0),
    "mono": Grade("mono", 1.15, 0.08, 0.0, 0.0),
    "light": Grade("light", 0.9, 0.85, 0.1, 0.06),
}
SPOT_LAYOUTS = {  # spot length (s, at most) -> shot layouts and their shares of the spot
    10: (("full", "end"), (0.6, 0.4)),
    15: (("full", "card", "end"), (0.45, 0.35, 0.2)),
    20: (("full", "card", "full", "end"), (0.32, 0.28, 0.22, 0.18)),
    45: (("full", "card", "full", "card", "end"), (0.24, 0.2, 0.2, 0.18, 0.18)),
}


def _contrast_ink(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    lum = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    return (20, 20, 24) if lum > 150 else (255, 255, 255)


def photo_spot_shots(p: PhotoSpot, frames: int) -> tuple[Shot, ...]:
    """The shots of a photo spot: the same for every airing (the layout's randomness is seeded by the spot's name)."""
    rng = np.random.default_rng(zlib.crc32(p.name.encode()))
    layouts, weights = next(v for k, v in sorted(SPOT_LAYOUTS.items()) if p.length_s <= k)
    look = SPOT_LOOKS[p.style]
    accent_ink = _contrast_ink(p.accent)
    shots = []
    for layout, n in zip(layouts, _split_frames(frames, weights), strict=True):
        if layout == "full":
            captions = (
                Caption(p.brand, (0.05, 0.07, 0.42, 0.17), p.ink, p.background, 0.9),
                Caption(p.slogan, (0.0, 0.78, 1.0, 0.91), accent_ink, p.accent, 0.88),
            )
            shots.append(Shot(n, photo=p.photo, path=_ken_burns(rng, p.photo), grade=look, captions=captions))
        elif layout == "card":
            captions = (
                Caption(p.brand, (0.58, 0.14, 0.96, 0.32), p.ink),
                Caption(p.slogan, (0.58, 0.38, 0.96, 0.5), p.ink),
                Caption(p.offer, (0.62, 0.6, 0.92, 0.78), accent_ink, p.accent),
            )
            z = round(float(rng.uniform(0.6, 0.8)), 4)
            path = (1.0, 0.5, 0.5, z, round(float(rng.uniform(0.3, 0.7)), 4), round(float(rng.uniform(0.3, 0.7)), 4))
            shots.append(Shot(n, photo=p.photo, path=path, rect=(0.05, 0.1, 0.55, 0.9), background=p.background,
                              grade=look, captions=captions))  # fmt: skip
        else:  # the end card: a still
            captions = (
                Caption(p.brand, (0.12, 0.5, 0.88, 0.7), p.ink),
                Caption(p.slogan, (0.2, 0.73, 0.8, 0.83), p.ink),
                Caption(p.offer, (0.38, 0.86, 0.62, 0.95), accent_ink, p.accent),
            )
            shots.append(Shot(n, photo=p.photo, path=(1.0, 0.5, 0.5, 1.0, 0.5, 0.5), rect=(0.36, 0.07, 0.64, 0.45),
                              background=p.background, grade=look, captions=captions))  # fmt: skip
    return tuple(shots)


def spot_shots(s: Spot, fps: int) -> tuple[Shot, ...]:
    frames = int(round(s.length_s * fps))
    if s.photo is not None:
        return photo_spot_shots(s.photo, frames)
    assert s.excerpt is not None
    return (Shot(frames, clip=s.excerpt.clip, in_s=s.excerpt.start_s, speed=s.excerpt.speed),)


PROMO_KICKERS = ("COMING UP", "NEXT", "TONIGHT", "LATER", "TOMORROW", "TONIGHT 9PM", "SUNDAY 8PM")
PROMO_TITLES = ("THE LONG ROAD", "CITY AFTER DARK", "WILD COASTS", "STARGAZERS", "THE QUIZ HOUR", "NIGHT DESK",
                "KITCHEN RULES", "DEEP FIELD", "OPEN SKIES")  # fmt: skip
IDENT_SLOGANS = ("ALWAYS ON", "YOUR CHANNEL", "STAY WITH US", "MORE TO SEE")


def _promo_shots(rng: np.random.Generator, source: _ProgramSource, frames: int, channel: str) -> tuple[Shot, ...]:
    c = get_channel(channel)
    if rng.random() < 0.6:  # a trailer: program footage with captions
        kicker = PROMO_KICKERS[int(rng.integers(len(PROMO_KICKERS)))]
        title = PROMO_TITLES[int(rng.integers(len(PROMO_TITLES)))]
        captions = (
            Caption(kicker, (0.34, 0.62, 0.66, 0.71), _contrast_ink(c.ident_colours[1]), c.ident_colours[1]),
            Caption(title, (0.2, 0.72, 0.8, 0.84), (255, 255, 255), (0, 0, 0), 0.55),
        )
        out = []
        left = frames
        while left > 0:
            s = source.shot(left)
            out.append(replace(s, captions=captions))
            left -= s.frames
        return tuple(out)
    slogan = IDENT_SLOGANS[int(rng.integers(len(IDENT_SLOGANS)))]
    return (Shot(frames, ident=channel, captions=(Caption(slogan, (0.25, 0.74, 0.75, 0.83), (255, 255, 255)),)),)


# ================================================================================================ planning
def plan_broadcast(
    pool: Pool,
    frames: int,
    fps: int,
    rng: np.random.Generator,
    difficulties: frozenset[str] = frozenset(),
    channel: str = "ch1",
) -> list[Play]:
    """The frame-exact sequence of plays for a broadcast of ``frames`` frames; all randomness from ``rng``."""
    diff = check_difficulties(difficulties)
    duration = frames / fps
    share = float(rng.uniform(*AD_SHARE))
    breaks = max(2, int(round(duration / BREAK_EVERY_S + rng.uniform(-0.75, 0.75))))
    sep_default = sum(SEPARATOR_S) / 2
    sep_mean = 0.0 if NO_BLACK in diff and FADES not in diff else sep_default / (2 if NO_BLACK in diff else 1)
    promo_mean = sum(PROMO_S) / 2 * PROMO_BREAK_SHARE if PROMOS in diff else 0.0
    min_spot = min(s.length_s for s in pool.spots)
    full_break = SPOTS_PER_BREAK[0] * min_spot + (SPOTS_PER_BREAK[0] + 1) * sep_mean + promo_mean
    # the longest break the pool can fill: the longest spot alternating with the longest of another commercial
    longest = max(pool.spots, key=lambda s: s.length_s)
    other = max((s.length_s for s in pool.spots if s.family != longest.family), default=longest.length_s)
    n_max = SPOTS_PER_BREAK[1]
    capacity = 0.9 * ((n_max + 1) // 2 * longest.length_s + n_max // 2 * other + (n_max + 1) * sep_mean)
    for _ in range(3):
        # program segments must not get too long, and the pool's spots must be able to fill the breaks: more
        # breaks first, then a lower ad share (down to the target's low end, then more breaks again)
        while duration * (1 - share) / (breaks + 1) > PROGRAM_MEAN_MAX_S:
            breaks += 1
        share = min(share, max(AD_SHARE[0], breaks * capacity / duration))
        while share * duration / breaks > capacity * (1 + 1e-9):
            breaks += 1
    while breaks > 2 and share * duration / breaks < full_break:
        breaks -= 1

    # how each break is separated, and which breaks hold a promo
    if NO_BLACK in diff and FADES in diff:
        modes = [KIND_DIM if i % 2 else None for i in range(breaks)]
        modes = [modes[int(i)] for i in rng.permutation(breaks)]
    else:
        modes = [None if NO_BLACK in diff else KIND_DIM if FADES in diff else KIND_BLACK] * breaks
    promo_breaks: set[int] = set()
    if PROMOS in diff:
        n = max(1, int(round(PROMO_BREAK_SHARE * breaks)))
        promo_breaks = {int(i) for i in rng.choice(breaks, size=n, replace=False)}

    # ad breaks: spots fitted to a per-break budget that keeps the running total on target
    sep_lo, sep_hi = math.ceil(SEPARATOR_S[0] * fps - 1e-9), max(1, math.floor(SEPARATOR_S[1] * fps + 1e-9))
    sep_lo = min(max(1, sep_lo), sep_hi)
    remaining = share * duration
    break_items: list[list[tuple[str, int, Spot | None, float | None]]] = []
    for b in range(breaks):
        left = breaks - b
        budget = remaining / left * (float(rng.uniform(0.8, 1.2)) if left > 1 else 1.0)
        budget = min(budget, capacity)
        promo_frames = int(rng.integers(PROMO_S[0], PROMO_S[1] + 1)) * fps if b in promo_breaks else 0
        sep_s = sep_default if modes[b] is not None else 0.0
        spot_budget = budget - promo_frames / fps
        k_lo = SPOTS_PER_BREAK[0] if spot_budget >= SPOTS_PER_BREAK[0] * min_spot + 3 * sep_s else 1
        seq = _choose_spots(rng, pool.spots, spot_budget, k_lo, sep_s)
        content: list[tuple[str, int, Spot | None]] = [(KIND_AD, int(round(s.length_s * fps)), s) for s in seq]
        if promo_frames:
            content.insert(int(rng.integers(0, len(content) + 1)), (KIND_PROMO, promo_frames, None))
        items: list[tuple[str, int, Spot | None, float | None]] = []
        for kind, n, s in content:
            if modes[b] is not None:
                items.append(_separator(rng, modes[b], sep_lo, sep_hi))
            items.append((kind, n, s, None))
        if modes[b] is not None:
            items.append(_separator(rng, modes[b], sep_lo, sep_hi))
        break_items.append(items)
        remaining -= sum(n for _, n, _, _ in items) / fps

    ad_frames = sum(n for items in break_items for _, n, _, _ in items)
    program_frames = frames - ad_frames
    mean_s = program_frames / fps / (breaks + 1)
    if mean_s < 10.0:
        raise AdbreakError(
            f"a {duration:g} s broadcast is too short for {breaks} ad breaks; use at least {MIN_DURATION_S:g} s"
        )
    scale = min(1.0, mean_s / PROGRAM_FULL_SCALE_S)
    lengths = _partition(rng, program_frames, breaks + 1, PROGRAM_MIN_S * scale * fps, PROGRAM_MAX_S * scale * fps)

    # cold opens: some segments after a break start without the logo
    cold: dict[int, int] = {}
    if COLD_OPEN in diff:
        lo, hi = int(round(COLD_OPEN_S[0] * fps)), int(round(COLD_OPEN_S[1] * fps))
        eligible = [i for i in range(1, breaks + 1) if lengths[i] - int(COLD_OPEN_MIN_AFTER_S * fps) >= lo]
        n = min(len(eligible), max(1, int(round(COLD_OPEN_SHARE * breaks))))
        for i in sorted(int(eligible[int(j)]) for j in rng.choice(len(eligible), size=n, replace=False)):
            cold[i] = min(int(rng.integers(lo, hi + 1)), lengths[i] - int(COLD_OPEN_MIN_AFTER_S * fps))

    source = _ProgramSource(pool, fps, rng)
    plays: list[Play] = []
    pos = 0
    for i, length in enumerate(lengths):
        for logo, shots in _program_runs(source.shots(length), cold.get(i, 0), fps):
            for s in shots:
                plays.append(Play(KIND_PROGRAM, pos, s.frames, (s,), logo=logo))
                pos += s.frames
        if i < breaks:
            for kind, n, s, dim in break_items[i]:
                if kind == KIND_AD:
                    assert s is not None
                    shots = spot_shots(s, fps)
                    plays.append(Play(KIND_AD, pos, n, shots, spot=s.name))
                elif kind == KIND_PROMO:
                    plays.append(Play(KIND_PROMO, pos, n, _promo_shots(rng, source, n, channel), logo=True))
                else:
                    plays.append(Play(kind, pos, n, dim=dim))
                pos += n
    assert pos == frames
    return plays


def _separator(rng: np.random.Generator, kind: str, lo: int, hi: int) -> tuple[str, int, None, float | None]:
    n = int(rng.integers(lo, hi + 1))
    dim = round(float(rng.uniform(*DIM_LEVEL)), 3) if kind == KIND_DIM else None
    return kind, n, None, dim


def _program_runs(shots: list[Shot], cold_frames: int, fps: int) -> list[tuple[bool, list[Shot]]]:
    """The segment's shots as runs without the logo (its first ``cold_frames``) and with it."""
    if cold_frames <= 0:
        return [(True, shots)]
    before: list[Shot] = []
    after: list[Shot] = []
    pos = 0
    for s in shots:
        if pos + s.frames <= cold_frames:
            before.append(s)
        elif pos >= cold_frames:
            after.append(s)
        else:
            a, b = s.split(cold_frames - pos, fps)
            before.append(a)
            after.append(b)
        pos += s.frames
    return [(False, before), (True, after)]


def truth_segments(plays: list[Play], fps: int) -> list[Segment]:
    """The truth: program plays are ``program``; everything in a break (spots, promos, separators) is ``ad``."""
    out: list[tuple[int, int, str]] = []
    for p in plays:
        if out and out[-1][2] == p.label:
            out[-1] = (out[-1][0], p.end_frame, p.label)
        else:
            out.append((p.start_frame, p.end_frame, p.label))
    return [Segment(a / fps, b / fps, label) for a, b, label in out]


# ================================================================================================ sound
def sample_at(frame: int, fps: int, sr: int = audio.SAMPLE_RATE) -> int:
    """The first audio sample of output frame ``frame``."""
    return frame * sr // fps


def plan_audio(plays: list[Play], fps: int, rng: np.random.Generator, loud: bool = False) -> list[audio.AudioItem]:
    """The sound track's items, tiling the broadcast: one per program segment, spot, promo and separator."""
    program_db = audio.PROGRAM_DBFS
    ad_db = program_db + (0.0 if loud else audio.AD_BOOST_DB)
    items: list[audio.AudioItem] = []
    i = 0
    while i < len(plays):
        p = plays[i]
        j = i + 1
        if p.kind == KIND_PROGRAM:
            while j < len(plays) and plays[j].kind == KIND_PROGRAM:
                j += 1
        a, b = sample_at(p.start_frame, fps), sample_at(plays[j - 1].end_frame, fps)
        if p.kind == KIND_PROGRAM:
            seed = int(rng.integers(2**31))
            item = audio.AudioItem(audio.SPEECH, a, b - a, seed, program_db, audio.EDGES_CUT, layer=rng.random() < 0.25)
        elif p.kind == KIND_AD:
            assert p.spot is not None
            s = spot(p.spot)
            seed = audio.family_seed(s.family)
            offset = s.excerpt.start_s if s.excerpt is not None else 0.0
            voice = s.photo is not None and seed % 2 == 0
            item = audio.AudioItem(audio.MUSIC, a, b - a, seed, ad_db, audio.EDGES_SPOT, offset, voice)
        elif p.kind == KIND_PROMO:
            item = audio.AudioItem(audio.PROMO, a, b - a, int(rng.integers(2**31)), ad_db, audio.EDGES_SPOT)
        else:
            item = audio.AudioItem(audio.SILENCE, a, b - a)
        items.append(item)
        i = j
    return items
