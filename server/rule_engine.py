"""User rules, the pure part: definitions and their validation, conditions, templates, the re-check of
``min_time_in_state_s`` and the steps of one run. No Flask, no paho, no database: the runtime
(:mod:`server.rule_runner`) feeds it triggers and a clock, and hands it the functions that publish and call webhooks.

A rule (``docs/api.md``, "Rules")::

    {"name": "lights on during ads", "enabled": true, "trigger": "ad_start" | "ad_end" | "offline",
     "conditions": {"devices": ["tv1"], "days": ["mon", ...], "hours": {"from": "18:00", "to": "01:00"},
                    "min_confidence": 0.8, "min_time_in_state_s": 10},
     "actions": [{"type": "mqtt", "topic": "home/tv1/lights", "payload": "{{ label }}", "qos": 1, "retain": false},
                 {"type": "delay", "seconds": 5},
                 {"type": "webhook", "url": "http://hass.local/api/webhook/x", "method": "POST",
                  "body": "{\\"device\\": {{ device|tojson }}}", "headers": {}}]}

* Conditions: ``devices`` (empty: every device), ``days`` (empty: every day) and ``hours`` (``from`` inclusive, ``to``
  exclusive, may wrap midnight) are read in the server's time zone at the trigger's time; ``min_confidence`` is the
  event's confidence; ``min_time_in_state_s`` delays the run until the device has stayed that long in the state the
  trigger entered (ad, program, offline); leaving it earlier cancels the run (recorded as ``skipped``).
* Templates (topic, payload, webhook body) are Jinja2 in a sandbox (:class:`SandboxedEnvironment`, undefined names
  are errors, ``*`` / ``**`` may not build huge values); they see :data:`TEMPLATE_VARIABLES`. A template that does not
  compile or fails on sample values is refused at save time; one that fails at run time fails its action.
* A run does its actions in order; a ``delay`` hands control back to the caller (:meth:`Run.step` returns the
  seconds to wait), so no thread sleeps through it. The first failing action stops the run (the rest: ``not run``).
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from functools import lru_cache
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment, SecurityError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from adbreak.wire import DEFAULT_PREFIX, DEVICE_RE, Kind, Topics, WireError

TRIGGERS = ("ad_start", "ad_end", "offline")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ACTION_TYPES = ("mqtt", "webhook", "delay")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
MAX_ACTIONS = 10
MAX_DELAY_S = 3600.0
MAX_MIN_TIME_S = 6 * 3600.0
MAX_TEMPLATE_CHARS = 4096
MAX_RENDERED_CHARS = 64 * 1024
MAX_HEADERS = 20
WEBHOOK_TIMEOUT_S = 10.0
MAX_DETAIL_CHARS = 8000
"""``rule_runs.detail`` holds at most this much JSON; long rendered payloads are shortened to fit."""

TEMPLATE_VARIABLES = {
    "device": "the device's name",
    "trigger": "ad_start, ad_end or offline",
    "confidence": "the event's confidence, 0..1 (none for offline)",
    "ts": "the trigger's server time, epoch seconds",
    "iso_time": "the same time as ISO 8601 in the server's time zone",
    "segment_start": "start of the segment the event opened, epoch seconds (none for offline)",
    "label": "ad or program (the new segment's label); offline or stopped for the offline trigger",
    "model_version": "the model that decided (the device's last known for offline)",
    "rule": "the rule's name",
}

STATE_OF = {"ad_start": "ad", "ad_end": "program", "offline": "offline"}
"""The device state each trigger enters (what ``min_time_in_state_s`` waits on)."""
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


# ---------------------------------------------------------------------------------------------------- templates
class TemplateFailure(ValueError):
    """A template that cannot be compiled or rendered; the message is one line."""


class _Sandbox(SandboxedEnvironment):
    """Jinja's sandbox, plus a bound on ``*`` and ``**`` (``{{ "x" * 10**9 }}`` would fill the memory)."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context, operator, left, right):  # type: ignore[override]
        if operator == "**" and isinstance(right, int | float) and abs(right) > 64:
            raise SecurityError("exponents above 64 are not allowed in rule templates")
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(n, int) and len(seq) * n > MAX_RENDERED_CHARS:
                    raise SecurityError(f"a repeated value longer than {MAX_RENDERED_CHARS} is not allowed")
        return super().call_binop(context, operator, left, right)


