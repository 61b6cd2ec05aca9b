"""User rules through the API of the app in this process (Flask's test client) on a migrated database of each
engine, signed in; a real Mosquitto with plain
paho clients (an edge publishing events, a subscriber watching what the rules publish); a real local HTTP server
(``http.server`` in a thread) receiving webhooks."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from adbreak.wire import Topics
from tests.mqtt_support import MqttClient, mosquitto  # noqa: F401 - fixture
from tests.server_support import SignedIn, error_of, make_app
from tests.support import wait_for

pytestmark = pytest.mark.usefixtures("db_engine")

TOPICS = Topics()
LIGHTS = {"type": "mqtt", "topic": "home/{{ device }}/lights", "payload": "{{ label }} on {{ device }} "
          "({{ '%.2f'|format(confidence) }})"}


def rule_body(name: str = "lights", trigger: str = "ad_start", actions: list | None = None, **conditions) -> dict:
    return {"name": name, "trigger": trigger, "conditions": conditions, "actions": actions or [LIGHTS]}


# ---------------------------------------------------------------------------------------------------- helpers
class Webhooks:
    """A real HTTP server on a free port of 127.0.0.1 that records every request; ``/slow`` answers after 3 s,
    ``/fail`` with 500."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                hooks.requests.append({"method": self.command, "path": self.path, "body": body,
                                       "headers": dict(self.headers), "at": time.monotonic()})
                if self.path == "/slow":
                    time.sleep(3)
                status = 500 if self.path == "/fail" else 200
                answer = b"broken" if status == 500 else b"thanks"
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_GET = do_POST = do_PUT = _any

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def api(tmp_path):
    app = make_app(tmp_path)
    yield SignedIn(app)
    app.extensions["adbreak"].stop()


@pytest.fixture
def live(tmp_path, mosquitto):  # noqa: F811
    """The app with its ingest worker, MQTT bridge and rule runner running against the broker."""
    app = make_app(tmp_path, start_mqtt=True, mqtt_host=mosquitto.host, mqtt_port=mosquitto.port)
    runtime = app.extensions["adbreak"]
    assert runtime.bridge.wait_connected(10), "the server did not connect to the broker"
    try:
        yield SignedIn(app)
    finally:
        runtime.stop()


@pytest.fixture
def edge(mosquitto):  # noqa: F811
    c = MqttClient(mosquitto, "test-edge")
    yield c
    c.close()


@pytest.fixture
def home(mosquitto):  # noqa: F811
    """A subscriber on everything under home/ (what the rules publish)."""
    c = MqttClient(mosquitto, "test-home").subscribe("home/#")
    yield c
    c.close()


@pytest.fixture
def hooks():
    w = Webhooks()
    yield w
    w.close()


def create(api, body: dict) -> dict:
    r = api.post("/api/v1/rules", json=body)
    assert r.status_code == 201, r.get_data(as_text=True)
    return r.get_json()


def runs(api, **params) -> list[dict]:
    r = api.get("/api/v1/rules/runs", query_string=params)
    assert r.status_code == 200, r.get_data(as_text=True)
    return r.get_json()["runs"]


