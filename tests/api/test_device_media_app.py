"""Keyframes and device settings: a real Mosquitto, the server app in this process on a migrated database (each
engine), plain paho clients publishing like an edge (and listening like one). The real edge agent against the real
server process: ``tests/integration/test_device_media.py``."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime

import cv2
import numpy as np
import pytest

from adbreak.wire import (
    MAX_KEYFRAME_BYTES,
    SETTINGS_FIELDS,
    DecisionSettings,
    KeyframePayload,
    Kind,
    SettingsStatePayload,
    StatePayload,
    Topics,
    new_event_id,
    parse_settings_set,
)
from server.device_settings import BUILTIN_DEFAULTS
from tests.edge_mqtt_support import Recorder, publish
from tests.mqtt_support import mosquitto  # noqa: F401 - fixture
from tests.server_support import SignedIn, error_of, make_app
from tests.support import wait_for

TOPICS = Topics()
pytestmark = pytest.mark.usefixtures("db_engine")
KEYFRAME_KEYS = {"id", "device", "ts", "kind", "reason", "p_ad", "label", "model_version", "width", "height", "bytes",
                 "url"}


# ---------------------------------------------------------------------------------------------------- helpers
def picture(seed: int, width: int = 384, height: int = 216, quality: int = 85) -> bytes:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    img = np.stack([x * 255 // width, y * 255 // height, np.full_like(x, seed * 37 % 255)], -1)
    img = np.clip(img + rng.integers(-40, 40, img.shape), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()


def keyframe(device: str, ts: float, kind: str = "start", *, data: bytes | None = None, **over) -> KeyframePayload:
    data = data if data is not None else picture(int(ts) % 1000)
    fields = {"device": device, "frame_id": new_event_id(), "ts": ts, "stream_t": ts - 1795430000.0, "kind": kind,
              "reason": None, "p_ad": 0.9, "label": "ad", "model_version": "m1", "width": 384, "height": 216}
    fields.update(over)
    return KeyframePayload.build(jpeg_bytes=data, **fields)


def announce(broker, device: str) -> None:
    publish(broker, TOPICS.available(device), "online", retain=True)
    state = StatePayload(device=device, label="program", since_ts=time.time() - 60, since_stream_t=0.0,
                         confidence=0.9, model_version="m1", ts=time.time())
    publish(broker, TOPICS.state(device), state.to_bytes(), retain=True)


def settings_state(device: str, **changes) -> SettingsStatePayload:
    defaults = DecisionSettings(**BUILTIN_DEFAULTS)
    return SettingsStatePayload(device=device, settings=DecisionSettings(**{**BUILTIN_DEFAULTS, **changes}),
                                defaults=defaults, overrides=changes, ts=time.time())


def counters(api) -> dict:
    return api.get("/api/v1/health").get_json()["counters"]


@pytest.fixture
def server(tmp_path, mosquitto):  # noqa: F811
    made = []

    def start(**overrides):
        app = make_app(tmp_path, start_mqtt=True, mqtt_host=mosquitto.host, mqtt_port=mosquitto.port, **overrides)
        made.append(app)
        assert app.extensions["adbreak"].bridge.wait_connected(10), "the server did not connect to the broker"
        return app, SignedIn(app)

    yield start
    for app in made:
        app.extensions["adbreak"].stop()


# ---------------------------------------------------------------------------------------------------- keyframes
def test_keyframes_are_stored_as_files_and_rows_and_served(server, mosquitto, tmp_path):  # noqa: F811
    app, api = server()
    rt = app.extensions["adbreak"]
    announce(mosquitto, "tv1")
    wait_for(lambda: api.get("/api/v1/devices/tv1").status_code == 200, what="tv1 announced")

    t0 = 1795430000.0
    sent = [keyframe("tv1", t0 + 10, "start"), keyframe("tv1", t0 + 40, "middle", label="program", p_ad=0.1),
            keyframe("tv1", t0 + 70, "sample", reason="boundary", p_ad=None, label=None)]
    for kf in reversed(sent):  # out of order on purpose: the API answers by time
        publish(mosquitto, TOPICS.keyframe("tv1"), kf.to_bytes())
    wait_for(lambda: counters(api)["keyframes_stored"] == 3, what="three keyframes stored")

    body = api.get("/api/v1/keyframes?device=tv1").get_json()
    got = body["keyframes"]
    assert [k["ts"] for k in got] == [t0 + 10, t0 + 40, t0 + 70]
    assert all(set(k) == KEYFRAME_KEYS for k in got)
    first = got[0]
    assert (first["device"], first["kind"], first["reason"], first["p_ad"], first["label"], first["model_version"],
            first["width"], first["height"]) == ("tv1", "start", None, 0.9, "ad", "m1", 384, 216)
    assert first["bytes"] == len(sent[0].data) and first["url"] == f"/api/v1/keyframes/{first['id']}.jpg"
    assert (got[2]["kind"], got[2]["reason"], got[2]["p_ad"], got[2]["label"]) == ("sample", "boundary", None, None)

    # the files: <data_dir>/keyframes/<device>/<UTC day>/<frame_id>.jpg, byte for byte
    day = datetime.fromtimestamp(t0 + 10, UTC).strftime("%Y-%m-%d")
    for kf in sent:
        path = tmp_path / "data" / "keyframes" / "tv1" / day / f"{kf.frame_id}.jpg"
        assert path.read_bytes() == kf.data

    # the JPEG over HTTP: cached privately, revalidated with its ETag
    r = api.get(first["url"])
    data = r.get_data()
    r.close()  # send_file's file
    assert r.status_code == 200 and r.mimetype == "image/jpeg" and data == sent[0].data
    cache = r.headers["Cache-Control"]
    assert "private" in cache and "immutable" in cache and "max-age=31536000" in cache
    again = api.get(first["url"], headers={"If-None-Match": r.headers["ETag"]})
    again.close()
    assert again.status_code == 304
    assert "no keyframe" in error_of(api.get("/api/v1/keyframes/999999.jpg"), 404)

    # filters and refusals
    assert [k["kind"] for k in api.get("/api/v1/keyframes?kind=sample").get_json()["keyframes"]] == ["sample"]
    window = api.get(f"/api/v1/keyframes?start={t0 + 20}&end={t0 + 70}").get_json()["keyframes"]
    assert [k["ts"] for k in window] == [t0 + 40]
    assert [k["ts"] for k in api.get("/api/v1/keyframes?limit=1").get_json()["keyframes"]] == [t0 + 10]
    assert "kind=" in error_of(api.get("/api/v1/keyframes?kind=thumb"), 400)
    assert "unknown parameter" in error_of(api.get("/api/v1/keyframes?color=red"), 400)
    assert "unknown device" in error_of(api.get("/api/v1/keyframes?device=tv9"), 404)

    # a duplicate (QoS 1 may deliver twice), a cut-short JPEG, a stranger, an oversized one: counted, not stored
    publish(mosquitto, TOPICS.keyframe("tv1"), sent[0].to_bytes())
    cut = sent[1].data[: len(sent[1].data) // 2]  # the header is whole, the picture is not
    publish(mosquitto, TOPICS.keyframe("tv1"), keyframe("tv1", t0 + 80, data=cut).to_bytes())
    publish(mosquitto, TOPICS.keyframe("tv9"), keyframe("tv9", t0 + 90).to_bytes())
    huge = json.loads(sent[0].to_bytes())
    huge["jpeg"] = base64.b64encode(bytes(MAX_KEYFRAME_BYTES)).decode()
    publish(mosquitto, TOPICS.keyframe("tv1"), json.dumps(huge))
    wait_for(lambda: sum(counters(api)["rejected"][r] for r in
                         ("duplicate", "bad_payload", "unknown_device", "too_large")) == 4, what="four refusals")
    c = counters(api)
    assert [c["rejected"][r] for r in ("duplicate", "bad_payload", "unknown_device", "too_large")] == [1, 1, 1, 1]
    assert c["keyframes_stored"] == 3 and len(api.get("/api/v1/keyframes").get_json()["keyframes"]) == 3
    assert not (tmp_path / "data" / "keyframes" / "tv9").exists()
    files = sorted(p.name for p in (tmp_path / "data" / "keyframes").rglob("*") if p.is_file())
    assert files == sorted(f"{kf.frame_id}.jpg" for kf in sent)
    assert rt.keyframes.total_bytes() == sum(len(kf.data) for kf in sent)


def test_retention_deletes_the_oldest_beyond_the_size_and_then_the_age(server, mosquitto, tmp_path):  # noqa: F811
    app, api = server(keyframes_max_mb=0.1)  # 100 KB
    rt = app.extensions["adbreak"]
    announce(mosquitto, "tv1")
    wait_for(lambda: api.get("/api/v1/devices/tv1").status_code == 200, what="tv1 announced")
    t0 = time.time() - 3600
    sent = []
    for i in range(8):
        kf = keyframe("tv1", t0 + i, data=picture(i, quality=92))
        sent.append(kf)
        publish(mosquitto, TOPICS.keyframe("tv1"), kf.to_bytes())
    wait_for(lambda: counters(api)["keyframes_stored"] == 8, what="eight keyframes stored")
    sizes = [len(kf.data) for kf in sent]
    assert sum(sizes) > 100_000 and all(s > 15_000 for s in sizes)

    deleted = rt.ingest.run(lambda batch: rt.keyframes.retention(batch))
    kept = api.get("/api/v1/keyframes").get_json()["keyframes"]
    keep_n = len(kept)
    assert deleted == 8 - keep_n and keep_n >= 1
    assert [k["ts"] for k in kept] == [kf.ts for kf in sent[-keep_n:]]  # the newest stay
    assert sum(sizes[-keep_n:]) <= 100_000 < sum(sizes[-keep_n - 1:])  # as many as fit
    on_disk = {p.name for p in (tmp_path / "data" / "keyframes").rglob("*.jpg")}
    assert on_disk == {f"{kf.frame_id}.jpg" for kf in sent[-keep_n:]}
    assert counters(api)["keyframes_deleted"] == deleted

    rt.keyframes.max_age_s = 0.5  # everything received more than half a second ago is now too old
    time.sleep(0.6)
    assert rt.ingest.run(lambda batch: rt.keyframes.retention(batch)) == keep_n
    assert api.get("/api/v1/keyframes").get_json()["keyframes"] == []
    assert not any((tmp_path / "data" / "keyframes").rglob("*.jpg"))
    assert not (tmp_path / "data" / "keyframes" / "tv1").exists()  # the empty day and device folders go too
    assert counters(api)["keyframes_deleted"] == 8


# ---------------------------------------------------------------------------------------------------- settings
def test_put_settings_publishes_set_and_the_reported_state_clears_pending(server, mosquitto):  # noqa: F811
    app, api = server()
    rt = app.extensions["adbreak"]
    commands = Recorder(mosquitto, TOPICS.wildcard(Kind.SETTINGS_SET))
    announce(mosquitto, "tv1")
    wait_for(lambda: api.get("/api/v1/devices/tv1").status_code == 200, what="tv1 announced")
    start = api.get("/api/v1/devices/tv1/settings").get_json()
    assert start == {"device": "tv1", "defaults": None, "desired": None, "reported": None,
                     "effective": BUILTIN_DEFAULTS, "pending": False, "error": None}

    r = api.put("/api/v1/devices/tv1/settings", json={"min_ad_s": 6, "enter_threshold": 0.8})
    assert r.status_code == 200, r.get_data(as_text=True)
    body = r.get_json()
    assert body["desired"] == {"enter_threshold": 0.8, "min_ad_s": 6.0} and body["pending"] is True
    assert body["effective"] == {**BUILTIN_DEFAULTS, "enter_threshold": 0.8, "min_ad_s": 6.0}
    assert commands.wait_for(lambda ms: len(ms) == 1, 5)
    msg = commands.messages[0]
    assert msg.topic == "adbreak/tv1/settings/set" and msg.qos == 1 and not msg.retain
    cmd = parse_settings_set(msg.payload, "tv1")
    assert cmd.changes() == {**{k: None for k in SETTINGS_FIELDS}, "enter_threshold": 0.8, "min_ad_s": 6.0}

    # the edge applies them and publishes its retained settings/state: no longer pending
    applied = settings_state("tv1", enter_threshold=0.8, min_ad_s=6.0)
    publish(mosquitto, TOPICS.settings_state("tv1"), applied.to_bytes(), retain=True)
    wait_for(lambda: not api.get("/api/v1/devices/tv1/settings").get_json()["pending"], what="pending cleared")
    dev = api.get("/api/v1/devices").get_json()["devices"][0]
    assert dev["model_version"] == "m1" and dev["settings"]["reported"]["min_ad_s"] == 6.0
    assert dev["settings"]["defaults"] == BUILTIN_DEFAULTS and dev["settings"]["pending"] is False

    # a device that comes back with other settings (it lost them) gets the chosen ones again
    rt.device_settings.resend_interval_s = 0.0
    publish(mosquitto, TOPICS.settings_state("tv1"), settings_state("tv1").to_bytes(), retain=True)
    assert commands.wait_for(lambda ms: len(ms) == 2, 5)
    assert parse_settings_set(commands.messages[1].payload, "tv1").min_ad_s == 6.0
    assert api.get("/api/v1/devices/tv1/settings").get_json()["pending"] is True
    # ... but not on every report: the interval holds the next resend back
    rt.device_settings.resend_interval_s = 3600.0
    publish(mosquitto, TOPICS.settings_state("tv1"), settings_state("tv1").to_bytes(), retain=True)
    time.sleep(0.5)
    assert len(commands.messages) == 2

    # null resets a field; the rest stays
    body = api.put("/api/v1/devices/tv1/settings", json={"min_ad_s": None}).get_json()
    assert body["desired"] == {"enter_threshold": 0.8}
    assert commands.wait_for(lambda ms: len(ms) == 3, 5)
    assert parse_settings_set(commands.messages[2].payload, "tv1").min_ad_s is None

    # refusals: nothing stored, nothing sent
    assert "greater than exit_threshold" in error_of(
        api.put("/api/v1/devices/tv1/settings", json={"exit_threshold": 0.85}), 400)
    assert "Extra inputs" in error_of(api.put("/api/v1/devices/tv1/settings", json={"max_lookback_s": 5}), 400)
    assert "enter_threshold" in error_of(api.put("/api/v1/devices/tv1/settings", json={"enter_threshold": 2}), 400)
    assert "JSON object" in error_of(api.put("/api/v1/devices/tv1/settings", json=[1]), 400)
    assert "unknown device" in error_of(api.put("/api/v1/devices/tv9/settings", json={}), 404)
    assert "unknown device" in error_of(api.get("/api/v1/devices/tv9/settings"), 404)
    time.sleep(0.3)
    assert len(commands.messages) == 3
    assert api.get("/api/v1/devices/tv1/settings").get_json()["desired"] == {"enter_threshold": 0.8}
    assert counters(api)["settings_sent"] == 3
    commands.close()


def test_settings_need_a_signed_in_user(server):
    app, _api = server()
    anonymous = app.test_client()
    assert anonymous.get("/api/v1/keyframes").status_code == 401
    assert anonymous.put("/api/v1/devices/tv1/settings", json={}).status_code == 401
