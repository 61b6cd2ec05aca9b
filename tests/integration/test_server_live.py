"""What a user meets, over HTTP, Socket.IO and MQTT, against the real ``adbreak server`` process: sign-in, roles,
CSRF and tokens; every documented route refusing a stranger; the REST API's answers; review and statistics; exports;
the training set; user rules firing on real events; Home Assistant discovery; keyframes and device settings.

One server per database engine is shared by these tests (``live_server``, ``tests/integration/conftest.py``); each
test works on devices of its own. Edge agents and Home Assistant are plain MQTT clients publishing what they would.
The in-process API tests (Flask's test client, every refusal and field) are in ``tests/api/``.
"""

from __future__ import annotations

import csv
import io
import json
import re
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
import socketio
import yaml

from adbreak import exports
from adbreak.wire import (
    DecisionSettings,
    KeyframePayload,
    SettingsStatePayload,
    Topics,
    new_event_id,
    parse_settings_set,
)
from server.device_settings import BUILTIN_DEFAULTS
from tests.export_support import jpeg, solid
from tests.mqtt_support import MqttClient
from tests.server_support import ADMIN, http_session, sio_client
from tests.support import wait_for

TOPICS = Topics()
SPEC = yaml.safe_load((Path(__file__).resolve().parents[2] / "server" / "openapi.yaml").read_text(encoding="utf-8"))
METHODS = {"get", "put", "post", "patch", "delete"}


def error(r: requests.Response, status: int) -> str:
    """The one-line JSON error of an HTTP answer with ``status``."""
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["Content-Type"].startswith("application/json"), r.headers["Content-Type"]
    body = r.json()
    assert set(body) == {"error"} and "\n" not in body["error"], body
    return body["error"]


def csrf_session(live) -> requests.Session:
    """A browser's session, not signed in: it holds the CSRF token the server handed out."""
    s = requests.Session()
    s.headers["X-CSRFToken"] = s.get(live.url("/api/v1/auth/me"), timeout=10).json()["csrf_token"]
    return s


@pytest.fixture
def viewer(live_server):
    """A signed-in non-admin user (deleted afterwards) and their password."""
    name = live_server.device("viewer").replace("-", "_")
    r = live_server.admin.post(live_server.url("/api/v1/users"), json={"username": name, "password": "viewer-pass"},
                               timeout=10)
    assert r.status_code == 201, r.text
    yield http_session(live_server.base, name, "viewer-pass"), r.json()
    live_server.admin.delete(live_server.url(f"/api/v1/users/{r.json()['id']}"), timeout=10)


# ---------------------------------------------------------------------------------------------------- auth
def test_sign_in_sign_out_and_one_answer_for_wrong_names_and_passwords(live_server):
    live = live_server
    s = csrf_session(live)
    me = requests.get(live.url("/api/v1/auth/me"), timeout=10)
    assert me.status_code == 401 and me.json()["user"] is None
    for username in (ADMIN, "nobody"):
        r = s.post(live.url("/api/v1/auth/login"), json={"username": username, "password": "wrong"}, timeout=10)
        assert error(r, 401) == "wrong user name or password"  # no user enumeration
    assert "password" in error(s.post(live.url("/api/v1/auth/login"), json={"username": ADMIN}, timeout=10), 400)
    assert error(s.get(live.url("/api/v1/devices"), timeout=10), 401)

    signed = http_session(live.base)
    assert signed.get(live.url("/api/v1/auth/me"), timeout=10).json()["user"] == {
        "id": live.json("/api/v1/auth/me")["user"]["id"], "username": ADMIN, "is_admin": True}
    assert signed.get(live.url("/api/v1/devices"), timeout=10).status_code == 200
    assert signed.cookies.get("adbreak_session")
    assert signed.post(live.url("/api/v1/auth/logout"), timeout=10).status_code == 204
    assert "sign in first" in error(signed.get(live.url("/api/v1/devices"), timeout=10), 401)


