"""The temporal decision state machine."""

from __future__ import annotations

import math
import subprocess
import sys
from dataclasses import FrozenInstanceError
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adbreak.segments import Segment
from edge.decision import (
    AdStateMachine,
    DecisionConfig,
    Label,
    Step,
    Transition,
    run,
    transitions_to_segments,
)

FPS = 5.0
DT = 1.0 / FPS
LOW, HIGH = 0.05, 0.95


def frame_times(duration: float, fps: float = FPS) -> np.ndarray:
    return np.arange(int(round(duration * fps))) / fps


def levels(ts: np.ndarray, changes: list[tuple[float, float]], start: float = LOW) -> np.ndarray:
    """p_ad = ``start`` until the first change time, then each change's level from its time on."""
    ps = np.full(len(ts), start)
    for t, level in changes:
        ps[ts >= t] = level
    return ps


def noisy(ts: np.ndarray, truth_ad: np.ndarray, seed: int, sd: float = 0.25) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(np.where(truth_ad, 0.7, 0.3) + rng.normal(0.0, sd, len(ts)), 0.0, 1.0)


# -- the clean case -----------------------------------------------------------------------------------------------


def test_clean_step_gives_one_transition_back_dated_to_the_boundary() -> None:
    ts = frame_times(200)
    true_in, true_out = 50.1, 150.1  # midway between frames
    ps = levels(ts, [(true_in, HIGH), (true_out, LOW)])
    initial, initial_t, transitions, smoothed = run(ts, ps)

    assert initial is Label.PROGRAM and initial_t == 0.0
    assert [(tr.from_label, tr.to_label) for tr in transitions] == [
        (Label.PROGRAM, Label.AD),
        (Label.AD, Label.PROGRAM),
    ]
    for tr, truth in zip(transitions, (true_in, true_out), strict=True):
        assert abs(tr.boundary_t - truth) <= DT / 2 + 1e-9
        # a 1 s window needs >= 72 % new frames to pass 0.7 (from 0.05/0.95 levels): 4 frames of 5, about 0.7 s
        assert tr.decided_t - truth == pytest.approx(0.7, abs=DT)
        assert tr.confidence == pytest.approx(HIGH)
    assert len(smoothed) == len(ts)
    assert smoothed[0] == LOW and smoothed[-1] == pytest.approx(LOW)


def test_state_is_none_until_the_window_is_covered_then_initial_state_without_transition() -> None:
    machine = AdStateMachine(DecisionConfig(window_s=1.0))
    steps = [machine.update(i * DT, 0.9) for i in range(6)]
    assert [s.state for s in steps] == [None, None, None, None, Label.AD, Label.AD]  # 5 frames cover 1 s
    assert all(s.transition is None for s in steps)
    assert machine.initial_state is Label.AD and machine.initial_t == 0.0 and machine.boundary_t == 0.0
    assert steps[0] == Step(t=0.0, p_ad=0.9, smoothed=0.9, state=None, transition=None)


def test_initial_state_is_exempt_from_the_minimum_time() -> None:
    # the stream starts inside a program whose start we never saw; an ad 5 s in is reported at 5 s, not 20 s
    ts = frame_times(60)
    _, _, transitions, _ = run(ts, levels(ts, [(5.1, HIGH)]))
    assert len(transitions) == 1
    assert transitions[0].boundary_t == pytest.approx(5.1)


# -- noise handling -----------------------------------------------------------------------------------------------


def test_single_outlier_frames_change_nothing() -> None:
    ts = frame_times(200)
    ps = levels(ts, [(100.1, HIGH)])
    ps[np.isclose(ts, 40.0)] = 1.0  # in program
    ps[np.isclose(ts, 160.0)] = 0.0  # in ad
    _, _, transitions, _ = run(ts, ps)
    assert len(transitions) == 1
    assert transitions[0].boundary_t == pytest.approx(100.1)


