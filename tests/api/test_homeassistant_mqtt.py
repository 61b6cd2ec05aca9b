"""Home Assistant discovery and the auto-mute switch against a real Mosquitto and the real server app.

The server is ``create_app`` in this process on a migrated database (each engine) with its MQTT bridge connected to a
private broker; an edge-style paho client publishes availability, state and events; fresh paho subscribers look at
what the broker keeps (retained) and at what goes by (commands); the REST side is Flask's test client signed in as
the admin.
"""

from __future__ import annotations

import json
import logging
import time

import pytest

from adbreak.wire import EventPayload, EventType, StatePayload, Topics, new_event_id
from server.app import create_app
from tests.mqtt_support import MqttClient, mosquitto, wait_for  # noqa: F401 - fixture
from tests.server_support import SignedIn, error_of, make_settings

pytestmark = pytest.mark.usefixtures("db_engine")

TOPICS = Topics()
DEVICE = "tv1"
CONFIG = f"homeassistant/device/adbreak_{DEVICE}/config"
SWITCH_SET = f"adbreak/{DEVICE}/automute/set"
SWITCH_STATE = f"adbreak/{DEVICE}/automute/state"
SERVER_STATUS = "adbreak/_server/status"
MUTE = f"adbreak/{DEVICE}/mute/set"


def retained(broker, topic: str) -> str | None:
    """What the broker keeps on ``topic``, as a subscriber connecting now gets it (None: nothing kept)."""
    c = MqttClient(broker, "look", topic)
    try:
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            kept = [payload for payload, was_retained in c.on(topic) if was_retained]  # not what goes by meanwhile
            if kept:
                return kept[0]
            time.sleep(0.02)
        return None
    finally:
        c.close()


def event(seq: int, kind: EventType, boundary: float) -> bytes:
    return EventPayload(device=DEVICE, event_id=new_event_id(), seq=seq, type=kind, boundary_ts=boundary,
                        decided_ts=boundary + 0.5, boundary_stream_t=seq * 10.0, decided_stream_t=seq * 10.0 + 0.5,
                        confidence=0.93, model_version="m1").to_bytes()


@pytest.fixture
def settings(tmp_path, mosquitto):  # noqa: F811
    return make_settings(tmp_path, mqtt_host=mosquitto.host, mqtt_port=mosquitto.port,
                         mqtt_client_id="adbreak-server-ha-test")


def start(settings):
    app, _socketio = create_app(settings)
    assert app.extensions["adbreak"].bridge.wait_connected(10), "the server did not connect to the broker"
    return app


