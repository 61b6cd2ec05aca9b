"""REST API of user rules under ``/api/v1/rules`` (``docs/api.md``, "Rules").

Definitions are validated by :mod:`server.rule_engine`, written by jobs of the single writer (``runtime.ingest.run``)
and handed to the running :class:`~server.rule_runner.RuleRunner` (``reload``) once committed. The auto-mute rule
is built in: listed read-only here, configured by the server's settings. ``/rules/firings`` (auto-mute's commands)
stays in :mod:`server.api`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from flask import Blueprint, jsonify, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from werkzeug.exceptions import BadRequest, Conflict, NotFound

from adbreak.wire import DEVICE_RE
from server.api import API_PREFIX, _params, _window, runtime
from server.auth import current_username
from server.rule_engine import TEMPLATE_VARIABLES, StoredRule, describe_error, parse_rule, sample_context
from server.rule_runner import (
    NameTaken,
    RuleNotFound,
    delete_rule,
    insert_rule,
    read_rule,
    read_rules,
    read_runs,
    set_enabled,
    stored_rules,
    update_rule,
)

if TYPE_CHECKING:
    from server.app import Runtime
    from server.rule_runner import RuleRunner

bp = Blueprint("api_rules", __name__, url_prefix=API_PREFIX)

DEFAULT_RUNS = 100
MAX_RUNS = 1000
TEST_WAIT_S = 30.0


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EnabledBody(_Body):
    enabled: bool


class TestBody(_Body):
    device: str | None = Field(default=None, max_length=64)


def _json_object() -> dict:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise BadRequest("expected a JSON object body (Content-Type: application/json)")
    return data


def _optional_json_object() -> dict:
    if not request.get_data(cache=True):
        return {}
    return _json_object()


def _body(model: type[BaseModel], data: dict):
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise BadRequest(describe_error(exc)) from None


def _spec(rt: Runtime):
    try:
        return parse_rule(_json_object(), prefix=rt.settings.mqtt_prefix)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


def _runner(rt: Runtime) -> RuleRunner:
    assert rt.rule_runner is not None
    return rt.rule_runner


def _write(rt: Runtime, job) -> object:
    """Run ``job`` on the single writer; the rule's errors as 404 / 409; the runner reloads after the commit."""
    try:
        result = rt.ingest.run(job)
    except RuleNotFound as exc:
        raise NotFound(str(exc)) from None
    except NameTaken as exc:
        raise Conflict(str(exc)) from None
    _runner(rt).reload()
    return result


def _find(rt: Runtime, rule_id: int) -> dict:
    with rt.store._read() as conn:
        found = read_rule(conn, rule_id)
    if found is None:
        raise NotFound(f"no rule {rule_id}")
    return found


def builtin_rules(rt: Runtime) -> list[dict]:
    """The built-in auto-mute, described from the settings (read-only)."""
    s = rt.settings
    return [{
        "name": "auto_mute",
        "builtin": True,
        "enabled": s.mute_enabled,
        "description": f"Publish {s.mute_payload_on!r} on ad_start and {s.mute_payload_off!r} on ad_end to "
                       f"{s.mute_topic.replace('{prefix}', s.mqtt_prefix)} (QoS 1); fail-safe unmute when the device "
                       f"goes offline or an ad lasts over {s.max_ad_s:g} s. Configured by the server's settings; "
                       "it always applies, beside the user rules.",
        "topic": s.mute_topic.replace("{prefix}", s.mqtt_prefix),
        "payload_on": s.mute_payload_on,
        "payload_off": s.mute_payload_off,
        "max_ad_s": s.max_ad_s,
    }]


# ---------------------------------------------------------------------------------------------------- routes
@bp.get("/rules")
def list_rules():
    _params(())
    rt = runtime()
    with rt.store._read() as conn:
        rules = read_rules(conn)
    return jsonify({"rules": rules, "builtin": builtin_rules(rt), "variables": TEMPLATE_VARIABLES})