def test_an_outlier_inside_the_new_run_does_not_move_the_boundary() -> None:
    ts = frame_times(100)
    ps = levels(ts, [(50.1, HIGH)])
    ps[np.isclose(ts, 50.6)] = 0.0  # third frame of the ad looks like program
    _, _, transitions, _ = run(ts, ps)
    assert len(transitions) == 1
    assert transitions[0].boundary_t == pytest.approx(50.1)


def test_hysteresis_keeps_the_state_between_the_thresholds() -> None:
    ts = frame_times(300)
    # 0.65 < enter 0.7 keeps program; 0.35 > exit 0.3 keeps ad
    ps = levels(ts, [(30.1, 0.65), (60.1, LOW), (100.1, HIGH), (150.1, 0.35)])
    _, _, transitions, _ = run(ts, ps)
    assert [tr.to_label for tr in transitions] == [Label.AD]
    assert transitions[0].boundary_t == pytest.approx(100.1)
    # the same input with a higher exit threshold does leave the ad state, back-dated to where 0.35 began
    _, _, transitions, _ = run(ts, ps, DecisionConfig(exit_threshold=0.4))
    assert [tr.to_label for tr in transitions] == [Label.AD, Label.PROGRAM]
    assert transitions[1].boundary_t == pytest.approx(150.1)


def test_minimum_time_ignores_a_short_excursion() -> None:
    ts = frame_times(200)
    ps = levels(ts, [(30.1, HIGH), (33.1, LOW), (36.1, HIGH), (120.1, LOW)])  # 3 s program-like dip in the break
    _, _, transitions, _ = run(ts, ps)  # min_ad_s = 10
    assert [round(tr.boundary_t, 1) for tr in transitions] == [30.1, 120.1]
    _, _, transitions, _ = run(ts, ps, DecisionConfig(min_ad_s=0.0, min_program_s=0.0))
    assert [round(tr.boundary_t, 1) for tr in transitions] == [30.1, 33.1, 36.1, 120.1]


def test_minimum_time_holds_a_short_state_and_clamps_the_next_boundary() -> None:
    ts = frame_times(200)
    ps = levels(ts, [(30.1, HIGH), (35.1, LOW)])  # a 5 s "break" against min_ad_s = 10
    _, _, transitions, _ = run(ts, ps)
    enter, leave = transitions
    assert enter.boundary_t == pytest.approx(30.1)
    assert leave.boundary_t == pytest.approx(enter.boundary_t + 10.0)  # never earlier than boundary + min time
    assert leave.decided_t >= leave.boundary_t
    assert leave.decided_t - (enter.boundary_t + 10.0) < DT  # decided on the first frame the rule allows


def test_min_program_applies_after_leaving_an_ad() -> None:
    ts = frame_times(300)
    ps = levels(ts, [(30.1, HIGH), (90.1, LOW), (100.1, HIGH), (200.1, LOW)])  # 10 s of program between breaks
    _, _, transitions, _ = run(ts, ps)  # min_program_s = 20
    assert [round(tr.boundary_t, 1) for tr in transitions] == [30.1, 90.1, 110.1, 200.1]
    _, _, transitions, _ = run(ts, ps, DecisionConfig(min_program_s=5.0))
    assert [round(tr.boundary_t, 1) for tr in transitions] == [30.1, 90.1, 100.1, 200.1]


def test_one_frame_window_flickers_where_a_two_second_window_does_not() -> None:
    ts = frame_times(600)
    truth_ad = ts >= 300.1
    ps = noisy(ts, truth_ad, seed=7)
    no_min = {"min_ad_s": 0.0, "min_program_s": 0.0}
    _, _, naive, _ = run(ts, ps, DecisionConfig(window_s=0.0, **no_min))
    _, _, smooth, _ = run(ts, ps, DecisionConfig(window_s=2.0, **no_min))
    assert len(naive) > 50
    assert len(smooth) == 1
    assert abs(smooth[0].boundary_t - 300.1) < 2.0
    # with the minimum times on, even the naive window is held to at most one ad/program pair per 10 + 20 s
    _, _, held, _ = run(ts, ps, DecisionConfig(window_s=0.0))
    assert len(held) < len(naive) and len(held) <= 2 * (600 / 30 + 1)


