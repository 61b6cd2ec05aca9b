"""The catalogue of material the test-broadcast builder uses, and the two disjoint pools drawn from it.

Material comes from two places:

* real clips shipped in ``media/`` (compact H.264 copies; ``media/SOURCES.md`` has origins and licences, and
  ``make_media.py`` makes the copies). A clip plays one role: ``program`` footage or an ``ad``;
* photos bundled with scikit-image (``photos.py`` credits them), which the builder renders itself: slow pans and
  zooms in colour grades as program footage, product shots with banners, prices and bold backgrounds as ad spots
  (:data:`PHOTO_SPOTS`).

Why two pools, and why they are split like this
------------------------------------------------
Frame classifiers look excellent on a random train/validation split and then disappoint on a separately recorded
broadcast, because neighbouring frames of the same shot land on both sides of a random split (earlier work here:
98.8% on a random split, 93.3% on a held-out recording). Halves of the same clips are not enough either: a detector
learns the shows and the ads it saw. So ``train`` and ``heldout`` share **no source at all**, neither a clip nor a
photo, program or ad (:func:`validate` checks it):

============  ======================================  ==========================================================
pool          program                                 ads
============  ======================================  ==========================================================
``train``     vtest; photos astronaut, camera,        gillette (5 cut-downs), cup; photo spots chelsea (cat
              gravel, hubble_deep_field               food), clock (watch), brick (builder), text (maps)
``heldout``   bikes, bigbuckbunny; photos rocket,     box (3 cut-downs); photo spots coins (bank),
              grass, cell                             immunohistochemistry (skin care), horse, retina (eye care)
============  ======================================  ==========================================================

Both pools mix colour and grey sources in both roles (gillette is a black-and-white film; the ``mono`` photo spots
are desaturated; program photos get random warm, cool, contrasty, faded or desaturated grades), so no single global
statistic tells program from ads. Real spots last a multiple of 5 s: every spot here lasts 10-30 s, some clip spots
slowed a little to reach a standard length (slowed spots repeat source frames, which keeps motion smooth).
gillette's first 1.5 s (a black leader and a grey title fade) are never used, so a black frame is always a
separator, never a spot's own picture.

Edit the plain data below (:data:`SPOTS`, :data:`PHOTO_SPOTS`, :data:`POOLS_DATA`) to change a pool;
:func:`validate` runs at import and rejects excerpts outside their clip, spots whose length is not a multiple of
5 s in 10-45 s, a pool that mixes roles, or pools that share a clip or a photo.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from adbreak.broadcast.photos import CAMERA_ROOM_PHOTO, PHOTOS
from adbreak.errors import AdbreakError

MEDIA_DIR = Path(__file__).resolve().parent / "media"

PROGRAM = "program"
AD = "ad"
RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Clip:
    """One shipped clip: its file under ``media/``, its role, and the stream facts of the shipped copy."""

    name: str
    file: str
    role: str  # PROGRAM or AD
    fps_num: int
    fps_den: int
    frames: int
    width: int
    height: int

    @property
    def fps(self) -> Fraction:
        return Fraction(self.fps_num, self.fps_den)

    @property
    def duration_s(self) -> float:
        return float(self.frames / self.fps)

    @property
    def path(self) -> Path:
        return MEDIA_DIR / self.file


@dataclass(frozen=True)
class Excerpt:
    """A stretch ``[start_s, end_s)`` of a clip's timeline, played at ``speed`` (below 1: slower, frames repeat)."""

    clip: str
    start_s: float
    end_s: float
    speed: float = 1.0
    name: str = ""

    @property
    def length_s(self) -> float:
        """How long it plays, in seconds of output."""
        return (self.end_s - self.start_s) / self.speed


@dataclass(frozen=True)
class PhotoSpot:
    """An ad spot the builder renders from one photo: a product shot, a card with the offer, an end card.

    ``style`` sets the look: ``bold`` (saturated photo on a strong colour), ``mono`` (a desaturated photo on dark
    grey with a metallic accent) or ``light`` (a soft photo on a pale background).
    """

    name: str
    photo: str
    length_s: float
    brand: str
    slogan: str
    offer: str
    background: RGB
    accent: RGB
    ink: RGB  # text on the background
    style: str


@dataclass(frozen=True)
class Spot:
    """One ad spot of a pool: a clip excerpt or a photo spot. Cut-downs of one commercial share a ``family``."""

    name: str
    family: str
    length_s: float
    excerpt: Excerpt | None = None
    photo: PhotoSpot | None = None

    @property
    def clip(self) -> str | None:
        return self.excerpt.clip if self.excerpt is not None else None