# ---------------------------------------------------------------------------------------------------- CRUD
def test_create_read_update_enable_delete(api):
    created = create(api, rule_body(devices=["tv1"], days=["sat", "fri"], hours={"from": "20:00", "to": "01:00"}))
    rid = created["id"]
    assert created["name"] == "lights" and created["enabled"] is True and created["created_by"] == "admin"
    assert created["conditions"] == {"devices": ["tv1"], "days": ["fri", "sat"], "hours": {"from": "20:00",
                                     "to": "01:00"}, "min_confidence": 0.0, "min_time_in_state_s": 0.0}
    assert created["actions"] == [{**LIGHTS, "qos": 1, "retain": False}]
    assert api.get(f"/api/v1/rules/{rid}").get_json() == created

    listed = api.get("/api/v1/rules").get_json()
    assert listed["rules"] == [created]
    assert [b["name"] for b in listed["builtin"]] == ["auto_mute"] and listed["builtin"][0]["builtin"] is True
    assert listed["builtin"][0]["topic"] == "adbreak/{device}/mute/set"
    assert set(listed["variables"]) >= {"device", "trigger", "confidence", "ts", "iso_time", "segment_start",
                                        "label", "model_version"}

    replaced = api.put(f"/api/v1/rules/{rid}", json=rule_body("lights off", "ad_end",
                                                              [{"type": "mqtt", "topic": "home/x", "payload": "0"}]))
    assert replaced.status_code == 200, replaced.get_data(as_text=True)
    assert (replaced.get_json()["name"], replaced.get_json()["trigger"]) == ("lights off", "ad_end")
    assert replaced.get_json()["created"] == created["created"] and replaced.get_json()["updated"] > created["updated"]

    assert api.post(f"/api/v1/rules/{rid}/disable").get_json()["enabled"] is False
    assert api.get(f"/api/v1/rules/{rid}").get_json()["enabled"] is False
    assert api.post(f"/api/v1/rules/{rid}/enable").get_json()["enabled"] is True
    assert api.patch(f"/api/v1/rules/{rid}", json={"enabled": False}).get_json()["enabled"] is False

    second = create(api, rule_body("other"))
    assert error_of(api.put(f"/api/v1/rules/{second['id']}", json=rule_body("lights off")), 409) == \
        f"name: 'lights off' is already the name of rule {rid}"
    assert error_of(api.post("/api/v1/rules", json=rule_body("other")), 409).startswith("name: 'other'")

    assert api.delete(f"/api/v1/rules/{rid}").status_code == 204
    assert error_of(api.get(f"/api/v1/rules/{rid}"), 404) == f"no rule {rid}"
    assert error_of(api.delete(f"/api/v1/rules/{rid}"), 404) == f"no rule {rid}"
    assert error_of(api.put(f"/api/v1/rules/{rid}", json=rule_body("x")), 404) == f"no rule {rid}"
    assert error_of(api.post(f"/api/v1/rules/{rid}/enable"), 404) == f"no rule {rid}"
    assert error_of(api.post(f"/api/v1/rules/{rid}/test"), 404) == f"no rule {rid}"
    assert [r["id"] for r in api.get("/api/v1/rules").get_json()["rules"]] == [second["id"]]
    # the runner follows the table
    runner = api.client.application.extensions["adbreak"].rule_runner
    assert [r.id for r in runner.engine.rules] == [second["id"]]


@pytest.mark.parametrize(("body", "error"), [
    ({"trigger": "ad_start", "actions": [LIGHTS]}, "name: missing"),
    (rule_body(trigger="sometimes"), "trigger: Input should be 'ad_start', 'ad_end' or 'offline'"),
    (rule_body(actions=[{"type": "mqtt", "topic": "home/+/lights"}]),
     "actions.0.topic: must not contain the MQTT wildcards + or #"),
    (rule_body(actions=[{"type": "webhook", "url": "gopher://h/x"}]), "actions.0.url: must be an http://"),
    (rule_body(actions=[{"type": "delay", "seconds": 7200}, LIGHTS]), "actions.0.seconds: Input should be less than"),
    (rule_body(actions=[LIGHTS] * 11), "actions: List should have at most 10 items"),
    (rule_body(actions=[{"type": "mqtt", "topic": "t", "payload": "{{ lable }}"}]),
     "actions.0.payload: template error: 'lable' is undefined"),
    (rule_body(actions=[{"type": "mqtt", "topic": "t", "payload": "{{ device.__class__ }}"}]),
     "actions.0.payload: refused by the template sandbox"),
    (rule_body(hours={"from": "25:00", "to": "01:00"}), "conditions.hours.from: '25:00' is not a time HH:MM"),
    (rule_body(min_confidence=2), "conditions.min_confidence: Input should be less than or equal to 1"),
    ({**rule_body(), "owner": "me"}, "owner: unknown field"),
    ([1, 2], "expected a JSON object"),
])
def test_bad_rules_are_400_naming_the_field(api, body, error):
    assert error in error_of(api.post("/api/v1/rules", json=body), 400)


