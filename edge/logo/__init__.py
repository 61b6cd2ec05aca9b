"""The channel logo ("bug"), learned on the device by itself, and its presence on every analysed frame.

See :mod:`edge.logo.learner` for the method. ``LogoLearner(config, state_path).update(frame)`` returns the logo's
presence in [0, 1], or ``UNKNOWN`` (NaN) while no logo is known or the cue is dropped; :class:`LogoCue` is the same
behind the :class:`edge.cues.base.Cue` protocol.
"""

from edge.logo.config import LogoConfig
from edge.logo.learner import LogoCue, LogoLearner, LogoScorer

__all__ = ["LogoConfig", "LogoCue", "LogoLearner", "LogoScorer"]