def test_csrf_token_is_needed_with_a_cookie_not_with_a_token(live_server):
    live = live_server
    s = http_session(live.base)
    token = s.headers.pop("X-CSRFToken")
    assert "CSRF token is missing" in error(s.post(live.url("/api/v1/auth/tokens"), json={"name": "x"}, timeout=10),
                                            400)
    r = s.post(live.url("/api/v1/auth/tokens"), json={"name": "x"}, headers={"X-CSRFToken": "forged"}, timeout=10)
    assert "CSRF" in error(r, 400)
    r = s.post(live.url("/api/v1/auth/tokens"), json={"name": "csrf-test"}, headers={"X-CSRFToken": token},
               timeout=10)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["token"].startswith("adb_") and created["hint"] == created["token"][:10]

    bearer = {"Authorization": f"Bearer {created['token']}"}  # no cookie, no CSRF: the token alone
    assert requests.get(live.url("/api/v1/devices"), headers=bearer, timeout=10).status_code == 200
    assert requests.post(live.url("/api/v1/auth/tokens"), json={"name": "by-token"}, headers=bearer,
                         timeout=10).status_code == 201
    assert requests.get(live.url("/api/v1/auth/me"), headers=bearer, timeout=10).json()["user"]["username"] == ADMIN
    assert s.delete(live.url(f"/api/v1/auth/tokens/{created['id']}"), headers={"X-CSRFToken": token},
                    timeout=10).status_code == 204
    assert "invalid or revoked" in error(requests.get(live.url("/api/v1/devices"), headers=bearer, timeout=10), 401)


def test_roles_admins_manage_users_a_viewer_reads(live_server, viewer):
    live = live_server
    session, user = viewer
    assert session.get(live.url("/api/v1/auth/me"), timeout=10).json()["user"] == {
        "id": user["id"], "username": user["username"], "is_admin": False}
    assert session.get(live.url("/api/v1/devices"), timeout=10).status_code == 200
    assert error(session.get(live.url("/api/v1/users"), timeout=10), 403) == "only an admin may do this"
    r = session.post(live.url("/api/v1/users"), json={"username": "x", "password": "xxxxxxxx"}, timeout=10)
    assert error(r, 403) == "only an admin may do this"
    # the viewer changes their own password; the old one no longer signs in
    r = session.post(live.url("/api/v1/auth/password"),
                     json={"current_password": "viewer-pass", "new_password": "a-new-password"}, timeout=10)
    assert r.status_code == 204, r.text
    http_session(live.base, user["username"], "a-new-password")
    with pytest.raises(requests.HTTPError):
        http_session(live.base, user["username"], "viewer-pass")
    users = live.json("/api/v1/users")["users"]
    assert user["username"] in [u["username"] for u in users]
    assert all("password" not in k for u in users for k in u)
    assert live.admin.delete(live.url(f"/api/v1/users/{user['id']}"), timeout=10).status_code == 204
    assert error(session.get(live.url("/api/v1/devices"), timeout=10), 401)  # a deleted user's session ends


# ---------------------------------------------------------------------------------------------------- authorization
def _concrete(path: str) -> str:
    """``/segments/{seg_id}`` as ``/segments/1``, ``/devices/{name}`` as ``/devices/tv1``."""
    return re.sub(r"\{[a-z_]+\}", lambda m: "1" if m.group(0).endswith("id}") else "tv1", path)


def test_every_documented_route_refuses_a_stranger_and_a_viewer_meets_403_only_on_admin_routes(live_server, viewer):
    live = live_server
    session, _user = viewer
    token = session.post(live.url("/api/v1/auth/tokens"), json={"name": "walk"}, timeout=10).json()["token"]
    public = {"/api/v1/health", "/api/v1/openapi.json", "/api/v1/auth/me", "/api/v1/auth/login",
              "/api/v1/auth/logout"}
    walked = forbidden = 0
    for path, item in SPEC["paths"].items():
        if path in public:
            continue
        url = live.url(_concrete(path))
        for method in sorted(set(item) & METHODS):
            walked += 1
            for headers in ({}, {"Authorization": "Bearer adb_made_up"}):
                r = requests.request(method, url, json={}, headers=headers, timeout=10)
                message = error(r, 401)
                assert not headers or "invalid or revoked" in message, (method, path, message)
            r = requests.request(method, url, json={}, headers={"Authorization": f"Bearer {token}"}, timeout=10)
            assert r.status_code != 401, (method, path)
            if r.status_code == 403:
                forbidden += 1
                assert path.startswith("/api/v1/users"), (method, path)
    assert walked >= 35 and forbidden == 3  # GET, POST /users and DELETE /users/{id}


