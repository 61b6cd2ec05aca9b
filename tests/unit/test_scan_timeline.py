"""Every pass's values on one frame grid, and the decided boundaries moved onto the exact frame
(adbreak/scan/timeline.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from adbreak.scan import timeline
from adbreak.scan.timeline import assemble, edges, snap_to_frames
from adbreak.segments import Segment
from edge.fusion import CUE_COLUMNS

FPS = 5.0
N = 100  # 20 s of grid


def no_keys() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    return np.zeros(0, np.int64), {}


def build(*, audio=None, key_k=None, key_values=None, windows=(), max_hold_s=30.0, n=N):  # noqa: ANN001, ANN202
    """Each window given is one full-rate window: its span is its first to last grid frame."""
    kk, kv = no_keys()
    spans = [(min(ks), max(ks)) for ks, _ in windows if len(ks)]
    return assemble(n, FPS, audio=audio, key_k=kk if key_k is None else np.asarray(key_k, np.int64),
                    key_values=kv if key_values is None else key_values, windows=list(windows), spans=spans,
                    max_hold_s=max_hold_s)


def known(col: np.ndarray) -> list[int]:
    return np.flatnonzero(np.isfinite(col)).tolist()


# ------------------------------------------------------------------------------------------------------ assemble
def test_the_grid_and_every_column_of_the_scores_file_unmeasured_by_default():
    t, cols = build()
    assert t.tolist() == pytest.approx([k / FPS for k in range(N)])
    assert set(cols) == set(CUE_COLUMNS)
    assert all(col.shape == (N,) and not np.isfinite(col).any() for col in cols.values())


def test_audio_values_land_on_every_grid_frame_they_cover():
    silence = np.linspace(0.0, 1.0, 60)
    loudness = np.full(60, 0.25)
    _, cols = build(audio={"silence": silence, "loudness": loudness})
    assert cols["silence"][:60].tolist() == pytest.approx(silence.tolist())
    assert known(cols["silence"]) == list(range(60)) and known(cols["loudness"]) == list(range(60))
    longer = np.arange(N + 25, dtype=float)  # the audio pass's grid guessed from a longer header duration
    _, cols = build(audio={"silence": longer, "loudness": longer})
    assert cols["silence"].tolist() == pytest.approx(longer[:N].tolist())


def test_intra_frame_values_land_on_their_grid_frames_and_out_of_range_ones_are_dropped():
    key_k = [0, 10, 37, -1, N, N + 7]
    black = np.array([0.1, 0.9, 0.3, 0.5, 0.5, 0.5])
    luma = np.array([0.4, 0.02, 0.5, 0.5, 0.5, 0.5])
    _, cols = build(key_k=key_k, key_values={"black": black, "luma": luma})
    assert known(cols["black"]) == [0, 10, 37]
    assert cols["black"][[0, 10, 37]].tolist() == pytest.approx([0.1, 0.9, 0.3])
    assert cols["luma"][[0, 10, 37]].tolist() == pytest.approx([0.4, 0.02, 0.5])
    assert not np.isfinite(cols["cut"]).any()


def test_window_values_land_on_their_grid_frames_and_override_the_coarse_ones():
    ks = [40, 41, 42, 43, N + 1]  # the last one beyond the grid (a window running past the end)
    values = {"black": [0.0, 1.0, 1.0, 0.0, 1.0], "cut": [0.0, 0.0, 0.0, 1.0, 0.0],
              "not_a_column": [9.0] * 5}
    _, cols = build(key_k=[40], key_values={"black": np.array([0.5])}, windows=[(ks, values)])
    assert known(cols["black"]) == [40, 41, 42, 43]
    assert cols["black"][40:44].tolist() == [0.0, 1.0, 1.0, 0.0]  # the window's value, not the intra frame's
    assert cols["cut"][40:44].tolist() == [0.0, 0.0, 0.0, 1.0]
    assert "not_a_column" not in cols  # a value the fusion does not read is dropped


def test_the_logo_is_held_between_two_intra_frames_that_agree():
    _, cols = build(key_k=[0, 10, 20, 30], key_values={"logo": np.array([1.0, 0.9, 0.0, 0.05])})
    logo = cols["logo"]
    assert logo[1:10].tolist() == pytest.approx([0.95] * 9)  # between 1.0 and 0.9: their mean
    assert not np.isfinite(logo[11:20]).any()  # 0.9 then 0.0: the logo changed somewhere between, unknown where
    assert logo[21:30].tolist() == pytest.approx([0.025] * 9)  # agreeing absence is held too
    assert not np.isfinite(logo[31:]).any()  # nothing after the last value


def test_the_logo_is_held_no_longer_than_max_hold():
    _, cols = build(key_k=[0, 50, 60], key_values={"logo": np.array([1.0, 1.0, 1.0])}, max_hold_s=5.0)
    assert not np.isfinite(cols["logo"][1:50]).any()  # 10 s apart: more than 5 s
    assert np.isfinite(cols["logo"][51:60]).all()  # 2 s apart


def test_the_logo_is_not_held_across_a_window():
    """A window between two agreeing intra frames is where something changed: its frames keep their own values
    and the stretch across it is not filled from the two outer values."""
    window = (list(range(28, 33)), {"black": [0.0, 1.0, 1.0, 1.0, 0.0]})  # a separator, logo not measured
    _, cols = build(key_k=[20, 40], key_values={"logo": np.array([1.0, 1.0])}, windows=[window])
    assert known(cols["logo"]) == [20, 40]
    window = (list(range(28, 33)), {"logo": [1.0, 0.0, 0.0, 0.0, 1.0]})  # the logo gone for a moment
    _, cols = build(key_k=[20, 40], key_values={"logo": np.array([1.0, 1.0])}, windows=[window])
    logo = cols["logo"]
    assert logo[28:33].tolist() == [1.0, 0.0, 0.0, 0.0, 1.0]
    assert np.isfinite(logo[20:41]).all()  # held from the intra frames up to the window's edges, not inside it


def test_hold_tolerance_is_the_modules():
    a, b = 1.0, 1.0 - timeline.LOGO_HOLD_TOLERANCE - 0.01
    _, cols = build(key_k=[0, 10], key_values={"logo": np.array([a, b])})
    assert not np.isfinite(cols["logo"][1:10]).any()


# ------------------------------------------------------------------------------------------------------- edges
def test_edges_are_the_first_frame_on_and_the_first_frame_off_again():
    t = np.arange(0, 40) * 0.04  # 25 fps
    on = np.zeros(40, bool)
    on[10:20] = True  # 0.40 .. 0.76 black
    on[30:] = True  # 1.20 .. the end
    starts, ends = edges(t, on)
    assert starts.tolist() == pytest.approx([0.40, 1.20])
    assert ends.tolist() == pytest.approx([0.80])


def test_edges_ignore_changes_between_samples_further_apart_than_max_step():
    t = np.array([0.0, 0.04, 0.08, 5.0, 5.04, 5.08, 5.12])  # two windows, 5 s apart
    on = np.array([False, False, False, True, True, False, False])
    starts, ends = edges(t, on, max_step_s=0.1)
    assert starts.size == 0  # off at 0.08, on at 5.0: not neighbours
    assert ends.tolist() == pytest.approx([5.08])


def test_edges_sort_frames_first_and_need_two_of_them():
    t = np.array([0.08, 0.0, 0.04, 0.12])
    on = np.array([True, False, False, True])
    starts, ends = edges(t, on)
    assert starts.tolist() == pytest.approx([0.08]) and ends.size == 0
    assert [e.size for e in edges(np.array([1.0]), np.array([True]))] == [0, 0]


# ------------------------------------------------------------------------------------------------ snap_to_frames
def segs(*bounds: float, first: str = "program") -> list[Segment]:
    labels = [first, "ad" if first == "program" else "program"]
    return [Segment(a, b, labels[i % 2]) for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True))]


def assert_tiles(out: list[Segment], start: float, end: float) -> None:
    assert out[0].start == start and out[-1].end == end
    assert all(x.end == y.start and x.label != y.label for x, y in zip(out[:-1], out[1:], strict=True))


def test_a_boundary_near_a_black_edge_moves_onto_the_first_frame_after_the_change():
    """program -> ad moves to the first black frame, ad -> program to the first frame after the last black one."""
    black = (np.array([10.04, 50.0]), np.array([20.28, 60.0]))
    out = snap_to_frames(segs(0.0, 10.2, 20.2, 30.0), black)
    assert [(s.start, s.end, s.label) for s in out] == [(0.0, 10.04, "program"), (10.04, 20.28, "ad"),
                                                          (20.28, 30.0, "program")]


def test_boundaries_far_from_any_edge_stay():
    black = (np.array([10.6]), np.array([19.0]))  # 0.4 s and 1.2 s away: more than reach_s
    out = snap_to_frames(segs(0.0, 10.2, 20.2, 30.0), black)
    assert out == segs(0.0, 10.2, 20.2, 30.0)
    assert snap_to_frames(segs(0.0, 10.2, 20.2, 30.0), (np.zeros(0), np.zeros(0))) == segs(0.0, 10.2, 20.2, 30.0)


def test_a_boundary_moves_only_to_an_edge_of_its_own_direction():
    black = (np.array([20.1]), np.array([10.1]))  # an end near the break's start and a start near its end
    assert snap_to_frames(segs(0.0, 10.2, 20.2, 30.0), black) == segs(0.0, 10.2, 20.2, 30.0)


def test_silence_edges_place_a_boundary_without_a_black_edge_near_it():
    black = (np.array([10.1]), np.zeros(0))
    silence = (np.array([10.15]), np.array([20.35]))
    out = snap_to_frames(segs(0.0, 10.2, 20.2, 30.0), black, silence)
    assert [(s.start, s.end) for s in out] == [(0.0, 10.1), (10.1, 20.35), (20.35, 30.0)]  # black first


def test_snapping_never_crosses_a_segments_other_end_and_the_segments_still_tile():
    black = (np.array([5.0, 5.25]), np.array([5.1]))  # a 0.3 s ad break: both edges near each boundary
    out = snap_to_frames(segs(0.0, 5.0, 5.3, 30.0), black)
    assert_tiles(out, 0.0, 30.0)
    assert all(s.end > s.start for s in out)
    rng = np.random.default_rng(4)
    for _ in range(200):
        bounds = np.sort(rng.uniform(0.0, 100.0, 8)).tolist()
        black = (rng.uniform(0.0, 100.0, 10), rng.uniform(0.0, 100.0, 10))
        silence = (rng.uniform(0.0, 100.0, 10), rng.uniform(0.0, 100.0, 10))
        out = snap_to_frames(segs(0.0, *bounds, 100.0), black, silence, reach_s=3.0)
        assert_tiles(out, 0.0, 100.0)
        assert all(s.end > s.start for s in out)


def test_one_segment_or_labels_that_are_not_ad_and_program_stay():
    one = [Segment(0.0, 30.0, "program")]
    assert snap_to_frames(one, (np.array([10.0]), np.array([20.0]))) == one
    other = [Segment(0.0, 10.2, "program"), Segment(10.2, 30.0, "sport")]
    assert snap_to_frames(other, (np.array([10.1]), np.array([10.1]))) == other


def test_nan_free_output_times():
    out = snap_to_frames(segs(0.0, 10.2, 20.2, 30.0), (np.array([10.04]), np.array([20.28])))
    assert all(math.isfinite(s.start) and math.isfinite(s.end) for s in out)
