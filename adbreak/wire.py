"""The wire contract between the edge agent and the server: MQTT topics and payloads, in one place.

Both sides import this module; nothing else builds a topic string or parses a payload. Conventions follow Frigate and
Home Assistant (see ``docs/mqtt.md``):

* ``<prefix>/<device>/available``: plain text ``online`` (retained, on every connect), ``offline`` (the retained QoS-1
  last will) or ``stopped`` (retained, on a clean exit).
* ``<prefix>/<device>/state``: :class:`StatePayload`, retained, QoS 1, published on every change of state.
* ``<prefix>/<device>/event``: :class:`EventPayload`, QoS 1, never retained: ``ad_start`` / ``ad_end``.
* ``<prefix>/<device>/telemetry``: :class:`TelemetryPayload`, QoS 0, about once a second.
* ``<prefix>/<device>/mute/set``: the auto-mute command (payload ``ON`` / ``OFF`` by default; both configurable),
  QoS 1, never retained; an edge actuator may subscribe to it.

Every JSON payload carries ``v`` (:data:`SCHEMA_VERSION`); a payload of another version, a malformed or oversized
one, or one whose ``device`` disagrees with its topic is refused with a :class:`WireError` whose ``reason`` is one
of :data:`REJECT_REASONS` (the server counts rejections by reason). Times are Unix epoch seconds (UTC, float) for
wall-clock instants (``*_ts``) and seconds of the source's own timeline for stream instants (``*_stream_t``).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

SCHEMA_VERSION = 1
MAX_PAYLOAD_BYTES = 16 * 1024
DEFAULT_PREFIX = "adbreak"
DEVICE_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_PREFIX_RE = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")

REJECT_REASONS = (
    "too_large",  # payload over MAX_PAYLOAD_BYTES
    "bad_json",  # not UTF-8 JSON, or not a JSON object
    "bad_version",  # "v" missing or not SCHEMA_VERSION
    "bad_payload",  # fields missing, wrongly typed, out of range, or unknown
    "bad_topic",  # a topic under the prefix that is not part of the contract, or a bad device name
    "device_mismatch",  # payload "device" differs from the topic's device
    "unknown_device",  # (server) an event from a device that never announced itself
    "duplicate",  # (server) an event id already stored: ignored, idempotent
    "out_of_order",  # (server) a sequence number at or below the last one applied for the device
)

Device = Annotated[str, Field(pattern=DEVICE_RE.pattern)]
Probability = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Seconds = Annotated[float, Field(allow_inf_nan=False)]


class WireError(ValueError):
    """A payload or topic the contract refuses; ``reason`` is one of :data:`REJECT_REASONS`."""

    def __init__(self, reason: str, message: str) -> None:
        assert reason in REJECT_REASONS, reason
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class Availability(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"
    STOPPED = "stopped"


class EventType(StrEnum):
    AD_START = "ad_start"
    AD_END = "ad_end"


class Kind(StrEnum):
    """The per-device topics of the contract (the last topic level(s))."""

    AVAILABLE = "available"
    STATE = "state"
    EVENT = "event"
    TELEMETRY = "telemetry"
    MUTE = "mute/set"


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_max_length=256)

    v: Literal[1] = SCHEMA_VERSION
    device: Device

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode("utf-8")


class StatePayload(_Payload):
    """Retained current state of a device."""

    label: Literal["program", "ad"]
    since_ts: Seconds
    """Wall time of the current state's estimated boundary."""
    since_stream_t: Seconds
    confidence: Probability
    model_version: str
    ts: Seconds
    """Wall time this state was published."""


class EventPayload(_Payload):
    """One decided transition. ``event_id`` is unique; ``seq`` counts up by one per device across restarts."""

    event_id: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
    seq: Annotated[int, Field(ge=1, le=2**53)]
    type: EventType
    boundary_ts: Seconds
    """Estimated true boundary, back-dated to where the evidence began (wall time)."""
    decided_ts: Seconds
    """Wall time the decision was made."""
    boundary_stream_t: Seconds
    decided_stream_t: Seconds
    confidence: Probability
    model_version: str

    @field_validator("decided_ts")
    @classmethod
    def _decided_after_boundary(cls, v: float, info) -> float:
        b = info.data.get("boundary_ts")
        if b is not None and v + 1e-6 < b:
            raise ValueError("decided_ts is before boundary_ts")
        return v

    @property
    def label(self) -> Literal["program", "ad"]:
        """The label this event starts."""
        return "ad" if self.type is EventType.AD_START else "program"


