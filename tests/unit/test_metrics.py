"""The contract's metrics on hand-built truth / prediction pairs."""

from __future__ import annotations

import pytest

from adbreak.metrics import METRIC_KEYS, evaluate_segments, format_metrics, transition_latencies
from adbreak.segments import Segment

CONTRACT_KEYS = [
    "accuracy", "ad_missed_s", "program_lost_s", "false_breaks", "missed_breaks", "transitions_true",
    "transitions_pred", "transitions_matched", "boundary_err_median_s", "boundary_err_p95_s", "flaps", "segment_f1",
    "latency_median_s", "latency_p95_s", "frames", "fps_analysed", "realtime_factor",
]  # fmt: skip


def segs(*spec: tuple[float, float, str]) -> list[Segment]:
    return [Segment(float(s), float(e), label) for s, e, label in spec]


# program 0-60, one 60 s break, program 120-200
TRUTH = segs((0, 60, "program"), (60, 120, "ad"), (120, 200, "program"))


def test_keys_are_exactly_the_contracts_in_order() -> None:
    assert list(METRIC_KEYS) == CONTRACT_KEYS
    assert list(evaluate_segments(TRUTH, TRUTH)) == CONTRACT_KEYS


def test_perfect_prediction() -> None:
    m = evaluate_segments(TRUTH, TRUTH)
    assert m == {
        "accuracy": 1.0,
        "ad_missed_s": 0.0,
        "program_lost_s": 0.0,
        "false_breaks": 0,
        "missed_breaks": 0,
        "transitions_true": 2,
        "transitions_pred": 2,
        "transitions_matched": 2,
        "boundary_err_median_s": 0.0,
        "boundary_err_p95_s": 0.0,
        "flaps": 0,
        "segment_f1": 1.0,
        "latency_median_s": None,
        "latency_p95_s": None,
        "frames": None,
        "fps_analysed": None,
        "realtime_factor": None,
    }


def test_prediction_late_by_one_second() -> None:
    m = evaluate_segments(TRUTH, segs((0, 61, "program"), (61, 121, "ad"), (121, 200, "program")))
    assert m["ad_missed_s"] == pytest.approx(1.0)  # 60-61: ad still seen
    assert m["program_lost_s"] == pytest.approx(1.0)  # 120-121: program muted
    assert m["accuracy"] == pytest.approx(0.99)  # 2 s wrong of 200
    assert m["transitions_matched"] == 2
    assert m["boundary_err_median_s"] == pytest.approx(1.0)
    assert m["boundary_err_p95_s"] == pytest.approx(1.0)
    assert m["segment_f1"] == 1.0 and m["false_breaks"] == 0 and m["missed_breaks"] == 0 and m["flaps"] == 0


def test_boundary_errors_use_linear_percentiles() -> None:
    # ad entered 2 s early, left 3 s late
    m = evaluate_segments(TRUTH, segs((0, 58, "program"), (58, 123, "ad"), (123, 200, "program")))
    assert m["boundary_err_median_s"] == pytest.approx(2.5)
    assert m["boundary_err_p95_s"] == pytest.approx(2.95)
    assert m["program_lost_s"] == pytest.approx(5.0)
    assert m["ad_missed_s"] == 0.0
    assert m["accuracy"] == pytest.approx(0.975)


def test_false_break_is_also_a_flap() -> None:
    pred = segs((0, 60, "program"), (60, 120, "ad"), (120, 150, "program"), (150, 155, "ad"), (155, 200, "program"))
    m = evaluate_segments(TRUTH, pred)
    assert m["false_breaks"] == 1
    assert m["flaps"] == 1
    assert m["program_lost_s"] == pytest.approx(5.0)
    assert (m["transitions_true"], m["transitions_pred"], m["transitions_matched"]) == (2, 4, 2)
    assert m["segment_f1"] == pytest.approx(round(2 / 3, 4))  # 1 matched of 1 true and 2 predicted


def test_missed_break_when_less_than_half_is_predicted() -> None:
    m = evaluate_segments(TRUTH, segs((0, 60, "program"), (60, 80, "ad"), (80, 200, "program")))
    assert m["missed_breaks"] == 1
    assert m["ad_missed_s"] == pytest.approx(40.0)
    assert m["segment_f1"] == 0.0  # IoU 20/60 < 0.5
    assert m["transitions_matched"] == 1  # the entry; the exit at 80 is 40 s from 120


def test_break_more_than_half_predicted_is_not_missed_and_matches_at_iou_half() -> None:
    m = evaluate_segments(TRUTH, segs((0, 60, "program"), (60, 95, "ad"), (95, 200, "program")))
    assert m["missed_breaks"] == 0
    assert m["segment_f1"] == 1.0  # IoU 35/60


def test_iou_matching_is_one_to_one() -> None:
    # two predicted breaks inside one true break: at most one can match
    pred = segs((0, 60, "program"), (60, 100, "ad"), (100, 105, "program"), (105, 120, "ad"), (120, 200, "program"))
    m = evaluate_segments(TRUTH, pred)
    assert m["segment_f1"] == pytest.approx(round(2 / 3, 4))
    assert m["false_breaks"] == 0 and m["missed_breaks"] == 0
    assert m["flaps"] == 1  # the 5 s program piece