# ---------------------------------------------------------------------------------------------------- REST API
def test_health_devices_segments_events_and_firings(live_server):
    live = live_server
    dev = live.device("api")
    now = time.time()
    live.breaks(dev, [(now - 90, now - 30)])  # recent: the auto-mute acts on it (max_ad_s)
    health = requests.get(live.url("/api/v1/health"), timeout=10).json()  # public
    assert health["status"] == "ok" and health["mqtt"]["connected"] is True and health["schema"]
    one = live.json(f"/api/v1/devices/{dev}")
    assert (one["name"], one["availability"], one["last_seq"], one["model_version"]) == (dev, "online", 2, "m1")
    assert dev in [d["name"] for d in live.json("/api/v1/devices")["devices"]]
    segs = live.json(f"/api/v1/segments?device={dev}")["segments"]
    assert [(s["label"], s["status"]) for s in segs] == [("program", "closed"), ("ad", "closed"), ("program", "open")]
    assert segs[1]["start"] == pytest.approx(now - 90) and segs[1]["end"] == pytest.approx(now - 30)
    assert [s["label"] for s in live.json(f"/api/v1/segments?device={dev}&label=ad")["segments"]] == ["ad"]
    events = live.json(f"/api/v1/events?device={dev}")["events"]
    assert [(e["seq"], e["type"]) for e in events] == [(1, "ad_start"), (2, "ad_end")]
    # the built-in auto-mute acted on the live events: mute, then unmute
    firings = wait_for(lambda: (f := live.json(f"/api/v1/rules/firings?device={dev}")["firings"]) and len(f) == 2
                       and f, what="the auto-mute firings")
    assert [(f["action"], f["reason"]) for f in firings] == [("mute", "ad_start"), ("unmute", "ad_end")]
    # refusals: one-line JSON
    assert error(live.get("/api/v1/devices/no-such-tv"), 404) == "unknown device 'no-such-tv'"
    assert "limit must be between 1 and 10000" in error(live.get("/api/v1/segments?limit=0"), 400)
    assert "unknown parameter(s) from" in error(live.get("/api/v1/segments?from=1"), 400)
    assert error(live.get("/api/v1/nothing"), 404) == "no such resource: /api/v1/nothing"
    r = live.admin.post(live.url("/api/v1/health"), timeout=10)
    assert error(r, 405) == "method POST not allowed on /api/v1/health"
    spec = requests.get(live.url("/api/v1/openapi.json"), timeout=10)
    assert spec.status_code == 200 and spec.json() == SPEC


# ---------------------------------------------------------------------------------------------------- review
def _sio(live, token: str) -> tuple[socketio.Client, list]:
    got: list = []
    client = sio_client(reconnection=False)
    for name in ("segment", "segment_removed", "correction", "device", "firing"):
        client.on(name, lambda data, name=name: got.append((name, data)))
    client.connect(live.base, auth={"token": token}, transports=["websocket"], wait_timeout=10)
    return client, got


