"""The photos the builder renders program and ad material from: scikit-image's bundled sample photos (offline).

Each photo is credited here with its licence, as scikit-image's ``skimage.data`` documents it. Which pool and role
uses which photo is in ``clips.py`` (:data:`~adbreak.broadcast.clips.POOLS_DATA`); every photo serves exactly one
pool in one role. ``coffee`` is kept out of both pools: the camera view hangs it on the room's wall in every
recording. ``cat`` is the same picture as ``chelsea`` and ``moon``, ``page``, ``colorwheel`` and ``logo`` carry no
licence statement of their own in scikit-image, so none of them is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from adbreak.errors import AdbreakError


@dataclass(frozen=True)
class Photo:
    name: str  # the skimage.data function that returns it
    shows: str
    credit: str
    licence: str


PHOTOS: dict[str, Photo] = {
    p.name: p
    for p in (
        Photo("astronaut", "astronaut Eileen Collins", "NASA Great Images database", "public domain"),
        Photo("brick", "a brick wall", "CC0Textures (Bricks25)", "CC0"),
        Photo("camera", "a photographer with a camera on a tripod", "Lav Varshney", "CC0"),
        Photo("cell", "a cell floating in saline (phase image)", "Paul Mueller et al.", "CC0"),
        Photo("chelsea", "Chelsea the cat", "Stefan van der Walt", "CC0"),
        Photo("clock", "a wall clock, motion-blurred", "Stefan van der Walt", "public domain"),
        Photo("coffee", "a cup of coffee", "Rachel Michetti", "CC0"),
        Photo("coins", "Greek coins from Pompeii", "Brooklyn Museum collection", "no known copyright restrictions"),
        Photo("grass", "grass", "linolafett (DeviantArt)", "CC0"),
        Photo("gravel", "gravel", "CC0Textures (Gravel04)", "CC0"),
        Photo("horse", "a horse silhouette", "Andreas Preuss (marauder), openclipart", "CC0"),
        Photo("hubble_deep_field", "the Hubble eXtreme Deep Field", "NASA / HubbleSite", "public domain"),
        Photo(
            "immunohistochemistry",
            "IHC-stained colonic glands",
            "Center for Microscopy And Molecular Imaging (CMMI)",
            "no known copyright restrictions",
        ),
        Photo("retina", "a fundus photograph of a left eye", "Mikael Haggstrom (Wikimedia Commons)", "CC0"),
        Photo("rocket", "the launch of DSCOVR on a Falcon 9", "SpaceX", "public domain"),
        Photo("text", "lettering on a corner (Wikipedia 'Corner.png')", "Wikipedia", "public domain"),
    )
}
CAMERA_ROOM_PHOTO = "coffee"  # on the wall of the camera view's room, in every pool


@cache
def load_photo(name: str) -> np.ndarray:
    """The photo as an RGB uint8 array with even width and height (cached: treat it as read-only)."""
    if name not in PHOTOS:
        raise AdbreakError(f"unknown photo {name!r}")
    try:
        from skimage import data
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise AdbreakError(
            "the broadcast builder needs scikit-image for its photos: pip install 'adbreak[train]'"
        ) from exc
    img = np.asarray(getattr(data, name)())
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    img = np.ascontiguousarray(img[..., :3], dtype=np.uint8)
    h, w = img.shape[:2]
    img = np.ascontiguousarray(img[: h // 2 * 2, : w // 2 * 2])
    img.setflags(write=False)
    return img
