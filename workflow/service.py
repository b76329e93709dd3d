"""Use cases. Every command has one shape: open a unit of work, load, fire, record, commit,
then log (DESIGN "One transition, one transaction").

A refused transition changes nothing but is itself recorded as a denied attempt, in its own
transaction, and then raised as `TransitionRefused`.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, NoReturn

import sqlalchemy as sa
import structlog

from states.errors import (
    ConcurrentUpdate,
    FilingNotFound,
    InvalidInput,
    PolicyConfigError,
    TransitionRefused,
)
from states.filing import Filing
from states.guards import Attempt, Denial
from states.lifecycle import Application, apply_effects, check_application
from states.periods import WorkCalendar, end_of_local_day, local_date
from states.policy import Policy, policy_for, policy_from_document
from states.table import Transition
from states.vocabulary import (
    Category,
    Channel,
    Document,
    FilingState,
    InsuranceType,
    Kind,
    Outcome,
    Role,
)
from workflow import audit
from workflow.clock import system_clock
from workflow.config import Settings
from workflow.identity import mask, normalise_id_number, person_key, region_exists
from workflow.machine import FilingMachine
from workflow.store import Store, Tx
from workflow.tables import audit_t, deadline_t, filing_t, policy_t

Clock = Callable[[], datetime]
MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class Actor:
    """Who acts, through which channel (L7), and whether for another person (L8)."""

    id: str
    role: Role
    channel: Channel
    organisation: str | None = None
    on_behalf: bool = False


SYSTEM_ACTOR = Actor(id="system", role=Role.SYSTEM, channel=Channel.SYSTEM)


@dataclass(frozen=True)
class Request:
    """Ids that tie a call to the caller's logs and to the audit record."""

    request_id: str
    correlation_id: str

    @classmethod
    def new(cls, request_id: str | None = None, correlation_id: str | None = None) -> Request:
        rid = request_id or secrets.token_hex(16)
        return cls(rid, correlation_id or rid)


@dataclass(frozen=True)
class Deadline:
    kind: str
    due_at: datetime
    fired_at: datetime | None
    provisional: bool
    rule_id: str


def _insert_sql(table: sa.Table, skip: tuple[str, ...] = ()) -> str:
    cols = [c.name for c in table.columns if c.name not in skip]
    return (
        f"INSERT INTO {table.name} ({', '.join(cols)}) VALUES ({', '.join(':' + c for c in cols)})"
    )


_INSERT_FILING = _insert_sql(filing_t)
_INSERT_DEADLINE = _insert_sql(deadline_t)
_INSERT_POLICY = _insert_sql(policy_t)
# Only what a transition can change: SQLite rewrites every index whose columns are SET.
_MUTABLE = (
    "version", "state", "documents", "effective_on", "valid_until", "lock_until",
    "entitlement_pending", "reason", "updated_at",
)  # fmt: skip
_UPDATE_FILING = (
    "UPDATE filing_record SET "
    + ", ".join(f"{c} = :{c}" for c in _MUTABLE)
    + " WHERE id = :id AND version = :expected_version"
)
_COUNT_OTHER_EFFECTIVE = (
    "SELECT count(*) FROM filing_record "
    "WHERE exclusive_key = :k AND state = 'effective' AND id <> :id"
)


