"""Random walks over the lifecycle (Hypothesis stateful testing) with the invariants that make
the engine trustworthy: a filing's version is one plus its applied transitions, and rises by
exactly one per applied transition; every attempt leaves exactly one record on the filing it
targeted, applied or denied; the chain always verifies; nothing leaves a final state.

Some transitions touch a second filing in the same transaction (a replacement taking effect
cancels the filing it replaces, L5; a filing past its validity is expired before it can block
a new one, L6): those records are checked by the version invariant, on every filing.

The hospital side walks along: admissions (emergency or not, referred or not, transferred first
or not; Jiangmen people in Guangzhou, Shenzhen or at home, Xiamen people in Guangzhou, Shanghai
or at home), retro filings for them (E2), the hospital's stamp (E4), discharge, extensions (E6),
coverage decisions, manual reimbursement claims (P5, P6), and every due deadline row fired after
time passes. Their second-subject records are accounted for the same way: an admit can create a
deemed filing (create and deem, E1) in its transaction; a retro filing taking effect supersedes
the deemed filing (E2); a late retro filing routes its admission to manual reimbursement; a
discharge, a coverage decision or a deadline can close the deemed filing's window (E3) and route
the admission. Every stored filing, admission and claim is one the walk knows, and every audit
record is about one. An admission's version rises with every change recorded on it, and also
with writes recorded elsewhere (its deemed filing's id, its claim's id), so it is bounded below,
not counted; a claim's version is one plus its applied records, like a filing's.

Scripted walks below drive the same rules and invariants down each hospital path every run; the
random walk only reaches the deeper ones in some runs. The last tests are what the walk found.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
)

from states.admissions import ADMISSION_EVENTS, Admission, AdmissionStatus, Extension
from states.catalogue import RULES
from states.coverage import covering_filing
from states.filing import Filing
from states.periods import local_date
from states.regions import area_of, same_area
from states.vocabulary import FINAL_STATES, Document, FilingState, Kind, Settlement
from tests.conftest import FULL_DOCUMENTS, OFFICER, PERSON, ROOT, SYSTEM, Clock, id_number
from workflow import Actor, Channel, FilingEngine, InvalidInput, Role, TransitionRefused
from workflow.config import load_settings
from workflow.hospital import REMINDER_KINDS

SETTINGS = load_settings(ROOT / "config.toml", environ={"FILING_PERSON_KEY": "stateful"})
REGIONS = {"110000": "440300", "350200": "310000", "440700": "440100"}
# The hospital's clinical department applies and reports; its medical office reviews (E4).
HOSPITAL = Actor("his-1", Role.HOSPITAL, Channel.HOSPITAL_SYSTEM, organisation="H1")
MEDICAL_OFFICE = Actor("his-med-1", Role.HOSPITAL, Channel.HOSPITAL_SYSTEM, organisation="H1")
ACTORS = {
    "person": PERSON,
    "officer": OFFICER,
    "system": SYSTEM,
    "hospital": HOSPITAL,
    "medical_office": MEDICAL_OFFICE,
}
NEXT = {
    FilingState.DRAFT: ("submit", PERSON),
    FilingState.SUBMITTED: ("approve", OFFICER),
    FilingState.EFFECTIVE: ("supply_documents", PERSON),
}
EVENTS = [
    "submit",
    "approve",
    "reject",
    "withdraw",
    "cancel",
    "expire",
    "stop_insurance",
    "supply_documents",
    "stamp",
]
# Where the hospital admits: outside the insured area (a filing is needed) or inside it.
TREATMENT = {"440700": ("440100", "440300", "440703"), "350200": ("440100", "310000", "350203")}
RETRO_RULES = frozenset({"E2", "E3", "E5", "E7"})
DEEMED_STATES = frozenset(
    {FilingState.DEEMED, FilingState.LAPSED, FilingState.CANCELLED, FilingState.EXPIRED}
)
MANUAL = "manual_reimbursement"
FILING_WINDOW = "filing_window"
# Deadline kinds whose firing is itself recorded on their subject (reminders are not).
RECORDED_WHEN_FIRED = {"expire", FILING_WINDOW, "report_window", "claim_due"}
CLAIM_STATUSES = frozenset({"open", "filed", "lapsed"})
EXTENSION_EVENTS = sorted(e for e in ADMISSION_EVENTS if e != "discharge")


def _in_scope(insured: str, treatment: str) -> bool:
    return same_area(insured, treatment, SETTINGS.policies[insured].scope)


def _covering_state(filing: Filing, adm: Admission) -> bool:
    """V5: a filing covers a stay that began while it was valid: still effective, expired since,
    or cancelled or lapsed after the admission day."""
    if filing.state in (FilingState.EFFECTIVE, FilingState.EXPIRED):
        return True
    ended_later = adm.admitted_on < local_date(filing.updated_at)
    return filing.state in (FilingState.CANCELLED, FilingState.LAPSED) and ended_later


def _hospital_referral(filing: Filing) -> bool:
    """E4: a referral the hospital applied for in a region whose medical office stamps it."""
    return (
        filing.kind is Kind.REFERRAL
        and filing.channel is Channel.HOSPITAL_SYSTEM
        and SETTINGS.policies[filing.policy_region].referral_hospital_review
    )


class Lifecycle(RuleBasedStateMachine):
    filings = Bundle("filings")
    admissions = Bundle("admissions")

    @initialize()
    def open_engine(self) -> None:
        self.folder = tempfile.mkdtemp()
        self.clock = Clock(datetime(2026, 3, 2, 2, tzinfo=UTC))
        self.engine = FilingEngine.open(
            database_url=f"sqlite:///{self.folder}/walk.db", settings=SETTINGS, clock=self.clock
        )
        self.people: dict[str, tuple[str, str]] = {}  # filing id -> (id number, insured region)
        self.ended: dict[str, FilingState] = {}  # filings seen in a final state
        self.patients: dict[str, tuple[str, str]] = {}  # admission id -> (id number, insured)
        self.deemed: dict[str, str] = {}  # deemed filing id -> its admission id
        self.claims: set[str] = set()
        self.bundled: set[str] = set()  # deemed filings already handed to the filings bundle

    def teardown(self) -> None:
        if hasattr(self, "engine"):
            self.engine.close()
            shutil.rmtree(self.folder, ignore_errors=True)

    def _records(self, subject_id: str) -> int:
        return len(self.engine.history(subject_id))

    def _new_records(self, subject_id: str, since: int) -> list[tuple[str, str]]:
        return [(r["event"], r["outcome"]) for r in self.engine.history(subject_id)[since:]]

    def _today(self) -> date:
        return local_date(self.clock())

    # -- filings ---------------------------------------------------------------------------------

    @rule(
        target=filings,
        insured=st.sampled_from(sorted(REGIONS)),
        kind=st.sampled_from(sorted(FULL_DOCUMENTS)),
        person=st.integers(1, 2),
        complete=st.sampled_from([True, True, True, False]),
        commitment=st.booleans(),
        by_hospital=st.booleans(),
    )
    def create(
        self,
        insured: str,
        kind: str,
        person: int,
        complete: bool,
        commitment: bool,
        by_hospital: bool,
    ) -> str:
        if insured == "440700" and kind == "K6":
            kind = "K5"  # Jiangmen files no other-temporary kind (seed 001)
        long_term = kind in ("K1", "K2", "K3")
        documents = FULL_DOCUMENTS[kind] if complete else ["identity"]  # incomplete: M1 refusals
        if commitment and long_term:
            documents = ["identity", "declaration_form", "personal_commitment"]
        region = "110105" if insured == "110000" else insured[:4] + "03"
        number = id_number(person, region=region, born="20000101")
        # A referral may be applied for by the hospital's clinical department (E4).
        actor = HOSPITAL if by_hospital and kind == "K4" else PERSON
        filing = self.engine.create(
            id_number=number, kind=kind, insurance_type="employee", insured_region=insured,
            treatment_region=REGIONS[insured], actor=actor, documents=documents,
            by_commitment=commitment and long_term, consent_given=True,
            card_settlement_enabled=True,
        )  # fmt: skip
        assert filing.version == 1 and filing.state is FilingState.DRAFT
        assert not filing.deemed and filing.admission_id is None
        assert self._records(filing.id) == 1
        self.people[filing.id] = (number, insured)
        return filing.id

    @rule(filing_id=filings, event=st.sampled_from(EVENTS), who=st.sampled_from(sorted(ACTORS)))
    def fire(self, filing_id: str, event: str, who: str) -> None:
        """Any event, by anyone: mostly refusals, each of which must be recorded."""
        self._attempt(filing_id, event, ACTORS[who])

    @rule(filing_id=filings)
    def advance(self, filing_id: str) -> None:
        """The event a filing's lifecycle asks for next, by the actor who would fire it."""
        filing = self.engine.get(filing_id)
        event, actor = NEXT.get(filing.state, ("cancel", PERSON))
        if filing.state is FilingState.DRAFT and filing.channel is Channel.HOSPITAL_SYSTEM:
            # E4: the medical office stamps the hospital's referral, then the hospital reports it.
            stamp = _hospital_referral(filing) and not filing.hospital_reviewed
            event, actor = ("stamp", MEDICAL_OFFICE) if stamp else ("submit", HOSPITAL)
        self._attempt(filing_id, event, actor)

    def _attempt(self, filing_id: str, event: str, actor: Actor) -> None:
        before, records = self.engine.get(filing_id), self._records(filing_id)
        stay = self.engine.get_admission(before.admission_id) if before.admission_id else None
        kwargs: dict[str, object] = {"reason": "not_eligible"} if event == "reject" else {}
        args: tuple[object, ...] = (filing_id, actor)
        if event == "supply_documents":
            args = (*args, FULL_DOCUMENTS[before.kind.value])
        try:
            after = getattr(self.engine, event)(*args, **kwargs)
        except TransitionRefused as refusal:
            after = self.engine.get(filing_id)
            assert refusal.rule_id and refusal.filing_id == filing_id
            assert refusal.rule_id in RULES
            assert (after.state, after.version) == (before.state, before.version)
            if event == "submit" and stay is not None and refusal.rule_id in RETRO_RULES:
                # Too late to file for this stay: it is routed to manual reimbursement, unless
                # it was settled already (which decided its route and any claim), or another
                # filing made in time, or before, meets the window.
                adm = self.engine.get_admission(stay.id)
                number, _ = self.people[filing_id]
                met = self._filed_in_time(adm.id) or self._covered_by_a_filing(number, adm)
                if adm.settled or met:
                    assert adm.route == stay.route
                else:
                    assert adm.route == MANUAL
        else:
            assert before.state not in FINAL_STATES, f"{event} moved a {before.state} filing"
            assert after.version == before.version + 1
            if event == "stamp":
                assert _hospital_referral(before) and after.hospital_reviewed
                assert not before.hospital_reviewed and after.state is FilingState.DRAFT
                assert actor.id != before.filed_by  # the reviewer is not the applicant
        assert self._records(filing_id) == records + 1

    @rule(filing_id=filings, treatment=st.sampled_from(["310000", "440100", "440305"]))
    def change(self, filing_id: str, treatment: str) -> None:
        number, insured = self.people[filing_id]
        before, records = self.engine.get(filing_id), self._records(filing_id)
        try:
            old, new = self.engine.change(
                filing_id, id_number=number, kind="K6", insurance_type="employee",
                insured_region=insured, treatment_region=treatment, actor=PERSON,
                documents=FULL_DOCUMENTS["K6"], consent_given=True,
            )  # fmt: skip
        except TransitionRefused:
            after = self.engine.get(filing_id)
            assert (after.state, after.version) == (before.state, before.version)
            assert self._records(filing_id) == records + 1
        except InvalidInput as invalid:
            # e.g. no filing needed there: nothing of the change, but the refusal is recorded
            assert invalid.rule_id is not None
            assert self._records(filing_id) == records + 1
        else:
            assert new.supersedes == filing_id and self._records(new.id) == 2
            self.people[new.id] = (number, insured)
            if new.state is FilingState.EFFECTIVE:
                assert old.state is FilingState.CANCELLED and old.version == before.version + 1
            else:
                assert (old.state, old.version) == (before.state, before.version)

    @rule(
        # Around the windows: 10 days (E3, E5), 60 (E6), 6 months (V3, P6).
        days=st.one_of(st.integers(0, 12), st.sampled_from([9, 11, 30, 61, 95, 190])),
        sweep=st.sampled_from([True, True, False]),
    )
    def time_passes(self, days: int, sweep: bool) -> None:
        """Time passes; mostly the scheduler then fires what fell due (else a later decision
        meets it first)."""
        self.clock.advance(days=days)
        if sweep:
            self.fire_due()

    # -- the hospital side -------------------------------------------------------------------------

    @rule(
        target=admissions,
        insured=st.sampled_from(["440700", "440700", "350200"]),
        where=st.sampled_from([0, 0, 0, 1, 2]),
        person=st.integers(1, 2),
        emergency=st.booleans(),
        referral=st.booleans(),
        transfer_first=st.booleans(),
        networked=st.sampled_from([True, True, True, False]),
        days_ago=st.integers(0, 12),
    )
    def admit(
        self,
        insured: str,
        where: int,
        person: int,
        emergency: bool,
        referral: bool,
        transfer_first: bool,
        networked: bool,
        days_ago: int,
    ) -> str:
        number = id_number(person, region=insured[:4] + "03", born="20000101")
        treatment = TREATMENT[insured][where]
        total = self.engine.checkpoint().count
        adm = self.engine.admit(
            id_number=number, insurance_type="employee", insured_region=insured,
            treatment_region=treatment, hospital_code="H1",
            admitted_on=self._today() - timedelta(days=days_ago), actor=HOSPITAL,
            emergency=emergency, referral=referral, transfer_first=referral and transfer_first,
            networked=networked,
        )  # fmt: skip
        self.patients[adm.id] = (number, insured)
        assert adm.status is AdmissionStatus.ADMITTED and adm.settlement is None
        assert self._new_records(adm.id, 0) == [("admit", "applied")]
        if adm.deemed_filing_id is None:
            assert adm.version == 1
            assert self.engine.checkpoint().count == total + 1
            if emergency and not _in_scope(insured, treatment):
                # E1 deems no filing only where one the person made already covers it (V5).
                assert self._covered_by_a_filing(number, adm)
            return adm.id
        # E1: the deemed filing is created and deemed in the admit's own transaction.
        assert emergency and not _in_scope(insured, treatment)
        deemed = self.engine.get(adm.deemed_filing_id)
        assert adm.version == 2  # the admission, then its deemed filing's id
        assert (deemed.state, deemed.version, deemed.deemed) == (FilingState.DEEMED, 2, True)
        assert (deemed.admission_id, deemed.kind) == (adm.id, Kind.EMERGENCY)
        assert deemed.effective_on == adm.admitted_on
        assert self._new_records(deemed.id, 0) == [("create", "applied"), ("deem", "applied")]
        assert self.engine.checkpoint().count == total + 3
        self.people[deemed.id] = (number, insured)
        self.deemed[deemed.id] = adm.id
        return adm.id

    def _covered_by_a_filing(self, number: str, adm: Admission) -> bool:
        return any(
            not f.deemed
            and _covering_state(f, adm)
            and f.effective_on is not None
            and f.effective_on <= adm.admitted_on
            and (f.valid_until is None or adm.admitted_on <= f.valid_until)
            and area_of(f.treatment_region) == area_of(adm.treatment_region)
            for f in self.engine.list_for_person(number)
        )

    @rule(target=filings, admission_id=admissions)
    def the_deemed_filing(self, admission_id: str) -> Any:
        """Hand an admission's deemed filing to the walk, so events are fired at it too."""
        deemed = self.engine.get_admission(admission_id).deemed_filing_id
        if deemed is None or deemed in self.bundled:
            return multiple()
        self.bundled.add(deemed)
        return deemed

    @rule(
        target=filings,
        admission_id=admissions,
        kind=st.sampled_from(["K4", "K5", "K6"]),
        by_hospital=st.booleans(),
        progress=st.sampled_from([0, 1, 2, 2]),
    )
    def retro(self, admission_id: str, kind: str, by_hospital: bool, progress: int) -> Any:
        """E2: a filing made for an admission already begun (补办), by the person or, for a
        referral, by the hospital (E4, E5); then, as far as `progress` says, stamped by the
        medical office where it must be (E4), submitted (reported), and approved."""
        number, insured = self.patients[admission_id]
        adm = self.engine.get_admission(admission_id)
        if insured == "440700" and kind == "K6":
            kind = "K5"  # Jiangmen files no other-temporary kind (seed 001)
        actor = HOSPITAL if by_hospital and kind == "K4" else PERSON
        total = self.engine.checkpoint().count
        try:
            filing = self.engine.create(
                id_number=number, kind=kind, insurance_type="employee", insured_region=insured,
                treatment_region=adm.treatment_region, actor=actor,
                documents=FULL_DOCUMENTS[kind], consent_given=True, card_settlement_enabled=True,
                admission_id=admission_id,
            )  # fmt: skip
        except InvalidInput as invalid:
            assert self.engine.checkpoint().count == total + 1  # the denied create alone
            if _in_scope(insured, adm.treatment_region):
                # Care inside the insured area needs no filing (K8).
                assert invalid.rule_id == "K8", invalid
            else:
                # The only other reason: its start date, the admission's, is further back
                # than a date may be given ([input]).
                assert adm.admitted_on < SETTINGS.input.earliest(self._today()), invalid
                assert (invalid.field, invalid.rule_id) == ("start_date", "R2")
            return multiple()
        assert not _in_scope(insured, adm.treatment_region)
        assert (filing.state, filing.version, filing.deemed) == (FilingState.DRAFT, 1, False)
        assert filing.admission_id == admission_id and filing.start_date == adm.admitted_on
        assert self._new_records(filing.id, 0) == [("create", "applied")]
        self.people[filing.id] = (number, insured)
        if progress >= 1 and _hospital_referral(filing):
            self._attempt(filing.id, "stamp", MEDICAL_OFFICE)
        if progress >= 1:
            self._attempt(filing.id, "submit", actor)
        if progress >= 2 and self.engine.get(filing.id).state is FilingState.SUBMITTED:
            self._attempt(filing.id, "approve", OFFICER)
        return filing.id

    @rule(
        admission_id=admissions,
        days=st.integers(0, 90),
        fault=st.sampled_from([False] * 5 + [True]),
    )
    def discharge(self, admission_id: str, days: int, fault: bool) -> None:
        before, records = self.engine.get_admission(admission_id), self._records(admission_id)
        policy = SETTINGS.policies[before.policy_region]
        deemed = self.engine.get(before.deemed_filing_id) if before.deemed_filing_id else None
        live = deemed is not None and deemed.state is FilingState.DEEMED
        # E3: where the window to file closes at discharge, a live deemed filing lapses there,
        # unless a filing for the stay was made in time (under review or effective).
        windowed = before.emergency and policy.emergency_filing_window_days > 0
        closes = live and windowed and not self._filed_in_time(admission_id)
        covered = self._covered_otherwise(before)
        # Within the stay, and no further back than a date may be given ([input]).
        earliest = SETTINGS.input.earliest(self._today())
        on = min(self._today(), max(earliest, before.admitted_on + timedelta(days=days)))
        try:
            adm, cov = self.engine.discharge(admission_id, on, HOSPITAL, system_fault=fault)
        except TransitionRefused as refusal:
            assert before.status is AdmissionStatus.DISCHARGED
            assert refusal.rule_id == ADMISSION_EVENTS["discharge"].rule
            after = self.engine.get_admission(admission_id)
            assert (after.status, after.version) == (before.status, before.version)
            assert self._new_records(admission_id, records) == [("discharge", "denied")]
            return
        assert before.status is AdmissionStatus.ADMITTED
        assert adm.status is AdmissionStatus.DISCHARGED and adm.discharged_on == on
        assert adm.settlement is (
            Settlement.DIRECT if cov.direct_settlement else Settlement.SELF_PAID
        )
        expected = [("discharge", "applied")]
        if closes and before.route != MANUAL and not covered:
            expected.insert(0, ("route_manual", "applied"))  # E3: routed as the window closed
        assert self._new_records(admission_id, records) == expected
        opened = before.claim_id is None and adm.claim_id is not None
        assert adm.version >= before.version + len(expected) + opened
        if live:
            assert deemed is not None
            ended = self.engine.get(deemed.id)
            # E3: lapses with its window; else E1: it has served its admission.
            assert ended.state is (FilingState.LAPSED if closes else FilingState.EXPIRED)
            assert ended.version == deemed.version + 1
        if adm.settlement is Settlement.SELF_PAID:
            assert adm.route == MANUAL
        if adm.route == MANUAL and cov.reimbursable:
            assert adm.claim_id is not None
        if adm.claim_id is not None and before.claim_id is None:
            assert self._new_records(adm.claim_id, 0) == [("open_claim", "applied")]
            self.claims.add(adm.claim_id)
        assert all(d.fired_at is not None for d in self.engine.deadlines(admission_id))

    @rule(
        admission_id=admissions,
        choice=st.sampled_from(["next", "next", "next", *EXTENSION_EVENTS]),
        who=st.sampled_from(["fit", "fit", "fit", "hospital", "officer", "person"]),
        certificate=st.sampled_from([True, True, False]),
        grant=st.booleans(),
    )
    def extension(
        self, admission_id: str, choice: str, who: str, certificate: bool, grant: bool
    ) -> None:
        """E6: request (with or without the hospital's documents), grant or refuse: mostly the
        step the extension is waiting for, by whom it is for; sometimes any, by anyone."""
        before, records = self.engine.get_admission(admission_id), self._records(admission_id)
        event = choice
        if choice == "next" and before.extension is Extension.REQUESTED:
            event = "grant_extension" if grant else "refuse_extension"
        elif choice == "next":
            event = "request_extension"
        fit = HOSPITAL if event == "request_extension" else OFFICER
        actor = fit if who == "fit" else ACTORS[who]
        try:
            if event == "request_extension":
                docs = [Document.CONTINUED_STAY_CERTIFICATE] if certificate else []
                after = self.engine.request_extension(admission_id, actor, docs)
            else:
                after = getattr(self.engine, event)(admission_id, actor)
        except TransitionRefused as refusal:
            assert refusal.rule_id == ADMISSION_EVENTS[event].rule
            after = self.engine.get_admission(admission_id)
            assert (after.version, after.extension) == (before.version, before.extension)
            assert self._new_records(admission_id, records) == [(event, "denied")]
            return
        assert before.status is AdmissionStatus.ADMITTED and before.referral
        assert actor.role in ADMISSION_EVENTS[event].roles
        assert after.version == before.version + 1 and after.extension is not None
        assert (
            after.extension.value
            == {
                "request_extension": "requested",
                "grant_extension": "granted",
                "refuse_extension": "refused",
            }[event]
        )
        assert self._new_records(admission_id, records) == [(event, "applied")]

    @rule(admission_id=admissions, offset=st.integers(0, 90))
    def coverage(self, admission_id: str, offset: int) -> None:
        """A coverage decision never relies on a deemed filing whose window is over: that one
        lapses first (E3), as the scheduler would have done, routing the admission."""
        adm, records = self.engine.get_admission(admission_id), self._records(admission_id)
        stale = self._window_over(adm)
        covered = self._covered_otherwise(adm)
        day = adm.admitted_on + timedelta(days=offset)
        cov = self.engine.coverage(admission_id, HOSPITAL, day=day)
        expected = [("decide_coverage", "applied")]
        if stale and adm.route != MANUAL and not covered:
            expected.insert(0, ("route_manual", "applied"))
        assert self._new_records(admission_id, records) == expected
        assert self.engine.history(admission_id)[-1]["rule_id"] == cov.rule_id
        after = self.engine.get_admission(admission_id)
        if stale:
            assert adm.deemed_filing_id is not None and after.route == MANUAL
            assert self.engine.get(adm.deemed_filing_id).state is FilingState.LAPSED
            assert after.version >= adm.version + len(expected) - 1
        else:
            assert after.version == adm.version  # a decision changes nothing
        assert cov.admission_id == admission_id and cov.day == day and cov.rule_id in RULES
        assert (cov.manual is None) == (cov.direct_settlement or not cov.reimbursable)
        _, insured = self.patients[admission_id]
        assert (cov.basis == "no_filing_needed") == _in_scope(insured, adm.treatment_region)
        if cov.basis == "deemed":
            assert cov.filing_id == adm.deemed_filing_id and cov.filing_id is not None
            assert self.engine.get(cov.filing_id).state is FilingState.DEEMED
        elif cov.basis == "filing":
            assert cov.filing_id is not None and cov.filing_id in self.people
            covering = self.engine.get(cov.filing_id)
            assert not covering.deemed and _covering_state(covering, adm)
        else:
            assert cov.filing_id is None

    @rule(admission_id=admissions, grant=st.booleans())
    def advance_stay(self, admission_id: str, grant: bool) -> None:
        """The step a stay asks for next, by whom it is for: an extension for a referred stay
        (E6) requested, then granted or refused; else the discharge; then the claim filed."""
        adm = self.engine.get_admission(admission_id)
        threshold = SETTINGS.policies[adm.policy_region].extension_after_days
        waiting = adm.extension is Extension.REQUESTED
        if adm.status is AdmissionStatus.DISCHARGED:
            if adm.claim_id is not None:
                self.file_claim(admission_id, complete=True)
            else:
                self.coverage(admission_id, offset=0)
        elif waiting or (adm.referral and threshold and adm.extension is None):
            self.extension(admission_id, "next", "fit", certificate=True, grant=grant)
        else:
            self.discharge(admission_id, days=90, fault=False)

    def _filed_in_time(self, admission_id: str) -> bool:
        """A filing for the stay is under review or effective: its window was met."""
        return any(
            f.admission_id == admission_id
            and not f.deemed
            and f.state in (FilingState.SUBMITTED, FilingState.EFFECTIVE)
            for f in map(self.engine.get, self.people)
        )

    def _covered_otherwise(self, adm: Admission) -> bool:
        """V5: a filing other than the deemed one, valid on the admission day, covers the stay
        (for example one made for another stay of the same days)."""
        filings = [self.engine.get(f) for f in self.people]
        found = covering_filing(adm, [f for f in filings if f.person_key == adm.person_key])
        return found is not None and not found.deemed

    def _window_over(self, adm: Admission) -> bool:
        """Whether the admission's deemed filing is still deemed though its window is over and
        no filing for the stay was made in time."""
        if adm.deemed_filing_id is None or self._filed_in_time(adm.id):
            return False
        if self.engine.get(adm.deemed_filing_id).state is not FilingState.DEEMED:
            return False
        return any(
            d.kind == FILING_WINDOW and d.due_at <= self.clock()
            for d in self.engine.deadlines(adm.deemed_filing_id)
        )

    @rule(admission_id=admissions, complete=st.booleans())
    def file_claim(self, admission_id: str, complete: bool) -> None:
        claim_id = self.engine.get_admission(admission_id).claim_id
        if claim_id is None:
            return
        before, records = self.engine.get_claim(claim_id), self._records(claim_id)
        documents = [group[0] for group in before.documents_required] if complete else []
        try:
            filed = self.engine.file_claim(claim_id, PERSON, documents)
        except TransitionRefused as refusal:
            assert refusal.rule_id in ("P5", "P6")
            assert before.status != "open" or not complete or self.clock() >= before.due_at
            after = self.engine.get_claim(claim_id)
            assert (after.status, after.version) == (before.status, before.version)
            assert self._new_records(claim_id, records) == [("file_claim", "denied")]
            return
        assert before.status == "open" and self.clock() < before.due_at
        assert (filed.status, filed.version) == ("filed", before.version + 1)
        assert self._new_records(claim_id, records) == [("file_claim", "applied")]

    @rule()
    def fire_due(self) -> None:
        """The scheduler's sweep: every pending row that is due, earliest first, each fired once;
        a rerun of a settled row is a no-op."""
        while True:
            now = self.clock()
            due = sorted(
                (row.due_at, subject, row.kind)
                for subject in [*self.people, *self.patients, *self.claims]
                for row in self.engine.deadlines(subject)
                if row.fired_at is None and row.due_at <= now
            )
            if not due:
                return
            due_at, subject, kind = due[0]
            self._fire_deadline(subject, kind, due_at)

    def _fire_deadline(self, subject: str, kind: str, due_at: datetime) -> None:
        records, total = self._records(subject), self.engine.checkpoint().count
        admission_id = self.deemed.get(subject) if kind == FILING_WINDOW else subject
        routed = (
            self.engine.get_admission(admission_id).route == MANUAL
            if admission_id in self.patients
            else None
        )
        outcome = self.engine.fire_deadline(subject, kind, due_at)
        assert outcome in ("fired", "retired")
        assert self.engine.fire_deadline(subject, kind, due_at) is None  # a rerun is a no-op
        assert self.engine.checkpoint().count >= total
        row = next(
            r for r in self.engine.deadlines(subject) if (r.kind, r.due_at) == (kind, due_at)
        )
        assert row.fired_at is not None
        assert row.outcome == outcome
        new = self._new_records(subject, records)
        if outcome == "retired":  # recorded as a refused attempt: why it no longer applied
            assert len(new) == 1 and new[0][1] == "denied"
            assert self.engine.checkpoint().count == total + 1
        elif kind in RECORDED_WHEN_FIRED:
            assert len(new) == 1 and new[0][1] == "applied"
        reminders = [
            r for r in self.engine.reminders(subject) if (r.kind, r.due_at) == (kind, due_at)
        ]
        assert len(reminders) == (1 if outcome == "fired" and kind in REMINDER_KINDS else 0)
        if outcome == "fired" and kind == FILING_WINDOW:
            assert new == [("close_window", "applied")]
            assert self.engine.get(subject).state is FilingState.LAPSED
        if outcome == "fired" and kind in (FILING_WINDOW, "report_window", "extension_due"):
            assert admission_id is not None
            adm = self.engine.get_admission(admission_id)
            # V5: a window closes without routing a stay another filing covers.
            assert adm.route == MANUAL or (kind == FILING_WINDOW and self._covered_otherwise(adm))
            if kind == "extension_due":  # recorded unless it was already routed
                assert len(new) == (0 if routed else 1)
        if outcome == "fired" and kind == "claim_due":
            assert new == [("lapse_claim", "applied")]
            assert self.engine.get_claim(subject).status == "lapsed"

    # -- invariants ------------------------------------------------------------------------------
    # Read straight from the tables, a few queries per step: what is stored must be consistent
    # whatever the API returned.

    @invariant()
    def the_chain_verifies(self) -> None:
        if hasattr(self, "engine"):
            result = self.engine.verify()
            assert result.ok, result.problems

    @invariant()
    def what_is_stored_is_consistent(self) -> None:
        """One read of the tables per step, then each check in turn."""
        if not hasattr(self, "engine"):
            return
        world = World.read(self.engine.sql_engine)
        self.a_version_is_one_plus_the_applied_transitions_and_final_states_stay(world)
        self.every_stored_subject_is_known_and_every_record_is_about_one(world)
        self.admissions_are_consistent(world)
        self.a_retro_filing_that_took_effect_replaced_the_deemed_filing(world)
        self.a_deemed_filing_ended_the_way_its_state_says(world)
        self.claims_are_consistent(world)

    def a_version_is_one_plus_the_applied_transitions_and_final_states_stay(
        self, world: World
    ) -> None:
        for filing_id, filing in world.filings.items():
            state = FilingState(filing["state"])
            # create is applied at version 1; every other applied record raised it by one
            assert filing["version"] == world.applied(filing_id), filing_id
            if filing_id in self.ended:
                assert state is self.ended[filing_id]
            elif state in FINAL_STATES:
                self.ended[filing_id] = state
            if filing["deemed"]:
                # E1: a deemed filing stands in for one admission and only ends.
                assert state in DEEMED_STATES, state
                assert self.deemed.get(filing_id) == filing["admission_id"]
                assert filing["kind"] == Kind.EMERGENCY.value
            else:
                assert state is not FilingState.DEEMED

    def every_stored_subject_is_known_and_every_record_is_about_one(self, world: World) -> None:
        assert set(world.filings) == set(self.people)
        assert set(world.admissions) == set(self.patients)
        for claim_id, claim in world.claims.items():
            assert world.admissions[claim["admission_id"]]["claim_id"] == claim_id
        self.claims |= set(world.claims)
        # Every subject has records; a refused creation is recorded with none (nothing exists).
        subjects = set(world.records) - {None}
        assert subjects == set(world.filings) | set(world.admissions) | self.claims

    def admissions_are_consistent(self, world: World) -> None:
        for admission_id, adm in world.admissions.items():
            # Every recorded change raised the version (a coverage decision changes nothing); so
            # did writing the deemed filing's and the claim's ids, recorded on their own subjects.
            changes = world.applied(admission_id) - world.applied(admission_id, "decide_coverage")
            extra = (adm["deemed_filing_id"] is not None) + (adm["claim_id"] is not None)
            assert adm["version"] >= changes + extra, admission_id
            discharged = adm["status"] == AdmissionStatus.DISCHARGED.value
            assert discharged == (adm["settlement"] is not None) == (adm["settled_at"] is not None)
            assert discharged == (adm["discharged_on"] is not None)
            assert world.applied(admission_id, "discharge") == discharged
            if adm["settlement"] == Settlement.SELF_PAID.value:
                assert adm["route"] == MANUAL
                if world.settled_reimbursable[admission_id]:
                    assert adm["claim_id"] is not None  # P5: paid in full, claims it back
            if adm["claim_id"] is not None:
                assert discharged and adm["route"] == MANUAL
            if adm["settlement"] == Settlement.DIRECT.value and adm["claim_id"] is not None:
                # P1, P5: no claim beside a direct settlement, but for the days past the
                # extension threshold (E6).
                assert adm["route_rule"] == "E6", dict(adm)
            if adm["route"] is not None:
                assert adm["route"] == MANUAL and adm["route_rule"] in RULES
            if discharged:
                assert world.pending.get(admission_id, []) == []  # its windows ended with it
            deemed_id = adm["deemed_filing_id"]
            if deemed_id is not None:
                assert self.deemed.get(deemed_id) == admission_id
                if discharged:  # it ended with the stay
                    assert world.filings[deemed_id]["state"] != FilingState.DEEMED.value

    def a_retro_filing_that_took_effect_replaced_the_deemed_filing(self, world: World) -> None:
        for filing in world.filings.values():
            if filing["deemed"] or filing["admission_id"] is None:
                continue
            if filing["effective_on"] is None:  # never took effect
                continue
            deemed_id = world.admissions[filing["admission_id"]]["deemed_filing_id"]
            if deemed_id is not None:
                assert world.filings[deemed_id]["state"] != FilingState.DEEMED.value

    def a_deemed_filing_ended_the_way_its_state_says(self, world: World) -> None:
        """E1: settled with its stay; E2: superseded by a filing that took effect; E3: its
        window closed and the stay went to manual reimbursement; L2: 停保."""
        took_effect = {
            f["admission_id"]
            for f in world.filings.values()
            if not f["deemed"] and f["admission_id"] is not None and f["effective_on"] is not None
        }
        for filing_id, filing in world.filings.items():
            if not filing["deemed"]:
                continue
            adm, state = world.admissions[filing["admission_id"]], FilingState(filing["state"])
            ends = {e: world.applied(filing_id, e) for e in ("settle", "supersede", "close_window")}
            ends["stop_insurance"] = world.applied(filing_id, "stop_insurance")
            assert sum(ends.values()) == (state is not FilingState.DEEMED)
            if state is FilingState.EXPIRED:
                assert ends["settle"] and adm["status"] == AdmissionStatus.DISCHARGED.value
            if state is FilingState.CANCELLED:
                assert ends["supersede"] and filing["admission_id"] in took_effect
            if state is FilingState.LAPSED:
                assert ends["close_window"] or ends["stop_insurance"]
            if ends["close_window"]:
                # E3: the window closed without a filing: the stay pays first and claims.
                assert adm["route"] == MANUAL, dict(adm)

    def claims_are_consistent(self, world: World) -> None:
        for claim_id, claim in world.claims.items():
            assert claim["version"] == world.applied(claim_id)
            assert world.applied(claim_id, "open_claim") == 1
            assert claim["status"] in CLAIM_STATUSES
            pending = world.pending.get(claim_id, [])
            if claim["status"] == "open":
                assert pending[-1:] == ["claim_due"]
            else:
                assert pending == []


