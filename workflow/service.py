"""Use cases. Every command has one shape: open a unit of work, load, fire, record, commit,
then log (one transition, one transaction: ARCHITECTURE.md).

A refused transition changes nothing but is itself recorded as a denied attempt, in its own
transaction, and then raised as `TransitionRefused`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
import structlog

from states.denial import Denial
from states.errors import (
    ConcurrentUpdate,
    FilingNotFound,
    InvalidInput,
    PolicyConfigError,
    Refused,
)
from states.filing import Filing
from states.guards import Attempt, validity_ended
from states.lifecycle import (
    Application,
    apply_effects,
    check_application,
    expiry_reminders_at,
)
from states.periods import WorkCalendar, end_of_local_day, local_date
from states.policy import NATIONAL, Policy, policy_for, policy_from_document
from states.reasons import INSURANCE_STOPPED, Reason, check_reason, reason_rule
from states.regions import area_of, contains
from states.table import TRANSITIONS, Transition
from states.vocabulary import (
    FINAL_STATES,
    Category,
    Channel,
    Document,
    FilingState,
    InsuranceType,
    Kind,
    Outcome,
)
from workflow import audit
from workflow.clock import system_clock
from workflow.config import Settings
from workflow.context import SYSTEM_ACTOR as SYSTEM_ACTOR
from workflow.context import Actor as Actor
from workflow.context import (
    Attempted,
    _check_request,
    _refusal,
    _Refused,
    application_inputs,
    check_version,
    new_id,
)
from workflow.context import Request as Request
from workflow.hospital import EXPIRY_REMINDER, HospitalSide
from workflow.identity import (
    mask,
    normalise_id_number,
    person_key,
    personal_data_in,
    region_exists,
)
from workflow.machine import FilingMachine
from workflow.store import Store, Tx, insert_sql
from workflow.tables import (
    admission_t,
    api_key_t,
    audit_t,
    claim_t,
    daemon_t,
    deadline_t,
    filing_t,
    idempotency_t,
    outbox_t,
    policy_t,
)

Clock = Callable[[], datetime]
MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class Deadline:
    kind: str
    due_at: datetime
    fired_at: datetime | None
    outcome: str | None  # None: pending; "fired"; "retired" (the filing left its state first)
    provisional: bool
    rule_id: str


_INSERT_FILING = insert_sql(filing_t)
_INSERT_POLICY = insert_sql(policy_t)
# Only what a transition can change: SQLite rewrites every index whose columns are SET.
_MUTABLE = (
    "version", "state", "documents", "effective_on", "valid_until", "lock_until",
    "entitlement_pending", "reason", "note", "updated_at", "hospital_reviewed",
    "continues_deductible",
)  # fmt: skip
_UPDATE_FILING = (
    "UPDATE filing_record SET "
    + ", ".join(f"{c} = :{c}" for c in _MUTABLE)
    + ", holds_scope = (holds_scope OR :entering)"
    + " WHERE id = :id AND version = :expected_version"
)
# L6: a filing taking effect takes its scope's slot from whichever filing of the scope last
# held it and has since left effective (expired, cancelled, lapsed). Leaving effective keeps
# the slot, so the scheduler's expiries never rewrite the unique index: a random-page write in
# an index as large as the table, which made the sweep's cost grow with filings not due.
_RELEASE_SCOPE = (
    "UPDATE filing_record SET holds_scope = :no "
    "WHERE exclusive_key = :k AND holds_scope AND state <> 'effective'"
)
_OTHER_EFFECTIVE = (
    "SELECT id FROM filing_record "
    "WHERE exclusive_key = :k AND holds_scope AND state = 'effective' "
    "AND id <> :id AND id <> :sup"
)
# The deadline that an event is the effect of fired (an expiry, a closed window); any other
# pending deadline of the subject is moot.
_SETTLE_DEADLINES = (
    "UPDATE deadline_record SET fired_at = :at, "
    "outcome = CASE WHEN kind = :kind THEN 'fired' ELSE 'retired' END "
    "WHERE subject_id = :id AND fired_at IS NULL"
)
_EFFECT_OF = {"expire": "expire", "close_window": "filing_window"}
# 停保 applies to every filing the table lets stop_insurance move (states/table.py).
_STOPPABLE = sorted(t.source.value for t in TRANSITIONS if t.event == "stop_insurance")
_OPEN_FILINGS_OF_PERSON = (
    "SELECT * FROM filing_record WHERE person_key = :k AND insurance_type = :t "
    f"AND state IN ({', '.join(repr(s) for s in _STOPPABLE)}) ORDER BY created_at, id"
)
_STATE_OF = {"filing_record": "state", "admission_record": "status", "claim_record": "status"}
_RETRO_RULES = frozenset({"E2", "E3", "E5", "E7"})
# States whose pending deadlines stop applying when the filing leaves them.
_COVERING = frozenset({FilingState.EFFECTIVE, FilingState.DEEMED})

_T = TypeVar("_T")


def _check_version(filing: Filing, expected: int | None, event: str) -> None:
    check_version(
        filing.id, filing.version, expected, event, filing.state.value,
        (filing.policy_region, filing.policy_version),
    )  # fmt: skip


class FilingService(HospitalSide):
    def __init__(
        self,
        engine: sa.Engine,
        settings: Settings,
        calendar: WorkCalendar,
        clock: Clock = system_clock,
        *,
        read_only: bool = False,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.calendar = calendar
        self.clock = clock
        self.machine = FilingMachine()
        self.log = structlog.get_logger("workflow")
        self.store = Store(
            engine,
            [
                *(filing_t, audit_t, deadline_t, policy_t, admission_t, claim_t),
                *(outbox_t, daemon_t, api_key_t, idempotency_t),
            ],
            read_only=read_only,
            busy_seconds=settings.busy_timeout_ms / 1000,
        )
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
            policy = policy_from_document(
                region, json.loads(content), self.settings.policies[NATIONAL]
            )
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
        """Create a draft. Bad input raises InvalidInput and writes nothing of the filing; a
        rule's refusal is recorded as a denied `create` attempt."""
        _check_request(actor, request)
        attempt = Attempted(
            "create", None, self._policy_ref(application.insured_region),
            {**application_inputs(application), **self._person_inputs(id_number)},
        )  # fmt: skip

        def work(tx: Tx, journal: list[dict[str, Any]]) -> Filing:
            number = normalise_id_number(
                id_number, local_date(self._now())
            )  # M1: refused inside, so it is recorded
            return self._new_draft(tx, application, number, actor, request, journal)

        return self._run(work, request, actor=actor, attempted=attempt)

    def fire(
        self,
        filing_id: str,
        event: str,
        actor: Actor,
        request: Request,
        *,
        reason: str | None = None,
        note: str | None = None,
        supplied: frozenset[Document] = frozenset(),
        expected_version: int | None = None,
    ) -> Filing:
        """Fire `event` on a filing. Retries a lost optimistic race unless the caller pinned
        `expected_version`, in which case the race is the caller's to resolve."""
        _check_request(actor, request)
        attempt = Attempted(event, filing_id, None, {})

        def work(tx: Tx, journal: list[dict[str, Any]]) -> Filing | _Refused:
            filing, policy = self._load(tx, filing_id)
            _check_version(filing, expected_version, event)
            _check_reason(self.settings.reasons, event, reason, note)
            state = filing.state
            denial = self._fire_in(
                tx, filing, policy, event, actor, request, journal, reason, supplied, note
            )
            if denial is not None:
                return _Refused(_refusal(filing_id, event, state, denial))
            return filing

        return self._run(
            work, request, retry_stale=expected_version is None, actor=actor, attempted=attempt
        )

    def change(
        self,
        filing_id: str,
        application: Application,
        id_number: str,
        actor: Actor,
        request: Request,
        *,
        expected_version: int | None = None,
    ) -> tuple[Filing, Filing]:
        """L5: a change is the old filing's cancellation plus a new filing. The lock is judged
        now; the old filing is cancelled in the same transaction in which its replacement takes
        effect: at once where effect is instant, otherwise when the agency approves it. Until
        then the old filing stays effective, so a rejected replacement leaves the person covered.
        A refusal, by a rule of the change or of the replacement's fields, is recorded against
        the old filing as a denied `change`; nothing of the change remains."""
        _check_request(actor, request)
        attempt = Attempted(
            "change", filing_id, None,
            {**application_inputs(application), **self._person_inputs(id_number)},
        )  # fmt: skip

        def work(tx: Tx, journal: list[dict[str, Any]]) -> tuple[Filing, Filing] | _Refused:
            old, old_policy = self._load(tx, filing_id)
            number = normalise_id_number(id_number, local_date(self._now()))
            if old.person_key != person_key(number, self.settings.person_key):
                raise InvalidInput(
                    "id_number", "L5", "a change replaces a filing of the same person"
                )
            _check_version(old, expected_version, "change")
            # Judged now, applied when the replacement takes effect (_cancel_superseded).
            _, denial, _ = self._decide(
                tx, old, old_policy, "change", actor, request, journal, "change", frozenset()
            )
            if denial is not None:
                return self._refused_change(tx, old, denial, actor, request, journal)
            new = self._new_draft(tx, application, number, actor, request, journal, old.id)
            policy = self._policy(tx, new.policy_region, new.policy_version)
            denial = self._fire_in(tx, new, policy, "submit", actor, request, journal)
            if denial is not None:
                raise _ChangeRefused(denial)  # nothing of the change may remain
            if new.state is FilingState.EFFECTIVE:
                old = self._load(tx, filing_id)[0]  # cancelled with the replacement's effect
            return old, new

        try:
            return self._run(
                work,
                request,
                retry_stale=expected_version is None,
                actor=actor,
                attempted=attempt,
            )
        except _ChangeRefused as refused:
            denial = Denial(
                refused.denial.rule_id,
                "the replacement filing was refused: " + refused.denial.reason,
                refused.denial.inputs,
            )

            def record(tx: Tx, journal: list[dict[str, Any]]) -> _Refused:
                old = self._load(tx, filing_id)[0]
                return self._refused_change(tx, old, denial, actor, request, journal)

            self._run(record, request)
            raise AssertionError("unreachable") from None

    def _refused_change(
        self,
        tx: Tx,
        old: Filing,
        denial: Denial,
        actor: Actor,
        request: Request,
        journal: list[dict[str, Any]],
    ) -> _Refused:
        journal.append(self._audit_denial(tx, old, "change", denial, actor, request))
        return _Refused(_refusal(old.id, "change", old.state, denial))

    def stop_insurance_for_person(
        self,
        id_number: str,
        insurance_type: InsuranceType,
        actor: Actor,
        request: Request,
        regions: tuple[str, ...] = (),
    ) -> list[Filing]:
        """停保: the person's insurance of this type stopped; every open filing of theirs under
        it lapses (drafts and filings under review included), in one transaction. With
        `regions`, only the filings insured in them: an agency stops what it serves."""
        _check_request(actor, request)
        attempt = Attempted(
            "stop_insurance", None, (None, None),
            {"insurance_type": insurance_type.value, **self._person_inputs(id_number)},
        )  # fmt: skip

        def work(tx: Tx, journal: list[dict[str, Any]]) -> list[Filing] | _Refused:
            key = person_key(
                normalise_id_number(id_number, local_date(self._now())), self.settings.person_key
            )
            rows = tx.all(_OPEN_FILINGS_OF_PERSON, {"k": key, "t": insurance_type.value})
            if regions:
                rows = [r for r in rows if any(contains(a, r["insured_region"]) for a in regions)]
            lapsed = []
            for row in rows:
                filing = _filing_from_row(row)
                policy = self._policy(tx, filing.policy_region, filing.policy_version)
                state = filing.state
                denial = self._fire_in(
                    tx,
                    filing,
                    policy,
                    "stop_insurance",
                    actor,
                    request,
                    journal,
                    INSURANCE_STOPPED,
                )
                if denial is not None:
                    return _Refused(_refusal(filing.id, "stop_insurance", state, denial))
                lapsed.append(filing)
            return lapsed

        return self._run(work, request, actor=actor, attempted=attempt)

    # -- the unit of work --------------------------------------------------------------------

    def _run(
        self,
        work: Callable[[Tx, list[dict[str, Any]]], _T | _Refused],
        request: Request,
        *,
        retry_stale: bool = True,
        actor: Actor | None = None,
        attempted: Attempted | None = None,
    ) -> _T:
        """Run `work` in one write transaction, log what it recorded once it has committed, and
        raise a refusal it returned (the refusal's audit record is committed with it).

        A lost optimistic race (ConcurrentUpdate) or a concurrent insert into the L6 index
        (IntegrityError) is retried from a fresh read; the rules then see the other writer's
        result, and usually refuse, which is recorded. A race the caller pinned with
        `expected_version` is not retried: it is recorded as a denied attempt (R1) once the
        loser has rolled back, then raised. So is a field a rule refused (InvalidInput with a
        rule id) in the command `attempted` names; a malformed request (no rule id) is not."""
        for attempt_no in range(MAX_ATTEMPTS):
            last = attempt_no == MAX_ATTEMPTS - 1
            journal: list[dict[str, Any]] = []
            try:
                with self.store.write() as tx:
                    result = work(tx, journal)
                    if request.seal is not None:
                        request.seal(tx, result.error if isinstance(result, _Refused) else result)
            except ConcurrentUpdate as stale:
                if retry_stale and not last:
                    continue
                if actor is not None and stale.event is not None:
                    subject = Attempted(stale.event, stale.filing_id, stale.policy, {}, stale.state)
                    self._record_refusal(stale, subject, actor, request)
                raise
            except InvalidInput as invalid:
                if actor is not None and attempted is not None and invalid.rule_id is not None:
                    self._record_refusal(invalid, attempted, actor, request)
                raise
            except self.store.integrity_error:
                if last:
                    raise
                continue
            for record in journal:
                self._log(record)
            if isinstance(result, _Refused):
                raise result.error
            return result
        raise AssertionError("unreachable")

    def _record_refusal(
        self, error: Refused, attempted: Attempted, actor: Actor, request: Request
    ) -> None:
        """Record a command's refusal as a denied attempt in a transaction of its own (the
        command's own was rolled back), then raise it; an idempotent answer is sealed with it."""

        def record(tx: Tx, journal: list[dict[str, Any]]) -> _Refused:
            policy = attempted.policy
            if policy is None:
                row = tx.one(
                    f"SELECT policy_region, policy_version, {_STATE_OF[attempted.table]} AS state"
                    f" FROM {attempted.table} WHERE id = :id",
                    {"id": attempted.subject_id},
                )
                policy = (row["policy_region"], row["policy_version"]) if row else (None, None)
                attempted_state = row["state"] if row else None
            else:
                attempted_state = attempted.state
            journal.append(
                self._audit_subject(
                    tx,
                    attempted.subject_id,
                    policy,
                    attempted.event,
                    attempted_state,
                    None,
                    Outcome.DENIED,
                    error.rule_id,
                    str(error),
                    {**attempted.inputs, **error.inputs},
                    actor,
                    request,
                    self._now(),
                )
            )
            return _Refused(error)

        self._run(record, request)

    def _person_inputs(self, id_number: str) -> dict[str, Any]:
        """The person as a refusal's record names them: the keyed hash and the masked form of a
        valid number; nothing of a number that is not one (M1 refused it)."""
        try:
            number = normalise_id_number(id_number, local_date(self._now()))
        except InvalidInput:
            return {}
        return {
            "person_key": person_key(number, self.settings.person_key),
            "person_masked": mask(number),
        }

    def _policy_ref(self, region: str) -> tuple[str | None, str | None]:
        policy = policy_for(region, self.settings.policies)
        return (policy.region, policy.version)

    # -- the transition itself ---------------------------------------------------------------

    def _decide(
        self,
        tx: Tx,
        filing: Filing,
        policy: Policy,
        event: str,
        actor: Actor,
        request: Request,
        journal: list[dict[str, Any]],
        reason: str | None,
        supplied: frozenset[Document],
        note: str | None = None,
    ) -> tuple[Attempt, Denial | None, Transition | None]:
        """Whether the rules allow `event` now, and by which row; changes nothing."""
        now = self._now()

        def other_effective() -> int:
            return self._other_effective(tx, filing, policy, now, request, journal)

        admission = self._load_admission(tx, filing.admission_id) if filing.admission_id else None
        attempt = Attempt(
            filing, policy, event, now, local_date(now), reason, supplied, other_effective,
            admission=admission, calendar=self.calendar, actor_id=actor.id, note=note,
        )  # fmt: skip
        fired = self.machine.fire(event, attempt, actor.role)
        return attempt, fired.denial, fired.row

    def _fire_in(
        self,
        tx: Tx,
        filing: Filing,
        policy: Policy,
        event: str,
        actor: Actor,
        request: Request,
        journal: list[dict[str, Any]],
        reason: str | None = None,
        supplied: frozenset[Document] = frozenset(),
        note: str | None = None,
    ) -> Denial | None:
        """Guards, state change, version bump, deadlines and audit, inside `tx`. A refusal is
        recorded (in `tx`) and returned; nothing else changes."""
        attempt, denial, row = self._decide(
            tx, filing, policy, event, actor, request, journal, reason, supplied, note
        )
        if denial is None and row is not None:
            entering = row.dest is FilingState.EFFECTIVE and row.source is not FilingState.EFFECTIVE
            if entering and filing.supersedes:
                denial = self._cancel_superseded(tx, filing, actor, request, journal)
        if denial is not None or row is None:
            assert denial is not None
            journal.append(self._audit_denial(tx, filing, event, denial, actor, request))
            if event == "submit" and filing.admission_id and denial.rule_id in _RETRO_RULES:
                # Too late to file for this admission: a deemed filing whose window is over
                # lapses, and the person pays first and claims (P5).
                adm = self._load_admission(tx, filing.admission_id)
                met = self._retro_pending(tx, adm) or self._covering(tx, adm) is not None
                if not met:  # another filing made in time (or before) already covers it
                    self._lapse_if_window_over(tx, adm, request, journal)
                    self._route_manual(tx, adm.id, denial, actor, request, journal)
            return denial
        now, version = attempt.now, filing.version
        apply_effects(filing, row, attempt)
        filing.state = row.dest
        filing.version = version + 1
        filing.updated_at = now
        values = {c: getattr(filing, c) for c in _MUTABLE}
        values["state"] = filing.state.value
        values["documents"] = json.dumps(sorted(filing.documents))
        values["id"] = filing.id
        values["expected_version"] = version
        entering = row.dest is FilingState.EFFECTIVE and row.source is not FilingState.EFFECTIVE
        values["entering"] = entering
        key = _exclusive_key(filing, policy) if entering else None
        if key is not None:
            tx.run(_RELEASE_SCOPE, {"k": key, "no": False})
        if tx.run(_UPDATE_FILING, values) != 1:
            raise ConcurrentUpdate(filing.id, version)
        if row.dest is FilingState.EFFECTIVE and row.source is not FilingState.EFFECTIVE:
            self._write_validity_deadline(tx, filing, policy, now)
        if row.source in _COVERING and row.dest not in _COVERING:
            # Its pending deadlines no longer apply: the expiry that fired, or one made moot.
            tx.run(
                _SETTLE_DEADLINES, {"id": filing.id, "at": now, "kind": _EFFECT_OF.get(event, "")}
            )
        journal.append(
            self._audit(
                tx,
                filing,
                event,
                row.source,
                row.dest,
                Outcome.APPLIED,
                row.rule,
                reason or f"{event} applied",
                _judged(filing, row, attempt),
                actor,
                request,
                now,
            )
        )
        if row.dest in FINAL_STATES and filing.admission_id and not filing.deemed:
            self._retro_failed(tx, filing, request, journal)
        if row.dest is FilingState.EFFECTIVE and filing.admission_id:
            # A retro filing took effect: it replaces the deemed filing (E2) and ends the
            # admission's window to report (E5).
            self._retro_effective(tx, filing, actor, request, journal)
        return None

    def _cancel_superseded(
        self,
        tx: Tx,
        replacement: Filing,
        actor: Actor,
        request: Request,
        journal: list[dict[str, Any]],
    ) -> Denial | None:
        """L5: the filing a replacement supersedes is cancelled as the replacement takes effect
        (before it, so the two are never effective together)."""
        assert replacement.supersedes is not None
        old, policy = self._load(tx, replacement.supersedes)
        if old.state is not FilingState.EFFECTIVE:
            return None  # it ended meanwhile (expired, lapsed): nothing left to cancel
        denial = self._fire_in(tx, old, policy, "change", actor, request, journal, "change")
        if denial is None:
            return None
        return Denial(
            denial.rule_id,
            f"the filing it replaces ({old.id}) could not be cancelled: {denial.reason}",
            denial.inputs,
        )

    def _other_effective(
        self,
        tx: Tx,
        filing: Filing,
        policy: Policy,
        now: datetime,
        request: Request,
        journal: list[dict[str, Any]],
    ) -> int:
        """L6: other filings effective in the same scope. One whose validity is already over is
        expired here first (audited, as the scheduler would have), so it does not block."""
        key = _exclusive_key(filing, policy)
        if key is None:
            return 0
        rows = tx.all(_OTHER_EFFECTIVE, {"k": key, "id": filing.id, "sup": filing.supersedes or ""})
        still = 0
        for row in rows:
            other, other_policy = self._load(tx, row["id"])
            expiry = Attempt(other, other_policy, "expire", now, local_date(now))
            if validity_ended(expiry) is None:  # the rule that guards `expire` (V1, V3)
                self._fire_in(tx, other, other_policy, "expire", SYSTEM_ACTOR, request, journal)
                continue
            still += 1
        return still

    def _new_draft(
        self,
        tx: Tx,
        application: Application,
        number: str,
        actor: Actor,
        request: Request,
        journal: list[dict[str, Any]],
        supersedes: str | None = None,
        *,
        deemed: bool = False,
    ) -> Filing:
        key = person_key(number, self.settings.person_key)
        now = self._now()
        policy = policy_for(application.insured_region, self.settings.policies)
        first = (
            tx.one("SELECT id FROM filing_record WHERE person_key = :k LIMIT 1", {"k": key}) is None
        )
        admission = None
        if application.admission_id is not None:
            admission = self._load_admission(tx, application.admission_id)
            if admission.person_key != key:
                raise InvalidInput(
                    "admission_id", "E2", "a retro filing is for an admission of the same person"
                )
        check_application(
            application, policy, local_date(now), first_filing=first and not deemed,
            region_exists=region_exists, bounds=self.settings.input, admission=admission,
        )  # fmt: skip
        self._pin(tx, policy.region, policy)
        filing = Filing(
            id=new_id(now),
            kind=application.kind,
            insurance_type=application.insurance_type,
            insured_region=application.insured_region,
            treatment_region=application.treatment_region,
            person_key=key,
            person_masked=mask(number),
            channel=actor.channel,
            filed_by=actor.id,
            on_behalf=actor.on_behalf,
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
            supersedes=supersedes,
            admission_id=application.admission_id,
            deemed=deemed,
        )
        tx.run(_INSERT_FILING, self._row(filing, policy))
        inputs: dict[str, Any] = {
            "kind": filing.kind.value,
            "treatment_region": filing.treatment_region,
        }
        if supersedes:
            inputs["supersedes"] = supersedes
        if admission is not None:
            inputs.update(admission_id=admission.id, admitted_on=str(admission.admitted_on))
            inputs.update(start_date=str(filing.start_date), deemed=deemed)
        journal.append(
            self._audit(
                tx,
                filing,
                "create",
                None,
                FilingState.DRAFT,
                Outcome.APPLIED,
                "L5" if supersedes else ("E1" if deemed else ("E2" if admission else None)),
                f"replacement for filing {supersedes}"
                if supersedes
                else ("filing drafted" + (" for an admission" if admission else "")),
                inputs,
                actor,
                request,
                now,
            )
        )
        return filing

    def _write_validity_deadline(
        self, tx: Tx, filing: Filing, policy: Policy, now: datetime
    ) -> None:
        """The expiry deadline and its reminders are rows in the same transaction
        (fired by jobs/). A reminder goes out at the start of the day `lead` days before the
        last valid day, if that is still ahead."""
        if filing.valid_until is None:
            return
        rule = "V1" if filing.category is Category.LONG_TERM else "V3"
        # A validity period is never extended (C5): never provisional.
        self._deadline(
            tx, filing.id, "expire", end_of_local_day(filing.valid_until), rule, False, now
        )
        self._write_expiry_reminders(tx, filing, policy, now)

    def _write_expiry_reminders(self, tx: Tx, filing: Filing, policy: Policy, now: datetime) -> int:
        """The reminders still ahead before a validity ends; how many were written."""
        if filing.valid_until is None:
            return 0
        rule = "V1" if filing.category is Category.LONG_TERM else "V3"
        written = 0
        for at in expiry_reminders_at(filing.valid_until, policy):
            if at > now:
                self._deadline(tx, filing.id, EXPIRY_REMINDER, at, rule, False, now)
                written += 1
        return written

    def _audit(
        self,
        tx: Tx,
        filing: Filing,
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
        return self._audit_subject(
            tx, filing.id, (filing.policy_region, filing.policy_version), event,
            from_state.value if from_state else None, to_state.value if to_state else None,
            outcome, rule_id, reason, inputs, actor, request, at,
        )  # fmt: skip

    def _audit_subject(
        self,
        tx: Tx,
        subject_id: str | None,
        policy: tuple[str | None, str | None],
        event: str,
        from_state: str | None,
        to_state: str | None,
        outcome: Outcome,
        rule_id: str | None,
        reason: str,
        inputs: Mapping[str, Any],
        actor: Actor,
        request: Request,
        at: datetime,
    ) -> dict[str, Any]:
        """One audit record about a filing, an admission or a claim (`filing_id` holds the
        subject's id: filings are hex, admissions start `adm`, claims `clm`)."""
        return audit.append(
            tx,
            {
                "filing_id": subject_id,
                "event": event,
                "from_state": from_state,
                "to_state": to_state,
                "outcome": outcome.value,
                "rule_id": rule_id,
                "reason": reason,
                "inputs": audit.canonical_inputs(inputs),
                "actor_id": actor.id,
                "actor_role": actor.role.value,
                "actor_org": actor.organisation,
                "channel": actor.channel.value,
                "on_behalf": actor.on_behalf,
                "policy_region": policy[0],
                "policy_version": policy[1],
                "request_id": request.request_id,
                "correlation_id": request.correlation_id,
                "at": at,
            },
        )

    def _audit_denial(
        self,
        tx: Tx,
        filing: Filing,
        event: str,
        denial: Denial,
        actor: Actor,
        request: Request,
    ) -> dict[str, Any]:
        return self._audit(
            tx, filing, event, filing.state, None, Outcome.DENIED, denial.rule_id,
            denial.reason, denial.inputs, actor, request, self._now(),
        )  # fmt: skip

    def _log(self, record: Mapping[str, Any]) -> None:
        """One structured line per recorded attempt, after its transaction committed."""
        applied = record["outcome"] == Outcome.APPLIED.value
        self.log.info(
            "filing.transition_applied" if applied else "filing.transition_denied",
            filing_id=record["filing_id"],
            trigger=record["event"],
            from_state=record["from_state"],
            to_state=record["to_state"],
            rule_id=record["rule_id"],
            policy=f"{record['policy_region']}@{record['policy_version']}",
            audit_seq=record["seq"],
            actor_role=record["actor_role"],
            channel=record["channel"],
            request_id=record["request_id"],
            correlation_id=record["correlation_id"],
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
            "note": filing.note,
            "exclusive_key": _exclusive_key(filing, policy),
            "created_at": filing.created_at,
            "updated_at": filing.updated_at,
            "admission_id": filing.admission_id,
            "deemed": filing.deemed,
            "hospital_reviewed": filing.hospital_reviewed,
            "continues_deductible": filing.continues_deductible,
            "holds_scope": False,  # a filing is born a draft; taking effect takes the slot
        }

    # -- queries -----------------------------------------------------------------------------

    def get(self, filing_id: str) -> Filing:
        with self.store.read() as tx:
            return self._load(tx, filing_id)[0]

    def policy_of(self, filing: Filing) -> Policy:
        with self.store.read() as tx:
            return self._policy(tx, filing.policy_region, filing.policy_version)

    def for_person(self, id_number: str, *, effective_only: bool = False) -> list[Filing]:
        number = normalise_id_number(id_number, local_date(self._now()))
        key = person_key(number, self.settings.person_key)
        sql = "SELECT * FROM filing_record WHERE person_key = :k"
        if effective_only:
            sql += " AND state = 'effective'"
        with self.store.read() as tx:
            rows = tx.all(sql + " ORDER BY created_at, id", {"k": key})
        filings = [_filing_from_row(r) for r in rows]
        if effective_only:
            today = local_date(self._now())
            filings = [
                f
                for f in filings
                if f.effective_on is not None
                and f.effective_on <= today
                and (f.valid_until is None or today <= f.valid_until)
            ]
        return filings

    def history(self, filing_id: str) -> list[dict[str, Any]]:
        """Every audit record of a filing, an admission (`adm…`) or a claim (`clm…`)."""
        with self.store.read() as tx:
            if filing_id.startswith("adm"):
                self._load_admission(tx, filing_id)
            elif filing_id.startswith("clm"):
                self._load_claim(tx, filing_id)
            else:
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
            Deadline(
                r["kind"], r["due_at"], r["fired_at"], r["outcome"], r["provisional"], r["rule_id"]
            )
            for r in rows
        ]

    def verify(
        self,
        against: audit.Checkpoint | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> audit.Verification:
        with self.store.read() as tx:
            records = audit.stream(tx)
            if progress is not None:
                records = _counted(records, progress)
            return audit.verify(records, against)

    def checkpoint(self) -> audit.Checkpoint:
        with self.store.read() as tx:
            return audit.head(tx)


def _counted(
    records: Iterator[Mapping[str, Any]], progress: Callable[[int], None], every: int = 10_000
) -> Iterator[Mapping[str, Any]]:
    n = 0
    for n, record in enumerate(records, 1):
        if n % every == 0:
            progress(n)
        yield record
    progress(n)


class _ChangeRefused(Exception):
    def __init__(self, denial: Denial) -> None:
        self.denial = denial


NOTE_LIMIT = 200  # characters (the column's width)


def _check_reason(
    reasons: Mapping[str, Reason], event: str, reason: str | None, note: str | None
) -> None:
    """Reasons are codes of the vocabulary: free text could carry personal data into the
    append-only trail. A note beside one is refused, before anything is written, when it holds
    anything shaped like an ID, mobile or card number; the error never echoes it."""
    check_reason(reasons, event, reason)
    if note is None:
        return
    rule = reason_rule(event)
    if reason is None:
        raise InvalidInput("note", rule, "a note goes with a reason code")
    if not isinstance(note, str) or not note.strip() or len(note) > NOTE_LIMIT:
        raise InvalidInput("note", rule, f"1 to {NOTE_LIMIT} characters of text")
    if not note.isprintable():
        raise InvalidInput("note", rule, "must not hold control characters")
    kind = personal_data_in(note)
    if kind is not None:
        raise InvalidInput(
            "note",
            rule,
            f"holds what looks like {kind}: a note must never carry personal data, which would "
            "stay in the append-only audit trail",
        )


def _exclusive_key(filing: Filing, policy: Policy) -> str | None:
    """L6 scope: person, insurance type and treatment area (the city; a municipality whole).
    A deemed filing (E1) covers one admission and never blocks a filing."""
    if not policy.one_effective_per_scope or filing.deemed:
        return None
    return f"{filing.person_key}:{filing.insurance_type.value}:{area_of(filing.treatment_region)}"


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
    if attempt.note is not None:
        inputs.update(note=attempt.note)
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
        note=r["note"],
        admission_id=r["admission_id"],
        deemed=r["deemed"],
        hospital_reviewed=r["hospital_reviewed"],
        continues_deductible=r["continues_deductible"],
    )
