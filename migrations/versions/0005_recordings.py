"""Recordings sent for review (``recordings``): a scanned recording file, whose segments and keyframes live under a
device row of its own (``server.recordings``).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23

Written by hand. Constraint names follow ``server.models.NAMING_CONVENTION``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "recordings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("fps", sa.Float(), nullable=False),
        sa.Column("scanned_at", sa.Float(), nullable=True),
        sa.Column("uploaded", sa.Float(), nullable=False),
        sa.Column("uploaded_by", sa.String(length=64), nullable=False),
        sa.Column("model_version", sa.String(length=256), nullable=True),
        sa.Column("info", sa.String(length=8192), nullable=False),
        sa.Column("scan", sa.String(length=8192), nullable=False),
        sa.Column("segments_sha", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recordings")),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], name=op.f("fk_recordings_device_id_devices")),
        sa.UniqueConstraint("device_id", name=op.f("uq_recordings_device_id")),
        sa.UniqueConstraint("name", name=op.f("uq_recordings_name")),
    )


def downgrade() -> None:
    op.drop_table("recordings")