def test_review_relabel_split_merge_confirm_pushed_and_counted_in_statistics(live_server):
    live = live_server
    dev = live.device("review")
    now = time.time()
    live.breaks(dev, [(now - 1500, now - 1320), (now - 900, now - 810)])
    token = live.admin.post(live.url("/api/v1/auth/tokens"), json={"name": "review-sio"}, timeout=10).json()
    client, got = _sio(live, token["token"])
    try:
        def seg(label, start):
            return next(s for s in live.json(f"/api/v1/segments?device={dev}")["segments"]
                        if s["label"] == label and s["start"] == pytest.approx(start))

        def ad_s():
            return live.json(f"/api/v1/stats?device={dev}&start={now - 3600}&end={now + 60}&tz=UTC")["ad_s"]

        assert ad_s() == pytest.approx(270, abs=0.01)
        first = seg("ad", now - 1500)
        r = live.admin.patch(live.url(f"/api/v1/segments/{first['id']}"), json={"label": "program"}, timeout=10)
        assert r.status_code == 200, r.text
        (relabelled,) = r.json()["segments"]
        assert (relabelled["label"], relabelled["detected_label"], relabelled["review"], relabelled["reviewed_by"]) \
            == ("program", "ad", "corrected", ADMIN)
        assert ad_s() == pytest.approx(90, abs=0.01)  # statistics follow the correction

        second = seg("ad", now - 900)
        r = live.admin.post(live.url(f"/api/v1/segments/{second['id']}/split"), json={"at": now - 850}, timeout=10)
        assert r.status_code == 200, r.text
        new_id = r.json()["segments"][1]["id"]
        r = live.admin.post(live.url("/api/v1/segments/merge"), json={"ids": [second["id"], new_id]}, timeout=10)
        assert r.status_code == 200 and r.json()["removed"] == [new_id]
        program = live.json(f"/api/v1/segments?device={dev}")["segments"][0]
        r = live.admin.post(live.url(f"/api/v1/segments/{program['id']}/confirm"), timeout=10)
        assert r.status_code == 200 and r.json()["segments"][0]["review"] == "confirmed"
        assert error(live.admin.get(live.url(f"/api/v1/segments/{new_id}"), timeout=10), 404) == f"no segment {new_id}"
        open_id = live.json(f"/api/v1/segments?device={dev}")["segments"][-1]["id"]
        r = live.admin.patch(live.url(f"/api/v1/segments/{open_id}"), json={"label": "ad"}, timeout=10)
        assert "still open" in error(r, 409)

        corrections = live.json(f"/api/v1/corrections?device={dev}")["corrections"]
        assert [c["action"] for c in corrections] == ["confirm", "merge", "split", "relabel"]  # newest first
        assert all(c["username"] == ADMIN for c in corrections)
        # every change reached the socket, in order
        wait_for(lambda: len([n for n, _ in got if n == "correction"]) == 4, what="four corrections pushed")
        mine = [(n, d) for n, d in got if n in ("segment", "segment_removed", "correction")
                and d.get("device") == dev]
        names = [n for n, _ in mine]
        assert names == ["segment", "correction", "segment", "segment", "correction", "segment", "segment_removed",
                         "correction", "segment", "correction"], names
        assert mine[6][1] == {"id": new_id, "device": dev, "merged_into": second["id"]}
    finally:
        client.disconnect()
        live.admin.delete(live.url(f"/api/v1/auth/tokens/{token['id']}"), timeout=10)
        live.forget(dev)


# ---------------------------------------------------------------------------------------------------- export
def test_export_downloads_read_back_to_the_stored_segments(live_server):
    live = live_server
    dev = live.device("export")
    t0 = float(int(time.time()) - 3000)
    live.breaks(dev, [(t0 + 600, t0 + 732.5), (t0 + 1800, t0 + 1830.25)])
    # the device's state said program since an hour before now: t0 lies inside it
    query = f"device={dev}&start={t0}&end={t0 + 2400}"
    for fmt in ("csv", "edl", "comskip", "ffmetadata"):
        r = live.get(f"/api/v1/export?{query}&format={fmt}")
        assert r.status_code == 200, r.text
        assert r.headers["Content-Disposition"].startswith(f'attachment; filename="{dev}_')
        got = exports.parse(fmt, r.text, duration=2400.0)
        assert [s.label for s in got] == ["program", "ad", "program", "ad", "program"], (fmt, got)
        tol = exports.precision(fmt)
        assert abs(got[1].start - 600) <= tol and abs(got[1].end - 732.5) <= tol, (fmt, got)
        assert abs(got[3].start - 1800) <= tol and abs(got[3].end - 1830.25) <= tol, (fmt, got)
    assert live.get(f"/api/v1/export?{query}&format=edl").text == "600.000\t732.500\t3\n1800.000\t1830.250\t3\n"
    assert "expected one of csv, edl, comskip, ffmetadata" in error(live.get(f"/api/v1/export?{query}&format=srt"), 400)
    assert "at most 31 days" in error(live.get(f"/api/v1/export?device={dev}&start={t0}&end={t0 + 40 * 86400}"
                                               "&format=csv"), 400)
    assert error(requests.get(live.url(f"/api/v1/export?{query}&format=csv"), timeout=10), 401)
    live.forget(dev)


