"""Home Assistant discovery and the auto-mute switch, without a broker.

* Every discovery payload is checked against Home Assistant's documented schema, written down (with its sources) in
  ``tests/data/ha_discovery.schema.json``: the abbreviations are expanded as Home Assistant expands them, then the
  payload is validated with ``jsonschema``.
* Every topic in a payload is one that the edge or the server really publishes to or listens on.
* Every value template is rendered (Jinja, as Home Assistant does, undefined names an error) on real wire payloads.
* The publisher's bookkeeping, the switch's commands, and the rule's use of the switch, on a real migrated SQLite.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import paho.mqtt.client as mqtt
import pytest
from jinja2 import StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from adbreak.wire import (
    Availability,
    EventPayload,
    EventType,
    StatePayload,
    TelemetryPayload,
    Topics,
    new_event_id,
    parse_event,
    parse_state,
    parse_telemetry,
)
from server import db
from server.homeassistant import (
    EVENT_TYPES,
    HaTopics,
    HomeAssistant,
    discovery_payload,
    parse_switch_command,
)
from server.rules import Action, AutoMute, AutoMuteSwitched, Decision, MuteConfig, Reason, SegmentOpened, decide
from server.store import SegmentStore

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "data" / "ha_discovery.schema.json"
SCHEMA = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
ABBR = SCHEMA["x-abbreviations"]
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
T0 = 1_800_000_000.0
DEVICE = {"name": "living-room-tv", "model_version": "demo-20261123T110000Z", "auto_mute": True}


# ---------------------------------------------------------------------------------------------------- helpers
def _expand(mapping: dict, table: dict[str, str], where: str) -> dict:
    """Replace abbreviated keys by their full names as Home Assistant does; both forms of one key is an error."""
    out: dict = {}
    for key, value in mapping.items():
        full = table.get(key, key)
        assert full not in out, f"{where}: {key!r} and {full!r} both given"
        out[full] = value
    return out


def expand(payload: dict) -> dict:
    """A device discovery payload with every abbreviation expanded (root, device, origin, components, availability)."""
    root = _expand(payload, ABBR["root"], "root")
    for key in ("device", "origin"):
        if isinstance(root.get(key), dict):
            root[key] = _expand(root[key], ABBR[key], key)
    components = {}
    for key, comp in root.get("components", {}).items():
        c = _expand(comp, ABBR["component"], f"component {key}")
        if "availability" in c:
            c["availability"] = [_expand(a, ABBR["availability"], f"{key}.availability") for a in c["availability"]]
        components[key] = c
    if "components" in root:
        root["components"] = components
    return root


def errors(payload: dict) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in VALIDATOR.iter_errors(expand(payload))]


def render(template: str, raw: bytes) -> str:
    """Render a value template as Home Assistant's MQTT integration does: ``value`` and ``value_json``."""
    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined)
    text = raw.decode("utf-8")
    try:
        value_json = json.loads(text)
    except ValueError:
        value_json = None
    return env.from_string(template).render(value=text, value_json=value_json).strip()


def state(label: str, confidence: float = 0.97) -> bytes:
    return StatePayload(device=DEVICE["name"], label=label, since_ts=T0, since_stream_t=4.0, confidence=confidence,
                        model_version="m1", ts=T0 + 1).to_bytes()


def telemetry(smoothed: float) -> bytes:
    return TelemetryPayload(device=DEVICE["name"], ts=T0, stream_t=1.0, p_ad=smoothed, smoothed=smoothed, label="ad",
                            fps=5.0, latency_ms=12.0).to_bytes()


def event(kind: EventType, seq: int = 3) -> bytes:
    return EventPayload(device=DEVICE["name"], event_id=new_event_id(), seq=seq, type=kind, boundary_ts=T0,
                        decided_ts=T0 + 1, boundary_stream_t=10.0, decided_stream_t=11.0, confidence=0.91,
                        model_version="m1").to_bytes()