class FilingService:
    def __init__(
        self,
        engine: sa.Engine,
        settings: Settings,
        calendar: WorkCalendar,
        clock: Clock = system_clock,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.calendar = calendar
        self.clock = clock
        self.machine = FilingMachine()
        self.log = structlog.get_logger("workflow")
        self.store = Store(engine, [filing_t, audit_t, deadline_t, policy_t])
        self._pinned: dict[tuple[str, str], Policy] = {}

    # -- start-up ----------------------------------------------------------------------------

    def pin_policies(self) -> None:
        """Store each configured policy version; refuse to start if a stored version's content
        differs from config.toml (a filing in flight would silently change rules)."""
        with self.store.write() as tx:
            for region, policy in self.settings.policies.items():
                self._pin(tx, region, policy)

    def _pin(self, tx: Tx, region: str, policy: Policy) -> None:
        key = (region, policy.version)
        if key in self._pinned:
            return
        stored = tx.scalar(
            "SELECT content_hash FROM policy_record WHERE region = :region AND version = :version",
            {"region": region, "version": policy.version},
        )
        if stored is None:
            tx.run(
                _INSERT_POLICY,
                {
                    "region": region,
                    "version": policy.version,
                    "content_hash": policy.content_hash(),
                    "content": json.dumps(policy.to_document(), sort_keys=True, ensure_ascii=False),
                    "first_used_at": self.clock(),
                },
            )
        elif stored != policy.content_hash():
            raise PolicyConfigError(
                f"policy.{region}.version",
                f"version {policy.version} is already pinned by filings with different content; "
                "give the changed policy a new version",
            )
        self._pinned[key] = policy

    def _policy(self, tx: Tx, region: str, version: str) -> Policy:
        key = (region, version)
        policy = self._pinned.get(key)
        if policy is None:
            content = tx.scalar(
                "SELECT content FROM policy_record WHERE region = :region AND version = :version",
                {"region": region, "version": version},
            )
            policy = policy_from_document(region, json.loads(content))
            self._pinned[key] = policy
        return policy

    # -- units of work -----------------------------------------------------------------------

    def _now(self) -> datetime:
        now = self.clock()
        if now.tzinfo is None:
            raise ValueError("the clock returned a naive datetime; instants must be UTC-aware")
        return now

    # -- commands ----------------------------------------------------------------------------

    def create(
        self, application: Application, id_number: str, actor: Actor, request: Request
    ) -> Filing:
        """Create a draft. Bad input raises InvalidInput and writes nothing."""
        number = normalise_id_number(id_number)
        key = person_key(number, self.settings.person_key)
        now = self._now()
        today = local_date(now)
        policy = policy_for(application.insured_region, self.settings.policies)
        with self.store.write() as tx:
            first = (
                tx.one("SELECT id FROM filing_record WHERE person_key = :k LIMIT 1", {"k": key})
                is None
            )
            check_application(
                application, policy, today, first_filing=first, region_exists=region_exists
            )
            self._pin(tx, policy.region, policy)
            filing = Filing(
                id=_new_id(now),
                kind=application.kind,
                insurance_type=application.insurance_type,
                insured_region=application.insured_region,
                treatment_region=application.treatment_region,
                person_key=key,
                person_masked=mask(number),
                channel=actor.channel,
                filed_by=actor.id,
                on_behalf=actor.on_behalf or application.on_behalf,
                policy_region=policy.region,
                policy_version=policy.version,
                start_date=application.start_date or today,
                created_at=now,
                updated_at=now,
                documents=application.documents,
                by_commitment=application.by_commitment,
                student=application.student,
                flexible_employment=application.flexible_employment,
                consent_given=application.consent_given,
            )
            tx.run(_INSERT_FILING, self._row(filing, policy))
            record = self._audit(
                tx, filing, "create", None, FilingState.DRAFT, Outcome.APPLIED, None,
                "filing drafted",
                {"kind": filing.kind.value, "treatment_region": filing.treatment_region},
                actor, request, now,
            )  # fmt: skip
        self._log_applied(filing, "create", None, record, request)
        return filing

    def fire(
        self,
        filing_id: str,
        event: str,
        actor: Actor,
        request: Request,
        *,
        reason: str | None = None,
        supplied: frozenset[Document] = frozenset(),
        expected_version: int | None = None,
    ) -> Filing:
        """Fire `event` on a filing. Retries a lost optimistic race unless the caller pinned
        `expected_version`, in which case the race is the caller's to resolve."""
        for attempt_no in range(MAX_ATTEMPTS):
            try:
                with self.store.write() as tx:
                    filing, policy = self._load(tx, filing_id)
                    if expected_version is not None and filing.version != expected_version:
                        raise ConcurrentUpdate(filing_id, expected_version)
                    outcome = self._fire_in(
                        tx, filing, policy, event, actor, request, reason, supplied
                    )
                    if isinstance(outcome, Denial):
                        denied = self._audit_denial(
                            tx, filing, policy, event, outcome, actor, request
                        )
            except ConcurrentUpdate:
                if expected_version is not None or attempt_no == MAX_ATTEMPTS - 1:
                    raise
                continue
            except self.store.integrity_error:
                # Another filing of the same L6 scope took effect concurrently: retry, and the
                # guard now sees it.
                if attempt_no == MAX_ATTEMPTS - 1:
                    raise
                continue
            if isinstance(outcome, Denial):
                self._refuse(filing, event, outcome, denied, request)
            row, record = outcome
            self._log_applied(filing, event, row.source, record, request)
            return filing
        raise AssertionError("unreachable")

    def change(
        self,
        filing_id: str,
        application: Application,
        id_number: str,
        actor: Actor,
        request: Request,
    ) -> tuple[Filing, Filing]:
        """L5: cancel a filing and file its replacement, as one audited operation: either both
        happen or neither (the refusal is recorded against the old filing)."""
        number = normalise_id_number(id_number)
        key = person_key(number, self.settings.person_key)
        for attempt_no in range(MAX_ATTEMPTS):
            try:
                with self.store.write() as tx:
                    old, old_policy = self._load(tx, filing_id)
                    if old.person_key != key:
                        raise InvalidInput(
                            "id_number", "L5", "a change replaces a filing of the same person"
                        )
                    outcome = self._fire_in(
                        tx, old, old_policy, "change", actor, request, "change", frozenset()
                    )
                    if isinstance(outcome, Denial):
                        denied = self._audit_denial(
                            tx, old, old_policy, "change", outcome, actor, request
                        )
                    else:
                        now = self._now()
                        policy = policy_for(application.insured_region, self.settings.policies)
                        check_application(
                            application,
                            policy,
                            local_date(now),
                            first_filing=False,
                            region_exists=region_exists,
                        )
                        self._pin(tx, policy.region, policy)
                        new = replace(
                            old,
                            id=_new_id(now),
                            kind=application.kind,
                            insurance_type=application.insurance_type,
                            insured_region=application.insured_region,
                            treatment_region=application.treatment_region,
                            channel=actor.channel,
                            filed_by=actor.id,
                            on_behalf=actor.on_behalf or application.on_behalf,
                            policy_region=policy.region,
                            policy_version=policy.version,
                            start_date=application.start_date or local_date(now),
                            created_at=now,
                            updated_at=now,
                            documents=application.documents,
                            by_commitment=application.by_commitment,
                            student=application.student,
                            flexible_employment=application.flexible_employment,
                            consent_given=application.consent_given,
                            state=FilingState.DRAFT,
                            version=1,
                            effective_on=None,
                            valid_until=None,
                            lock_until=None,
                            entitlement_pending=False,
                            supersedes=old.id,
                            reason=None,
                        )
                        tx.run(_INSERT_FILING, self._row(new, policy))
                        self._audit(
                            tx, new, "create", None, FilingState.DRAFT, Outcome.APPLIED, "L5",
                            f"replacement for filing {old.id}", {"supersedes": old.id},
                            actor, request, now,
                        )  # fmt: skip
                        sub = self._fire_in(
                            tx, new, policy, "submit", actor, request, None, frozenset()
                        )
                        if isinstance(sub, Denial):
                            # Nothing of the change may remain: undo, then record the refusal.
                            raise _ChangeRefused(sub)
            except _ChangeRefused as refused:
                with self.store.write() as tx:
                    old, old_policy = self._load(tx, filing_id)
                    denial = Denial(
                        refused.denial.rule_id,
                        "the replacement filing was refused: " + refused.denial.reason,
                        refused.denial.inputs,
                    )
                    denied = self._audit_denial(
                        tx, old, old_policy, "change", denial, actor, request
                    )
                self._refuse(old, "change", denial, denied, request)
            except (ConcurrentUpdate, self.store.integrity_error):
                if attempt_no == MAX_ATTEMPTS - 1:
                    raise
                continue
            if isinstance(outcome, Denial):
                self._refuse(old, "change", outcome, denied, request)
            self.log.info(
                "filing.changed",
                filing_id=old.id,
                replacement_id=new.id,
                request_id=request.request_id,
            )
            return old, new
        raise AssertionError("unreachable")

    # -- the transition itself ---------------------------------------------------------------

    def _fire_in(
        self,
        tx: Tx,
        filing: Filing,
        policy: Policy,
        event: str,
        actor: Actor,
        request: Request,
        reason: str | None,
        supplied: frozenset[Document],
    ) -> tuple[Transition, dict[str, Any]] | Denial:
        """Guards, state change, version bump, deadlines and audit, inside `tx`.
        Returns the denial instead when a rule refuses (the caller records it)."""
        now = self._now()
        key = _exclusive_key(filing, policy)

        def other_effective() -> int:
            if key is None:
                return 0
            return int(tx.scalar(_COUNT_OTHER_EFFECTIVE, {"k": key, "id": filing.id}))

        attempt = Attempt(
            filing, policy, event, now, local_date(now), reason, supplied, other_effective
        )
        fired = self.machine.fire(event, attempt, actor.role)
        if fired.row is None:
            assert fired.denial is not None
            return fired.denial
        row = fired.row
        version = filing.version
        apply_effects(filing, row, attempt)
        filing.state = row.dest
        filing.version = version + 1
        filing.updated_at = now
        values = {c: getattr(filing, c) for c in _MUTABLE}
        values["state"] = filing.state.value
        values["documents"] = json.dumps(sorted(filing.documents))
        values["id"] = filing.id
        values["expected_version"] = version
        if tx.run(_UPDATE_FILING, values) != 1:
            raise ConcurrentUpdate(filing.id, version)
        if row.dest is FilingState.EFFECTIVE and row.source is not FilingState.EFFECTIVE:
            self._write_validity_deadline(tx, filing, now)
        inputs = _judged(filing, row, attempt)
        record = self._audit(
            tx, filing, event, row.source, row.dest, Outcome.APPLIED, row.rule,
            reason or f"{event} applied", inputs, actor, request, now,
        )  # fmt: skip
        return row, record

    def _write_validity_deadline(self, tx: Tx, filing: Filing, now: datetime) -> None:
        """The expiry deadline is a row in the same transaction (DESIGN; fired by jobs/)."""
        if filing.valid_until is None:
            return
        tx.run(
            _INSERT_DEADLINE,
            {
                "subject_id": filing.id,
                "kind": "expire",
                "due_at": end_of_local_day(filing.valid_until),
                "fired_at": None,
                "provisional": False,  # a validity period is never extended (C5)
                "rule_id": "V1" if filing.category is Category.LONG_TERM else "V3",
                "created_at": now,
            },
        )

    def _audit(
        self,
        tx: Tx,
        filing: Filing | None,
        event: str,
        from_state: FilingState | None,
        to_state: FilingState | None,
        outcome: Outcome,
        rule_id: str | None,
        reason: str,
        inputs: Mapping[str, Any],
        actor: Actor,
        request: Request,
        at: datetime,
    ) -> dict[str, Any]:
        return audit.append(
            tx,
            {
                "filing_id": filing.id if filing else None,
                "event": event,
                "from_state": from_state.value if from_state else None,
                "to_state": to_state.value if to_state else None,
                "outcome": outcome.value,
                "rule_id": rule_id,
                "reason": reason,
                "inputs": audit.canonical_inputs(inputs),
                "actor_id": actor.id,
                "actor_role": actor.role.value,
                "actor_org": actor.organisation,
                "channel": actor.channel.value,
                "on_behalf": actor.on_behalf,
                "policy_region": filing.policy_region if filing else None,
                "policy_version": filing.policy_version if filing else None,
                "request_id": request.request_id,
                "correlation_id": request.correlation_id,
                "at": at,
            },
        )

    def _audit_denial(
        self,
        tx: Tx,
        filing: Filing,
        policy: Policy,
        event: str,
        denial: Denial,
        actor: Actor,
        request: Request,
    ) -> dict[str, Any]:
        return self._audit(
            tx, filing, event, filing.state, None, Outcome.DENIED, denial.rule_id,
            denial.reason, denial.inputs, actor, request, self._now(),
        )  # fmt: skip

    def _refuse(
        self,
        filing: Filing,
        event: str,
        denial: Denial,
        record: Mapping[str, Any],
        request: Request,
    ) -> NoReturn:
        self.log.info(
            "filing.transition_denied",
            filing_id=filing.id,
            trigger=event,
            state=filing.state.value,
            rule_id=denial.rule_id,
            audit_seq=record["seq"],
            request_id=request.request_id,
        )
        raise TransitionRefused(
            filing_id=filing.id,
            event=event,
            state=filing.state.value,
            rule_id=denial.rule_id,
            reason=denial.reason,
            inputs=denial.inputs,
        )

    def _log_applied(
        self,
        filing: Filing,
        event: str,
        from_state: FilingState | None,
        record: Mapping[str, Any],
        request: Request,
    ) -> None:
        self.log.info(
            "filing.transition_applied",
            filing_id=filing.id,
            trigger=event,
            from_state=from_state.value if from_state else None,
            to_state=filing.state.value,
            version=filing.version,
            rule_id=record["rule_id"],
            policy=f"{filing.policy_region}@{filing.policy_version}",
            audit_seq=record["seq"],
            request_id=request.request_id,
            correlation_id=request.correlation_id,
        )

    # -- rows <-> filings --------------------------------------------------------------------

    def _load(self, tx: Tx, filing_id: str) -> tuple[Filing, Policy]:
        row = tx.one("SELECT * FROM filing_record WHERE id = :id", {"id": filing_id})
        if row is None:
            raise FilingNotFound(filing_id)
        filing = _filing_from_row(row)
        return filing, self._policy(tx, filing.policy_region, filing.policy_version)

    def _row(self, filing: Filing, policy: Policy) -> dict[str, Any]:
        return {
            "id": filing.id,
            "version": filing.version,
            "state": filing.state.value,
            "kind": filing.kind.value,
            "insurance_type": filing.insurance_type.value,
            "insured_region": filing.insured_region,
            "treatment_region": filing.treatment_region,
            "person_key": filing.person_key,
            "person_masked": filing.person_masked,
            "channel": filing.channel.value,
            "filed_by": filing.filed_by,
            "on_behalf": filing.on_behalf,
            "policy_region": filing.policy_region,
            "policy_version": filing.policy_version,
            "start_date": filing.start_date,
            "documents": json.dumps(sorted(filing.documents)),
            "by_commitment": filing.by_commitment,
            "student": filing.student,
            "flexible_employment": filing.flexible_employment,
            "consent_given": filing.consent_given,
            "effective_on": filing.effective_on,
            "valid_until": filing.valid_until,
            "lock_until": filing.lock_until,
            "entitlement_pending": filing.entitlement_pending,
            "supersedes": filing.supersedes,
            "reason": filing.reason,
            "exclusive_key": _exclusive_key(filing, policy),
            "created_at": filing.created_at,
            "updated_at": filing.updated_at,
        }

    # -- queries -----------------------------------------------------------------------------

    def get(self, filing_id: str) -> Filing:
        with self.store.read() as tx:
            return self._load(tx, filing_id)[0]

    def policy_of(self, filing: Filing) -> Policy:
        with self.store.read() as tx:
            return self._policy(tx, filing.policy_region, filing.policy_version)

    def for_person(self, id_number: str, *, effective_only: bool = False) -> list[Filing]:
        key = person_key(normalise_id_number(id_number), self.settings.person_key)
        sql = "SELECT * FROM filing_record WHERE person_key = :k"
        if effective_only:
            sql += " AND state = 'effective'"
        with self.store.read() as tx:
            rows = tx.all(sql + " ORDER BY created_at, id", {"k": key})
        filings = [_filing_from_row(r) for r in rows]
        if effective_only:
            today = local_date(self._now())
            filings = [f for f in filings if f.valid_until is None or today <= f.valid_until]
        return filings

    def history(self, filing_id: str) -> list[dict[str, Any]]:
        with self.store.read() as tx:
            self._load(tx, filing_id)
            rows = tx.all(
                "SELECT * FROM audit_record WHERE filing_id = :id ORDER BY seq", {"id": filing_id}
            )
        return [{**r, "inputs": json.loads(r["inputs"])} for r in rows]

    def deadlines(self, filing_id: str) -> list[Deadline]:
        with self.store.read() as tx:
            rows = tx.all(
                "SELECT * FROM deadline_record WHERE subject_id = :id ORDER BY due_at",
                {"id": filing_id},
            )
        return [
            Deadline(r["kind"], r["due_at"], r["fired_at"], r["provisional"], r["rule_id"])
            for r in rows
        ]

    def verify(self, against: audit.Checkpoint | None = None) -> audit.Verification:
        with self.store.read() as tx:
            return audit.verify(audit.stream(tx), against)

    def checkpoint(self) -> audit.Checkpoint:
        with self.store.read() as tx:
            return audit.head(tx)


class _ChangeRefused(Exception):
    def __init__(self, denial: Denial) -> None:
        self.denial = denial


def _new_id(now: datetime) -> str:
    """Opaque, time-ordered (good index locality): 12 hex of milliseconds + 12 random."""
    return f"{int(now.timestamp() * 1000):012x}{secrets.token_hex(6)}"


def _exclusive_key(filing: Filing, policy: Policy) -> str | None:
    if not policy.one_effective_per_scope:
        return None
    return f"{filing.person_key}:{filing.insurance_type.value}:{filing.treatment_region}"


def _judged(filing: Filing, row: Transition, attempt: Attempt) -> dict[str, Any]:
    """The inputs an auditor needs to see why an applied transition was allowed."""
    inputs: dict[str, Any] = {"today": str(attempt.today)}
    if row.dest is FilingState.EFFECTIVE and row.source is not FilingState.EFFECTIVE:
        inputs.update(
            effective_on=str(filing.effective_on),
            valid_until=str(filing.valid_until) if filing.valid_until else "indefinite",
            lock_ends_on=str(filing.lock_until) if filing.lock_until else None,
            instant=row.source is FilingState.DRAFT,
            entitlement_pending=filing.entitlement_pending,
        )
    if row.event in ("cancel", "change"):
        inputs.update(effective_on=str(filing.effective_on), lock_ends_on=str(filing.lock_until))
    if row.event == "expire":
        inputs.update(valid_until=str(filing.valid_until))
    if row.event == "supply_documents":
        inputs.update(supplied=sorted(attempt.supplied))
    return inputs


def _filing_from_row(r: Mapping[str, Any]) -> Filing:
    return Filing(
        id=r["id"],
        kind=Kind(r["kind"]),
        insurance_type=InsuranceType(r["insurance_type"]),
        insured_region=r["insured_region"],
        treatment_region=r["treatment_region"],
        person_key=r["person_key"],
        person_masked=r["person_masked"],
        channel=Channel(r["channel"]),
        filed_by=r["filed_by"],
        on_behalf=r["on_behalf"],
        policy_region=r["policy_region"],
        policy_version=r["policy_version"],
        start_date=r["start_date"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
        documents=frozenset(Document(d) for d in json.loads(r["documents"])),
        by_commitment=r["by_commitment"],
        student=r["student"],
        flexible_employment=r["flexible_employment"],
        consent_given=r["consent_given"],
        state=FilingState(r["state"]),
        version=r["version"],
        effective_on=r["effective_on"],
        valid_until=r["valid_until"],
        lock_until=r["lock_until"],
        entitlement_pending=r["entitlement_pending"],
        supersedes=r["supersedes"],
        reason=r["reason"],
    )
