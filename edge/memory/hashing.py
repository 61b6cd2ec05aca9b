"""Compact fingerprints of one frame: a 64-bit perceptual hash (imagehash's pHash) and Hamming distances.

The hash is imagehash's DCT pHash of the frame's small luma, area-averaged to the 32x32 image pHash works on (its own
LANCZOS resize of the 160x90 copy costs several times more and gives the same kind of hash). The DCT is OpenCV's:
imagehash takes it from SciPy, which would add about 25 MB to the edge agent's resident memory for one 32x32
transform. OpenCV's DCT-II is orthonormal, so its first row and column are rescaled by sqrt(2) to SciPy's uniform
scale; the bits are then imagehash's exactly (``tests/unit/test_memory.py`` compares them on photos and noise). The
64 bits are packed row-major into one unsigned 64-bit integer so that a whole memory is matched with one XOR and
one popcount.

Uniform frames (black separators, a grey screen filmed in a dim room, fades) have no structure for the DCT: their hash
is decided by noise and the median, so they are never hashed: :func:`frame_hash` returns ``None`` for them.
"""

from __future__ import annotations

import cv2
import numpy as np

HASH_SIZE = 8
"""pHash side: 8x8 = 64 bits."""
_PHASH_INPUT = 32
"""The image side imagehash's pHash takes its DCT over (hash size x its default high-frequency factor 4)."""


def is_uniform(small: np.ndarray, min_std: float) -> bool:
    """True when the small luma's spatial standard deviation is under ``min_std`` (black, grey, a fade)."""
    return float(cv2.meanStdDev(small)[1][0, 0]) < min_std


_SQRT2 = np.float32(np.sqrt(2.0))


def phash_bits(luma32: np.ndarray) -> np.ndarray:
    """imagehash's pHash bits (8x8 bool) of a 32x32 uint8 luma image: the DCT's low 8x8 corner above its median."""
    d = cv2.dct(np.asarray(luma32, dtype=np.float32))
    d[0, :] *= _SQRT2  # OpenCV's orthonormal DCT-II -> SciPy's unnormalised scale (up to one common factor)
    d[:, 0] *= _SQRT2
    low = d[:HASH_SIZE, :HASH_SIZE]
    return low > np.median(low)


def phash64(luma: np.ndarray) -> int:
    """imagehash's 64-bit pHash of a uint8 luma image, packed into an int (first DCT row in the high bits)."""
    if luma.shape != (_PHASH_INPUT, _PHASH_INPUT):
        luma = cv2.resize(luma, (_PHASH_INPUT, _PHASH_INPUT), interpolation=cv2.INTER_AREA)
    return int(np.packbits(phash_bits(luma).ravel()).view(">u8")[0])


def frame_hash(small: np.ndarray, min_std: float) -> int | None:
    """The frame's pHash, or ``None`` for a uniform frame whose hash would be noise."""
    if is_uniform(small, min_std):
        return None
    return phash64(small)


def hamming(stored: np.ndarray, code: int) -> np.ndarray:
    """Hamming distances (uint8) from ``code`` to every uint64 in ``stored``: one XOR and one popcount."""
    return np.bitwise_count(stored ^ np.uint64(code))