def test_other_bad_requests(api):
    rid = create(api, rule_body())["id"]
    assert "expected a JSON object" in error_of(api.post("/api/v1/rules", data="name=x",
                                                         content_type="text/plain"), 400)
    assert error_of(api.patch(f"/api/v1/rules/{rid}", json={"enabled": "maybe"}), 400).startswith("enabled:")
    assert error_of(api.patch(f"/api/v1/rules/{rid}", json={"name": "x"}), 400).startswith("enabled: missing")
    assert "unknown parameter(s) sort" in error_of(api.get("/api/v1/rules/runs?sort=ts"), 400)
    assert error_of(api.get("/api/v1/rules/runs?rule=abc"), 400) == "rule='abc' is not a rule id"
    assert error_of(api.get("/api/v1/rules/runs?limit=0"), 400) == "limit must be between 1 and 1000"
    assert error_of(api.get("/api/v1/rules/runs?device=nobody"), 404) == "unknown device 'nobody'"
    assert "end must be after start" in error_of(api.get("/api/v1/rules/runs?start=10&end=5"), 400)
    assert error_of(api.post(f"/api/v1/rules/{rid}/test", json={"device": "Not A Name"}), 400).startswith("device:")
    assert error_of(api.post(f"/api/v1/rules/{rid}/test", json={"device": "nobody"}), 404) == \
        "device: unknown device 'nobody'"
    assert error_of(api.post(f"/api/v1/rules/{rid}/test", json={"when": 1}), 400) == "when: unknown field"
    assert error_of(api.get("/api/v1/rules/abc"), 404).startswith("no such resource")


def test_signed_out_requests_are_401(api):
    rid = create(api, rule_body())["id"]
    anonymous = api.client.application.test_client()
    for method, path in [("get", "/api/v1/rules"), ("post", "/api/v1/rules"), ("get", f"/api/v1/rules/{rid}"),
                         ("put", f"/api/v1/rules/{rid}"), ("patch", f"/api/v1/rules/{rid}"),
                         ("delete", f"/api/v1/rules/{rid}"), ("post", f"/api/v1/rules/{rid}/enable"),
                         ("post", f"/api/v1/rules/{rid}/disable"), ("post", f"/api/v1/rules/{rid}/test"),
                         ("get", "/api/v1/rules/runs")]:
        r = getattr(anonymous, method)(path, json=rule_body() if method in ("post", "put") else None)
        assert r.status_code == 401, (method, path, r.status_code)
        assert r.get_json()["error"]
    assert len(api.get("/api/v1/rules").get_json()["rules"]) == 1  # nothing changed
    assert runs(api) == []


# ---------------------------------------------------------------------------------------------------- test button
def test_test_button_publishes_over_mqtt(live, edge, home):
    edge.announce("tv1")
    wait_for(lambda: live.get("/api/v1/devices/tv1").status_code == 200
             and live.get("/api/v1/devices/tv1").get_json()["state"] is not None, what="tv1's retained state applied")
    rid = create(live, rule_body(actions=[{**LIGHTS, "qos": 2}]))["id"]
    r = live.post(f"/api/v1/rules/{rid}/test", json={"device": "tv1"})
    assert r.status_code == 200, r.get_data(as_text=True)
    run = r.get_json()
    assert (run["rule_id"], run["rule"], run["device"], run["trigger"], run["test"], run["status"]) == \
        (rid, "lights", "tv1", "ad_start", True, "ok")
    assert run["detail"][0]["topic"] == "home/tv1/lights" and run["detail"][0]["payload"] == "ad on tv1 (0.80)"
    wait_for(lambda: home.received(), what="the rule's MQTT message")
    assert home.received() == [("home/tv1/lights", "ad on tv1 (0.80)", 2, False)]  # the device's confidence, 0.8
    assert runs(live, rule=rid) == [run]
    assert runs(live, device="tv1") == [run]


