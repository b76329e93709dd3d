"""The tables. They end in `Record` so they are never mistaken for domain objects; the service
maps rows to `states.filing.Filing` explicitly (transitions cannot attach to a SQLModel object)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlmodel import Field, SQLModel


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Instants are UTC-aware in Python; SQLite, which keeps no zone, gets them as UTC."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: instants must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _instant(**kw: Any) -> Any:
    return Field(sa_type=UTCDateTime, **kw)


class FilingRecord(SQLModel, table=True):
    __tablename__ = "filing_record"
    __table_args__ = (
        # L6: at most one filing holds each exclusive key's scope (NULL where the policy allows
        # more), and every effective filing holds its own (migration 0004).
        sa.Index(
            "uq_filing_effective_scope",
            "exclusive_key",
            unique=True,
            sqlite_where=sa.text("holds_scope"),
            postgresql_where=sa.text("holds_scope"),
        ),
    )

    id: str = Field(primary_key=True, max_length=32)
    version: int
    state: str = Field(max_length=16)
    kind: str = Field(max_length=4)
    insurance_type: str = Field(max_length=16)
    insured_region: str = Field(max_length=6)
    treatment_region: str = Field(max_length=6)
    person_key: str = Field(max_length=64, index=True)
    person_masked: str = Field(max_length=32)
    channel: str = Field(max_length=32)
    filed_by: str = Field(max_length=64)
    on_behalf: bool
    policy_region: str = Field(max_length=16)
    policy_version: str = Field(max_length=32)
    start_date: date
    documents: str  # JSON list of document names
    by_commitment: bool
    student: bool
    flexible_employment: bool
    consent_given: bool
    effective_on: date | None = None
    valid_until: date | None = None
    lock_until: date | None = None
    entitlement_pending: bool = False
    supersedes: str | None = Field(default=None, max_length=32)
    reason: str | None = Field(default=None, max_length=40)
    exclusive_key: str | None = Field(default=None, max_length=96)
    created_at: datetime = _instant()
    updated_at: datetime = _instant()
    # Hospital-side paths (migration 0002)
    admission_id: str | None = Field(default=None, max_length=32, index=True)
    deemed: bool = False
    hospital_reviewed: bool = False
    continues_deductible: bool = False
    # L6 slot (migration 0004): set when the filing takes effect and released only when the
    # next filing of its scope takes effect, so an expiry never rewrites the unique index.
    holds_scope: bool = False
    # The words given with a reason code (migration 0006), checked for personal data first.
    note: str | None = Field(default=None, max_length=200)


class AdmissionRecord(SQLModel, table=True):
    """A stay or visit recorded by a hospital (§5). Mutable like a filing, under `version`;
    every change is in the audit trail under the admission's id."""

    __tablename__ = "admission_record"

    id: str = Field(primary_key=True, max_length=32)
    version: int
    status: str = Field(max_length=16)
    person_key: str = Field(max_length=64, index=True)
    person_masked: str = Field(max_length=32)
    insurance_type: str = Field(max_length=16)
    insured_region: str = Field(max_length=6)
    treatment_region: str = Field(max_length=6)
    hospital_code: str = Field(max_length=32)
    institution: str = Field(max_length=16)
    networked: bool
    care: str = Field(max_length=24)
    admitted_on: date
    emergency: bool
    referral: bool
    transfer_first: bool
    chronic_enabled: bool
    chronic_declared: bool
    policy_region: str = Field(max_length=16)
    policy_version: str = Field(max_length=32)
    hospital_org: str | None = Field(default=None, max_length=64)
    discharged_on: date | None = None
    settlement: str | None = Field(default=None, max_length=16)
    settled_at: datetime | None = _instant(default=None)
    system_fault: bool = False
    deemed_filing_id: str | None = Field(default=None, max_length=32)
    route: str | None = Field(default=None, max_length=24)
    route_rule: str | None = Field(default=None, max_length=8)
    extension: str | None = Field(default=None, max_length=16)
    claim_id: str | None = Field(default=None, max_length=32)
    created_at: datetime = _instant()
    updated_at: datetime = _instant()