def test_window_below_one_frame_interval_is_per_frame_classification() -> None:
    ts = frame_times(120)
    rng = np.random.default_rng(1)
    ps = rng.choice([0.1, 0.3, 0.45, 0.55, 0.8, 0.95], len(ts))
    cfg = DecisionConfig(window_s=0.1, enter_threshold=0.5, exit_threshold=0.49, min_ad_s=0.0, min_program_s=0.0)
    machine = AdStateMachine(cfg)
    steps = [machine.update(t, p) for t, p in zip(ts, ps, strict=True)]
    assert all(s.smoothed == s.p_ad for s in steps)
    states = [s.state for s in steps[1:]]  # the first frame alone cannot tell the frame interval
    assert states == [Label.AD if p >= 0.5 else Label.PROGRAM for p in ps[1:]]


# -- smoothing variants and timing ----------------------------------------------------------------------------


def test_ema_mode_clean_step() -> None:
    tau = 0.6
    ts = frame_times(100)
    ps = levels(ts, [(50.1, HIGH)])
    initial, _, transitions, smoothed = run(ts, ps, DecisionConfig(smoothing="ema", ema_tau_s=tau))
    assert initial is Label.PROGRAM
    (tr,) = transitions
    assert abs(tr.boundary_t - 50.1) <= DT / 2 + 1e-9
    # 0.95 - 0.9 * exp(-d / tau) reaches 0.7 after d = tau * ln(0.9 / 0.25); the first ad frame's weight covers
    # the interval before it, so d counts from the last program frame (50.0)
    expected = 50.0 + tau * math.log(0.9 / 0.25)
    assert expected - 1e-9 <= tr.decided_t < expected + DT
    assert smoothed[-1] == pytest.approx(HIGH, abs=1e-6)


def test_ema_weights_frames_by_their_real_time_step() -> None:
    cfg = DecisionConfig(smoothing="ema", ema_tau_s=1.0)
    machine = AdStateMachine(cfg)
    machine.update(0.0, 0.0)
    step = machine.update(0.5, 1.0)
    assert step.smoothed == pytest.approx(1 - math.exp(-0.5))
    step = machine.update(10.5, 0.0)  # after a 10 s gap the old value is all but forgotten
    assert step.smoothed == pytest.approx((1 - math.exp(-0.5)) * math.exp(-10.0))
    assert machine.update(10.5, 1.0).smoothed == step.smoothed  # no time passed: no weight


def test_irregular_frame_times() -> None:
    rng = np.random.default_rng(11)
    ts = np.cumsum(rng.uniform(0.05, 0.45, 1500))
    ps = np.where(ts >= 120.0, HIGH, LOW)
    last_old, first_new = ts[ts < 120.0][-1], ts[ts >= 120.0][0]
    for cfg in (DecisionConfig(), DecisionConfig(smoothing="ema")):
        _, _, transitions, _ = run(ts, ps, cfg)
        (tr,) = transitions
        assert tr.boundary_t == pytest.approx((last_old + first_new) / 2)
        assert 0 < tr.decided_t - first_new < 2.0


def test_back_dating_is_bounded_by_max_lookback() -> None:
    ts = frame_times(200)
    # weakly ad-like program (0.55 stays under the enter threshold) for 90 s, then a clear ad: the evidence for
    # "ad" reaches back over the whole weak stretch, as far as the lookback allows
    ps = levels(ts, [(10.1, 0.55), (100.1, HIGH)])
    _, _, (tr,), _ = run(ts, ps, DecisionConfig(max_lookback_s=30.0))
    assert tr.decided_t - 30.0 - DT <= tr.boundary_t <= tr.decided_t - 30.0 + DT
    _, _, (tr,), _ = run(ts, ps, DecisionConfig(max_lookback_s=120.0))
    assert tr.boundary_t == pytest.approx(10.1)