def test_webhook_receives_the_rendered_body(live, hooks):
    rid = create(live, rule_body("hook", "ad_end", [
        {"type": "webhook", "url": hooks.url + "/api/webhook/ads", "method": "PUT",
         "body": '{"device": {{ device|tojson }}, "label": "{{ label }}", "rule": "{{ rule }}"}',
         "headers": {"X-Token": "secret"}},
        {"type": "webhook", "url": hooks.url + "/fail", "body": "{{ trigger }}"},
        {"type": "webhook", "url": hooks.url + "/never"},
    ]))["id"]
    run = live.post(f"/api/v1/rules/{rid}/test").get_json()
    assert [(q["method"], q["path"]) for q in hooks.requests] == [("PUT", "/api/webhook/ads"), ("POST", "/fail")]
    first = hooks.requests[0]
    assert json.loads(first["body"]) == {"device": "test-device", "label": "program", "rule": "hook"}
    assert first["headers"]["X-Token"] == "secret" and first["headers"]["Content-Type"] == "application/json"
    assert hooks.requests[1]["body"] == "ad_end"
    assert hooks.requests[1]["headers"]["Content-Type"] == "text/plain; charset=utf-8"
    assert run["status"] == "failed" and run["device"] is None
    assert [(d["result"], d.get("status")) for d in run["detail"]] == [("ok", 200), ("failed", 500), ("not run", None)]
    assert run["detail"][1]["error"] == "HTTP 500: broken"
    assert run["detail"][0]["url"] == hooks.url + "/api/webhook/ads"


def test_a_delay_step_delays(live, home):
    rid = create(live, rule_body("slowly", actions=[
        {"type": "mqtt", "topic": "home/a", "payload": "first"},
        {"type": "delay", "seconds": 1.2},
        {"type": "mqtt", "topic": "home/b", "payload": "second {{ device }}"},
    ]))["id"]
    started = time.monotonic()
    run = live.post(f"/api/v1/rules/{rid}/test", json={}).get_json()
    assert time.monotonic() - started >= 1.2
    assert run["status"] == "ok" and [d["result"] for d in run["detail"]] == ["ok"] * 3
    wait_for(lambda: len(home.messages) == 2, what="both messages")
    (t1, topic1, p1, *_), (t2, topic2, p2, *_) = home.messages
    assert (topic1, p1, topic2, p2) == ("home/a", "first", "home/b", "second test-device")
    assert t2 - t1 >= 1.1
    assert run["detail"][2]["at"] - run["detail"][0]["at"] >= 1.2


# ---------------------------------------------------------------------------------------------------- real triggers
def test_a_real_ad_start_fires_the_rule_and_is_audited(live, edge, home):
    rid = create(live, rule_body())["id"]
    other = create(live, rule_body("not tv1", devices=["den"]))["id"]
    ends = create(live, rule_body("on ad_end", "ad_end", [{"type": "mqtt", "topic": "home/end", "payload": "x"}]))
    edge.announce("tv1")
    wait_for(lambda: live.get("/api/v1/devices/tv1").status_code == 200, what="tv1 announced")
    ev = edge.event("tv1", 1, "ad_start")
    wait_for(lambda: home.received(), what="the rule's MQTT message")
    assert home.received() == [("home/tv1/lights", "ad on tv1 (0.93)", 1, False)]
    audit = wait_for(lambda: runs(live), what="the run in the audit log")
    assert len(audit) == 1
    run = audit[0]
    assert (run["rule_id"], run["device"], run["trigger"], run["test"], run["status"], run["event_id"]) == \
        (rid, "tv1", "ad_start", False, "ok", ev.event_id)
    assert runs(live, rule=other) == [] and runs(live, rule=ends["id"]) == []

    # a disabled rule does not fire; ad_end fires only its own rule
    live.post(f"/api/v1/rules/{rid}/disable")
    edge.event("tv1", 2, "ad_end")
    wait_for(lambda: len(home.received()) == 2, what="the ad_end rule's message")
    edge.event("tv1", 3, "ad_start")
    wait_for(lambda: len(live.get("/api/v1/events").get_json()["events"]) == 3, what="three events")
    time.sleep(0.5)
    assert [m[0] for m in home.received()] == ["home/tv1/lights", "home/end"]
    assert [r["rule"] for r in runs(live)] == ["on ad_end", "lights"]


