"""The real ``adbreak server`` process against a real Mosquitto: MQTT in, the database, REST and Socket.IO out, mute
commands back.

Tests that need no settings of their own use the session's shared server (``live_server``,
``tests/integration/conftest.py``: one process per database engine on a private Mosquitto), each on devices of its
own, reading the counters of ``/api/v1/health`` as differences. Tests that need their own settings (the
max-ad-length fail-safe), a restart, or a broker that goes away or comes late start their own ``adbreak server``
(``tests/server_support.py``: ``ServerProcess``) on a private Mosquitto. Edge agents and TVs are plain MQTT clients
(``tests/mqtt_support.py``: ``MqttClient``).

Every test runs on both database engines except the last two, about the broker connection and the process (health
while the broker is gone; a late broker, then SIGTERM), which pin an SQLite file: the shared server's teardown
checks the clean SIGTERM stop on both engines (``tests/integration/conftest.py``).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import requests
import socketio

from adbreak.wire import MAX_PAYLOAD_BYTES, TelemetryPayload, Topics, new_event_id
from server import db
from tests.db_support import sqlite_url
from tests.mqtt_support import (  # noqa: F401 - fixtures
    Mosquitto,
    MqttClient,
    find_free_port,
    mosquitto,
    stop_process,
    wait_for,
)
from tests.server_support import ServerProcess, http_session
from tests.support import ROOT

TOPICS = Topics()


# ---------------------------------------------------------------------------------------------------- helpers
class Api:
    """A server process's REST API over HTTP, signed in as the admin."""

    def __init__(self, base: str, session: requests.Session | None = None) -> None:
        self.base = base
        self.session = session or http_session(base)

    def get(self, path: str, **params) -> dict:
        r = self.session.get(self.base + path, params=params, timeout=5)
        assert r.headers["Content-Type"].startswith("application/json"), r.text
        return r.json()

    def health(self) -> dict:
        return self.get("/api/v1/health")

    def counters(self) -> dict:
        return self.health()["counters"]

    def settled(self) -> dict:
        """The counters once the server is still: no device muted (so no fail-safe unmute is to come) and two reads
        0.1 s apart the same. A shared server may still be taking in what an earlier test sent."""
        def still() -> dict | None:
            if any(d["muted"] for d in self.get("/api/v1/devices")["devices"]):
                return None
            first = self.counters()
            time.sleep(0.1)
            return first if self.counters() == first else None

        return wait_for(still, timeout=15, what="the server to be still")


def since(before: dict, after: dict) -> dict:
    """What the server counted between two readings of its counters."""
    out = {name: after[name] - before[name] for name in ("received", "events_ingested", "rule_firings")}
    out["rejected"] = {reason: n - before["rejected"][reason] for reason, n in after["rejected"].items()}
    return out


def segments(api: Api, **params) -> list[tuple] | dict:
    """``(label, status)`` of the segments, or the API's error (e.g. a device it does not know yet)."""
    body = api.get("/api/v1/segments", **params)
    return [(s["label"], s["status"]) for s in body["segments"]] if "segments" in body else body


def firings(api: Api, device: str) -> list[dict]:
    return api.get("/api/v1/rules/firings", device=device)["firings"]


@pytest.fixture
def live(live_server) -> tuple:
    """The shared server: ``(live_server, its Api, a device name of this test's own)``."""
    return live_server, Api(live_server.base, live_server.admin), live_server.device("tv")


@pytest.fixture
def edge(mosquitto):  # noqa: F811
    c = MqttClient(mosquitto, "test-edge")
    yield c
    c.close()


@pytest.fixture
def tv(mosquitto):  # noqa: F811
    """What a mute actuator on the TV side would see (on a private broker)."""
    c = MqttClient(mosquitto, "test-actuator", "adbreak/+/mute/set")
    yield c
    c.close()


@pytest.fixture
def live_tv(live):
    """What the mute actuator of ``live``'s device would see, on the shared broker."""
    live_server, _api, dev = live
    c = MqttClient(live_server.broker, "test-actuator", TOPICS.mute(dev))
    yield c
    c.close()


