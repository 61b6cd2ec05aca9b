"""User rules, the pure part (server.rule_engine): validation, conditions in a time zone, the min-time re-check with
an injected clock, templates in the sandbox, and the steps of a run with recording fakes."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from server.rule_engine import (
    MAX_DETAIL_CHARS,
    Hours,
    RuleEngine,
    Run,
    StoredRule,
    TemplateFailure,
    TriggerContext,
    detail_json,
    local_time,
    parse_rule,
    render,
    sample_context,
    skipped_run,
    unmet_condition,
    variables,
    zone,
)

BERLIN = ZoneInfo("Europe/Berlin")
AUCKLAND = ZoneInfo("Pacific/Auckland")


def at(text: str, tz=BERLIN) -> float:
    """Epoch seconds of a local wall time in ``tz``."""
    return datetime.fromisoformat(text).replace(tzinfo=tz).timestamp()


def rule(rule_id: int = 1, *, trigger: str = "ad_start", conditions: dict | None = None, actions: list | None = None,
         enabled: bool = True, name: str | None = None, updated: float = 0.0) -> StoredRule:
    spec = parse_rule({
        "name": name or f"rule {rule_id}",
        "enabled": enabled,
        "trigger": trigger,
        "conditions": conditions or {},
        "actions": actions or [{"type": "mqtt", "topic": "home/{{ device }}/lights", "payload": "{{ label }}"}],
    })
    return StoredRule(rule_id, spec, updated)


def ctx(trigger: str = "ad_start", device: str = "tv1", ts: float = 1_800_000_000.0, *, confidence: float = 0.9,
        label: str | None = None) -> TriggerContext:
    label = label or {"ad_start": "ad", "ad_end": "program", "offline": "offline"}[trigger]
    return TriggerContext(device, trigger, ts, label, None if trigger == "offline" else confidence,
                          None if trigger == "offline" else ts - 3, "m1", "e" * 32)


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


# ---------------------------------------------------------------------------------------------------- conditions
@pytest.mark.parametrize(("start", "end", "inside", "outside"), [
    ("08:00", "17:30", ["08:00", "12:00", "17:29"], ["07:59", "17:30", "23:00", "00:00"]),
    ("22:00", "02:00", ["22:00", "23:59", "00:00", "01:59"], ["02:00", "12:00", "21:59"]),  # wraps midnight
    ("23:59", "00:00", ["23:59"], ["00:00", "12:00", "23:58"]),
])
def test_hours_including_wrap_around(start, end, inside, outside):
    hours = Hours.model_validate({"from": start, "to": end})

    def minute(hhmm: str) -> int:
        return int(hhmm[:2]) * 60 + int(hhmm[3:])

    assert all(hours.contains(minute(t)) for t in inside)
    assert not any(hours.contains(minute(t)) for t in outside)


def test_hours_are_read_in_the_zone():
    r = rule(conditions={"hours": {"from": "22:00", "to": "02:00"}})
    late = at("2026-11-23T23:30:00")  # Berlin 23:30 = UTC 22:30
    assert unmet_condition(r.spec.conditions, ctx(ts=late), BERLIN) is None
    assert unmet_condition(r.spec.conditions, ctx(ts=at("2026-11-24T01:59:00")), BERLIN) is None
    assert "outside 22:00-02:00" in unmet_condition(r.spec.conditions, ctx(ts=at("2026-11-24T02:00:00")), BERLIN)
    # the same instant in Auckland is 11:30 the next morning
    assert unmet_condition(r.spec.conditions, ctx(ts=late), AUCKLAND) == "11:30 is outside 22:00-02:00"


def test_days_are_read_in_the_zone():
    r = rule(conditions={"days": ["mon", "sun"]})
    ts = at("2026-11-23T20:00:00", ZoneInfo("UTC"))  # Monday 20:00 UTC
    assert local_time(ts, AUCKLAND).strftime("%a %H:%M") == "Tue 09:00"
    assert unmet_condition(r.spec.conditions, ctx(ts=ts), ZoneInfo("UTC")) is None
    assert unmet_condition(r.spec.conditions, ctx(ts=ts), BERLIN) is None  # Monday 21:00
    assert unmet_condition(r.spec.conditions, ctx(ts=ts), AUCKLAND) == "tue is not one of mon, sun"


def test_devices_and_min_confidence():
    r = rule(conditions={"devices": ["tv2", "tv1"], "min_confidence": 0.8})
    assert r.spec.conditions.devices == ["tv1", "tv2"]
    assert unmet_condition(r.spec.conditions, ctx(device="tv1", confidence=0.8), None) is None
    assert unmet_condition(r.spec.conditions, ctx(device="den", confidence=0.99), None).startswith("device den")
    assert "below 0.8" in unmet_condition(r.spec.conditions, ctx(device="tv2", confidence=0.79), None)


def test_no_conditions_match_everything():
    r = rule()
    for trigger in ("ad_start", "ad_end", "offline"):
        assert unmet_condition(r.spec.conditions, ctx(trigger), AUCKLAND) is None


def test_zone_names():
    assert zone(None) is None
    assert zone("Europe/Berlin") == BERLIN
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        zone("Mars/Olympus")


# ---------------------------------------------------------------------------------------------------- engine
def test_matching_rules_run_at_once():
    clock = Clock()
    engine = RuleEngine(BERLIN, clock)
    engine.set_rules([rule(1), rule(2, trigger="ad_end"), rule(3, enabled=False),
                      rule(4, conditions={"devices": ["den"]}), rule(5, conditions={"min_confidence": 0.95})])
    decided = engine.on_trigger(ctx("ad_start", confidence=0.9))
    assert [r.id for r, _ in decided.run] == [1]
    assert decided.scheduled == [] and decided.cancelled == []
    assert [r.id for r, _ in engine.on_trigger(ctx("ad_end", ts=clock.t + 30)).run] == [2]


def test_a_late_trigger_runs_nothing_but_reports_the_matching_rules_and_is_followed():
    clock = Clock()
    engine = RuleEngine(None, clock)
    engine.set_rules([rule(1), rule(2, conditions={"min_time_in_state_s": 30}), rule(3, trigger="ad_end"),
                      rule(4, conditions={"devices": ["den"]})])
    decided = engine.on_trigger(ctx("ad_start", ts=clock.t), late="late by 40 s")
    assert decided.run == [] and decided.scheduled == [] and engine.pending == []
    assert [(r.id, reason) for r, _c, reason in decided.skipped] == [(1, "late by 40 s"), (2, "late by 40 s")]
    # the device's state was followed all the same: the next live trigger of another state runs as usual
    assert [r.id for r, _ in engine.on_trigger(ctx("ad_end", ts=clock.t + 5)).run] == [3]


def test_min_time_in_state_kept_when_the_state_holds():
    clock = Clock()
    engine = RuleEngine(None, clock)
    engine.set_rules([rule(1, conditions={"min_time_in_state_s": 30})])
    decided = engine.on_trigger(ctx("ad_start", ts=clock.t))
    assert decided.run == [] and [p.due for p in decided.scheduled] == [clock.t + 30]
    assert engine.next_due() == clock.t + 30
    clock.t += 29.9
    assert engine.take_due() == []
    # another device's ad_end does not touch tv1's wait
    assert engine.on_trigger(ctx("ad_end", device="den", ts=clock.t)).cancelled == []
    clock.t += 0.1
    due = engine.take_due()
    assert [(p.rule.id, p.ctx.device) for p in due] == [(1, "tv1")]
    assert engine.take_due(clock.t + 1000) == [] and engine.next_due() is None


@pytest.mark.parametrize("leave", ["ad_end", "offline", "online"])
def test_min_time_in_state_cancelled_when_the_device_leaves_the_state(leave):
    clock = Clock()
    engine = RuleEngine(None, clock)
    engine.set_rules([rule(1, conditions={"min_time_in_state_s": 30})])
    engine.on_trigger(ctx("ad_start", ts=clock.t))
    clock.t += 12
    if leave == "online":
        engine.on_trigger(ctx("offline", ts=clock.t - 1))  # cancels it already; online keeps nothing waiting
        assert engine.pending == []
        return
    cancelled = engine.on_trigger(ctx(leave, ts=clock.t)).cancelled
    assert len(cancelled) == 1
    pending, reason = cancelled[0]
    assert pending.rule.id == 1
    assert reason.startswith("tv1 left the ad state") and "after 12.0 s; the rule needs 30 s" in reason
    clock.t += 100
    assert engine.take_due() == []


def test_offline_wait_cancelled_by_coming_back_online():
    clock = Clock()
    engine = RuleEngine(None, clock)
    engine.set_rules([rule(1, trigger="offline", conditions={"min_time_in_state_s": 60})])
    assert len(engine.on_trigger(ctx("offline", ts=clock.t)).scheduled) == 1
    cancelled = engine.observe("tv1", "online", clock.t + 5)
    assert [p.rule.id for p, _ in cancelled] == [1]
    assert engine.take_due(clock.t + 120) == []


def test_offline_then_stopped_is_one_trigger():
    engine = RuleEngine(None, Clock())
    engine.set_rules([rule(1, trigger="offline")])
    assert len(engine.on_trigger(ctx("offline", label="offline")).run) == 1
    assert engine.on_trigger(ctx("offline", label="stopped")).run == []
    engine.observe("tv1", "online", 1_800_000_100.0)
    assert len(engine.on_trigger(ctx("offline", ts=1_800_000_200.0)).run) == 1


def test_changing_a_rule_cancels_its_waits():
    clock = Clock()
    engine = RuleEngine(None, clock)
    waiting = rule(1, conditions={"min_time_in_state_s": 10})
    other = rule(2, conditions={"min_time_in_state_s": 10})
    engine.set_rules([waiting, other])
    engine.on_trigger(ctx("ad_start"))
    assert engine.is_current(waiting)
    edited = rule(1, conditions={"min_time_in_state_s": 10}, updated=5.0)
    cancelled = engine.set_rules([edited, other])
    assert [p.rule.id for p, _ in cancelled] == [1] and "changed, disabled or deleted" in cancelled[0][1]
    assert not engine.is_current(waiting) and engine.is_current(edited)
    assert [p.rule.id for p in engine.take_due(clock.t + 10)] == [2]


# ---------------------------------------------------------------------------------------------------- templates
def test_template_variables_and_filters():
    c = ctx("ad_start", ts=at("2026-11-23T21:15:00"))
    v = variables(c, "lights", BERLIN)
    assert v["iso_time"] == "2026-11-23T21:15:00+01:00"
    text = render('{"d": {{ device|tojson }}, "c": {{ "%.2f"|format(confidence) }}, "l": "{{ label|upper }}", '
                  '"r": "{{ rule }}", "t": "{{ trigger }}", "s": {{ (ts - segment_start)|int }}, '
                  '"m": "{{ model_version }}"}', v)
    assert json.loads(text) == {"d": "tv1", "c": 0.9, "l": "AD", "r": "lights", "t": "ad_start", "s": 3, "m": "m1"}
    assert render("plain text, no template", v) == "plain text, no template"
    offline = variables(ctx("offline"), "x", None)
    assert render("{{ confidence is none }} {{ label }}", offline) == "True offline"


@pytest.mark.parametrize(("source", "message"), [
    ("{{ ''.__class__.__mro__ }}", "refused by the template sandbox: access to attribute '__class__'"),
    ("{{ device.__init__.__globals__ }}", "refused by the template sandbox"),
    ("{{ 'x' * 1000000 }}", "a repeated value longer than"),
    ("{{ 10 ** 100000 }}", "exponents above 64"),
    ("{{ range(10 ** 7) | list }}", "Range too big"),
    ("{{ nope }}", "'nope' is undefined"),
    ("{% for x in %}", "template syntax error"),
    ("{{ confidence / 0 }}", "ZeroDivisionError"),
])
def test_template_refusals(source, message):
    with pytest.raises(TemplateFailure) as err:
        render(source, variables(ctx(), "r", None))
    assert message in str(err.value) and "\n" not in str(err.value)


# ---------------------------------------------------------------------------------------------------- validation
def _base(**changes) -> dict:
    data = {"name": "r", "trigger": "ad_start", "actions": [{"type": "mqtt", "topic": "home/x", "payload": "on"}]}
    data.update(changes)
    return data


@pytest.mark.parametrize(("data", "message"), [
    (_base(name=""), "name: String should have at least 1 character"),
    (_base(name="   "), "name: is empty"),
    (_base(trigger="ad"), "trigger: Input should be 'ad_start', 'ad_end' or 'offline'"),
    (_base(colour="red"), "colour: unknown field"),
    (_base(actions=[]), "actions: List should have at least 1 item"),
    (_base(actions=[{"type": "mqtt", "topic": "a"}] * 11), "actions: List should have at most 10 items"),
    (_base(actions=[{"type": "mqtt", "topic": "home/+/x"}]), "actions.0.topic: must not contain the MQTT wildcards"),
    (_base(actions=[{"type": "mqtt", "topic": "home/#"}]), "actions.0.topic: must not contain the MQTT wildcards"),
    (_base(actions=[{"type": "mqtt", "topic": "x/{{ device }}/#"}]), "actions.0.topic: must not contain"),
    (_base(actions=[{"type": "mqtt", "topic": "adbreak/tv1/event"}]), "actions.0.topic: 'adbreak/tv1/event' is a "
                                                                       "device's own event topic"),
    (_base(actions=[{"type": "mqtt", "topic": "a", "qos": 3}]), "actions.0.qos: Input should be 0, 1 or 2"),
    (_base(actions=[{"type": "mqtt", "topic": "a", "payload": "{{ devic }}"}]),
     "actions.0.payload: template error: 'devic' is undefined"),
    (_base(actions=[{"type": "mqtt", "topic": "a", "payload": "{{ ''.__class__ }}"}]),
     "actions.0.payload: refused by the template sandbox"),
    (_base(actions=[{"type": "mqtt", "topic": "a", "payload": "{% if %}"}]), "actions.0.payload: template syntax"),
    (_base(actions=[{"type": "webhook", "url": "ftp://x/y"}]), "actions.0.url: must be an http:// or https:// URL"),
    (_base(actions=[{"type": "webhook", "url": "file:///etc/passwd"}]), "actions.0.url: must be an http://"),
    (_base(actions=[{"type": "webhook", "url": "http:///x"}]), "actions.0.url: has no host"),
    (_base(actions=[{"type": "webhook", "url": "http://h", "method": "TRACE"}]), "actions.0.method: Input should be"),
    (_base(actions=[{"type": "webhook", "url": "http://h", "headers": {"X-A": "a\r\nB: c"}}]),
     "actions.0.headers: the value of X-A must be one line"),
    (_base(actions=[{"type": "webhook", "url": "http://h", "headers": {"bad name": "x"}}]),
     "actions.0.headers: 'bad name' is not a header name"),
    (_base(actions=[{"type": "delay", "seconds": 3601}, {"type": "mqtt", "topic": "a"}]),
     "actions.0.seconds: Input should be less than or equal to 3600"),
    (_base(actions=[{"type": "delay", "seconds": 0}, {"type": "mqtt", "topic": "a"}]),
     "actions.0.seconds: Input should be greater than 0"),
    (_base(actions=[{"type": "mqtt", "topic": "a"}, {"type": "delay", "seconds": 5}]),
     "actions.1: a delay as the last step delays nothing"),
    (_base(actions=[{"type": "lamp"}]), "actions.0: type must be one of mqtt, webhook, delay"),
    (_base(actions=[{"topic": "a"}]), "actions.0: type is missing"),
    (_base(conditions={"hours": {"from": "7:00", "to": "09:00"}}), "conditions.hours.from: '7:00' is not a time"),
    (_base(conditions={"hours": {"from": "09:00", "to": "09:00"}}), "conditions.hours: from and to are the same"),
    (_base(conditions={"hours": {"from": "09:00"}}), "conditions.hours.to: missing"),
    (_base(conditions={"days": ["monday"]}), "conditions.days.0: Input should be 'mon'"),
    (_base(conditions={"devices": ["TV 1"]}), "conditions.devices: 'TV 1' is not a device name"),
    (_base(conditions={"min_confidence": 1.5}), "conditions.min_confidence: Input should be less than or equal to 1"),
    (_base(conditions={"min_time_in_state_s": -1}), "conditions.min_time_in_state_s: Input should be greater"),
    (_base(trigger="offline", conditions={"min_confidence": 0.5}),
     "conditions.min_confidence: the offline trigger has no confidence"),
    (_base(trigger="offline", actions=[{"type": "mqtt", "topic": "a", "payload": "{{ confidence * 100 }}"}]),
     "actions.0.payload: template error: TypeError"),
])
def test_validation_errors_name_the_field(data, message):
    with pytest.raises(ValueError) as err:
        parse_rule(data)
    assert message in str(err.value), str(err.value)
    assert "\n" not in str(err.value)


def test_validation_uses_the_servers_prefix():
    data = _base(actions=[{"type": "mqtt", "topic": "home/tv1/state"}])
    with pytest.raises(ValueError, match="device's own state topic"):
        parse_rule(data, prefix="home")
    assert parse_rule(data).actions[0].topic == "home/tv1/state"  # not under the default prefix "adbreak"
    assert parse_rule(_base(actions=[{"type": "mqtt", "topic": "adbreak/tv1/mute/set"}])).actions[0].qos == 1


def test_a_valid_rule_round_trips():
    data = {
        "name": " lights ", "enabled": False, "trigger": "ad_end",
        "conditions": {"devices": ["tv1"], "days": ["sun", "mon", "mon"], "hours": {"from": "18:00", "to": "01:00"},
                       "min_confidence": 0.7, "min_time_in_state_s": 5},
        "actions": [{"type": "webhook", "url": "https://hass.local:8123/api/webhook/x", "body": "{{ device }}"},
                    {"type": "delay", "seconds": 2.5},
                    {"type": "mqtt", "topic": "home/{{ device }}/lights", "payload": "off", "qos": 0}],
    }
    spec = parse_rule(data)
    out = spec.to_json()
    assert out["name"] == "lights" and out["conditions"]["days"] == ["mon", "sun"]
    assert out["conditions"]["hours"] == {"from": "18:00", "to": "01:00"}
    assert out["actions"][0] == {"type": "webhook", "url": "https://hass.local:8123/api/webhook/x", "method": "POST",
                                 "body": "{{ device }}", "headers": {}}
    assert out["actions"][2]["retain"] is False
    assert parse_rule(out) == spec


# ---------------------------------------------------------------------------------------------------- runs
class Recorder:
    def __init__(self, *, connected: bool = True, status: int = 200) -> None:
        self.published: list[tuple] = []
        self.requests: list[tuple] = []
        self.connected = connected
        self.status = status

    def publish(self, topic, payload, qos, retain) -> bool:
        self.published.append((topic, payload, qos, retain))
        return self.connected

    def http(self, method, url, body, headers, timeout):
        self.requests.append((method, url, body, headers, timeout))
        if self.status == 0:
            raise ConnectionRefusedError("[Errno 111] Connection refused")
        return self.status, "nope" if self.status >= 300 else "ok"


def test_a_run_steps_through_delays_and_records():
    clock = Clock()
    r = rule(actions=[
        {"type": "mqtt", "topic": "home/{{ device }}/lights", "payload": "{{ label }} {{ confidence }}", "qos": 2},
        {"type": "delay", "seconds": 1.5},
        {"type": "webhook", "url": "http://hass.local/api/webhook/ads", "body": '{"device": {{ device|tojson }}}'},
        {"type": "webhook", "url": "http://hass.local/plain", "method": "PUT", "body": "{{ device }}",
         "headers": {"Authorization": "Bearer x"}},
    ])
    fake = Recorder()
    run = Run(r, ctx(), clock=clock)
    assert run.step(fake.publish, fake.http) == 1.5 and not run.done
    assert fake.published == [("home/tv1/lights", "ad 0.9", 2, False)] and fake.requests == []
    clock.t += 1.5
    assert run.step(fake.publish, fake.http) is None and run.status == "ok"
    assert fake.requests[0][:4] == ("POST", "http://hass.local/api/webhook/ads", '{"device": "tv1"}',
                                    {"Content-Type": "application/json"})
    assert fake.requests[1][3] == {"Authorization": "Bearer x", "Content-Type": "text/plain; charset=utf-8"}
    record = run.record()
    assert (record["status"], record["rule_id"], record["device"], record["event_id"], record["test"]) == \
        ("ok", 1, "tv1", "e" * 32, False)
    detail = json.loads(record["detail"])
    assert [d["result"] for d in detail] == ["ok"] * 4
    assert detail[0]["payload"] == "ad 0.9" and detail[2]["status"] == 200
    assert detail[2]["at"] - detail[0]["at"] == 1.5


@pytest.mark.parametrize(("fake", "error"), [
    (Recorder(connected=False), "not handed to the broker"),
    (Recorder(status=500), "HTTP 500: nope"),
    (Recorder(status=0), "ConnectionRefusedError"),
])
def test_the_first_failure_stops_the_run(fake, error):
    r = rule(actions=[{"type": "mqtt", "topic": "a", "payload": "x"}, {"type": "webhook", "url": "http://h/"},
                      {"type": "mqtt", "topic": "b"}])
    run = Run(r, ctx())
    assert run.step(fake.publish, fake.http) is None
    assert run.status == "failed"
    detail = json.loads(run.record()["detail"])
    failed = [d for d in detail if d["result"] == "failed"]
    assert len(failed) == 1 and error in failed[0]["error"]
    assert detail[-1] == {"type": "mqtt", "result": "not run", "note": "an earlier action failed"}


def test_a_template_that_fails_only_at_run_time_fails_its_action():
    payload = "{% if confidence > 0.95 %}{{ no_such_value }}{% else %}low{% endif %}"
    r = rule(actions=[{"type": "mqtt", "topic": "a", "payload": payload}])  # saved: the sample confidence is 0.9
    fake = Recorder()
    ok = Run(r, ctx(confidence=0.9))
    ok.step(fake.publish, fake.http)
    assert ok.status == "ok" and fake.published == [("a", "low", 1, False)]
    bad = Run(r, ctx(confidence=0.99))
    bad.step(fake.publish, fake.http)
    assert bad.status == "failed" and len(fake.published) == 1
    assert "'no_such_value' is undefined" in json.loads(bad.record()["detail"])[0]["error"]


def test_a_rendered_topic_must_still_be_clean():
    r = rule(actions=[{"type": "mqtt", "topic": "{{ model_version }}/x"}])
    run = Run(r, TriggerContext("tv1", "ad_start", 0.0, "ad", 0.9, 0.0, "a+b"))
    run.step(Recorder().publish, Recorder().http)
    assert run.status == "failed"
    assert "wildcards" in json.loads(run.record()["detail"])[0]["error"]


def test_stopped_and_skipped_runs():
    r = rule(actions=[{"type": "mqtt", "topic": "a"}, {"type": "delay", "seconds": 5}, {"type": "mqtt", "topic": "b"}])
    fake = Recorder()
    run = Run(r, ctx())
    assert run.step(fake.publish, fake.http) == 5
    run.stop("the rule was disabled during a delay")
    assert run.status == "skipped"
    assert [d["result"] for d in json.loads(run.record()["detail"])] == ["ok", "ok", "not run"]
    skipped = skipped_run(r, ctx(), "left the ad state after 3 s")
    assert skipped.status == "skipped"
    assert {d["note"] for d in json.loads(skipped.record()["detail"])} == {"left the ad state after 3 s"}


def test_detail_is_cut_to_fit_the_column():
    results = [{"type": "mqtt", "payload": "x" * 60_000, "result": "ok"} for _ in range(10)]
    text = detail_json(results)
    assert len(text) <= MAX_DETAIL_CHARS
    back = json.loads(text)
    assert len(back) == 10 and back[0]["payload"].endswith("…") and back[0]["result"] == "ok"


def test_sample_context_per_trigger():
    assert sample_context("offline", "den", ts=10.0) == TriggerContext("den", "offline", 10.0, "offline", None, None,
                                                                       "sample-model")
    s = sample_context("ad_end", ts=10.0, confidence=0.5, model_version="m")
    assert (s.label, s.confidence, s.segment_start, s.model_version) == ("program", 0.5, 8.0, "m")
