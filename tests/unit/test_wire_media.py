"""The wire contract's media and settings kinds: keyframes (size limit, base64, JPEG header against width/height),
``settings/set`` (partial, null = default) and the retained ``settings/state``; their topics."""

from __future__ import annotations

import base64
import dataclasses
import json

import cv2
import numpy as np
import pytest

from adbreak import wire
from adbreak.wire import (
    MAX_KEYFRAME_BYTES,
    MAX_PAYLOAD_BYTES,
    SETTINGS_FIELDS,
    KeyframePayload,
    Kind,
    SettingsSetPayload,
    SettingsStatePayload,
    Topics,
    WireError,
    jpeg_size,
    parse_keyframe,
    parse_settings_set,
    parse_settings_state,
    parse_state,
)
from edge.decision import DecisionConfig


def jpeg(width: int = 384, height: int = 216, quality: int = 80, seed: int = 0, progressive: bool = False) -> bytes:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    img = np.stack([(x * 255 // max(width - 1, 1)), (y * 255 // max(height - 1, 1)), np.full_like(x, 90)], -1)
    img = np.clip(img + rng.integers(-12, 12, img.shape), 0, 255).astype(np.uint8)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] + ([cv2.IMWRITE_JPEG_PROGRESSIVE, 1] if progressive else [])
    ok, buf = cv2.imencode(".jpg", img, params)
    assert ok
    return buf.tobytes()


def keyframe_dict(data: bytes, **over) -> dict:
    d = {"v": 1, "device": "tv1", "frame_id": "ab" * 16, "ts": 1795430000.5, "stream_t": 12.5, "kind": "start",
         "reason": None, "p_ad": 0.93, "label": "ad", "model_version": "m-1", "width": 384, "height": 216,
         "jpeg": base64.b64encode(data).decode()}
    d.update(over)
    return d


def raw(d: dict) -> bytes:
    return json.dumps(d).encode()


def reason_of(fn, *args) -> str:
    with pytest.raises(WireError) as info:
        fn(*args)
    return info.value.reason


# ---------------------------------------------------------------------------------------------------- topics
def test_topics_of_the_new_kinds_and_their_parsing():
    t = Topics("home/adbreak")
    assert t.keyframe("tv1") == "home/adbreak/tv1/keyframe"
    assert t.settings_set("tv1") == "home/adbreak/tv1/settings/set"
    assert t.settings_state("tv1") == "home/adbreak/tv1/settings/state"
    assert t.wildcard(Kind.SETTINGS_STATE) == "home/adbreak/+/settings/state"
    for kind in (Kind.KEYFRAME, Kind.SETTINGS_SET, Kind.SETTINGS_STATE, Kind.MUTE):
        assert t.parse(t.topic("tv1", kind)) == ("tv1", kind)
    for bad in ("home/adbreak/tv1/settings", "home/adbreak/tv1/settings/set/x", "home/adbreak/tv1/settings/get",
                "home/adbreak/tv1/keyframe/x", "home/adbreak/TV/keyframe"):
        assert reason_of(t.parse, bad) == "bad_topic", bad


def test_size_limits_by_kind():
    assert Kind.KEYFRAME.max_bytes == MAX_KEYFRAME_BYTES == 96 * 1024
    assert all(k.max_bytes == MAX_PAYLOAD_BYTES for k in Kind if k is not Kind.KEYFRAME)


# ---------------------------------------------------------------------------------------------------- JPEG header
@pytest.mark.parametrize("size", [(384, 216), (1, 1), (640, 480), (333, 17)])
@pytest.mark.parametrize("progressive", [False, True])
def test_jpeg_size_reads_the_frame_header(size, progressive):
    assert jpeg_size(jpeg(*size, progressive=progressive)) == size


def test_jpeg_size_skips_other_segments_before_the_frame_header():
    data = jpeg(100, 50)
    app1 = b"\xff\xe1" + (2 + 10).to_bytes(2, "big") + b"Exif\0\0" + b"\0" * 4
    comment = b"\xff\xfe" + (2 + 5).to_bytes(2, "big") + b"hello"
    assert jpeg_size(data[:2] + app1 + b"\xff" + comment + data[2:]) == (100, 50)  # a fill byte too


@pytest.mark.parametrize("bad", [
    b"",
    b"\x89PNG\r\n\x1a\n" + b"\0" * 40,
    b"\xff\xd8\xff\xda\x00\x08" + b"\0" * 20,  # a scan before any frame header
    b"\xff\xd8\xff\xe0\x10\x00JFIF",  # a segment longer than the data
    b"\xff\xd8\xff\xc0\x00\x11\x08\x00\x00\x01\x80\x03",  # height 0
])
def test_jpeg_size_refuses_what_is_no_jpeg(bad):
    with pytest.raises(ValueError):
        jpeg_size(bad)


# ---------------------------------------------------------------------------------------------------- keyframes
def test_keyframe_round_trip_and_data():
    data = jpeg(quality=97)
    payload = KeyframePayload.build(jpeg_bytes=data, device="tv1", frame_id=wire.new_event_id(), ts=1.5,
                                    stream_t=0.5, kind="sample", reason="low_confidence", p_ad=0.5, label="program",
                                    model_version="m", width=384, height=216)
    back = parse_keyframe(payload.to_bytes(), "tv1")
    assert back == payload and back.data == data
    assert MAX_PAYLOAD_BYTES < len(payload.to_bytes()) <= MAX_KEYFRAME_BYTES  # over the general limit: its own


def test_keyframe_oversized_is_too_large_and_other_kinds_keep_16k():
    big = jpeg(1400, 1000, quality=100, seed=3)
    encoded = raw(keyframe_dict(big, width=1400, height=1000))
    assert len(encoded) > MAX_KEYFRAME_BYTES
    assert reason_of(parse_keyframe, encoded, "tv1") == "too_large"
    state = {"v": 1, "device": "tv1", "label": "ad", "since_ts": 1.0, "since_stream_t": 0.0, "confidence": 0.9,
             "model_version": "x" * 200, "ts": 2.0, "pad": "y" * MAX_PAYLOAD_BYTES}
    assert reason_of(parse_state, raw(state), "tv1") == "too_large"


@pytest.mark.parametrize("field, value", [
    ("jpeg", "not base64 at all!"),
    ("jpeg", base64.b64encode(b"GIF89a" + b"\0" * 40).decode()),
    ("jpeg", base64.b64encode(jpeg())[:-3].decode()),  # broken padding
    ("width", 385),
    ("height", 215),
    ("width", 0),
    ("kind", "thumbnail"),
    ("reason", "Bad Reason"),
    ("p_ad", 1.2),
    ("label", "maybe"),
    ("frame_id", "xyz"),
    ("ts", float("nan")),
])
def test_keyframe_refused_fields(field, value):
    d = keyframe_dict(jpeg(), **{field: value})
    text = json.dumps(d, allow_nan=True).encode()
    assert reason_of(parse_keyframe, text, "tv1") == "bad_payload", (field, value)


def test_keyframe_device_must_match_and_unknown_fields_refused():
    assert reason_of(parse_keyframe, raw(keyframe_dict(jpeg())), "tv2") == "device_mismatch"
    assert reason_of(parse_keyframe, raw(keyframe_dict(jpeg(), extra=1)), "tv1") == "bad_payload"
    assert reason_of(parse_keyframe, raw(keyframe_dict(jpeg(), v=2)), "tv1") == "bad_version"


# ---------------------------------------------------------------------------------------------------- settings
def test_settings_fields_are_decision_config_fields():
    names = {f.name for f in dataclasses.fields(DecisionConfig)}
    assert set(SETTINGS_FIELDS) <= names and "max_lookback_s" not in SETTINGS_FIELDS


def test_settings_set_is_partial_and_null_means_default():
    p = SettingsSetPayload(device="tv1", min_ad_s=8, enter_threshold=None)
    assert json.loads(p.to_bytes()) == {"v": 1, "device": "tv1", "enter_threshold": None, "min_ad_s": 8.0}
    back = parse_settings_set(p.to_bytes(), "tv1")
    assert back.changes() == {"enter_threshold": None, "min_ad_s": 8.0}
    assert parse_settings_set(b'{"v": 1, "device": "tv1"}', "tv1").changes() == {}


@pytest.mark.parametrize("body, reason", [
    ({"smoothing": "median"}, "bad_payload"),
    ({"enter_threshold": 1.5}, "bad_payload"),
    ({"min_ad_s": -1}, "bad_payload"),
    ({"min_ad_s": "ten"}, "bad_payload"),
    ({"max_lookback_s": 10}, "bad_payload"),  # not settable over MQTT
    ({"device": "tv2"}, "device_mismatch"),
    ({"v": 2}, "bad_version"),
])
def test_settings_set_refused(body, reason):
    d = {"v": 1, "device": "tv1", **body}
    assert reason_of(parse_settings_set, raw(d), "tv1") == reason
    assert reason_of(parse_settings_set, b"[1, 2]", "tv1") == "bad_json"


def test_settings_state_round_trip():
    full = {k: v for k, v in DecisionConfig().to_dict().items() if k in SETTINGS_FIELDS}
    p = SettingsStatePayload(device="tv1", settings=wire.DecisionSettings(**{**full, "min_ad_s": 6.0}),
                             defaults=wire.DecisionSettings(**full), overrides={"min_ad_s": 6.0}, error=None,
                             rejected=2, ts=5.0)
    back = parse_settings_state(p.to_bytes(), "tv1")
    assert back == p and back.settings.min_ad_s == 6.0 and back.defaults.min_ad_s == 10.0
    d = json.loads(p.to_bytes())
    del d["defaults"]
    assert reason_of(parse_settings_state, raw(d), "tv1") == "bad_payload"
    d = json.loads(p.to_bytes())
    d["overrides"] = {"bogus": 1}
    assert reason_of(parse_settings_state, raw(d), "tv1") == "bad_payload"
