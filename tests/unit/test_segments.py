"""The contract's segment files: reader, writer and the segment helpers."""

from __future__ import annotations

from pathlib import Path

import pytest

from adbreak.errors import AdbreakError
from adbreak.segments import (
    Segment,
    is_ad,
    label_at,
    merge_adjacent,
    read_segments,
    segments_from_transitions,
    write_segments,
)

GOOD = "start,end,label\n0,30.0,program\n30.000,90.5,ad\n90.5,120,program\n"


def _file(tmp_path: Path, text: str, name: str = "truth.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _error(tmp_path: Path, text: str) -> str:
    with pytest.raises(AdbreakError) as info:
        read_segments(_file(tmp_path, text))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("truth.csv")
    return message


def test_reads_a_good_file(tmp_path: Path) -> None:
    segments = read_segments(_file(tmp_path, GOOD))
    assert segments == [Segment(0.0, 30.0, "program"), Segment(30.0, 90.5, "ad"), Segment(90.5, 120.0, "program")]
    assert segments[1].duration == pytest.approx(60.5)


def test_tolerates_bom_spaces_blank_lines_and_rounding(tmp_path: Path) -> None:
    text = "\ufeffstart, end ,label\n0.0004,10.0,program\n\n10.0008, 20.5 , ad \n20.5,30,program\n\n"
    segments = read_segments(_file(tmp_path, text))
    # boundaries within 1 ms are snapped: the segments tile exactly
    assert segments == [Segment(0.0, 10.0, "program"), Segment(10.0, 20.5, "ad"), Segment(20.5, 30.0, "program")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "start,end,label\n0,10,program\n10,20,ad\n20,30,program\n32,40,ad\n",
            "truth.csv row 5: gap of 2.000 s between 30.000 and 32.000",
        ),
        ("start,end,label\n0,10,program\n9,20,ad\n", "truth.csv row 3: overlap of 1.000 s"),
        ("start,end,label\n0,10,program\n20,30,ad\n10,20,program\n", "truth.csv row 4: rows are not sorted"),
        ("start,stop,label\n0,10,program\n", "truth.csv row 1: header"),
        ("label,start,end\n", "truth.csv row 1: header"),
        ("start,end,label\n0,ten,program\n", "truth.csv row 2: end 'ten' is not a number"),
        ("start,end,label\n0,nan,program\n", "truth.csv row 2: end 'nan' is not a finite number"),
        ("start,end,label\n0,10,program\n10,20,  \n", "truth.csv row 3: empty label"),
        ("start,end,label\n0,10,program\n10,10,ad\n10,20,program\n", "truth.csv row 3: end 10.000 is not after start"),
        ("start,end,label\n0,10,program\n10,5,ad\n", "truth.csv row 3: end 5.000 is not after start 10.000"),
        ("start,end,label\n5,10,program\n", "truth.csv row 2: the first segment starts at 5.000 s"),
        ("start,end,label\n0,10\n", "truth.csv row 2: expected 3 fields"),
        ("start,end,label\n0,10,program,extra\n", "truth.csv row 2: expected 3 fields"),
        ("start,end,label\n", "truth.csv has no segments"),
        ("", "truth.csv is empty"),
    ],
)
def test_rejects_bad_files_with_file_row_and_reason(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in _error(tmp_path, text)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AdbreakError, match="does not exist"):
        read_segments(tmp_path / "nope.csv")


def test_write_then_read_round_trips_with_three_decimals(tmp_path: Path) -> None:
    path = tmp_path / "out" / "pred.csv"
    segments = [Segment(0.0, 10.12345, "program"), Segment(10.12345, 70.0, "ad"), Segment(70.0, 99.9996, "program")]
    write_segments(path, segments)
    assert path.read_text() == "start,end,label\n0.000,10.123,program\n10.123,70.000,ad\n70.000,100.000,program\n"
    assert read_segments(path) == [
        Segment(0.0, 10.123, "program"),
        Segment(10.123, 70.0, "ad"),
        Segment(70.0, 100.0, "program"),
    ]
    assert [p.name for p in path.parent.iterdir()] == ["pred.csv"]  # no temporary left behind


def test_writer_quotes_odd_labels_and_drops_pieces_lost_to_rounding(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    write_segments(path, [Segment(0, 5, "a,b"), Segment(5, 5.0002, "ad"), Segment(5.0002, 9, "program")])
    assert read_segments(path) == [Segment(0, 5, "a,b"), Segment(5, 9, "program")]


@pytest.mark.parametrize(
    "segments",
    [
        [],
        [Segment(1, 5, "ad")],
        [Segment(0, 5, "ad"), Segment(6, 9, "program")],
        [Segment(0, 5, "ad"), Segment(4, 9, "program")],
        [Segment(0, 5, "")],
    ],
)
def test_writer_refuses_segments_that_do_not_tile(tmp_path: Path, segments: list[Segment]) -> None:
    path = tmp_path / "s.csv"
    with pytest.raises(AdbreakError, match="cannot write s.csv"):
        write_segments(path, segments)
    assert not path.exists()


def test_segment_validates_and_is_frozen() -> None:
    with pytest.raises(ValueError):
        Segment(5, 4, "ad")
    with pytest.raises(ValueError):
        Segment(0, float("inf"), "ad")
    seg = Segment(1, 4, "ad")
    with pytest.raises(AttributeError):
        seg.start = 2  # type: ignore[misc]


def test_is_ad_only_for_the_ad_label() -> None:
    assert is_ad("ad")
    assert not is_ad("program")
    assert not is_ad("bumper")
    assert not is_ad("Ad")


def test_merge_adjacent_joins_same_label_neighbours() -> None:
    segments = [Segment(0, 5, "ad"), Segment(5, 8, "ad"), Segment(8, 9, "program"), Segment(9, 12, "ad")]
    assert merge_adjacent(segments) == [Segment(0, 8, "ad"), Segment(8, 9, "program"), Segment(9, 12, "ad")]
    assert merge_adjacent([]) == []


def test_segments_from_transitions() -> None:
    assert segments_from_transitions("program", [(30.0, "ad"), (90.0, "program")], 120.0) == [
        Segment(0, 30, "program"),
        Segment(30, 90, "ad"),
        Segment(90, 120, "program"),
    ]


def test_segments_from_transitions_clamps_and_drops_zero_length_pieces() -> None:
    # a change at -1 (clamped to 0) replaces the initial label; two changes at 50 leave no zero-length piece;
    # a change past the end changes nothing; a change to the same label merges
    transitions = [(-1.0, "ad"), (20.0, "ad"), (50.0, "program"), (50.0, "ad"), (70.0, "program"), (150.0, "ad")]
    assert segments_from_transitions("program", transitions, 100.0) == [
        Segment(0, 70, "ad"),
        Segment(70, 100, "program"),
    ]


def test_segments_from_transitions_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        segments_from_transitions("program", [(50.0, "ad"), (40.0, "program")], 100.0)
    with pytest.raises(ValueError):
        segments_from_transitions("program", [], 0.0)


def test_label_at() -> None:
    segments = [Segment(0, 30, "program"), Segment(30, 90, "ad"), Segment(90, 120, "program")]
    assert label_at(segments, 0.0) == "program"
    assert label_at(segments, 29.999) == "program"
    assert label_at(segments, 30.0) == "ad"  # half-open: a boundary belongs to the segment it starts
    assert label_at(segments, 89.9) == "ad"
    assert label_at(segments, 120.0) == "program"  # the last segment holds its end
    with pytest.raises(ValueError):
        label_at(segments, 120.5)
    with pytest.raises(ValueError):
        label_at(segments, -0.1)
