"""Indexes for the retention job: the columns that reference ``events.event_id`` (segments' start and end events,
rule firings' event), so that deleting old events finds their references by index instead of scanning, and foreign
key checks on delete stay cheap (SQLite and PostgreSQL do not index referencing columns by themselves).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23

Written by hand. Index names follow ``server.models.NAMING_CONVENTION``.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_segments_start_event_id", "segments", ["start_event_id"])
    op.create_index("ix_segments_end_event_id", "segments", ["end_event_id"])
    op.create_index("ix_rule_firings_event_id", "rule_firings", ["event_id"])


def downgrade() -> None:
    op.drop_index("ix_rule_firings_event_id", table_name="rule_firings")
    op.drop_index("ix_segments_end_event_id", table_name="segments")
    op.drop_index("ix_segments_start_event_id", table_name="segments")