def test_equal_times_are_allowed_and_backwards_time_raises() -> None:
    machine = AdStateMachine()
    machine.update(1.0, 0.2)
    machine.update(1.0, 0.3)
    with pytest.raises(ValueError, match="backwards"):
        machine.update(0.9, 0.3)


@pytest.mark.parametrize(
    ("t", "p"), [(0.0, float("nan")), (0.0, 1.5), (0.0, -0.2), (float("nan"), 0.5), (math.inf, 0.5)]
)
def test_bad_frames_raise(t: float, p: float) -> None:
    with pytest.raises(ValueError):
        AdStateMachine().update(t, p)


def test_float_noise_around_zero_and_one_is_clipped() -> None:
    step = AdStateMachine().update(0.0, 1.0 + 1e-9)
    assert step.p_ad == 1.0 and step.smoothed == 1.0


def test_reset_starts_a_new_stream() -> None:
    ts = frame_times(100)
    ps = levels(ts, [(50.1, HIGH)])
    machine = AdStateMachine()
    for t, p in zip(ts, ps, strict=True):
        machine.update(t, p)
    assert machine.state is Label.AD and machine.frames == len(ts)
    machine.reset()
    assert machine.state is None and machine.initial_state is None and machine.frames == 0
    machine.update(0.0, 0.5)  # earlier than before the reset: fine


def test_run_equals_repeated_update() -> None:
    ts = frame_times(900)
    truth_ad = ((ts >= 200) & (ts < 380)) | (ts >= 700)
    ps = noisy(ts, truth_ad, seed=3, sd=0.35)
    for cfg in (DecisionConfig(), DecisionConfig(smoothing="ema"), DecisionConfig(window_s=0.0, min_ad_s=2.0)):
        initial, initial_t, transitions, smoothed = run(ts, ps, cfg)
        machine = AdStateMachine(cfg)
        steps = [machine.update(t, p) for t, p in zip(ts, ps, strict=True)]
        assert [s.transition for s in steps if s.transition is not None] == transitions
        np.testing.assert_array_equal([s.smoothed for s in steps], smoothed)
        assert (machine.initial_state, machine.initial_t) == (initial, initial_t)
    with pytest.raises(ValueError):
        run([0.0, 1.0], [0.5])


def test_transitions_to_segments_uses_boundary_times() -> None:
    ts = frame_times(200)
    initial, _, transitions, _ = run(ts, levels(ts, [(50.1, HIGH), (150.1, LOW)]))
    segments = transitions_to_segments(initial, transitions, 200.0)
    assert [s.label for s in segments] == ["program", "ad", "program"]
    assert segments[1].start == pytest.approx(50.1) and segments[1].end == pytest.approx(150.1)
    assert segments[0].start == 0.0 and segments[-1].end == 200.0
    assert transitions_to_segments(None, [], 10.0) == [Segment(0.0, 10.0, "program")]
    with pytest.raises(ValueError):
        transitions_to_segments(None, transitions, 200.0)


# -- configuration ------------------------------------------------------------------------------------------------


def test_config_defaults_and_round_trip() -> None:
    cfg = DecisionConfig()
    assert cfg.to_dict() == {
        "smoothing": "window",
        "window_s": 1.0,
        "ema_tau_s": 0.6,
        "enter_threshold": 0.7,
        "exit_threshold": 0.3,
        "min_ad_s": 10.0,
        "min_program_s": 20.0,
        "max_lookback_s": 30.0,
    }
    other = DecisionConfig(smoothing="ema", window_s=2, min_ad_s=5)
    assert DecisionConfig.from_dict(other.to_dict()) == other
    assert isinstance(other.window_s, float)  # ints from JSON are stored as floats
    assert DecisionConfig.from_dict({}) == cfg
    with pytest.raises(FrozenInstanceError):
        cfg.window_s = 2.0  # type: ignore[misc]