def test_discovery_switch_and_retained_command(settings, mosquitto, caplog):  # noqa: F811
    caplog.set_level(logging.INFO, logger="server")
    app = start(settings)
    rt = app.extensions["adbreak"]
    api = SignedIn(app)
    edge = MqttClient(mosquitto, "edge")
    watch = MqttClient(mosquitto, "watch", CONFIG, MUTE, SWITCH_STATE)
    try:
        assert retained(mosquitto, SERVER_STATUS) == "online"

        # a device appears: its config is kept by the broker, a subscriber connecting later gets it
        t0 = time.time() - 30
        edge.publish(TOPICS.available(DEVICE), "online", retain=True)
        edge.publish(TOPICS.state(DEVICE), StatePayload(device=DEVICE, label="program", since_ts=t0, since_stream_t=0,
                                                        confidence=0.9, model_version="m1", ts=t0).to_bytes(),
                     retain=True)
        kept = wait_for(lambda: retained(mosquitto, CONFIG), what="the retained discovery config")
        assert json.loads(kept)["dev"]["ids"] == [f"adbreak_{DEVICE}"]
        config = wait_for(lambda: json.loads(retained(mosquitto, CONFIG)) if '"sw":"m1"' in (
            retained(mosquitto, CONFIG) or "") else None, what="the retained config with the model version")
        assert set(config["cmps"]) == {"ad_playing", "ad_confidence", "auto_mute", "ad_break"}
        assert config["cmps"]["auto_mute"]["command_topic"] == SWITCH_SET
        assert retained(mosquitto, SWITCH_STATE) == "ON"
        # published when first seen (announced, no model yet), again when the model is known, not on every state
        wait_for(lambda: len(watch.on(CONFIG)) == 2, what="the config with the model version")
        edge.publish(TOPICS.state(DEVICE), StatePayload(device=DEVICE, label="program", since_ts=t0, since_stream_t=0,
                                                        confidence=0.8, model_version="m1", ts=t0 + 1).to_bytes(),
                     retain=True)
        wait_for(lambda: api.get(f"/api/v1/devices/{DEVICE}").get_json()["state"]["confidence"] == 0.8,
                 what="the second state")
        time.sleep(0.2)
        assert [json.loads(p)["dev"].get("sw") for p, _r in watch.on(CONFIG)] == [None, "m1"]

        # Home Assistant (re)starts: its birth makes the server publish again
        ha = MqttClient(mosquitto, "home-assistant")
        ha.publish("homeassistant/status", "online")
        wait_for(lambda: len(watch.on(CONFIG)) == 3, what="the config published again after HA's birth")
        ha.publish("homeassistant/status", "offline")

        # switch on (the default): an ad mutes
        edge.publish(TOPICS.event(DEVICE), event(1, EventType.AD_START, time.time() - 2))
        wait_for(lambda: ("ON", False) in watch.on(MUTE), what="the mute command")

        # Home Assistant turns the switch off while muted: unmute, and the kept state follows
        ha.publish(SWITCH_SET, "OFF")
        wait_for(lambda: ("OFF", False) in watch.on(MUTE), what="the unmute when the switch went off")
        wait_for(lambda: ("OFF", True) in watch.on(SWITCH_STATE) or ("OFF", False) in watch.on(SWITCH_STATE),
                 what="the switch state")
        assert retained(mosquitto, SWITCH_STATE) == "OFF"
        dev = api.get(f"/api/v1/devices/{DEVICE}").get_json()
        assert dev["auto_mute"] is False and dev["muted"] is False
        assert api.get("/api/v1/rules/firings").get_json()["firings"][-1]["reason"] == "auto_mute_off"

        # switch off: the next ad publishes no mute
        edge.publish(TOPICS.event(DEVICE), event(2, EventType.AD_END, time.time() - 1.5))
        edge.publish(TOPICS.event(DEVICE), event(3, EventType.AD_START, time.time() - 1))
        wait_for(lambda: api.get(f"/api/v1/devices/{DEVICE}").get_json()["last_seq"] == 3, what="both events")
        rt.ingest.flush(5)
        time.sleep(0.3)  # a command would have been published right after the commit
        assert [p for p, _r in watch.on(MUTE)] == ["ON", "OFF"]

        # the REST API sets it too, and refuses what is not {"enabled": bool}
        r = api.put(f"/api/v1/devices/{DEVICE}/auto-mute", json={"enabled": True})
        assert r.status_code == 200, r.get_data(as_text=True)
        assert r.get_json()["auto_mute"] is True and r.get_json()["name"] == DEVICE
        wait_for(lambda: retained(mosquitto, SWITCH_STATE) == "ON", what="the switch state after the API")
        assert "enabled" in error_of(api.put(f"/api/v1/devices/{DEVICE}/auto-mute", json={"enabled": "yes"}), 400)
        assert "unknown field" in error_of(api.put(f"/api/v1/devices/{DEVICE}/auto-mute",
                                                   json={"enabled": True, "x": 1}), 400)
        assert error_of(api.put("/api/v1/devices/nope/auto-mute", json={"enabled": False}), 404) \
            == "unknown device 'nope'"
        assert app.test_client().put(f"/api/v1/devices/{DEVICE}/auto-mute",
                                     json={"enabled": False}).status_code == 401

        # someone publishes a command *retained*: applied once (it was live), then kept by the broker
        ha.publish(SWITCH_SET, "OFF", retain=True)
        wait_for(lambda: api.get(f"/api/v1/devices/{DEVICE}").get_json()["auto_mute"] is False,
                 what="the live command applied")
        assert api.put(f"/api/v1/devices/{DEVICE}/auto-mute", json={"enabled": True}).status_code == 200
        configs_before = len(watch.on(CONFIG))
    finally:
        rt.stop()
        edge.close()
    assert retained(mosquitto, SERVER_STATUS) == "offline"  # said on a clean stop

    # a restart: the broker replays the retained command; it changes nothing; the config is published again
    caplog.clear()
    app = start(settings)
    rt = app.extensions["adbreak"]
    try:
        wait_for(lambda: any("ignored a retained auto-mute command" in r.getMessage() for r in caplog.records),
                 what="the retained command replayed and ignored")
        wait_for(lambda: len(watch.on(CONFIG)) > configs_before, what="the config published on reconnect")
        rt.ingest.flush(5)
        dev = SignedIn(app).get(f"/api/v1/devices/{DEVICE}").get_json()
        assert dev["auto_mute"] is True
        assert retained(mosquitto, SWITCH_STATE) == "ON"
        assert retained(mosquitto, SERVER_STATUS) == "online"
    finally:
        rt.stop()
        ha.publish(SWITCH_SET, b"", retain=True)  # clear it
        ha.close()
        watch.close()
