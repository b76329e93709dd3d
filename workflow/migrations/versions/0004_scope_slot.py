"""L6's unique index keyed on a slot that an expiry does not release.

The index on `exclusive_key` was partial on `state = 'effective'`, so every expiry deleted an
entry at a random place in an index as large as the table. It is now partial on
`holds_scope`: set when a filing takes effect, released when the next filing of the same scope
takes effect. Every effective filing holds its scope, so L6 holds as before.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("filing_record", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("holds_scope", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.execute("UPDATE filing_record SET holds_scope = (state = 'effective')")
    op.drop_index("uq_filing_effective_scope", table_name="filing_record")
    op.create_index(
        "uq_filing_effective_scope",
        "filing_record",
        ["exclusive_key"],
        unique=True,
        sqlite_where=sa.text("holds_scope"),
        postgresql_where=sa.text("holds_scope"),
    )


def downgrade() -> None:
    op.drop_index("uq_filing_effective_scope", table_name="filing_record")
    op.create_index(
        "uq_filing_effective_scope",
        "filing_record",
        ["exclusive_key"],
        unique=True,
        sqlite_where=sa.text("state = 'effective'"),
        postgresql_where=sa.text("state = 'effective'"),
    )
    with op.batch_alter_table("filing_record", schema=None) as batch_op:
        batch_op.drop_column("holds_scope")
