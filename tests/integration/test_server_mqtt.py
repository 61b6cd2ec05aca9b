"""The real server against a real Mosquitto: MQTT in, SQLite, REST and Socket.IO out, mute commands back."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import requests
import socketio
from werkzeug.serving import make_server

from adbreak.wire import (
    MAX_PAYLOAD_BYTES,
    EventPayload,
    EventType,
    StatePayload,
    TelemetryPayload,
    Topics,
    new_event_id,
)
from server import db
from server.app import create_app
from server.settings import ServerSettings
from tests.db_support import migrated_url
from tests.mqtt_support import (  # noqa: F401 - fixtures
    find_free_port,
    free_port,
    mosquitto,
    start_mosquitto,
    stop_process,
    wait_for,
)
from tests.server_support import ADMIN_PASSWORD, http_session

ROOT = Path(__file__).resolve().parents[2]
TOPICS = Topics()


# ---------------------------------------------------------------------------------------------------- helpers
class Client:
    """A plain paho client: publishes like an edge agent, or collects what it subscribed to."""

    def __init__(self, broker: tuple[str, int], name: str) -> None:
        self.messages: list[mqtt.MQTTMessage] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=name)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.connect(*broker)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:
        with self._lock:
            self.messages.append(msg)

    def subscribe(self, topic: str) -> Client:
        self._subscribed.clear()
        self.client.subscribe(topic, qos=1)
        assert self._subscribed.wait(5)
        return self

    def received(self) -> list[tuple[str, str, int, bool]]:
        with self._lock:
            return [(m.topic, m.payload.decode(), m.qos, bool(m.retain)) for m in self.messages]

    def publish(self, topic: str, payload: bytes | str, *, qos: int = 1, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(5)

    def online(self, device: str) -> None:
        self.publish(TOPICS.available(device), "online", retain=True)

    def state(self, device: str, label: str, since: float) -> None:
        self.publish(TOPICS.state(device), StatePayload(device=device, label=label, since_ts=since, since_stream_t=0.0,
                                                        confidence=0.8, model_version="m1", ts=time.time()).to_bytes(),
                     retain=True)

    def event(self, device: str, seq: int, kind: str, boundary: float, *, event_id: str | None = None) -> EventPayload:
        ev = EventPayload(device=device, event_id=event_id or new_event_id(), seq=seq, type=EventType(kind),
                          boundary_ts=boundary, decided_ts=boundary + 1.0, boundary_stream_t=seq * 10.0,
                          decided_stream_t=seq * 10.0 + 1.0, confidence=0.93, model_version="m1")
        self.publish(TOPICS.event(device), ev.to_bytes())
        return ev

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@dataclass
class Running:
    base: str
    app: object
    settings: ServerSettings

    @property
    def runtime(self):
        return self.app.extensions["adbreak"]

    _session: requests.Session | None = None

    def get(self, path: str, **params) -> dict:
        if self._session is None:
            self._session = http_session(self.base)
        r = self._session.get(self.base + path, params=params, timeout=5)
        assert r.headers["Content-Type"].startswith("application/json"), r.text
        return r.json()

    def health(self) -> dict:
        return self.get("/api/v1/health")


class ServerThread:
    """``create_app`` served by a real threaded HTTP server on a free port."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.app, self.socketio = create_app(settings)
        self.http = make_server("127.0.0.1", settings.port, self.app, threaded=True)
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)
        self.thread.start()
        assert self.app.extensions["adbreak"].bridge.wait_connected(10), "server did not connect to the broker"

    def stop(self) -> None:
        self.http.shutdown()
        self.thread.join(5)
        self.app.extensions["adbreak"].stop()


@pytest.fixture
def db_url(tmp_path, db_engine) -> str:
    return migrated_url(tmp_path)


def make_settings(db_url: str, broker, port: int, **extra) -> ServerSettings:
    return ServerSettings(database_url=db_url, mqtt_host=broker[0], mqtt_port=broker[1], host="127.0.0.1", port=port,
                          web_dir=Path("/nonexistent/web/dist"), admin_password=ADMIN_PASSWORD, **extra)


@pytest.fixture
def server(db_url, mosquitto, free_port):  # noqa: F811
    srv = ServerThread(make_settings(db_url, mosquitto, free_port))
    try:
        yield Running(f"http://127.0.0.1:{free_port}", srv.app, srv.settings)
    finally:
        srv.stop()