# Plain SQL, read as stored (SQLite): no type processing, so a step's read stays cheap.
_FILINGS = "SELECT id, state, version, deemed, admission_id, effective_on, kind FROM filing_record"
_ADMISSIONS = (
    "SELECT id, version, status, discharged_on, settlement, settled_at, deemed_filing_id, "
    "route, route_rule, claim_id FROM admission_record"
)
_CLAIMS = "SELECT id, version, status, admission_id FROM claim_record"
_RECORDS = "SELECT filing_id, event, outcome, rule_id, inputs FROM audit_record ORDER BY seq"
_PENDING = (
    "SELECT subject_id, kind FROM deadline_record WHERE fired_at IS NULL ORDER BY due_at, kind"
)


@dataclass(frozen=True)
class World:
    """What is stored, read in a few queries."""

    filings: dict[str, Any]
    admissions: dict[str, Any]
    claims: dict[str, Any]
    records: Counter[str]
    applied_records: Counter[tuple[str, str | None]]
    settled_reimbursable: dict[str, bool]  # the discharge's decision: anything to claim back
    refusals: dict[str, list[tuple[str, str | None]]]  # subject -> (event, rule) denied
    pending: dict[str, list[str]]  # deadline kinds not yet fired, earliest first

    def applied(self, subject: str, event: str | None = None) -> int:
        return self.applied_records[(subject, event)]

    @classmethod
    def read(cls, sql: sa.Engine) -> World:
        with sql.connect() as conn:
            filings = conn.exec_driver_sql(_FILINGS).mappings()
            admissions = conn.exec_driver_sql(_ADMISSIONS).mappings()
            claims = conn.exec_driver_sql(_CLAIMS).mappings()
            records = conn.exec_driver_sql(_RECORDS).all()
            pending = conn.exec_driver_sql(_PENDING).all()
            world = cls(
                filings={row["id"]: row for row in filings},
                admissions={row["id"]: row for row in admissions},
                claims={row["id"]: row for row in claims},
                records=Counter(),
                applied_records=Counter(),
                settled_reimbursable={},
                refusals={},
                pending={},
            )
        for subject, event, outcome, rule_id, inputs in records:
            world.records[subject] += 1
            if outcome == "denied":
                world.refusals.setdefault(subject, []).append((event, rule_id))
            if outcome == "applied":
                world.applied_records[(subject, None)] += 1
                world.applied_records[(subject, event)] += 1
                if event == "discharge":
                    world.settled_reimbursable[subject] = json.loads(inputs)["reimbursable"]
        for subject, kind in pending:
            world.pending.setdefault(subject, []).append(kind)
        return world


