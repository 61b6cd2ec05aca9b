"""Fusion and the duration-aware decision: cues -> blocks -> evidence -> semi-Markov decoding.

* :mod:`edge.fusion.config` — :class:`FusionConfig`, every setting (in the model bundle as ``fusion``).
* :mod:`edge.fusion.evidence` — cut points and blocks with their features (pure numpy).
* :mod:`edge.fusion.calibration` — per-cue class-conditional histograms: how far each cue is trusted.
* :mod:`edge.fusion.hsmm` — the exact two-state semi-Markov Viterbi with duration priors.
* :mod:`edge.fusion.decoder` — :class:`FusionDecision` (live, fixed lag) and :func:`decode_offline` (exact).
"""

from edge.fusion.calibration import Calibration
from edge.fusion.config import FusionConfig
from edge.fusion.decoder import FusionDecision, OfflineResult, decode_offline, run_online
from edge.fusion.evidence import CUE_COLUMNS

__all__ = [
    "CUE_COLUMNS",
    "Calibration",
    "FusionConfig",
    "FusionDecision",
    "OfflineResult",
    "decode_offline",
    "run_online",
]