class ClaimRecord(SQLModel, table=True):
    """A manual reimbursement claim (手工报销, P5) with its deadline (P6)."""

    __tablename__ = "claim_record"

    id: str = Field(primary_key=True, max_length=32)
    version: int
    status: str = Field(max_length=16)  # open, filed, lapsed
    admission_id: str = Field(max_length=32, index=True)
    person_key: str = Field(max_length=64)
    person_masked: str = Field(max_length=32)
    policy_region: str = Field(max_length=16)
    policy_version: str = Field(max_length=32)
    route_rule: str = Field(max_length=8)  # why the person pays first (P3, P5, E2, E3, E5, E6)
    counted_from: date
    last_day: date
    due_at: datetime = _instant()
    provisional: bool
    documents_required: str  # JSON: list of any-one-of groups
    documents_supplied: str  # JSON list
    self_share_first_percent: int
    reduction_percent: int
    created_at: datetime = _instant()
    updated_at: datetime = _instant()


class AuditRecord(SQLModel, table=True):
    """One row per attempted transition, applied or denied. Append-only (database triggers) and
    hash-chained: `hash` covers the row's content and `prev_hash`."""

    __tablename__ = "audit_record"
    __table_args__ = (
        # The filings a hospital acted on (what its API key may see), without walking the
        # trail: only hospitals' applied records are indexed (migration 0005).
        sa.Index(
            "ix_audit_hospital_acted",
            "actor_org",
            "filing_id",
            sqlite_where=sa.text("actor_role = 'hospital' AND outcome = 'applied'"),
            postgresql_where=sa.text("actor_role = 'hospital' AND outcome = 'applied'"),
        ),
    )

    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    filing_id: str | None = Field(default=None, max_length=32, index=True)
    event: str = Field(max_length=32)
    from_state: str | None = Field(default=None, max_length=16)
    to_state: str | None = Field(default=None, max_length=16)
    outcome: str = Field(max_length=8)
    rule_id: str | None = Field(default=None, max_length=8)
    reason: str
    inputs: str  # canonical JSON of what the rule judged
    actor_id: str = Field(max_length=64)
    actor_role: str = Field(max_length=16)
    actor_org: str | None = Field(default=None, max_length=64)
    channel: str = Field(max_length=32)
    on_behalf: bool
    policy_region: str | None = Field(default=None, max_length=16)
    policy_version: str | None = Field(default=None, max_length=32)
    request_id: str = Field(max_length=64)
    correlation_id: str = Field(max_length=64)
    at: datetime = _instant()
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class DeadlineRecord(SQLModel, table=True):
    """A deadline is a row written with the transition that creates it. Its key is
    (subject, kind, due_at): the same deadline can never be written twice. On SQLite the table
    is clustered on that key (WITHOUT ROWID), one B-tree fewer to write per transition."""

    __tablename__ = "deadline_record"
    __table_args__ = (
        sa.Index(
            "ix_deadline_pending_due",
            "due_at",
            sqlite_where=sa.text("fired_at IS NULL"),
            postgresql_where=sa.text("fired_at IS NULL"),
        ),
        # C6: the pending provisional rows the recount reads, without walking every deadline.
        sa.Index(
            "ix_deadline_pending_provisional",
            "due_at",
            sqlite_where=sa.text("provisional AND fired_at IS NULL"),
            postgresql_where=sa.text("provisional AND fired_at IS NULL"),
        ),
        {"sqlite_with_rowid": False},
    )

    subject_id: str = Field(primary_key=True, max_length=32)
    kind: str = Field(primary_key=True, max_length=32)
    due_at: datetime = _instant(primary_key=True)
    fired_at: datetime | None = _instant(default=None)
    outcome: str | None = Field(default=None, max_length=16)  # "fired" or "retired"
    provisional: bool = False
    rule_id: str = Field(max_length=8)
    created_at: datetime = _instant()
    # A row whose application failed (a bug, not a refusal) stays pending and is retried
    # after `retry_at`, so one bad row never holds up the sweep (migration 0003).
    attempts: int = 0
    last_error: str | None = Field(default=None, max_length=64)
    retry_at: datetime | None = _instant(default=None)


