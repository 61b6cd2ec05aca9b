"""Review (corrections) and statistics endpoints through the app in this process (Flask's test client) on a migrated
database of each engine: every endpoint, sign-in, 400/404/409 answers, the stored rows, the Socket.IO pushes, and
statistics following a correction."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from adbreak.wire import Availability, EventPayload, EventType, StatePayload, new_event_id
from tests.db_support import query
from tests.server_support import ADMIN, SignedIn, error_of, make_app

pytestmark = pytest.mark.usefixtures("db_engine")

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC).timestamp()  # a Friday, 10:00 UTC = 11:00 in Berlin
DAY = "start=2026-11-20T00:00:00Z&end=2026-11-21T00:00:00Z"


def _event(device: str, seq: int, kind: str, at: float) -> EventPayload:
    return EventPayload(device=device, event_id=new_event_id(), seq=seq, type=EventType(kind), boundary_ts=at,
                        decided_ts=at + 2, boundary_stream_t=0.0, decided_stream_t=2.0, confidence=0.9,
                        model_version="m1")


def _seed(store, device: str, breaks: list[tuple[float, float]]) -> None:
    store.availability(device, Availability.ONLINE, T0)
    store.state(StatePayload(device=device, label="program", since_ts=T0, since_stream_t=0.0, confidence=0.8,
                             model_version="m1", ts=T0), T0)
    seq = 0
    for start, end in breaks:
        for kind, at in (("ad_start", start), ("ad_end", end)):
            seq += 1
            store.ingest_event(_event(device, seq, kind, T0 + at), T0 + at + 2)


@pytest.fixture
def app(tmp_path):
    app = make_app(tmp_path, timezone="Europe/Berlin")
    store = app.extensions["adbreak"].store
    # tv1: program 0-600, ad 600-780, program 780-1200, ad 1200-1290, program 1290-open
    _seed(store, "tv1", [(600, 780), (1200, 1290)])
    _seed(store, "tv2", [(300, 420)])
    store.record_firing("tv1", rule="auto_mute", action="mute", reason="ad_start", topic="adbreak/tv1/mute/set",
                        payload="ON", ts=T0 + 600)
    store.record_firing("tv1", rule="auto_mute", action="unmute", reason="ad_end", topic="adbreak/tv1/mute/set",
                        payload="OFF", ts=T0 + 780)
    yield app
    app.extensions["adbreak"].stop()


@pytest.fixture
def api(app):
    return SignedIn(app)


def segments(api, device="tv1"):
    return api.get(f"/api/v1/segments?device={device}").get_json()["segments"]


def ids_by_label(api, device="tv1"):
    return [(s["id"], s["label"]) for s in segments(api, device)]


def spans(api, device="tv1"):
    return [(s["label"], s["start"] - T0, None if s["end"] is None else s["end"] - T0) for s in segments(api, device)]


def db_rows(app, sql: str):
    return query(app.extensions["adbreak"].settings.database_url, sql)


def seg_id(api, label: str, start: float, device="tv1") -> int:
    return next(s["id"] for s in segments(api, device) if s["label"] == label and s["start"] == T0 + start)


# ---------------------------------------------------------------------------------------------------- sign-in
def test_every_review_endpoint_needs_sign_in(app):
    c = app.test_client()
    calls = [("get", "/api/v1/segments/1"), ("patch", "/api/v1/segments/1"), ("post", "/api/v1/segments/1/split"),
             ("post", "/api/v1/segments/merge"), ("post", "/api/v1/segments/1/confirm"),
             ("get", "/api/v1/corrections"), ("get", "/api/v1/stats")]
    for method, url in calls:
        r = getattr(c, method)(url, json={} if method != "get" else None)
        assert "sign in first" in error_of(r, 401), (method, url)
    assert db_rows(app, "SELECT count(*) FROM corrections") == [(0,)]


def test_a_write_without_the_csrf_token_is_refused(app):
    api = SignedIn(app)
    ad = seg_id(api, "ad", 600)
    r = api.client.patch(f"/api/v1/segments/{ad}", json={"label": "program"})  # no X-CSRFToken
    assert r.status_code == 400 and "CSRF" in error_of(r, 400)
    assert db_rows(app, f"SELECT label FROM segments WHERE id = {ad}") == [("ad",)]


# ---------------------------------------------------------------------------------------------------- relabel
def test_relabel_stores_review_fields_and_an_audit_row(app, api):
    ad = seg_id(api, "ad", 600)
    r = api.patch(f"/api/v1/segments/{ad}", json={"label": "program"})
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    (seg,) = body["segments"]
    assert (seg["id"], seg["label"], seg["detected_label"], seg["review"], seg["reviewed_by"]) == \
        (ad, "program", "ad", "corrected", ADMIN)
    assert body["removed"] == []
    corr = body["correction"]
    assert (corr["device"], corr["username"], corr["action"]) == ("tv1", ADMIN, "relabel")
    assert corr["before"][0]["label"] == "ad" and corr["after"][0]["label"] == "program"
    assert api.get(f"/api/v1/segments/{ad}").get_json() == seg
    assert db_rows(app, f"SELECT label, detected_label, review, reviewed_by FROM segments WHERE id = {ad}") == \
        [("program", "ad", "corrected", ADMIN)]
    assert db_rows(app, "SELECT username, action FROM corrections") == [(ADMIN, "relabel")]
    # relabelled back: the detector's label is kept
    r = api.patch(f"/api/v1/segments/{ad}", json={"label": "ad"})
    assert r.get_json()["segments"][0]["detected_label"] == "ad"


def test_relabel_refusals(api):
    ad = seg_id(api, "ad", 600)
    open_id = segments(api)[-1]["id"]
    assert "already ad" in error_of(api.patch(f"/api/v1/segments/{ad}", json={"label": "ad"}), 400)
    assert "still open" in error_of(api.patch(f"/api/v1/segments/{open_id}", json={"label": "ad"}), 409)
    assert error_of(api.patch("/api/v1/segments/999", json={"label": "ad"}), 404) == "no segment 999"
    assert "label" in error_of(api.patch(f"/api/v1/segments/{ad}", json={"label": "music"}), 400)
    assert "unknown field" in error_of(api.patch(f"/api/v1/segments/{ad}", json={"colour": "red"}), 400)
    assert "not both" in error_of(api.patch(f"/api/v1/segments/{ad}", json={"label": "program", "start": 1}), 400)
    assert "give label" in error_of(api.patch(f"/api/v1/segments/{ad}", json={}), 400)
    assert "JSON object" in error_of(api.patch(f"/api/v1/segments/{ad}", data="label=ad"), 400)
    assert "unknown parameter" in error_of(api.patch(f"/api/v1/segments/{ad}?x=1", json={"label": "program"}), 400)
    assert error_of(api.get("/api/v1/segments/abc"), 404).startswith("no such resource")


# ---------------------------------------------------------------------------------------------------- move
def test_move_a_shared_edge_in_epoch_seconds_or_iso(api):
    ad = seg_id(api, "ad", 600)
    r = api.patch(f"/api/v1/segments/{ad}", json={"start": T0 + 590})
    assert r.status_code == 200, r.get_json()
    assert [s["id"] for s in r.get_json()["segments"]] == [ad - 1, ad]
    iso = datetime.fromtimestamp(T0 + 800, UTC).isoformat()
    assert api.patch(f"/api/v1/segments/{ad}", json={"end": iso}).status_code == 200
    assert spans(api)[:3] == [("program", 0, 590), ("ad", 590, 800), ("program", 800, 1200)]
    assert "shorter than 1 s" in error_of(api.patch(f"/api/v1/segments/{ad}", json={"start": T0 + 0.5}), 400)
    assert "epoch seconds nor an ISO" in error_of(api.patch(f"/api/v1/segments/{ad}", json={"end": "soon"}), 400)
    assert "already spans" in error_of(api.patch(f"/api/v1/segments/{ad}", json={"start": T0 + 590}), 400)
    # the last closed segment shares its end with the open one: 409
    last_ad = seg_id(api, "ad", 1200)
    assert "still open" in error_of(api.patch(f"/api/v1/segments/{last_ad}", json={"end": T0 + 1300}), 409)


# ---------------------------------------------------------------------------------------------------- split
def test_split_with_a_relabelled_part(api):
    prog = seg_id(api, "program", 780)
    r = api.post(f"/api/v1/segments/{prog}/split", json={"at": T0 + 1000, "label": "ad"})
    assert r.status_code == 200, r.get_json()
    first, second = r.get_json()["segments"]
    assert first["id"] == prog and second["id"] > prog
    assert (second["label"], second["detected_label"], second["review"]) == ("ad", "program", "corrected")
    assert spans(api)[2:4] == [("program", 780, 1000), ("ad", 1000, 1200)]
    assert r.get_json()["correction"]["action"] == "split"
    assert "inside segment" in error_of(api.post(f"/api/v1/segments/{prog}/split", json={"at": T0 + 5000}), 400)
    assert "at: Field required" in error_of(api.post(f"/api/v1/segments/{prog}/split", json={}), 400)
    assert "part" in error_of(api.post(f"/api/v1/segments/{prog}/split", json={"at": T0 + 900, "part": "x"}), 400)
    assert error_of(api.post("/api/v1/segments/999/split", json={"at": T0}), 404) == "no segment 999"
    open_id = segments(api)[-1]["id"]
    assert "still open" in error_of(api.post(f"/api/v1/segments/{open_id}/split", json={"at": T0 + 1400}), 409)


# ---------------------------------------------------------------------------------------------------- merge
def test_merge_removes_the_others_and_keeps_tiling(app, api):
    # split the ad, then merge it back, then merge program-ad-program as one program
    ad = seg_id(api, "ad", 600)
    new = api.post(f"/api/v1/segments/{ad}/split", json={"at": T0 + 700}).get_json()["segments"][1]["id"]
    r = api.post("/api/v1/segments/merge", json={"ids": [new, ad]})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["removed"] == [new] and r.get_json()["segments"][0]["id"] == ad
    assert error_of(api.get(f"/api/v1/segments/{new}"), 404) == f"no segment {new}"
    before, after = seg_id(api, "program", 0), seg_id(api, "program", 780)
    assert "different labels" in error_of(api.post("/api/v1/segments/merge", json={"ids": [before, ad, after]}), 400)
    r = api.post("/api/v1/segments/merge", json={"ids": [before, ad, after], "label": "program"})
    assert r.status_code == 200
    assert spans(api)[:2] == [("program", 0, 1200), ("ad", 1200, 1290)]
    assert db_rows(app, "SELECT action FROM corrections ORDER BY id") == [("split",), ("merge",), ("merge",)]


def test_merge_refusals(api):
    a, b = seg_id(api, "program", 0), seg_id(api, "program", 780)
    assert "lies between" in error_of(api.post("/api/v1/segments/merge", json={"ids": [a, b]}), 400)
    other = seg_id(api, "ad", 300, device="tv2")
    assert "different devices" in error_of(api.post("/api/v1/segments/merge", json={"ids": [a, other]}), 400)
    assert "ids" in error_of(api.post("/api/v1/segments/merge", json={"ids": [a]}), 400)
    assert "ids" in error_of(api.post("/api/v1/segments/merge", json={"ids": ["1", "2"]}), 400)
    assert error_of(api.post("/api/v1/segments/merge", json={"ids": [a, 4242]}), 404) == "no segment 4242"
    last, open_id = segments(api)[-2]["id"], segments(api)[-1]["id"]
    r = api.post("/api/v1/segments/merge", json={"ids": [last, open_id], "label": "ad"})
    assert "still open" in error_of(r, 409)


# ---------------------------------------------------------------------------------------------------- confirm
def test_confirm(app, api):
    ad = seg_id(api, "ad", 600)
    r = api.post(f"/api/v1/segments/{ad}/confirm")
    assert r.status_code == 200, r.get_json()
    (seg,) = r.get_json()["segments"]
    assert (seg["label"], seg["review"], seg["reviewed_by"], seg["detected_label"]) == ("ad", "confirmed", ADMIN, None)
    assert api.post(f"/api/v1/segments/{ad}/confirm", json={}).status_code == 200
    assert "no body" in error_of(api.post(f"/api/v1/segments/{ad}/confirm", json={"x": 1}), 400)
    open_id = segments(api)[-1]["id"]
    assert "still open" in error_of(api.post(f"/api/v1/segments/{open_id}/confirm"), 409)
    assert error_of(api.post("/api/v1/segments/999/confirm"), 404) == "no segment 999"
    assert db_rows(app, "SELECT action FROM corrections") == [("confirm",), ("confirm",)]


# ---------------------------------------------------------------------------------------------------- history
def test_corrections_list_filters_by_device_and_segment_time(api):
    ad1, ad2 = seg_id(api, "ad", 600), seg_id(api, "ad", 1200)
    api.patch(f"/api/v1/segments/{ad1}", json={"label": "program"})
    api.post(f"/api/v1/segments/{ad2}/confirm")
    api.post(f"/api/v1/segments/{seg_id(api, 'ad', 300, device='tv2')}/confirm")
    all_ = api.get("/api/v1/corrections").get_json()["corrections"]
    assert [(c["device"], c["action"]) for c in all_] == [("tv2", "confirm"), ("tv1", "confirm"),
                                                           ("tv1", "relabel")]  # newest first
    assert set(all_[0]) == {"id", "device", "ts", "username", "action", "before", "after"}
    tv1 = api.get("/api/v1/corrections?device=tv1").get_json()["corrections"]
    assert [c["action"] for c in tv1] == ["confirm", "relabel"]
    # by the time of the corrected segments: 600-780 overlaps [T0+700, T0+800), 1200-1290 does not
    window = api.get(f"/api/v1/corrections?device=tv1&start={T0 + 700}&end={T0 + 800}").get_json()["corrections"]
    assert [c["action"] for c in window] == ["relabel"]
    assert len(api.get("/api/v1/corrections?limit=1").get_json()["corrections"]) == 1
    assert "unknown parameter" in error_of(api.get("/api/v1/corrections?since=1"), 400)
    assert error_of(api.get("/api/v1/corrections?device=tv9"), 404) == "unknown device 'tv9'"
    assert "end must be after start" in error_of(api.get("/api/v1/corrections?start=10&end=5"), 400)


def test_corrections_are_pushed_over_socketio(app, api):
    socketio = app.extensions["socketio"]
    client = socketio.test_client(app, flask_test_client=api.client)
    assert client.is_connected()
    client.get_received()  # hello
    ad = seg_id(api, "ad", 600)
    new = api.post(f"/api/v1/segments/{ad}/split", json={"at": T0 + 700}).get_json()["segments"][1]["id"]
    api.post("/api/v1/segments/merge", json={"ids": [ad, new]})
    got = [(m["name"], m["args"][0]) for m in client.get_received()]
    names = [n for n, _ in got]
    assert names == ["segment", "segment", "correction", "segment", "segment_removed", "correction"]
    assert got[0][1]["id"] == ad and got[0][1]["end"] == T0 + 700 and got[1][1]["id"] == new
    assert got[4][1] == {"id": new, "device": "tv1", "merged_into": ad}
    assert got[5][1]["action"] == "merge" and got[5][1]["username"] == ADMIN
    client.disconnect()


# ---------------------------------------------------------------------------------------------------- statistics
def test_stats_per_device_and_all(api):
    body = api.get(f"/api/v1/stats?device=tv1&{DAY}&tz=UTC&bucket=hour").get_json()
    assert (body["device"], body["tz"], body["bucket"], len(body["buckets"])) == ("tv1", "UTC", "hour", 24)
    assert body["ad_s"] == 270.0 and body["ad_minutes"] == 4.5
    assert body["breaks"] == {"count": 2, "mean_s": 135.0, "median_s": 135.0, "longest_s": 180.0}
    assert body["muted_s"] == 180.0
    ten = body["buckets"][10]
    assert ten["label"] == "2026-11-20T10:00:00+00:00" and ten["ad_s"] == 270.0 and ten["breaks"] == 2
    assert ten["covered_s"] == 3600.0 and ten["share_ad"] == pytest.approx(270 / 3600, abs=1e-6)
    assert ten["share_muted"] == pytest.approx(180 / 3600, abs=1e-6)
    both = api.get(f"/api/v1/stats?{DAY}&tz=UTC&bucket=day").get_json()
    assert [d["device"] for d in both["devices"]] == ["tv1", "tv2"]
    assert both["device"] is None and both["ad_s"] == 390.0 and both["breaks"]["count"] == 3
    assert len(both["buckets"]) == 1 and both["buckets"][0]["ad_minutes"] == 6.5


def test_stats_follow_a_correction(api):
    def ad_minutes():
        return api.get(f"/api/v1/stats?device=tv1&{DAY}").get_json()["ad_minutes"]

    assert ad_minutes() == 4.5
    api.patch(f"/api/v1/segments/{seg_id(api, 'program', 780)}", json={"label": "ad"})
    assert ad_minutes() == pytest.approx((180 + 420 + 90) / 60, abs=1e-3)
    # the three touching ad segments are now one break
    body = api.get(f"/api/v1/stats?device=tv1&{DAY}").get_json()
    assert body["breaks"]["count"] == 1 and body["breaks"]["longest_s"] == 690.0


def test_stats_zone_defaults_and_refusals(api):
    body = api.get(f"/api/v1/stats?device=tv1&{DAY}").get_json()
    assert body["tz"] == "Europe/Berlin"  # the server's setting
    # UTC midnight to midnight is 01:00 to 01:00 in Berlin: 24 local hours
    assert body["buckets"][0]["label"] == "2026-11-20T01:00:00+01:00" and len(body["buckets"]) == 24
    today = api.get("/api/v1/stats").get_json()
    assert today["tz"] == "Europe/Berlin" and len(today["buckets"]) in (23, 24, 25)
    assert today["end"] - today["start"] in (23 * 3600, 24 * 3600, 25 * 3600)
    assert "IANA" in error_of(api.get("/api/v1/stats?tz=Mars/Olympus"), 400)
    assert "bucket" in error_of(api.get("/api/v1/stats?bucket=week"), 400)
    assert "at most" in error_of(api.get("/api/v1/stats?start=2020-01-01&end=2026-01-01&bucket=hour"), 400)
    assert "give start with end" in error_of(api.get("/api/v1/stats?end=2026-01-01"), 400)
    assert "unknown parameter" in error_of(api.get("/api/v1/stats?devices=tv1"), 400)
    assert error_of(api.get("/api/v1/stats?device=tv9"), 404) == "unknown device 'tv9'"
    week = api.get("/api/v1/stats?start=2026-11-16&end=2026-11-23").get_json()
    assert week["bucket"] == "day" and len(week["buckets"]) == 8  # Berlin days: the UTC midnights are 01:00 there
