"""Where a scan decodes at full rate (adbreak/scan/plan.py): silent runs, black intra frames and changes of the logo
between intra frames open padded windows; close windows merge; no sound, or windows everywhere, analyse it whole."""

from __future__ import annotations

import math

import numpy as np
import pytest

from adbreak.scan.plan import PlanConfig, merge, plan_windows

FPS = 5.0
DURATION = 600.0
N = int(DURATION * FPS) + 1
KEY_STEP = 10.0


def quiet() -> np.ndarray:
    """Sound everywhere (silence cue 0 on every grid frame)."""
    return np.zeros(N)


def keys(step: float = KEY_STEP) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Intra frames every ``step`` seconds: none black, the logo on every one."""
    t = np.arange(0.0, DURATION, step)
    return t, np.zeros(t.size), np.ones(t.size)


def silent(s: np.ndarray, a: float, b: float) -> np.ndarray:
    """Grid frames ``a <= k/FPS < b`` silent."""
    s[int(round(a * FPS)):int(round(b * FPS))] = 1.0
    return s


def approx(windows) -> list[tuple[float, float]]:  # noqa: ANN001
    return [(pytest.approx(a, abs=1e-9), pytest.approx(b, abs=1e-9)) for a, b in windows]


# -------------------------------------------------------------------------------------------------------- merge
def test_merge_sorts_clips_and_joins_overlapping_or_close_windows():
    got = merge([(50, 60), (-5, 3), (2, 8), (62, 70), (100, 120), (590, 650)], 3.0, 600.0)
    assert got == [(0.0, 8), (50, 70), (100, 120), (590, 600.0)]


def test_merge_keeps_windows_further_apart_than_the_gap_and_drops_empty_ones():
    assert merge([(10, 20), (23.5, 30)], 3.0, 100.0) == [(10, 20), (23.5, 30)]
    assert merge([(10, 20), (23.0, 30)], 3.0, 100.0) == [(10, 30)]  # exactly the gap apart: one window
    assert merge([(5, 5), (7, 6), (120, 130), (-10, -1)], 3.0, 100.0) == []
    assert merge([], 3.0, 100.0) == []
    assert merge([(30, 40), (35, 38)], 0.0, 100.0) == [(30, 40)]  # a window inside another


# ------------------------------------------------------------------------------------------------------ silence
def test_a_silent_run_becomes_one_window_padded_on_both_sides():
    t, black, logo = keys()
    s = silent(quiet(), 100.0, 102.0)  # grid frames 500..509: 100.0 .. 101.8 s
    assert plan_windows(DURATION, FPS, s, t, black, logo) == approx([(98.0, 103.8)])


def test_a_single_silent_frame_and_each_separate_run_get_their_own_window():
    t, black, logo = keys()
    s = quiet()
    s[1000] = 0.7  # 200.0 s, over the fusion's threshold of 0.5
    s[2000] = 0.49  # under it: not silent
    silent(s, 400.0, 401.0)
    assert plan_windows(DURATION, FPS, s, t, black, logo) == approx([(198.0, 202.0), (398.0, 402.8)])


def test_padding_follows_the_config_and_silence_at_the_edges_is_clipped_to_the_recording():
    t, black, logo = keys()
    s = silent(silent(quiet(), 0.0, 1.0), 599.0, DURATION + 1)
    got = plan_windows(DURATION, FPS, s, t, black, logo, PlanConfig(pad_s=0.5))
    assert got == approx([(0.0, 1.3), (598.5, DURATION)])


def test_unmeasured_frames_of_the_sound_are_not_silence():
    t, black, logo = keys()
    s = quiet()
    s[:100] = math.nan  # the sound starts 20 s late
    s[2500:] = math.nan
    assert plan_windows(DURATION, FPS, s, t, black, logo) == []


def test_close_silent_runs_merge_into_one_window():
    t, black, logo = keys()
    s = silent(silent(quiet(), 100.0, 101.0), 105.0, 106.0)  # (98, 102.8) and (103, 107.8): 0.2 s apart
    assert plan_windows(DURATION, FPS, s, t, black, logo) == approx([(98.0, 107.8)])
    s = silent(silent(quiet(), 100.0, 101.0), 111.0, 112.0)  # (98, 102.8) and (109, 113.8): 6.2 s apart
    assert plan_windows(DURATION, FPS, s, t, black, logo) == approx([(98.0, 102.8), (109.0, 113.8)])


# ------------------------------------------------------------------------------------------------- intra frames
def test_a_black_intra_frame_opens_a_window_from_the_intra_frame_before_to_the_one_after():
    t, black, logo = keys()
    black[20] = 0.9  # t = 200: window 190 .. 210, padded
    assert plan_windows(DURATION, FPS, quiet(), t, black, logo) == approx([(188.0, 212.0)])


def test_a_dim_intra_frame_over_the_planners_lower_threshold_opens_one_too():
    t, black, logo = keys()
    black[20] = 0.35  # below the fusion's 0.5, over the planner's 0.3
    black[40] = 0.25  # below both
    assert plan_windows(DURATION, FPS, quiet(), t, black, logo) == approx([(188.0, 212.0)])


def test_a_black_intra_frame_window_reaches_at_most_max_span_to_far_neighbours():
    t, black, logo = keys(step=60.0)  # a long GOP: neighbours 60 s away
    black[5] = 1.0  # t = 300
    assert plan_windows(DURATION, FPS, quiet(), t, black, logo) == approx([(286.0, 314.0)])  # 300 -/+ 12, padded


def test_black_first_and_last_intra_frames_reach_to_the_recordings_ends():
    t, black, logo = keys()
    black[0] = black[-1] = 1.0  # t = 0 and t = 590
    assert plan_windows(DURATION, FPS, quiet(), t, black, logo) == approx([(0.0, 12.0), (578.0, DURATION)])


def test_a_change_of_the_logo_between_two_intra_frames_opens_a_window_over_them():
    t, black, logo = keys()
    logo[30:] = 0.0  # gone from t = 300: the change lies between 290 and 300
    logo[45:] = 0.8  # back at 450 (changed by 0.8)
    logo[50:] = 0.6  # 500: changed by 0.2 only, under logo_change
    got = plan_windows(DURATION, FPS, quiet(), t, black, logo)
    assert got == approx([(288.0, 302.0), (438.0, 452.0)])


def test_an_unknown_logo_opens_no_window():
    t, black, logo = keys()
    logo[:] = math.nan  # no logo learned
    assert plan_windows(DURATION, FPS, quiet(), t, black, logo) == []
    logo = np.ones(t.size)
    logo[20] = math.nan  # 1, NaN, 0: a change across an unknown value is not seen by the logo rule
    logo[21:] = 0.0
    assert plan_windows(DURATION, FPS, quiet(), t, black, logo) == []


def test_every_kind_of_candidate_together_sorted_and_merged():
    t, black, logo = keys()
    s = silent(quiet(), 121.0, 122.0)  # (119, 123.8)
    black[12] = 1.0  # 120: (108, 132) - joins the silence
    logo[40:] = 0.0  # (388, 402)
    got = plan_windows(DURATION, FPS, s, t, black, logo)
    assert got == approx([(108.0, 132.0), (388.0, 402.0)])
    assert all(b > a for a, b in got) and got == sorted(got)


# ---------------------------------------------------------------------------------------------- the whole thing
def test_no_sound_means_the_whole_recording_is_analysed():
    t, black, logo = keys()
    assert plan_windows(DURATION, FPS, None, t, black, logo) is None
    assert plan_windows(DURATION, FPS, np.full(N, math.nan), t, black, logo) is None


def test_windows_over_most_of_the_recording_mean_the_whole_recording_is_analysed():
    t, black, logo = keys()
    s = quiet()
    for a in np.arange(0.0, DURATION, 6.0):  # a 1 s silence every 6 s: windows of 4.8 s 1.2 s apart, merged
        silent(s, a, a + 1.0)
    assert plan_windows(DURATION, FPS, s, t, black, logo) is None
    logo[::2] = 0.0  # the logo flickering on every intra frame: windows everywhere too
    assert plan_windows(DURATION, FPS, quiet(), t, black, logo) is None


def test_the_share_that_switches_to_a_whole_recording_is_the_configs():
    t, black, logo = keys()
    s = silent(quiet(), 100.0, 400.0)  # one window of 304 s: half the recording
    assert plan_windows(DURATION, FPS, s, t, black, logo) == approx([(98.0, 401.8)])
    assert plan_windows(DURATION, FPS, s, t, black, logo, PlanConfig(full_share=0.4)) is None


def test_a_recording_with_sound_and_no_candidate_needs_no_window():
    t, black, logo = keys()
    assert plan_windows(DURATION, FPS, quiet(), t, black, logo) == []