class TelemetryPayload(_Payload):
    """About once a second: what the detector sees now."""

    ts: Seconds
    stream_t: Seconds
    p_ad: Probability
    """Raw per-frame probability of the latest frame."""
    smoothed: Probability
    label: Literal["program", "ad"] | None
    fps: Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
    """Frames analysed per second over the last interval."""
    latency_ms: Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
    """Median per-frame processing latency over the last interval."""
    dropped: Annotated[int, Field(ge=0)] = 0
    """Frames dropped by the bounded queue since start (inference fell behind)."""


def new_event_id() -> str:
    return uuid.uuid4().hex


def now() -> float:
    return time.time()


def check_device(name: str) -> str:
    if not isinstance(name, str) or not DEVICE_RE.match(name):
        raise WireError("bad_topic", f"device name {name!r} must match {DEVICE_RE.pattern}")
    return name


@dataclass(frozen=True)
class Topics:
    """Every topic string of the contract, built from one prefix."""

    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        if not _PREFIX_RE.match(self.prefix):
            raise ValueError(f"MQTT prefix {self.prefix!r} must be topic levels of letters, digits, '-' or '_'")

    def topic(self, device: str, kind: Kind) -> str:
        return f"{self.prefix}/{check_device(device)}/{kind.value}"

    def available(self, device: str) -> str:
        return self.topic(device, Kind.AVAILABLE)

    def state(self, device: str) -> str:
        return self.topic(device, Kind.STATE)

    def event(self, device: str) -> str:
        return self.topic(device, Kind.EVENT)

    def telemetry(self, device: str) -> str:
        return self.topic(device, Kind.TELEMETRY)

    def mute(self, device: str) -> str:
        return self.topic(device, Kind.MUTE)

    def wildcard(self, kind: Kind) -> str:
        """Subscription filter for one kind on every device, e.g. ``adbreak/+/event``."""
        return f"{self.prefix}/+/{kind.value}"

    def parse(self, topic: str) -> tuple[str, Kind]:
        """``(device, kind)`` of a contract topic; :class:`WireError` ``bad_topic`` otherwise."""
        head = self.prefix + "/"
        if not topic.startswith(head):
            raise WireError("bad_topic", f"topic {topic!r} is not under {self.prefix!r}")
        device, _, rest = topic[len(head):].partition("/")
        try:
            kind = Kind(rest)
        except ValueError:
            raise WireError("bad_topic", f"topic {topic!r}: unknown kind {rest!r}") from None
        return check_device(device), kind


def _load(raw: bytes | str) -> dict:
    if isinstance(raw, str):
        raw = raw.encode("utf-8")
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise WireError("too_large", f"payload of {len(raw)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise WireError("bad_json", f"not UTF-8 JSON ({e.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise WireError("bad_json", f"expected a JSON object, got {type(data).__name__}")
    if data.get("v") != SCHEMA_VERSION or isinstance(data.get("v"), bool):
        raise WireError("bad_version", f"schema version {data.get('v')!r} is not {SCHEMA_VERSION}")
    return data


def _parse(model: type[_Payload], raw: bytes | str, device: str | None) -> _Payload:
    data = _load(raw)
    try:
        payload = model.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "payload"
        raise WireError("bad_payload", f"{model.__name__}.{where}: {first.get('msg')}") from None
    if device is not None and payload.device != device:
        raise WireError("device_mismatch", f"payload device {payload.device!r} on a topic of {device!r}")
    return payload


def parse_event(raw: bytes | str, device: str | None = None) -> EventPayload:
    return _parse(EventPayload, raw, device)  # type: ignore[return-value]


def parse_state(raw: bytes | str, device: str | None = None) -> StatePayload:
    return _parse(StatePayload, raw, device)  # type: ignore[return-value]


def parse_telemetry(raw: bytes | str, device: str | None = None) -> TelemetryPayload:
    return _parse(TelemetryPayload, raw, device)  # type: ignore[return-value]


def parse_availability(raw: bytes | str) -> Availability:
    if isinstance(raw, bytes):
        if len(raw) > 64:
            raise WireError("too_large", f"availability payload of {len(raw)} bytes")
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise WireError("bad_payload", "availability is not UTF-8") from None
    try:
        return Availability(raw.strip())
    except ValueError:
        raise WireError("bad_payload", f"availability {raw[:40]!r} is not online/offline/stopped") from None
