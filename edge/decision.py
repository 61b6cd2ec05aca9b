"""The temporal decision: per-frame ``p_ad`` in, program/ad state and back-dated transitions out.

A pure state machine (no I/O, no clock of its own: time is the frames' stream time), fed one frame at a time by
``edge.pipeline.Detector`` live and by ``adbreak evaluate`` offline, so both produce the same decisions. The design,
every parameter and its default are explained in ``docs/decision.md``; in short, for each frame:

1. **Smoothing.** ``smoothed`` is the mean ``p_ad`` of the frames in the last ``window_s`` seconds (``"window"``), or
   an exponential moving average whose weight comes from each frame's real time step (``"ema"``, time constant
   ``ema_tau_s``). A window shorter than one frame interval leaves the frame's own ``p_ad``: per-frame classification.
2. **Initial state.** Until the frames seen cover the smoothing span the state is ``None``; then it is ``AD`` when the
   smoothed value is at least 0.5, else ``PROGRAM``, with its boundary at the first frame's time
   (:attr:`AdStateMachine.initial_state` / :attr:`AdStateMachine.initial_t`; no :class:`Transition` is reported).
3. **Hysteresis.** ``PROGRAM`` -> ``AD`` needs ``smoothed >= enter_threshold``; ``AD`` -> ``PROGRAM`` needs
   ``smoothed <= exit_threshold``; values in between keep the state.
4. **Minimum time.** A change out of a state that began at boundary ``B`` is not emitted before stream time
   ``B + min_time(state)`` and its boundary is never placed earlier than that, so no decided state is shorter than
   its minimum; excursions that end within it are ignored as noise. The initial state is exempt: it began before the
   stream did, so its length is unknown, and a change seen right after start-up is reported at once.
5. **Back-dating.** The boundary of a change is the change point that best separates old from new over the frames
   since the current state's boundary (at most ``max_lookback_s``): the start ``k`` maximising
   ``sum(q_i - 0.5 for i >= k)`` where ``q`` is the probability of the new label (latest ``k`` on ties), placed
   midway between frame ``k - 1`` and frame ``k``. It is clamped to ``[B + min_time, decided_t]``.
"""

from __future__ import annotations

import math
import numbers
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any, Literal

import numpy as np

from adbreak.segments import Segment, segments_from_transitions

_EPS = 1e-9
_P_TOL = 1e-6  # p_ad this far outside [0, 1] is float noise from the head's softmax and is clipped
_MAX_EVIDENCE = 100_000  # frames kept for back-dating, whatever the frame times (guards a flood of equal times)


class Label(StrEnum):
    """The decided state. The bundle's ``ad`` class is ``AD``; every other class counts as ``PROGRAM``."""

    PROGRAM = "program"
    AD = "ad"


