"""Settings of the fusion and the duration-aware decision (stored in the model bundle; see ``docs/decision.md``)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True, kw_only=True)
class FusionConfig:
    """How per-frame cues become blocks, how blocks become evidence, and what the decoder believes about durations.

    Every field is a plain number so the whole config round-trips through JSON (``to_dict`` / ``from_dict``).
    """

    # -- cut points: where a break or a spot may begin or end -------------------------------------------------------
    separator_threshold: float = 0.5
    """A frame whose ``black`` or ``dip`` is at least this is a separator frame (black, uniform or a dip)."""
    separator_logo: float = 0.5
    """A black or dim frame on which the learned logo's presence is at least this is no separator: channels overlay
    their logo on the show (a dark scene, a fade inside it, seen through a camera) and never on a break's blacks. 0
    keeps every black frame a separator."""
    max_dip_s: float = 1.5
    """A run of ``dip`` frames longer than this is a darker scene, not a fade between items."""
    dip_depth: float = 0.45
    """A fade's dimmest frame is darker than this share of the picture on both sides (``luma``): a dissolve through
    15-35 % brightness, with room for the black level; a cut to a darker scene that brightens a little is not one."""
    silence_threshold: float = 0.5
    """``silence`` at least this counts as silent."""
    cut_threshold: float = 0.5
    """``cut`` at least this counts as a scene cut."""
    silence_cut_gap_s: float = 0.45
    """A scene cut with silence within this many seconds is a cut point (spots joined without black)."""
    aspect_threshold: float = 0.5
    """``aspect`` at least this means the picture's bars changed."""
    aspect_cuts: float = 0.0
    """1: a change of the picture's bars is a cut point (Comskip's aspect cue). Off by default: shows change their
    bars too (letterboxed inserts, archive footage), which splits a cold open from its show."""
    logo_onset_s: float = 3.0
    """The logo appearing inside a block (no cut point) and staying this long makes the block's logo share the one
    measured from there on: a cold open belongs to the show it opens."""
    repeat_min_s: float = 5.0
    """A run of frames matching a remembered ad counts only when it lasts this long."""

    # -- durations (seconds) ---------------------------------------------------------------------------------------
    min_break_s: float = 20.0
    max_break_s: float = 600.0
    min_program_s: float = 60.0
    short_penalty: float = 0.6
    """Log-prior cost (nats) per second a closed segment falls short of its minimum."""
    long_penalty: float = 0.05
    """Log-prior cost (nats) per second a break runs past ``max_break_s``."""
    switch_cost: float = 1.0
    """Log-prior cost (nats) of every change of state."""
    spot_min_s: float = 5.0
    spot_max_s: float = 120.0
    spot_step_s: float = 5.0
    promo_max_s: float = 30.0
    """The longest channel promo or ident: inside a block framed by separators and no longer than this, the logo is
    no evidence for the show (``docs/decision.md``)."""
    spot_tolerance_s: float = 0.6
    """A block between two cut points whose length is within this of a multiple of ``spot_step_s`` (in
    ``spot_min_s``-``spot_max_s``) has a standard spot length."""

    # -- evidence --------------------------------------------------------------------------------------------------
    max_llr: float = 4.0
    """Largest log-likelihood ratio (nats) one feature may contribute per second (or per block)."""
    max_block_llr: float = 20.0
    """Largest evidence (nats) the per-second features of one block may add up to: frames of one block are not
    independent, and a long block must not outweigh the duration priors of everything around it."""
    prior_weight_s: float = 300.0
    """Weight of the default class-conditional histograms, in seconds of evidence (block features: / 10 blocks)."""
    memory_s: float = 3 * 3600.0
    """Online calibration forgets evidence older than about this many seconds of decided stream."""
    em_iterations: int = 3
    """Offline: decode, re-estimate every cue's histograms from the decoded labels, decode again."""

    # -- online decision -------------------------------------------------------------------------------------------
    margin: float = 2.0
    """The best path ending in the other state must beat the current state's by this many nats to switch."""
    warmup_s: float = 300.0
    warmup_margin: float = 6.0
    """Over the first ``warmup_s`` of a stream (no logo learned yet, the histograms still the defaults) a change needs
    up to this many nats more, falling linearly to none: a lone dark cut or pause must not start a break."""
    end_hold_s: float = 0.0
    """Online: a break ends only once the programme that follows it has lasted this many seconds (stream time), so a
    channel promo or ident inside a break (it carries the logo) is not taken for the show's return. 0 (default):
    the end is decided as soon as the evidence allows (about 1 s). About 16 s keeps promos of up to 15 s muted, at
    the cost of an unmute that late; the boundary is back-dated either way (``docs/decision.md``)."""
    promo_hold_s: float = 16.0
    """Online, learned per device: while this device knows its channel airs promos or idents inside breaks (a
    stretch with the logo that turned out to belong to the break: the show "returned" for less than ``min_program_s``,
    re-decoding a closed break ``promo_check_s`` later moves its end past a logo block framed by separators, or a held
    break took in a logo block of promo length), and on a new device until ``promo_prior_breaks`` breaks were checked,
    every break ends only once the show has lasted this long, as ``end_hold_s`` does. A channel without promos then
    gets its fast unmute. 0 turns the hold off (``docs/decision.md``)."""
    promo_prior_breaks: float = 3.0
    """Online: a device that has checked fewer breaks than this (with the logo learned) holds every break's end
    ``promo_hold_s`` as if its channel aired promos, until that many breaks held none: most channels do, and a new
    device cannot tell a promo after a separator from the show's return while it airs. A channel without promos gets
    its fast unmute back after this many breaks; 0 gives a new device the fast unmute from the start."""
    promo_logo: float = 0.5
    """A block inside a decided break, not a separator, from ``spot_min_s`` (less ``spot_tolerance_s``) to
    ``promo_max_s`` long, whose mean logo presence is at least this, is the channel's promo or ident: the break counts
    as holding a promo."""
    promo_check_s: float = 30.0
    """Online: how long after a break's end its last minutes are decoded again, without the decided end pinned, to
    see whether the channel put a promo there."""
    window_s: float = 900.0
    """Online: the frames of the last this many seconds are re-decoded on every frame."""
    startup_s: float = 2.0
    """Online: the first state is decided after this many seconds of frames."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
                raise ValueError(f"fusion setting {f.name} must be a finite number, got {value!r}")
            if value < 0:
                raise ValueError(f"fusion setting {f.name} must be >= 0, got {value!r}")
            object.__setattr__(self, f.name, int(value) if f.name == "em_iterations" else float(value))
        for name in ("separator_threshold", "silence_threshold", "cut_threshold", "aspect_threshold"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"fusion setting {name} must lie in (0, 1], got {getattr(self, name)}")
        if self.min_break_s > self.max_break_s:
            raise ValueError(f"min_break_s ({self.min_break_s}) exceeds max_break_s ({self.max_break_s})")
        for name in ("promo_logo", "separator_logo"):
            if getattr(self, name) > 1:
                raise ValueError(f"fusion setting {name} must be <= 1, got {getattr(self, name)!r}")
        if self.spot_step_s <= 0 or self.spot_min_s > self.spot_max_s:
            raise ValueError("spot_step_s must be > 0 and spot_min_s <= spot_max_s")
        if self.window_s < 2 * self.max_break_s / 3:
            raise ValueError(f"window_s ({self.window_s}) must cover most of a long break (max_break_s)")
        if self.max_llr <= 0:
            raise ValueError("max_llr must be > 0")

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> FusionConfig:
        """Inverse of :meth:`to_dict`; missing keys take their defaults, unknown keys raise ``ValueError``."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ValueError(f"fusion settings must be a mapping, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(k) for k in data if k not in known)
        if unknown:
            raise ValueError(f"unknown fusion setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**dict(data))