@bp.post("/rules")
def create_rule():
    _params(())
    rt = runtime()
    spec = _spec(rt)
    user = current_username()
    created = _write(rt, lambda batch: insert_rule(batch, spec, user=user, now=time.time()))
    return jsonify(created), 201


@bp.get("/rules/<int:rule_id>")
def get_rule(rule_id: int):
    _params(())
    return jsonify(_find(runtime(), rule_id))


@bp.put("/rules/<int:rule_id>")
def replace_rule(rule_id: int):
    _params(())
    rt = runtime()
    spec = _spec(rt)
    return jsonify(_write(rt, lambda batch: update_rule(batch, rule_id, spec, now=time.time())))


@bp.patch("/rules/<int:rule_id>")
def patch_rule(rule_id: int):
    _params(())
    body: EnabledBody = _body(EnabledBody, _json_object())
    rt = runtime()
    return jsonify(_write(rt, lambda batch: set_enabled(batch, rule_id, body.enabled, now=time.time())))


@bp.post("/rules/<int:rule_id>/enable")
def enable_rule(rule_id: int):
    _params(())
    rt = runtime()
    return jsonify(_write(rt, lambda batch: set_enabled(batch, rule_id, True, now=time.time())))


@bp.post("/rules/<int:rule_id>/disable")
def disable_rule(rule_id: int):
    _params(())
    rt = runtime()
    return jsonify(_write(rt, lambda batch: set_enabled(batch, rule_id, False, now=time.time())))


@bp.delete("/rules/<int:rule_id>")
def remove_rule(rule_id: int):
    _params(())
    rt = runtime()
    _write(rt, lambda batch: delete_rule(batch, rule_id))
    return "", 204


@bp.post("/rules/<int:rule_id>/test")
def test_rule(rule_id: int):
    """Run the saved rule's actions now with sample values (conditions not checked); recorded with test=true."""
    _params(())
    rt = runtime()
    body: TestBody = _body(TestBody, _optional_json_object())
    row = _find(rt, rule_id)
    rules = stored_rules([row], rt.settings.mqtt_prefix)
    if not rules:
        raise Conflict(f"rule {rule_id} is not valid any more; save it again")
    rule: StoredRule = rules[0]
    device = body.device
    if device is not None and not DEVICE_RE.match(device):
        raise BadRequest(f"device: {device!r} is not a device name ({DEVICE_RE.pattern})")
    if device is None:
        known = [d["name"] for d in rt.store.devices()]
        wanted = [d for d in rule.spec.conditions.devices if d in known] or rule.spec.conditions.devices or known
        device = wanted[0] if wanted else "test-device"
        dev = rt.store.device(device)
    else:
        dev = rt.store.device(device)
        if dev is None:
            raise NotFound(f"device: unknown device {device!r}")
    state = (dev or {}).get("state") or {}
    ctx = sample_context(rule.spec.trigger, device, confidence=state.get("confidence") or 0.9,
                         model_version=(dev or {}).get("model_version") or "sample-model")
    run = _runner(rt).test(rule, ctx, timeout=TEST_WAIT_S)
    if run is None:
        return jsonify({"status": "running", "rule_id": rule_id}), 202
    return jsonify(run)


@bp.get("/rules/runs")
def runs():
    args = _params(("rule", "device", "start", "end", "limit"))
    rule = None
    if "rule" in args:
        try:
            rule = int(args["rule"])
        except ValueError:
            raise BadRequest(f"rule={args['rule']!r} is not a rule id") from None
    raw_limit = args.pop("limit", None)
    window = _window(args)  # device, start, end (its own limit is ignored: the audit log has a smaller one)
    limit = DEFAULT_RUNS
    if raw_limit is not None:
        try:
            limit = int(raw_limit)
        except ValueError:
            raise BadRequest(f"limit={raw_limit!r} is not an integer") from None
        if not 1 <= limit <= MAX_RUNS:
            raise BadRequest(f"limit must be between 1 and {MAX_RUNS}")
    rt = runtime()
    with rt.store._read() as conn:
        found = read_runs(conn, rule=rule, device=window.get("device"), start=window["start"], end=window["end"],
                          limit=limit)
    return jsonify({"runs": found})
