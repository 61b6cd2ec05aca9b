"""Initial schema: devices, events, segments, rule firings.

Revision ID: 0001
Revises:
Create Date: 2026-11-23

Written by hand. Constraint and index names follow ``server.models.NAMING_CONVENTION``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _one_of(column: str, values: tuple[str, ...], name: str) -> sa.CheckConstraint:
    listed = ", ".join(f"'{v}'" for v in values)
    return sa.CheckConstraint(f"{column} IN ({listed})", name=op.f(name))


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("availability", sa.String(length=16), nullable=True),
        sa.Column("state_label", sa.String(length=16), nullable=True),
        sa.Column("state_since", sa.Float(), nullable=True),
        sa.Column("state_confidence", sa.Float(), nullable=True),
        sa.Column("model_version", sa.String(length=256), nullable=True),
        sa.Column("last_seen", sa.Float(), nullable=True),
        sa.Column("last_seq", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("muted", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_devices")),
        sa.UniqueConstraint("name", name=op.f("uq_devices_name")),
        _one_of("availability", ("online", "offline", "stopped"), "ck_devices_availability"),
        _one_of("state_label", ("program", "ad"), "ck_devices_state_label"),
    )

    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=32), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("boundary_ts", sa.Float(), nullable=False),
        sa.Column("decided_ts", sa.Float(), nullable=False),
        sa.Column("boundary_stream_t", sa.Float(), nullable=False),
        sa.Column("decided_stream_t", sa.Float(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("model_version", sa.String(length=256), nullable=False),
        sa.Column("received", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], name=op.f("fk_events_device_id_devices")),
        sa.UniqueConstraint("event_id", name=op.f("uq_events_event_id")),
        _one_of("type", ("ad_start", "ad_end"), "ck_events_type"),
    )
    op.create_index("uq_events_device_id_seq", "events", ["device_id", "seq"], unique=True)
    op.create_index("ix_events_device_id_boundary_ts", "events", ["device_id", "boundary_ts"])
    op.create_index("ix_events_boundary_ts", "events", ["boundary_ts"])

    op.create_table(
        "segments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=16), nullable=False),
        sa.Column("start", sa.Float(), nullable=False),
        sa.Column("end", sa.Float(), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("model_version", sa.String(length=256), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("start_event_id", sa.String(length=32), nullable=True),
        sa.Column("end_event_id", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segments")),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], name=op.f("fk_segments_device_id_devices")),
        sa.ForeignKeyConstraint(["start_event_id"], ["events.event_id"],
                                name=op.f("fk_segments_start_event_id_events")),
        sa.ForeignKeyConstraint(["end_event_id"], ["events.event_id"], name=op.f("fk_segments_end_event_id_events")),
        _one_of("label", ("program", "ad"), "ck_segments_label"),
        _one_of("status", ("open", "closed", "interrupted"), "ck_segments_status"),
        sa.CheckConstraint("(status = 'open') = (\"end\" IS NULL)", name=op.f("ck_segments_end_iff_not_open")),
    )
    op.create_index("ix_segments_device_id_start", "segments", ["device_id", "start"])
    op.create_index("ix_segments_start", "segments", ["start"])
    op.create_index("uq_segments_open_device_id", "segments", ["device_id"], unique=True,
                    sqlite_where=sa.text("status = 'open'"),
                    postgresql_where=sa.text("status = 'open'"))

    op.create_table(
        "rule_firings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("topic", sa.String(length=512), nullable=False),
        sa.Column("payload", sa.String(length=256), nullable=False),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.Column("event_id", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rule_firings")),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], name=op.f("fk_rule_firings_device_id_devices")),
        sa.ForeignKeyConstraint(["event_id"], ["events.event_id"], name=op.f("fk_rule_firings_event_id_events")),
        _one_of("action", ("mute", "unmute"), "ck_rule_firings_action"),
        _one_of("reason", ("ad_start", "ad_end", "offline", "max_ad_length"), "ck_rule_firings_reason"),
    )
    op.create_index("ix_rule_firings_device_id_ts", "rule_firings", ["device_id", "ts"])
    op.create_index("ix_rule_firings_ts", "rule_firings", ["ts"])


def downgrade() -> None:
    op.drop_table("rule_firings")
    op.drop_table("segments")
    op.drop_table("events")
    op.drop_table("devices")
