"""The contract's per-frame scores file."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from adbreak.errors import AdbreakError
from adbreak.scores import read_scores, write_scores


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "SCORES.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_reads_required_and_extra_columns(tmp_path: Path) -> None:
    t, p, extra = read_scores(_file(tmp_path, "t,p_ad,p_program,black\n0,0.1,0.9,0\n0.2,0.85,0.15,\n0.4,1,0,1\n"))
    assert t.dtype == np.float64 and p.dtype == np.float64
    np.testing.assert_array_equal(t, [0.0, 0.2, 0.4])
    np.testing.assert_array_equal(p, [0.1, 0.85, 1.0])
    assert list(extra) == ["p_program", "black"]
    np.testing.assert_array_equal(extra["p_program"], [0.9, 0.15, 0.0])
    assert extra["black"][0] == 0 and math.isnan(extra["black"][1]) and extra["black"][2] == 1


def test_minimal_file_has_no_extras(tmp_path: Path) -> None:
    t, p, extra = read_scores(_file(tmp_path, "t,p_ad\n0.5,0.25\n"))
    assert t.tolist() == [0.5] and p.tolist() == [0.25] and extra == {}


def test_round_trip_is_exact(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    t = np.cumsum(rng.uniform(0.01, 0.5, 200))
    p = rng.uniform(0, 1, 200)
    p[:2] = [0.0, 1.0]
    cue = rng.normal(size=200)
    cue[5] = np.nan
    path = tmp_path / "deep" / "SCORES.csv"
    write_scores(path, t, p, {"cue": cue})
    t2, p2, extra = read_scores(path)
    np.testing.assert_array_equal(t2, t)  # bit for bit: a re-run of the decision reproduces the live one
    np.testing.assert_array_equal(p2, p)
    np.testing.assert_array_equal(extra["cue"], cue)  # NaN positions equal too
    assert path.read_text().splitlines()[0] == "t,p_ad,cue"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "SCORES.csv is empty"),
        ("t,p_ad\n", "SCORES.csv has no rows"),
        ("time,p_ad\n0,0.5\n", "SCORES.csv row 1: header"),
        ("p_ad,t\n0,0.5\n", "SCORES.csv row 1: header"),
        ("t,p_ad,x,x\n0,0.5,1,2\n", "SCORES.csv row 1: column 'x' appears more than once"),
        ("t,p_ad,\n0,0.5,1\n", "SCORES.csv row 1: an extra column has no name"),
        ("t,p_ad\n0,0.5\n0.2\n", "SCORES.csv row 3: expected 2 fields, got 1"),
        ("t,p_ad\n0,0.5\n0.2,high\n", "SCORES.csv row 3: p_ad 'high' is not a number"),
        ("t,p_ad\n0,0.5\nx,0.2\n", "SCORES.csv row 3: t 'x' is not a number"),
        ("t,p_ad\n0,0.5\n0.2,1.5\n", "SCORES.csv row 3: p_ad 1.5 is outside [0, 1]"),
        ("t,p_ad\n0,0.5\n0.2,-0.1\n", "SCORES.csv row 3: p_ad -0.1 is outside [0, 1]"),
        ("t,p_ad\n0,0.5\n0.2,nan\n", "SCORES.csv row 3: p_ad 'nan' is not a finite number"),
        ("t,p_ad\n0,0.5\n0.2,0.4\n0.2,0.4\n", "SCORES.csv row 4: t 0.2 does not increase"),
        ("t,p_ad\n1,0.5\n0.5,0.4\n", "SCORES.csv row 3: t 0.5 does not increase"),
        ("t,p_ad\n-1,0.5\n", "SCORES.csv row 2: t -1.0 is negative"),
        ("t,p_ad,cue\n0,0.5,loud\n", "SCORES.csv row 2: cue 'loud' is not a number"),
        ("t,p_ad,logo\n0,0.5,1\n0.2,0.5,1.5\n", "SCORES.csv row 3: logo 1.5 is outside [0, 1]"),
        ("t,p_ad,black\n0,,-0.5\n", "SCORES.csv row 2: black -0.5 is outside [0, 1]"),
        ("t,p_ad,silence\n0,,quiet\n", "SCORES.csv row 2: silence 'quiet' is not a number"),
    ],
)
def test_rejects_bad_files(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(AdbreakError) as info:
        read_scores(_file(tmp_path, text))
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AdbreakError, match="does not exist"):
        read_scores(tmp_path / "none.csv")


@pytest.mark.parametrize(
    ("t", "p", "extra", "expected"),
    [
        ([0, 1], [0.5], None, "2 times but 1 p_ad"),
        ([0, 1], [0.5, 1.2], None, r"p_ad values must lie in \[0, 1\]"),
        ([0, 1], [0.5, 0.5], {"logo": [0.5, 1.5]}, r"cue column 'logo' must hold values in \[0, 1\]"),
        ([1, 1], [0.5, 0.5], None, "does not increase"),
        ([0, np.inf], [0.5, 0.5], None, "finite"),
        ([0, 1], [0.5, 0.5], {"t": [1, 2]}, "bad extra column name"),
        ([0, 1], [0.5, 0.5], {"a,b": [1, 2]}, "bad extra column name"),
        ([0, 1], [0.5, 0.5], {"cue": [1]}, "has 1 values"),
        ([0, 1], [0.5, 0.5], {"cue": [1, np.inf]}, "infinite"),
    ],
)
def test_writer_refuses_bad_data(
    tmp_path: Path, t: list[float], p: list[float], extra: dict[str, list[float]] | None, expected: str
) -> None:
    path = tmp_path / "SCORES.csv"
    with pytest.raises(AdbreakError, match=expected):
        write_scores(path, t, p, extra)
    assert not path.exists()


def test_cue_columns_and_an_empty_p_ad_round_trip(tmp_path: Path) -> None:
    """Without a trained head p_ad is empty; cue cells are empty where not measured (no audio: no silence)."""
    path = tmp_path / "cues.csv"
    t = [0.0, 0.2, 0.4]
    write_scores(path, t, [np.nan] * 3, {"logo": [1.0, np.nan, 0.25], "silence": [np.nan] * 3})
    assert path.read_text().splitlines()[1] == "0.0,,1.0,"
    rt, rp, extra = read_scores(path)
    assert np.isnan(rp).all() and list(extra) == ["logo", "silence"]
    assert extra["logo"][2] == 0.25 and np.isnan(extra["logo"][1]) and np.isnan(extra["silence"]).all()