class Recorder:
    """Stands in for the bridge's publish."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str | bytes, int, bool]] = []

    def __call__(self, topic: str, payload: str | bytes, qos: int, retain: bool) -> bool:
        self.sent.append((topic, payload, qos, retain))
        return True

    def topics(self) -> list[str]:
        return [t for t, *_ in self.sent]


# ---------------------------------------------------------------------------------------------------- the schema
@pytest.mark.parametrize("prefix", ["adbreak", "home/adbreak"])
@pytest.mark.parametrize("model_version", ["demo-20261123T110000Z", None])
def test_payload_matches_home_assistants_schema(prefix, model_version):
    payload = discovery_payload({**DEVICE, "model_version": model_version}, HaTopics(prefix, "homeassistant"))
    assert errors(payload) == []
    full = expand(payload)
    assert {c["platform"] for c in full["components"].values()} == {"binary_sensor", "sensor", "switch", "event"}
    uids = [c["unique_id"] for c in full["components"].values()]
    assert len(set(uids)) == len(uids)
    assert full["device"]["identifiers"] == [HaTopics(prefix).node_id(DEVICE["name"])]
    assert full["device"]["manufacturer"] == "adbreak" and full["origin"]["name"] == "adbreak"
    assert full["device"].get("sw_version") == model_version
    switch = full["components"]["auto_mute"]
    assert switch["retain"] is False and switch["optimistic"] is False  # commands are never retained
    assert full["components"]["ad_break"]["event_types"] == list(EVENT_TYPES)


def test_the_schema_catches_what_home_assistant_would_refuse_or_ignore():
    good = discovery_payload(DEVICE, HaTopics())
    missing_types = json.loads(json.dumps(good))
    del missing_types["cmps"]["ad_break"]["event_types"]
    assert any("event_types" in e for e in errors(missing_types))
    misspelt = json.loads(json.dumps(good))
    misspelt["cmps"]["ad_confidence"]["unit_of_measure"] = "%"
    assert any("unit_of_measure" in e for e in errors(misspelt))
    no_origin = {k: v for k, v in good.items() if k != "o"}
    assert any("origin" in e for e in errors(no_origin))
    no_uid = json.loads(json.dumps(good))
    del no_uid["cmps"]["ad_playing"]["unique_id"]
    assert any("unique_id" in e for e in errors(no_uid))
    wildcard = json.loads(json.dumps(good))
    wildcard["cmps"]["auto_mute"]["command_topic"] = "adbreak/+/automute/set"
    assert errors(wildcard)
    no_ids = json.loads(json.dumps(good))
    no_ids["dev"].pop("ids")
    assert errors(no_ids)
    with pytest.raises(AssertionError, match="both given"):
        expand({**good, "device": good["dev"]})


# ---------------------------------------------------------------------------------------------------- topics
def test_every_topic_is_one_the_edge_or_the_server_uses(tmp_path, db_engine):
    from tests.server_support import make_app

    app = make_app(tmp_path, mqtt_prefix="home/adbreak", ha_prefix="ha")
    try:
        rt = app.extensions["adbreak"]
        ha: HomeAssistant = rt.homeassistant
        name = DEVICE["name"]
        wire = Topics("home/adbreak")
        full = expand(discovery_payload(DEVICE, ha.topics))
        c = full["components"]
        # what the edge publishes (edge.mqtt.MqttLink builds its topics with the same adbreak.wire.Topics)
        assert c["ad_playing"]["state_topic"] == wire.state(name)
        assert c["ad_confidence"]["state_topic"] == wire.telemetry(name)
        assert c["ad_break"]["state_topic"] == wire.event(name)
        for key in ("ad_playing", "ad_confidence", "ad_break"):
            assert [a["topic"] for a in c[key]["availability"]] == [wire.available(name)]
        # what the server listens on and publishes
        filters = [f for f, _h in ha.routes()]
        assert filters == ["home/adbreak/+/automute/set", "ha/status"]
        assert set(filters) <= {f for f, _q, _h in rt.bridge._routes}  # the bridge subscribes them
        assert mqtt.topic_matches_sub(filters[0], c["auto_mute"]["command_topic"])
        assert ha.topics.automute_device(c["auto_mute"]["command_topic"]) == name
        assert [a["topic"] for a in c["auto_mute"]["availability"]] == [rt.bridge.config.status_topic]
        assert rt.bridge.config.status_topic == "home/adbreak/_server/status"
        recorder = Recorder()
        HomeAssistant(ha.topics, recorder, devices=lambda: [], submit=lambda job: None).device_changed(DEVICE)
        assert recorder.topics() == [ha.topics.discovery(name), c["auto_mute"]["state_topic"]]
        assert ha.topics.discovery(name) == "ha/device/home_adbreak_living-room-tv/config"
    finally:
        app.extensions["adbreak"].stop()  # its engine's connections closed, not left to the collector
    # a device can never be called like the server's status level
    with pytest.raises(Exception):  # noqa: B017 - WireError
        wire.available("_server")


# ---------------------------------------------------------------------------------------------------- templates
def test_templates_render_real_wire_payloads():
    c = expand(discovery_payload(DEVICE, HaTopics()))["components"]
    playing = c["ad_playing"]
    assert render(playing["value_template"], state("ad")) == playing["payload_on"]
    assert render(playing["value_template"], state("program")) == playing["payload_off"]
    parse_state(state("ad"))  # the payloads rendered are valid wire payloads
    conf = c["ad_confidence"]["value_template"]
    assert render(conf, telemetry(0.873)) == "87"
    assert render(conf, telemetry(0.0)) == "0" and render(conf, telemetry(1.0)) == "100"
    parse_telemetry(telemetry(0.5))
    for kind in EventType:
        raw = event(kind)
        parse_event(raw)
        out = json.loads(render(c["ad_break"]["value_template"], raw))
        assert out["event_type"] == kind.value and out["event_type"] in c["ad_break"]["event_types"]
        assert out["confidence"] == 0.91 and out["seq"] == 3
    avail = c["ad_playing"]["availability"][0]
    assert render(avail["value_template"], b"online") == avail["payload_available"]
    for gone in (Availability.OFFLINE, Availability.STOPPED):
        assert render(avail["value_template"], gone.value.encode()) == avail["payload_not_available"]


# ---------------------------------------------------------------------------------------------------- the publisher
def test_publisher_publishes_each_config_once_and_again_when_asked():
    recorder, devices = Recorder(), [DEVICE, {"name": "bedroom", "model_version": None, "auto_mute": False}]
    ha = HomeAssistant(HaTopics(), recorder, devices=lambda: devices, submit=lambda job: None)
    ha.device_changed(DEVICE)
    ha.device_changed(DEVICE)  # nothing new
    assert recorder.sent == [
        ("homeassistant/device/adbreak_living-room-tv/config",
         json.dumps(discovery_payload(DEVICE, HaTopics()), separators=(",", ":")), 1, True),
        ("adbreak/living-room-tv/automute/state", "ON", 1, True),
    ]
    recorder.sent.clear()
    ha.device_changed({**DEVICE, "model_version": "m2"})  # a new model: a new sw_version
    assert recorder.topics() == ["homeassistant/device/adbreak_living-room-tv/config"]
    assert json.loads(recorder.sent[0][1])["dev"]["sw"] == "m2"
    recorder.sent.clear()
    ha.on_ha_status("homeassistant/status", b"offline", False, None)
    assert recorder.sent == []
    acked = []
    ha.on_ha_status("homeassistant/status", b"online", False, lambda: acked.append(1))
    assert acked == [1]
    assert sorted(recorder.topics()) == sorted([
        "homeassistant/device/adbreak_living-room-tv/config", "adbreak/living-room-tv/automute/state",
        "homeassistant/device/adbreak_bedroom/config", "adbreak/bedroom/automute/state"])
    # the newer model seen since stays: the read of the devices is older than what was committed since
    assert json.loads(recorder.sent[recorder.topics().index(
        "homeassistant/device/adbreak_living-room-tv/config")][1])["dev"]["sw"] == "m2"
    assert ("adbreak/bedroom/automute/state", "OFF", 1, True) in recorder.sent
    recorder.sent.clear()
    ha.remove("bedroom")
    assert recorder.sent == [("homeassistant/device/adbreak_bedroom/config", b"", 1, True),
                             ("adbreak/bedroom/automute/state", b"", 1, True)]


def test_discovery_off_publishes_no_config_but_keeps_the_switch():
    recorder = Recorder()
    ha = HomeAssistant(HaTopics(), recorder, devices=lambda: [DEVICE], submit=lambda job: None, discovery=False)
    assert [f for f, _h in ha.routes()] == ["adbreak/+/automute/set"]
    ha.device_changed(DEVICE)
    assert recorder.topics() == ["adbreak/living-room-tv/automute/state"]


def test_commands_retained_or_malformed_are_ignored_and_acknowledged():
    jobs, acks = [], []
    ha = HomeAssistant(HaTopics(), Recorder(), devices=lambda: [], submit=jobs.append)
    topic = "adbreak/living-room-tv/automute/set"
    ha.on_command(topic, b"OFF", True, lambda: acks.append("retained"))
    ha.on_command(topic, b"toggle", False, lambda: acks.append("bad"))
    ha.on_command("adbreak/NOT A NAME/automute/set", b"OFF", False, lambda: acks.append("bad device"))
    assert jobs == [] and acks == ["retained", "bad", "bad device"]
    ha.on_command(topic, b" OFF\n", False, lambda: acks.append("ok"))
    assert len(jobs) == 1 and acks == ["retained", "bad", "bad device"]  # acknowledged once applied
    assert [parse_switch_command(p) for p in (b"ON", b"OFF", b"on", b"")] == [True, False, None, None]


# ---------------------------------------------------------------------------------------------------- the rule
@pytest.mark.parametrize(
    ("muted", "trigger", "auto_mute", "expected"),
    [
        (False, SegmentOpened("ad"), False, None),  # switch off: no new mute
        (False, SegmentOpened("ad"), True, Decision(Action.MUTE, Reason.AD_START)),
        (True, SegmentOpened("program"), False, Decision(Action.UNMUTE, Reason.AD_END)),  # unmutes still happen
        (True, AutoMuteSwitched(False), False, Decision(Action.UNMUTE, Reason.AUTO_MUTE_OFF)),
        (False, AutoMuteSwitched(False), False, None),
        (True, AutoMuteSwitched(True), True, None),
    ],
)
def test_decide_honours_the_switch(muted, trigger, auto_mute, expected):
    assert decide(muted, trigger, max_ad_s=360.0, auto_mute=auto_mute) == expected


@pytest.fixture
def store(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'adbreak.db'}"
    db.upgrade(url)
    engine = db.make_engine(url)
    yield SegmentStore(db.make_sessionmaker(engine))
    engine.dispose()


def _event(store: SegmentStore, seq: int, kind: EventType, t: float):
    return store.ingest_event(parse_event(EventPayload(
        device="tv1", event_id=new_event_id(), seq=seq, type=kind, boundary_ts=t, decided_ts=t, boundary_stream_t=t,
        decided_stream_t=t, confidence=0.9, model_version="m").to_bytes()), t)


def test_switch_off_while_muted_unmutes_and_stops_muting(store):
    now = [T0]
    commands, pushed = Recorder(), []
    rules = AutoMute(MuteConfig(), store, commands, clock=lambda: now[0])
    ha_sent = Recorder()
    ha = HomeAssistant(HaTopics(), ha_sent, devices=store.devices, submit=lambda job: None, rules=rules,
                       on_device=pushed.append)
    store.availability("tv1", Availability.ONLINE, T0)
    rules.on_event(_event(store, 1, EventType.AD_START, T0))
    assert commands.sent == [("adbreak/tv1/mute/set", "ON", 1, False)] and store.is_muted("tv1")

    with store.batch() as b:
        dev = ha.switch_job("tv1", False, by="test")(b)
    assert dev["auto_mute"] is False and dev["muted"] is False
    assert commands.sent[-1] == ("adbreak/tv1/mute/set", "OFF", 1, False)
    assert store.firings()[-1]["reason"] == "auto_mute_off"  # the database accepts the new reason
    assert ("adbreak/tv1/automute/state", "OFF", 1, True) in ha_sent.sent
    assert pushed[-1]["auto_mute"] is False
    assert store.device("tv1")["auto_mute"] is False  # written, not only cached

    # the cached row says so too: the next ad does not mute
    now[0] = T0 + 60
    rules.on_event(_event(store, 2, EventType.AD_END, T0 + 50))
    rules.on_event(_event(store, 3, EventType.AD_START, T0 + 60))
    assert [p for _t, p, _q, _r in commands.sent] == ["ON", "OFF"]
    # and back on: the next ad mutes again
    with store.batch() as b:
        ha.switch_job("tv1", True, by="test")(b)
    rules.on_event(_event(store, 4, EventType.AD_END, T0 + 70))
    rules.on_event(_event(store, 5, EventType.AD_START, T0 + 80))
    assert [p for _t, p, _q, _r in commands.sent] == ["ON", "OFF", "ON"]
    with store.batch() as b:
        assert ha.switch_job("nope", False, by="test")(b) is None  # unknown: nothing created
    assert store.device("nope") is None