Lifecycle.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLifecycle = Lifecycle.TestCase


# -- scripted walks --------------------------------------------------------------------------------
# The random walk reaches the deeper hospital paths only in some runs; these scripts take the
# same machine, rules and invariants down each of them every time.


class Script:
    """Drive the machine by hand: each step is one of its rules, followed by its invariants."""

    def __init__(self) -> None:
        self.machine = Lifecycle()
        self.machine.open_engine()
        self.engine = self.machine.engine

    def __call__(self, step: str, *args: Any, **kwargs: Any) -> Any:
        result = getattr(self.machine, step)(*args, **kwargs)
        self.machine.the_chain_verifies()
        self.machine.what_is_stored_is_consistent()
        return result

    def admit(self, insured: str, **visit: Any) -> str:
        values: dict[str, Any] = dict(
            where=0, person=1, emergency=False, referral=False, transfer_first=False,
            networked=True, days_ago=0,
        )  # fmt: skip
        values.update(visit)
        return str(self("admit", insured=insured, **values))

    def deadline_outcomes(self, subject: str) -> dict[str, str | None]:
        return {d.kind: d.outcome for d in self.engine.deadlines(subject)}

    def close(self) -> None:
        self.machine.teardown()


def _jiangmen_emergency_without_a_filing(run: Script) -> None:
    """E1, E3, P5, P6: deemed filed; the window passes; manual reimbursement; the claim lapses."""
    adm = run.admit("440700", emergency=True)
    deemed = run.engine.get_admission(adm).deemed_filing_id
    assert deemed is not None
    run("time_passes", days=11, sweep=True)
    assert run.engine.get(deemed).state is FilingState.LAPSED
    # The sweep ran only after the window closed: its reminder came too late and was not sent.
    assert run.deadline_outcomes(deemed) == {FILING_WINDOW: "fired", "window_reminder": "retired"}
    assert run.engine.get_admission(adm).route_rule == "E3"
    run("discharge", adm, days=11, fault=False)
    claim = run.engine.get_admission(adm).claim_id
    assert claim is not None
    run("time_passes", days=190, sweep=True)
    assert run.engine.get_claim(claim).status == "lapsed"


