"""Broadcast-structure cues: black/uniform frames and dips, scene cuts, aspect changes, silence and loudness.

Each cue is one module with one class of the :class:`~edge.cues.base.Cue` shape. :class:`CueSet` runs a set of them
on every analysed frame and returns one dict of all their values. Adding a cue: write its module, add its class to
:data:`DEFAULT_CUES`. The logo learner and the repeat memory are stateful objects of their own, wired elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from edge.cues.aspect import AspectConfig, AspectCue
from edge.cues.audio import SilenceConfig, SilenceCue
from edge.cues.base import AUDIO_RATE, UNKNOWN, Cue, ScreenFrame
from edge.cues.black import BlackConfig, BlackCue
from edge.cues.cut import CutConfig, CutCue

__all__ = [
    "AUDIO_RATE",
    "DEFAULT_CUES",
    "UNKNOWN",
    "AspectConfig",
    "AspectCue",
    "BlackConfig",
    "BlackCue",
    "Cue",
    "CueSet",
    "CutConfig",
    "CutCue",
    "ScreenFrame",
    "SilenceConfig",
    "SilenceCue",
]

DEFAULT_CUES: tuple[Callable[[], Cue], ...] = (BlackCue, CutCue, AspectCue, SilenceCue)
"""The cues a :class:`CueSet` runs by default, each built with its default config."""


class CueSet:
    """Runs several cues on each frame; ``update`` returns every cue's values in one dict (in ``names`` order)."""

    def __init__(self, cues: Iterable[Cue] | None = None) -> None:
        self.cues: tuple[Cue, ...] = tuple(cues) if cues is not None else tuple(make() for make in DEFAULT_CUES)
        self.names: tuple[str, ...] = tuple(name for cue in self.cues for name in cue.names)
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"two cues return the same value name: {self.names}")

    def update(self, frame: ScreenFrame) -> dict[str, float]:
        values: dict[str, float] = {}
        for cue in self.cues:
            values.update(cue.update(frame))
        return values

    def reset(self) -> None:
        for cue in self.cues:
            cue.reset()