def test_retained_events_do_not_fire(tmp_path, mosquitto, edge, home):  # noqa: F811
    """A server starting gets the broker's retained messages: an event someone retained is stored, fires nothing."""
    settings = {"start_mqtt": True, "mqtt_host": mosquitto.host, "mqtt_port": mosquitto.port}
    first = make_app(tmp_path, **settings)
    try:
        assert first.extensions["adbreak"].bridge.wait_connected(10)
        create(SignedIn(first), rule_body())
        edge.announce("tv1")
        wait_for(lambda: first.extensions["adbreak"].store.device("tv1"), what="tv1 announced")
    finally:
        first.extensions["adbreak"].stop()
    edge.event("tv1", 1, "ad_start", retain=True)  # while no server runs
    # another client id: a new session, so the broker hands over only what it retained (a persistent session
    # would also get the event as a queued live message: that is an event that happened, and it fires)
    again = make_app(tmp_path, **settings, mqtt_client_id="adbreak-server-restarted")
    try:
        api = SignedIn(again)
        wait_for(lambda: api.get("/api/v1/events").get_json()["events"], what="the retained event stored")
        time.sleep(0.5)
        assert home.received() == [] and runs(api) == []
    finally:
        again.extensions["adbreak"].stop()
        edge.publish(TOPICS.event("tv1"), b"", retain=True)  # clear it


def test_min_time_in_state_waits_and_cancels(live, edge, home):
    rid = create(live, rule_body(min_time_in_state_s=2.0))["id"]
    edge.announce("tv1")
    wait_for(lambda: live.get("/api/v1/devices/tv1").status_code == 200, what="tv1 announced")

    edge.event("tv1", 1, "ad_start")
    time.sleep(0.3)
    edge.event("tv1", 2, "ad_end")  # the ad lasted 0.3 s: the rule must not run
    skipped = wait_for(lambda: runs(live, rule=rid), what="the skipped run")
    assert skipped[0]["status"] == "skipped" and skipped[0]["detail"][0]["result"] == "not run"
    assert "tv1 left the ad state (program)" in skipped[0]["detail"][0]["note"]

    started = time.monotonic()
    edge.event("tv1", 3, "ad_start")  # this one stays
    wait_for(lambda: home.received(), timeout=8, what="the message after the re-check")
    assert time.monotonic() - started >= 1.9
    # the run is recorded after its actions (the message can arrive first)
    wait_for(lambda: len(runs(live, rule=rid)) == 2, what="the run recorded")
    assert [r["status"] for r in runs(live, rule=rid)] == ["ok", "skipped"]
    assert home.received() == [("home/tv1/lights", "ad on tv1 (0.93)", 1, False)]


def test_offline_trigger(live, edge, home):
    create(live, rule_body("gone", "offline", [{"type": "mqtt", "topic": "home/{{ device }}/gone",
                                                "payload": "{{ label }} {{ model_version }}"}]))
    edge.announce("tv1")
    wait_for(lambda: live.get("/api/v1/devices/tv1").status_code == 200, what="tv1 announced")
    edge.publish(TOPICS.available("tv1"), "stopped", retain=True)
    wait_for(lambda: home.received(), what="the offline rule's message")
    assert home.received() == [("home/tv1/gone", "stopped m1", 1, False)]
    latest = wait_for(lambda: (r := runs(live)) and r[0]["trigger"] == "offline" and r, what="the offline run recorded")
    assert latest[0]["status"] == "ok"


