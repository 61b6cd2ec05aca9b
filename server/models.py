"""The database schema as SQLAlchemy 2 typed models. Alembic (``migrations/``) creates and changes the tables; these
classes only describe them. Times are Unix epoch seconds (UTC) as floats, like the wire contract."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    false,
    text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

LABELS = ("program", "ad")
AVAILABILITIES = ("online", "offline", "stopped")
SEGMENT_STATUSES = ("open", "closed", "interrupted")
EVENT_TYPES = ("ad_start", "ad_end")
ACTIONS = ("mute", "unmute")
REASONS = ("ad_start", "ad_end", "offline", "max_ad_length", "auto_mute_off")


def _one_of(column: str, values: tuple[str, ...], name: str) -> CheckConstraint:
    listed = ", ".join(f"'{v}'" for v in values)
    return CheckConstraint(f"{column} IN ({listed})", name=name)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Device(Base):
    """An edge agent, created when it first announces itself (availability or state) or, when allowlisted, on its
    first event."""

    __tablename__ = "devices"
    __table_args__ = (
        _one_of("availability", AVAILABILITIES, "availability"),
        _one_of("state_label", LABELS, "state_label"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    availability: Mapped[str | None] = mapped_column(String(16))
    state_label: Mapped[str | None] = mapped_column(String(16))
    state_since: Mapped[float | None] = mapped_column(Float)
    state_confidence: Mapped[float | None] = mapped_column(Float)
    model_version: Mapped[str | None] = mapped_column(String(256))
    last_seen: Mapped[float | None] = mapped_column(Float)
    """Server wall time of the last live message from the device."""
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    """Sequence number of the last event applied; events at or below it are out of order."""
    muted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """Whether the last auto-mute command sent to the device was a mute."""
    auto_mute: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    """Whether the auto-mute rule acts on this device (the Home Assistant switch; the fail-safe unmute always acts)."""
    settings: Mapped[str | None] = mapped_column(String(4096))
    """JSON object: the decision settings the user chose for the device (pushed to it on ``settings/set``)."""
    settings_reported: Mapped[str | None] = mapped_column(String(4096))
    """JSON object: the settings the device reports it runs (its retained ``settings/state``)."""


class Event(Base):
    """One ``ad_start`` / ``ad_end`` event as received (duplicates and out-of-order events are not stored)."""

    __tablename__ = "events"
    __table_args__ = (
        _one_of("type", EVENT_TYPES, "type"),
        Index("uq_events_device_id_seq", "device_id", "seq", unique=True),
        Index("ix_events_device_id_boundary_ts", "device_id", "boundary_ts"),
        Index("ix_events_boundary_ts", "boundary_ts"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(32), unique=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"))
    seq: Mapped[int] = mapped_column(BigInteger)
    type: Mapped[str] = mapped_column(String(16))
    boundary_ts: Mapped[float] = mapped_column(Float)
    decided_ts: Mapped[float] = mapped_column(Float)
    boundary_stream_t: Mapped[float] = mapped_column(Float)
    decided_stream_t: Mapped[float] = mapped_column(Float)
    confidence: Mapped[float] = mapped_column(Float)
    model_version: Mapped[str] = mapped_column(String(256))
    received: Mapped[float] = mapped_column(Float)
    """Server wall time the event was stored."""

    device: Mapped[Device] = relationship()


class Segment(Base):
    """A stretch of one label on one device. At most one segment per device is ``open`` (``end`` null)."""

    __tablename__ = "segments"
    __table_args__ = (
        _one_of("label", LABELS, "label"),
        _one_of("status", SEGMENT_STATUSES, "status"),
        _one_of("review", ("confirmed", "corrected"), "review"),
        CheckConstraint("(status = 'open') = (\"end\" IS NULL)", name="end_iff_not_open"),
        Index("ix_segments_device_id_start", "device_id", "start"),
        Index("ix_segments_start", "start"),
        Index("ix_segments_start_event_id", "start_event_id"),  # the retention job (migration 0003)
        Index("ix_segments_end_event_id", "end_event_id"),
        Index("uq_segments_open_device_id", "device_id", unique=True, sqlite_where=text("status = 'open'"),
              postgresql_where=text("status = 'open'")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"))
    label: Mapped[str] = mapped_column(String(16))
    start: Mapped[float] = mapped_column(Float)
    end: Mapped[float | None] = mapped_column(Float)
    confidence: Mapped[float | None] = mapped_column(Float)
    model_version: Mapped[str | None] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16))
    start_event_id: Mapped[str | None] = mapped_column(ForeignKey("events.event_id"))
    """The event that opened the segment; null when a live state message opened it."""
    end_event_id: Mapped[str | None] = mapped_column(ForeignKey("events.event_id"))
    """The event that closed the segment; null while open or when interrupted."""
    detected_label: Mapped[str | None] = mapped_column(String(16))
    """The label the detector gave; null until a user correction changes ``label`` or the boundaries."""
    review: Mapped[str | None] = mapped_column(String(16))
    """``confirmed`` / ``corrected`` by a user, or null (not reviewed)."""
    reviewed_by: Mapped[str | None] = mapped_column(String(64))
    reviewed_ts: Mapped[float | None] = mapped_column(Float)

    device: Mapped[Device] = relationship()


class RuleFiring(Base):
    """One command a rule sent."""

    __tablename__ = "rule_firings"
    __table_args__ = (
        _one_of("action", ACTIONS, "action"),
        _one_of("reason", REASONS, "reason"),
        Index("ix_rule_firings_device_id_ts", "device_id", "ts"),
        Index("ix_rule_firings_ts", "ts"),
        Index("ix_rule_firings_event_id", "event_id"),  # the retention job (migration 0003)
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"))
    rule: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(32))
    topic: Mapped[str] = mapped_column(String(512))
    payload: Mapped[str] = mapped_column(String(256))
    ts: Mapped[float] = mapped_column(Float)
    event_id: Mapped[str | None] = mapped_column(ForeignKey("events.event_id"))

    device: Mapped[Device] = relationship()


# ---------------------------------------------------------------------------------------------------- issue 4
REVIEWS = ("confirmed", "corrected")
CORRECTION_ACTIONS = ("relabel", "move", "split", "merge", "confirm")
KEYFRAME_KINDS = ("start", "middle", "end", "sample")
RULE_TRIGGERS = ("ad_start", "ad_end", "offline")
RULE_RUN_STATUSES = ("ok", "failed", "skipped")


class User(Base):
    """A dashboard / API user. Passwords are stored as werkzeug hashes (scrypt), never in clear."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created: Mapped[float] = mapped_column(Float)
    last_login: Mapped[float | None] = mapped_column(Float)