def _jiangmen_emergency_filed_in_time(run: Script) -> None:
    """E2, E3: a retro filing approved within 10 days supersedes the deemed filing."""
    adm = run.admit("440700", emergency=True, days_ago=3)
    deemed = run.engine.get_admission(adm).deemed_filing_id
    assert deemed is not None
    filing = run("retro", adm, kind="K5", by_hospital=False, progress=2)
    assert run.engine.get(filing).state is FilingState.EFFECTIVE
    assert run.engine.get(deemed).state is FilingState.CANCELLED
    assert run.deadline_outcomes(deemed) == {FILING_WINDOW: "retired", "window_reminder": "retired"}
    run("discharge", adm, days=5, fault=False)
    assert run.engine.get_admission(adm).settlement is Settlement.DIRECT
    run("coverage", adm, offset=2)


def _jiangmen_emergency_filed_too_late(run: Script) -> None:
    """E3: past the window (no sweep yet) the retro filing is refused; the stale deemed
    filing lapses first and the admission is routed to manual reimbursement."""
    adm = run.admit("440700", emergency=True, days_ago=2)
    run("time_passes", days=9, sweep=False)
    filing = run("retro", adm, kind="K5", by_hospital=False, progress=1)
    assert run.engine.history(filing)[-1]["rule_id"] == "E3"
    deemed = run.engine.get_admission(adm).deemed_filing_id
    assert deemed is not None and run.engine.get(deemed).state is FilingState.LAPSED
    assert run.engine.get_admission(adm).route == MANUAL
    run("coverage", adm, offset=0)
    run("advance_stay", adm, grant=False)  # discharged, with a claim
    run("advance_stay", adm, grant=False)  # the claim filed
    claim = run.engine.get_admission(adm).claim_id
    assert claim is not None and run.engine.get_claim(claim).status == "filed"