@pytest.fixture
def edge(mosquitto):  # noqa: F811
    c = Client(mosquitto, "test-edge")
    yield c
    c.close()


@pytest.fixture
def tv(mosquitto):  # noqa: F811
    """What a mute actuator on the TV side would see."""
    c = Client(mosquitto, "test-actuator").subscribe("adbreak/+/mute/set")
    yield c
    c.close()


def segments(server: Running, **params) -> list[tuple]:
    return [(s["label"], s["status"]) for s in server.get("/api/v1/segments", **params)["segments"]]


# ---------------------------------------------------------------------------------------------------- ingest
def test_events_become_segments(server, edge):
    t0 = time.time() - 300
    edge.online("tv1")
    edge.state("tv1", "program", t0)
    wait_for(lambda: segments(server) == [("program", "open")], what="the program segment the state opened")
    edge.event("tv1", 1, "ad_start", t0 + 100)
    edge.event("tv1", 2, "ad_end", t0 + 160)
    wait_for(lambda: server.health()["counters"]["events_ingested"] == 2, what="two events ingested")

    segs = server.get("/api/v1/segments", device="tv1")["segments"]
    assert [(s["label"], s["start"], s["end"], s["status"]) for s in segs] == [
        ("program", pytest.approx(t0), pytest.approx(t0 + 100), "closed"),
        ("ad", pytest.approx(t0 + 100), pytest.approx(t0 + 160), "closed"),
        ("program", pytest.approx(t0 + 160), None, "open"),
    ]
    assert segs[1]["confidence"] == 0.93 and segs[1]["model_version"] == "m1" and segs[1]["device"] == "tv1"
    ad_only = server.get("/api/v1/segments", label="ad", start=t0 + 120, end=t0 + 130)["segments"]
    assert [s["id"] for s in ad_only] == [segs[1]["id"]]

    events = server.get("/api/v1/events", device="tv1")["events"]
    assert [(e["seq"], e["type"]) for e in events] == [(1, "ad_start"), (2, "ad_end")]
    assert events[0]["received"] >= events[0]["decided_ts"] - 1

    dev = server.get("/api/v1/devices/tv1")
    assert dev["availability"] == "online" and dev["last_seq"] == 2 and dev["state"]["label"] == "program"
    health = server.health()
    assert health["status"] == "ok" and health["mqtt"]["connected"] is True
    assert health["schema"] == db.head_revision()
    assert health["counters"]["received"] == 4
    assert sum(health["counters"]["rejected"].values()) == 0


def test_bad_messages_are_rejected_counted_and_harmless(server, edge):
    t0 = time.time() - 100
    edge.online("tv1")
    first = edge.event("tv1", 5, "ad_start", t0)
    good = json.loads(first.to_bytes())

    def variant(**changes) -> bytes:
        return json.dumps({**good, "event_id": new_event_id(), **changes}).encode()

    edge.publish(TOPICS.event("tv1"), first.to_bytes())  # duplicate (QoS 1 redelivery)
    edge.publish(TOPICS.event("tv1"), b"{not json")  # bad_json
    edge.publish(TOPICS.event("tv1"), b"x" * (MAX_PAYLOAD_BYTES + 1))  # too_large
    edge.publish(TOPICS.event("tv1"), variant(v=2, seq=6))  # bad_version
    edge.publish(TOPICS.event("tv1"), variant(seq=6, confidence=7.0))  # bad_payload
    edge.publish(TOPICS.event("tv1"), variant(seq=6, device="tv2"))  # device_mismatch
    edge.publish("adbreak/NOT_A_NAME/event", variant(seq=6))  # bad_topic
    edge.publish(TOPICS.event("ghost"), variant(seq=1, device="ghost"))  # unknown_device
    edge.publish(TOPICS.event("tv1"), variant(seq=4, type="ad_end"))  # out_of_order
    edge.publish(TOPICS.available("tv1"), b"maybe")  # bad_payload (availability)
    edge.publish(TOPICS.state("tv1"), b"[]")  # bad_json (not an object)
    edge.publish(TOPICS.telemetry("tv1"), b'{"v": 1}')  # bad_payload
    wait_for(lambda: server.health()["counters"]["received"] == 14, what="all 14 messages received")

    rejected = wait_for(lambda: (c := server.health()["counters"])["rejected"]["out_of_order"] == 1 and c,
                        what="rejections counted")["rejected"]
    assert rejected == {"too_large": 1, "bad_json": 2, "bad_version": 1, "bad_payload": 3, "bad_topic": 1,
                        "device_mismatch": 1, "unknown_device": 1, "duplicate": 1, "out_of_order": 1}
    assert server.health()["counters"]["events_ingested"] == 1
    assert [e["seq"] for e in server.get("/api/v1/events")["events"]] == [5]
    assert [d["name"] for d in server.get("/api/v1/devices")["devices"]] == ["tv1"]

    edge.event("tv1", 6, "ad_end", t0 + 30)  # still working
    wait_for(lambda: segments(server, device="tv1") == [("ad", "closed"), ("program", "open")],
             what="the server to go on ingesting")


