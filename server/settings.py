"""Server settings: defaults, then an optional TOML file, then ``ADBREAK_SERVER_*`` environment variables, then the
command line's overrides (each later source wins).

Every field is described; unknown keys are refused (``extra="forbid"``), and :func:`load_settings` turns any mistake
into one readable line (:class:`~adbreak.errors.AdbreakError`).
"""

from __future__ import annotations

import string
import tomllib
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from adbreak.errors import AdbreakError
from adbreak.wire import DEFAULT_PREFIX, DEVICE_RE, Topics

ENV_PREFIX = "ADBREAK_SERVER_"
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WEB_DIR = REPO_ROOT / "web" / "dist"
_TEMPLATE_FIELDS = frozenset({"prefix", "device"})

Port = Annotated[int, Field(ge=1, le=65535)]
Payload = Annotated[str, Field(min_length=1, max_length=256)]


class ServerSettings(BaseSettings):
    """Everything ``adbreak server`` can be told. Times are seconds."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="forbid",
        validate_default=True,
        toml_file=None,
    )

    database_url: str = Field(
        default="sqlite:///adbreak.db",
        title="Database URL",
        description="SQLAlchemy URL of the database: SQLite (`sqlite:///adbreak.db`, a relative path is relative "
        "to the working directory) or PostgreSQL (`postgresql+psycopg://user:password@host:5432/adbreak`, which "
        "several servers may share). Create or upgrade it with `adbreak db upgrade`.",
        min_length=1,
    )
    mqtt_host: str = Field(default="127.0.0.1", title="MQTT broker host", description="Host name or address.",
                           min_length=1)
    mqtt_port: Port = Field(default=1883, title="MQTT broker port", description="TCP port of the broker.")
    mqtt_username: str | None = Field(default=None, title="MQTT user name",
                                      description="User name for the broker, if it requires one.")
    mqtt_password: SecretStr | None = Field(default=None, title="MQTT password",
                                            description="Password for the broker (never logged).")
    mqtt_prefix: str = Field(default=DEFAULT_PREFIX, title="MQTT topic prefix",
                             description="First topic level(s) of every adbreak topic; must match the edge agents'.")
    mqtt_client_id: str = Field(
        default="adbreak-server",
        title="MQTT client id",
        description="Client id of the server's persistent MQTT session (events published while the server is down "
        "are queued by the broker under this id); give each server of a broker its own.",
        min_length=1,
        max_length=128,
    )
    mqtt_share_group: str | None = Field(
        default=None,
        title="MQTT shared-subscription group",
        description="Run as one of several servers: connect with MQTT 5 and share the ingestion through the shared "
        "subscription `$share/<group>/...` (every server of the group: the same group, the same PostgreSQL "
        "database, the same Redis, its own mqtt_client_id). Unset: MQTT 3.1.1, one server.",
        min_length=1,
        max_length=64,
        pattern=r"^[^/+#]+$",
    )
    mqtt_session_expiry_s: int = Field(
        default=86400, ge=0, le=2**32 - 1, title="MQTT session expiry (s)",
        description="With a share group (MQTT 5): how long the broker keeps a server's session and its queued "
        "messages while the server is away.")
    reorder_hold_s: float = Field(
        default=10.0, ge=0, le=120, allow_inf_nan=False, title="Reorder hold (s)",
        description="With a share group: an event that arrives before the events it follows (another server has "
        "them) waits, unacknowledged, while the device's sequence moves; after this long without progress it is "
        "applied over the gap.")
    redis_url: str | None = Field(
        default=None, title="Redis URL",
        description="Redis (`redis://host:6379/0`) that carries Socket.IO pushes between servers, so a browser on "
        "any server sees what every server ingests. Unset: pushes stay in this process.")
    host: str = Field(default="0.0.0.0", title="HTTP listen address",
                      description="Address the API, Socket.IO and dashboard listen on (0.0.0.0: every interface).")
    port: Port = Field(default=8080, title="HTTP port", description="Port the API, Socket.IO and dashboard listen on.")
    mute_enabled: bool = Field(default=True, title="Auto-mute",
                               description="Publish a mute command when an ad starts and unmute when it ends.")
    mute_topic: str = Field(
        default="{prefix}/{device}/mute/set",
        title="Mute command topic",
        description="Topic template of the mute command; placeholders {prefix} (mqtt_prefix) and {device}.",
    )
    mute_payload_on: Payload = Field(default="ON", title="Mute payload", description="Payload that mutes the TV.")
    mute_payload_off: Payload = Field(default="OFF", title="Unmute payload",
                                      description="Payload that unmutes the TV.")
    max_ad_s: float = Field(
        default=360.0,
        title="Longest ad break",
        description="Fail-safe: unmute a device whose ad segment has been open this many seconds.",
        gt=0,
        allow_inf_nan=False,
    )
    silent_unmute_s: float = Field(
        default=3.0,
        title="Silent device unmute",
        description="Fail-safe: unmute a muted device that has sent nothing (telemetry comes every second) for this "
        "many seconds while the server is connected to the broker, before the broker's 'offline' will may come "
        "(0: off; keep it above the edges' telemetry interval).",
        ge=0,
        allow_inf_nan=False,
    )
    late_event_s: float = Field(
        default=15.0,
        title="Late event",
        description="An event received more than this many seconds after the edge decided it (a backlog after a "
        "server restart or a broker outage) is stored but starts nothing: no mute, no user rule (recorded as "
        "skipped); it may still unmute.",
        gt=0,
        allow_inf_nan=False,
    )
    web_dir: Path = Field(default=DEFAULT_WEB_DIR, title="Dashboard folder",
                          description="The built dashboard (`make web` writes web/dist) served at /.")
    devices: Annotated[list[str] | None, NoDecode] = Field(
        default=None,
        title="Device allowlist",
        description="If set, only these devices are accepted (and they need not announce themselves first); a list, "
        "or in the environment a comma-separated string. Unset: any device that announced itself.",
    )

    # ------------------------------------------------------------------ issue 4: data, sign-in, HA, TLS
    data_dir: Path = Field(default=Path("adbreak-data"), title="Data folder",
                           description="Where the server keeps keyframe JPEGs (and other files the database "
                           "references); relative to the working directory.")
    keyframes_max_mb: float = Field(default=500.0, title="Keyframe storage limit (MB)", gt=0, allow_inf_nan=False,
                                    description="Oldest keyframes are deleted beyond this total size.")
    keyframes_max_days: float = Field(default=30.0, title="Keyframe retention (days)", gt=0, allow_inf_nan=False,
                                      description="Keyframes older than this are deleted.")
    retention_events_days: float = Field(
        default=365.0, title="Event retention (days)", ge=0, allow_inf_nan=False,
        description="Events and closed segments older than this are deleted (never an open segment, nor a "
        "device's last event); 0 keeps them forever.")
    retention_firings_days: float = Field(
        default=90.0, title="Rule log retention (days)", ge=0, allow_inf_nan=False,
        description="Mute commands sent (rule firings) and user-rule runs older than this are deleted; 0 keeps "
        "them forever.")
    retention_corrections_days: float = Field(
        default=365.0, title="Correction log retention (days)", ge=0, allow_inf_nan=False,
        description="Review corrections (the audit trail) older than this are deleted; 0 keeps them forever.")
    retention_interval_s: float = Field(
        default=3600.0, title="Retention interval (s)", ge=10, allow_inf_nan=False,
        description="The retention job runs at start and then this often, in batches on the single writer.")
    retention_batch_rows: int = Field(
        default=2000, title="Retention batch (rows)", ge=1, le=100000,
        description="At most this many rows per table in one retention step (one short transaction).")
    admin_username: str = Field(default="admin", title="First admin user", min_length=1, max_length=64,
                                description="User created on first start when there is no user yet.")
    admin_password: SecretStr | None = Field(
        default=None, title="First admin password",
        description="Password of the first admin user (only used when there is no user yet). Unset: one is "
        "generated and printed once on the console.")
    secret_key: SecretStr | None = Field(
        default=None, title="Session secret",
        description="Key that signs session cookies. Unset: one is generated once and kept in the database, so "
        "sign-ins survive restarts.")
    session_days: float = Field(default=30.0, title="Session lifetime (days)", gt=0, allow_inf_nan=False,
                                description="How long a sign-in lasts.")
    login_rate_limit: str = Field(default="10 per minute", title="Sign-in rate limit", min_length=1,
                                  description="Attempts allowed per client address (Flask-Limiter notation).")
    secure_cookies: bool = Field(default=False, title="Secure cookies",
                                 description="Send the session cookie over HTTPS only (set behind a TLS proxy).")
    timezone: str | None = Field(default=None, title="Time zone",
                                 description="IANA zone of rule conditions (days, hours) and of statistics by hour "
                                 "and day when a request names none. Unset: the machine's local zone.")
    ha_discovery: bool = Field(default=True, title="Home Assistant discovery",
                               description="Publish retained MQTT discovery configs for every device.")
    ha_prefix: str = Field(default="homeassistant", title="Home Assistant discovery prefix", min_length=1,
                           description="Home Assistant's discovery prefix (its default is homeassistant).")
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

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # overrides (the command line) > environment > the TOML file (model_config["toml_file"]) > defaults
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls)

    @field_validator("admin_password", "secret_key", mode="before")
    @classmethod
    def _empty_is_unset(cls, v: Any) -> Any:
        return None if isinstance(v, str) and v == "" else v  # e.g. `VAR=` in a compose file: generate one

    @field_validator("admin_password")
    @classmethod
    def _check_admin_password(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and len(v.get_secret_value()) < 8:
            raise ValueError("must have at least 8 characters")
        return v

    @field_validator("mqtt_prefix")
    @classmethod
    def _check_prefix(cls, v: str) -> str:
        Topics(v)  # raises ValueError with a readable message
        return v

    @field_validator("mute_topic")
    @classmethod
    def _check_mute_topic(cls, v: str) -> str:
        try:
            names = {name for _, name, _, _ in string.Formatter().parse(v) if name is not None}
        except ValueError as exc:
            raise ValueError(f"bad template {v!r}: {exc}") from None
        unknown = names - _TEMPLATE_FIELDS
        if unknown:
            raise ValueError(f"unknown placeholder(s) {sorted(unknown)}: only {{prefix}} and {{device}}")
        if "device" not in names:
            raise ValueError("must contain {device}: each device gets its own command topic")
        if any(c in v for c in "+#"):
            raise ValueError("must not contain the MQTT wildcards + or #")
        return v

    @field_validator("devices", mode="before")
    @classmethod
    def _split_devices(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [part.strip() for part in v.split(",") if part.strip()]
        return v

    @field_validator("devices")
    @classmethod
    def _check_devices(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return None
        bad = [d for d in v if not DEVICE_RE.match(d)]
        if bad:
            raise ValueError(f"device name(s) {bad} must match {DEVICE_RE.pattern}")
        if not v:
            raise ValueError("an empty allowlist would refuse every device; leave it unset to accept any")
        return sorted(set(v))

    # ------------------------------------------------------------------ derived
    def mute_topic_for(self, device: str) -> str:
        return self.mute_topic.format(prefix=self.mqtt_prefix, device=device)

    @property
    def broker(self) -> str:
        return f"{self.mqtt_host}:{self.mqtt_port}"


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ())) or "settings"
        if err.get("type") == "extra_forbidden":
            parts.append(f"unknown setting {where!r}")
            continue
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        value = err.get("input")
        shown = "" if isinstance(value, dict) or "password" in where else f" (got {value!r})"
        parts.append(f"{where}: {msg}{shown}")
    return "; ".join(parts)


def load_settings(config_file: Path | str | None = None, **overrides: Any) -> ServerSettings:
    """Settings from defaults, ``config_file`` (TOML, optional), ``ADBREAK_SERVER_*`` and ``overrides``.

    ``overrides`` whose value is ``None`` are ignored (an option not given on the command line). Raises
    :class:`AdbreakError` with one line naming every bad setting.
    """
    overrides = {k: v for k, v in overrides.items() if v is not None}
    cls: type[ServerSettings] = ServerSettings
    if config_file is not None:
        path = Path(config_file).expanduser()
        if not path.is_file():
            raise AdbreakError(f"config file {path} not found")
        try:
            with path.open("rb") as fh:
                tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise AdbreakError(f"config file {path} is not valid TOML: {exc}") from None
        except OSError as exc:
            raise AdbreakError(f"config file {path} cannot be read: {exc.strerror}") from None

        class _FromFile(ServerSettings):
            model_config = SettingsConfigDict(toml_file=path)

        cls = _FromFile
    try:
        return cls(**overrides)
    except ValidationError as exc:
        where = f" (config file {config_file}, environment {ENV_PREFIX}*, command line)" if config_file else ""
        raise AdbreakError(f"invalid server settings{where}: {_describe(exc)}") from None
    except SettingsError as exc:
        raise AdbreakError(f"invalid server settings: {exc}") from None