def _jiangmen_transfer_first_referral(run: Script) -> None:
    """E4, E5, E6: the hospital's report is stamped but comes after the 10-day window, which
    has routed the stay; the extension is requested and granted, so the 60 days pass quietly."""
    adm = run.admit("440700", referral=True, transfer_first=True)
    filing = run("retro", adm, kind="K4", by_hospital=True, progress=0)
    assert run.engine.get(filing).channel is Channel.HOSPITAL_SYSTEM
    run("time_passes", days=11, sweep=True)
    assert run.deadline_outcomes(adm)["report_window"] == "fired"
    assert run.engine.get_admission(adm).route_rule == "E5"
    run("advance", filing)  # stamped by the medical office (E4)
    assert run.engine.get(filing).hospital_reviewed
    run("advance", filing)  # reported by the hospital: too late (E5)
    assert run.engine.history(filing)[-1]["rule_id"] == "E5"
    run("advance_stay", adm, grant=True)  # requested
    run("advance_stay", adm, grant=True)  # granted
    assert run.engine.get_admission(adm).extension is Extension.GRANTED
    run("time_passes", days=61, sweep=True)
    assert run.deadline_outcomes(adm)["extension_due"] == "retired"
    run("discharge", adm, days=70, fault=False)


def _jiangmen_referral_refused_an_extension(run: Script) -> None:
    """E6: the extension refused, the 60 days pass: the days after go to manual reimbursement;
    then the hospital's own referral for a later stay is stamped, reported and approved."""
    adm = run.admit("440700", referral=True, person=2)
    run("advance_stay", adm, grant=False)  # requested
    run("advance_stay", adm, grant=False)  # refused
    assert run.engine.get_admission(adm).extension is Extension.REFUSED
    run("time_passes", days=61, sweep=True)
    assert run.deadline_outcomes(adm)["extension_due"] == "fired"
    assert run.engine.history(adm)[-1]["event"] == "extension_missing"
    run("discharge", adm, days=70, fault=True)
    referral = run("create", "440700", "K4", person=1, complete=True, commitment=False,
                   by_hospital=True)  # fmt: skip
    for _ in range(3):  # stamp, report, approve
        run("advance", referral)
    assert run.engine.get(referral).state is FilingState.EFFECTIVE


