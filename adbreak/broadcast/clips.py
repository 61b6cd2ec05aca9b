"""The catalogue of real clips the test-broadcast builder uses, and the two disjoint pools drawn from them.

Every clip is a compact H.264 copy shipped in ``media/`` (see ``media/SOURCES.md`` for origins and licences; the
copies are made by ``make_media.py``). A clip plays one role: ``program`` footage or an ``ad``.

Why two pools, and why they are split like this
------------------------------------------------
Frame classifiers look excellent on a random train/validation split and then disappoint on a separately recorded
broadcast, because neighbouring frames of the same shot land on both sides of a random split (earlier work here:
98.8% on a random split, 93.3% on a held-out recording). So the builder never mixes pools: ``train`` broadcasts are
for training, ``heldout`` broadcasts for evaluation, and the two share no source frame wherever the material allows:

* Program clips are split by time: ``train`` plays the first half of each clip's timeline, ``heldout`` the second
  half. (vtest is one fixed-camera scene, so its two halves look alike; bikes and Big Buck Bunny change shots.)
* Ad spots are different cut-downs taken from disjoint halves of each commercial. Real spots last a multiple of 5 s,
  so every spot here lasts 10 or 15 s:

  - Gillette (30 s): ``train`` gets the first half as a 15 s spot and a 10 s cut-down of it (5-15 s); ``heldout``
    the second half (15-30 s) and its 10 s cut-down (20-30 s). The full 30 s spot (``gillette-30``) is catalogued
    but in neither pool, since it would overlap both halves.
  - box (15 s): each pool gets one half (7.5 s) played at 0.75x speed, a 10 s spot. The full 15 s spot
    (``box-15``) is catalogued but unused, for the same reason.
  - cup (8 s) is too short to split: its one 10 s spot (0.8x speed) is in ``train`` only.

  Slowed spots repeat source frames (0.75x of a 30 fps clip at 25 fps output advances 0.9 source frames per output
  frame), which keeps motion smooth, and both pools use the same slow-down for box, so speed is no pool tell.

Edit the plain data below (:data:`SPOTS`, :data:`POOLS`) to change a pool; :func:`validate` runs at import and
rejects excerpts outside their clip, spots whose length is not a multiple of 5 s in 10-45 s, or a pool that
mixes roles.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from adbreak.errors import AdbreakError

MEDIA_DIR = Path(__file__).resolve().parent / "media"

PROGRAM = "program"
AD = "ad"


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
class Pool:
    name: str
    program: tuple[Excerpt, ...]
    spots: tuple[Excerpt, ...]


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

# spot name -> (clip, start_s, end_s, speed); the spot plays (end_s - start_s) / speed seconds
SPOTS: dict[str, tuple[str, float, float, float]] = {
    "gillette-30": ("gillette", 0.0, 30.0, 1.0),
    "gillette-15a": ("gillette", 0.0, 15.0, 1.0),
    "gillette-10a": ("gillette", 5.0, 15.0, 1.0),
    "gillette-15b": ("gillette", 15.0, 30.0, 1.0),
    "gillette-10b": ("gillette", 20.0, 30.0, 1.0),
    "box-15": ("box", 0.0, 15.0, 1.0),
    "box-10a": ("box", 0.0, 7.5, 0.75),
    "box-10b": ("box", 7.5, 15.0, 0.75),
    "cup-10": ("cup", 0.0, 8.0, 0.8),
}

# pool name -> program excerpts (clip, start_s, end_s) and spot names
POOLS_DATA: dict[str, dict[str, list]] = {
    "train": {
        "program": [("vtest", 0.0, 39.75), ("bikes", 0.0, 5.0), ("bigbuckbunny", 0.0, 2.64)],
        "spots": ["gillette-15a", "gillette-10a", "box-10a", "cup-10"],
    },
    "heldout": {
        "program": [("vtest", 39.75, 79.5), ("bikes", 5.0, 10.0), ("bigbuckbunny", 2.64, 5.28)],
        "spots": ["gillette-15b", "gillette-10b", "box-10b"],
    },
}

SPOT_MIN_S = 10.0
SPOT_MAX_S = 45.0
SPOT_STEP_S = 5.0


# ------------------------------------------------------------------------------------------------ lookups
def spot(name: str) -> Excerpt:
    clip, start, end, speed = SPOTS[name]
    return Excerpt(clip, start, end, speed, name)


def _build_pools() -> dict[str, Pool]:
    pools: dict[str, Pool] = {}
    for name, data in POOLS_DATA.items():
        program = tuple(Excerpt(c, s, e, 1.0, f"{c}@{s:g}-{e:g}") for c, s, e in data["program"])
        pools[name] = Pool(name, program, tuple(spot(n) for n in data["spots"]))
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


def validate() -> None:
    """Check the plain data above; raises ``ValueError`` naming the bad entry."""
    for name in SPOTS:
        ex = spot(name)
        _check_excerpt(ex, AD, f"spot {name}")
        n = ex.length_s / SPOT_STEP_S
        if abs(n - round(n)) > 1e-6 or not (SPOT_MIN_S - 1e-6 <= ex.length_s <= SPOT_MAX_S + 1e-6):
            raise ValueError(
                f"spot {name} plays {ex.length_s:.3f} s: must be a multiple of {SPOT_STEP_S:g} s "
                f"in {SPOT_MIN_S:g}-{SPOT_MAX_S:g} s"
            )
    for pool in POOLS.values():
        if not pool.program or not pool.spots:
            raise ValueError(f"pool {pool.name} needs program excerpts and spots")
        for ex in pool.program:
            _check_excerpt(ex, PROGRAM, f"pool {pool.name} program excerpt {ex.name}")


validate()