# ---------------------------------------------------------------------------------------------------- dataset
def test_reviewed_keyframes_become_the_training_zip(live_server, tmp_path):
    live = live_server
    dev = live.device("dataset")
    t0 = float(int(time.time()) - 1800)
    live.breaks(dev, [(t0 + 20, t0 + 40)])  # program until t0+20, ad to t0+40, program from there
    for k in range(60):  # one keyframe a second: 20 program, 20 ad, 20 program
        ts = t0 + k + 0.25
        label = "ad" if 20 <= k < 40 else "program"
        kf = KeyframePayload.build(jpeg_bytes=jpeg(solid((200, 10 + k, 10) if label == "ad" else (10, 10 + k, 200))),
                                   device=dev, frame_id=new_event_id(), ts=ts, stream_t=float(k), kind="sample",
                                   p_ad=0.9 if label == "ad" else 0.1, label=label, model_version="m1", width=64,
                                   height=36)
        live.mqtt.publish(TOPICS.keyframe(dev), kf.to_bytes())
    wait_for(lambda: len(live.json(f"/api/v1/keyframes?device={dev}&limit=100")["keyframes"]) == 60,
             what="60 keyframes stored")
    segs = live.json(f"/api/v1/segments?device={dev}&end={t0 + 60}")["segments"]
    assert live.json(f"/api/v1/dataset/summary?device={dev}")["frames"] == 0  # none reviewed yet
    for s in segs[:2]:  # confirm the program before the break and the break
        assert live.admin.post(live.url(f"/api/v1/segments/{s['id']}/confirm"), timeout=10).status_code == 200
    window = f"device={dev}&start={t0}&end={t0 + 40}"
    summary = live.json(f"/api/v1/dataset/summary?{window}")
    assert summary["trainable"] is True and summary["labels"] == {"ad": 19, "program": 20}  # 20.25: near an edge
    r = live.get(f"/api/v1/dataset?{window}")
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/zip", r.text
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        names = zf.namelist()
        root = names[0].split("/")[0]
        rows = list(csv.DictReader(io.StringIO(zf.read(f"{root}/manifest.csv").decode())))
        zf.extractall(tmp_path)
    assert len(rows) == 39 and {r["label"] for r in rows} == {"ad", "program"}
    from adbreak.training.dataset import scan_dataset

    assert sorted(i.label for i in scan_dataset(tmp_path / root)).count("ad") == 19
    assert "training needs at least two labels" in error(
        live.get(f"/api/v1/dataset?device={dev}&start={t0}&end={t0 + 19}"), 409)
    live.forget(dev)


