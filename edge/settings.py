"""Settings of the edge agent (``adbreak edge``): one validated model, read from a TOML file, the environment and the
command line, in that order of precedence (the command line wins).

Environment variables are the field names in upper case with the prefix ``ADBREAK_EDGE_`` (``ADBREAK_EDGE_DEVICE``,
``ADBREAK_EDGE_MQTT_HOST``, ``ADBREAK_EDGE_DECISION='{"min_ad_s": 8}'``). The TOML file holds the same names as
keys, at top level or under an ``[edge]`` table (so one file can also hold other components' tables). Unknown keys
are errors, not silently ignored settings. See ``docs/edge.md`` for every setting.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import fields
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict

from adbreak.errors import AdbreakError
from adbreak.mqtt_security import TlsOptions
from adbreak.wire import DEFAULT_PREFIX, DEVICE_RE, Topics
from edge.decision import DecisionConfig

ENV_PREFIX = "ADBREAK_EDGE_"
DEFAULT_MUTE_TOPIC = "{prefix}/{device}/mute/set"


def default_state_dir() -> Path:
    """``$XDG_STATE_HOME/adbreak`` (default ``~/.local/state/adbreak``)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "adbreak"


class ActuatorKind(StrEnum):
    NONE = "none"
    CEC = "cec"
    LIRC = "lirc"
    COMMAND = "command"