# ---------------------------------------------------------------------------------------------------- ingest
def test_events_become_segments(live):
    live_server, api, dev = live
    edge = live_server.mqtt
    before = api.settled()
    t0 = time.time() - 300
    edge.online(dev)
    edge.state(dev, "program", t0)
    wait_for(lambda: segments(api, device=dev) == [("program", "open")], what="the program segment the state opened")
    edge.event(dev, 1, "ad_start", t0 + 100)
    edge.event(dev, 2, "ad_end", t0 + 160)
    wait_for(lambda: since(before, api.counters())["events_ingested"] == 2, what="two events ingested")

    segs = api.get("/api/v1/segments", device=dev)["segments"]
    assert [(s["label"], s["start"], s["end"], s["status"]) for s in segs] == [
        ("program", pytest.approx(t0), pytest.approx(t0 + 100), "closed"),
        ("ad", pytest.approx(t0 + 100), pytest.approx(t0 + 160), "closed"),
        ("program", pytest.approx(t0 + 160), None, "open"),
    ]
    assert segs[1]["confidence"] == 0.93 and segs[1]["model_version"] == "m1" and segs[1]["device"] == dev
    ad_only = api.get("/api/v1/segments", device=dev, label="ad", start=t0 + 120, end=t0 + 130)["segments"]
    assert [s["id"] for s in ad_only] == [segs[1]["id"]]

    events = api.get("/api/v1/events", device=dev)["events"]
    assert [(e["seq"], e["type"]) for e in events] == [(1, "ad_start"), (2, "ad_end")]
    assert events[0]["received"] >= events[0]["decided_ts"] - 1

    one = api.get(f"/api/v1/devices/{dev}")
    assert one["availability"] == "online" and one["last_seq"] == 2 and one["state"]["label"] == "program"
    health = api.health()
    assert health["status"] == "ok" and health["mqtt"]["connected"] is True
    assert health["schema"] == db.head_revision()
    counted = since(before, health["counters"])
    assert counted["received"] == 4
    assert sum(counted["rejected"].values()) == 0


def test_bad_messages_are_rejected_counted_and_harmless(live):
    live_server, api, dev = live
    edge = live_server.mqtt
    ghost, other = live_server.device("ghost"), live_server.device("other")
    devices_before = {d["name"] for d in api.get("/api/v1/devices")["devices"]}
    before = api.settled()
    t0 = time.time() - 100
    edge.online(dev)
    first = edge.event(dev, 5, "ad_start", t0)
    good = json.loads(first.to_bytes())

    def variant(**changes) -> bytes:
        return json.dumps({**good, "event_id": new_event_id(), **changes}).encode()

    edge.publish(TOPICS.event(dev), first.to_bytes())  # duplicate (QoS 1 redelivery)
    edge.publish(TOPICS.event(dev), b"{not json")  # bad_json
    edge.publish(TOPICS.event(dev), b"x" * (MAX_PAYLOAD_BYTES + 1))  # too_large
    edge.publish(TOPICS.event(dev), variant(v=2, seq=6))  # bad_version
    edge.publish(TOPICS.event(dev), variant(seq=6, confidence=7.0))  # bad_payload
    edge.publish(TOPICS.event(dev), variant(seq=6, device=other))  # device_mismatch
    edge.publish("adbreak/NOT_A_NAME/event", variant(seq=6))  # bad_topic
    edge.publish(TOPICS.event(ghost), variant(seq=1, device=ghost))  # unknown_device
    edge.publish(TOPICS.event(dev), variant(seq=4, type="ad_end"))  # out_of_order
    edge.publish(TOPICS.available(dev), b"maybe")  # bad_payload (availability)
    edge.publish(TOPICS.state(dev), b"[]")  # bad_json (not an object)
    edge.publish(TOPICS.telemetry(dev), b'{"v": 1}')  # bad_payload
    wait_for(lambda: since(before, api.counters())["received"] == 14, what="all 14 messages received")

    rejected = wait_for(lambda: (c := since(before, api.counters()))["rejected"]["out_of_order"] == 1 and c,
                        what="rejections counted")["rejected"]
    assert rejected == {"too_large": 1, "bad_json": 2, "bad_version": 1, "bad_payload": 3, "bad_topic": 1,
                        "device_mismatch": 1, "unknown_device": 1, "duplicate": 1, "out_of_order": 1}
    assert since(before, api.counters())["events_ingested"] == 1
    assert [e["seq"] for e in api.get("/api/v1/events", device=dev)["events"]] == [5]
    assert {d["name"] for d in api.get("/api/v1/devices")["devices"]} == devices_before | {dev}

    edge.event(dev, 6, "ad_end", t0 + 30)  # still working
    wait_for(lambda: segments(api, device=dev) == [("ad", "closed"), ("program", "open")],
             what="the server to go on ingesting")