def _xiamen_emergency(run: Script) -> None:
    """E1, E2, L1: one deemed filing settles with its stay; another is superseded by a counter
    filing that takes effect at once; a pharmacy-free, unfiled stay bears 10% first (P3)."""
    settled = run.admit("350200", emergency=True)
    run("discharge", settled, days=3, fault=False)
    deemed = run.engine.get_admission(settled).deemed_filing_id
    assert deemed is not None and run.engine.get(deemed).state is FilingState.EXPIRED
    filed = run.admit("350200", emergency=True, person=2, where=1)
    run("the_deemed_filing", filed)
    filing = run("retro", filed, kind="K6", by_hospital=False, progress=1)
    assert run.engine.get(filing).state is FilingState.EFFECTIVE
    deemed = run.engine.get_admission(filed).deemed_filing_id
    assert deemed is not None and run.engine.get(deemed).state is FilingState.CANCELLED
    unfiled = run.admit("350200", person=2, where=0)
    run("discharge", unfiled, days=0, fault=False)
    claim = run.engine.get_admission(unfiled).claim_id
    assert claim is not None and run.engine.get_claim(claim).self_share_first_percent == 10
    run("time_passes", days=190, sweep=True)  # the counter filing's validity ends too (V3)
    # One sweep 190 days on: both reminders are late (retired, recorded), the expiry fires.
    assert run.deadline_outcomes(filing) == {"expire": "fired", "expiry_reminder": "retired"}
    assert run.engine.reminders(filing) == []
    assert run.engine.get(filing).state is FilingState.EXPIRED


