"""The hospital-side paths (§5, §6): admissions, the deemed filing of an emergency, retro filings,
windows and extensions, the coverage decision and manual reimbursement claims.

Mixed into `FilingService`: the same units of work, audit trail and deadline rows. Every decision
and every refusal is an audit record under the subject's id (admission `adm…`, claim `clm…`).
Deadline rows written here are fired by `fire_deadline`, which the scheduler's sweep calls for
each due row; it is a no-op for a row already settled.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from states.admissions import (
    ADMISSION_EVENTS,
    ADMITTERS,
    CLAIMANTS,
    Admission,
    AdmissionStatus,
    Care,
    Extension,
    Visit,
    Window,
    check_discharge,
    check_visit,
    claims_days_past_threshold,
    extension_denial,
    extension_reminder_at,
    extension_threshold,
    filing_window,
    window_inputs,
    window_reminder_at,
)
from states.bounds import check_not_after
from states.coverage import (
    Coverage,
    claim_counted_from,
    claim_deadline,
    claim_documents,
    claim_reminder_at,
    covering_filing,
    decide,
)
from states.denial import Denial
from states.errors import ConcurrentUpdate, FilingNotFound, InvalidInput
from states.filing import Filing
from states.lifecycle import Application
from states.periods import WorkCalendar, end_of_local_day, local_date
from states.policy import Policy, Requirement, policy_for
from states.regions import same_area
from states.vocabulary import (
    Document,
    FilingState,
    Institution,
    InsuranceType,
    Kind,
    Outcome,
    Role,
    Settlement,
)
from workflow.config import Settings
from workflow.context import (
    SYSTEM_ACTOR,
    Actor,
    Attempted,
    Request,
    _check_request,
    _refusal,
    _Refused,
    check_version,
    new_id,
    visit_inputs,
)
from workflow.identity import mask, normalise_id_number, person_key, region_exists
from workflow.store import Store, Tx, insert_sql
from workflow.tables import admission_t, claim_t, deadline_t, outbox_t

Journal = list[dict[str, Any]]
_T = TypeVar("_T")

# Deadline kinds written here, and the rule each enforces.
FILING_WINDOW = "filing_window"  # E3/E7: the deemed filing lapses unless a filing is made
REPORT_WINDOW = "report_window"  # E5: the hospital reports a transfer-first referral
EXTENSION_REMINDER = "extension_reminder"  # E6
EXTENSION_DUE = "extension_due"  # E6
CLAIM_REMINDER = "claim_reminder"  # P6
CLAIM_DUE = "claim_due"  # P6
EXPIRY_REMINDER = "expiry_reminder"  # V1/V3: before a validity ends
WINDOW_REMINDER = "window_reminder"  # E3/E5/E7: before a filing window closes
# Kinds that tell someone something: when one fires, a reminder is written to the outbox.
REMINDER_KINDS = frozenset({EXPIRY_REMINDER, WINDOW_REMINDER, EXTENSION_REMINDER, CLAIM_REMINDER})

_MANUAL = "manual_reimbursement"

_ADMISSION_MUTABLE = (
    "version",
    "status",
    "discharged_on",
    "settlement",
    "settled_at",
    "system_fault",
    "deemed_filing_id",
    "route",
    "route_rule",
    "extension",
    "claim_id",
    "updated_at",
)
_UPDATE_ADMISSION = (
    "UPDATE admission_record SET "
    + ", ".join(f"{c} = :{c}" for c in _ADMISSION_MUTABLE)
    + " WHERE id = :id AND version = :expected_version"
)
_UPDATE_CLAIM = (
    "UPDATE claim_record SET version = :version, status = :status, "
    "documents_supplied = :documents_supplied, updated_at = :updated_at "
    "WHERE id = :id AND version = :expected_version"
)
_FIRE_DEADLINE = (
    "UPDATE deadline_record SET fired_at = :at, outcome = :outcome "
    "WHERE subject_id = :s AND kind = :k AND due_at = :d AND fired_at IS NULL"
)
_DEADLINE_OUTCOME = (
    "UPDATE deadline_record SET outcome = :outcome "
    "WHERE subject_id = :s AND kind = :k AND due_at = :d"
)
_INSERT_ADMISSION = insert_sql(admission_t)
_INSERT_CLAIM = insert_sql(claim_t)
_INSERT_DEADLINE = insert_sql(deadline_t)
_INSERT_OUTBOX = insert_sql(outbox_t)
_RETIRE_PENDING = (
    "UPDATE deadline_record SET fired_at = :at, outcome = 'retired' "
    "WHERE subject_id = :s AND fired_at IS NULL"
)


@dataclass(frozen=True)
class Claim:
    """A manual reimbursement claim (P5) and its deadline (P6)."""

    id: str
    version: int
    status: str  # open, filed, lapsed
    admission_id: str
    route_rule: str
    counted_from: date
    last_day: date
    due_at: datetime
    provisional: bool
    documents_required: tuple[Requirement, ...]
    documents_supplied: frozenset[Document]
    self_share_first_percent: int
    reduction_percent: int


class HospitalSide:
    """Admissions, deemed and retro filings, windows, extensions, coverage and claims.

    Mixed into `FilingService`, which provides what is declared below."""

    if TYPE_CHECKING:
        settings: Settings
        calendar: WorkCalendar
        store: Store

        def _now(self) -> datetime: ...
        def _run(
            self,
            work: Callable[[Tx, Journal], _T | _Refused],
            request: Request,
            *,
            retry_stale: bool = True,
            actor: Actor | None = None,
            attempted: Attempted | None = None,
        ) -> _T: ...
        def _policy_ref(self, region: str) -> tuple[str | None, str | None]: ...
        def _person_inputs(self, id_number: str) -> dict[str, Any]: ...
        def _pin(self, tx: Tx, region: str, policy: Policy) -> None: ...
        def _policy(self, tx: Tx, region: str, version: str) -> Policy: ...
        def _load(self, tx: Tx, filing_id: str) -> tuple[Filing, Policy]: ...
        def _new_draft(
            self,
            tx: Tx,
            application: Application,
            number: str,
            actor: Actor,
            request: Request,
            journal: Journal,
            supersedes: str | None = None,
            *,
            deemed: bool = False,
        ) -> Filing: ...
        def _fire_in(
            self,
            tx: Tx,
            filing: Filing,
            policy: Policy,
            event: str,
            actor: Actor,
            request: Request,
            journal: Journal,
            reason: str | None = None,
            supplied: frozenset[Document] = frozenset(),
        ) -> Denial | None: ...
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
        ) -> dict[str, Any]: ...

    # -- admissions --------------------------------------------------------------------------

    def admit(self, visit: Visit, id_number: str, actor: Actor, request: Request) -> Admission:
        """Record an admission. An emergency without a covering filing is deemed filed (E1);
        the windows its dates open (E3, E5, E7) and the extension threshold (E6) are written as
        deadline rows in the same transaction."""
        _check_request(actor, request)
        attempt = Attempted(
            "admit", None, self._policy_ref(visit.insured_region),
            {**visit_inputs(visit), **self._person_inputs(id_number)},
        )  # fmt: skip

        def work(tx: Tx, journal: Journal) -> Admission:
            _check_actor(actor, ADMITTERS, "record admissions")
            number = normalise_id_number(id_number, local_date(self._now()))
            key = person_key(number, self.settings.person_key)
            now = self._now()
            policy = policy_for(visit.insured_region, self.settings.policies)
            check_visit(
                visit,
                local_date(now),
                region_exists=region_exists,
                bounds=self.settings.input,
                hospital_code=self.settings.codes.hospital,
            )
            self._pin(tx, policy.region, policy)
            adm = Admission(
                id=new_id(now, "adm"),
                person_key=key,
                person_masked=mask(number),
                insurance_type=visit.insurance_type,
                insured_region=visit.insured_region,
                treatment_region=visit.treatment_region,
                hospital_code=visit.hospital_code,
                institution=visit.institution,
                networked=visit.networked,
                care=visit.care,
                admitted_on=visit.admitted_on,
                emergency=visit.emergency,
                referral=visit.referral,
                transfer_first=visit.transfer_first,
                chronic_enabled=visit.chronic_enabled,
                chronic_declared=visit.chronic_declared,
                policy_region=policy.region,
                policy_version=policy.version,
                hospital_org=actor.organisation,
                created_at=now,
                updated_at=now,
            )
            tx.run(_INSERT_ADMISSION, _admission_row(adm))
            journal.append(
                self._audit_admission(
                    tx,
                    adm,
                    "admit",
                    None,
                    Outcome.APPLIED,
                    None,
                    "admission recorded",
                    _visit_inputs(adm),
                    actor,
                    request,
                    now,
                )
            )
            covered = self._covering(tx, adm) is not None
            in_scope = same_area(adm.insured_region, adm.treatment_region, policy.scope)
            if adm.emergency and not covered and not in_scope and policy.emergency_deemed_filed:
                self._deem(tx, adm, policy, number, actor, request, journal, now)
            window = filing_window(adm, policy, self.calendar)
            if window is not None and window.rule == "E5" and not covered and not in_scope:
                self._deadline(
                    tx, adm.id, REPORT_WINDOW, window.end.ends_at, "E5", window.end.provisional, now
                )
                self._window_reminder(tx, adm.id, window, policy, now)
            threshold = extension_threshold(adm, policy)
            if threshold is not None:
                rule = policy.rule("extension_after_days")
                self._deadline(
                    tx, adm.id, EXTENSION_DUE, end_of_local_day(threshold), rule, False, now
                )
                remind = extension_reminder_at(adm, policy)
                if remind is not None and remind > now:
                    self._deadline(tx, adm.id, EXTENSION_REMINDER, remind, rule, False, now)
            return adm

        return self._run(work, request, actor=actor, attempted=attempt)

    def _deem(
        self,
        tx: Tx,
        adm: Admission,
        policy: Policy,
        number: str,
        actor: Actor,
        request: Request,
        journal: Journal,
        now: datetime,
    ) -> None:
        """E1: a deemed K5 filing tied to the admission, from its first day."""
        app = Application(
            kind=Kind.EMERGENCY,
            insurance_type=adm.insurance_type,
            insured_region=adm.insured_region,
            treatment_region=adm.treatment_region,
            channel=actor.channel,
            start_date=adm.admitted_on,
            admission_id=adm.id,
        )
        filing = self._new_draft(tx, app, number, actor, request, journal, deemed=True)
        denial = self._fire_in(tx, filing, policy, "deem", actor, request, journal)
        if denial is not None:  # the table and the checks above agree; kept loud if not
            raise AssertionError(f"deem refused: {denial}")
        adm.deemed_filing_id = filing.id
        self._save_admission(tx, adm, now)
        window = filing_window(adm, policy, self.calendar)
        if window is not None:
            self._deadline(
                tx,
                filing.id,
                FILING_WINDOW,
                window.end.ends_at,
                window.rule,
                window.end.provisional,
                now,
            )
            self._window_reminder(tx, filing.id, window, policy, now)

    def _window_reminder(
        self, tx: Tx, subject: str, window: Window, policy: Policy, now: datetime
    ) -> None:
        """A reminder `window_reminder_days` before a filing window's last day, at the start of
        that day (local), if that is still ahead."""
        at = window_reminder_at(window, policy)
        if at is not None and at > now:
            self._deadline(
                tx, subject, WINDOW_REMINDER, at, window.rule, window.end.provisional, now
            )

    def discharge(
        self,
        admission_id: str,
        discharged_on: date,
        actor: Actor,
        request: Request,
        *,
        system_fault: bool = False,
        expected_version: int | None = None,
    ) -> tuple[Admission, Coverage]:
        """出院结算: decide coverage, settle directly or route to manual reimbursement (P5) with
        a claim and its deadline (P6). A deemed filing ends here: it lapses where a window to
        file had to be met before discharge (E3), else it has served its admission (E1)."""
        _check_request(actor, request)
        attempt = Attempted("discharge", admission_id, None, {}, table="admission_record")

        def work(tx: Tx, journal: Journal) -> tuple[Admission, Coverage] | _Refused:
            now = self._now()
            adm, policy = self._admission_and_policy(
                tx, admission_id, expected_version, "discharge"
            )
            refused = self._admission_event(tx, adm, "discharge", actor, request, journal)
            if refused is not None:
                return refused
            check_discharge(adm.admitted_on, discharged_on, local_date(now), self.settings.input)
            adm = self._lapse_if_window_over(tx, adm, request, journal)
            before = adm.status
            adm.discharged_on, adm.system_fault = discharged_on, system_fault
            deemed = self._deemed_of(tx, adm)
            window = filing_window(adm, policy, self.calendar)
            if (
                deemed is not None
                and window is not None
                and window.before_discharge
                and not self._retro_pending(tx, adm)
            ):
                # E3: discharged before filing; the window closes with the discharge.
                self._save_admission(tx, adm, now)
                self._close_window(tx, deemed, adm, actor, request, journal)
                adm = self._load_admission(tx, admission_id)
                deemed = None
            adm.settled_at = now  # the receipt's instant (P6, Shanghai)
            cov = decide(adm, policy, self._filings_of(tx, adm), self.calendar)
            adm.status = AdmissionStatus.DISCHARGED
            adm.settlement = Settlement.DIRECT if cov.direct_settlement else Settlement.SELF_PAID
            adm.settled_at = now
            past_threshold = claims_days_past_threshold(adm, policy)
            if not cov.direct_settlement or past_threshold:
                adm.route = _MANUAL
                adm.route_rule = adm.route_rule or (
                    policy.rule("after_extension_missing") if cov.direct_settlement else cov.rule_id
                )
            self._save_admission(tx, adm, now)
            journal.append(
                self._audit_admission(
                    tx,
                    adm,
                    "discharge",
                    before,
                    Outcome.APPLIED,
                    adm.route_rule if past_threshold else cov.rule_id,
                    f"discharged and settled {adm.settlement.value}"
                    + (
                        "; days past the extension threshold are claimed by hand"
                        if past_threshold
                        else ""
                    ),
                    {
                        **cov.as_inputs(),
                        "discharged_on": str(discharged_on),
                        "system_fault": system_fault,
                        "past_extension_threshold": past_threshold,
                    },
                    actor,
                    request,
                    now,
                )
            )
            if deemed is not None:
                self._fire_in(tx, deemed, policy, "settle", SYSTEM_ACTOR, request, journal)
            tx.run(_RETIRE_PENDING, {"s": adm.id, "at": now})
            if adm.route == _MANUAL and cov.reimbursable:
                self._open_claim(tx, adm, policy, cov, actor, request, journal, now)
                adm = self._load_admission(tx, admission_id)
            return adm, cov

        return self._run(
            work, request, retry_stale=expected_version is None, actor=actor, attempted=attempt
        )

    def extension(
        self,
        admission_id: str,
        event: str,
        actor: Actor,
        request: Request,
        supplied: frozenset[Document] = frozenset(),
        expected_version: int | None = None,
    ) -> Admission:
        """E6: request (hospital or person, with the hospital's documents), grant or refuse
        (agency) the extension of a referred stay past the region's threshold."""
        _check_request(actor, request)

        def work(tx: Tx, journal: Journal) -> Admission | _Refused:
            now = self._now()
            adm, policy = self._admission_and_policy(tx, admission_id, expected_version, event)
            refused = self._admission_event(tx, adm, event, actor, request, journal)
            if refused is not None:
                return refused
            denial = extension_denial(event, adm, policy, supplied)
            if denial is not None:
                return self._refuse_admission(tx, adm, event, denial, actor, request, journal)
            before = adm.extension
            adm.extension = {
                "request_extension": Extension.REQUESTED,
                "grant_extension": Extension.GRANTED,
                "refuse_extension": Extension.REFUSED,
            }[event]
            cleared = False
            if (
                event == "grant_extension"
                and adm.route == _MANUAL
                and adm.route_rule == policy.rule("after_extension_missing")
            ):
                # The days past the threshold are covered now; the stay stays routed only if
                # something else still keeps it from settling directly (E3 lapsed, P5...).
                cov = decide(adm, policy, self._filings_of(tx, adm), self.calendar)
                if cov.direct_settlement:
                    adm.route, adm.route_rule, cleared = None, None, True
                else:
                    adm.route_rule = cov.rule_id
            self._save_admission(tx, adm, now)
            threshold = extension_threshold(adm, policy)
            journal.append(
                self._audit_admission(
                    tx,
                    adm,
                    event,
                    adm.status,
                    Outcome.APPLIED,
                    policy.rule("extension_after_days"),
                    f"extension {adm.extension.value}",
                    {
                        "from": before.value if before else None,
                        "to": adm.extension.value,
                        "threshold_last_day": str(threshold),
                        "supplied": sorted(supplied),
                        "manual_route_cleared": cleared,
                        "route_rule": adm.route_rule,
                    },
                    actor,
                    request,
                    now,
                )
            )
            return adm

        return self._run(work, request, retry_stale=expected_version is None, actor=actor)

    def coverage(
        self, admission_id: str, day: date | None, actor: Actor, request: Request
    ) -> Coverage:
        """The coverage decision for a day of the admission (default: its first), recorded."""
        _check_request(actor, request)
        attempt = Attempted("decide_coverage", admission_id, None, {}, table="admission_record")

        def work(tx: Tx, journal: Journal) -> Coverage:
            now = self._now()
            adm, policy = self._admission_and_policy(tx, admission_id)
            if day is not None and day < adm.admitted_on:
                raise InvalidInput("day", "V5", "must not be before the admission date")
            if day is not None:
                check_not_after("day", day, local_date(now), self.settings.input)
            adm = self._lapse_if_window_over(tx, adm, request, journal)
            cov = decide(adm, policy, self._filings_of(tx, adm), self.calendar, day)
            journal.append(
                self._audit_admission(
                    tx,
                    adm,
                    "decide_coverage",
                    adm.status,
                    Outcome.APPLIED,
                    cov.rule_id,
                    "direct settlement" if cov.direct_settlement else "no direct settlement",
                    cov.as_inputs(),
                    actor,
                    request,
                    now,
                )
            )
            return cov

        return self._run(work, request, actor=actor, attempted=attempt)

    # -- claims ------------------------------------------------------------------------------

    def file_claim(
        self,
        claim_id: str,
        documents: frozenset[Document],
        actor: Actor,
        request: Request,
        *,
        expected_version: int | None = None,
    ) -> Claim:
        """P5, P6: file a manual reimbursement claim with its documents, before its deadline."""
        _check_request(actor, request)

        def work(tx: Tx, journal: Journal) -> Claim | _Refused:
            now = self._now()
            claim = self._load_claim(tx, claim_id)
            check_version(
                claim_id, claim.claim.version, expected_version, "file_claim",
                claim.claim.status, claim.policy_region_version,
            )  # fmt: skip
            policy = self._policy(
                tx, claim.policy_region_version[0], claim.policy_region_version[1]
            )
            denial = None
            if actor.role not in CLAIMANTS:
                denial = Denial(
                    "P5",
                    f"the {actor.role.value} role may not file a claim; the person (or a proxy) "
                    "files it at the insured place's agency",
                    {"role": actor.role.value},
                )
            elif claim.claim.status != "open":
                denial = Denial("P6", f"the claim is {claim.claim.status}", {})
            elif now >= claim.claim.due_at:
                denial = Denial(
                    policy.rule("reimbursement_months"),
                    f"the claim had to be filed by the end of {claim.claim.last_day}",
                    {"last_day": str(claim.claim.last_day), "now": now.isoformat()},
                )
            else:
                have = claim.claim.documents_supplied | documents
                missing = [g for g in claim.claim.documents_required if not set(g) & have]
                if missing:
                    denial = Denial(
                        policy.rule("documents_reimbursement"),
                        "missing documents: " + "; ".join(" or ".join(g) for g in missing),
                        {"missing": [list(g) for g in missing]},
                    )
            if denial is not None:
                journal.append(
                    self._audit_subject(
                        tx,
                        claim_id,
                        claim.policy_region_version,
                        "file_claim",
                        claim.claim.status,
                        None,
                        Outcome.DENIED,
                        denial.rule_id,
                        denial.reason,
                        denial.inputs,
                        actor,
                        request,
                        now,
                    )
                )
                return _Refused(_refusal(claim_id, "file_claim", claim.claim.status, denial))
            filed = replace(
                claim.claim,
                status="filed",
                version=claim.claim.version + 1,
                documents_supplied=claim.claim.documents_supplied | documents,
            )
            self._save_claim(tx, filed, claim.claim.version, now)
            tx.run(_RETIRE_PENDING, {"s": claim_id, "at": now})
            journal.append(
                self._audit_subject(
                    tx,
                    claim_id,
                    claim.policy_region_version,
                    "file_claim",
                    "open",
                    "filed",
                    Outcome.APPLIED,
                    "P5",
                    "claim filed with its documents",
                    {"supplied": sorted(filed.documents_supplied), "last_day": str(filed.last_day)},
                    actor,
                    request,
                    now,
                )
            )
            return filed

        return self._run(work, request, retry_stale=expected_version is None, actor=actor)

    def _open_claim(
        self,
        tx: Tx,
        adm: Admission,
        policy: Policy,
        cov: Coverage,
        actor: Actor,
        request: Request,
        journal: Journal,
        now: datetime,
    ) -> None:
        counted_from = claim_counted_from(adm, policy) or adm.discharged_on or adm.admitted_on
        deadline = claim_deadline(policy, counted_from, self.calendar)
        assert deadline is not None
        manual = cov.manual
        temporary_filing = cov.basis in ("filing", "deemed") and cov.ratio_reduction_points > 0
        claim = Claim(
            id=new_id(now, "clm"),
            version=1,
            status="open",
            admission_id=adm.id,
            route_rule=adm.route_rule or "P5",
            counted_from=counted_from,
            last_day=deadline.last_day,
            due_at=deadline.ends_at,
            provisional=deadline.provisional,
            documents_required=claim_documents(policy, adm),
            documents_supplied=frozenset(),
            self_share_first_percent=manual.self_share_first_percent if manual else 0,
            reduction_percent=(
                manual.reduction_percent
                if manual
                else (policy.manual_temporary_reduction_percent if temporary_filing else 0)
            ),
        )
        tx.run(_INSERT_CLAIM, _claim_row(claim, adm, now))
        adm.claim_id = claim.id
        self._save_admission(tx, adm, now)
        rule = policy.rule("reimbursement_months")
        self._deadline(tx, claim.id, CLAIM_DUE, claim.due_at, rule, claim.provisional, now)
        remind = claim_reminder_at(policy, deadline.last_day)
        if remind is not None and remind > now:
            self._deadline(tx, claim.id, CLAIM_REMINDER, remind, rule, claim.provisional, now)
        journal.append(
            self._audit_subject(
                tx,
                claim.id,
                (adm.policy_region, adm.policy_version),
                "open_claim",
                None,
                "open",
                Outcome.APPLIED,
                claim.route_rule,
                "manual reimbursement claim opened",
                {
                    "admission_id": adm.id,
                    "counted_from": str(counted_from),
                    "last_day": str(deadline.last_day),
                    "computed_last_day": str(deadline.computed_last_day),
                    "provisional": deadline.provisional,
                    "period_rules": list(deadline.rules),
                    "documents": [list(g) for g in claim.documents_required],
                    "self_share_first_percent": claim.self_share_first_percent,
                    "reduction_percent": claim.reduction_percent,
                },
                actor,
                request,
                now,
            )
        )

    # -- deadlines ---------------------------------------------------------------------------

    def fire_deadline(
        self, subject_id: str, kind: str, due_at: datetime, request: Request
    ) -> str | None:
        """Apply one due deadline row: what it stands for happens (guarded, audited) and the row
        is marked, in one transaction. Returns "fired", "retired" (moot: its subject moved on),
        or None if the row was already settled (a rerun is a no-op)."""

        def work(tx: Tx, journal: Journal) -> str | None:
            return self._fire_row(tx, subject_id, kind, due_at, request, journal)

        return self._run(work, request)

    def _fire_row(
        self,
        tx: Tx,
        subject_id: str,
        kind: str,
        due_at: datetime,
        request: Request,
        journal: Journal,
    ) -> str | None:
        """One due row, inside `tx` (the sweep runs many in one transaction). A reminder that
        fires is written to the outbox in the same transaction; a row that no longer applies is
        marked retired and recorded as a refused attempt."""
        now = self._now()
        if now < due_at:
            raise InvalidInput(
                "due_at", "C4", "a deadline is applied at, not before, its due instant"
            )
        # Claim the row first: of two sweepers reaching it, only one updates it.
        key = {"s": subject_id, "k": kind, "d": due_at}
        if tx.run(_FIRE_DEADLINE, {**key, "at": now, "outcome": "fired"}) != 1:
            return None
        recorded = len(journal)
        if kind in REMINDER_KINDS:
            # Sent while what it warns of is ahead; moot once its subject moved on (recorded
            # below); late if the daemon was down past it (recorded here).
            warned = self._reminder_target(tx, subject_id, kind)
            outcome = "fired" if warned is not None and warned > now else "retired"
            if warned is not None and warned <= now:
                journal.append(self._late(tx, subject_id, kind, due_at, warned, request, now))
        else:
            outcome = self._apply_deadline(tx, subject_id, kind, request, journal)
        if outcome != "fired":
            tx.run(_DEADLINE_OUTCOME, {**key, "outcome": outcome})
            if len(journal) == recorded:  # nothing recorded why: record the moot deadline
                journal.append(self._retired(tx, subject_id, kind, due_at, request, now))
        elif kind in REMINDER_KINDS:
            self._remind(tx, subject_id, kind, due_at, now)
        return outcome

    def _reminder_target(self, tx: Tx, subject_id: str, kind: str) -> datetime | None:
        """The instant a live reminder warns of, or None if its subject moved on."""
        if kind == EXPIRY_REMINDER:
            filing, _ = self._load(tx, subject_id)
            live = filing.state is FilingState.EFFECTIVE and filing.valid_until is not None
            return end_of_local_day(filing.valid_until) if live else None  # type: ignore[arg-type]
        if kind == WINDOW_REMINDER:
            if subject_id.startswith("adm"):  # E5: the hospital has yet to report
                adm, policy = self._admission_and_policy(tx, subject_id)
                moot = adm.settled or adm.route or self._retro_pending(tx, adm)
                if moot or self._covering(tx, adm):
                    return None
            else:  # E3/E7: the deemed filing's window
                filing, _ = self._load(tx, subject_id)
                if filing.state is not FilingState.DEEMED or filing.admission_id is None:
                    return None
                adm, policy = self._admission_and_policy(tx, filing.admission_id)
                if self._retro_pending(tx, adm):
                    return None
            window = filing_window(adm, policy, self.calendar)
            return None if window is None else window.end.ends_at
        if kind == EXTENSION_REMINDER:
            adm, policy = self._admission_and_policy(tx, subject_id)
            threshold = extension_threshold(adm, policy)
            live = adm.status is AdmissionStatus.ADMITTED and adm.extension is None
            return end_of_local_day(threshold) if live and threshold else None
        claim = self._load_claim(tx, subject_id).claim  # CLAIM_REMINDER
        return claim.due_at if claim.status == "open" else None

    def _late(
        self,
        tx: Tx,
        subject_id: str,
        kind: str,
        due_at: datetime,
        warned: datetime,
        request: Request,
        now: datetime,
    ) -> dict[str, Any]:
        """A reminder that fires after what it warns of (the daemon was down) is not sent: it
        would tell the person of a deadline already past. Recorded as refused."""
        policy, state, _ = self._subject(tx, subject_id)
        return self._audit_subject(
            tx, subject_id, policy, "retire_deadline", state, state, Outcome.DENIED,
            self._rule_of(tx, subject_id, kind, due_at),
            f"the {kind} came too late: what it warned of was due at {warned.isoformat()}",
            {"kind": kind, "warned_of": warned.isoformat(), "now": now.isoformat()},
            SYSTEM_ACTOR, request, now,
        )  # fmt: skip

    def _rule_of(self, tx: Tx, subject_id: str, kind: str, due_at: datetime) -> str:
        return str(
            tx.scalar(
                "SELECT rule_id FROM deadline_record "
                "WHERE subject_id = :s AND kind = :k AND due_at = :d",
                {"s": subject_id, "k": kind, "d": due_at},
            )
        )

    def _subject(self, tx: Tx, subject_id: str) -> tuple[tuple[str, str], str, str]:
        """A deadline subject's pinned policy, its state, and what it is."""
        table, what, column = (
            ("admission_record", "admission", "status")
            if subject_id.startswith("adm")
            else ("claim_record", "claim", "status")
            if subject_id.startswith("clm")
            else ("filing_record", "filing", "state")
        )
        row = tx.one(
            f"SELECT policy_region, policy_version, {column} AS state FROM {table} WHERE id = :id",
            {"id": subject_id},
        )
        if row is None:
            raise FilingNotFound(subject_id)
        return (row["policy_region"], row["policy_version"]), row["state"], what

    def _retired(
        self,
        tx: Tx,
        subject_id: str,
        kind: str,
        due_at: datetime,
        request: Request,
        now: datetime,
    ) -> dict[str, Any]:
        policy, state, what = self._subject(tx, subject_id)
        rule = self._rule_of(tx, subject_id, kind, due_at)
        return self._audit_subject(
            tx, subject_id, policy, "retire_deadline", state, state, Outcome.DENIED, rule,
            f"the {kind} deadline no longer applies: the {what} is {state}",
            {"kind": kind, "due_at": due_at.isoformat(), "state": state},
            SYSTEM_ACTOR, request, now,
        )  # fmt: skip

    def _remind(self, tx: Tx, subject_id: str, kind: str, due_at: datetime, now: datetime) -> None:
        """Write the reminder once (its key is the deadline's) for a notifier to deliver. The
        payload names ids, instants and rules only: a receiver looks the subject up."""
        policy, state, what = self._subject(tx, subject_id)
        rule = self._rule_of(tx, subject_id, kind, due_at)
        payload = {
            "event": f"reminder.{kind}",
            "id": f"{subject_id}:{kind}:{due_at.isoformat()}",
            "subject_id": subject_id,
            "subject_type": what,
            "subject_state": state,
            "kind": kind,
            "rule_id": rule,
            "due_at": due_at.isoformat(),
            "policy": f"{policy[0]}@{policy[1]}",
        }
        tx.run(
            _INSERT_OUTBOX,
            {
                "subject_id": subject_id, "kind": kind, "due_at": due_at, "rule_id": rule,
                "payload": json.dumps(payload, sort_keys=True, ensure_ascii=False),
                "created_at": now, "attempts": 0, "next_attempt_at": now, "claimed_by": None,
                "claimed_until": None, "delivered_at": None, "abandoned_at": None,
                "last_error": None,
            },
        )  # fmt: skip

    def _apply_deadline(
        self, tx: Tx, subject_id: str, kind: str, request: Request, journal: Journal
    ) -> str:
        """What a due deadline (not a reminder: `_fire_row` judges those) stands for, applied:
        "fired", or "retired" if its subject moved on."""
        actor = SYSTEM_ACTOR
        if kind == "expire":
            filing, policy = self._load(tx, subject_id)
            if filing.state is not FilingState.EFFECTIVE:
                return "retired"
            denial = self._fire_in(tx, filing, policy, "expire", actor, request, journal)
            return "retired" if denial else "fired"
        if kind == FILING_WINDOW:
            filing, policy = self._load(tx, subject_id)
            if filing.state is not FilingState.DEEMED or filing.admission_id is None:
                return "retired"
            adm = self._load_admission(tx, filing.admission_id)
            if self._retro_pending(tx, adm):
                return "retired"  # a filing was made in time; its review decides
            return (
                "fired"
                if self._close_window(tx, filing, adm, actor, request, journal)
                else "retired"
            )
        if kind == REPORT_WINDOW:
            adm, policy = self._admission_and_policy(tx, subject_id)
            if adm.settled or adm.route or self._retro_pending(tx, adm):
                return "retired"
            if self._covering(tx, adm) is not None:
                return "retired"
            window = filing_window(adm, policy, self.calendar)
            assert window is not None
            denial = Denial(
                window.rule,
                "the referral was not reported within its window",
                {"admitted_on": str(adm.admitted_on), **window_inputs(window)},
            )
            self._route_manual(tx, adm.id, denial, actor, request, journal)
            return "fired"
        if kind == EXTENSION_DUE:
            adm, policy = self._admission_and_policy(tx, subject_id)
            if adm.status is not AdmissionStatus.ADMITTED or adm.extension in (
                Extension.GRANTED,
                Extension.REQUESTED,  # the agency's decision, when it comes, settles it
            ):
                return "retired"
            threshold = extension_threshold(adm, policy)
            what = policy.after_extension_missing
            denial = Denial(
                policy.rule("after_extension_missing"),
                f"the referred stay passed {threshold} without a granted extension: "
                + (
                    "days after it are claimed by manual reimbursement"
                    if what == _MANUAL
                    else "days after it are not covered"
                ),
                {
                    "threshold_last_day": str(threshold),
                    "extension": adm.extension.value if adm.extension else None,
                    "after_extension_missing": what,
                },
            )
            if what == _MANUAL:
                self._route_manual(
                    tx, adm.id, denial, actor, request, journal, event="extension_missing"
                )
            else:
                journal.append(
                    self._audit_admission(
                        tx, adm, "extension_missing", adm.status, Outcome.APPLIED,
                        denial.rule_id, denial.reason, denial.inputs, actor, request,
                        self._now(),
                    )
                )  # fmt: skip
            return "fired"
        if kind == CLAIM_DUE:
            loaded = self._load_claim(tx, subject_id)
            if loaded.claim.status != "open":
                return "retired"
            now = self._now()
            lapsed = replace(loaded.claim, status="lapsed", version=loaded.claim.version + 1)
            self._save_claim(tx, lapsed, loaded.claim.version, now)
            journal.append(
                self._audit_subject(
                    tx,
                    subject_id,
                    loaded.policy_region_version,
                    "lapse_claim",
                    "open",
                    "lapsed",
                    Outcome.APPLIED,
                    "P6",
                    "the claim was not filed by its deadline",
                    {"last_day": str(lapsed.last_day)},
                    actor,
                    request,
                    now,
                )
            )
            return "fired"
        raise InvalidInput("kind", "C4", f"unknown deadline kind {kind!r}")

    # -- internals ---------------------------------------------------------------------------

    def _close_window(
        self,
        tx: Tx,
        deemed: Filing,
        adm: Admission,
        actor: Actor,
        request: Request,
        journal: Journal,
    ) -> bool:
        """E3: the deemed filing lapses; the admission goes to manual reimbursement."""
        policy = self._policy(tx, deemed.policy_region, deemed.policy_version)
        denial = self._fire_in(
            tx, deemed, policy, "close_window", SYSTEM_ACTOR, request, journal, "window_closed"
        )
        if denial is not None:
            return False
        if self._covering(tx, adm) is not None:
            # Another filing valid on the admission day covers the stay (V5), such as one made
            # in time for another admission: the deemed filing was not needed, nothing routes.
            return True
        window = filing_window(adm, policy, self.calendar)
        rule = window.rule if window else "E3"
        reason = Denial(
            rule,
            "no filing was made within the window after the emergency admission",
            {"admitted_on": str(adm.admitted_on), **(window_inputs(window) if window else {})},
        )
        self._route_manual(tx, adm.id, reason, actor, request, journal)
        return True

    def _retro_pending(self, tx: Tx, adm: Admission) -> bool:
        """A filing for this admission was submitted in time and is under review or effective:
        the window was met (E3, E5, E7), whatever the review's date."""
        row = tx.one(
            "SELECT id FROM filing_record WHERE admission_id = :a AND deemed = :f "
            "AND state IN ('submitted', 'effective') LIMIT 1",
            {"a": adm.id, "f": False},
        )
        return row is not None

    def _retro_failed(self, tx: Tx, filing: Filing, request: Request, journal: Journal) -> None:
        """A retro filing ended without taking effect (rejected, withdrawn, lapsed): if its
        window is over, the admission's deemed filing lapses (E3, E7) or the admission goes to
        manual reimbursement (E5), as if no filing had been made."""
        assert filing.admission_id is not None
        adm, policy = self._admission_and_policy(tx, filing.admission_id)
        if adm.settled or self._retro_pending(tx, adm):
            return
        adm = self._lapse_if_window_over(tx, adm, request, journal)
        window = filing_window(adm, policy, self.calendar)
        if (
            window is not None
            and window.rule == "E5"
            and window.end.is_over(self._now())
            and self._covering(tx, adm) is None
        ):
            denial = Denial(
                window.rule,
                "the referral reported in time was not approved, and its window is over",
                {"admitted_on": str(adm.admitted_on), **window_inputs(window)},
            )
            self._route_manual(tx, adm.id, denial, SYSTEM_ACTOR, request, journal)

    def _lapse_if_window_over(
        self, tx: Tx, adm: Admission, request: Request, journal: Journal
    ) -> Admission:
        """E3, E7: a deemed filing whose window is over lapses before anything relies on it
        (audited, as the scheduler would have done), so no decision sees a stale one."""
        deemed = self._deemed_of(tx, adm)
        if deemed is None or self._retro_pending(tx, adm):
            return adm
        policy = self._policy(tx, deemed.policy_region, deemed.policy_version)
        window = filing_window(adm, policy, self.calendar)
        if window is None or not window.end.is_over(self._now()):
            return adm
        self._close_window(tx, deemed, adm, SYSTEM_ACTOR, request, journal)
        return self._load_admission(tx, adm.id)

    def _route_manual(
        self,
        tx: Tx,
        admission_id: str,
        denial: Denial,
        actor: Actor,
        request: Request,
        journal: Journal,
        *,
        event: str = "route_manual",
    ) -> None:
        """P5: the person pays in full and claims manual reimbursement; recorded once, with the
        rule that closed direct settlement."""
        now = self._now()
        adm = self._load_admission(tx, admission_id)
        if adm.route == _MANUAL or adm.settled:
            return  # once settled, the discharge decided the route and any claim
        adm.route, adm.route_rule = _MANUAL, denial.rule_id
        self._save_admission(tx, adm, now)
        journal.append(
            self._audit_admission(
                tx,
                adm,
                event,
                adm.status,
                Outcome.APPLIED,
                denial.rule_id,
                "routed to manual reimbursement: " + denial.reason,
                denial.inputs,
                actor,
                request,
                now,
            )
        )

    def _retro_effective(
        self,
        tx: Tx,
        filing: Filing,
        actor: Actor,
        request: Request,
        journal: Journal,
    ) -> None:
        """E2: the retro filing replaces the admission's deemed filing; E5: the report window
        is met."""
        assert filing.admission_id is not None
        adm = self._load_admission(tx, filing.admission_id)
        deemed = self._deemed_of(tx, adm)
        if deemed is not None:
            policy = self._policy(tx, deemed.policy_region, deemed.policy_version)
            self._fire_in(
                tx,
                deemed,
                policy,
                "supersede",
                SYSTEM_ACTOR,
                request,
                journal,
                "replaced_by_filing",
            )
        tx.run(
            "UPDATE deadline_record SET fired_at = :at, outcome = 'retired' "
            "WHERE subject_id = :s AND kind = :k AND fired_at IS NULL",
            {"s": adm.id, "k": REPORT_WINDOW, "at": self._now()},
        )

    def _admission_event(
        self,
        tx: Tx,
        adm: Admission,
        event: str,
        actor: Actor,
        request: Request,
        journal: Journal,
    ) -> _Refused | None:
        """The admission's table (states.admissions): role and status, refusals recorded."""
        spec = ADMISSION_EVENTS[event]
        denial = None
        if actor.role not in spec.roles:
            denial = Denial(
                spec.rule,
                f"the {actor.role.value} role may not {event}",
                {"role": actor.role.value},
            )
        elif actor.role is Role.HOSPITAL and actor.organisation != adm.hospital_org:
            denial = Denial(
                spec.rule,
                "a hospital acts only on admissions it recorded",
                {"hospital_org": adm.hospital_org, "actor_org": actor.organisation},
            )
        elif adm.status not in spec.sources:
            denial = Denial(
                spec.rule,
                f"{event} applies to an admission that is "
                f"{' or '.join(sorted(spec.sources))}, not {adm.status.value}",
                {"status": adm.status.value},
            )
        if denial is None:
            return None
        return self._refuse_admission(tx, adm, event, denial, actor, request, journal)

    def _refuse_admission(
        self,
        tx: Tx,
        adm: Admission,
        event: str,
        denial: Denial,
        actor: Actor,
        request: Request,
        journal: Journal,
    ) -> _Refused:
        journal.append(
            self._audit_admission(
                tx,
                adm,
                event,
                None,
                Outcome.DENIED,
                denial.rule_id,
                denial.reason,
                denial.inputs,
                actor,
                request,
                self._now(),
            )
        )
        return _Refused(_refusal(adm.id, event, adm.status.value, denial))

    def _audit_admission(
        self,
        tx: Tx,
        adm: Admission,
        event: str,
        before: AdmissionStatus | None,
        outcome: Outcome,
        rule_id: str | None,
        reason: str,
        inputs: Mapping[str, Any],
        actor: Actor,
        request: Request,
        at: datetime,
    ) -> dict[str, Any]:
        to_state = adm.status.value if outcome is Outcome.APPLIED else None
        return self._audit_subject(
            tx,
            adm.id,
            (adm.policy_region, adm.policy_version),
            event,
            before.value if before else None,
            to_state,
            outcome,
            rule_id,
            reason,
            inputs,
            actor,
            request,
            at,
        )

    def _deadline(
        self,
        tx: Tx,
        subject: str,
        kind: str,
        due_at: datetime,
        rule: str,
        provisional: bool,
        now: datetime,
    ) -> None:
        """A deadline is a row written in the transaction that creates it, keyed
        (subject, kind, due_at); `fire_deadline` applies it."""
        tx.run(
            _INSERT_DEADLINE,
            {
                "subject_id": subject, "kind": kind, "due_at": due_at, "fired_at": None,
                "outcome": None, "provisional": provisional, "rule_id": rule, "created_at": now,
                "attempts": 0, "last_error": None, "retry_at": None,
            },
        )  # fmt: skip

    def _covering(self, tx: Tx, adm: Admission) -> Filing | None:
        found = covering_filing(adm, self._filings_of(tx, adm))
        return None if found is None or found.deemed else found

    def _filings_of(self, tx: Tx, adm: Admission) -> list[Filing]:
        from workflow.service import _filing_from_row

        rows = tx.all(
            "SELECT * FROM filing_record WHERE person_key = :k AND insurance_type = :t "
            "ORDER BY created_at, id",
            {"k": adm.person_key, "t": adm.insurance_type.value},
        )
        return [_filing_from_row(r) for r in rows]

    def _deemed_of(self, tx: Tx, adm: Admission) -> Filing | None:
        if adm.deemed_filing_id is None:
            return None
        deemed = self._load(tx, adm.deemed_filing_id)[0]
        return deemed if deemed.state is FilingState.DEEMED else None

    def _load_admission(self, tx: Tx, admission_id: str) -> Admission:
        row = tx.one("SELECT * FROM admission_record WHERE id = :id", {"id": admission_id})
        if row is None:
            raise FilingNotFound(admission_id)
        return _admission_from_row(row)

    def _admission_and_policy(
        self, tx: Tx, admission_id: str, expected_version: int | None = None, event: str = ""
    ) -> tuple[Admission, Policy]:
        """The admission, in the write transaction that holds the write lock: a version check
        here is as good as one in the UPDATE (optimistic concurrency, as for filings)."""
        adm = self._load_admission(tx, admission_id)
        check_version(
            admission_id, adm.version, expected_version, event, adm.status.value,
            (adm.policy_region, adm.policy_version),
        )  # fmt: skip
        return adm, self._policy(tx, adm.policy_region, adm.policy_version)

    def _save_admission(self, tx: Tx, adm: Admission, now: datetime) -> None:
        expected = adm.version
        adm.version, adm.updated_at = expected + 1, now
        values = {c: v for c, v in _admission_row(adm).items() if c in _ADMISSION_MUTABLE}
        values.update(id=adm.id, expected_version=expected)
        if tx.run(_UPDATE_ADMISSION, values) != 1:
            raise ConcurrentUpdate(adm.id, expected)

    def _load_claim(self, tx: Tx, claim_id: str) -> _LoadedClaim:
        row = tx.one("SELECT * FROM claim_record WHERE id = :id", {"id": claim_id})
        if row is None:
            raise FilingNotFound(claim_id)
        return _LoadedClaim(_claim_from_row(row), (row["policy_region"], row["policy_version"]))

    def _save_claim(self, tx: Tx, claim: Claim, expected: int, now: datetime) -> None:
        values = {
            "id": claim.id,
            "version": claim.version,
            "status": claim.status,
            "documents_supplied": json.dumps(sorted(claim.documents_supplied)),
            "updated_at": now,
            "expected_version": expected,
        }
        if tx.run(_UPDATE_CLAIM, values) != 1:
            raise ConcurrentUpdate(claim.id, expected)

    # -- queries -----------------------------------------------------------------------------

    def get_admission(self, admission_id: str) -> Admission:
        with self.store.read() as tx:
            return self._load_admission(tx, admission_id)

    def get_claim(self, claim_id: str) -> Claim:
        with self.store.read() as tx:
            return self._load_claim(tx, claim_id).claim


@dataclass(frozen=True)
class _LoadedClaim:
    claim: Claim
    policy_region_version: tuple[str, str]


def _check_actor(actor: Actor, roles: frozenset[Role], what: str) -> None:
    if actor.role not in roles:
        raise InvalidInput("actor.role", "L7", f"the {actor.role.value} role may not {what}")


def _visit_inputs(adm: Admission) -> dict[str, Any]:
    return {
        "admitted_on": str(adm.admitted_on),
        "treatment_region": adm.treatment_region,
        "hospital_code": adm.hospital_code,
        "institution": adm.institution.value,
        "networked": adm.networked,
        "care": adm.care.value,
        "emergency": adm.emergency,
        "referral": adm.referral,
        "transfer_first": adm.transfer_first,
    }


def _admission_row(a: Admission) -> dict[str, Any]:
    return {
        "id": a.id,
        "version": a.version,
        "status": a.status.value,
        "person_key": a.person_key,
        "person_masked": a.person_masked,
        "insurance_type": a.insurance_type.value,
        "insured_region": a.insured_region,
        "treatment_region": a.treatment_region,
        "hospital_code": a.hospital_code,
        "institution": a.institution.value,
        "networked": a.networked,
        "care": a.care.value,
        "admitted_on": a.admitted_on,
        "emergency": a.emergency,
        "referral": a.referral,
        "transfer_first": a.transfer_first,
        "chronic_enabled": a.chronic_enabled,
        "chronic_declared": a.chronic_declared,
        "policy_region": a.policy_region,
        "policy_version": a.policy_version,
        "hospital_org": a.hospital_org,
        "discharged_on": a.discharged_on,
        "settlement": a.settlement.value if a.settlement else None,
        "settled_at": a.settled_at,
        "system_fault": a.system_fault,
        "deemed_filing_id": a.deemed_filing_id,
        "route": a.route,
        "route_rule": a.route_rule,
        "extension": a.extension.value if a.extension else None,
        "claim_id": a.claim_id,
        "created_at": a.created_at,
        "updated_at": a.updated_at,
    }


def _admission_from_row(r: Any) -> Admission:
    return Admission(
        id=r["id"],
        person_key=r["person_key"],
        person_masked=r["person_masked"],
        insurance_type=InsuranceType(r["insurance_type"]),
        insured_region=r["insured_region"],
        treatment_region=r["treatment_region"],
        hospital_code=r["hospital_code"],
        institution=Institution(r["institution"]),
        networked=r["networked"],
        care=Care(r["care"]),
        admitted_on=r["admitted_on"],
        emergency=r["emergency"],
        referral=r["referral"],
        transfer_first=r["transfer_first"],
        policy_region=r["policy_region"],
        policy_version=r["policy_version"],
        hospital_org=r["hospital_org"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
        chronic_enabled=r["chronic_enabled"],
        chronic_declared=r["chronic_declared"],
        status=AdmissionStatus(r["status"]),
        version=r["version"],
        discharged_on=r["discharged_on"],
        settlement=Settlement(r["settlement"]) if r["settlement"] else None,
        settled_at=r["settled_at"],
        system_fault=r["system_fault"],
        deemed_filing_id=r["deemed_filing_id"],
        route=r["route"],
        route_rule=r["route_rule"],
        extension=Extension(r["extension"]) if r["extension"] else None,
        claim_id=r["claim_id"],
    )


def _claim_row(c: Claim, adm: Admission, now: datetime) -> dict[str, Any]:
    return {
        "id": c.id,
        "version": c.version,
        "status": c.status,
        "admission_id": c.admission_id,
        "person_key": adm.person_key,
        "person_masked": adm.person_masked,
        "policy_region": adm.policy_region,
        "policy_version": adm.policy_version,
        "route_rule": c.route_rule,
        "counted_from": c.counted_from,
        "last_day": c.last_day,
        "due_at": c.due_at,
        "provisional": c.provisional,
        "documents_required": json.dumps([list(g) for g in c.documents_required]),
        "documents_supplied": json.dumps(sorted(c.documents_supplied)),
        "self_share_first_percent": c.self_share_first_percent,
        "reduction_percent": c.reduction_percent,
        "created_at": now,
        "updated_at": now,
    }


def _claim_from_row(r: Any) -> Claim:
    return Claim(
        id=r["id"],
        version=r["version"],
        status=r["status"],
        admission_id=r["admission_id"],
        route_rule=r["route_rule"],
        counted_from=r["counted_from"],
        last_day=r["last_day"],
        due_at=r["due_at"],
        provisional=r["provisional"],
        documents_required=tuple(
            tuple(Document(d) for d in g) for g in json.loads(r["documents_required"])
        ),
        documents_supplied=frozenset(Document(d) for d in json.loads(r["documents_supplied"])),
        self_share_first_percent=r["self_share_first_percent"],
        reduction_percent=r["reduction_percent"],
    )