def test_config_from_dict_rejects_unknown_keys() -> None:
    with pytest.raises(ValueError, match="unknown decision setting.*windw_s"):
        DecisionConfig.from_dict({"windw_s": 2.0})
    with pytest.raises(ValueError):
        DecisionConfig.from_dict([("window_s", 2.0)])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"smoothing": "median"}, "smoothing must be"),
        ({"window_s": -1.0}, "window_s must be >= 0"),
        ({"ema_tau_s": -0.1}, "ema_tau_s must be >= 0"),
        ({"window_s": float("nan")}, "window_s must be finite"),
        ({"window_s": "1"}, "window_s must be a number"),
        ({"min_ad_s": True}, "min_ad_s must be a number"),
        ({"min_program_s": -5.0}, "min_program_s must be >= 0"),
        ({"enter_threshold": 0.3, "exit_threshold": 0.3}, "must be greater than exit_threshold"),
        ({"enter_threshold": 0.2}, "must be greater than exit_threshold"),
        ({"enter_threshold": 1.5}, r"enter_threshold must lie in \[0, 1\]"),
        ({"exit_threshold": -0.1}, r"exit_threshold must lie in \[0, 1\]"),
        ({"max_lookback_s": 0.0}, "max_lookback_s must be > 0"),
        ({"max_lookback_s": 1.0, "window_s": 2.0}, "must cover the smoothing delay"),
        ({"max_lookback_s": 1.0, "smoothing": "ema", "ema_tau_s": 0.5}, "must cover the smoothing delay"),
    ],
)
def test_config_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DecisionConfig(**kwargs)


# -- properties ---------------------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    frames=st.lists(
        st.tuples(st.floats(0.0, 1.0), st.sampled_from([0.0, 0.04, 0.2, 0.5, 3.0])), min_size=1, max_size=400
    ),
    smoothing=st.sampled_from(["window", "ema"]),
    window_s=st.sampled_from([0.0, 0.3, 1.0]),
    min_ad_s=st.sampled_from([0.0, 1.0, 15.0]),
    min_program_s=st.sampled_from([0.0, 2.0, 20.0]),
    max_lookback_s=st.sampled_from([1.0, 5.0, 30.0]),
)
def test_transitions_alternate_and_boundaries_are_ordered(
    frames: list[tuple[float, float]],
    smoothing: str,
    window_s: float,
    min_ad_s: float,
    min_program_s: float,
    max_lookback_s: float,
) -> None:
    cfg = DecisionConfig(
        smoothing=smoothing,  # type: ignore[arg-type]
        window_s=window_s,
        ema_tau_s=0.3,
        min_ad_s=min_ad_s,
        min_program_s=min_program_s,
        max_lookback_s=max_lookback_s,
    )
    ts = np.cumsum([dt for _, dt in frames])
    ps = [p for p, _ in frames]
    initial, initial_t, transitions, _ = run(ts, ps, cfg)
    previous: Label | None = initial
    last_boundary = initial_t if initial_t is not None else -math.inf
    for i, tr in enumerate(transitions):
        assert isinstance(tr, Transition)
        assert tr.from_label is previous and tr.to_label is not tr.from_label
        assert last_boundary <= tr.boundary_t <= tr.decided_t
        assert 0.0 <= tr.confidence <= 1.0
        if i > 0:  # every state after the initial one lasts its minimum
            assert tr.boundary_t - last_boundary >= cfg.min_time(tr.from_label) - 1e-9
        previous, last_boundary = tr.to_label, tr.boundary_t
    if transitions:
        assert transitions_to_segments(initial, transitions, float(ts[-1]) + 1.0)[-1].end == float(ts[-1]) + 1.0


def test_the_pure_modules_import_no_io_libraries() -> None:
    code = (
        "import sys, edge.decision, adbreak.segments, adbreak.scores, adbreak.metrics; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('cv2', 'av', 'paho', 'flask', 'flask_socketio')))"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
