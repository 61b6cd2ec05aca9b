"""The MQTT link against a real Mosquitto: availability, retained state across a broker restart, events delivered
before a clean exit, incoming commands routed to their handler."""

from __future__ import annotations

import time

import pytest

from adbreak.wire import EventPayload, EventType, StatePayload, Topics, new_event_id, parse_event, parse_state
from edge.mqtt import MqttLink
from tests.edge_mqtt_support import Recorder, free_port, mosquitto, needs_mosquitto, publish, retained
from tests.support import wait_for

pytestmark = needs_mosquitto
TOPICS = Topics("adbreak")


@pytest.fixture
def broker(tmp_path):
    with mosquitto(tmp_path) as b:
        yield b


def state(label="ad", since=10.0) -> StatePayload:
    return StatePayload(device="tv1", label=label, since_ts=1000.0 + since, since_stream_t=since, confidence=0.9,
                        model_version="m-1", ts=time.time())


def event(seq: int) -> EventPayload:
    return EventPayload(device="tv1", event_id=new_event_id(), seq=seq,
                        type=EventType.AD_START if seq % 2 else EventType.AD_END, boundary_ts=1000.0 + seq,
                        decided_ts=1000.5 + seq, boundary_stream_t=float(seq), decided_stream_t=seq + 0.5,
                        confidence=0.9, model_version="m-1")


def make_link(broker, **kw) -> MqttLink:
    return MqttLink(device="tv1", topics=TOPICS, host=broker.host, port=broker.port, keepalive_s=5, **kw)


def test_online_on_connect_stopped_on_clean_exit_and_events_are_delivered_first(broker):
    rec = Recorder(broker, "adbreak/#")
    link = make_link(broker)
    link.start()
    assert link.wait_connected(10)
    link.publish_state(state())
    for seq in range(1, 21):
        link.publish_event(event(seq))
    assert link.stop() is True
    # the broker acknowledged "stopped" to the link; it reaches the subscriber a moment later
    assert rec.wait_for(lambda ms: any(m.topic == TOPICS.available("tv1") and m.text == "stopped" for m in ms), 10)
    available = rec.on(TOPICS.available("tv1"))
    assert [m.text for m in available] == ["online", "stopped"]
    events = [parse_event(m.payload, "tv1") for m in rec.on(TOPICS.event("tv1"))]
    assert [e.seq for e in events] == list(range(1, 21))
    assert all(not m.retain for m in rec.on(TOPICS.event("tv1")))
    kept = retained(broker, "adbreak/tv1/#")
    assert kept[TOPICS.available("tv1")].text == "stopped"
    assert parse_state(kept[TOPICS.state("tv1")].payload, "tv1").label == "ad"
    assert TOPICS.event("tv1") not in kept
    rec.close()


def test_a_restarted_broker_gets_online_and_the_state_again(broker):
    link = make_link(broker)
    link.start()
    assert link.wait_connected(10)
    link.publish_state(state("ad", since=42.0))
    time.sleep(0.3)
    broker.stop()  # no persistence: the retained messages are gone with it
    deadline = time.monotonic() + 10
    while link.connected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not link.connected
    link.publish_state(state("program", since=55.0))  # decided while the broker is away
    link.publish_event(event(5))  # queued in memory
    assert link.unacknowledged == 1
    broker.start()
    assert link.wait_connected(15), "no reconnect"
    time.sleep(1.0)  # on_connect and the refresh after it
    link.tick()
    time.sleep(0.3)
    assert link.unacknowledged == 0  # the queued event reached the new broker
    # the refreshed state is not tracked for acknowledgement: what the broker keeps, once it keeps a state
    kept = wait_for(lambda: (k := retained(broker, "adbreak/tv1/#")) and TOPICS.state("tv1") in k and k,
                    what="the retained state on the new broker")
    assert kept[TOPICS.available("tv1")].text == "online"
    again = parse_state(kept[TOPICS.state("tv1")].payload, "tv1")
    assert again.label == "program" and again.since_stream_t == 55.0
    assert link.connects == 2
    link.stop()


def test_commands_reach_their_handler_and_a_failing_handler_does_not_kill_the_link(broker):
    got: list[bytes] = []

    def handler(payload: bytes) -> None:
        got.append(payload)
        if payload == b"BOOM":
            raise RuntimeError("handler bug")

    link = make_link(broker, handlers={TOPICS.mute("tv1"): handler})
    link.start()
    assert link.wait_connected(10)
    time.sleep(0.3)  # the subscription made in on_connect
    for payload in ("BOOM", "ON", "OFF"):
        publish(broker, TOPICS.mute("tv1"), payload)
    deadline = time.monotonic() + 5
    while len(got) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert got == [b"BOOM", b"ON", b"OFF"]
    link.publish_event(event(1))  # still alive
    assert link.stop() is True


def test_stop_without_a_broker_returns_promptly_and_reports_failure():
    link = MqttLink(device="tv1", topics=TOPICS, host="127.0.0.1", port=free_port(), keepalive_s=5)
    link.start()
    assert not link.wait_connected(0.5)
    link.publish_event(event(1))
    started = time.monotonic()
    assert link.stop(timeout=1.0) is False
    assert time.monotonic() - started < 5
