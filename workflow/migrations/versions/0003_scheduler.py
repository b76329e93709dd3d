"""The scheduler daemon: retry bookkeeping on deadline rows, the reminder outbox, heartbeats.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_INSTANT = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("deadline_record", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
        batch_op.add_column(sa.Column("last_error", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("retry_at", _INSTANT, nullable=True))
    op.create_index(
        "ix_deadline_pending_provisional",
        "deadline_record",
        ["due_at"],
        sqlite_where=sa.text("provisional AND fired_at IS NULL"),
        postgresql_where=sa.text("provisional AND fired_at IS NULL"),
    )

    op.create_table(
        "outbox_record",
        sa.Column("subject_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("due_at", _INSTANT, nullable=False),
        sa.Column("rule_id", sa.String(length=8), nullable=False),
        sa.Column("payload", sa.String(), nullable=False),
        sa.Column("created_at", _INSTANT, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _INSTANT, nullable=False),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("claimed_until", _INSTANT, nullable=True),
        sa.Column("delivered_at", _INSTANT, nullable=True),
        sa.Column("abandoned_at", _INSTANT, nullable=True),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("subject_id", "kind", "due_at"),
    )
    op.create_index(
        "ix_outbox_pending",
        "outbox_record",
        ["next_attempt_at"],
        sqlite_where=sa.text("delivered_at IS NULL AND abandoned_at IS NULL"),
        postgresql_where=sa.text("delivered_at IS NULL AND abandoned_at IS NULL"),
    )

    op.create_table(
        "daemon_record",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("host", sa.String(length=64), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", _INSTANT, nullable=False),
        sa.Column("beat_at", _INSTANT, nullable=False),
        sa.Column("last_sweep_at", _INSTANT, nullable=True),
        sa.Column("last_sweep_ms", sa.Integer(), nullable=True),
        sa.Column("fired_total", sa.Integer(), nullable=False),
        sa.Column("delivered_total", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        sa.Column("stopped_at", _INSTANT, nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("daemon_record")
    op.drop_index("ix_outbox_pending", table_name="outbox_record")
    op.drop_table("outbox_record")
    op.drop_index("ix_deadline_pending_provisional", table_name="deadline_record")
    with op.batch_alter_table("deadline_record", schema=None) as batch_op:
        for name in ("retry_at", "last_error", "attempts"):
            batch_op.drop_column(name)
