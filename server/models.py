"""The database schema as SQLAlchemy 2 typed models. Alembic (``migrations/``) creates and changes the tables; these
classes only describe them. Times are Unix epoch seconds (UTC) as floats, like the wire contract."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, CheckConstraint, Float, ForeignKey, Index, Integer, MetaData, String, text
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
REASONS = ("ad_start", "ad_end", "offline", "max_ad_length")


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
    muted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("0"))
    """Whether the last auto-mute command sent to the device was a mute."""


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
        CheckConstraint("(status = 'open') = (\"end\" IS NULL)", name="end_iff_not_open"),
        Index("ix_segments_device_id_start", "device_id", "start"),
        Index("ix_segments_start", "start"),
        Index("uq_segments_open_device_id", "device_id", unique=True, sqlite_where=text("status = 'open'")),
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

    device: Mapped[Device] = relationship()


class RuleFiring(Base):
    """One command a rule sent."""

    __tablename__ = "rule_firings"
    __table_args__ = (
        _one_of("action", ACTIONS, "action"),
        _one_of("reason", REASONS, "reason"),
        Index("ix_rule_firings_device_id_ts", "device_id", "ts"),
        Index("ix_rule_firings_ts", "ts"),
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
