"""server.review's pure planning: each correction over hand-built segments (no database)."""

from __future__ import annotations

import pytest

from server.review import (
    MIN_SEGMENT_S,
    CorrectionError,
    apply_plan,
    audit,
    overlaps,
    plan_confirm,
    plan_merge,
    plan_move,
    plan_relabel,
    plan_split,
)

T = 1_800_000_000.0
NOW = T + 10_000
USER = "alice"


def seg(id_, label, start, end, *, status=None, confidence=0.9, **extra):
    return {"id": id_, "device_id": 1, "label": label, "start": T + start, "end": None if end is None else T + end,
            "status": status or ("open" if end is None else "closed"), "confidence": confidence,
            "model_version": "m1", "start_event_id": f"s{id_}", "end_event_id": None if end is None else f"e{id_}",
            "detected_label": None, "review": None, "reviewed_by": None, "reviewed_ts": None, **extra}


@pytest.fixture
def day():
    """program 0-100, ad 100-160, program 160-300 (interrupted), gap, program 400-500, ad 500-open."""
    return [seg(1, "program", 0, 100), seg(2, "ad", 100, 160), seg(3, "program", 160, 300, status="interrupted"),
            seg(4, "program", 400, 500), seg(5, "ad", 500, None)]


def tiles(segs):
    """No overlap, and every id unique; returns (start, end, label) relative to T."""
    assert overlaps(segs, NOW) == []
    ids = [s["id"] for s in segs if s["id"] is not None]
    assert len(ids) == len(set(ids))
    return [(s["start"] - T, None if s["end"] is None else s["end"] - T, s["label"]) for s in segs]


def refused(kind, fn, *args, **kwargs) -> str:
    with pytest.raises(CorrectionError) as info:
        fn(*args, user=USER, now=NOW, **kwargs)
    assert info.value.kind == kind, info.value.message
    return info.value.message


# ---------------------------------------------------------------------------------------------------- relabel
def test_relabel_keeps_the_detected_label_once(day):
    plan = plan_relabel(day, 2, "program", user=USER, now=NOW)
    assert plan.action == "relabel" and plan.removed == []
    (new,) = plan.after
    assert (new["label"], new["detected_label"], new["review"], new["reviewed_by"], new["reviewed_ts"]) == \
        ("program", "ad", "corrected", USER, NOW)
    assert plan.before == [day[1]] and day[1]["label"] == "ad"  # the input is not changed
    after = apply_plan(day, plan)
    assert tiles(after)[:3] == [(0, 100, "program"), (100, 160, "program"), (160, 300, "program")]
    # relabelled back: the detector's label stays the original one
    again = plan_relabel(after, 2, "ad", user="bob", now=NOW + 1)
    assert again.after[0]["detected_label"] == "ad" and again.after[0]["reviewed_by"] == "bob"


def test_relabel_refusals(day):
    assert "already ad" in refused("invalid", plan_relabel, day, 2, "ad")
    assert "still open" in refused("conflict", plan_relabel, day, 5, "program")
    assert refused("not_found", plan_relabel, day, 99, "ad") == "no segment 99"
    assert "expected one of program, ad" in refused("invalid", plan_relabel, day, 2, "music")


# ---------------------------------------------------------------------------------------------------- move
def test_moving_a_shared_edge_moves_both_segments(day):
    plan = plan_move(day, 2, start=T + 90, user=USER, now=NOW)
    assert [s["id"] for s in plan.before] == [1, 2]
    assert {s["id"]: (s["start"] - T, s["end"] - T) for s in plan.after} == {1: (0, 90), 2: (90, 160)}
    assert all(s["review"] == "corrected" and s["detected_label"] is not None for s in plan.after)
    assert tiles(apply_plan(day, plan))[:3] == [(0, 90, "program"), (90, 160, "ad"), (160, 300, "program")]

    plan = plan_move(day, 2, end=T + 175, user=USER, now=NOW)
    assert tiles(apply_plan(day, plan))[1:3] == [(100, 175, "ad"), (175, 300, "program")]
    # both edges at once
    plan = plan_move(day, 2, start=T + 101, end=T + 150, user=USER, now=NOW)
    assert tiles(apply_plan(day, plan))[:3] == [(0, 101, "program"), (101, 150, "ad"), (150, 300, "program")]


def test_moving_an_edge_next_to_a_gap_stays_in_the_gap(day):
    plan = plan_move(day, 3, end=T + 350, user=USER, now=NOW)
    assert [s["id"] for s in plan.after] == [3]
    assert tiles(apply_plan(day, plan))[2:4] == [(160, 350, "program"), (400, 500, "program")]
    plan = plan_move(day, 4, start=T + 300, user=USER, now=NOW)  # exactly up to the previous end
    assert tiles(apply_plan(day, plan))[2:4] == [(160, 300, "program"), (300, 500, "program")]
    assert "overlap the segment after (4" in refused("invalid", plan_move, day, 3, end=T + 401)
    assert "overlap the segment before (3" in refused("invalid", plan_move, day, 4, start=T + 299)
    # the last segment before a gap cannot end after now
    last = [seg(1, "program", 0, 100, status="interrupted")]
    assert "in the future" in refused("invalid", plan_move, last, 1, end=NOW + 5)
    # the very first segment has no neighbour before it: its start may move earlier
    plan = plan_move(day, 1, start=T - 50, user=USER, now=NOW)
    assert tiles(apply_plan(day, plan))[0] == (-50, 100, "program")


