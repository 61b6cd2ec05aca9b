"""The REST API and the dashboard routes through Flask's test client (the app in this process), on a migrated
database of each engine (no broker). Over HTTP against the real process: ``tests/integration/test_server_live.py``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from adbreak.errors import AdbreakError
from adbreak.wire import Availability, EventPayload, EventType, new_event_id
from server import db
from server.app import create_app
from server.settings import ServerSettings
from tests.db_support import fresh_url
from tests.server_support import SignedIn, error_of
from tests.server_support import make_app as support_make_app

pytestmark = pytest.mark.usefixtures("db_engine")

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC).timestamp()


def make_app(tmp_path: Path, web_dir: Path | None = None):
    return support_make_app(tmp_path, **({"web_dir": web_dir} if web_dir else {}))


@pytest.fixture
def app(tmp_path):
    app = make_app(tmp_path)
    yield app
    app.extensions["adbreak"].stop()


@pytest.fixture
def client(app):
    store = app.extensions["adbreak"].store
    store.availability("tv1", Availability.ONLINE, T0)
    for seq, (kind, at) in enumerate([("ad_start", T0 + 600), ("ad_end", T0 + 780)], start=1):
        store.ingest_event(EventPayload(device="tv1", event_id=new_event_id(), seq=seq, type=EventType(kind),
                                        boundary_ts=at, decided_ts=at + 2, boundary_stream_t=0.0,
                                        decided_stream_t=2.0, confidence=0.9, model_version="m"), at + 2)
    store.record_firing("tv1", rule="auto_mute", action="mute", reason="ad_start", topic="adbreak/tv1/mute/set",
                        payload="ON", ts=T0 + 602)
    return SignedIn(app)


def test_unmigrated_database_is_refused(tmp_path):
    settings = ServerSettings(database_url=fresh_url(tmp_path, "new.db"))
    with pytest.raises(AdbreakError, match=r"database at revision none, code needs \w+: run `adbreak db upgrade`"):
        create_app(settings, start_mqtt=False)


def test_health_without_a_broker(client):
    h = client.get("/api/v1/health").get_json()
    assert h["status"] == "degraded" and h["mqtt"] == {"connected": False, "broker": "127.0.0.1:1883"}
    assert h["schema"] == db.head_revision()
    assert h["counters"]["events_ingested"] == 2 and h["counters"]["rule_firings"] == 1
    assert set(h["counters"]["rejected"]) >= {"duplicate", "out_of_order", "unknown_device", "bad_json"}
    assert h["version"] and h["uptime_s"] >= 0


def test_devices(client):
    devices = client.get("/api/v1/devices").get_json()["devices"]
    assert [d["name"] for d in devices] == ["tv1"]
    one = client.get("/api/v1/devices/tv1").get_json()
    assert one == devices[0]
    assert set(one) == {"name", "availability", "state", "model_version", "last_seen", "muted", "last_seq",
                        "auto_mute", "settings"}
    assert one["muted"] is True and one["last_seq"] == 2
    assert error_of(client.get("/api/v1/devices/tv9"), 404) == "unknown device 'tv9'"
    assert error_of(client.get("/api/v1/devices/NOT%20A%20NAME"), 404).startswith("unknown device")


def test_segments_and_their_filters(client):
    segs = client.get("/api/v1/segments").get_json()["segments"]
    assert [(s["label"], s["start"], s["end"], s["status"]) for s in segs] == [
        ("ad", T0 + 600, T0 + 780, "closed"), ("program", T0 + 780, None, "open")]
    assert set(segs[0]) == {"id", "device", "label", "start", "end", "status", "confidence", "model_version",
                            "detected_label", "review", "reviewed_by", "reviewed_ts"}
    q = lambda s: [x["label"] for x in client.get("/api/v1/segments" + s).get_json()["segments"]]  # noqa: E731
    assert q("?label=ad") == ["ad"]
    assert q(f"?end={T0 + 700}") == ["ad"]
    assert q("?start=2026-11-23T10:20:00Z") == ["program"]  # T0 + 1200
    assert q("?start=2026-11-23T11:12:00%2B01:00&end=2026-11-23T10:12:30") == ["ad"]  # offset; naive = UTC
    assert q("?start=2026-11-23T11:12:00 01:00&end=2026-11-23T10:12:30") == ["ad"]  # '+' sent unencoded
    assert q("?start=2026-11-23T11:12:00%2B01:00&end=2026-11-23T10:15:00") == ["ad", "program"]
    assert q("?device=tv1&limit=1") == ["ad"]


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("limit=0", 400, "limit must be between 1 and 10000"),
        ("limit=10001", 400, "limit must be between 1 and 10000"),
        ("limit=ten", 400, "limit='ten' is not an integer"),
        ("start=yesterday", 400, "start='yesterday' is neither epoch seconds nor an ISO 8601 time"),
        ("start=nan", 400, "start='nan' is not a finite number"),
        (f"start={T0 + 10}&end={T0}", 400, "end must be after start"),
        ("label=commercial", 400, "label='commercial': expected one of program, ad"),
        ("device=Bad%20Name", 400, "is not a device name"),
        ("device=tv9", 404, "unknown device 'tv9'"),
        ("from=1", 400, "unknown parameter(s) from"),
        ("limit=1&limit=2", 400, "parameter limit given more than once"),
    ],
)
def test_bad_segment_parameters(client, query, status, message):
    before = client.get("/api/v1/health").get_json()["counters"]["api_rejected"].get(str(status), 0)
    assert message in error_of(client.get(f"/api/v1/segments?{query}"), status)
    after = client.get("/api/v1/health").get_json()["counters"]["api_rejected"]
    assert after[str(status)] == before + 1  # every refused request is counted by status


def test_events(client):
    events = client.get("/api/v1/events?device=tv1").get_json()["events"]
    assert [(e["seq"], e["type"]) for e in events] == [(1, "ad_start"), (2, "ad_end")]
    assert set(events[0]) == {"device", "event_id", "seq", "type", "boundary_ts", "decided_ts", "boundary_stream_t",
                              "decided_stream_t", "confidence", "model_version", "received"}
    assert [e["seq"] for e in client.get(f"/api/v1/events?start={T0 + 700}").get_json()["events"]] == [2]
    assert "label" in error_of(client.get("/api/v1/events?label=ad"), 400)


def test_firings(client):
    firings = client.get("/api/v1/rules/firings").get_json()["firings"]
    assert [(f["action"], f["reason"], f["device"], f["rule"]) for f in firings] == [
        ("mute", "ad_start", "tv1", "auto_mute")]
    assert client.get(f"/api/v1/rules/firings?start={T0 + 603}").get_json()["firings"] == []


def test_every_api_error_is_json(client, app, monkeypatch):
    assert error_of(client.get("/api/v1/nothing"), 404) == "no such resource: /api/v1/nothing"
    assert error_of(client.get("/api/v2/health"), 404) == "no such resource: /api/v2/health"
    r = client.post("/api/v1/health")
    assert error_of(r, 405) == "method POST not allowed on /api/v1/health" and "GET" in r.headers["Allow"]

    def boom():
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(app.extensions["adbreak"].store, "devices", boom)
    assert error_of(client.get("/api/v1/devices"), 500) == "internal server error"


# ---------------------------------------------------------------------------------------------------- dashboard
def test_dashboard_not_built(client):
    r = client.get("/", headers={"Accept": "text/html"})
    assert r.status_code == 503 and r.mimetype == "text/html"
    assert "dashboard not built: run `make web`" in r.get_data(as_text=True)
    r = client.get("/", headers={"Accept": "application/json"})
    assert r.status_code == 503 and r.get_json()["error"] == "dashboard not built: run `make web`"
    assert client.get("/api/v1/devices").status_code == 200  # the API does not need it


def test_dashboard_served(tmp_path):
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text("<!doctype html><div id=app></div>")
    (dist / "assets" / "app-1234.js").write_text("console.log(1)")
    (tmp_path / "secret.txt").write_text("no")
    app = make_app(tmp_path, web_dir=dist)
    try:
        c = app.test_client()
        r = c.get("/")
        assert r.status_code == 200 and "<div id=app>" in r.get_data(as_text=True)
        assert r.cache_control.no_cache
        r.close()
        r = c.get("/assets/app-1234.js")
        assert r.status_code == 200 and r.cache_control.max_age == 365 * 24 * 3600
        r.close()
        assert c.get("/assets/missing.js").status_code == 404
        assert c.get("/../secret.txt").status_code == 404
        assert c.get("/assets/..%2F..%2Fsecret.txt").status_code == 404
        assert error_of(c.get("/api/v1/missing"), 401)  # not signed in: nothing under /api but health and auth
    finally:
        app.extensions["adbreak"].stop()
