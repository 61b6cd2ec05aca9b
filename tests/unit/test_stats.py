"""server.stats: bucketing in a time zone, ad/program/muted time, breaks; hand-built cases."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from server.stats import (
    DeviceInput,
    break_summary,
    breaks,
    bucket_edges,
    compute,
    intersect,
    local_zone,
    mute_intervals,
    segment_spans,
    zone,
)

BERLIN = ZoneInfo("Europe/Berlin")
UTC = ZoneInfo("UTC")


def at(text: str, tz: ZoneInfo = BERLIN) -> float:
    """Epoch seconds of a local wall time (the earlier one when it is repeated)."""
    return datetime.fromisoformat(text).replace(tzinfo=tz).timestamp()


def seg(label, start, end):
    return {"label": label, "start": start, "end": end}


# ---------------------------------------------------------------------------------------------------- buckets
def test_hour_buckets_of_an_ordinary_day_are_local_hours():
    edges = bucket_edges(at("2026-11-23T00:00"), at("2026-11-24T00:00"), BERLIN, "hour")
    assert len(edges) == 25
    assert [datetime.fromtimestamp(e, BERLIN).hour for e in edges[:3]] == [0, 1, 2]
    assert all(b - a == 3600 for a, b in zip(edges, edges[1:], strict=False))


def test_dst_days_have_23_and_25_hours():
    spring = bucket_edges(at("2026-03-29T00:00"), at("2026-03-30T00:00"), BERLIN, "hour")
    assert len(spring) - 1 == 23  # 02:00 does not exist
    assert [datetime.fromtimestamp(e, BERLIN).hour for e in spring[:4]] == [0, 1, 3, 4]
    autumn = bucket_edges(at("2026-10-25T00:00"), at("2026-10-26T00:00"), BERLIN, "hour")
    assert len(autumn) - 1 == 25  # 02:00 twice
    labels = [datetime.fromtimestamp(e, BERLIN).isoformat() for e in autumn[2:5]]
    assert labels == ["2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00", "2026-10-25T03:00:00+01:00"]
    days = bucket_edges(at("2026-03-28T12:00"), at("2026-03-30T12:00"), BERLIN, "day")
    assert [b - a for a, b in zip(days, days[1:], strict=False)] == [86400, 23 * 3600, 86400]


def test_buckets_of_a_half_hour_zone_start_at_local_hours():
    kolkata = ZoneInfo("Asia/Kolkata")
    edges = bucket_edges(at("2026-11-23T10:20", kolkata), at("2026-11-23T12:00", kolkata), kolkata, "hour")
    assert [datetime.fromtimestamp(e, kolkata).strftime("%H:%M") for e in edges] == ["10:00", "11:00", "12:00"]
    assert datetime.fromtimestamp(edges[0], UTC).minute == 30


def test_compute_on_the_autumn_dst_day_splits_by_local_hour():
    # an ad from 01:30 to 02:30 (first 02:00, CEST) and one over the second 02:00 hour (CET)
    first_two = at("2026-10-25T02:00")  # CEST
    second_two = first_two + 3600  # CET: the same wall time again
    segs = [seg("program", at("2026-10-25T00:00"), at("2026-10-25T01:30")),
            seg("ad", at("2026-10-25T01:30"), first_two + 1800),
            seg("program", first_two + 1800, second_two),
            seg("ad", second_two, second_two + 3600)]
    out = compute({"tv": DeviceInput(segs)}, start=at("2026-10-25T00:00"), end=at("2026-10-26T00:00"), tz=BERLIN,
                  bucket="hour", now=at("2026-10-27T00:00"))
    assert len(out["buckets"]) == 25
    ad = {b["label"]: b["ad_s"] for b in out["buckets"] if b["ad_s"]}
    assert ad == {"2026-10-25T01:00:00+02:00": 1800.0, "2026-10-25T02:00:00+02:00": 1800.0,
                  "2026-10-25T02:00:00+01:00": 3600.0}
    assert out["ad_s"] == 7200.0 and out["covered_s"] == 4 * 3600  # 00:00 CEST to 03:00 CET
    assert out["breaks"] == {"count": 2, "mean_s": 3600.0, "median_s": 3600.0, "longest_s": 3600.0}


# ---------------------------------------------------------------------------------------------------- time
def test_segments_crossing_bucket_edges_are_split_between_buckets():
    t0 = at("2026-11-23T10:00")
    segs = [seg("program", t0, t0 + 3000), seg("ad", t0 + 3000, t0 + 4200), seg("program", t0 + 4200, t0 + 7200)]
    out = compute({"tv": DeviceInput(segs)}, start=t0, end=t0 + 7200, tz=BERLIN, bucket="hour", now=t0 + 99999)
    (h10, h11) = out["buckets"]
    assert (h10["label"], h10["ad_s"], h10["program_s"], h10["ad_minutes"]) == \
        ("2026-11-23T10:00:00+01:00", 600.0, 3000.0, 10.0)
    assert (h11["ad_s"], h11["program_s"], h11["share_ad"]) == (600.0, 3000.0, pytest.approx(1 / 6, abs=1e-6))
    # the break counts where it starts, with its whole length
    assert (h10["breaks"], h10["break_s"], h11["breaks"]) == (1, 1200.0, 0)
    assert out["share_ad"] == pytest.approx(1200 / 7200, abs=1e-6)


def test_range_clips_segments_and_a_break_that_started_before_is_not_counted():
    t0 = at("2026-11-23T10:00")
    segs = [seg("ad", t0 - 600, t0 + 600), seg("program", t0 + 600, t0 + 1800)]
    out = compute({"tv": DeviceInput(segs)}, start=t0, end=t0 + 1800, tz=BERLIN, bucket="hour", now=t0 + 5000)
    assert (out["ad_s"], out["program_s"], out["breaks"]["count"]) == (600.0, 1200.0, 0)
    assert out["buckets"][0]["start"] == t0 and out["buckets"][0]["end"] == t0 + 1800  # clipped to the range


def test_an_open_segment_reaches_to_now_and_no_further():
    t0 = at("2026-11-23T10:00")
    now = t0 + 5400  # 11:30
    segs = [seg("program", t0, t0 + 3600), seg("ad", t0 + 3600, None)]
    out = compute({"tv": DeviceInput(segs)}, start=t0, end=t0 + 4 * 3600, tz=BERLIN, bucket="hour", now=now)
    assert [b["ad_s"] for b in out["buckets"]] == [0.0, 1800.0, 0.0, 0.0]
    assert [b["covered_s"] for b in out["buckets"]] == [3600.0, 1800.0, 0.0, 0.0]
    assert out["buckets"][2]["share_ad"] is None  # nothing watched (the future)
    assert out["breaks"] == {"count": 1, "mean_s": 1800.0, "median_s": 1800.0, "longest_s": 1800.0}
    assert segment_spans(segs, now) == [(t0, t0 + 3600, "program"), (t0 + 3600, now, "ad")]


def test_touching_ad_segments_are_one_break_and_a_gap_splits_them():
    spans = [(0.0, 10.0, "ad"), (10.0, 25.0, "ad"), (25.0, 30.0, "program"), (30.0, 40.0, "ad"),
             (45.0, 50.0, "ad")]
    assert breaks(spans) == [(0.0, 25.0), (30.0, 40.0), (45.0, 50.0)]
    assert break_summary([25.0, 10.0, 5.0]) == {"count": 3, "mean_s": pytest.approx(13.333, abs=1e-3),
                                                "median_s": 10.0, "longest_s": 25.0}
    assert break_summary([]) == {"count": 0, "mean_s": None, "median_s": None, "longest_s": None}


# ---------------------------------------------------------------------------------------------------- mute
def test_mute_intervals_pair_mutes_with_unmutes():
    f = [{"ts": 100.0, "action": "mute"}, {"ts": 160.0, "action": "unmute"}, {"ts": 300.0, "action": "mute"}]
    # a mute still in force runs to the range end when that is in the past
    assert mute_intervals(f, muted_before=False, muted_now=False, start=0, end=400, now=1000) == \
        [(100.0, 160.0), (300.0, 400)]
    # ... and to now while the device is muted now
    assert mute_intervals(f, muted_before=False, muted_now=True, start=0, end=2000, now=1000) == \
        [(100.0, 160.0), (300.0, 1000)]
    # muted before the range: from its start
    assert mute_intervals([{"ts": 50.0, "action": "unmute"}], muted_before=True, muted_now=False, start=0, end=400,
                          now=1000) == [(0, 50.0)]
    assert mute_intervals([], muted_before=True, muted_now=True, start=0, end=400, now=1000) == [(0, 400)]
    assert mute_intervals([], muted_before=False, muted_now=True, start=0, end=400, now=1000) == []
    assert intersect([(0.0, 10.0), (20.0, 30.0)], [(5.0, 25.0)]) == [(5.0, 10.0), (20.0, 25.0)]


def test_share_muted_counts_only_watched_time():
    t0 = at("2026-11-23T10:00")
    segs = [seg("program", t0, t0 + 600), seg("ad", t0 + 600, t0 + 900), seg("program", t0 + 900, t0 + 1200)]
    # muted from 10:10 to 10:15 and again from 10:50 (no segment then) to the range end
    firings = [{"ts": t0 + 600, "action": "mute"}, {"ts": t0 + 900, "action": "unmute"},
               {"ts": t0 + 3000, "action": "mute"}]
    out = compute({"tv": DeviceInput(segs, firings)}, start=t0, end=t0 + 3600, tz=BERLIN, bucket="hour",
                  now=t0 + 99999)
    assert out["muted_s"] == 300.0 and out["share_muted"] == 0.25


# ---------------------------------------------------------------------------------------------------- devices
def test_all_devices_are_summed_and_listed():
    t0 = at("2026-11-23T10:00")
    a = DeviceInput([seg("ad", t0, t0 + 120), seg("program", t0 + 120, t0 + 600)])
    b = DeviceInput([seg("program", t0, t0 + 300), seg("ad", t0 + 300, t0 + 600)], muted_before=True,
                    muted_now=True)
    out = compute({"b": b, "a": a}, start=t0, end=t0 + 600, tz=BERLIN, bucket="day", now=t0 + 600)
    assert [d["device"] for d in out["devices"]] == ["a", "b"]
    assert [d["ad_s"] for d in out["devices"]] == [120.0, 300.0]
    assert (out["ad_s"], out["covered_s"], out["muted_s"]) == (420.0, 1200.0, 600.0)
    assert out["breaks"]["count"] == 2 and out["breaks"]["longest_s"] == 300.0
    (day,) = out["buckets"]
    assert day["label"] == "2026-11-23T00:00:00+01:00" and day["ad_minutes"] == 7.0 and day["breaks"] == 2
    assert (out["tz"], out["bucket"]) == ("Europe/Berlin", "day")


def test_zone_names():
    assert zone("UTC").key == "UTC" and zone("America/New_York").key == "America/New_York"
    for bad in ("Mars/Base", "", "../etc/passwd", "/etc/localtime"):
        with pytest.raises(ValueError, match="not an IANA time zone"):
            zone(bad)
    assert isinstance(local_zone(), ZoneInfo)
    with pytest.raises(ValueError, match="end must be after start"):
        compute({}, start=10, end=10, tz=UTC, bucket="hour", now=0)