# ---------------------------------------------------------------------------------------------------- auto-mute
def test_mute_on_ad_start_and_unmute_on_ad_end(live, live_tv):
    live_server, api, dev = live
    edge = live_server.mqtt
    tv = live_tv
    before = api.settled()
    t0 = time.time()
    edge.online(dev)
    ev = edge.event(dev, 1, "ad_start", t0 - 3)
    wait_for(lambda: tv.received(), what="the mute command")
    assert tv.received() == [(f"adbreak/{dev}/mute/set", "ON", 1, False)]
    assert api.get(f"/api/v1/devices/{dev}")["muted"] is True
    edge.event(dev, 2, "ad_start", t0 - 1)  # same label: nothing more
    edge.event(dev, 3, "ad_end", t0)
    wait_for(lambda: len(tv.received()) == 2, what="the unmute command")
    assert tv.received()[1] == (f"adbreak/{dev}/mute/set", "OFF", 1, False)
    fired = firings(api, dev)
    assert [(f["action"], f["reason"], f["payload"]) for f in fired] == [("mute", "ad_start", "ON"),
                                                                        ("unmute", "ad_end", "OFF")]
    assert fired[0]["event_id"] == ev.event_id and fired[0]["rule"] == "auto_mute"
    assert since(before, api.counters())["rule_firings"] == 2
    time.sleep(0.3)
    assert len(tv.received()) == 2


def test_offline_while_muted_unmutes_and_interrupts(live, live_tv):
    live_server, api, dev = live
    edge = live_server.mqtt
    tv = live_tv
    edge.online(dev)
    edge.event(dev, 1, "ad_start", time.time() - 1)
    wait_for(lambda: tv.received(), what="the mute command")
    edge.publish(TOPICS.available(dev), "offline", retain=True)  # what the broker publishes as the last will
    wait_for(lambda: len(tv.received()) == 2, what="the fail-safe unmute")
    assert tv.received()[1][1] == "OFF"
    assert firings(api, dev)[-1]["reason"] == "offline"
    assert segments(api, device=dev) == [("ad", "interrupted")]
    assert api.get(f"/api/v1/devices/{dev}")["availability"] == "offline"