# ---------------------------------------------------------------------------------------------------- rules
class Hooks:
    """A real HTTP server on a free port of 127.0.0.1 recording every request (the webhook receiver)."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                hooks.requests.append({"path": self.path, "body": body, "headers": dict(self.headers)})
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_user_rule_fires_on_a_real_ad_start_over_mqtt_and_a_webhook(live_server):
    live = live_server
    dev = live.device("rules")
    home = MqttClient(live.broker, "rules-home").subscribe(f"home/{dev}/#")
    hooks = Hooks()
    made = []
    try:
        body = {"name": f"lights {dev}", "trigger": "ad_start", "conditions": {"devices": [dev]},
                "actions": [{"type": "mqtt", "topic": "home/{{ device }}/lights",
                             "payload": "{{ label }} on {{ device }} ({{ '%.2f'|format(confidence) }})"},
                            {"type": "webhook", "url": hooks.url + "/ads", "body": '{"device": {{ device|tojson }}}'}]}
        r = live.admin.post(live.url("/api/v1/rules"), json=body, timeout=10)
        assert r.status_code == 201, r.text
        rule = r.json()
        made.append(rule["id"])
        assert rule["created_by"] == ADMIN and rule["enabled"] is True
        assert live.json(f"/api/v1/rules/{rule['id']}") == rule
        assert "name" in error(live.admin.post(live.url("/api/v1/rules"), json=body, timeout=10), 409)
        bad = {**body, "name": "bad", "actions": [{"type": "mqtt", "topic": "home/+/x"}]}
        assert "actions.0.topic: must not contain the MQTT wildcards" in error(
            live.admin.post(live.url("/api/v1/rules"), json=bad, timeout=10), 400)

        live.announce(dev)
        wait_for(lambda: live.get(f"/api/v1/devices/{dev}").status_code == 200, what=f"{dev} announced")
        ev = live.event(dev, 1, "ad_start", time.time() - 1, confidence=0.93)
        wait_for(lambda: home.on(f"home/{dev}/lights"), what="the rule's MQTT message")
        assert home.on(f"home/{dev}/lights") == [(f"ad on {dev} (0.93)", False)]
        wait_for(lambda: hooks.requests, what="the webhook")
        assert json.loads(hooks.requests[0]["body"]) == {"device": dev}
        run = wait_for(lambda: live.json(f"/api/v1/rules/runs?rule={rule['id']}")["runs"], what="the run recorded")[0]
        assert (run["device"], run["trigger"], run["test"], run["status"], run["event_id"]) == \
            (dev, "ad_start", False, "ok", ev.event_id)

        # disabled: the next ad fires nothing
        assert live.admin.post(live.url(f"/api/v1/rules/{rule['id']}/disable"), timeout=10).json()["enabled"] is False
        live.event(dev, 2, "ad_end", time.time() - 0.5)
        live.event(dev, 3, "ad_start", time.time() - 0.2)
        wait_for(lambda: live.json(f"/api/v1/devices/{dev}")["last_seq"] == 3, what="the later events")
        time.sleep(0.3)
        assert len(home.on(f"home/{dev}/lights")) == 1
        assert live.admin.delete(live.url(f"/api/v1/rules/{rule['id']}"), timeout=10).status_code == 204
        made.clear()
        assert error(live.get(f"/api/v1/rules/{rule['id']}"), 404) == f"no rule {rule['id']}"
    finally:
        for rid in made:
            live.admin.delete(live.url(f"/api/v1/rules/{rid}"), timeout=10)
        home.close()
        hooks.close()
        live.forget(dev)


# ---------------------------------------------------------------------------------------------------- Home Assistant
def _retained(live, topic: str) -> str | None:
    look = MqttClient(live.broker, "look").subscribe(topic)
    try:
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            kept = [p for p, was_retained in look.on(topic) if was_retained]
            if kept:
                return kept[-1]
            time.sleep(0.02)
        return None
    finally:
        look.close()


def test_home_assistant_discovery_and_the_auto_mute_switch(live_server):
    live = live_server
    dev = live.device("ha")
    config_topic = f"homeassistant/device/adbreak_{dev}/config"
    switch_state = f"adbreak/{dev}/automute/state"
    try:
        live.announce(dev)
        config = wait_for(lambda: (kept := _retained(live, config_topic)) and '"sw":"m1"' in kept and json.loads(kept),
                          what="the retained discovery config with the model version")
        assert config["dev"]["ids"] == [f"adbreak_{dev}"]
        assert set(config["cmps"]) == {"ad_playing", "ad_confidence", "auto_mute", "ad_break"}
        assert config["cmps"]["auto_mute"]["command_topic"] == f"adbreak/{dev}/automute/set"
        assert _retained(live, switch_state) == "ON"
        # Home Assistant turns the switch off over MQTT; the API shows it; the API turns it on again
        live.mqtt.publish(f"adbreak/{dev}/automute/set", "OFF")
        wait_for(lambda: live.json(f"/api/v1/devices/{dev}")["auto_mute"] is False, what="the switch applied")
        wait_for(lambda: _retained(live, switch_state) == "OFF", what="the kept switch state")
        r = live.admin.put(live.url(f"/api/v1/devices/{dev}/auto-mute"), json={"enabled": True}, timeout=10)
        assert r.status_code == 200 and r.json()["auto_mute"] is True
        wait_for(lambda: _retained(live, switch_state) == "ON", what="the switch state after the API")
        assert "enabled" in error(live.admin.put(live.url(f"/api/v1/devices/{dev}/auto-mute"),
                                                 json={"enabled": "yes"}, timeout=10), 400)
    finally:
        live.forget(dev)
        live.mqtt.publish(config_topic, b"", retain=True)
        live.mqtt.publish(switch_state, b"", retain=True)


# ---------------------------------------------------------------------------------------------------- device media
def test_keyframes_are_served_and_settings_go_to_the_device_and_back(live_server):
    live = live_server
    dev = live.device("media")
    commands = MqttClient(live.broker, "settings").subscribe(TOPICS.settings_set(dev))
    try:
        live.announce(dev)
        wait_for(lambda: live.get(f"/api/v1/devices/{dev}").status_code == 200, what=f"{dev} announced")
        data = jpeg(solid((10, 200, 30)))
        kf = KeyframePayload.build(jpeg_bytes=data, device=dev, frame_id=new_event_id(), ts=time.time() - 5,
                                   stream_t=1.0, kind="start", p_ad=0.9, label="ad", model_version="m1", width=64,
                                   height=36)
        live.mqtt.publish(TOPICS.keyframe(dev), kf.to_bytes())
        frames = wait_for(lambda: live.json(f"/api/v1/keyframes?device={dev}")["keyframes"], what="the keyframe")
        assert [(k["kind"], k["label"], k["bytes"]) for k in frames] == [("start", "ad", len(data))]
        r = live.get(frames[0]["url"])
        assert r.status_code == 200 and r.headers["Content-Type"] == "image/jpeg" and r.content == data
        assert live.get(frames[0]["url"], headers={"If-None-Match": r.headers["ETag"]}).status_code == 304
        assert error(requests.get(live.url(frames[0]["url"]), timeout=10), 401)

        r = live.admin.put(live.url(f"/api/v1/devices/{dev}/settings"), json={"min_ad_s": 6}, timeout=10)
        assert r.status_code == 200 and r.json()["pending"] is True, r.text
        wait_for(lambda: commands.on(TOPICS.settings_set(dev)), what="settings/set published")
        assert parse_settings_set(commands.messages[0].payload, dev).min_ad_s == 6.0
        # the edge applies them and reports its retained settings/state: no longer pending
        state = SettingsStatePayload(device=dev, settings=DecisionSettings(**{**BUILTIN_DEFAULTS, "min_ad_s": 6.0}),
                                     defaults=DecisionSettings(**BUILTIN_DEFAULTS), overrides={"min_ad_s": 6.0},
                                     ts=time.time())
        live.mqtt.publish(TOPICS.settings_state(dev), state.to_bytes(), retain=True)
        wait_for(lambda: not live.json(f"/api/v1/devices/{dev}/settings")["pending"], what="pending cleared")
        assert "greater than exit_threshold" in error(live.admin.put(live.url(f"/api/v1/devices/{dev}/settings"),
                                                                     json={"exit_threshold": 0.85}, timeout=10), 400)
    finally:
        commands.close()
        live.forget(dev)
        live.mqtt.publish(TOPICS.settings_state(dev), b"", retain=True)
