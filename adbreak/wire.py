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
* ``<prefix>/<device>/keyframe``: :class:`KeyframePayload`, a small JPEG (base64) at a segment's start, middle or end,
  or a sample for retraining; QoS 1, never retained; its own size limit (:data:`MAX_KEYFRAME_BYTES`).
* ``<prefix>/<device>/settings/set``: :class:`SettingsSetPayload`, the decision settings the server wants the device
  to run (QoS 1, never retained); ``<prefix>/<device>/settings/state``: :class:`SettingsStatePayload`, what the
  device runs now and its defaults (retained, QoS 1): Frigate's ``/set`` mirrored to a retained ``/state``.

Every JSON payload carries ``v`` (:data:`SCHEMA_VERSION`); a payload of another version, a malformed or oversized
one, or one whose ``device`` disagrees with its topic is refused with a :class:`WireError` whose ``reason`` is one
of :data:`REJECT_REASONS` (the server counts rejections by reason). Times are Unix epoch seconds (UTC, float) for
wall-clock instants (``*_ts``) and seconds of the source's own timeline for stream instants (``*_stream_t``).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

SCHEMA_VERSION = 1
MAX_PAYLOAD_BYTES = 16 * 1024
MAX_KEYFRAME_BYTES = 96 * 1024
"""Size limit of a keyframe message (the JPEG in base64 and its fields); every other JSON payload has
:data:`MAX_PAYLOAD_BYTES`."""
MAX_KEYFRAME_SIDE = 4096
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

SETTINGS_FIELDS = ("smoothing", "window_s", "ema_tau_s", "enter_threshold", "exit_threshold", "min_ad_s",
                   "min_program_s")
"""The decision settings a device can be told over ``settings/set`` (fields of ``edge.decision.DecisionConfig``)."""

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
    """The per-device topics of the contract: what follows ``<prefix>/<device>/``, one level (``state``) or two
    (``mute/set``, ``settings/set``, ``settings/state``). :meth:`Topics.parse` matches the whole rest of the topic,
    so ``settings`` alone or ``settings/set/x`` is no kind."""

    AVAILABLE = "available"
    STATE = "state"
    EVENT = "event"
    TELEMETRY = "telemetry"
    MUTE = "mute/set"
    KEYFRAME = "keyframe"
    SETTINGS_SET = "settings/set"
    SETTINGS_STATE = "settings/state"

    @property
    def max_bytes(self) -> int:
        """The size limit of this kind's payload."""
        return MAX_KEYFRAME_BYTES if self is Kind.KEYFRAME else MAX_PAYLOAD_BYTES


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


# ---------------------------------------------------------------------------------------------------- keyframes
KeyframeKind = Literal["start", "middle", "end", "sample"]
_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xD8)})


def jpeg_size(data: bytes) -> tuple[int, int]:
    """``(width, height)`` from a JPEG's frame header (SOFn), walking its marker segments; ``ValueError`` when the
    bytes are not a JPEG (no SOI, a broken segment, no frame header before the scan)."""
    if len(data) < 4 or data[0] != 0xFF or data[1] != 0xD8:
        raise ValueError("not a JPEG (no SOI marker)")
    i = 2
    n = len(data)
    while i < n:
        if data[i] != 0xFF:
            raise ValueError(f"not a JPEG (no marker at byte {i})")
        while i < n and data[i] == 0xFF:  # fill bytes
            i += 1
        if i >= n:
            break
        marker = data[i]
        i += 1
        if marker in _STANDALONE_MARKERS:
            continue
        if marker in (0xD9, 0xDA):  # EOI, or the scan began before any frame header
            break
        if i + 2 > n:
            break
        length = int.from_bytes(data[i:i + 2], "big")
        if length < 2 or i + length > n:
            raise ValueError(f"not a JPEG (segment 0x{marker:02X} of {length} bytes runs past the end)")
        if marker in _SOF_MARKERS:
            if length < 7:
                raise ValueError("not a JPEG (frame header too short)")
            height = int.from_bytes(data[i + 3:i + 5], "big")
            width = int.from_bytes(data[i + 5:i + 7], "big")
            if width == 0 or height == 0:
                raise ValueError(f"JPEG frame header gives a size of {width}x{height}")
            return width, height
        i += length
    raise ValueError("not a JPEG (no frame header)")