@dataclass(frozen=True, kw_only=True)
class DecisionConfig:
    """Settings of the temporal decision (stored in the model bundle's JSON; see ``docs/decision.md``)."""

    smoothing: Literal["window", "ema"] = "window"
    window_s: float = 1.0
    """``"window"``: mean ``p_ad`` over the last ``window_s`` seconds; under one frame interval = per frame."""
    ema_tau_s: float = 0.6
    """``"ema"``: time constant; each frame's weight is ``1 - exp(-dt / tau)`` with its real time step ``dt``."""
    enter_threshold: float = 0.7
    """Smoothed ``p_ad`` at or above it turns ``PROGRAM`` into ``AD``."""
    exit_threshold: float = 0.3
    """Smoothed ``p_ad`` at or below it turns ``AD`` into ``PROGRAM``; must be below ``enter_threshold``."""
    min_ad_s: float = 10.0
    """An ``AD`` state lasts at least this long from its boundary."""
    min_program_s: float = 20.0
    """A ``PROGRAM`` state lasts at least this long from its boundary."""
    max_lookback_s: float = 30.0
    """How far back a boundary may be placed from the frame on which the change is decided."""

    def __post_init__(self) -> None:
        if self.smoothing not in ("window", "ema"):
            raise ValueError(f"smoothing must be 'window' or 'ema', got {self.smoothing!r}")
        for f in fields(self):
            if f.name == "smoothing":
                continue
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ValueError(f"{f.name} must be a number, got {value!r}")
            value = float(value)
            if not math.isfinite(value):
                raise ValueError(f"{f.name} must be finite, got {value!r}")
            object.__setattr__(self, f.name, value)
        for name in ("window_s", "ema_tau_s", "min_ad_s", "min_program_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 seconds, got {getattr(self, name)}")
        for name in ("enter_threshold", "exit_threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if not self.enter_threshold > self.exit_threshold:
            raise ValueError(
                f"enter_threshold ({self.enter_threshold}) must be greater than exit_threshold "
                f"({self.exit_threshold}): the gap between them is the hysteresis"
            )
        if self.max_lookback_s <= 0:
            raise ValueError(f"max_lookback_s must be > 0 seconds, got {self.max_lookback_s}")
        delay = self.window_s if self.smoothing == "window" else 3.0 * self.ema_tau_s
        if self.max_lookback_s < delay:
            what = "window_s" if self.smoothing == "window" else "3 x ema_tau_s"
            raise ValueError(
                f"max_lookback_s ({self.max_lookback_s}) must cover the smoothing delay ({what} = {delay}), "
                "or boundaries could not be back-dated to where the evidence began"
            )

    @property
    def smoothing_span_s(self) -> float:
        """Seconds of frames the smoothing needs before the first decision: ``window_s`` or ``ema_tau_s``."""
        return self.window_s if self.smoothing == "window" else self.ema_tau_s

    def min_time(self, label: Label) -> float:
        """Minimum time in ``label``'s state."""
        return self.min_ad_s if label is Label.AD else self.min_program_s

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of every setting."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DecisionConfig:
        """Inverse of :meth:`to_dict`; missing keys take their defaults, unknown keys raise ``ValueError``."""
        if not isinstance(data, Mapping):
            raise ValueError(f"decision settings must be a mapping, got {type(data).__name__}")
        known = [f.name for f in fields(cls)]
        unknown = sorted(str(k) for k in data if k not in known)
        if unknown:
            raise ValueError(f"unknown decision setting(s) {', '.join(unknown)}; known: {', '.join(known)}")
        return cls(**dict(data))


@dataclass(frozen=True, slots=True)
class Transition:
    """A decided change of state."""

    from_label: Label
    to_label: Label
    decided_t: float
    """Stream time of the frame on which the change was decided."""
    boundary_t: float
    """Estimated true boundary, back-dated to where the evidence for ``to_label`` began."""
    confidence: float
    """Mean probability of ``to_label`` over the frames from ``boundary_t`` to ``decided_t`` (0..1)."""


@dataclass(frozen=True, slots=True)
class Step:
    """The machine's answer to one frame."""

    t: float
    p_ad: float
    smoothed: float
    state: Label | None
    """State after this frame; ``None`` until the smoothing has seen enough frames."""
    transition: Transition | None
    """The change decided on this frame, if any."""


class DecidedState:
    """What every live decider exposes of its decision (``AdStateMachine`` here, ``edge.fusion.FusionDecision``)."""

    _state: Label | None
    _initial_state: Label | None
    _initial_t: float | None
    _boundary: float | None

    @property
    def state(self) -> Label | None:
        """The current state (``None`` before the first decision)."""
        return self._state

    @property
    def initial_state(self) -> Label | None:
        """The first decided state (``None`` before it)."""
        return self._initial_state

    @property
    def initial_t(self) -> float | None:
        """The initial state's boundary: the first frame's time."""
        return self._initial_t

    @property
    def boundary_t(self) -> float | None:
        """Estimated start of the current state."""
        return self._boundary


class AdStateMachine(DecidedState):
    """Online temporal decision over per-frame ``p_ad`` (see the module doc and ``docs/decision.md``)."""

    def __init__(self, config: DecisionConfig | None = None) -> None:
        self._config = config if config is not None else DecisionConfig()
        self.reset()

    def reset(self) -> None:
        """Forget everything: the next frame starts a new stream."""
        self._t0: float | None = None
        self._last_t: float | None = None
        self._frames = 0
        self._ema: float | None = None
        self._window: deque[tuple[float, float]] = deque()
        self._evidence: deque[tuple[float, float]] = deque()
        self._before_t: float | None = None  # time of the last frame dropped from the evidence
        self._state: Label | None = None
        self._initial_state: Label | None = None
        self._initial_t: float | None = None
        self._boundary: float | None = None
        self._in_initial = False

    @property
    def config(self) -> DecisionConfig:
        """The settings this machine runs with."""
        return self._config

    def reconfigure(self, config: DecisionConfig) -> None:
        """Run with ``config`` from the next frame on, keeping the decided state, its boundary and the evidence:
        new thresholds and minimum times apply to the current state as it is. A change of ``smoothing`` (window <->
        ema) restarts the smoothing from the next frame; a new ``window_s`` / ``ema_tau_s`` applies to the frames
        already in the window or the average."""
        if config.smoothing != self._config.smoothing:
            self._window.clear()
            self._ema = None
        self._config = config

    @property
    def frames(self) -> int:
        """Frames seen since the last reset."""
        return self._frames

    def update(self, t: float, p_ad: float) -> Step:
        """Feed one frame: its stream time in seconds and its per-frame ``p_ad``.

        Raises ``ValueError`` for a time that is not finite or goes backwards (equal times are allowed) and for a
        ``p_ad`` that is NaN or outside ``[0, 1]``.
        """
        t = float(t)
        p = float(p_ad)
        if not math.isfinite(t):
            raise ValueError(f"frame time must be finite, got {t!r}")
        if math.isnan(p) or not -_P_TOL <= p <= 1.0 + _P_TOL:
            raise ValueError(f"p_ad must lie in [0, 1], got {p!r} at t={t:.3f}")
        p = min(max(p, 0.0), 1.0)
        if self._last_t is not None and t < self._last_t:
            raise ValueError(f"time went backwards: frame at {t:.3f} s after one at {self._last_t:.3f} s")
        dt = 0.0 if self._last_t is None else t - self._last_t
        if self._t0 is None:
            self._t0 = t
        self._last_t = t
        self._frames += 1

        smoothed = self._smooth(t, p, dt)
        self._evidence.append((t, p))
        self._trim_evidence(t)

        if self._state is None:
            if (t - self._t0) + dt >= self._config.smoothing_span_s - _EPS:
                self._state = Label.AD if smoothed >= 0.5 else Label.PROGRAM
                self._initial_state = self._state
                self._initial_t = self._t0
                self._boundary = self._t0
                self._in_initial = True
            return Step(t, p, smoothed, self._state, None)
        transition = self._decide(t, smoothed)
        return Step(t, p, smoothed, self._state, transition)

    # -- internals -------------------------------------------------------------------------------------------------

    def _smooth(self, t: float, p: float, dt: float) -> float:
        cfg = self._config
        if cfg.smoothing == "ema":
            if self._ema is None:
                self._ema = p
            else:
                alpha = 1.0 if cfg.ema_tau_s <= 0 else -math.expm1(-dt / cfg.ema_tau_s)
                self._ema += alpha * (p - self._ema)
            return min(max(self._ema, 0.0), 1.0)
        window = self._window
        window.append((t, p))
        drop_until = t - cfg.window_s + _EPS  # keep frames with t_i > t - window_s (and always this one)
        while len(window) > 1 and window[0][0] <= drop_until:
            window.popleft()
        return min(max(math.fsum(q for _, q in window) / len(window), 0.0), 1.0)

    def _trim_evidence(self, t: float) -> None:
        lower = t - self._config.max_lookback_s
        if self._boundary is not None:
            lower = max(lower, self._boundary)
        ev = self._evidence
        while ev and (ev[0][0] < lower or len(ev) > _MAX_EVIDENCE):
            self._before_t = ev.popleft()[0]

    def _decide(self, t: float, smoothed: float) -> Transition | None:
        """Hysteresis and the minimum-time rule; on a change, back-date it and switch state."""
        cfg = self._config
        state = self._state
        assert state is not None and self._boundary is not None
        if state is Label.PROGRAM and smoothed >= cfg.enter_threshold - _EPS:
            target = Label.AD
        elif state is Label.AD and smoothed <= cfg.exit_threshold + _EPS:
            target = Label.PROGRAM
        else:
            return None
        floor = self._boundary if self._in_initial else self._boundary + cfg.min_time(state)
        if t < floor - _EPS:
            return None  # the current state has not lasted its minimum yet: hold it
        boundary, confidence = self._estimate_boundary(target, floor, t)
        transition = Transition(state, target, t, boundary, confidence)
        self._state = target
        self._boundary = boundary
        self._in_initial = False
        self._trim_evidence(t)
        return transition

    def _estimate_boundary(self, target: Label, floor: float, t: float) -> tuple[float, float]:
        """Change point over the evidence (cumulative-sum argmax), clamped to ``[floor, t]``; and the confidence."""
        times = np.fromiter((e[0] for e in self._evidence), dtype=np.float64, count=len(self._evidence))
        p_ad = np.fromiter((e[1] for e in self._evidence), dtype=np.float64, count=len(self._evidence))
        q = p_ad if target is Label.AD else 1.0 - p_ad
        suffix = np.cumsum((q - 0.5)[::-1])[::-1]  # suffix[k] = sum over i >= k of (q_i - 0.5)
        k = int(np.flatnonzero(suffix >= suffix.max() - _EPS)[-1])  # latest start on ties: no evidence, no back-dating
        if k > 0:
            boundary = 0.5 * (times[k - 1] + times[k])
        elif self._before_t is not None:
            boundary = 0.5 * (self._before_t + times[0])
        else:
            boundary = float(times[0])
        boundary = min(max(float(boundary), floor), t)
        confidence = float(np.mean(q[times >= boundary]))
        return boundary, confidence


def run(
    ts: Sequence[float] | np.ndarray, ps: Sequence[float] | np.ndarray, config: DecisionConfig | None = None
) -> tuple[Label | None, float | None, list[Transition], np.ndarray]:
    """Offline: feed every frame through a fresh :class:`AdStateMachine` (exactly what ``update`` would decide).

    Returns ``(initial_state, initial_t, transitions, smoothed)`` with ``smoothed`` one value per frame.
    """
    t_arr = np.asarray(ts, dtype=np.float64).reshape(-1)
    p_arr = np.asarray(ps, dtype=np.float64).reshape(-1)
    if len(t_arr) != len(p_arr):
        raise ValueError(f"{len(t_arr)} frame times but {len(p_arr)} p_ad values")
    machine = AdStateMachine(config)
    smoothed = np.empty(len(t_arr), dtype=np.float64)
    transitions: list[Transition] = []
    for i, (t, p) in enumerate(zip(t_arr.tolist(), p_arr.tolist(), strict=True)):
        step = machine.update(t, p)
        smoothed[i] = step.smoothed
        if step.transition is not None:
            transitions.append(step.transition)
    return machine.initial_state, machine.initial_t, transitions, smoothed


def transitions_to_segments(
    initial_label: Label | None, transitions: Sequence[Transition], duration: float
) -> list[Segment]:
    """Segments tiling ``[0, duration]``: the initial label from 0 (the time before the first decision included),
    then each transition's ``to_label`` from its ``boundary_t``. With no decision at all (``initial_label`` None and no
    transitions) the whole duration is ``program``: without evidence nothing is muted.
    """
    if initial_label is None:
        if transitions:
            raise ValueError("transitions without an initial state")
        initial_label = Label.PROGRAM
    return segments_from_transitions(
        Label(initial_label).value, [(tr.boundary_t, tr.to_label.value) for tr in transitions], duration
    )
