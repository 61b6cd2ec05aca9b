"""Property-based: whatever arrives on an MQTT topic, ``adbreak.wire`` either parses it or refuses it with a
``WireError`` of a known reason, and the server's bridge counts each message exactly once (received, and either
handed on or rejected by reason), never raising. The at-volume test against real processes is
``tests/integration/test_mqtt_fuzz.py``."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adbreak.wire import REJECT_REASONS, Kind, Topics, WireError
from server.bridge import BrokerConfig, Message, MqttBridge
from server.counters import Counters

TOPICS = Topics()
DEVICES = st.sampled_from(["tv-0", "fuzz-1", "", "TV", "a" * 65, "dévice", "x y", "-x"])
KINDS = st.sampled_from([k.value for k in Kind] + ["bogus", "event/x", "settings", ""])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=6),
    max_leaves=15,
)
FIELDS = ["v", "device", "event_id", "seq", "type", "boundary_ts", "decided_ts", "boundary_stream_t",
          "decided_stream_t", "confidence", "model_version", "label", "since_ts", "since_stream_t", "ts", "stream_t",
          "p_ad", "smoothed", "fps", "latency_ms", "dropped", "frame_id", "kind", "reason", "width", "height", "jpeg",
          "settings", "defaults", "overrides", "error", "rejected"]
# objects shaped like the contract's payloads (known field names, v mostly 1) with values of any type
PAYLOAD_LIKE = st.fixed_dictionaries({"v": st.sampled_from([1, 1, 1, 2, "1", True, None])}, optional={
    f: JSON_VALUES for f in FIELDS if f != "v"}).map(lambda d: json.dumps(d, allow_nan=True).encode())
PAYLOADS = st.one_of(st.binary(max_size=300), JSON_VALUES.map(lambda v: json.dumps(v, allow_nan=True).encode()),
                     PAYLOAD_LIKE, st.text(max_size=100).map(str.encode))


class Sink:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    def submit(self, message: Message) -> None:
        self.messages.append(message)


def _bridge() -> tuple[MqttBridge, Sink, Counters]:
    counters, sink = Counters(), Sink()
    return MqttBridge(BrokerConfig(), sink, counters=counters), sink, counters


BRIDGE = _bridge()
"""One bridge for every example (never started: ``handle`` is what paho's callback calls)."""


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(device=DEVICES, kind=KINDS, payload=PAYLOADS, qos1=st.booleans())
def test_the_bridge_counts_every_message_once_and_never_raises(device, kind, payload, qos1) -> None:
    bridge, sink, counters = BRIDGE
    sink.messages.clear()
    before = counters.snapshot()
    topic = f"{TOPICS.prefix}/{device}/{kind}"
    reason = bridge.handle(topic, payload, ack=(lambda: None) if qos1 else None)
    after = counters.snapshot()
    assert after["received"] - before["received"] == 1
    delta = {r: after["rejected"][r] - before["rejected"][r] for r in REJECT_REASONS}
    rejected = sum(delta.values())
    if reason is None:  # parsed: handed on once, nothing counted as refused
        assert rejected == 0
        assert len(sink.messages) == 1 and sink.messages[0].kind is not None
    else:
        assert reason in REJECT_REASONS
        assert rejected == 1 and delta[reason] == 1
        # a refused QoS 1 message is still handed on (empty), to be acknowledged in its turn
        assert [m.kind for m in sink.messages] == ([None] if qos1 else [])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(list(Kind)), payload=PAYLOADS)
def test_parsers_refuse_with_a_known_reason_or_parse(kind, payload) -> None:
    from adbreak import wire

    parse = {
        Kind.AVAILABLE: lambda raw: wire.parse_availability(raw),
        Kind.STATE: lambda raw: wire.parse_state(raw, "tv-0"),
        Kind.EVENT: lambda raw: wire.parse_event(raw, "tv-0"),
        Kind.TELEMETRY: lambda raw: wire.parse_telemetry(raw, "tv-0"),
        Kind.KEYFRAME: lambda raw: wire.parse_keyframe(raw, "tv-0"),
        Kind.SETTINGS_SET: lambda raw: wire.parse_settings_set(raw, "tv-0"),
        Kind.SETTINGS_STATE: lambda raw: wire.parse_settings_state(raw, "tv-0"),
        Kind.MUTE: lambda raw: raw,  # plain ON/OFF: not parsed by the wire module
    }[kind]
    try:
        parse(payload)
    except WireError as exc:
        assert exc.reason in REJECT_REASONS
        assert "\n" not in str(exc)
