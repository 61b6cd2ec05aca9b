"""Review, learning, rules, Home Assistant and sign-in: users, API tokens, app settings, corrections, keyframes,
rules and their audit log; per-device auto-mute switch and settings; review columns on segments.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23

Written by hand. Constraint and index names follow ``server.models.NAMING_CONVENTION``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _one_of(column: str, values: tuple[str, ...], name: str) -> sa.CheckConstraint:
    listed = ", ".join(f"'{v}'" for v in values)
    return sa.CheckConstraint(f"{column} IN ({listed})", name=op.f(name))


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("auto_mute", sa.Boolean(), server_default=sa.true(), nullable=False))
        batch.add_column(sa.Column("settings", sa.String(length=4096), nullable=True))
        batch.add_column(sa.Column("settings_reported", sa.String(length=4096), nullable=True))

    with op.batch_alter_table("segments") as batch:
        batch.add_column(sa.Column("detected_label", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("review", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("reviewed_by", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("reviewed_ts", sa.Float(), nullable=True))
        batch.create_check_constraint(op.f("ck_segments_review"), "review IN ('confirmed', 'corrected')")

    with op.batch_alter_table("rule_firings") as batch:  # the Home Assistant auto-mute switch's unmute
        batch.drop_constraint(op.f("ck_rule_firings_reason"), type_="check")
        batch.create_check_constraint(op.f("ck_rule_firings_reason"), "reason IN ('ad_start', 'ad_end', 'offline', "
                                      "'max_ad_length', 'auto_mute_off')")

    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=256), nullable=False),
        sa.Column("is_admin", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created", sa.Float(), nullable=False),
        sa.Column("last_login", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("hint", sa.String(length=16), nullable=False),
        sa.Column("created", sa.Float(), nullable=False),
        sa.Column("last_used", sa.Float(), nullable=True),
        sa.Column("revoked", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_api_tokens_user_id_users"),
                                ondelete="CASCADE"),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_table(
        "app_settings",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=4096), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_app_settings")),
    )
    op.create_table(
        "corrections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("before", sa.String(length=8192), nullable=False),
        sa.Column("after", sa.String(length=8192), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_corrections")),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], name=op.f("fk_corrections_device_id_devices")),
        _one_of("action", ("relabel", "move", "split", "merge", "confirm"), "ck_corrections_action"),
    )
    op.create_index("ix_corrections_device_id_ts", "corrections", ["device_id", "ts"])
    op.create_table(
        "keyframes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("frame_id", sa.String(length=32), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("p_ad", sa.Float(), nullable=True),
        sa.Column("label", sa.String(length=16), nullable=True),
        sa.Column("model_version", sa.String(length=256), nullable=True),
        sa.Column("path", sa.String(length=256), nullable=False),
        sa.Column("bytes", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("received", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_keyframes")),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], name=op.f("fk_keyframes_device_id_devices")),
        sa.UniqueConstraint("frame_id", name=op.f("uq_keyframes_frame_id")),
        _one_of("kind", ("start", "middle", "end", "sample"), "ck_keyframes_kind"),
    )
    op.create_index("ix_keyframes_device_id_ts", "keyframes", ["device_id", "ts"])
    op.create_index("ix_keyframes_received", "keyframes", ["received"])
    op.create_table(
        "rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("conditions", sa.String(length=8192), nullable=False),
        sa.Column("actions", sa.String(length=8192), nullable=False),
        sa.Column("created", sa.Float(), nullable=False),
        sa.Column("updated", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rules")),
        sa.UniqueConstraint("name", name=op.f("uq_rules_name")),
        _one_of("trigger", ("ad_start", "ad_end", "offline"), "ck_rules_trigger"),
    )
    op.create_table(
        "rule_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rule_id", sa.Integer(), nullable=True),
        sa.Column("rule_name", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=True),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.Column("test", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.String(length=8192), nullable=False),
        sa.Column("event_id", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rule_runs")),
        sa.ForeignKeyConstraint(["rule_id"], ["rules.id"], name=op.f("fk_rule_runs_rule_id_rules"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], name=op.f("fk_rule_runs_device_id_devices")),
        _one_of("status", ("ok", "failed", "skipped"), "ck_rule_runs_status"),
    )
    op.create_index("ix_rule_runs_ts", "rule_runs", ["ts"])
    op.create_index("ix_rule_runs_rule_id_ts", "rule_runs", ["rule_id", "ts"])


def downgrade() -> None:
    op.drop_table("rule_runs")
    op.drop_table("rules")
    op.drop_table("keyframes")
    op.drop_table("corrections")
    op.drop_table("app_settings")
    op.drop_table("api_tokens")
    op.drop_table("users")
    op.execute("DELETE FROM rule_firings WHERE reason = 'auto_mute_off'")
    with op.batch_alter_table("rule_firings") as batch:
        batch.drop_constraint(op.f("ck_rule_firings_reason"), type_="check")
        batch.create_check_constraint(op.f("ck_rule_firings_reason"), "reason IN ('ad_start', 'ad_end', 'offline', "
                                      "'max_ad_length')")
    with op.batch_alter_table("segments") as batch:
        batch.drop_constraint(op.f("ck_segments_review"), type_="check")
        batch.drop_column("reviewed_ts")
        batch.drop_column("reviewed_by")
        batch.drop_column("review")
        batch.drop_column("detected_label")
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("settings_reported")
        batch.drop_column("settings")
        batch.drop_column("auto_mute")
