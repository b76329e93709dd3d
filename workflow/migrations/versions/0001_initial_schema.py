"""Initial schema: filings, the append-only hash-chained audit trail, deadlines and pinned policies.

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_record",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("filing_id", sa.String(length=32), nullable=True),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("from_state", sa.String(length=16), nullable=True),
        sa.Column("to_state", sa.String(length=16), nullable=True),
        sa.Column("outcome", sa.String(length=8), nullable=False),
        sa.Column("rule_id", sa.String(length=8), nullable=True),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("inputs", sa.String(), nullable=False),
        sa.Column("actor_id", sa.String(length=64), nullable=False),
        sa.Column("actor_role", sa.String(length=16), nullable=False),
        sa.Column("actor_org", sa.String(length=64), nullable=True),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("on_behalf", sa.Boolean(), nullable=False),
        sa.Column("policy_region", sa.String(length=16), nullable=True),
        sa.Column("policy_version", sa.String(length=32), nullable=True),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("correlation_id", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    with op.batch_alter_table("audit_record", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_record_filing_id"), ["filing_id"], unique=False)

    op.create_table(
        "deadline_record",
        sa.Column("subject_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("provisional", sa.Boolean(), nullable=False),
        sa.Column("rule_id", sa.String(length=8), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("subject_id", "kind", "due_at"),
        sqlite_with_rowid=False,
    )
    with op.batch_alter_table("deadline_record", schema=None) as batch_op:
        batch_op.create_index(
            "ix_deadline_pending_due",
            ["due_at"],
            unique=False,
            sqlite_where=sa.text("fired_at IS NULL"),
            postgresql_where=sa.text("fired_at IS NULL"),
        )

    op.create_table(
        "filing_record",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=4), nullable=False),
        sa.Column("insurance_type", sa.String(length=16), nullable=False),
        sa.Column("insured_region", sa.String(length=6), nullable=False),
        sa.Column("treatment_region", sa.String(length=6), nullable=False),
        sa.Column("person_key", sa.String(length=64), nullable=False),
        sa.Column("person_masked", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("filed_by", sa.String(length=64), nullable=False),
        sa.Column("on_behalf", sa.Boolean(), nullable=False),
        sa.Column("policy_region", sa.String(length=16), nullable=False),
        sa.Column("policy_version", sa.String(length=32), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("documents", sa.String(), nullable=False),
        sa.Column("by_commitment", sa.Boolean(), nullable=False),
        sa.Column("student", sa.Boolean(), nullable=False),
        sa.Column("flexible_employment", sa.Boolean(), nullable=False),
        sa.Column("consent_given", sa.Boolean(), nullable=False),
        sa.Column("effective_on", sa.Date(), nullable=True),
        sa.Column("valid_until", sa.Date(), nullable=True),
        sa.Column("lock_until", sa.Date(), nullable=True),
        sa.Column("entitlement_pending", sa.Boolean(), nullable=False),
        sa.Column("supersedes", sa.String(length=32), nullable=True),
        sa.Column("reason", sa.String(length=40), nullable=True),
        sa.Column("exclusive_key", sa.String(length=96), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("filing_record", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_filing_record_person_key"), ["person_key"], unique=False
        )
        batch_op.create_index(
            "uq_filing_effective_scope",
            ["exclusive_key"],
            unique=True,
            sqlite_where=sa.text("state = 'effective'"),
            postgresql_where=sa.text("state = 'effective'"),
        )

    op.create_table(
        "policy_record",
        sa.Column("region", sa.String(length=16), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("content", sa.String(), nullable=False),
        sa.Column("first_used_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("region", "version"),
    )

    _append_only("audit_record", ("seq",))
    _append_only("policy_record", ("region", "version"))


def _append_only(table: str, key: tuple[str, ...]) -> None:
    """Rows of `table` can be inserted, never updated or deleted: the database refuses it.

    On SQLite, `INSERT OR REPLACE` deletes the old row without firing delete triggers, so an
    insert whose key already exists is refused too."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"""CREATE OR REPLACE FUNCTION {table}_append_only() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION '{table} is append-only'; END $$"""
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_change BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {table}_append_only()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {table}_append_only()"
        )
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
            )
        same_key = " AND ".join(f"{c} = NEW.{c}" for c in key)
        op.execute(
            f"CREATE TRIGGER {table}_no_replace BEFORE INSERT ON {table} "
            f"WHEN EXISTS (SELECT 1 FROM {table} WHERE {same_key}) "
            f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
        )


def _drop_append_only(table: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_change ON {table}")
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        op.execute(f"DROP FUNCTION IF EXISTS {table}_append_only()")
    else:
        for action in ("update", "delete", "replace"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{action}")


def downgrade() -> None:
    _drop_append_only("policy_record")
    _drop_append_only("audit_record")
    op.drop_table("policy_record")
    with op.batch_alter_table("filing_record", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_filing_effective_scope",
            sqlite_where=sa.text("state = 'effective'"),
            postgresql_where=sa.text("state = 'effective'"),
        )
        batch_op.drop_index(batch_op.f("ix_filing_record_person_key"))

    op.drop_table("filing_record")
    with op.batch_alter_table("deadline_record", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_deadline_pending_due",
            sqlite_where=sa.text("fired_at IS NULL"),
            postgresql_where=sa.text("fired_at IS NULL"),
        )

    op.drop_table("deadline_record")
    with op.batch_alter_table("audit_record", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_record_filing_id"))

    op.drop_table("audit_record")