_ENV = _Sandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
_compile_lock = threading.Lock()


@lru_cache(maxsize=512)
def _compiled(source: str):
    return _ENV.from_string(source)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def compile_template(source: str):
    """The compiled template; :class:`TemplateFailure` on a syntax error."""
    try:
        with _compile_lock:
            return _compiled(source)
    except TemplateError as exc:
        where = f" (line {exc.lineno})" if getattr(exc, "lineno", None) else ""
        raise TemplateFailure(f"template syntax error{where}: {_one_line(exc.message or exc)}") from None


def render(source: str, variables: dict[str, Any]) -> str:
    """Render ``source`` with ``variables`` in the sandbox; :class:`TemplateFailure` with one line on any error
    (syntax, undefined name, a refused attribute, a type error, an oversized result)."""
    if "{" not in source:
        return source  # no template syntax: as is
    template = compile_template(source)
    try:
        text = template.render(**variables)
    except SecurityError as exc:
        raise TemplateFailure(f"refused by the template sandbox: {_one_line(exc)}") from None
    except TemplateError as exc:
        raise TemplateFailure(f"template error: {_one_line(exc.message or exc)}") from None
    except Exception as exc:  # TypeError, ZeroDivisionError, OverflowError, ... from the template's own expressions
        raise TemplateFailure(f"template error: {type(exc).__name__}: {_one_line(exc)}") from None
    if len(text) > MAX_RENDERED_CHARS:
        raise TemplateFailure(f"rendered text longer than {MAX_RENDERED_CHARS} characters")
    return text


# ---------------------------------------------------------------------------------------------------- time
def zone(name: str | None) -> tzinfo | None:
    """The IANA zone ``name`` (None: the machine's local zone, returned as None). ValueError for an unknown one."""
    if name is None:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


def local_time(ts: float, tz: tzinfo | None) -> datetime:
    """``ts`` as an aware datetime in ``tz`` (None: the machine's local zone)."""
    return datetime.fromtimestamp(ts, tz) if tz is not None else datetime.fromtimestamp(ts).astimezone()


# ---------------------------------------------------------------------------------------------------- definitions
class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Hours(_Model):
    """``from`` inclusive, ``to`` exclusive, local ``HH:MM``; ``from`` after ``to`` wraps midnight."""

    start: str = Field(alias="from")
    end: str = Field(alias="to")

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        if not _HHMM.match(v):
            raise ValueError(f"{v!r} is not a time HH:MM (00:00 to 23:59)")
        return v

    @model_validator(mode="after")
    def _differ(self) -> Hours:
        if self.start == self.end:
            raise ValueError("from and to are the same time; leave hours out for the whole day")
        return self

    @staticmethod
    def _minutes(hhmm: str) -> int:
        h, m = hhmm.split(":")
        return int(h) * 60 + int(m)

    def contains(self, minute_of_day: int) -> bool:
        a, b = self._minutes(self.start), self._minutes(self.end)
        if a < b:
            return a <= minute_of_day < b
        return minute_of_day >= a or minute_of_day < b  # wraps midnight