@dataclass(frozen=True)
class Pool:
    name: str
    program: tuple[Excerpt, ...]  # program clips (whole): shots take random stretches of them
    photos: tuple[str, ...]  # program photos
    spots: tuple[Spot, ...]

    @property
    def clips(self) -> frozenset[str]:
        return frozenset(e.clip for e in self.program) | frozenset(s.clip for s in self.spots if s.clip)

    @property
    def all_photos(self) -> frozenset[str]:
        return frozenset(self.photos) | frozenset(s.photo.photo for s in self.spots if s.photo)


# ------------------------------------------------------------------------------------------------ plain data
# Stream facts are those of the shipped copies (make_media.py prints them).
CLIPS: dict[str, Clip] = {
    c.name: c
    for c in (
        Clip("vtest", "vtest.mp4", PROGRAM, 10, 1, 795, 640, 480),
        Clip("bikes", "bikes.mp4", PROGRAM, 25, 1, 250, 640, 272),
        Clip("bigbuckbunny", "bigbuckbunny.mp4", PROGRAM, 25, 1, 132, 640, 360),
        Clip("gillette", "gillette.mp4", AD, 30, 1, 900, 640, 480),
        Clip("box", "box.mp4", AD, 456000, 15217, 455, 640, 480),
        Clip("cup", "cup.mp4", AD, 26777, 1000, 217, 640, 480),
    )
}

# clip spot name -> (clip, start_s, end_s, speed); the spot plays (end_s - start_s) / speed seconds
SPOTS: dict[str, tuple[str, float, float, float]] = {
    "gillette-30": ("gillette", 1.5, 30.0, 0.95),
    "gillette-15a": ("gillette", 1.5, 16.5, 1.0),
    "gillette-15b": ("gillette", 15.0, 30.0, 1.0),
    "gillette-10a": ("gillette", 5.0, 15.0, 1.0),
    "gillette-10b": ("gillette", 20.0, 30.0, 1.0),
    "box-15": ("box", 0.0, 15.0, 1.0),
    "box-10a": ("box", 0.0, 7.5, 0.75),
    "box-10b": ("box", 7.5, 15.0, 0.75),
    "cup-10": ("cup", 0.0, 8.0, 0.8),
}

PHOTO_SPOTS: dict[str, PhotoSpot] = {
    p.name: p
    for p in (
        # train
        PhotoSpot("purrfect-20", "chelsea", 20, "PURRFECT", "Salmon & rice, 100% purr", "$3.99",
                  (245, 130, 20), (25, 45, 150), (255, 255, 255), "bold"),
        PhotoSpot("tempo-15", "clock", 15, "TEMPO", "Time, refined", "FROM $199",
                  (38, 38, 40), (200, 168, 92), (235, 235, 235), "mono"),
        PhotoSpot("stonehaus-30", "brick", 30, "STONEHAUS", "Build it once. Build it right.", "ASK FOR A QUOTE",
                  (175, 40, 36), (250, 214, 60), (255, 255, 255), "bold"),
        PhotoSpot("wayfind-10", "text", 10, "WAYFIND MAPS", "Every corner, covered", "FREE APP",
                  (232, 238, 240), (0, 140, 130), (30, 40, 50), "light"),
        # heldout
        PhotoSpot("mintbank-15", "coins", 15, "MINT BANK", "Save more, every day", "0% FEES",
                  (18, 105, 62), (255, 212, 0), (255, 255, 255), "bold"),
        PhotoSpot("dermalab-20", "immunohistochemistry", 20, "DERMALAB", "Science you can feel", "$24.99",
                  (240, 238, 244), (196, 30, 92), (44, 40, 64), "light"),
        PhotoSpot("stallion-10", "horse", 10, "STALLION", "Ride further", "NEW",
                  (40, 40, 44), (230, 230, 230), (240, 240, 240), "mono"),
        PhotoSpot("clearsight-30", "retina", 30, "CLEARSIGHT", "Eye care you can see", "BOOK NOW",
                  (12, 42, 96), (0, 196, 255), (255, 255, 255), "bold"),
    )
}  # fmt: skip

# pool name -> program clips, program photos, and spot names (clip spots and photo spots)
POOLS_DATA: dict[str, dict[str, list[str]]] = {
    "train": {
        "program": ["vtest"],
        "photos": ["astronaut", "camera", "gravel", "hubble_deep_field"],
        "spots": ["gillette-30", "gillette-15a", "gillette-15b", "gillette-10a", "gillette-10b", "cup-10",
                  "purrfect-20", "tempo-15", "stonehaus-30", "wayfind-10"],
    },
    "heldout": {
        "program": ["bikes", "bigbuckbunny"],
        "photos": ["rocket", "grass", "cell"],
        "spots": ["box-15", "box-10a", "box-10b", "mintbank-15", "dermalab-20", "stallion-10", "clearsight-30"],
    },
}  # fmt: skip

