"""How far each cue is trusted: class-conditional histograms of every block feature, learned from the decisions.

Each feature (the logo's share of a block, the head's mean ``p_ad``, loudness, the share of remembered-ad frames,
the scene-cut rate, whether a block is a separator, whether its length is a standard spot length, how long it
is: spots are short, shows run on) is binned, and
for each state the decoder keeps a histogram of it: a default prior (``DEFAULT_PRIORS``, ``prior_weight_s`` seconds
of pseudo-evidence) plus what this stream's decided segments showed. A feature's evidence for one block is the log
ratio of its bin's probability under "ad" and under "program", clipped to ``±max_llr``.

So trust is not a constant. A cue that stops separating the states on this channel (a logo the channel keeps on
during its own promos, or drops during live sport; a head meeting footage unlike its training data; ads no louder
than the show) ends up with the same histogram under both states, and its log ratio goes to zero: it stops
counting. A cue that separates them well gets sharper histograms and counts more, up to ``max_llr``. The same
update runs offline (a few decode/re-estimate rounds: hard EM) and live (after every decided segment).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from adbreak.atomic import set_aside, write_text
from edge.fusion.config import FusionConfig
from edge.fusion.evidence import BLOCK_FEATURES, SECOND_FEATURES, Blocks

log = logging.getLogger(__name__)

AD, PROGRAM = 1, 0
FILE_VERSION = 1
BREAKS_KEPT = 50.0

# bin edges: a value v falls in bin i when edges[i] <= v < edges[i + 1] (the last bin is closed)
BINS: dict[str, tuple[float, ...]] = {
    "logo": (0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
    "logo_framed": (0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
    "p_ad": (0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
    "loudness": (0.0, 0.3, 0.45, 0.55, 0.7, 1.0),
    "repeat": (0.0, 0.2, 0.6, 1.0),
    "cuts": (0.0, 0.05, 0.2, 0.5, math.inf),
    "separator": (0.0, 0.5, 1.0),
    "spot_length": (0.0, 0.5, 1.0),
    "bracketed": (0.0, 0.5, 1.0),
    "length": (0.0, 5.0, 45.0, 120.0, math.inf),
}

_INNER_EDGES = {name: np.asarray(edges[1:-1], dtype=np.float64) for name, edges in BINS.items()}

# default class-conditional bin probabilities (program, ad): what a channel usually looks like. Set on the train
# pool's built broadcasts only, never on the held-out pool reported. A head's p(ad) starts weak (at most 1.2 nats a
# second): a head is trusted more only as far as this stream's decided segments show it agrees.
DEFAULT_PRIORS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "logo": ((0.05, 0.04, 0.06, 0.15, 0.70), (0.76, 0.10, 0.06, 0.04, 0.04)),
    "logo_framed": ((0.1, 0.05, 0.05, 0.2, 0.6), (0.6, 0.1, 0.05, 0.05, 0.2)),
    "p_ad": ((0.4, 0.2, 0.15, 0.13, 0.12), (0.12, 0.13, 0.15, 0.2, 0.4)),
    "loudness": ((0.15, 0.25, 0.3, 0.2, 0.1), (0.1, 0.15, 0.25, 0.25, 0.25)),
    "repeat": ((0.97, 0.02, 0.01), (0.6, 0.1, 0.3)),
    "cuts": ((0.45, 0.3, 0.17, 0.08), (0.3, 0.3, 0.25, 0.15)),
    "separator": ((0.97, 0.03), (0.6, 0.4)),
    "spot_length": ((0.9, 0.1), (0.3, 0.7)),
    "bracketed": ((0.98, 0.02), (0.4, 0.6)),
    "length": ((0.2, 0.2, 0.2, 0.4), (0.45, 0.45, 0.09, 0.01)),
}


def bin_index(name: str, values: np.ndarray) -> np.ndarray:
    """Bin of each value (-1 for NaN)."""
    idx = np.searchsorted(_INNER_EDGES[name], values, side="right")  # NaN sorts last; marked -1 below
    return np.where(np.isnan(values), -1, idx)


class Calibration:
    """Per-feature, per-state histograms: prior pseudo-counts plus observed weight (see the module doc)."""

    def __init__(self, cfg: FusionConfig) -> None:
        self.cfg = cfg
        self.observed: dict[str, np.ndarray] = {name: np.zeros((2, len(BINS[name]) - 1)) for name in BINS}
        self._tables: dict[str, np.ndarray] | None = None
        self.breaks = 0.0
        """Breaks this device has decided and checked again (``FusionDecision``), fading like the histograms."""
        self.promo_breaks = 0.0
        """Of those, the breaks in which the channel aired a promo or ident (a logo stretch inside the break)."""

    def _prior(self, name: str) -> np.ndarray:
        weight = self.cfg.prior_weight_s if name in SECOND_FEATURES else self.cfg.prior_weight_s / 10.0
        return np.asarray(DEFAULT_PRIORS[name], dtype=np.float64) * weight

    def llr_tables(self) -> dict[str, np.ndarray]:
        """Per feature, the clipped log ratio log P(bin | ad) - log P(bin | program) of each bin."""
        if self._tables is None:
            tables = {}
            for name in BINS:
                counts = self._prior(name) + self.observed[name]
                probs = counts / counts.sum(axis=1, keepdims=True)
                llr = np.log(probs[AD]) - np.log(probs[PROGRAM])
                tables[name] = np.clip(llr, -self.cfg.max_llr, self.cfg.max_llr)
            self._tables = tables
        return self._tables

    def block_llr(self, blocks: Blocks) -> np.ndarray:
        """Evidence for ad over program (nats) of each block: per-second features times the block's length (at most
        ``max_block_llr`` either way), plus per-block features once."""
        if len(blocks) == 0:
            return np.zeros(0)
        tables = self.llr_tables()
        dur = blocks.duration
        total = np.zeros(len(blocks))
        for name in SECOND_FEATURES:
            idx = bin_index(name, blocks.features[name])
            part = np.where(idx >= 0, tables[name][np.maximum(idx, 0)], 0.0) * dur
            if name == "logo_framed":
                # the logo in a block framed by separators: its absence is a spot's, second after second; in a block
                # no longer than a promo its presence says nothing for the show, since the channel's own promos and
                # idents carry it inside the break for all of their 5-30 s (Comskip, for the same reason, ignores a
                # logo run shorter than ~20 s). A longer framed block with the logo is the show's (between two fades)
                part = np.where(dur <= self.cfg.promo_max_s, np.maximum(part, 0.0), part)
            total += part
        total = np.clip(total, -self.cfg.max_block_llr, self.cfg.max_block_llr)
        for name in BLOCK_FEATURES:
            idx = bin_index(name, blocks.features[name])
            total += np.where(idx >= 0, tables[name][np.maximum(idx, 0)], 0.0)
        return total

    def observe(self, blocks: Blocks, labels: np.ndarray, weight: float = 1.0) -> None:
        """Add the features of blocks decided as ``labels`` (1 = ad, 0 = program)."""
        dur = blocks.duration
        for name in (*SECOND_FEATURES, *BLOCK_FEATURES):
            idx = bin_index(name, blocks.features[name])
            ok = idx >= 0
            w = (dur if name in SECOND_FEATURES else np.ones(len(dur))) * weight
            np.add.at(self.observed[name], (labels[ok].astype(int), idx[ok]), w[ok])
        self._forget()
        self._tables = None

    def _forget(self) -> None:
        """Keep the observed weight to about ``memory_s`` seconds (and memory_s / 10 blocks): old evidence fades."""
        for name, counts in self.observed.items():
            cap = self.cfg.memory_s if name in SECOND_FEATURES else self.cfg.memory_s / 10.0
            total = counts.sum()
            if total > cap > 0:
                counts *= cap / total

    def reset(self) -> None:
        for counts in self.observed.values():
            counts[:] = 0.0
        self._tables = None

    def note_break(self, promo: bool, why: str = "") -> None:
        """Count one decided break, and whether it held a promo (``why``: what showed it, for the log). Only the last
        ``BREAKS_KEPT`` count (older ones fade in proportion), so a channel that stops airing promos loses the learned
        end hold after a few dozen breaks."""
        self.breaks += 1.0
        self.promo_breaks += 1.0 if promo else 0.0
        if self.breaks > BREAKS_KEPT:
            scale = BREAKS_KEPT / self.breaks
            self.breaks *= scale
            self.promo_breaks *= scale
        log.info("break checked: %s%s; %.1f of %.1f breaks held one, break ends %s", "a promo" if promo else "no promo",
                 f" ({why})" if why else "", self.promo_breaks, self.breaks,
                 "held" if self.expects_promos() else "not held")

    def promos_seen(self) -> bool:
        """Whether this channel airs promos inside its breaks (at least one among the breaks remembered)."""
        return self.promo_breaks >= 1.0 - 1e-9

    def expects_promos(self) -> bool:
        """Whether a break's end must wait for promos: the channel was seen airing them, or this device has not yet
        checked ``promo_prior_breaks`` breaks (a new device assumes what most channels do)."""
        return self.promos_seen() or self.breaks < self.cfg.promo_prior_breaks - 1e-9

    def has_seen_both(self) -> bool:
        """Whether this stream (or the device, before a restart) has decided at least one break and one program
        segment, so that the histograms are no longer the defaults alone."""
        counts = self.observed["length"]
        return bool(counts[AD].sum() >= 1.0 and counts[PROGRAM].sum() >= 1.0)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the observed histograms atomically as JSON (a device keeps what it learned across restarts)."""
        write_text(path, json.dumps({"version": FILE_VERSION, "observed": self.to_dict(),
                                     "breaks": round(self.breaks, 3), "promo_breaks": round(self.promo_breaks, 3)}))

    def load(self, path: str | os.PathLike[str]) -> bool:
        """Read histograms written by :meth:`save`; ``False`` when there is no file. A file that cannot be read is
        set aside (``<name>.corrupt-<time>``), logged, and the defaults stay: the device learns again."""
        p = Path(path)
        if not p.exists():
            return False
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("version") != FILE_VERSION:
                raise ValueError(f"not a version-{FILE_VERSION} calibration file")
            observed = data.get("observed")
            if not isinstance(observed, dict):
                raise ValueError("no 'observed' histograms")
            counts = [data.get("breaks", 0.0), data.get("promo_breaks", 0.0)]
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
                       for v in counts) or counts[1] > counts[0]:
                raise ValueError("bad break counts")
            self.load_dict(observed)
            self.breaks, self.promo_breaks = float(counts[0]), float(counts[1])
            return True
        except (OSError, UnicodeDecodeError, ValueError, TypeError) as exc:
            try:
                aside = set_aside(p)
                log.warning("fusion calibration %s unreadable (%s): set aside as %s, learning again",
                            p, exc, aside.name)
            except OSError as move_exc:
                log.warning("fusion calibration %s unreadable (%s) and cannot be moved (%s)", p, exc, move_exc)
            self.reset()
            self.breaks = self.promo_breaks = 0.0
            return False

    def to_dict(self) -> dict[str, list[list[float]]]:
        return {name: counts.round(3).tolist() for name, counts in self.observed.items()}

    def load_dict(self, data: Mapping[str, object]) -> None:
        for name, counts in data.items():
            if name in self.observed:
                arr = np.asarray(counts, dtype=np.float64)
                if arr.shape == self.observed[name].shape and np.all(np.isfinite(arr)) and np.all(arr >= 0):
                    self.observed[name] = arr
        self._tables = None