def test_the_real_last_will_unmutes(live, live_tv):
    """An edge process that dies without a word: the broker publishes its will, the server unmutes."""
    live_server, api, dev = live
    broker = live_server.broker
    tv = live_tv
    script = textwrap.dedent(f"""
        import time, paho.mqtt.client as mqtt
        from adbreak.wire import EventPayload, EventType, Topics, new_event_id
        t = Topics()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="edge-{dev}")
        c.will_set(t.available("{dev}"), "offline", qos=1, retain=True)
        c.connect("{broker.host}", {broker.port}, keepalive=60)
        c.loop_start()
        c.publish(t.available("{dev}"), "online", qos=1, retain=True).wait_for_publish(5)
        ev = EventPayload(device="{dev}", event_id=new_event_id(), seq=1, type=EventType.AD_START,
                          boundary_ts=time.time(), decided_ts=time.time(), boundary_stream_t=1.0,
                          decided_stream_t=1.0, confidence=0.9, model_version="m")
        c.publish(t.event("{dev}"), ev.to_bytes(), qos=1).wait_for_publish(5)
        print("ready", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        wait_for(lambda: (f"adbreak/{dev}/mute/set", "ON", 1, False) in tv.received(), what="the mute command")
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
        wait_for(lambda: (f"adbreak/{dev}/mute/set", "OFF", 1, False) in tv.received(), timeout=10,
                 what="the unmute after the will")
    finally:
        stop_process(proc)
        proc.stdout.close()
    assert api.get(f"/api/v1/devices/{dev}")["availability"] == "offline"
    assert segments(api, device=dev) == [("ad", "interrupted")]


def test_max_ad_length_fail_safe(tmp_path, db_engine, mosquitto, edge, tv):  # noqa: F811
    with ServerProcess(tmp_path, mosquitto, env={"ADBREAK_SERVER_MAX_AD_S": "1.5"}) as srv:
        edge.online("tv1")
        edge.event("tv1", 1, "ad_start", time.time())
        wait_for(lambda: tv.received(), what="the mute command")
        wait_for(lambda: len(tv.received()) == 2, timeout=6, what="the watchdog's unmute")
        assert tv.received()[1][1] == "OFF"
        assert [f["reason"] for f in firings(Api(srv.base), "tv1")] == ["ad_start", "max_ad_length"]


def test_retained_messages_never_fire_after_a_restart(tmp_path, db_engine, mosquitto, edge, tv):  # noqa: F811
    with ServerProcess(tmp_path, mosquitto, env={"ADBREAK_SERVER_MQTT_CLIENT_ID": "server-a"}):
        edge.online("tv1")
        edge.event("tv1", 1, "ad_start", time.time() - 1)
        wait_for(lambda: tv.received(), what="the mute command")

    edge.publish(TOPICS.available("tv1"), "offline", retain=True)  # the device died while the server was down
    # a server without a session on the broker (a new client id) sees only what the broker retained
    with ServerProcess(tmp_path, mosquitto, env={"ADBREAK_SERVER_MQTT_CLIENT_ID": "server-b"}) as srv:
        api = Api(srv.base)
        wait_for(lambda: api.get("/api/v1/devices/tv1")["availability"] == "offline", what="the retained will")
        time.sleep(0.5)
        assert tv.received() == [("adbreak/tv1/mute/set", "ON", 1, False)]  # no command from a retained message
        assert [f["reason"] for f in firings(api, "tv1")] == ["ad_start"]
        assert segments(api, device="tv1") == [("ad", "interrupted")]


def test_what_happens_while_the_server_is_down_waits_in_its_session(tmp_path, db_engine, mosquitto, edge,  # noqa: F811
                                                                     tv):
    t0 = time.time()
    with ServerProcess(tmp_path, mosquitto):
        edge.online("tv1")
        edge.event("tv1", 1, "ad_start", t0 - 1)
        wait_for(lambda: tv.received(), what="the mute command")

    edge.event("tv1", 2, "ad_end", t0)  # QoS 1 to a persistent session: the broker keeps it for the server
    with ServerProcess(tmp_path, mosquitto) as srv:  # the same client id, the same database
        api = Api(srv.base)
        wait_for(lambda: len(api.get("/api/v1/events", device="tv1")["events"]) == 2, what="the queued event")
        wait_for(lambda: len(tv.received()) == 2, what="the unmute for the queued ad_end")
        assert tv.received()[1][1] == "OFF"
        assert segments(api, device="tv1") == [("ad", "closed"), ("program", "open")]


# ---------------------------------------------------------------------------------------------------- realtime
def test_socketio_client_gets_hello_segments_devices_firings_and_telemetry(live):
    live_server, api, dev = live
    edge = live_server.mqtt
    edge.online(dev)
    wait_for(lambda: api.get(f"/api/v1/devices/{dev}").get("name") == dev, what=f"{dev} announced")
    got: dict[str, list] = {name: [] for name in ("hello", "segment", "device", "firing", "telemetry")}
    # HTTP long-polling, Socket.IO's first transport: with websockets the client's disconnect (and the refused
    # connection) took 3 s each, websocket-client's close waiting that long for a close frame; the pushes over
    # websockets: test_server_live.py
    refused = socketio.Client()
    with pytest.raises(socketio.exceptions.ConnectionError):  # not signed in: no socket
        refused.connect(api.base, wait_timeout=10, transports=["polling"])
    sio = socketio.Client(http_session=api.session)
    for name in got:
        sio.on(name, (lambda n: lambda data: got[n].append(data))(name))
    sio.connect(api.base, wait_timeout=10, transports=["polling"])

    def mine(name: str) -> list[dict]:  # the pushes about this test's device
        return [x for x in got[name] if x.get("device", x.get("name")) == dev]

    try:
        wait_for(lambda: got["hello"], what="hello")
        hello = [d for d in got["hello"][0]["devices"] if d["name"] == dev]
        assert len(hello) == 1 and hello[0]["availability"] == "online"

        ev = edge.event(dev, 1, "ad_start", time.time() - 2)
        wait_for(lambda: mine("segment") and mine("firing"), what="segment and firing pushes")
        assert mine("segment")[0]["label"] == "ad" and mine("segment")[0]["end"] is None
        assert mine("firing")[0]["action"] == "mute" and mine("firing")[0]["event_id"] == ev.event_id
        wait_for(lambda: any(d["muted"] for d in mine("device")), what="the device push with muted")

        edge.event(dev, 2, "ad_end", time.time())
        wait_for(lambda: len(mine("segment")) == 3, what="closed ad + opened program")
        closed, opened = mine("segment")[1:]
        assert (closed["label"], closed["status"]) == ("ad", "closed") and closed["end"] is not None
        assert (opened["label"], opened["status"]) == ("program", "open")

        before = api.settled()
        began = time.monotonic()
        for i in range(20):  # a burst: at most 5 per second per device reach the browser
            sample = TelemetryPayload(device=dev, ts=time.time(), stream_t=float(i), p_ad=0.1, smoothed=0.2,
                                      label="program", fps=5.0, latency_ms=12.0)
            edge.client.publish(TOPICS.telemetry(dev), sample.to_bytes(), qos=0)
        edge.publish(TOPICS.telemetry(live_server.device("marker")), b"{}", qos=1)  # a marker: QoS 1, so the
        # burst is out once it is
        wait_for(lambda: since(before, api.counters())["rejected"]["bad_version"] == 1, what="the burst to arrive")
        span_s = time.monotonic() - began  # the server handled the whole burst within this
        # telemetry comes in batches (one list every 0.2 s, the latest sample of each device): the last sample of
        # the burst always arrives, and at most one batch per 0.2 s
        wait_for(lambda: any(t["stream_t"] == 19.0 for batch in got["telemetry"] for t in batch),
                 what="the burst's last sample")
        batches = got["telemetry"]
        assert len(batches) <= 2 + span_s / 0.2 and len(batches) < 20
        assert all(isinstance(b, list) and len(b) == 1 and b[0]["device"] == dev for b in batches)
        assert set(batches[0][0]) == {"device", "ts", "stream_t", "p_ad", "smoothed", "label", "fps", "latency_ms",
                                      "dropped"}
    finally:
        sio.disconnect()


# ---------------------------------------------------------------------------------------------------- health
def test_health_says_when_the_broker_is_gone(tmp_path, mosquitto):  # noqa: F811
    with ServerProcess(tmp_path, mosquitto, db=sqlite_url(tmp_path)) as srv:
        api = Api(srv.base)
        assert api.health()["mqtt"] == {"connected": True, "broker": f"127.0.0.1:{mosquitto[1]}"}
        stop_process(mosquitto.proc)
        h = wait_for(lambda: (h := api.health())["mqtt"]["connected"] is False and h, what="a disconnect")
        assert h["status"] == "degraded"
        assert api.get("/api/v1/devices") == {"devices": []}  # the API still answers


# ---------------------------------------------------------------------------------------------------- the process
def test_server_process_waits_for_a_late_broker_and_stops_cleanly_on_sigterm(tmp_path):
    """Started before the broker: it answers (degraded), keeps trying, connects when the broker comes; on SIGTERM it
    stops cleanly, saying goodbye to the broker."""
    port = find_free_port()
    log = tmp_path / "server.log"
    broker = Mosquitto(tmp_path, port)
    try:
        with ServerProcess(tmp_path, ("127.0.0.1", port), wait_mqtt=False, db=sqlite_url(tmp_path)) as srv:
            api = Api(srv.base)
            wait_for(lambda: "cannot reach MQTT broker" in log.read_text(), what="a refused first attempt")
            h = api.health()
            assert h["mqtt"]["connected"] is False and h["status"] == "degraded"
            broker.start()
            wait_for(lambda: api.health()["mqtt"]["connected"], timeout=40, interval=0.2,
                     what="the reconnect after the broker came up")
            edge = MqttClient(broker, "late-edge")
            try:
                edge.online("tv1")
                wait_for(lambda: "tv1" in {d["name"] for d in api.get("/api/v1/devices")["devices"]},
                         what="the device after the late connect")
            finally:
                edge.close()
            srv.proc.send_signal(signal.SIGTERM)
            assert srv.proc.wait(15) == 0
    finally:
        broker.stop()
    out = log.read_text()
    assert "stopping" in out and "stopped" in out and "Traceback" not in out
    assert "Client adbreak-server disconnected" in broker.log.read_text()  # a clean MQTT DISCONNECT