def test_move_keeps_every_part_at_least_the_minimum(day):
    assert MIN_SEGMENT_S == 1.0
    assert "segment before (1) shorter than 1 s" in refused("invalid", plan_move, day, 2, start=T + 0.5)
    assert "segment after (3) shorter than 1 s" in refused("invalid", plan_move, day, 2, end=T + 299.5)
    assert "shorter than 1 s" in refused("invalid", plan_move, day, 2, start=T + 159.5)
    assert "shorter than 1 s" in refused("invalid", plan_move, day, 2, start=T + 170)  # past its own end
    plan = plan_move(day, 2, start=T + 1, end=T + 299, user=USER, now=NOW)  # exactly the minimum either side
    assert tiles(apply_plan(day, plan))[:3] == [(0, 1, "program"), (1, 299, "ad"), (299, 300, "program")]


def test_move_refuses_open_segments_and_no_change(day):
    assert "still open" in refused("conflict", plan_move, day, 5, start=T + 490)
    assert "segment after (5) is still open" in refused("conflict", plan_move, day, 4, end=T + 490)
    assert "already spans" in refused("invalid", plan_move, day, 2, start=T + 100)
    assert "give start and/or end" in refused("invalid", plan_move, day, 2)
    assert "finite" in refused("invalid", plan_move, day, 2, start=float("nan"))


# ---------------------------------------------------------------------------------------------------- split
def test_split_into_two_with_the_second_part_relabelled(day):
    plan = plan_split(day, 3, T + 200, label="ad", user=USER, now=NOW)
    first, second = plan.after
    assert first["id"] == 3 and second["id"] is None
    assert (first["label"], first["status"], first["end_event_id"]) == ("program", "closed", None)
    # the second part ends where the segment ended, as it ended (interrupted)
    assert (second["label"], second["status"], second["start_event_id"]) == ("ad", "interrupted", None)
    assert first["detected_label"] == second["detected_label"] == "program"
    assert tiles(apply_plan(day, plan))[2:4] == [(160, 200, "program"), (200, 300, "ad")]


def test_split_relabels_the_part_before_and_without_label_keeps_both(day):
    plan = plan_split(day, 2, T + 130, label="program", part="before", user=USER, now=NOW)
    assert tiles(apply_plan(day, plan))[1:3] == [(100, 130, "program"), (130, 160, "ad")]
    assert plan.after[1]["end_event_id"] == "e2"
    plan = plan_split(day, 2, T + 130, user=USER, now=NOW)
    assert tiles(apply_plan(day, plan))[1:3] == [(100, 130, "ad"), (130, 160, "ad")]


def test_split_refusals(day):
    assert "at least 1 s on each side" in refused("invalid", plan_split, day, 2, T + 100.5)
    assert "must lie inside segment 2" in refused("invalid", plan_split, day, 2, T + 170)
    assert "still open" in refused("conflict", plan_split, day, 5, T + 600)
    assert "part 'middle'" in refused("invalid", plan_split, day, 2, T + 130, part="middle")


# ---------------------------------------------------------------------------------------------------- merge
def test_merge_three_into_the_first(day):
    plan = plan_merge(day, [3, 1, 2], label="program", user=USER, now=NOW)
    assert plan.removed == [2, 3] and [s["id"] for s in plan.before] == [1, 2, 3]
    (merged,) = plan.after
    assert merged["id"] == 1 and merged["status"] == "interrupted" and merged["end_event_id"] == "e3"
    assert merged["detected_label"] == "program"  # most of the time was detected as program
    assert tiles(apply_plan(day, plan))[:2] == [(0, 300, "program"), (400, 500, "program")]


def test_merge_weights_the_confidence_by_length():
    segs = [seg(1, "ad", 0, 30, confidence=0.6), seg(2, "ad", 30, 120, confidence=1.0)]
    (merged,) = plan_merge(segs, [1, 2], user=USER, now=NOW).after
    assert merged["label"] == "ad" and merged["confidence"] == pytest.approx((0.6 * 30 + 1.0 * 90) / 120)


def test_merge_refusals(day):
    assert "different labels" in refused("invalid", plan_merge, day, [1, 2])
    assert "gap from" in refused("invalid", plan_merge, day, [3, 4])
    assert "segment 2 lies between" in refused("invalid", plan_merge, day, [1, 3], label="program")
    assert "still open" in refused("conflict", plan_merge, day, [4, 5], label="ad")
    assert "at least two" in refused("invalid", plan_merge, day, [1])
    assert "more than once" in refused("invalid", plan_merge, day, [1, 1])
    assert refused("not_found", plan_merge, day, [1, 42], label="ad") == "no segment 42"


# ---------------------------------------------------------------------------------------------------- confirm
def test_confirm_marks_reviewed_without_change(day):
    (new,) = plan_confirm(day, 2, user=USER, now=NOW).after
    assert (new["review"], new["reviewed_by"], new["detected_label"]) == ("confirmed", USER, None)
    assert {k: v for k, v in new.items() if not k.startswith("review")} == \
        {k: v for k, v in day[1].items() if not k.startswith("review")}
    corrected = apply_plan(day, plan_relabel(day, 2, "program", user=USER, now=NOW))
    (again,) = plan_confirm(corrected, 2, user="bob", now=NOW + 5).after
    assert (again["review"], again["reviewed_by"], again["reviewed_ts"]) == ("corrected", "bob", NOW + 5)
    assert "still open" in refused("conflict", plan_confirm, day, 5)


def test_audit_keeps_the_compact_fields(day):
    assert audit(day[:1]) == [{"id": 1, "label": "program", "start": T, "end": T + 100, "status": "closed",
                               "detected_label": None, "review": None}]


def test_overlaps_finds_a_bad_tiling(day):
    assert overlaps(day, NOW) == []
    bad = [*day, seg(6, "ad", 450, 460)]
    assert overlaps(bad, NOW) == [(4, 6)]
    assert overlaps([seg(7, "ad", 0, None), seg(8, "ad", 50, 60)]) == [(7, 8)]