def test_delays_and_slow_webhooks_never_block_ingestion(live, edge, home, hooks):
    create(live, rule_body("slow", actions=[
        {"type": "webhook", "url": hooks.url + "/slow", "body": "{{ device }}"},
        {"type": "delay", "seconds": 2},
        {"type": "mqtt", "topic": "home/late", "payload": "late"},
    ]))
    edge.announce("tv1")
    wait_for(lambda: live.get("/api/v1/devices/tv1").status_code == 200, what="tv1 announced")
    edge.event("tv1", 1, "ad_start")
    wait_for(lambda: hooks.requests, what="the slow webhook called")
    called = hooks.requests[0]["at"]
    for seq in range(2, 8):  # while the webhook hangs (3 s) and then the delay (2 s) runs, events keep coming in
        edge.event("tv1", seq, "ad_end" if seq % 2 == 0 else "ad_start")
    wait_for(lambda: len(live.get("/api/v1/events").get_json()["events"]) == 7, timeout=2.5,
             what="all seven events ingested while the rule waits")
    assert time.monotonic() - called < 2.9
    assert home.received() == []
    wait_for(lambda: [m for m in home.received() if m[0] == "home/late"], timeout=10, what="the delayed message")
    late = next(m for m in home.messages if m[1] == "home/late")
    assert late[0] - called >= 4.9  # 3 s webhook + 2 s delay


def test_disabling_a_rule_during_a_delay_ends_its_run(live, edge, home):
    rid = create(live, rule_body("two steps", actions=[
        {"type": "mqtt", "topic": "home/first", "payload": "1"},
        {"type": "delay", "seconds": 1.5},
        {"type": "mqtt", "topic": "home/second", "payload": "2"},
    ]))["id"]
    edge.announce("tv1")
    wait_for(lambda: live.get("/api/v1/devices/tv1").status_code == 200, what="tv1 announced")
    edge.event("tv1", 1, "ad_start")
    wait_for(lambda: home.received(), what="the first step")
    assert live.post(f"/api/v1/rules/{rid}/disable").status_code == 200
    run = wait_for(lambda: runs(live, rule=rid), timeout=5, what="the run, ended after its delay")[0]
    assert run["status"] == "skipped"
    assert [d["result"] for d in run["detail"]] == ["ok", "ok", "not run"]
    assert run["detail"][2]["note"] == "the rule was changed, disabled or deleted during a delay"
    time.sleep(0.3)
    assert [m[0] for m in home.received()] == ["home/first"]


def test_stopping_the_server_records_the_runs_it_cuts_short(live, edge, home):
    runtime = live.client.application.extensions["adbreak"]
    create(live, rule_body("long wait", actions=[
        {"type": "mqtt", "topic": "home/now", "payload": "1"},
        {"type": "delay", "seconds": 600},
        {"type": "mqtt", "topic": "home/later", "payload": "2"},
    ]))
    create(live, rule_body("re-check", min_time_in_state_s=600))
    edge.announce("tv1")
    wait_for(lambda: runtime.store.device("tv1"), what="tv1 announced")
    edge.event("tv1", 1, "ad_start")
    wait_for(lambda: home.received(), what="the first step")
    started = time.monotonic()
    runtime.stop()
    assert time.monotonic() - started < 10
    from server.rule_runner import read_runs

    with runtime.store._read() as conn:
        stopped = {r["rule"]: r for r in read_runs(conn)}
    assert stopped["long wait"]["status"] == "skipped"
    assert stopped["long wait"]["detail"][2]["note"] == "the server stopped during a delay"
    assert stopped["re-check"]["status"] == "skipped"
    assert stopped["re-check"]["detail"][0]["note"] == "the server stopped before the re-check"
    assert [m[0] for m in home.received()] == ["home/now"]
