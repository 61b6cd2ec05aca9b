"""The fused, duration-aware decision: per-frame cues in, program/ad decisions out, live and offline.

* :class:`FusionDecision` is the live decoder, a drop-in for :class:`edge.decision.AdStateMachine` (same
  ``update(t, ...) -> Step``, ``state``, ``initial_state``, ``boundary_t``): on every frame it re-decodes the recent
  window exactly (:func:`edge.fusion.hsmm.viterbi`) with the decided state pinned at its boundary, and switches
  when the best explanation ending in the other state beats the current one by ``margin`` nats. The change is
  back-dated to where that explanation's last segment begins: a cut point, so a break starts at its first black
  frame. After every change the segments just decided re-train the cue histograms (:mod:`edge.fusion.calibration`).
* :func:`decode_offline` decodes a whole recording exactly, with a few rounds of re-estimating the histograms from
  its own decoded labels (hard EM).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from adbreak.segments import AD_LABEL, PROGRAM_LABEL, Segment, merge_adjacent
from edge.decision import DecidedState, Label, Step, Transition
from edge.fusion.calibration import Calibration
from edge.fusion.config import FusionConfig
from edge.fusion.evidence import CUE_COLUMNS, Blocks, columns_from_rows, make_blocks
from edge.fusion.hsmm import AD, PROGRAM, viterbi

_LABELS = {PROGRAM: Label.PROGRAM, AD: Label.AD}


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-min(x, 700.0)))
    z = math.exp(max(x, -700.0))
    return z / (1.0 + z)


def _check(value: float, name: str, t: float) -> float:
    v = float(value)
    if math.isnan(v):
        return v
    if not -1e-6 <= v <= 1.0 + 1e-6:
        raise ValueError(f"cue {name} must lie in [0, 1] or be NaN, got {v!r} at t={t:.3f}")
    return min(max(v, 0.0), 1.0)


@dataclass(frozen=True)
class OfflineResult:
    segments: list[Segment]
    blocks: Blocks
    evidence: np.ndarray  # per block, nats of ad over program with the final histograms
    labels: np.ndarray  # per block, 1 = ad
    calibration: Calibration


def _block_labels(n: int, segments: list[tuple[int, int, int]]) -> np.ndarray:
    labels = np.zeros(n, dtype=np.int64)
    for a, b, label in segments:
        labels[a : b + 1] = label
    return labels


def decode_offline(
    t: np.ndarray,
    rows: Mapping[str, np.ndarray],
    cfg: FusionConfig | None = None,
    *,
    duration: float | None = None,
    calibration: Calibration | None = None,
) -> OfflineResult:
    """The exact decision over a whole recording's frames (times ``t``, cue columns ``rows``; missing columns are
    not measured). Segments tile ``[0, duration]`` (default: half a frame past the last frame)."""
    cfg = cfg or FusionConfig()
    t = np.asarray(t, dtype=np.float64)
    if len(t) == 0:
        raise ValueError("no frames to decide on")
    cols = columns_from_rows(rows, len(t))
    end = duration if duration is not None else None
    blocks = make_blocks(t, cols, cfg, start_t=0.0, end_t=end)
    cal = calibration or Calibration(cfg)
    labels = np.zeros(len(blocks), dtype=np.int64)
    e = np.zeros(len(blocks))
    for it in range(cfg.em_iterations + 1):
        e = cal.block_llr(blocks)
        dec = viterbi(blocks.t0, blocks.t1, e, cfg)
        labels = _block_labels(len(blocks), dec.segments)
        if it < cfg.em_iterations:
            cal.reset()
            cal.observe(blocks, labels)
    segs = [
        Segment(float(blocks.t0[a]), float(blocks.t1[b]), AD_LABEL if lab == AD else PROGRAM_LABEL)
        for a, b, lab in dec.segments
    ]
    return OfflineResult(merge_adjacent(segs), blocks, e, labels, cal)


class _Columns:
    """Growable per-frame arrays (time + every cue column) with cheap dropping of old frames."""

    def __init__(self) -> None:
        self._cap = 1024
        self._data = np.full((len(CUE_COLUMNS) + 1, self._cap), np.nan)
        self._lo = 0
        self._hi = 0

    def append(self, t: float, values: Mapping[str, float]) -> None:
        if self._hi == self._cap:
            live = self._hi - self._lo
            if live * 2 > self._cap:
                self._cap *= 2
            data = np.full((len(CUE_COLUMNS) + 1, self._cap), np.nan)
            data[:, :live] = self._data[:, self._lo : self._hi]
            self._data, self._lo, self._hi = data, 0, live
        col = self._data[:, self._hi]
        col[0] = t
        for k, name in enumerate(CUE_COLUMNS, start=1):
            col[k] = values.get(name, math.nan)
        self._hi += 1

    def drop_before(self, t: float) -> None:
        times = self._data[0, self._lo : self._hi]
        self._lo += int(np.searchsorted(times, t, side="left"))

    def since(self, t: float) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        times = self._data[0, self._lo : self._hi]
        k = self._lo + int(np.searchsorted(times, t, side="left"))
        view = self._data[:, k : self._hi]
        return view[0], {name: view[i] for i, name in enumerate(CUE_COLUMNS, start=1)}

    def __len__(self) -> int:
        return self._hi - self._lo


class FusionDecision(DecidedState):
    """Live fused decision (see the module doc). Feed ``update(t, values)`` with the frame's cue values by the
    scores file's column names (``p_ad``, ``logo``, ``black``, ...); missing or NaN values are not measured."""

    def __init__(self, config: FusionConfig | None = None, calibration: Calibration | None = None) -> None:
        self._config = config or FusionConfig()
        self.calibration = calibration or Calibration(self._config)
        self.reset()

    def reset(self) -> None:
        self._frames = _Columns()
        self._t0: float | None = None
        self._last_t: float | None = None
        self._count = 0
        self._state: Label | None = None
        self._initial_state: Label | None = None
        self._initial_t: float | None = None
        self._boundary: float | None = None
        self._observed_until = -math.inf
        self._warm = False
        self._break_start: float | None = None  # where the current (or last) break began
        self._check_at: float | None = None  # stream time of the pending second look at the last break
        self._break_noted = False  # the current break was already counted as holding a promo
        self.last_margin = 0.0
        self.closed_break: list[tuple[float, float, float, bool]] = []
        """The blocks of the last break decided: (start, end, mean logo presence, is a separator)."""

    # -- the AdStateMachine surface ----------------------------------------------------------------------------------
    @property
    def config(self) -> FusionConfig:
        return self._config

    def reconfigure(self, config: FusionConfig) -> None:
        """Run with ``config`` from the next frame on, keeping the decided state and the learned histograms."""
        self._config = config
        self.calibration.cfg = config
        self.calibration._tables = None

    @property
    def frames(self) -> int:
        return self._count

    def update(self, t: float, values: Mapping[str, float] | float) -> Step:
        """One frame: its stream time and its cue values (a bare number is the head's ``p_ad`` alone)."""
        t = float(t)
        if not math.isfinite(t):
            raise ValueError(f"frame time must be finite, got {t!r}")
        if self._last_t is not None and t < self._last_t:
            raise ValueError(f"time went backwards: frame at {t:.3f} s after one at {self._last_t:.3f} s")
        if not isinstance(values, Mapping):
            values = {"p_ad": float(values)}
        clean = {k: _check(v, k, t) for k, v in values.items() if k in CUE_COLUMNS}
        if self._last_t is not None and t == self._last_t:
            return Step(t, clean.get("p_ad", math.nan), _sigmoid(self.last_margin_ad), self._state, None)
        if self._t0 is None:
            self._t0 = t
            # a device that already decided breaks and shows (before a restart, or earlier in this process) starts
            # with learned histograms: its first minutes need no extra margin
            self._warm = self.calibration.has_seen_both()
        self._last_t = t
        self._count += 1
        self._frames.append(t, clean)
        transition = self._decide(t)
        return Step(t, clean.get("p_ad", math.nan), _sigmoid(self.last_margin_ad), self._state, transition)

    # -- internals --------------------------------------------------------------------------------------------------
    last_margin_ad = 0.0  # best score ending in ad minus ending in program, on the latest frame

    def _decide(self, t: float) -> Transition | None:
        cfg = self._config
        assert self._t0 is not None
        if self._state is None:
            if t - self._t0 < cfg.startup_s - 1e-9:
                return None
            times, cols = self._frames.since(self._t0)
            blocks = make_blocks(times, cols, cfg)
            dec = viterbi(blocks.t0, blocks.t1, self.calibration.block_llr(blocks), cfg)
            self.last_margin_ad = dec.best_end[AD] - dec.best_end[PROGRAM]
            # without clear evidence a stream starts as program: nothing is muted on a guess (the first state stays
            # open to correction, so a break already on at start is still found, back to the stream's start)
            label = AD if self.last_margin_ad >= cfg.margin + cfg.warmup_margin else PROGRAM
            self._state = self._initial_state = _LABELS[label]
            self._initial_t = self._boundary = self._t0
            if label == AD:
                self._break_start = self._t0
            return None
        assert self._boundary is not None
        if self._check_at is not None and t >= self._check_at and self._state is Label.PROGRAM:
            self._second_look(t)
        start = max(self._boundary, t - cfg.window_s)
        keep = start if self._check_at is None or self._break_start is None else min(start, self._break_start)
        self._frames.drop_before(keep - 1.0)
        times, cols = self._frames.since(start)
        if len(times) == 0:
            return None
        first_edge = self._boundary if start == self._boundary else None
        blocks = make_blocks(times, cols, cfg, start_t=first_edge)
        e = self.calibration.block_llr(blocks)
        current = AD if self._state is Label.AD else PROGRAM
        initial = self._boundary == self._initial_t
        dec = viterbi(
            blocks.t0,
            blocks.t1,
            e,
            cfg,
            # the first state was decided on a stream's first seconds: it stays open to correction as a whole
            first_label=None if initial else current,
            first_start_t=self._boundary,
            first_exempt=initial,
        )
        self.last_margin_ad = dec.best_end[AD] - dec.best_end[PROGRAM]
        other = 1 - current
        margin = dec.best_end[other] - dec.best_end[current]
        self.last_margin = margin
        warmup = 0.0
        if cfg.warmup_s > 0 and not self._warm:
            warmup = cfg.warmup_margin * max(0.0, 1.0 - (t - self._t0) / cfg.warmup_s)
        if margin < cfg.margin + warmup:
            return None
        path = dec.best_path_end[other]
        first_block = path[-1][0]
        boundary = float(blocks.t0[first_block])
        if other == PROGRAM and t - boundary < self.end_hold(cfg) - 1e-9:
            return None  # the show must last the end hold before the break is over (a promo would not)
        if first_block == 0 and initial:
            boundary = self._boundary  # the first state, decided on the first seconds alone, was wrong all along
        elif first_block == 0 or boundary <= self._boundary:
            return None  # cannot place the change after the current state's start: wait for more evidence
        # the decided stretch re-trains the histograms (each block once)
        labels = _block_labels(len(blocks), path)
        done = (blocks.t1 <= boundary + 1e-9) & (blocks.t0 >= self._observed_until - 1e-9)
        if done.any():
            sub = Blocks(
                blocks.first[done], blocks.stop[done], blocks.t0[done], blocks.t1[done],
                {k: v[done] for k, v in blocks.features.items()},
            )
            self.calibration.observe(sub, labels[done])
            self._observed_until = boundary
        if other == PROGRAM:
            # the break just decided, block by block: what the ad memory may keep (see ``clean_ad_spans``)
            ad_blocks = (labels == AD) & (blocks.t1 <= boundary + 1e-9)
            # a spot framed by separators keeps its logo share under ``logo_framed``, any other block under ``logo``
            logo = np.where(np.isnan(blocks.features["logo"]), blocks.features["logo_framed"], blocks.features["logo"])
            self.closed_break = [
                (float(blocks.t0[i]), float(blocks.t1[i]), float(logo[i]), bool(blocks.features["separator"][i] == 1))
                for i in np.flatnonzero(ad_blocks)
            ]
            if not self._break_noted and holds_promo(self.closed_break, cfg):
                # the break, held long enough, took in a stretch with the channel's logo: a promo or ident
                self.calibration.note_break(promo=True, why=f"a logo block inside the break ending at {boundary:.1f} s")
                self._break_noted = True
        if other == AD:
            returned = self._state is Label.PROGRAM and not initial and self._break_start is not None
            if returned and boundary - self._boundary < cfg.min_program_s:
                # the "show" that ended the last break lasted less than a show: the channel's promo (or ident) with
                # its logo, inside the break. Learned now, so this break's end is already held
                if not self._break_noted:
                    self.calibration.note_break(promo=True, why=f"the show that ended it at {self._boundary:.1f} s "
                                                f"lasted {boundary - self._boundary:.1f} s")
                self._break_noted = True
                self._check_at = None
            else:
                self._break_start = boundary
                self._break_noted = False
        else:
            self._check_at = boundary + cfg.promo_check_s
        confidence = _sigmoid(margin)
        transition = Transition(self._state, _LABELS[other], t, boundary, confidence)
        self._state = _LABELS[other]
        self._boundary = boundary
        return transition


    def end_hold(self, cfg: FusionConfig | None = None) -> float:
        """How long the show must have lasted before a break is decided over: ``end_hold_s``, or ``promo_hold_s``
        once this device has seen its channel air promos inside its breaks, or has not yet checked enough breaks to
        know that it does not (``promo_prior_breaks``)."""
        cfg = cfg or self._config
        if cfg.promo_hold_s > 0 and self.calibration.expects_promos():
            return max(cfg.end_hold_s, cfg.promo_hold_s)
        return cfg.end_hold_s

    def _second_look(self, t: float) -> None:
        """Decode the last break again, ``promo_check_s`` after its end, with only its start pinned: when the best
        explanation now ends it a spot length or more later, the stretch after the decided end (a block with the
        logo, then a separator) was the channel's promo closing the break. Counted once per break."""
        cfg = self._config
        start, end = self._break_start, self._boundary
        self._check_at = None
        if start is None or end is None:
            return
        if self._break_noted:
            self._break_noted = False
            return
        times, cols = self._frames.since(start)
        if len(times) == 0:
            return
        blocks = make_blocks(times, cols, cfg, start_t=start)
        dec = viterbi(blocks.t0, blocks.t1, self.calibration.block_llr(blocks), cfg, first_label=AD,
                      first_start_t=start, first_exempt=True)
        path = dec.best_path_end[PROGRAM]
        later = bool(path) and float(blocks.t0[path[-1][0]]) >= end + cfg.spot_min_s - cfg.spot_tolerance_s
        if later or logo_known(self.closed_break):
            # a break whose blocks had no learned logo to look at cannot show that it held no promo
            self.calibration.note_break(promo=later, why=f"the break ending at {end:.1f} s, decoded again, ends at "
                                        f"{float(blocks.t0[path[-1][0]]):.1f} s" if later else "")


