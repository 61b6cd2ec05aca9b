"""Every broadcast-structure cue of one source, wired together: the per-frame cues (:mod:`edge.cues`), the channel
logo learned by itself (:mod:`edge.logo`) and the repeated-ad memory (:mod:`edge.memory`).

The learned logo and the ad memory belong to a device: with a ``state_dir`` they are kept there (``logo.npz``,
``ad-memory.npz``) across restarts; a corrupt file is set aside and rebuilt by the object that owns it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from edge.cues import CueSet
from edge.cues.base import ScreenFrame
from edge.logo import LogoLearner
from edge.memory import AdMemory

log = logging.getLogger(__name__)

LOGO_FILE = "logo.npz"
MEMORY_FILE = "ad-memory.npz"


class BroadcastCues:
    """One object per source: ``update(screen)`` returns every cue value of the frame by its scores-file name."""

    def __init__(self, state_dir: str | os.PathLike[str] | None = None) -> None:
        folder = Path(state_dir) if state_dir is not None else None
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
        self.frame_cues = CueSet()
        self.logo = LogoLearner(state_path=folder / LOGO_FILE if folder else None)
        self.memory = AdMemory(path=folder / MEMORY_FILE if folder else None)
        self.names: tuple[str, ...] = (*self.frame_cues.names, "luma", "logo", "repeat")

    def screen_values(self, screen: ScreenFrame, frame_values: Mapping[str, float] | None = None) -> dict[str, float]:
        """The cues that depend on the picture and sound alone (not on what was decided): the per-frame cues, the
        luma and the logo. They may run ahead of the decision, in another thread (``Detector.prepare``), as long as
        frames come in order. ``frame_values``: the per-frame cues already measured elsewhere, by a
        :class:`~edge.cues.CueSet` of this stream's own (in a decoding process, ``edge.pipeline.StreamConverter``);
        ``frame_cues`` is then not used."""
        values = dict(frame_values) if frame_values is not None else self.frame_cues.update(screen)
        values["luma"] = float(screen.small.mean()) / 255.0  # for the fusion's test of a fade (dim on both sides)
        values["logo"] = self.logo.update(screen)
        return values

    def update(self, screen: ScreenFrame, screen_values: Mapping[str, float] | None = None) -> dict[str, float]:
        """Every cue of the frame; ``screen_values``: what :meth:`screen_values` already gave for it. The memory's
        match runs here, in step with the decisions that fill the memory."""
        values = dict(screen_values) if screen_values is not None else self.screen_values(screen)
        values["repeat"] = self.memory.observe(screen)
        return values

    def remember_ad(self, start_t: float, end_t: float) -> None:
        """The decision closed an ad break ``[start_t, end_t)``: keep its fingerprints."""
        stored = self.memory.remember(start_t, end_t)
        log.debug("ad memory: %d frames of %.1f-%.1f s stored", stored, start_t, end_t)

    def reset(self) -> None:
        """A new stream (not a new channel): forget the per-frame history, keep what was learned."""
        self.frame_cues.reset()

    def close(self) -> None:
        """Persist the learned logo and the memory."""
        self.logo.close()
        self.memory.close()
