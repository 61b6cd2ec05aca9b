"""Labelled frame folders (``DIR/<label>/*.jpg``) and their split by time.

Frames written by ``adbreak collect`` / ``adbreak extract`` are named ``<recording>_t<seconds>.jpg``, so each frame
knows its recording and stream time. Other images count as one recording per class folder, in name order.

Why split by time: adjacent video frames are near-duplicates, so a random split leaks the validation set into
training (a published TV classifier scored 98.8% on a random split and 93.3% on a separately recorded holdout).
Here each class's frames are laid out on their own timeline (recording by recording, in time order) and cut into
contiguous blocks — train, then validation, then holdout — with a guard gap dropped at each cut.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from adbreak.errors import AdbreakError
from edge.sources import IMAGE_SUFFIXES

FRAME_NAME = re.compile(r"^(?P<rec>.+)_t(?P<t>\d+(?:\.\d+)?)$")


def frame_name(recording: str, t: float) -> str:
    """File stem for a frame of ``recording`` at stream time ``t`` (what collect/extract write)."""
    safe = re.sub(r"[^A-Za-z0-9.-]+", "-", recording).strip("-") or "rec"
    return f"{safe}_t{t:010.3f}"


@dataclass(frozen=True, slots=True)
class FrameItem:
    path: Path
    label: str
    recording: str
    t: float


def scan_dataset(root: str | Path, *, required_label: str | None = "ad") -> list[FrameItem]:
    """All frames under ``root/<label>/``; raises AdbreakError on a dataset that cannot train a classifier."""
    root = Path(root)
    if not root.is_dir():
        raise AdbreakError(f"dataset folder not found: {root}")
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise AdbreakError(f"{root} needs at least two class folders (e.g. ad/ and program/), found {len(classes)}")
    items: list[FrameItem] = []
    for folder in classes:
        images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not images:
            raise AdbreakError(f"class '{folder.name}' in {root} has no images")
        for i, path in enumerate(images):
            m = FRAME_NAME.match(path.stem)
            if m:
                items.append(FrameItem(path, folder.name, m["rec"], float(m["t"])))
            else:
                items.append(FrameItem(path, folder.name, f"{folder.name}-folder", float(i)))
    labels = {f.name for f in classes}
    if required_label and required_label not in labels:
        raise AdbreakError(f"{root} has no '{required_label}' class folder (found: {', '.join(sorted(labels))})")
    return items


@dataclass(frozen=True)
class Split:
    train: list[int]
    val: list[int]
    holdout: list[int]

    def summary(self, items: list[FrameItem]) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for name in ("train", "val", "holdout"):
            out[name] = dict(sorted(Counter(items[i].label for i in getattr(self, name)).items()))
        return out


def split_by_time(
    items: list[FrameItem],
    *,
    val_fraction: float = 0.15,
    holdout_fraction: float = 0.15,
    guard_s: float = 2.0,
    holdout_recordings: frozenset[str] = frozenset(),
) -> Split:
    """Contiguous time blocks per class; frames of ``holdout_recordings`` go to holdout whole."""
    if not 0 < val_fraction < 0.5 or not 0 < holdout_fraction < 0.5:
        raise AdbreakError("validation and holdout fractions must each be between 0 and 0.5")
    train: list[int] = []
    val: list[int] = []
    holdout: list[int] = []
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, it in enumerate(items):
        if it.recording in holdout_recordings:
            holdout.append(i)
        else:
            by_label[it.label].append(i)
    for label, idx in sorted(by_label.items()):
        idx.sort(key=lambda i: (items[i].recording, items[i].t))
        n = len(idx)
        n_hold = 0 if holdout_recordings else max(1, round(n * holdout_fraction))
        n_val = max(1, round(n * val_fraction))
        if n - n_hold - n_val < 1:
            raise AdbreakError(f"class '{label}' has only {n} frames: too few to split into train/validation/holdout")
        cut_val, cut_hold = n - n_hold - n_val, n - n_hold
        blocks = (idx[:cut_val], idx[cut_val:cut_hold], idx[cut_hold:])
        # drop frames within guard_s of the frame just across a cut, in the same recording (they are near-duplicates)
        kept: list[list[int]] = [list(blocks[0]), [], []]
        for b in (1, 2):
            prev = blocks[b - 1][-1] if blocks[b - 1] else None
            for i in blocks[b]:
                if (
                    prev is not None
                    and items[i].recording == items[prev].recording
                    and abs(items[i].t - items[prev].t) < guard_s
                ):
                    continue
                kept[b].append(i)
            if not kept[b]:
                kept[b] = list(blocks[b])  # tiny classes: keep the block rather than leave it empty
        train += kept[0]
        val += kept[1]
        holdout += kept[2]
    return Split(sorted(train), sorted(val), sorted(holdout))