class ApiToken(Base):
    """A bearer token for scripts and automations; only its sha256 is stored (the token is shown once)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hint: Mapped[str] = mapped_column(String(16))
    """The token's first characters, to recognise it in a list."""
    created: Mapped[float] = mapped_column(Float)
    last_used: Mapped[float | None] = mapped_column(Float)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class UserSession(Base):
    """A signed-in browser session: the signed session cookie names it, and only the sha256 of its random id is
    stored. Signing out deletes it, and a password change deletes the user's other sessions, so a copied cookie
    stops working then (a Flask cookie session alone would stay valid until it expires)."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    sid_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created: Mapped[float] = mapped_column(Float)


class AppSetting(Base):
    """Server-wide key/value settings kept in the database (e.g. the session-signing secret, so that sign-ins
    survive a restart and are shared by several server processes)."""

    __tablename__ = "app_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(4096))


class Correction(Base):
    """One user correction of the segments (the audit trail): what was there before, what is there after."""

    __tablename__ = "corrections"
    __table_args__ = (
        _one_of("action", CORRECTION_ACTIONS, "action"),
        Index("ix_corrections_device_id_ts", "device_id", "ts"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"))
    ts: Mapped[float] = mapped_column(Float)
    username: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(16))
    before: Mapped[str] = mapped_column(String(8192))
    """JSON list of the segments as they were."""
    after: Mapped[str] = mapped_column(String(8192))
    """JSON list of the segments as they became."""


class Keyframe(Base):
    """A small JPEG the edge sent (at a segment's start, middle or end, or sampled around a boundary or a
    low-confidence stretch), stored on disk under the server's media folder; ``path`` is relative to it."""

    __tablename__ = "keyframes"
    __table_args__ = (
        _one_of("kind", KEYFRAME_KINDS, "kind"),
        Index("ix_keyframes_device_id_ts", "device_id", "ts"),
        Index("ix_keyframes_received", "received"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    frame_id: Mapped[str] = mapped_column(String(32), unique=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"))
    ts: Mapped[float] = mapped_column(Float)
    """Wall time of the frame (epoch seconds)."""
    kind: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(32))
    p_ad: Mapped[float | None] = mapped_column(Float)
    label: Mapped[str | None] = mapped_column(String(16))
    """The detector's decided label when the frame was taken."""
    model_version: Mapped[str | None] = mapped_column(String(256))
    path: Mapped[str] = mapped_column(String(256))
    bytes: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    received: Mapped[float] = mapped_column(Float)


class Rule(Base):
    """A user rule: a trigger, conditions (JSON object) and a list of actions (JSON list)."""

    __tablename__ = "rules"
    __table_args__ = (_one_of("trigger", RULE_TRIGGERS, "trigger"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    trigger: Mapped[str] = mapped_column(String(16))
    conditions: Mapped[str] = mapped_column(String(8192))
    actions: Mapped[str] = mapped_column(String(8192))
    created: Mapped[float] = mapped_column(Float)
    updated: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str | None] = mapped_column(String(64))


class RuleRun(Base):
    """The audit log of user rules: every firing (or test) of a rule, with each action's outcome."""

    __tablename__ = "rule_runs"
    __table_args__ = (
        _one_of("status", RULE_RUN_STATUSES, "status"),
        Index("ix_rule_runs_ts", "ts"),
        Index("ix_rule_runs_rule_id_ts", "rule_id", "ts"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rule_id: Mapped[int | None] = mapped_column(ForeignKey("rules.id", ondelete="SET NULL"))
    rule_name: Mapped[str] = mapped_column(String(64))
    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id"))
    trigger: Mapped[str] = mapped_column(String(16))
    ts: Mapped[float] = mapped_column(Float)
    test: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    status: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(String(8192))
    """JSON list, one entry per action: what was done and how it went."""
    event_id: Mapped[str | None] = mapped_column(String(32))


# ---------------------------------------------------------------------------------------------------- issue 14
class Recording(Base):
    """A recording file scanned by ``adbreak scan`` and sent to the server for review (``PUT /api/v1/recordings/
    <name>``). Its segments, keyframes and corrections live in the device tables, under a device row of its own
    whose name is :attr:`device` ``rec:<key>`` (a name no MQTT device can have); their times are seconds from the
    recording's start (epoch 0 is its first frame), so review, corrections, exports and the training set work on it
    as on a device. ``server.recordings`` writes it."""

    __tablename__ = "recordings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"), unique=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    """The file name (without its folder), as the user knows the recording."""
    duration_s: Mapped[float] = mapped_column(Float)
    fps: Mapped[float] = mapped_column(Float)
    scanned_at: Mapped[float | None] = mapped_column(Float)
    uploaded: Mapped[float] = mapped_column(Float)
    """Server time of the last upload."""
    uploaded_by: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str | None] = mapped_column(String(256))
    info: Mapped[str] = mapped_column(String(8192))
    """JSON object: the recording's container, codecs, size, audio (``ScanResult.info``)."""
    scan: Mapped[str] = mapped_column(String(8192))
    """JSON object: how the scan went (mode, frames analysed, timings, gaps, warnings)."""
    segments_sha: Mapped[str] = mapped_column(String(64))
    """sha256 of the uploaded duration and segments: a re-send of the same scan changes nothing."""

    device: Mapped[Device] = relationship()