SCRIPTS = [
    _jiangmen_emergency_without_a_filing,
    _jiangmen_emergency_filed_in_time,
    _jiangmen_emergency_filed_too_late,
    _jiangmen_transfer_first_referral,
    _jiangmen_referral_refused_an_extension,
    _xiamen_emergency,
]


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.__name__.strip("_") for s in SCRIPTS])
def test_a_scripted_walk_keeps_every_invariant(script: Any) -> None:
    run = Script()
    try:
        script(run)
    finally:
        run.close()


# -- what the walk found ---------------------------------------------------------------------------
# Each was a claim opened beside a direct settlement, or a route cleared that was still due,
# fixed while this walk was written: regressions now.


def _hospital_engine(folder: str, clock: Clock) -> FilingEngine:
    return FilingEngine.open(
        database_url=f"sqlite:///{folder}/found.db", settings=SETTINGS, clock=clock
    )


def test_a_late_retro_filing_leaves_a_directly_settled_admission_settled(tmp_path: Any) -> None:
    """E1, E2, P5: a Xiamen emergency in Guangzhou is deemed filed and settles directly at
    discharge; a retro filing made afterwards is rightly refused (E2), but the admission was
    already settled directly: it must not be sent to manual reimbursement nor get a claim."""
    clock = Clock(datetime(2026, 3, 2, 2, tzinfo=UTC))
    with _hospital_engine(str(tmp_path), clock) as engine:
        number = id_number(1, region="350203", born="20000101")
        adm = engine.admit(
            id_number=number, insurance_type="employee", insured_region="350200",
            treatment_region="440100", hospital_code="H1", admitted_on=date(2026, 3, 2),
            actor=HOSPITAL, emergency=True,
        )  # fmt: skip
        clock.advance(days=3)
        settled, cov = engine.discharge(adm.id, date(2026, 3, 5), HOSPITAL)
        assert settled.settlement is Settlement.DIRECT and cov.basis == "deemed"
        late = engine.create(
            id_number=number, kind="K5", insurance_type="employee", insured_region="350200",
            treatment_region="440100", actor=PERSON, documents=FULL_DOCUMENTS["K5"],
            consent_given=True, card_settlement_enabled=True, admission_id=adm.id,
        )  # fmt: skip
        with pytest.raises(TransitionRefused) as refused:
            engine.submit(late.id, PERSON)
        assert refused.value.rule_id == "E2"
        after = engine.get_admission(adm.id)
        assert after.settlement is Settlement.DIRECT
        assert (after.route, after.claim_id) == (None, None)