def logo_known(blocks: list[tuple[float, float, float, bool]]) -> bool:
    """Whether the learned logo's presence was measured on any non-separator block of a decided break."""
    return any(not separator and not math.isnan(logo) for _, _, logo, separator in blocks)


def holds_promo(blocks: list[tuple[float, float, float, bool]], cfg: FusionConfig) -> bool:
    """Whether a decided break (its blocks as in ``FusionDecision.closed_break``) holds the channel's promo or ident:
    a block that is no separator, lasts a spot's length up to ``promo_max_s``, with the logo on at least
    ``promo_logo`` of it. (A frame or two between blacks where the show's logo still shows is no promo.)"""
    shortest = cfg.spot_min_s - cfg.spot_tolerance_s
    return any(
        not separator
        and not math.isnan(logo)
        and logo >= cfg.promo_logo
        and shortest - 1e-9 <= t1 - t0 <= cfg.promo_max_s + 1e-9
        for t0, t1, logo, separator in blocks
    )


def clean_ad_spans(blocks: list[tuple[float, float, float, bool]], max_logo: float = 0.2) -> list[tuple[float, float]]:
    """The stretches of a decided break worth remembering as ads: its blocks that are not separators and where the
    learned channel logo is known to be absent. A block with the logo may be the show's cold open or the channel's
    own promo, and a break decided before any logo was learned may be a mistake; remembering either would make the
    show's footage "a known ad" when it is seen again, and the mistake would feed itself. Adjacent blocks are
    joined."""
    spans: list[tuple[float, float]] = []
    for t0, t1, logo, separator in blocks:
        if separator or math.isnan(logo) or logo > max_logo:
            continue
        if spans and abs(spans[-1][1] - t0) < 1e-6:
            spans[-1] = (spans[-1][0], t1)
        else:
            spans.append((t0, t1))
    return spans


def run_online(
    t: np.ndarray, rows: Mapping[str, np.ndarray], config: FusionConfig | None = None
) -> tuple[Label | None, float | None, list[Transition], np.ndarray]:
    """Feed every frame through a fresh :class:`FusionDecision` (what ``update`` decides live).

    Returns ``(initial_state, initial_t, transitions, fused)`` with ``fused`` the fused P(ad) of each frame."""
    machine = FusionDecision(config)
    n = len(t)
    cols = columns_from_rows(rows, n)
    fused = np.empty(n)
    transitions: list[Transition] = []
    names = list(cols)
    matrix = np.vstack([cols[name] for name in names]) if names else np.zeros((0, n))
    for i in range(n):
        step = machine.update(float(t[i]), dict(zip(names, matrix[:, i].tolist(), strict=True)))
        fused[i] = step.smoothed
        if step.transition is not None:
            transitions.append(step.transition)
    return machine.initial_state, machine.initial_t, transitions, fused