# ---------------------------------------------------------------------------------------------------- auto-mute
def test_mute_on_ad_start_and_unmute_on_ad_end(server, edge, tv):
    t0 = time.time()
    edge.online("tv1")
    ev = edge.event("tv1", 1, "ad_start", t0 - 3)
    wait_for(lambda: tv.received(), what="the mute command")
    assert tv.received() == [("adbreak/tv1/mute/set", "ON", 1, False)]
    assert server.get("/api/v1/devices/tv1")["muted"] is True
    edge.event("tv1", 2, "ad_start", t0 - 1)  # same label: nothing more
    edge.event("tv1", 3, "ad_end", t0)
    wait_for(lambda: len(tv.received()) == 2, what="the unmute command")
    assert tv.received()[1] == ("adbreak/tv1/mute/set", "OFF", 1, False)
    firings = server.get("/api/v1/rules/firings", device="tv1")["firings"]
    assert [(f["action"], f["reason"], f["payload"]) for f in firings] == [("mute", "ad_start", "ON"),
                                                                           ("unmute", "ad_end", "OFF")]
    assert firings[0]["event_id"] == ev.event_id and firings[0]["rule"] == "auto_mute"
    assert server.health()["counters"]["rule_firings"] == 2
    time.sleep(0.3)
    assert len(tv.received()) == 2


def test_offline_while_muted_unmutes_and_interrupts(server, edge, tv):
    edge.online("tv1")
    edge.event("tv1", 1, "ad_start", time.time() - 1)
    wait_for(lambda: tv.received(), what="the mute command")
    edge.publish(TOPICS.available("tv1"), "offline", retain=True)  # what the broker publishes as the last will
    wait_for(lambda: len(tv.received()) == 2, what="the fail-safe unmute")
    assert tv.received()[1][1] == "OFF"
    assert server.get("/api/v1/rules/firings")["firings"][-1]["reason"] == "offline"
    assert segments(server) == [("ad", "interrupted")]
    assert server.get("/api/v1/devices/tv1")["availability"] == "offline"