def test_a_retro_filing_made_in_time_but_approved_after_the_window_settles_directly(
    tmp_path: Any,
) -> None:
    """E2, E3: a Jiangmen emergency in Guangzhou; the retro filing is submitted on day 3, inside
    the 10 days; the agency approves it on day 12. The filing was made in time: the stay settles
    directly and nothing is sent to manual reimbursement."""
    clock = Clock(datetime(2026, 3, 2, 2, tzinfo=UTC))
    with _hospital_engine(str(tmp_path), clock) as engine:
        number = id_number(1, region="440703", born="20000101")
        adm = engine.admit(
            id_number=number, insurance_type="employee", insured_region="440700",
            treatment_region="440100", hospital_code="H1", admitted_on=date(2026, 3, 2),
            actor=HOSPITAL, emergency=True,
        )  # fmt: skip
        assert adm.deemed_filing_id is not None
        clock.advance(days=3)
        retro = engine.create(
            id_number=number, kind="K5", insurance_type="employee", insured_region="440700",
            treatment_region="440100", actor=PERSON, documents=FULL_DOCUMENTS["K5"],
            consent_given=True, admission_id=adm.id,
        )  # fmt: skip
        assert engine.submit(retro.id, PERSON).state is FilingState.SUBMITTED  # in time
        clock.advance(days=9)  # day 12: the window ran to the end of day 10 (12 March)
        for row in engine.deadlines(adm.deemed_filing_id):
            engine.fire_deadline(adm.deemed_filing_id, row.kind, row.due_at)
        assert engine.approve(retro.id, OFFICER).state is FilingState.EFFECTIVE
        settled, cov = engine.discharge(adm.id, date(2026, 3, 14), HOSPITAL)
        assert (cov.basis, cov.filing_id, cov.direct_settlement) == ("filing", retro.id, True)
        assert settled.settlement is Settlement.DIRECT
        assert (settled.route, settled.route_rule, settled.claim_id) == (None, None, None)


def test_a_late_second_filing_leaves_a_stay_filed_in_time_settling_directly(
    tmp_path: Any,
) -> None:
    """E2, E3, P1: a Jiangmen emergency in Guangzhou, filed (and approved) on its first day;
    a second filing for the same stay on day 11 is rightly refused as late (E3), but the window
    was met by the first: the stay is not sent to manual reimbursement and settles directly
    without a claim."""
    clock = Clock(datetime(2026, 3, 2, 2, tzinfo=UTC))
    with _hospital_engine(str(tmp_path), clock) as engine:
        number = id_number(1, region="440703", born="20000101")
        adm = engine.admit(
            id_number=number, insurance_type="employee", insured_region="440700",
            treatment_region="440100", hospital_code="H1", admitted_on=date(2026, 3, 2),
            actor=HOSPITAL, emergency=True,
        )  # fmt: skip

        def retro() -> Filing:
            return engine.create(
                id_number=number, kind="K5", insurance_type="employee",
                insured_region="440700", treatment_region="440100", actor=PERSON,
                documents=FULL_DOCUMENTS["K5"], consent_given=True, admission_id=adm.id,
            )  # fmt: skip

        in_time = engine.approve(engine.submit(retro().id, PERSON).id, OFFICER)
        assert in_time.state is FilingState.EFFECTIVE
        clock.advance(days=11)
        with pytest.raises(TransitionRefused) as refused:
            engine.submit(retro().id, PERSON)
        assert refused.value.rule_id == "E3"
        assert engine.get_admission(adm.id).route is None  # the window was met
        settled, cov = engine.discharge(adm.id, date(2026, 3, 13), HOSPITAL)
        assert (cov.basis, cov.filing_id, settled.settlement) == (
            "filing",
            in_time.id,
            Settlement.DIRECT,
        )
        assert (settled.route, settled.claim_id) == (None, None)


def test_a_granted_extension_keeps_a_stay_whose_window_closed_routed(tmp_path: Any) -> None:
    """E3, E6: a Jiangmen emergency referred to Guangzhou. A retro filing is submitted in time
    (day 3) but is still under review past day 60, when the missing extension routes the stay
    (E6); the filing is then rejected, so the E3 window closes (the deemed filing lapses). A
    late grant of the extension covers days past 60, not the lapsed filing: the stay stays
    routed to manual reimbursement."""
    clock = Clock(datetime(2026, 3, 2, 2, tzinfo=UTC))
    with _hospital_engine(str(tmp_path), clock) as engine:
        number = id_number(1, region="440703", born="20000101")
        adm = engine.admit(
            id_number=number, insurance_type="employee", insured_region="440700",
            treatment_region="440100", hospital_code="H1", admitted_on=date(2026, 3, 2),
            actor=HOSPITAL, emergency=True, referral=True,
        )  # fmt: skip
        assert adm.deemed_filing_id is not None
        clock.advance(days=3)
        retro = engine.create(
            id_number=number, kind="K5", insurance_type="employee", insured_region="440700",
            treatment_region="440100", actor=PERSON, documents=FULL_DOCUMENTS["K5"],
            consent_given=True, admission_id=adm.id,
        )  # fmt: skip
        engine.submit(retro.id, PERSON)
        clock.advance(days=59)  # day 62: past the 60 days, the filing still under review
        for subject in (adm.deemed_filing_id, adm.id):
            for row in engine.deadlines(subject):
                if row.fired_at is None and row.due_at <= clock():
                    engine.fire_deadline(subject, row.kind, row.due_at)
        assert engine.get_admission(adm.id).route_rule == "E6"
        engine.reject(retro.id, OFFICER, reason="not_eligible")
        assert engine.get(adm.deemed_filing_id).state is FilingState.LAPSED  # E3 closed
        engine.request_extension(adm.id, HOSPITAL, [Document.CONTINUED_STAY_CERTIFICATE])
        granted = engine.grant_extension(adm.id, OFFICER)
        assert granted.extension is Extension.GRANTED
        assert engine.coverage(adm.id, HOSPITAL).basis == "none"  # nothing covers the stay
        assert granted.route == MANUAL