class KeyframePayload(_Payload):
    """One small JPEG from the edge: at a segment's ``start`` / ``middle`` / ``end``, or a ``sample`` for retraining
    (around a boundary, or during a low-confidence stretch). ``width`` / ``height`` must be the JPEG's own."""

    frame_id: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
    ts: Seconds
    """Wall time of the frame."""
    stream_t: Seconds
    kind: KeyframeKind
    reason: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")] | None = None
    """Why a sample was taken: ``boundary`` (around a decided change), ``low_confidence``; null for the others."""
    p_ad: Probability | None = None
    """The frame's own (raw) probability of an ad."""
    label: Literal["program", "ad"] | None = None
    """The decided label of the segment the frame belongs to, as known when it was sent."""
    model_version: str
    width: Annotated[int, Field(ge=1, le=MAX_KEYFRAME_SIDE)]
    height: Annotated[int, Field(ge=1, le=MAX_KEYFRAME_SIDE)]
    jpeg: Annotated[str, Field(min_length=4, max_length=MAX_KEYFRAME_BYTES)]
    """The JPEG file, base64 (RFC 4648, with padding)."""

    _data: bytes = PrivateAttr(default=b"")

    @model_validator(mode="after")
    def _check_jpeg(self) -> KeyframePayload:
        try:
            data = base64.b64decode(self.jpeg, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("jpeg is not base64") from None
        size = jpeg_size(data)  # ValueError: not a JPEG
        if size != (self.width, self.height):
            raise ValueError(f"width x height {self.width}x{self.height} differ from the JPEG's {size[0]}x{size[1]}")
        self._data = data
        return self

    @property
    def data(self) -> bytes:
        """The JPEG bytes (decoded from :attr:`jpeg`)."""
        return self._data

    @classmethod
    def build(cls, *, jpeg_bytes: bytes, **fields: object) -> KeyframePayload:
        """A payload from the raw JPEG (base64-encoded here)."""
        return cls(jpeg=base64.b64encode(jpeg_bytes).decode("ascii"), **fields)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------- settings
Threshold = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Duration = Annotated[float, Field(ge=0.0, le=3600.0, allow_inf_nan=False)]


class DecisionSettings(BaseModel):
    """Every decision setting a device runs (the :data:`SETTINGS_FIELDS`); each in range on its own. Whether they
    fit together (``enter_threshold > exit_threshold``, the smoothing within the look-back) is the device's
    ``DecisionConfig`` to check."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    smoothing: Literal["window", "ema"]
    window_s: Duration
    ema_tau_s: Duration
    enter_threshold: Threshold
    exit_threshold: Threshold
    min_ad_s: Duration
    min_program_s: Duration


class SettingsChanges(BaseModel):
    """Changes to a device's decision settings (``edge.decision.DecisionConfig`` fields): a value replaces one,
    ``null`` returns it to the device's default. The body of ``PUT /api/v1/devices/<name>/settings`` and the
    settings part of :class:`SettingsSetPayload`."""

    model_config = ConfigDict(extra="forbid")

    smoothing: Literal["window", "ema"] | None = None
    window_s: Duration | None = None
    ema_tau_s: Duration | None = None
    enter_threshold: Threshold | None = None
    exit_threshold: Threshold | None = None
    min_ad_s: Duration | None = None
    min_program_s: Duration | None = None


class SettingsSetPayload(SettingsChanges, _Payload):
    """``settings/set``: decision settings for the device to run. A field left out stays as the device runs it; a
    value replaces it; ``null`` returns it to the device's default. The server always sends every field."""

    def changes(self) -> dict[str, object]:
        """The fields given (``None`` = back to the default)."""
        return {k: getattr(self, k) for k in SETTINGS_FIELDS if k in self.model_fields_set}

    def to_bytes(self) -> bytes:
        """Only the fields given (a field left out means "unchanged", not "default")."""
        keep = {"v", "device", *(k for k in SETTINGS_FIELDS if k in self.model_fields_set)}
        return self.model_dump_json(include=keep).encode("utf-8")


class SettingsStatePayload(_Payload):
    """``settings/state`` (retained): the decision settings the device runs now, its defaults (the model bundle's,
    with the device's own configuration applied: what ``null`` returns a field to), which fields the server set
    (``overrides``), and the last ``settings/set`` it refused and why."""

    settings: DecisionSettings
    defaults: DecisionSettings
    overrides: dict[Literal["smoothing", "window_s", "ema_tau_s", "enter_threshold", "exit_threshold", "min_ad_s",
                            "min_program_s"], str | float] = Field(default_factory=dict)
    error: Annotated[str, Field(max_length=512)] | None = None
    rejected: Annotated[int, Field(ge=0)] = 0
    """``settings/set`` messages refused since the agent started."""
    ts: Seconds


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

    def keyframe(self, device: str) -> str:
        return self.topic(device, Kind.KEYFRAME)

    def settings_set(self, device: str) -> str:
        return self.topic(device, Kind.SETTINGS_SET)

    def settings_state(self, device: str) -> str:
        return self.topic(device, Kind.SETTINGS_STATE)

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


def _load(raw: bytes | str, max_bytes: int = MAX_PAYLOAD_BYTES) -> dict:
    if isinstance(raw, str):
        raw = raw.encode("utf-8")
    if len(raw) > max_bytes:
        raise WireError("too_large", f"payload of {len(raw)} bytes exceeds {max_bytes}")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise WireError("bad_json", f"not UTF-8 JSON ({e.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise WireError("bad_json", f"expected a JSON object, got {type(data).__name__}")
    if data.get("v") != SCHEMA_VERSION or isinstance(data.get("v"), bool):
        raise WireError("bad_version", f"schema version {data.get('v')!r} is not {SCHEMA_VERSION}")
    return data


def _parse(model: type[_Payload], raw: bytes | str, device: str | None,
           max_bytes: int = MAX_PAYLOAD_BYTES) -> _Payload:
    data = _load(raw, max_bytes)
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


def parse_keyframe(raw: bytes | str, device: str | None = None) -> KeyframePayload:
    """A keyframe, JPEG checked (base64, a JPEG frame header, its size equal to ``width`` x ``height``)."""
    return _parse(KeyframePayload, raw, device, MAX_KEYFRAME_BYTES)  # type: ignore[return-value]


def parse_settings_set(raw: bytes | str, device: str | None = None) -> SettingsSetPayload:
    return _parse(SettingsSetPayload, raw, device)  # type: ignore[return-value]


def parse_settings_state(raw: bytes | str, device: str | None = None) -> SettingsStatePayload:
    return _parse(SettingsStatePayload, raw, device)  # type: ignore[return-value]


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