def test_the_real_last_will_unmutes(server, tv, mosquitto):  # noqa: F811
    """An edge process that dies without a word: the broker publishes its will, the server unmutes."""
    script = textwrap.dedent(f"""
        import time, paho.mqtt.client as mqtt
        from adbreak.wire import EventPayload, EventType, Topics, new_event_id
        t = Topics()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="edge-tv7")
        c.will_set(t.available("tv7"), "offline", qos=1, retain=True)
        c.connect("{mosquitto[0]}", {mosquitto[1]}, keepalive=60)
        c.loop_start()
        c.publish(t.available("tv7"), "online", qos=1, retain=True).wait_for_publish(5)
        ev = EventPayload(device="tv7", event_id=new_event_id(), seq=1, type=EventType.AD_START,
                          boundary_ts=time.time(), decided_ts=time.time(), boundary_stream_t=1.0,
                          decided_stream_t=1.0, confidence=0.9, model_version="m")
        c.publish(t.event("tv7"), ev.to_bytes(), qos=1).wait_for_publish(5)
        print("ready", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        wait_for(lambda: ("adbreak/tv7/mute/set", "ON", 1, False) in tv.received(), what="the mute command")
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
        wait_for(lambda: ("adbreak/tv7/mute/set", "OFF", 1, False) in tv.received(), timeout=10,
                 what="the unmute after the will")
    finally:
        stop_process(proc)
        proc.stdout.close()
    assert server.get("/api/v1/devices/tv7")["availability"] == "offline"
    assert segments(server, device="tv7") == [("ad", "interrupted")]


def test_max_ad_length_fail_safe(db_url, mosquitto, free_port, edge, tv):  # noqa: F811
    srv = ServerThread(make_settings(db_url, mosquitto, free_port, max_ad_s=1.5))
    try:
        edge.online("tv1")
        edge.event("tv1", 1, "ad_start", time.time())
        wait_for(lambda: tv.received(), what="the mute command")
        wait_for(lambda: len(tv.received()) == 2, timeout=6, what="the watchdog's unmute")
        assert tv.received()[1][1] == "OFF"
        reasons = [f["reason"] for f in srv.app.extensions["adbreak"].store.firings()]
        assert reasons == ["ad_start", "max_ad_length"]
    finally:
        srv.stop()


def test_retained_messages_never_fire_after_a_restart(db_url, mosquitto, edge, tv):  # noqa: F811
    srv = ServerThread(make_settings(db_url, mosquitto, find_free_port(), mqtt_client_id="server-a"))
    edge.online("tv1")
    edge.event("tv1", 1, "ad_start", time.time() - 1)
    wait_for(lambda: tv.received(), what="the mute command")
    srv.stop()

    edge.publish(TOPICS.available("tv1"), "offline", retain=True)  # the device died while the server was down
    # a server without a session on the broker (a new client id) sees only what the broker retained
    srv = ServerThread(make_settings(db_url, mosquitto, find_free_port(), mqtt_client_id="server-b"))
    try:
        store = srv.app.extensions["adbreak"].store
        wait_for(lambda: store.device("tv1")["availability"] == "offline", what="the retained will")
        time.sleep(0.5)
        assert tv.received() == [("adbreak/tv1/mute/set", "ON", 1, False)]  # no command from a retained message
        assert [f["reason"] for f in store.firings()] == ["ad_start"]
        assert [(s["label"], s["status"]) for s in store.segments(device="tv1")] == [("ad", "interrupted")]
    finally:
        srv.stop()


def test_what_happens_while_the_server_is_down_waits_in_its_session(db_url, mosquitto, edge, tv):  # noqa: F811
    srv = ServerThread(make_settings(db_url, mosquitto, find_free_port()))
    t0 = time.time()
    edge.online("tv1")
    edge.event("tv1", 1, "ad_start", t0 - 1)
    wait_for(lambda: tv.received(), what="the mute command")
    srv.stop()

    edge.event("tv1", 2, "ad_end", t0)  # QoS 1 to a persistent session: the broker keeps it for the server
    srv = ServerThread(make_settings(db_url, mosquitto, find_free_port()))
    try:
        store = srv.app.extensions["adbreak"].store
        wait_for(lambda: len(store.events(device="tv1")) == 2, what="the queued event")
        wait_for(lambda: len(tv.received()) == 2, what="the unmute for the queued ad_end")
        assert tv.received()[1][1] == "OFF"
        assert [(s["label"], s["status"]) for s in store.segments(device="tv1")] == [("ad", "closed"),
                                                                                      ("program", "open")]
    finally:
        srv.stop()


# ---------------------------------------------------------------------------------------------------- realtime
def test_socketio_client_gets_hello_segments_devices_firings_and_telemetry(server, edge):
    edge.online("tv1")
    wait_for(lambda: server.get("/api/v1/devices")["devices"], what="tv1 announced")
    got: dict[str, list] = {name: [] for name in ("hello", "segment", "device", "firing", "telemetry")}
    refused = socketio.Client()
    with pytest.raises(socketio.exceptions.ConnectionError):  # not signed in: no socket
        refused.connect(server.base, wait_timeout=10)
    sio = socketio.Client(http_session=server._session)
    for name in got:
        sio.on(name, (lambda n: lambda data: got[n].append(data))(name))
    sio.connect(server.base, wait_timeout=10)
    try:
        wait_for(lambda: got["hello"], what="hello")
        assert got["hello"][0]["devices"][0]["name"] == "tv1"
        assert got["hello"][0]["devices"][0]["availability"] == "online"

        ev = edge.event("tv1", 1, "ad_start", time.time() - 2)
        wait_for(lambda: got["segment"] and got["firing"], what="segment and firing pushes")
        assert got["segment"][0]["label"] == "ad" and got["segment"][0]["end"] is None
        assert got["firing"][0]["action"] == "mute" and got["firing"][0]["event_id"] == ev.event_id
        wait_for(lambda: any(d["muted"] for d in got["device"]), what="the device push with muted")

        edge.event("tv1", 2, "ad_end", time.time())
        wait_for(lambda: len(got["segment"]) == 3, what="closed ad + opened program")
        closed, opened = got["segment"][1:]
        assert (closed["label"], closed["status"]) == ("ad", "closed") and closed["end"] is not None
        assert (opened["label"], opened["status"]) == ("program", "open")

        began = time.monotonic()
        for i in range(20):  # a burst: at most 5 per second per device reach the browser
            sample = TelemetryPayload(device="tv1", ts=time.time(), stream_t=float(i), p_ad=0.1, smoothed=0.2,
                                      label="program", fps=5.0, latency_ms=12.0)
            edge.client.publish(TOPICS.telemetry("tv1"), sample.to_bytes(), qos=0)
        edge.publish(TOPICS.telemetry("tv2"), b"{}", qos=1)  # a marker: QoS 1, so the burst is out once it is
        wait_for(lambda: server.health()["counters"]["rejected"]["bad_version"] == 1, what="the burst to arrive")
        span_s = time.monotonic() - began  # the server handled the whole burst within this
        # telemetry comes in batches (one list every 0.2 s, the latest sample of each device): the last sample of
        # the burst always arrives, and at most one batch per 0.2 s
        wait_for(lambda: any(t["stream_t"] == 19.0 for batch in got["telemetry"] for t in batch),
                 what="the burst's last sample")
        batches = got["telemetry"]
        assert len(batches) <= 2 + span_s / 0.2 and len(batches) < 20
        assert all(isinstance(b, list) and len(b) == 1 and b[0]["device"] == "tv1" for b in batches)
        assert set(batches[0][0]) == {"device", "ts", "stream_t", "p_ad", "smoothed", "label", "fps", "latency_ms",
                                      "dropped"}
    finally:
        sio.disconnect()


# ---------------------------------------------------------------------------------------------------- health
def test_health_says_when_the_broker_is_gone(server, mosquitto):  # noqa: F811
    assert server.health()["mqtt"] == {"connected": True, "broker": f"127.0.0.1:{mosquitto[1]}"}
    stop_process(mosquitto.proc)
    h = wait_for(lambda: (h := server.health())["mqtt"]["connected"] is False and h, what="a disconnect")
    assert h["status"] == "degraded"
    assert server.get("/api/v1/devices") == {"devices": []}  # the API still answers


def test_server_started_before_the_broker_connects_when_it_comes(db_url, tmp_path):
    port = find_free_port()
    settings = make_settings(db_url, ("127.0.0.1", port), find_free_port())
    app, _ = create_app(settings)
    runtime = app.extensions["adbreak"]
    broker = None
    try:
        time.sleep(1.5)  # a refused first attempt, then the back-off
        assert not runtime.bridge.connected
        broker = start_mosquitto(tmp_path, port)
        assert runtime.bridge.wait_connected(40), "no reconnect after the broker came up"
        edge = Client(("127.0.0.1", port), "late-edge")
        try:
            edge.online("tv1")
            wait_for(lambda: runtime.store.device("tv1"), what="the device after the late connect")
        finally:
            edge.close()
    finally:
        runtime.stop()
        if broker is not None:
            stop_process(broker)


# ---------------------------------------------------------------------------------------------------- the process
def test_server_process_starts_serves_and_stops_cleanly_on_sigterm(db_url, mosquitto, tmp_path):  # noqa: F811
    port = find_free_port()
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "server", "server", "--db", db_url, "--mqtt",
                             f"{mosquitto[0]}:{mosquitto[1]}", "--host", "127.0.0.1", "--port", str(port)],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    try:
        def healthy():
            try:
                return requests.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1).json()["mqtt"]["connected"]
            except (requests.RequestException, ValueError):
                return False

        wait_for(healthy, timeout=30, interval=0.2, what="the server process")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        stop_process(proc)
    out = (tmp_path / "server.log").read_text()
    assert "stopping" in out and "stopped" in out and "Traceback" not in out
    assert "Client adbreak-server disconnected" in mosquitto.log.read_text()  # a clean MQTT DISCONNECT
