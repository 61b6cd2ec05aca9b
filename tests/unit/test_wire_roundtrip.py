"""Property-based: every valid payload of every message kind survives parse -> serialise -> parse unchanged.

``tests/unit/test_wire_fuzz.py`` checks that anything at all is parsed or refused with a known reason; this checks
the other half: what a valid sender writes (``to_bytes``) is read back (``parse_*``) as the same payload, and writing
that again gives the same bytes. The strategies build payloads from the contract's own field ranges (any device
name the topic pattern allows, any finite time, any probability, any JPEG size), so an encoder that loses precision,
a field that does not survive JSON, or a validator that refuses its own output fails here.
"""

from __future__ import annotations

import base64
import math

import cv2
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adbreak import wire
from adbreak.wire import (
    SETTINGS_FIELDS,
    Availability,
    DecisionSettings,
    EventPayload,
    EventType,
    KeyframePayload,
    SettingsSetPayload,
    SettingsStatePayload,
    StatePayload,
    TelemetryPayload,
)

DEVICE = st.from_regex(wire.DEVICE_RE, fullmatch=True)
HEX32 = st.from_regex(r"[0-9a-f]{32}", fullmatch=True)
TEXT = st.text(max_size=256)
SECONDS = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12)
PROB = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
NONNEG = st.floats(min_value=0.0, max_value=1e9, allow_nan=False, allow_infinity=False)
LABEL = st.sampled_from(["program", "ad"])
THRESHOLD = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
DURATION = st.floats(min_value=0.0, max_value=3600.0, allow_nan=False)
REASON = st.from_regex(r"[a-z][a-z0-9_]{0,31}", fullmatch=True)


@st.composite
def events(draw: st.DrawFn) -> EventPayload:
    boundary = draw(SECONDS)
    return EventPayload(
        device=draw(DEVICE), event_id=draw(HEX32), seq=draw(st.integers(1, 2**53)),
        type=draw(st.sampled_from(EventType)),
        boundary_ts=boundary, decided_ts=boundary + draw(st.floats(0.0, 1e6, allow_nan=False)),
        boundary_stream_t=draw(SECONDS), decided_stream_t=draw(SECONDS), confidence=draw(PROB),
        model_version=draw(TEXT))


STATES = st.builds(StatePayload, device=DEVICE, label=LABEL, since_ts=SECONDS, since_stream_t=SECONDS,
                   confidence=PROB, model_version=TEXT, ts=SECONDS)
TELEMETRY = st.builds(TelemetryPayload, device=DEVICE, ts=SECONDS, stream_t=SECONDS, p_ad=PROB, smoothed=PROB,
                      label=st.none() | LABEL, fps=NONNEG, latency_ms=NONNEG, dropped=st.integers(0, 2**40))
SETTINGS = st.builds(DecisionSettings, smoothing=st.sampled_from(["window", "ema"]), window_s=DURATION,
                     ema_tau_s=DURATION, enter_threshold=THRESHOLD, exit_threshold=THRESHOLD, min_ad_s=DURATION,
                     min_program_s=DURATION)
SETTINGS_STATES = st.builds(
    SettingsStatePayload, device=DEVICE, settings=SETTINGS, defaults=SETTINGS, ts=SECONDS,
    overrides=st.dictionaries(st.sampled_from(SETTINGS_FIELDS), st.sampled_from(["server", "config"]) | DURATION,
                              max_size=7),
    error=st.none() | st.text(max_size=512), rejected=st.integers(0, 2**31))
FIELD_VALUES = {"smoothing": st.none() | st.sampled_from(["window", "ema"]), "window_s": st.none() | DURATION,
                "ema_tau_s": st.none() | DURATION, "enter_threshold": st.none() | THRESHOLD,
                "exit_threshold": st.none() | THRESHOLD, "min_ad_s": st.none() | DURATION,
                "min_program_s": st.none() | DURATION}


@st.composite
def settings_sets(draw: st.DrawFn) -> SettingsSetPayload:
    """Any subset of the fields (left out = unchanged, ``None`` = back to the default: the two must stay apart)."""
    given_fields = draw(st.lists(st.sampled_from(SETTINGS_FIELDS), unique=True))
    return SettingsSetPayload(device=draw(DEVICE), **{f: draw(FIELD_VALUES[f]) for f in given_fields})


def _jpeg(width: int, height: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", np.zeros((height, width, 3), np.uint8))
    assert ok
    return buf.tobytes()


@st.composite
def keyframes(draw: st.DrawFn) -> KeyframePayload:
    width, height = draw(st.integers(1, 96)), draw(st.integers(1, 96))
    kind = draw(st.sampled_from(["start", "middle", "end", "sample"]))
    return KeyframePayload.build(
        jpeg_bytes=_jpeg(width, height), device=draw(DEVICE), frame_id=draw(HEX32), ts=draw(SECONDS),
        stream_t=draw(SECONDS), kind=kind, reason=draw(st.none() | REASON),
        p_ad=draw(st.none() | PROB), label=draw(st.none() | LABEL), model_version=draw(TEXT), width=width,
        height=height)


KINDS = [
    ("event", events(), wire.parse_event),
    ("state", STATES, wire.parse_state),
    ("telemetry", TELEMETRY, wire.parse_telemetry),
    ("keyframe", keyframes(), wire.parse_keyframe),
    ("settings/set", settings_sets(), wire.parse_settings_set),
    ("settings/state", SETTINGS_STATES, wire.parse_settings_state),
]


def _same(a: object, b: object) -> bool:
    """Equal, with -0.0 and 0.0 told apart (JSON keeps the sign) and no NaN (the strategies make none)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_valid_payload_survives_parse_serialise_parse(data: st.DataObject) -> None:
    for name, strategy, parse in KINDS:
        sent = data.draw(strategy, label=name)
        raw = sent.to_bytes()
        got = parse(raw, sent.device)
        assert type(got) is type(sent), name
        assert _same(got.model_dump(), sent.model_dump()), name
        # settings/set: a field left out (unchanged) and a field given as null (back to the default) stay apart
        assert got.model_fields_set - {"v"} == sent.model_fields_set - {"v"}, name
        again = got.to_bytes()
        assert again == raw, name
        assert _same(parse(again).model_dump(), got.model_dump()), name


def test_a_keyframe_keeps_its_jpeg_bytes() -> None:
    data = _jpeg(33, 17)
    sent = KeyframePayload.build(jpeg_bytes=data, device="tv", frame_id="0" * 32, ts=1.0, stream_t=2.0,
                                 kind="start", model_version="m", width=33, height=17)
    got = wire.parse_keyframe(sent.to_bytes(), "tv")
    assert got.data == data and base64.b64decode(got.jpeg) == data


@given(st.sampled_from(list(Availability)), st.sampled_from(["", " ", "\n"]))
def test_availability_survives_its_round_trip(value: Availability, pad: str) -> None:
    assert wire.parse_availability((value.value + pad).encode()) is value
