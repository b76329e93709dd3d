"""Hospital-side paths: admissions, manual reimbursement claims, and the filing's link to them.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_INSTANT = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("filing_record", schema=None) as batch_op:
        batch_op.add_column(sa.Column("admission_id", sa.String(length=32), nullable=True))
        for name in ("deemed", "hospital_reviewed", "continues_deductible"):
            batch_op.add_column(
                sa.Column(name, sa.Boolean(), nullable=False, server_default=sa.false())
            )
        batch_op.create_index("ix_filing_record_admission_id", ["admission_id"], unique=False)

    op.create_table(
        "admission_record",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("person_key", sa.String(length=64), nullable=False),
        sa.Column("person_masked", sa.String(length=32), nullable=False),
        sa.Column("insurance_type", sa.String(length=16), nullable=False),
        sa.Column("insured_region", sa.String(length=6), nullable=False),
        sa.Column("treatment_region", sa.String(length=6), nullable=False),
        sa.Column("hospital_code", sa.String(length=32), nullable=False),
        sa.Column("institution", sa.String(length=16), nullable=False),
        sa.Column("networked", sa.Boolean(), nullable=False),
        sa.Column("care", sa.String(length=24), nullable=False),
        sa.Column("admitted_on", sa.Date(), nullable=False),
        sa.Column("emergency", sa.Boolean(), nullable=False),
        sa.Column("referral", sa.Boolean(), nullable=False),
        sa.Column("transfer_first", sa.Boolean(), nullable=False),
        sa.Column("chronic_enabled", sa.Boolean(), nullable=False),
        sa.Column("chronic_declared", sa.Boolean(), nullable=False),
        sa.Column("policy_region", sa.String(length=16), nullable=False),
        sa.Column("policy_version", sa.String(length=32), nullable=False),
        sa.Column("hospital_org", sa.String(length=64), nullable=True),
        sa.Column("discharged_on", sa.Date(), nullable=True),
        sa.Column("settlement", sa.String(length=16), nullable=True),
        sa.Column("settled_at", _INSTANT, nullable=True),
        sa.Column("system_fault", sa.Boolean(), nullable=False),
        sa.Column("deemed_filing_id", sa.String(length=32), nullable=True),
        sa.Column("route", sa.String(length=24), nullable=True),
        sa.Column("route_rule", sa.String(length=8), nullable=True),
        sa.Column("extension", sa.String(length=16), nullable=True),
        sa.Column("claim_id", sa.String(length=32), nullable=True),
        sa.Column("created_at", _INSTANT, nullable=False),
        sa.Column("updated_at", _INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_admission_record_person_key", "admission_record", ["person_key"])

    op.create_table(
        "claim_record",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("admission_id", sa.String(length=32), nullable=False),
        sa.Column("person_key", sa.String(length=64), nullable=False),
        sa.Column("person_masked", sa.String(length=32), nullable=False),
        sa.Column("policy_region", sa.String(length=16), nullable=False),
        sa.Column("policy_version", sa.String(length=32), nullable=False),
        sa.Column("route_rule", sa.String(length=8), nullable=False),
        sa.Column("counted_from", sa.Date(), nullable=False),
        sa.Column("last_day", sa.Date(), nullable=False),
        sa.Column("due_at", _INSTANT, nullable=False),
        sa.Column("provisional", sa.Boolean(), nullable=False),
        sa.Column("documents_required", sa.String(), nullable=False),
        sa.Column("documents_supplied", sa.String(), nullable=False),
        sa.Column("self_share_first_percent", sa.Integer(), nullable=False),
        sa.Column("reduction_percent", sa.Integer(), nullable=False),
        sa.Column("created_at", _INSTANT, nullable=False),
        sa.Column("updated_at", _INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_claim_record_admission_id", "claim_record", ["admission_id"])


def downgrade() -> None:
    op.drop_index("ix_claim_record_admission_id", table_name="claim_record")
    op.drop_table("claim_record")
    op.drop_index("ix_admission_record_person_key", table_name="admission_record")
    op.drop_table("admission_record")
    with op.batch_alter_table("filing_record", schema=None) as batch_op:
        batch_op.drop_index("ix_filing_record_admission_id")
        for name in ("continues_deductible", "hospital_reviewed", "deemed", "admission_id"):
            batch_op.drop_column(name)