class Conditions(_Model):
    devices: list[str] = Field(default_factory=list, max_length=256)
    """Device names; empty: every device."""
    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = Field(default_factory=list)
    """Days of the week in the server's zone; empty: every day."""
    hours: Hours | None = None
    min_confidence: float = Field(default=0.0, ge=0.0, le=1.0, allow_inf_nan=False)
    min_time_in_state_s: float = Field(default=0.0, ge=0.0, le=MAX_MIN_TIME_S, allow_inf_nan=False)

    @field_validator("devices")
    @classmethod
    def _devices(cls, v: list[str]) -> list[str]:
        bad = [d for d in v if not DEVICE_RE.match(d)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a device name (lower-case letters, digits, - and _)")
        return sorted(set(v))

    @field_validator("days")
    @classmethod
    def _days(cls, v: list[str]) -> list[str]:
        return sorted(set(v), key=DAYS.index)


def _check_topic(topic: str, prefix: str) -> str:
    """A topic an MQTT action may publish to; ValueError naming what is wrong."""
    if not topic:
        raise ValueError("is empty")
    if any(c in topic for c in "+#"):
        raise ValueError("must not contain the MQTT wildcards + or #")
    if "\x00" in topic:
        raise ValueError("must not contain NUL")
    if topic.startswith("$"):
        raise ValueError("must not start with $ (reserved by the broker)")
    if len(topic.encode("utf-8")) > 65535:
        raise ValueError("is longer than MQTT allows")
    try:
        _, kind = Topics(prefix).parse(topic)
    except WireError:
        return topic
    if kind is not Kind.MUTE:
        raise ValueError(f"{topic!r} is a device's own {kind.value} topic: the server would read it back as one")
    return topic


class MqttAction(_Model):
    type: Literal["mqtt"]
    topic: str = Field(min_length=1, max_length=1024)
    """A template; the rendered topic must not contain wildcards."""
    payload: str = Field(default="", max_length=MAX_TEMPLATE_CHARS)
    """A template."""
    qos: Literal[0, 1, 2] = 1
    retain: bool = False

    @field_validator("topic")
    @classmethod
    def _topic(cls, v: str, info: ValidationInfo) -> str:
        prefix = (info.context or {}).get("prefix", DEFAULT_PREFIX)
        if "{" in v:  # a template: its literal text must already be clean, the rendered text is checked later
            if any(c in v for c in "+#"):
                raise ValueError("must not contain the MQTT wildcards + or #")
            return v
        return _check_topic(v, prefix)


class WebhookAction(_Model):
    type: Literal["webhook"]
    url: str = Field(min_length=1, max_length=2048)
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    body: str = Field(default="", max_length=MAX_TEMPLATE_CHARS)
    """A template."""
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        try:
            parts = urlsplit(v)
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError as exc:
            raise ValueError(f"{v!r} is not a URL ({exc})") from None
        if parts.scheme not in ("http", "https"):
            raise ValueError("must be an http:// or https:// URL")
        if not parts.hostname:
            raise ValueError("has no host")
        if any(c.isspace() for c in v):
            raise ValueError("must not contain spaces")
        return v

    @field_validator("headers")
    @classmethod
    def _headers(cls, v: dict[str, str]) -> dict[str, str]:
        if len(v) > MAX_HEADERS:
            raise ValueError(f"at most {MAX_HEADERS} headers")
        for name, value in v.items():
            if not _HEADER_NAME.match(name):
                raise ValueError(f"{name!r} is not a header name")
            if any(c in value for c in "\r\n\x00") or len(value) > 4096:
                raise ValueError(f"the value of {name} must be one line of at most 4096 characters")
        return v


class DelayAction(_Model):
    type: Literal["delay"]
    seconds: float = Field(gt=0.0, le=MAX_DELAY_S, allow_inf_nan=False)


Action = Annotated[MqttAction | WebhookAction | DelayAction, Field(discriminator="type")]


class RuleSpec(_Model):
    """What a user defines (the body of ``POST /api/v1/rules``). Validate with :func:`parse_rule`."""

    name: str = Field(min_length=1, max_length=64)
    enabled: bool = True
    trigger: Literal["ad_start", "ad_end", "offline"]
    conditions: Conditions = Field(default_factory=Conditions)
    actions: list[Action] = Field(min_length=1, max_length=MAX_ACTIONS)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        v = v.strip()
        if not v:
            raise ValueError("is empty")
        if any(ord(c) < 32 or ord(c) == 127 for c in v):
            raise ValueError("must not contain control characters")
        return v

    @model_validator(mode="after")
    def _whole(self, info: ValidationInfo) -> RuleSpec:
        if self.trigger == "offline" and self.conditions.min_confidence > 0:
            raise ValueError("conditions.min_confidence: the offline trigger has no confidence; set it to 0")
        if isinstance(self.actions[-1], DelayAction):
            raise ValueError(f"actions.{len(self.actions) - 1}: a delay as the last step delays nothing")
        prefix = (info.context or {}).get("prefix", DEFAULT_PREFIX)
        sample = variables(sample_context(self.trigger), self.name, None)
        for i, action in enumerate(self.actions):
            for name in ("topic", "payload", "body"):
                source = getattr(action, name, None)
                if source is None:
                    continue
                try:
                    text = render(source, sample)
                    if name == "topic":
                        _check_topic(text, prefix)
                except (TemplateFailure, ValueError) as exc:
                    raise ValueError(f"actions.{i}.{name}: {exc}") from None
        return self

    def to_json(self) -> dict:
        return self.model_dump(mode="json", by_alias=True)


def describe_error(exc: ValidationError) -> str:
    """One line naming each bad field (``actions.0.topic: ...``); the action's type tag is left out of the path."""
    parts = []
    for err in exc.errors():
        loc = list(err.get("loc", ()))
        loc = [p for j, p in enumerate(loc) if not (p in ACTION_TYPES and j > 0 and isinstance(loc[j - 1], int))]
        where = ".".join(str(p) for p in loc)
        kind = err.get("type")
        if kind == "extra_forbidden":
            msg = "unknown field"
        elif kind == "missing":
            msg = "missing"
        elif kind == "union_tag_invalid":
            msg = f"type must be one of {', '.join(ACTION_TYPES)}"
        elif kind == "union_tag_not_found":
            msg = "type is missing (mqtt, webhook or delay)"
        else:
            msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{where}: {msg}" if where and not msg.startswith(f"{where}:") else msg)
    return _one_line("; ".join(parts))


def parse_rule(data: Any, *, prefix: str = DEFAULT_PREFIX) -> RuleSpec:
    """A validated :class:`RuleSpec`; ValueError with one line (:func:`describe_error`) otherwise."""
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    try:
        return RuleSpec.model_validate(data, context={"prefix": prefix})
    except ValidationError as exc:
        raise ValueError(describe_error(exc)) from None


# ---------------------------------------------------------------------------------------------------- triggers
@dataclass(frozen=True)
class TriggerContext:
    """One trigger: a device entered a state (an event opened a segment, or it went offline/stopped)."""

    device: str
    trigger: str
    ts: float
    label: str
    confidence: float | None = None
    segment_start: float | None = None
    model_version: str | None = None
    event_id: str | None = None


def sample_context(trigger: str, device: str = "tv", *, ts: float | None = None, confidence: float | None = 0.9,
                   model_version: str | None = "sample-model") -> TriggerContext:
    """Sample values for validating templates and for the Test button."""
    ts = time.time() if ts is None else ts
    if trigger == "offline":
        return TriggerContext(device, trigger, ts, "offline", None, None, model_version)
    return TriggerContext(device, trigger, ts, STATE_OF[trigger], confidence, ts - 2.0, model_version)


def variables(ctx: TriggerContext, rule_name: str, tz: tzinfo | None) -> dict[str, Any]:
    """What the templates see (:data:`TEMPLATE_VARIABLES`)."""
    return {
        "device": ctx.device,
        "trigger": ctx.trigger,
        "confidence": ctx.confidence,
        "ts": ctx.ts,
        "iso_time": local_time(ctx.ts, tz).isoformat(timespec="seconds"),
        "segment_start": ctx.segment_start,
        "label": ctx.label,
        "model_version": ctx.model_version,
        "rule": rule_name,
    }


def unmet_condition(cond: Conditions, ctx: TriggerContext, tz: tzinfo | None) -> str | None:
    """The first condition ``ctx`` does not meet (a short reason), or None when all hold. ``min_time_in_state_s``
    is not checked here (see :class:`RuleEngine`)."""
    if cond.devices and ctx.device not in cond.devices:
        return f"device {ctx.device} is not one of {', '.join(cond.devices)}"
    local = local_time(ctx.ts, tz)
    if cond.days:
        day = DAYS[local.weekday()]
        if day not in cond.days:
            return f"{day} is not one of {', '.join(cond.days)}"
    if cond.hours is not None and not cond.hours.contains(local.hour * 60 + local.minute):
        return f"{local:%H:%M} is outside {cond.hours.start}-{cond.hours.end}"
    if cond.min_confidence > 0 and (ctx.confidence is None or ctx.confidence < cond.min_confidence):
        return f"confidence {ctx.confidence} is below {cond.min_confidence}"
    return None


# ---------------------------------------------------------------------------------------------------- the engine
@dataclass(frozen=True)
class StoredRule:
    """A rule as stored: its id, its definition and when it was last changed (a changed rule is another version)."""

    id: int
    spec: RuleSpec
    updated: float = 0.0


@dataclass
class Pending:
    """A run waiting for ``min_time_in_state_s`` to pass with the device still in the state."""

    rule: StoredRule
    ctx: TriggerContext
    due: float


@dataclass
class Decisions:
    """What one trigger led to: runs to start now, runs scheduled for a re-check, and waiting runs it cancelled."""

    run: list[tuple[StoredRule, TriggerContext]] = field(default_factory=list)
    scheduled: list[Pending] = field(default_factory=list)
    cancelled: list[tuple[Pending, str]] = field(default_factory=list)
    skipped: list[tuple[StoredRule, TriggerContext, str]] = field(default_factory=list)
    """Rules that matched a late trigger (:meth:`RuleEngine.on_trigger` with ``late``): recorded, never run."""


class RuleEngine:
    """Matches triggers against the enabled rules and keeps the runs that wait for ``min_time_in_state_s``.

    Not thread-safe: the runtime calls it under one lock. Every state a device enters (``ad``, ``program``,
    ``offline``, and ``online`` through :meth:`observe`) cancels the device's waiting runs of another state;
    :meth:`take_due` hands back those whose time has come.
    """

    def __init__(self, tz: tzinfo | None = None, clock: Callable[[], float] = time.time) -> None:
        self.tz = tz
        self.clock = clock
        self._rules: dict[int, StoredRule] = {}
        self._pending: list[Pending] = []
        self._state: dict[str, tuple[str, float]] = {}  # device -> (state, since)

    # ------------------------------------------------------------------ rules
    def set_rules(self, rules: Iterable[StoredRule]) -> list[tuple[Pending, str]]:
        """Replace the rules; waiting runs of a rule that is gone, disabled or changed are cancelled (returned)."""
        self._rules = {r.id: r for r in rules}
        cancelled, kept = [], []
        for p in self._pending:
            if self.is_current(p.rule):
                kept.append(p)
            else:
                cancelled.append((p, "the rule was changed, disabled or deleted before the re-check"))
        self._pending = kept
        return cancelled

    @property
    def rules(self) -> list[StoredRule]:
        return sorted(self._rules.values(), key=lambda r: r.id)

    def is_current(self, rule: StoredRule) -> bool:
        """Whether ``rule`` is still this version of an enabled rule."""
        now = self._rules.get(rule.id)
        return now is not None and now.updated == rule.updated and now.spec == rule.spec and now.spec.enabled

    # ------------------------------------------------------------------ triggers
    def observe(self, device: str, state: str, ts: float) -> list[tuple[Pending, str]]:
        """The device is now in ``state`` (ad, program, offline, online): cancel its waiting runs of another state."""
        previous = self._state.get(device)
        if previous is None or previous[0] != state:
            self._state[device] = (state, ts)
        cancelled, kept = [], []
        for p in self._pending:
            if p.ctx.device == device and STATE_OF[p.ctx.trigger] != state:
                needed = p.rule.spec.conditions.min_time_in_state_s
                reason = (f"{device} left the {STATE_OF[p.ctx.trigger]} state ({state}) after "
                          f"{max(ts - p.ctx.ts, 0.0):.1f} s; the rule needs {needed:g} s")
                cancelled.append((p, reason))
            else:
                kept.append(p)
        self._pending = kept
        return cancelled

    def on_trigger(self, ctx: TriggerContext, *, late: str | None = None) -> Decisions:
        """A device entered a state: which rules run now, which wait for their re-check, which waits are over.

        ``late`` (why, e.g. "late by 42 s"): the trigger happened a while ago (a backlog after a restart or an
        outage). The device's state is still followed, but the rules that match it are only reported as skipped:
        acting on old news would mute, notify or switch at a random later time."""
        state = STATE_OF[ctx.trigger]
        previous = self._state.get(ctx.device)
        out = Decisions(cancelled=self.observe(ctx.device, state, ctx.ts))
        if ctx.trigger == "offline" and previous is not None and previous[0] == "offline":
            return out  # offline then stopped (or a repeated will): one offline
        for rule in self.rules:
            spec = rule.spec
            if not spec.enabled or spec.trigger != ctx.trigger:
                continue
            if unmet_condition(spec.conditions, ctx, self.tz) is not None:
                continue
            wait = spec.conditions.min_time_in_state_s
            if late is not None:
                out.skipped.append((rule, ctx, late))
            elif wait > 0:
                p = Pending(rule, ctx, ctx.ts + wait)
                self._pending.append(p)
                out.scheduled.append(p)
            else:
                out.run.append((rule, ctx))
        return out

    def take_due(self, now: float | None = None) -> list[Pending]:
        """Waiting runs whose time has come (the device stayed in the state): removed and returned, oldest first."""
        now = self.clock() if now is None else now
        due = sorted((p for p in self._pending if p.due <= now), key=lambda p: p.due)
        if due:
            self._pending = [p for p in self._pending if p.due > now]
        return due

    def next_due(self) -> float | None:
        return min((p.due for p in self._pending), default=None)

    @property
    def pending(self) -> list[Pending]:
        return list(self._pending)


# ---------------------------------------------------------------------------------------------------- a run
Publish = Callable[[str, str, int, bool], bool]
"""``publish(topic, payload, qos, retain)``: True once handed to the broker."""
Http = Callable[[str, str, str, dict[str, str], float], tuple[int, str]]
"""``http(method, url, body, headers, timeout_s)``: ``(status, the start of the answer)``; raises on no answer."""


def _request_headers(headers: dict[str, str], body: str) -> dict[str, str]:
    out = dict(headers)
    if body and not any(k.lower() == "content-type" for k in out):
        try:
            json.loads(body)
            out["Content-Type"] = "application/json"
        except ValueError:
            out["Content-Type"] = "text/plain; charset=utf-8"
    return out


class Run:
    """One run of a rule's actions for one trigger (or a test). Call :meth:`step` until it returns None; a number is
    the seconds of a ``delay`` to wait before the next call. :meth:`record` is what goes into ``rule_runs``."""

    def __init__(self, rule: StoredRule, ctx: TriggerContext, *, tz: tzinfo | None = None,
                 prefix: str = DEFAULT_PREFIX, test: bool = False, clock: Callable[[], float] = time.time) -> None:
        self.rule = rule
        self.ctx = ctx
        self.test = test
        self.prefix = prefix
        self.clock = clock
        self.ts = clock()
        self.variables = variables(ctx, rule.spec.name, tz)
        self.results: list[dict] = []
        self.next = 0
        self.status: str | None = None  # None while running; ok / failed / skipped

    @property
    def done(self) -> bool:
        return self.status is not None

    def step(self, publish: Publish, http: Http) -> float | None:
        """Do the actions from the next one on, until a delay (its seconds are returned) or the end (None)."""
        actions = self.rule.spec.actions
        while self.next < len(actions) and self.status is None:
            action = actions[self.next]
            self.next += 1
            if isinstance(action, DelayAction):
                self.results.append({"type": "delay", "seconds": action.seconds, "result": "ok", "at": self.clock()})
                return action.seconds
            entry = self._do(action, publish, http)
            self.results.append(entry)
            if entry["result"] != "ok":
                self._finish("failed", "an earlier action failed")
        if self.status is None:
            self._finish("ok", "")
        return None

    def _do(self, action: MqttAction | WebhookAction, publish: Publish, http: Http) -> dict:
        at = self.clock()
        if isinstance(action, MqttAction):
            entry: dict[str, Any] = {"type": "mqtt", "topic": action.topic, "qos": action.qos, "retain": action.retain}
            try:
                entry["topic"] = _check_topic(render(action.topic, self.variables), self.prefix)
                entry["payload"] = render(action.payload, self.variables)
            except (TemplateFailure, ValueError) as exc:
                return {**entry, "result": "failed", "error": f"{exc}", "at": at}
            try:
                sent = publish(entry["topic"], entry["payload"], action.qos, action.retain)
            except Exception as exc:
                return {**entry, "result": "failed", "error": f"publish failed: {_one_line(exc)}", "at": at}
            if not sent:
                return {**entry, "result": "failed", "error": "not handed to the broker (not connected?)", "at": at}
            return {**entry, "result": "ok", "at": at}
        entry = {"type": "webhook", "method": action.method, "url": action.url}
        try:
            body = render(action.body, self.variables)
        except TemplateFailure as exc:
            return {**entry, "result": "failed", "error": str(exc), "at": at}
        entry["body"] = body
        try:
            status, answer = http(action.method, action.url, body, _request_headers(action.headers, body),
                                  WEBHOOK_TIMEOUT_S)
        except Exception as exc:
            return {**entry, "result": "failed", "error": _one_line(f"{type(exc).__name__}: {exc}")[:300], "at": at}
        entry["status"] = status
        if 200 <= status < 300:
            return {**entry, "result": "ok", "at": at}
        return {**entry, "result": "failed", "error": f"HTTP {status}: {_one_line(answer)[:200]}", "at": at}

    def _finish(self, status: str, why_not_run: str) -> None:
        self.status = status
        for action in self.rule.spec.actions[len(self.results):]:
            entry: dict[str, Any] = {"type": action.type, "result": "not run"}
            if why_not_run:
                entry["note"] = why_not_run
            self.results.append(entry)

    def stop(self, reason: str) -> None:
        """End the run before its next action (the rule changed, the server stops): ``skipped`` unless something
        already failed."""
        if self.status is None:
            self._finish("skipped", reason)

    def record(self) -> dict:
        """The ``rule_runs`` row (device by name; ``detail`` as JSON text of at most :data:`MAX_DETAIL_CHARS`)."""
        return {
            "rule_id": self.rule.id,
            "rule_name": self.rule.spec.name,
            "device": self.ctx.device,
            "trigger": self.ctx.trigger,
            "ts": self.ts,
            "test": self.test,
            "status": self.status or "skipped",
            "detail": detail_json(self.results),
            "event_id": self.ctx.event_id,
        }


def skipped_run(rule: StoredRule, ctx: TriggerContext, reason: str, *, tz: tzinfo | None = None,
                clock: Callable[[], float] = time.time) -> Run:
    """A run that never started (its re-check was cancelled): status ``skipped``, every action ``not run``."""
    run = Run(rule, ctx, tz=tz, clock=clock)
    run.stop(reason)
    return run


def detail_json(results: list[dict]) -> str:
    """``results`` as JSON text of at most :data:`MAX_DETAIL_CHARS`: long strings are cut (marked with …)."""
    for cut in (1000, 300, 80, 20):
        text = json.dumps(_cut(results, cut), separators=(",", ":"), allow_nan=False, default=str)
        if len(text) <= MAX_DETAIL_CHARS:
            return text
    return json.dumps([{"type": r.get("type"), "result": r.get("result")} for r in results], separators=(",", ":"))


def _cut(value: Any, n: int) -> Any:
    if isinstance(value, str) and len(value) > n:
        return value[:n] + "…"
    if isinstance(value, dict):
        return {k: _cut(v, n) for k, v in value.items()}
    if isinstance(value, list):
        return [_cut(v, n) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