class OutboxRecord(SQLModel, table=True):
    """A reminder to deliver, written in the transaction that fired its deadline row. Its key
    is the deadline's (subject, kind, due_at): a reminder is written exactly once. Delivered by
    a notifier (jobs/outbox.py); a failed delivery stays here, visible, and is retried."""

    __tablename__ = "outbox_record"
    __table_args__ = (
        sa.Index(
            "ix_outbox_pending",
            "next_attempt_at",
            sqlite_where=sa.text("delivered_at IS NULL AND abandoned_at IS NULL"),
            postgresql_where=sa.text("delivered_at IS NULL AND abandoned_at IS NULL"),
        ),
    )

    subject_id: str = Field(primary_key=True, max_length=32)
    kind: str = Field(primary_key=True, max_length=32)
    due_at: datetime = _instant(primary_key=True)
    rule_id: str = Field(max_length=8)
    payload: str  # canonical JSON: ids, kind, instants and rule; never personal data
    created_at: datetime = _instant()
    attempts: int = 0
    next_attempt_at: datetime = _instant()
    claimed_by: str | None = Field(default=None, max_length=64)
    claimed_until: datetime | None = _instant(default=None)
    delivered_at: datetime | None = _instant(default=None)
    # Not sent: what it warned of passed, or its subject moved on, before it could be delivered
    # (audited as `abandon_reminder`).
    abandoned_at: datetime | None = _instant(default=None)
    last_error: str | None = Field(default=None, max_length=200)


class DaemonRecord(SQLModel, table=True):
    """One row per scheduler daemon process: its heartbeat, read by `filing daemon status`."""

    __tablename__ = "daemon_record"

    id: str = Field(primary_key=True, max_length=64)
    host: str = Field(max_length=64)
    pid: int
    started_at: datetime = _instant()
    beat_at: datetime = _instant()
    last_sweep_at: datetime | None = _instant(default=None)
    last_sweep_ms: int | None = None
    fired_total: int = 0
    delivered_total: int = 0
    last_error: str | None = Field(default=None, max_length=200)
    stopped_at: datetime | None = _instant(default=None)


class ApiKeyRecord(SQLModel, table=True):
    """An HTTP API key (migration 0005). Only a SHA-256 of its secret is kept; the secret is
    shown once, when `filing keys issue` makes it. A revoked key stays, for the audit trail."""

    __tablename__ = "api_key_record"

    id: str = Field(primary_key=True, max_length=16)
    secret_hash: str = Field(max_length=64)
    role: str = Field(max_length=16)
    channel: str = Field(max_length=32)
    organisation: str | None = Field(default=None, max_length=64)
    # insured: the person the key acts for (keyed hash and masked form, never the number)
    person_key: str | None = Field(default=None, max_length=64)
    person_masked: str | None = Field(default=None, max_length=32)
    on_behalf: bool = False
    regions: str = "[]"  # JSON list of GB/T 2260 codes an officer or auditor answers for
    label: str = Field(max_length=64)
    created_at: datetime = _instant()
    revoked_at: datetime | None = _instant(default=None)


class IdempotencyRecord(SQLModel, table=True):
    """The stored outcome of a creating request sent with an `Idempotency-Key`, per caller
    (migration 0005). `status` is NULL while the first request is still running."""

    __tablename__ = "idempotency_record"

    key_id: str = Field(primary_key=True, max_length=16)
    idempotency_key: str = Field(primary_key=True, max_length=64)
    fingerprint: str = Field(max_length=64)  # SHA-256 of method, route and body
    request_id: str = Field(max_length=64)
    status: int | None = None
    body: str | None = None
    created_at: datetime = _instant(index=True)


class PolicyRecord(SQLModel, table=True):
    """The resolved content of each (region, version) a filing was ever created under."""

    __tablename__ = "policy_record"

    region: str = Field(primary_key=True, max_length=16)
    version: str = Field(primary_key=True, max_length=32)
    content_hash: str = Field(max_length=64)
    content: str  # canonical JSON, the shape of config.toml
    first_used_at: datetime = _instant()


filing_t: sa.Table = FilingRecord.__table__  # type: ignore[attr-defined]
audit_t: sa.Table = AuditRecord.__table__  # type: ignore[attr-defined]
deadline_t: sa.Table = DeadlineRecord.__table__  # type: ignore[attr-defined]
policy_t: sa.Table = PolicyRecord.__table__  # type: ignore[attr-defined]
admission_t: sa.Table = AdmissionRecord.__table__  # type: ignore[attr-defined]
claim_t: sa.Table = ClaimRecord.__table__  # type: ignore[attr-defined]
outbox_t: sa.Table = OutboxRecord.__table__  # type: ignore[attr-defined]
daemon_t: sa.Table = DaemonRecord.__table__  # type: ignore[attr-defined]
api_key_t: sa.Table = ApiKeyRecord.__table__  # type: ignore[attr-defined]
idempotency_t: sa.Table = IdempotencyRecord.__table__  # type: ignore[attr-defined]
