"""The export formats (adbreak/exports.py): exact texts for known cases, errors, and round trips of random tilings."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adbreak import exports
from adbreak.exports import ExportError, Span, clip_to_window, parse, render
from adbreak.segments import Segment, merge_adjacent

T0 = 1_795_430_000.0  # 2026-11-23T10:33:20Z


def seg(a: float, b: float, label: str) -> Segment:
    return Segment(a, b, label)


def assert_close(got: list[Segment], want: list[Segment], tol: float) -> None:
    assert [s.label for s in got] == [s.label for s in want], (got, want)
    for g, w in zip(got, want, strict=True):
        assert abs(g.start - w.start) <= tol and abs(g.end - w.end) <= tol, (g, w, tol)


def ads_only(segments: list[Segment]) -> list[Segment]:
    """What EDL and Comskip can carry: ad and program (every other label counts as program)."""
    return merge_adjacent(Segment(s.start, s.end, "ad" if s.label == "ad" else "program") for s in segments)


# ---------------------------------------------------------------------------------------------------- known texts
EXAMPLE = [seg(0, 600, "program"), seg(600, 732.5, "ad"), seg(732.5, 1800, "program"), seg(1800, 1830.25, "ad"),
           seg(1830.25, 3600, "program")]


def test_csv_is_the_contract_file():
    assert render("csv", EXAMPLE, 3600) == ("start,end,label\n0.000,600.000,program\n600.000,732.500,ad\n"
                                            "732.500,1800.000,program\n1800.000,1830.250,ad\n"
                                            "1830.250,3600.000,program\n")


def test_edl_lists_ad_breaks_as_commercial_breaks():
    assert render("edl", EXAMPLE, 3600) == "600.000\t732.500\t3\n1800.000\t1830.250\t3\n"
    assert render("edl", [seg(0, 10, "program")], 10) == ""
    assert parse("edl", "", duration=10) == [seg(0, 10, "program")]


def test_comskip_header_and_frames_as_comskip_writes_them():
    text = render("comskip", EXAMPLE, 3600, fps=29.97)
    lines = text.splitlines()
    assert lines[0] == "FILE PROCESSING COMPLETE 107892 FRAMES AT 2997"  # %6li, %4i as in comskip.c
    assert lines[1] == "-------------------"
    assert lines[2:] == ["17982\t21953", "53946\t54853"]  # round(t * 29.97)
    short = render("comskip", [seg(0, 10, "program"), seg(10, 20, "ad")], 20, fps=25)
    assert short.splitlines()[0] == "FILE PROCESSING COMPLETE    500 FRAMES AT 2500"
    segments, fps = exports.parse_comskip(short)
    assert fps == 25 and segments == [seg(0, 10, "program"), seg(10, 20, "ad")]


def test_ffmetadata_chapters_and_escaping():
    text = render("ffmetadata", [seg(0, 1.5, "program"), seg(1.5, 2, "ad"), seg(2, 3, "a=b;c#d\\e\nf")], 3)
    assert text == (";FFMETADATA1\n"
                    "\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=1500\ntitle=Program\n"
                    "\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=1500\nEND=2000\ntitle=Ad break\n"
                    "\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=2000\nEND=3000\ntitle=a\\=b\\;c\\#d\\\\e\\\nf\n")
    assert parse("ffmetadata", text)[-1].label == "a=b;c#d\\e\nf"


def test_ffmetadata_reader_takes_other_time_bases_comments_and_global_tags():
    text = (";FFMETADATA1\ntitle=My show\n# a comment\n; another\n\n[STREAM]\ntitle=x\n"
            "[CHAPTER]\nTIMEBASE=1/90000\nSTART=90000\nEND=180000\ntitle=Ad break\n")
    assert parse("ffmetadata", text) == [seg(0, 1, "program"), seg(1, 2, "ad")]


@pytest.mark.parametrize(("fmt", "text", "match"), [
    ("edl", "1.0\t2.0\n", "expected 'start end action'"),
    ("edl", "1.0\tx\t3\n", "not 'seconds seconds action'"),
    ("edl", "2.0\t1.0\t3\n", "bad times"),
    ("edl", "1.0\t2.0\t1\n", "not an ad break"),
    ("edl", "5\t8\t3\n1\t2\t3\n", "not sorted"),
    ("comskip", "", "empty"),
    ("comskip", "hello\n", "FILE PROCESSING COMPLETE"),
    ("comskip", "FILE PROCESSING COMPLETE 100 FRAMES AT 2500\n-------------------\n10 x\n", "start_frame end_frame"),
    ("comskip", "FILE PROCESSING COMPLETE 100 FRAMES AT 2500\n-------------------\n10\t5\n", "not after"),
    ("ffmetadata", "[CHAPTER]\n", "first line"),
    ("ffmetadata", ";FFMETADATA1\n[CHAPTER]\nSTART=1\n", "integer START and END"),
    ("ffmetadata", ";FFMETADATA1\n[CHAPTER]\nSTART=0\nEND=10\n[CHAPTER]\nSTART=5\nEND=20\n", "overlap"),
    ("ffmetadata", ";FFMETADATA1\n", "no chapter"),
    ("csv", "start,end,label\n0,1,ad\n2,3,program\n", "gap"),
])
def test_parsers_refuse_bad_files_with_one_line(fmt, text, match):
    with pytest.raises(exports.AdbreakError, match=match) as info:
        parse(fmt, text, duration=100)
    assert "\n" not in str(info.value)


def test_render_refuses_what_does_not_tile_and_unknown_formats():
    with pytest.raises(ExportError, match="tile"):
        render("edl", [seg(0, 1, "ad"), seg(2, 3, "program")], 3)
    with pytest.raises(ExportError, match="tile"):
        render("csv", [seg(0, 1, "ad")], 2)
    with pytest.raises(ExportError, match="expected one of csv, edl, comskip, ffmetadata"):
        render("srt", [seg(0, 1, "ad")], 1)
    with pytest.raises(ExportError, match="fps"):
        render("comskip", [seg(0, 1, "ad")], 1, fps=0.5)


def test_filenames_name_device_and_utc_start():
    assert exports.export_filename("tv1", 1795428000.0, "edl") == "tv1_20261123T100000Z.edl"
    assert exports.export_filename("tv1", 1795428000.0, "comskip") == "tv1_20261123T100000Z.txt"
    assert exports.export_filename("tv1", 1795428000.0, "ffmetadata") == "tv1_20261123T100000Z.ffmeta"


def test_parse_when_takes_epoch_and_iso():
    assert exports.parse_when("1795428000.5") == 1795428000.5
    assert exports.parse_when("2026-11-23T10:00:00Z") == 1795428000.0
    assert exports.parse_when("2026-11-23T11:00:00+01:00") == 1795428000.0
    assert exports.parse_when("2026-11-23T10:00:00") == 1795428000.0  # no zone: UTC
    for bad in ("yesterday", "nan", "inf"):
        with pytest.raises(ExportError):
            exports.parse_when(bad, "start")


# ---------------------------------------------------------------------------------------------------- the window
def test_clip_to_window_cuts_makes_relative_and_fills_gaps_with_program():
    spans = [Span(T0 - 100, T0 + 50, "program"), Span(T0 + 50, T0 + 80, "ad"), Span(T0 + 80, T0 + 90, "program"),
             # the device went offline at +90 and came back at +120
             Span(T0 + 120, T0 + 150, "ad"), Span(T0 + 150, None, "program")]
    tl = clip_to_window(spans, T0, T0 + 200, now=T0 + 170)
    assert tl.segments == [seg(0, 50, "program"), seg(50, 80, "ad"), seg(80, 120, "program"),
                           seg(120, 150, "ad"), seg(150, 200, "program")]
    assert tl.duration == 200 and math.isclose(tl.gap_s, 30 + 30)  # offline 90..120, after now 170..200
    assert [s.start for s in tl.ad_breaks] == [50, 120]


def test_clip_to_window_open_segment_reaches_to_now_and_overlaps_keep_the_earlier():
    tl = clip_to_window([Span(T0 - 10, None, "ad")], T0, T0 + 60, now=T0 + 30)
    assert tl.segments == [seg(0, 30, "ad"), seg(30, 60, "program")]
    tl = clip_to_window([Span(T0, T0 + 20, "ad"), Span(T0 + 10, T0 + 40, "program")], T0, T0 + 40)
    assert tl.segments == [seg(0, 20, "ad"), seg(20, 40, "program")] and tl.gap_s == 0


def test_clip_to_window_refuses_empty_and_bad_ranges():
    with pytest.raises(ExportError, match="no stored segment"):
        clip_to_window([Span(T0 - 100, T0 - 50, "ad")], T0, T0 + 10)
    with pytest.raises(ExportError, match="no stored segment"):
        clip_to_window([], T0, T0 + 10)
    with pytest.raises(ExportError, match="after start"):
        clip_to_window([Span(T0, T0 + 1, "ad")], T0, T0)
    with pytest.raises(ExportError, match="at most 31 days"):
        clip_to_window([Span(T0, T0 + 1, "ad")], T0, T0 + 40 * 86400)


# ---------------------------------------------------------------------------------------------------- round trips
LABELS = st.sampled_from(["program", "ad"])
ODD_LABELS = st.sampled_from(["program", "ad", "sport", "news=live;#1", "back\\slash", "two\nlines"])


@st.composite
def tilings(draw, labels=LABELS, max_len=40):
    """Random segments tiling [0, duration]: 1..max_len pieces of 0.1..900 s, neighbours of different labels."""
    lengths = draw(st.lists(st.floats(min_value=0.1, max_value=900.0, allow_nan=False), min_size=1, max_size=max_len))
    names = draw(st.lists(labels, min_size=len(lengths), max_size=len(lengths)))
    t, pieces = 0.0, []
    for length, name in zip(lengths, names, strict=True):
        pieces.append(Segment(t, t + length, name))
        t += length
    return merge_adjacent(pieces)


@settings(max_examples=150, deadline=None)
@given(tilings(labels=st.sampled_from(["program", "ad", "sport"])))
def test_csv_round_trip(segments):
    duration = segments[-1].end
    assert_close(parse("csv", render("csv", segments, duration)), segments, exports.precision("csv"))


@settings(max_examples=200, deadline=None)
@given(tilings(labels=st.sampled_from(["program", "ad", "sport"])))
def test_edl_round_trip(segments):
    duration = segments[-1].end
    back = parse("edl", render("edl", segments, duration), duration=duration)
    assert_close(back, ads_only(segments), exports.precision("edl"))


@settings(max_examples=200, deadline=None)
@given(tilings(), st.sampled_from([23.976, 25.0, 29.97, 30.0, 50.0, 59.94]))
def test_comskip_round_trip(segments, fps):
    duration = segments[-1].end
    back, read_fps = exports.parse_comskip(render("comskip", segments, duration, fps=fps))
    assert read_fps == round(fps * 100) / 100
    assert_close(back, ads_only(segments), exports.precision("comskip", fps))


@settings(max_examples=200, deadline=None)
@given(tilings(labels=ODD_LABELS))
def test_ffmetadata_round_trip(segments):
    duration = segments[-1].end
    assert_close(parse("ffmetadata", render("ffmetadata", segments, duration)), segments,
                 exports.precision("ffmetadata"))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(min_value=-3600, max_value=7200, allow_nan=False),
                          st.floats(min_value=0.5, max_value=3000, allow_nan=False), LABELS),
                min_size=1, max_size=20),
       st.floats(min_value=60, max_value=3600, allow_nan=False))
def test_clip_to_window_always_tiles_the_range(raw, length):
    spans = [Span(T0 + a, T0 + a + d, label) for a, d, label in raw]
    try:
        tl = clip_to_window(spans, T0, T0 + length)
    except ExportError:
        assert not any(s.start < T0 + length and s.end > T0 for s in spans)
        return
    segs = tl.segments
    assert segs[0].start == 0 and segs[-1].end == tl.duration and math.isclose(tl.duration, length, abs_tol=1e-6)
    assert all(math.isclose(p.end, n.start) and p.label != n.label for p, n in zip(segs, segs[1:], strict=False))
    for fmt in exports.FORMATS:
        back = parse(fmt, render(fmt, segs, tl.duration), duration=tl.duration)
        assert math.isclose(back[-1].end, tl.duration, abs_tol=exports.precision(fmt))