class EdgeSettings(BaseSettings):
    """Everything ``adbreak edge`` can be told."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", validate_default=True)

    # -- what to watch, with what
    device: Annotated[str, Field(pattern=DEVICE_RE.pattern)] = Field(
        title="Device name",
        description="This device's name in every topic and payload: lower-case letters, digits, '-' or '_', "
        "up to 64 characters, starting with a letter or digit (adbreak.wire.DEVICE_RE).",
    )
    source: str = Field(
        title="Frame source",
        description="picamera2, a V4L2 device (/dev/video0), a video file, an RTSP/HTTP URL, or an image folder.",
    )
    model: Path | None = Field(
        default=None, title="Model bundle",
        description="The model bundle directory or .tar.gz/.zip archive; without one the agent decides on the "
        "broadcast cues alone (zero labels).",
    )
    fps: float | None = Field(
        default=None, gt=0, allow_inf_nan=False, title="Analysis rate",
        description="Frames analysed per second of stream time (default: the bundle's).",
    )
    crop: str | None = Field(
        default=None, title="Crop", description="x,y,width,height: analyse only this rectangle (default: the bundle's "
        "geometry).",
    )
    corners: str | None = Field(
        default=None, title="Screen corners", description="x1,y1,...,x4,y4: the TV screen's corners TL,TR,BR,BL in "
        "the camera frame, warped to a frontal view (default: the bundle's geometry).",
    )
    decision: dict[str, Any] = Field(
        default_factory=dict, title="Decision overrides",
        description="Temporal-decision settings that replace the bundle's (keys of edge.decision.DecisionConfig, "
        "e.g. min_ad_s); see docs/decision.md.",
    )
    decider: Literal["fusion", "smoothing"] = Field(
        default="fusion", title="Decider",
        description="fusion: every broadcast cue and the head's p(ad) decided together with duration priors; "
        "smoothing: the p(ad) smoothing state machine alone (needs a model). See docs/decision.md.",
    )
    fusion: dict[str, Any] = Field(
        default_factory=dict, title="Fusion overrides",
        description="Fusion settings that replace the bundle's (keys of edge.fusion.FusionConfig, e.g. "
        "min_break_s); see docs/decision.md.",
    )

    # -- MQTT
    mqtt_host: str = Field(default="127.0.0.1", min_length=1, title="MQTT host", description="Broker host name or "
                           "address.")
    mqtt_port: int = Field(default=1883, ge=1, le=65535, title="MQTT port", description="Broker TCP port.")
    mqtt_username: str | None = Field(default=None, title="MQTT user", description="Broker user name, if any.")
    mqtt_password: SecretStr | None = Field(default=None, title="MQTT password", description="Broker password.")
    mqtt_prefix: str = Field(
        default=DEFAULT_PREFIX, title="Topic prefix",
        description="First topic level(s) of every topic: <prefix>/<device>/... (letters, digits, '-', '_', '/').",
    )
    keepalive_s: int = Field(
        default=2, ge=1, le=65535, title="MQTT keepalive",
        description="Seconds between pings when idle. The broker declares the client gone, and publishes its "
        "retained 'offline' will, after 1.5 x keepalive without a packet: ~3 s with the default (Mosquitto 2.0 "
        "may take a few seconds more).",
    )
    mqtt_tls: bool = Field(default=False, title="MQTT over TLS",
                           description="Connect to the broker with TLS (usually port 8883).")
    mqtt_ca_file: Path | None = Field(default=None, title="MQTT CA file",
                                      description="CA certificate(s) to verify the broker; unset: the system's.")
    mqtt_cert_file: Path | None = Field(default=None, title="MQTT client certificate",
                                        description="Client certificate for brokers that require one.")
    mqtt_key_file: Path | None = Field(default=None, title="MQTT client key",
                                       description="Private key of the client certificate.")
    mqtt_tls_insecure: bool = Field(default=False, title="Skip MQTT host name check",
                                    description="Do not check the broker certificate's host name (testing only).")

    # -- capture and replay
    queue_size: int = Field(
        default=8, ge=1, le=10_000, title="Frame queue",
        description="Frames waiting between capture and inference; when full the oldest is dropped (and counted).",
    )
    realtime: bool = Field(
        default=True, title="Real-time replay",
        description="Pace a video file or image folder at its own speed (times 'speed'), as if it were live. Off: "
        "read it as fast as it decodes, every frame analysed. Cameras and streams are always real time.",
    )
    speed: float = Field(
        default=1.0, gt=0, le=1000, allow_inf_nan=False, title="Replay speed",
        description="Replay speed factor of a paced file (2 = twice real time).",
    )
    loop: bool = Field(
        default=False, title="Loop", description="Replay a file forever; stream time keeps counting up across loops.",
    )
    duration_s: float | None = Field(
        default=None, gt=0, allow_inf_nan=False, title="Duration",
        description="Stop after this many seconds of stream time (default: at the end of the source).",
    )
    telemetry_interval_s: float = Field(
        default=1.0, gt=0, allow_inf_nan=False, title="Telemetry interval",
        description="Wall seconds between telemetry messages.",
    )
    state_dir: Path = Field(
        default_factory=default_state_dir, title="State folder",
        description="Where the per-device event sequence counter is kept (written atomically), so 'seq' keeps "
        "counting up across restarts. Default $XDG_STATE_HOME/adbreak (~/.local/state/adbreak).",
    )
    keyframes: bool = Field(
        default=True, title="Keyframes",
        description="Send small JPEGs (384 px wide) of each segment's start, middle and end, and samples around "
        "boundaries and low-confidence stretches, to the server (<prefix>/<device>/keyframe). Off: no pictures "
        "leave the device.",
    )

    # -- the mute actuator
    actuator: ActuatorKind = Field(
        default=ActuatorKind.NONE, title="Mute actuator",
        description="What to do with the mute command topic: none, cec (HDMI-CEC via cec-client), lirc (irsend), "
        "or command (actuator_command_on/off).",
    )
    actuator_command_on: str | None = Field(
        default=None, title="Mute command", description="actuator=command: shell command run on mute ON.",
    )
    actuator_command_off: str | None = Field(
        default=None, title="Unmute command", description="actuator=command: shell command run on mute OFF.",
    )
    actuator_timeout_s: float = Field(
        default=10.0, gt=0, allow_inf_nan=False, title="Actuator timeout",
        description="Seconds an actuator command may run before it is killed (and the failure logged).",
    )
    cec_client: str = Field(default="cec-client", min_length=1, title="cec-client",
                            description="actuator=cec: the cec-client program (Debian package cec-utils).")
    cec_address: int = Field(
        default=0, ge=0, le=14, title="CEC target",
        description="actuator=cec: logical address of the device that mutes (0 = TV, 5 = audio system).",
    )
    cec_mode: Literal["explicit", "toggle"] = Field(
        default="explicit", title="CEC mute style",
        description="actuator=cec: 'explicit' sends the user-control codes Mute Function (0x65) / Restore Volume "
        "Function (0x66), which set a state; 'toggle' sends cec-client's 'mute' (a toggle to the audio system) "
        "only when the wanted state changes.",
    )
    lirc_remote: str | None = Field(
        default=None, title="LIRC remote", description="actuator=lirc: the remote's name in the lircd configuration.",
    )
    lirc_key: str = Field(default="KEY_MUTE", min_length=1, title="LIRC key",
                          description="actuator=lirc: the key sent (a toggle on almost every TV).")
    mute_topic: str = Field(
        default=DEFAULT_MUTE_TOPIC, title="Mute topic",
        description="Topic of the mute command; {prefix} and {device} are filled in.",
    )
    mute_payload_on: str = Field(default="ON", min_length=1, title="Mute payload", description="Payload that mutes.")
    mute_payload_off: str = Field(default="OFF", min_length=1, title="Unmute payload",
                                  description="Payload that unmutes.")

    @field_validator("mqtt_prefix")
    @classmethod
    def _check_prefix(cls, v: str) -> str:
        Topics(v)  # raises ValueError with a readable message
        return v

    @field_validator("decision")
    @classmethod
    def _check_decision(cls, v: dict[str, Any]) -> dict[str, Any]:
        known = [f.name for f in fields(DecisionConfig)]
        unknown = sorted(str(k) for k in v if k not in known)
        if unknown:
            raise ValueError(f"unknown decision setting(s) {', '.join(unknown)}; known: {', '.join(known)}")
        DecisionConfig.from_dict(v)  # every value valid on its own (against the built-in defaults)
        return v

    @field_validator("fusion")
    @classmethod
    def _check_fusion(cls, v: dict[str, Any]) -> dict[str, Any]:
        from edge.fusion import FusionConfig

        FusionConfig.from_dict(v)  # unknown keys and bad values raise ValueError with the names
        return v

    @model_validator(mode="after")
    def _check_decider(self) -> EdgeSettings:
        if self.decider == "smoothing" and self.model is None:
            raise ValueError("decider 'smoothing' needs a model: it smooths the head's p(ad)")
        return self

    @field_validator("crop", "corners")
    @classmethod
    def _check_geometry_text(cls, v: str | None, info) -> str | None:
        if v is None:
            return v
        from edge.geometry import Geometry

        try:
            Geometry.parse(**{info.field_name: v})
        except AdbreakError as exc:
            raise ValueError(str(exc)) from None
        return v

    @model_validator(mode="after")
    def _check_together(self) -> EdgeSettings:
        if self.crop and self.corners:
            raise ValueError("give either crop or corners, not both")
        if self.actuator is ActuatorKind.COMMAND and not (self.actuator_command_on and self.actuator_command_off):
            raise ValueError("actuator 'command' needs both actuator_command_on and actuator_command_off")
        if self.actuator is ActuatorKind.LIRC and not self.lirc_remote:
            raise ValueError("actuator 'lirc' needs lirc_remote (the remote's name in lircd.conf)")
        if self.mute_payload_on == self.mute_payload_off:
            raise ValueError("mute_payload_on and mute_payload_off must differ")
        try:
            topic = self.mute_topic.format(prefix=self.mqtt_prefix, device=self.device)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"mute_topic {self.mute_topic!r}: only {{prefix}} and {{device}} can be filled in "
                             f"({exc})") from None
        if not topic or any(c in topic for c in "+#\0"):
            raise ValueError(f"mute_topic {topic!r} must be a plain topic (no wildcards)")
        return self

    # -- derived values
    @property
    def topics(self) -> Topics:
        return Topics(self.mqtt_prefix)

    @property
    def mqtt_tls_options(self) -> TlsOptions | None:
        """TLS towards the broker, or ``None`` for plain TCP."""
        if not self.mqtt_tls:
            return None
        return TlsOptions(self.mqtt_ca_file, self.mqtt_cert_file, self.mqtt_key_file, self.mqtt_tls_insecure)

    @property
    def mute_topic_resolved(self) -> str:
        return self.mute_topic.format(prefix=self.mqtt_prefix, device=self.device)

    def decision_config(self, base: DecisionConfig) -> DecisionConfig:
        """``base`` (the bundle's decision) with this file's / environment's / command line's overrides applied."""
        data = base.to_dict()
        data.update(self.decision)
        try:
            return DecisionConfig.from_dict(data)
        except (TypeError, ValueError) as exc:
            raise AdbreakError(f"bad decision settings: {exc}") from exc

    def fusion_config(self, base):
        """``base`` (the bundle's fusion settings, or the defaults) with the overrides applied."""
        from edge.fusion import FusionConfig

        data = base.to_dict()
        data.update(self.fusion)
        try:
            return FusionConfig.from_dict(data)
        except (TypeError, ValueError) as exc:
            raise AdbreakError(f"bad fusion settings: {exc}") from exc

    def geometry(self):
        """The override geometry, or ``None`` for the bundle's."""
        if not (self.crop or self.corners):
            return None
        from edge.geometry import Geometry

        return Geometry.parse(self.crop, self.corners)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AdbreakError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AdbreakError(f"cannot read config file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise AdbreakError(f"config file {path} is not valid TOML: {exc}") from None
    if "edge" in data:
        if not isinstance(data["edge"], dict):
            raise AdbreakError(f"config file {path}: 'edge' must be a table")
        data = data["edge"]
    return data


def _merge(*layers: dict[str, Any]) -> dict[str, Any]:
    """Later layers win; the ``decision`` and ``fusion`` tables are merged key by key."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if key in ("decision", "fusion") and isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = {**out[key], **value}
            else:
                out[key] = value
    return out


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ())) or "settings"
        if err.get("type") == "missing":
            env = ENV_PREFIX + where.upper()
            parts.append(f"{where} is required (command line, {env} or '{where}' in the config file)")
        elif err.get("type") == "extra_forbidden":
            parts.append(f"unknown setting {where!r}")
        else:
            msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
            given = err.get("input")
            shown = "" if isinstance(given, dict) or where == "settings" else f" (got {given!r})"
            if where == "mqtt_password":
                shown = ""
            parts.append(f"{where}: {msg}{shown}" if where != "settings" else msg)
    return "invalid edge settings: " + "; ".join(parts)


def load_settings(config_file: str | os.PathLike[str] | None = None, **overrides: Any) -> EdgeSettings:
    """TOML ``config_file`` (if given), then ``ADBREAK_EDGE_*`` environment variables, then ``overrides`` (the
    command line; ``None`` values mean "not given"). Raises :class:`AdbreakError` with a one-line message."""
    file_values = _read_toml(Path(config_file)) if config_file is not None else {}
    env_values = EnvSettingsSource(EdgeSettings)()
    given = {k: v for k, v in overrides.items() if v is not None}
    data = _merge(file_values, env_values, given)
    try:
        return EdgeSettings(**data)
    except ValidationError as exc:
        raise AdbreakError(_describe(exc)) from None