def test_flaps_touching_the_recording_edges_are_not_counted() -> None:
    truth = segs((0, 100, "program"))
    pred = segs((0, 5, "ad"), (5, 95, "program"), (95, 100, "ad"))
    m = evaluate_segments(truth, pred)
    assert m["flaps"] == 0
    assert m["false_breaks"] == 2
    assert m["transitions_true"] == 0 and m["transitions_pred"] == 2 and m["transitions_matched"] == 0
    assert m["boundary_err_median_s"] is None and m["boundary_err_p95_s"] is None
    assert m["segment_f1"] == 0.0


def test_no_breaks_on_either_side_is_a_perfect_f1() -> None:
    truth = segs((0, 100, "program"))
    assert evaluate_segments(truth, segs((0, 50, "program"), (50, 100, "program")))["segment_f1"] == 1.0


def test_transition_matching_needs_same_direction_and_ten_seconds() -> None:
    truth = segs((0, 60, "program"), (60, 200, "ad"))
    assert evaluate_segments(truth, segs((0, 70, "program"), (70, 200, "ad")))["transitions_matched"] == 1
    assert evaluate_segments(truth, segs((0, 70.5, "program"), (70.5, 200, "ad")))["transitions_matched"] == 0
    # a change out of ad near 60 is the wrong direction
    m = evaluate_segments(truth, segs((0, 61, "ad"), (61, 200, "program")))
    assert m["transitions_matched"] == 0 and m["transitions_pred"] == 1


def test_transition_matching_takes_the_nearest_first() -> None:
    truth = segs((0, 60, "program"), (60, 200, "ad"))
    pred = segs((0, 57, "program"), (57, 59, "ad"), (59, 61, "program"), (61, 200, "ad"))
    m = evaluate_segments(truth, pred)
    assert m["transitions_matched"] == 1
    assert m["boundary_err_median_s"] == pytest.approx(1.0)  # 61, not 57


def test_other_labels_count_as_program() -> None:
    truth = segs((0, 60, "program"), (60, 120, "ad"), (120, 130, "bumper"), (130, 200, "program"))
    m = evaluate_segments(truth, TRUTH)
    assert m["accuracy"] == 1.0 and m["transitions_true"] == 2 and m["flaps"] == 0


def test_prediction_is_cut_or_extended_to_the_truth() -> None:
    m = evaluate_segments(TRUTH, segs((0, 60, "program"), (60, 120, "ad"), (120, 150, "program")))
    assert m["accuracy"] == 1.0
    m = evaluate_segments(TRUTH, segs((0, 60, "program"), (60, 120, "ad"), (120, 300, "program")))
    assert m["accuracy"] == 1.0 and m["transitions_pred"] == 2


def test_grid_counts_cells_by_their_centre() -> None:
    truth = segs((0, 10, "program"), (10, 20, "ad"))
    # the boundary at 10.04 is before the 10.05 centre: no cell is wrong; at 10.06 one is
    assert evaluate_segments(truth, segs((0, 10.04, "program"), (10.04, 20, "ad")))["ad_missed_s"] == 0.0
    assert evaluate_segments(truth, segs((0, 10.06, "program"), (10.06, 20, "ad")))["ad_missed_s"] == pytest.approx(0.1)


def test_latency_and_speed() -> None:
    m = evaluate_segments(TRUTH, TRUTH, latencies_s=[1.0, 2.0, 4.0], frames=1000, wall_s=50.0)
    assert m["latency_median_s"] == 2.0
    assert m["latency_p95_s"] == pytest.approx(3.8)
    assert m["frames"] == 1000
    assert m["fps_analysed"] == 20.0
    assert m["realtime_factor"] == 4.0  # 200 s of truth in 50 s
    assert evaluate_segments(TRUTH, TRUTH, wall_s=50.0, duration_s=100.0)["realtime_factor"] == 2.0
    assert evaluate_segments(TRUTH, TRUTH, latencies_s=[])["latency_median_s"] is None


def test_floats_are_rounded_to_four_decimals() -> None:
    m = evaluate_segments(TRUTH, TRUTH, frames=1, wall_s=3.0)
    assert m["fps_analysed"] == 0.3333
    assert m["realtime_factor"] == 66.6667


def test_empty_inputs_are_rejected() -> None:
    with pytest.raises(ValueError):
        evaluate_segments([], TRUTH)
    with pytest.raises(ValueError):
        evaluate_segments(TRUTH, [])


def test_transition_latencies() -> None:
    decided = [
        (30.5, 30.2, "ad"),  # no true transition within 10 s
        (60.8, 60.1, "ad"),
        (121.5, 120.2, "program"),
        (125.0, 119.0, "ad"),  # wrong direction for 120
    ]
    assert transition_latencies(TRUTH, decided) == pytest.approx([0.8, 1.5])
    assert transition_latencies(TRUTH, []) == []


def test_format_metrics_is_a_readable_table() -> None:
    text = format_metrics(evaluate_segments(TRUTH, TRUTH, frames=10, wall_s=2.0))
    lines = text.splitlines()
    assert len(lines) == len(CONTRACT_KEYS)
    assert lines[0].split() == ["accuracy", "1.0000"]
    assert "latency_median_s" in text and "n/a" in text
    assert any(line.split()[:2] == ["frames", "10"] for line in lines)
