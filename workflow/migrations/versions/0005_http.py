"""The HTTP API: hashed API keys, the stored outcomes of idempotent creating requests, and an
index of the filings each hospital acted on (what a hospital's key may see).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_INSTANT = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "api_key_record",
        sa.Column("id", sa.String(length=16), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("organisation", sa.String(length=64), nullable=True),
        sa.Column("person_key", sa.String(length=64), nullable=True),
        sa.Column("person_masked", sa.String(length=32), nullable=True),
        sa.Column("on_behalf", sa.Boolean(), nullable=False),
        sa.Column("regions", sa.String(), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("created_at", _INSTANT, nullable=False),
        sa.Column("revoked_at", _INSTANT, nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "idempotency_record",
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("idempotency_key", sa.String(length=64), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("body", sa.String(), nullable=True),
        sa.Column("created_at", _INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("key_id", "idempotency_key"),
    )
    op.create_index(
        "ix_idempotency_record_created_at", "idempotency_record", ["created_at"], unique=False
    )
    op.create_index(
        "ix_audit_hospital_acted",
        "audit_record",
        ["actor_org", "filing_id"],
        sqlite_where=sa.text("actor_role = 'hospital' AND outcome = 'applied'"),
        postgresql_where=sa.text("actor_role = 'hospital' AND outcome = 'applied'"),
    )


def downgrade() -> None:
    op.drop_index("ix_audit_hospital_acted", table_name="audit_record")
    op.drop_index("ix_idempotency_record_created_at", table_name="idempotency_record")
    op.drop_table("idempotency_record")
    op.drop_table("api_key_record")