SPOT_MIN_S = 10.0
SPOT_MAX_S = 45.0
SPOT_STEP_S = 5.0


# ------------------------------------------------------------------------------------------------ lookups
def spot(name: str) -> Spot:
    if name in PHOTO_SPOTS:
        p = PHOTO_SPOTS[name]
        return Spot(name, name, float(p.length_s), photo=p)
    clip, start, end, speed = SPOTS[name]
    ex = Excerpt(clip, start, end, speed, name)
    return Spot(name, clip, ex.length_s, excerpt=ex)


def _build_pools() -> dict[str, Pool]:
    pools: dict[str, Pool] = {}
    for name, data in POOLS_DATA.items():
        program = tuple(Excerpt(c, 0.0, CLIPS[c].duration_s, 1.0, c) for c in data["program"])
        pools[name] = Pool(name, program, tuple(data["photos"]), tuple(spot(n) for n in data["spots"]))
    return pools


POOLS: dict[str, Pool] = _build_pools()


def get_pool(name: str) -> Pool:
    try:
        return POOLS[name]
    except KeyError:
        raise AdbreakError(f"unknown pool {name!r}; choose one of {', '.join(sorted(POOLS))}") from None


def _check_excerpt(ex: Excerpt, role: str, where: str) -> None:
    clip = CLIPS.get(ex.clip)
    if clip is None:
        raise ValueError(f"{where}: unknown clip {ex.clip!r}")
    if clip.role != role:
        raise ValueError(f"{where}: clip {ex.clip} is {clip.role} footage, not {role}")
    if not (0.0 <= ex.start_s < ex.end_s <= clip.duration_s + 1e-6):
        raise ValueError(f"{where}: {ex.start_s}-{ex.end_s} s lies outside {ex.clip} (0-{clip.duration_s:.3f} s)")
    if not ex.speed > 0:
        raise ValueError(f"{where}: speed must be > 0")


def _check_length(name: str, length_s: float) -> None:
    n = length_s / SPOT_STEP_S
    if abs(n - round(n)) > 1e-6 or not (SPOT_MIN_S - 1e-6 <= length_s <= SPOT_MAX_S + 1e-6):
        raise ValueError(
            f"spot {name} plays {length_s:.3f} s: must be a multiple of {SPOT_STEP_S:g} s "
            f"in {SPOT_MIN_S:g}-{SPOT_MAX_S:g} s"
        )


def validate() -> None:
    """Check the plain data above; raises ``ValueError`` naming the bad entry."""
    for name in SPOTS:
        s = spot(name)
        assert s.excerpt is not None
        _check_excerpt(s.excerpt, AD, f"spot {name}")
        _check_length(name, s.length_s)
    for name, p in PHOTO_SPOTS.items():
        if p.photo not in PHOTOS:
            raise ValueError(f"photo spot {name}: unknown photo {p.photo!r}")
        if p.style not in ("bold", "mono", "light"):
            raise ValueError(f"photo spot {name}: unknown style {p.style!r}")
        _check_length(name, p.length_s)
    for pool in POOLS.values():
        if not (pool.program or pool.photos) or not pool.spots:
            raise ValueError(f"pool {pool.name} needs program material and spots")
        for ex in pool.program:
            _check_excerpt(ex, PROGRAM, f"pool {pool.name} program clip {ex.name}")
        for p in pool.photos:
            if p not in PHOTOS:
                raise ValueError(f"pool {pool.name}: unknown program photo {p!r}")
    # every clip and every photo serves one pool in one role
    clip_use: dict[str, str] = {}
    photo_use: dict[str, str] = {}
    for pool in POOLS.values():
        uses = [(e.clip, "program") for e in pool.program] + [(s.clip, "ad") for s in pool.spots if s.clip]
        for clip, role in uses:
            where = f"{pool.name}/{role}"
            if clip_use.setdefault(clip, where) != where:
                raise ValueError(f"clip {clip} is used by {clip_use[clip]} and {where}")
        uses = [(p, "program") for p in pool.photos] + [(s.photo.photo, "ad") for s in pool.spots if s.photo]
        for photo, role in uses:
            where = f"{pool.name}/{role}"
            if photo_use.setdefault(photo, where) != where:
                raise ValueError(f"photo {photo} is used by {photo_use[photo]} and {where}")
    if CAMERA_ROOM_PHOTO in photo_use:
        raise ValueError(f"photo {CAMERA_ROOM_PHOTO} hangs in the camera view's room: keep it out of the pools")


validate()
