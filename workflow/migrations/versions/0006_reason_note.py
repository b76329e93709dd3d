"""A filing's note: the words given beside a reason code (a rejection's, a cancellation's).

Reasons are codes from config.toml's vocabulary; words go here, refused before anything is
written when they hold anything shaped like an ID, mobile or card number.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("filing_record", schema=None) as batch_op:
        batch_op.add_column(sa.Column("note", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("filing_record", schema=None) as batch_op:
        batch_op.drop_column("note")
