"""The hospital-side paths through the engine, on SQLite and PostgreSQL: admissions, the deemed
filing of an emergency (E1) and its window (E3), retro filings (E2, E5), hospital referrals (E4),
extensions (E6), the coverage decision (V5, P1-P7) and manual reimbursement claims (P5, P6).

Each scenario sets the clock on, before and after its boundary and checks the rule named by every
refusal, what the audit trail says and that nothing else was written."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pytest

from states.errors import InvalidInput, TransitionRefused
from states.vocabulary import Channel, Role
from tests.conftest import OFFICER, PERSON, Clock, id_number
from workflow import FilingEngine
from workflow.context import Actor

HOSPITAL = Actor("his-1", Role.HOSPITAL, Channel.HOSPITAL_SYSTEM, organisation="H4401001")
# The same hospital's medical office (医务科), which reviews its clinical departments' referrals.
MEDICAL_OFFICE = Actor("his-med-1", Role.HOSPITAL, Channel.HOSPITAL_SYSTEM, organisation="H4401001")
JIANGMEN = {"insured_region": "440700", "treatment_region": "440100"}  # Guangzhou: out of city
XIAMEN = {"insured_region": "350200", "treatment_region": "440100"}  # out of Fujian
K5_DOCS = ["identity", "declaration_form", "emergency_diagnosis"]
K4_DOCS = ["identity", "declaration_form", "referral_certificate"]


def jiangmen_person(n: int = 1) -> str:
    return id_number(n, region="440703", born="20000101")


def xiamen_person(n: int = 1) -> str:
    return id_number(n, region="350203")


def admit(engine: FilingEngine, person: str, region: dict[str, str], on: date, **kw: Any) -> Any:
    return engine.admit(
        id_number=person, insurance_type="employee", hospital_code="H4401001", admitted_on=on,
        actor=HOSPITAL, **region, **kw,
    )  # fmt: skip


def retro(
    engine: FilingEngine, person: str, admission_id: str, region: dict[str, str], **kw: Any
) -> Any:
    args: dict[str, Any] = {
        "id_number": person, "kind": "K5", "insurance_type": "employee", "actor": PERSON,
        "documents": K5_DOCS, "admission_id": admission_id, **region,
    }  # fmt: skip
    if region["insured_region"].startswith("3502"):
        args["card_settlement_enabled"] = True
    args.update(kw)
    return engine.create(**args)


def events(engine: FilingEngine, subject: str) -> list[tuple[str, str, str | None]]:
    return [(r["event"], r["outcome"], r["rule_id"]) for r in engine.history(subject)]


def refused(call: Any, rule: str) -> TransitionRefused:
    with pytest.raises(TransitionRefused) as info:
        call()
    assert info.value.rule_id == rule, info.value
    return info.value


def deadline(engine: FilingEngine, subject: str, kind: str) -> Any:
    (row,) = [d for d in engine.deadlines(subject) if d.kind == kind]
    return row


# -- E1 / E3: Jiangmen emergency, deemed filed until the 10-day window closes -----------------


def test_a_jiangmen_emergency_is_deemed_filed_with_its_e3_window_as_a_row(
    any_engine: FilingEngine,
) -> None:
    adm = admit(any_engine, jiangmen_person(), JIANGMEN, date(2026, 3, 1), emergency=True)

    deemed = any_engine.get(adm.deemed_filing_id)
    assert (deemed.state.value, deemed.kind.value, deemed.deemed) == ("deemed", "K5", True)
    assert deemed.admission_id == adm.id and deemed.effective_on == date(2026, 3, 1)
    window = deadline(any_engine, deemed.id, "filing_window")
    # C1: day 1 is 2 March; the tenth day, 11 March, ends at 24:00 local (C4).
    assert (window.due_at, window.rule_id, window.provisional) == (
        datetime.fromisoformat("2026-03-11T16:00:00+00:00"), "E3", False,
    )  # fmt: skip
    assert events(any_engine, deemed.id) == [
        ("create", "applied", "E1"), ("deem", "applied", "E1"),
    ]  # fmt: skip
    cov = any_engine.coverage(adm.id, OFFICER)
    assert (cov.basis, cov.direct_settlement, cov.rule_id) == ("deemed", True, "E1")
    assert "E3" in cov.rules


def test_a_jiangmen_retro_filing_on_day_10_is_accepted_and_replaces_the_deemed_filing(
    any_engine: FilingEngine, clock: Clock
) -> None:
    person = jiangmen_person()
    adm = admit(any_engine, person, JIANGMEN, date(2026, 3, 1), emergency=True)
    clock.to_local(date(2026, 3, 11), 23, 59)

    filing = retro(any_engine, person, adm.id, JIANGMEN)
    filing = any_engine.approve(any_engine.submit(filing.id, PERSON).id, OFFICER)

    assert filing.state.value == "effective"
    assert (filing.start_date, filing.effective_on) == (date(2026, 3, 1), date(2026, 3, 1))
    deemed = any_engine.get(adm.deemed_filing_id)
    assert (deemed.state.value, deemed.reason) == ("cancelled", "replaced_by_filing")
    assert deadline(any_engine, deemed.id, "filing_window").outcome == "retired"
    cov = any_engine.coverage(adm.id, OFFICER)
    assert (cov.basis, cov.filing_id, cov.direct_settlement) == ("filing", filing.id, True)


def test_a_jiangmen_retro_filing_on_day_11_is_refused_naming_e3_and_routes_the_admission(
    any_engine: FilingEngine, clock: Clock
) -> None:
    person = jiangmen_person()
    adm = admit(any_engine, person, JIANGMEN, date(2026, 3, 1), emergency=True)
    clock.to_local(date(2026, 3, 12), 0, 0)
    filing = retro(any_engine, person, adm.id, JIANGMEN)

    error = refused(lambda: any_engine.submit(filing.id, PERSON), "E3")

    assert error.inputs["last_day"] == "2026-03-11"
    assert any_engine.get(filing.id).state.value == "draft"
    assert events(any_engine, filing.id)[-1] == ("submit", "denied", "E3")
    routed = any_engine.get_admission(adm.id)
    assert (routed.route, routed.route_rule) == ("manual_reimbursement", "E3")
    assert events(any_engine, adm.id)[-1] == ("route_manual", "applied", "E3")
    # The deemed filing's window is over: it lapsed in the same transaction, before any sweep.
    assert any_engine.get(adm.deemed_filing_id).state.value == "lapsed"
    assert any_engine.coverage(adm.id, OFFICER).basis == "none"


def test_a_decision_after_the_window_never_relies_on_a_stale_deemed_filing(
    any_engine: FilingEngine, clock: Clock
) -> None:
    adm = admit(any_engine, jiangmen_person(), JIANGMEN, date(2026, 3, 1), emergency=True)
    clock.to_local(date(2026, 3, 11), 23, 59)
    assert any_engine.coverage(adm.id, OFFICER).basis == "deemed"

    clock.to_local(date(2026, 3, 12), 0, 1)  # the sweep has not run yet
    cov = any_engine.coverage(adm.id, OFFICER)

    assert (cov.basis, cov.direct_settlement) == ("none", False)
    assert events(any_engine, adm.deemed_filing_id)[-1] == ("close_window", "applied", "E3")
    window = deadline(any_engine, adm.deemed_filing_id, "filing_window")
    assert window.outcome == "fired"
    assert any_engine.fire_deadline(adm.deemed_filing_id, "filing_window", window.due_at) is None


def test_the_e3_window_ending_in_the_national_day_holiday_moves_to_the_next_working_day(
    any_engine: FilingEngine, clock: Clock
) -> None:
    person, other = jiangmen_person(1), jiangmen_person(2)
    # Admitted 24 September 2026: the tenth day, 4 October, is inside the National Day
    # holiday (1-7 October), so the window runs to Thursday 8 October (C3).
    clock.to_local(date(2026, 9, 24))
    on_time = admit(any_engine, person, JIANGMEN, date(2026, 9, 24), emergency=True)
    late = admit(any_engine, other, JIANGMEN, date(2026, 9, 24), emergency=True)
    window = deadline(any_engine, on_time.deemed_filing_id, "filing_window")
    assert window.due_at == datetime.fromisoformat("2026-10-08T16:00:00+00:00")

    clock.to_local(date(2026, 10, 8), 17)
    accepted = any_engine.submit(retro(any_engine, person, on_time.id, JIANGMEN).id, PERSON)
    clock.to_local(date(2026, 10, 9), 9)
    filing = retro(any_engine, other, late.id, JIANGMEN)
    error = refused(lambda: any_engine.submit(filing.id, PERSON), "E3")

    assert accepted.state.value == "submitted"
    assert (error.inputs["computed_last_day"], error.inputs["last_day"]) == (
        "2026-10-04", "2026-10-08",
    )  # fmt: skip
    assert "C3" in error.inputs["period_rules"]


def test_when_the_window_passes_the_deemed_filing_lapses_once_and_the_admission_goes_manual(
    any_engine: FilingEngine, clock: Clock
) -> None:
    adm = admit(any_engine, jiangmen_person(), JIANGMEN, date(2026, 3, 1), emergency=True)
    window = deadline(any_engine, adm.deemed_filing_id, "filing_window")

    clock.to_local(date(2026, 3, 11), 23, 59)
    with pytest.raises(InvalidInput) as early:
        any_engine.fire_deadline(adm.deemed_filing_id, "filing_window", window.due_at)
    assert early.value.field == "due_at"
    assert any_engine.get(adm.deemed_filing_id).state.value == "deemed"

    clock.now = window.due_at
    assert any_engine.fire_deadline(adm.deemed_filing_id, "filing_window", window.due_at) == "fired"
    assert any_engine.fire_deadline(adm.deemed_filing_id, "filing_window", window.due_at) is None

    deemed = any_engine.get(adm.deemed_filing_id)
    assert (deemed.state.value, deemed.reason) == ("lapsed", "window_closed")
    assert events(any_engine, deemed.id)[-1] == ("close_window", "applied", "E3")
    assert any_engine.get_admission(adm.id).route_rule == "E3"
    assert [e for e in events(any_engine, adm.id) if e[0] == "route_manual"] == [
        ("route_manual", "applied", "E3")
    ]
    cov = any_engine.coverage(adm.id, OFFICER)
    assert (cov.basis, cov.direct_settlement) == ("none", False)


def test_a_jiangmen_emergency_discharged_before_filing_lapses_and_opens_a_claim(
    any_engine: FilingEngine, clock: Clock
) -> None:
    adm = admit(any_engine, jiangmen_person(), JIANGMEN, date(2026, 3, 1), emergency=True)
    clock.to_local(date(2026, 3, 5))

    adm, _ = any_engine.discharge(adm.id, date(2026, 3, 5), HOSPITAL)

    assert (adm.settlement.value, adm.route_rule) == ("self_paid", "E3")
    assert any_engine.get(adm.deemed_filing_id).state.value == "lapsed"
    claim = any_engine.get_claim(adm.claim_id)
    # P6: 6 months from discharge on 5 March: 5 September 2026 is a Saturday -> Monday 7th (C3).
    assert (claim.counted_from, claim.last_day, claim.provisional) == (
        date(2026, 3, 5), date(2026, 9, 7), False,
    )  # fmt: skip
    assert ("emergency_diagnosis",) in claim.documents_required
    assert deadline(any_engine, claim.id, "claim_due").due_at == claim.due_at


def test_an_emergency_covered_by_another_stays_filing_is_not_routed_when_its_window_closes(
    any_engine: FilingEngine, clock: Clock
) -> None:
    """Found by the stateful walk: a retro filing made for a planned stay also covers an
    emergency of the same day (V5), so closing the emergency's window routes nothing."""
    person = jiangmen_person()
    planned = admit(any_engine, person, JIANGMEN, date(2026, 3, 2))
    emergency = admit(any_engine, person, JIANGMEN, date(2026, 3, 2), emergency=True)
    filing = retro(any_engine, person, planned.id, JIANGMEN, kind="K4",
                   documents=K4_DOCS)  # fmt: skip
    any_engine.approve(any_engine.submit(filing.id, PERSON).id, OFFICER)

    adm, _ = any_engine.discharge(emergency.id, date(2026, 3, 2), HOSPITAL)

    assert (adm.settlement.value, adm.route, adm.claim_id) == ("direct", None, None)
    assert any_engine.get(emergency.deemed_filing_id).state.value == "lapsed"
    assert [e for e in events(any_engine, emergency.id) if e[0] == "route_manual"] == []


# -- E1 / P3: Xiamen ------------------------------------------------------------------------


def test_a_xiamen_emergency_without_a_filing_settles_directly_as_deemed_filed(
    any_engine: FilingEngine, clock: Clock
) -> None:
    adm = admit(any_engine, xiamen_person(), XIAMEN, date(2026, 3, 1), emergency=True)
    assert any_engine.deadlines(adm.deemed_filing_id) == []  # Xiamen sets no window (E1 only)
    clock.to_local(date(2026, 3, 20))

    adm, cov = any_engine.discharge(adm.id, date(2026, 3, 20), HOSPITAL)

    assert (cov.basis, cov.direct_settlement, cov.rule_id) == ("deemed", True, "E1")
    assert (adm.settlement.value, adm.claim_id, adm.route) == ("direct", None, None)
    deemed = any_engine.get(adm.deemed_filing_id)
    assert deemed.state.value == "expired"
    assert events(any_engine, deemed.id)[-1] == ("settle", "applied", "E1")


def test_a_xiamen_admission_without_a_filing_bears_10_percent_first_and_claims(
    any_engine: FilingEngine, clock: Clock
) -> None:
    adm = admit(any_engine, xiamen_person(), XIAMEN, date(2026, 3, 1))
    assert adm.deemed_filing_id is None
    cov = any_engine.coverage(adm.id, OFFICER)
    assert (cov.basis, cov.direct_settlement, cov.rule_id) == ("none", False, "P3")
    assert cov.manual is not None and cov.manual.self_share_first_percent == 10
    assert cov.manual.deadline is None  # counted from discharge, which has not happened

    clock.to_local(date(2026, 3, 10))
    adm, _ = any_engine.discharge(adm.id, date(2026, 3, 10), HOSPITAL)

    claim = any_engine.get_claim(adm.claim_id)
    assert (claim.route_rule, claim.self_share_first_percent, claim.status) == ("P3", 10, "open")
    assert events(any_engine, claim.id) == [("open_claim", "applied", "P3")]
    decided = [r for r in any_engine.history(adm.id) if r["event"] == "decide_coverage"]
    assert decided and decided[0]["inputs"]["manual"]["self_share_first_percent"] == 10


def test_a_xiamen_pharmacy_purchase_without_a_filing_is_not_reimbursed(
    any_engine: FilingEngine, clock: Clock
) -> None:
    visit = admit(
        any_engine, xiamen_person(), XIAMEN, date(2026, 3, 2), institution="pharmacy",
        care="outpatient",
    )  # fmt: skip

    adm, cov = any_engine.discharge(visit.id, date(2026, 3, 2), HOSPITAL)

    assert (cov.reimbursable, cov.manual, cov.rule_id) == (False, None, "P3")
    assert (adm.settlement.value, adm.claim_id) == ("self_paid", None)


def test_a_xiamen_retro_filing_before_settlement_settles_directly_and_after_is_refused_e2(
    any_engine: FilingEngine, clock: Clock
) -> None:
    early, late = xiamen_person(1), xiamen_person(2)
    a1 = admit(any_engine, early, XIAMEN, date(2026, 3, 1))
    a2 = admit(any_engine, late, XIAMEN, date(2026, 3, 1))
    clock.to_local(date(2026, 3, 6))

    k6 = {"kind": "K6", "documents": ["identity", "declaration_form"]}
    filing = any_engine.submit(retro(any_engine, early, a1.id, XIAMEN, **k6).id, PERSON)
    a1, cov = any_engine.discharge(a1.id, date(2026, 3, 6), HOSPITAL)
    any_engine.discharge(a2.id, date(2026, 3, 6), HOSPITAL)
    too_late = retro(any_engine, late, a2.id, XIAMEN, kind="K6",
                     documents=["identity", "declaration_form"])  # fmt: skip
    refused(lambda: any_engine.submit(too_late.id, PERSON), "E2")

    assert filing.state.value == "effective"  # Xiamen: counter filings take effect at once (L1)
    assert (cov.basis, cov.filing_id, a1.settlement.value) == ("filing", filing.id, "direct")
    routed = any_engine.get_admission(a2.id)
    assert routed.settlement.value == "self_paid" and routed.claim_id is not None


# A filing after discharge is refused by the rule that closed the door: the window's own "before
# discharge" (E3, E5) where the region sets one, else "before discharge settlement" (E2).
AFTER_DISCHARGE = [
    pytest.param(JIANGMEN, {"emergency": True}, "K5", "E3", id="jiangmen-emergency-E3"),
    pytest.param(
        JIANGMEN, {"referral": True, "transfer_first": True}, "K4", "E5", id="jiangmen-transfer-E5"
    ),
    pytest.param(JIANGMEN, {}, "K5", "E2", id="jiangmen-no-window-E2"),
    pytest.param(XIAMEN, {"emergency": True}, "K6", "E2", id="xiamen-E2"),
    pytest.param(
        {"insured_region": "440300", "treatment_region": "310115"}, {"emergency": True}, "K5",
        "E2", id="shenzhen-E2",
    ),
    pytest.param(
        {"insured_region": "310000", "treatment_region": "440100"}, {"emergency": True}, "K5",
        "E2", id="shanghai-E2",
    ),
    pytest.param(
        {"insured_region": "110000", "treatment_region": "440100"}, {"emergency": True}, "K5",
        "E2", id="national-E2",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("region", "stay", "kind", "rule"), AFTER_DISCHARGE)
def test_a_retro_filing_after_discharge_is_refused_by_the_rule_that_closes_at_discharge(
    any_engine: FilingEngine,
    clock: Clock,
    region: dict[str, str],
    stay: dict[str, bool],
    kind: str,
    rule: str,
) -> None:
    person = id_number(7, region="440703", born="19550101")
    adm = admit(any_engine, person, region, date(2026, 3, 2), **stay)
    clock.to_local(date(2026, 3, 5))
    any_engine.discharge(adm.id, date(2026, 3, 5), HOSPITAL)
    clock.to_local(date(2026, 3, 6))
    docs = {"K4": K4_DOCS, "K5": K5_DOCS, "K6": ["identity", "declaration_form"]}[kind]
    filer = HOSPITAL if kind == "K4" else PERSON
    late = retro(any_engine, person, adm.id, region, kind=kind, documents=docs, actor=filer)
    if kind == "K4":
        any_engine.stamp(late.id, MEDICAL_OFFICE)

    error = refused(lambda: any_engine.submit(late.id, filer), rule)

    assert error.inputs["discharged_on"] == "2026-03-05"
    assert error.inputs["admitted_on"] == "2026-03-02"
    assert "discharge" in error.reason
    assert ("settlement" in error.reason) is (rule == "E2")
    assert events(any_engine, late.id)[-1] == ("submit", "denied", rule)
    assert any_engine.get(late.id).state.value == "draft"


def test_a_treat_first_retro_filing_after_discharge_is_refused_by_e2_as_e7_stays_open(
    treat_first_engine: FilingEngine, clock: Clock
) -> None:
    """E7 counts working days after treatment and does not close at discharge: what refuses a
    filing after the stay was settled is E2."""
    engine, person = treat_first_engine, xiamen_person(3)
    adm = admit(engine, person, XIAMEN, date(2026, 3, 2), emergency=True)
    clock.to_local(date(2026, 3, 5))
    engine.discharge(adm.id, date(2026, 3, 5), HOSPITAL)
    clock.to_local(date(2026, 3, 6))  # the third working day of five
    late = retro(
        engine, person, adm.id, XIAMEN, kind="K6", documents=["identity", "declaration_form"]
    )

    error = refused(lambda: engine.submit(late.id, PERSON), "E2")

    assert error.inputs["discharged_on"] == "2026-03-05"


def test_a_retro_filing_must_start_by_the_admission_date(any_engine: FilingEngine) -> None:
    person = xiamen_person()
    adm = admit(any_engine, person, XIAMEN, date(2026, 3, 1))

    with pytest.raises(InvalidInput) as bad:
        retro(any_engine, person, adm.id, XIAMEN, kind="K6", start_date=date(2026, 3, 2),
              documents=["identity", "declaration_form"])  # fmt: skip
    assert (bad.value.field, bad.value.rule_id) == ("start_date", "E2")
    with pytest.raises(InvalidInput) as other:
        retro(any_engine, xiamen_person(2), adm.id, XIAMEN, kind="K6",
              documents=["identity", "declaration_form"])  # fmt: skip
    assert (other.value.field, other.value.rule_id) == ("admission_id", "E2")
    assert any_engine.list_for_person(person) == []


# -- E4 / E5: Jiangmen referrals ------------------------------------------------------------


def test_a_hospital_referral_is_reviewed_by_its_medical_office_before_it_is_reported(
    any_engine: FilingEngine,
) -> None:
    person = jiangmen_person()
    filing = any_engine.create(
        id_number=person, kind="K4", insurance_type="employee", actor=HOSPITAL,
        documents=K4_DOCS, **JIANGMEN,
    )  # fmt: skip
    refused(lambda: any_engine.submit(filing.id, HOSPITAL), "E4")
    refused(lambda: any_engine.stamp(filing.id, PERSON), "E4")
    refused(lambda: any_engine.stamp(filing.id, HOSPITAL), "E4")  # the applicant itself

    stamped = any_engine.stamp(filing.id, MEDICAL_OFFICE)
    refused(lambda: any_engine.stamp(filing.id, MEDICAL_OFFICE), "E4")
    reported = any_engine.submit(stamped.id, HOSPITAL)
    approved = any_engine.approve(reported.id, OFFICER)

    assert stamped.hospital_reviewed and reported.state.value == "submitted"
    assert approved.continues_deductible  # E4: 连续计算起付标准, recorded on the filing
    assert [e[:2] for e in events(any_engine, filing.id)] == [
        ("create", "applied"), ("submit", "denied"), ("stamp", "denied"), ("stamp", "denied"),
        ("stamp", "applied"), ("stamp", "denied"), ("submit", "applied"), ("approve", "applied"),
    ]  # fmt: skip


def _report_referral(engine: FilingEngine, person: str, admission_id: str) -> Any:
    filing = engine.create(
        id_number=person, kind="K4", insurance_type="employee", actor=HOSPITAL, documents=K4_DOCS,
        admission_id=admission_id, **JIANGMEN,
    )  # fmt: skip
    engine.stamp(filing.id, MEDICAL_OFFICE)
    return filing


def test_a_transfer_first_referral_is_reported_within_10_days_e5(
    any_engine: FilingEngine, clock: Clock
) -> None:
    p1, p2 = jiangmen_person(1), jiangmen_person(2)
    a1 = admit(any_engine, p1, JIANGMEN, date(2026, 3, 2), referral=True, transfer_first=True)
    a2 = admit(any_engine, p2, JIANGMEN, date(2026, 3, 2), referral=True, transfer_first=True)
    window = deadline(any_engine, a1.id, "report_window")
    assert (window.due_at, window.rule_id) == (
        datetime.fromisoformat("2026-03-12T16:00:00+00:00"), "E5",
    )  # fmt: skip

    clock.to_local(date(2026, 3, 12), 18)
    f1 = _report_referral(any_engine, p1, a1.id)
    f2 = _report_referral(any_engine, p2, a2.id)
    reported = any_engine.approve(any_engine.submit(f1.id, HOSPITAL).id, OFFICER)
    clock.to_local(date(2026, 3, 13), 8)
    refused(lambda: any_engine.submit(f2.id, HOSPITAL), "E5")

    assert reported.state.value == "effective"
    assert deadline(any_engine, a1.id, "report_window").outcome == "retired"
    assert any_engine.get_admission(a2.id).route_rule == "E5"
    # The sweep reaching a2's window finds it already routed: one route record only.
    assert any_engine.fire_deadline(a2.id, "report_window", window.due_at) == "retired"
    assert [e for e in events(any_engine, a2.id) if e[0] == "route_manual"] == [
        ("route_manual", "applied", "E5")
    ]


def test_an_unreported_transfer_goes_to_manual_reimbursement_when_its_window_passes(
    any_engine: FilingEngine, clock: Clock
) -> None:
    adm = admit(any_engine, jiangmen_person(), JIANGMEN, date(2026, 3, 2), referral=True,
                transfer_first=True)  # fmt: skip
    window = deadline(any_engine, adm.id, "report_window")
    clock.now = window.due_at

    assert any_engine.fire_deadline(adm.id, "report_window", window.due_at) == "fired"
    assert any_engine.get_admission(adm.id).route_rule == "E5"
    assert events(any_engine, adm.id)[-1] == ("route_manual", "applied", "E5")


# -- E6: extension of a referred stay -------------------------------------------------------


def _referred_stay(engine: FilingEngine, person: str, on: date) -> Any:
    filing = engine.create(
        id_number=person, kind="K4", insurance_type="employee", actor=HOSPITAL,
        documents=K4_DOCS, **JIANGMEN,
    )  # fmt: skip
    engine.approve(engine.submit(engine.stamp(filing.id, MEDICAL_OFFICE).id, HOSPITAL).id, OFFICER)
    return admit(engine, person, JIANGMEN, on, referral=True)


def test_a_referred_stay_past_60_days_needs_an_extension(
    any_engine: FilingEngine, clock: Clock
) -> None:
    adm = _referred_stay(any_engine, jiangmen_person(), date(2026, 3, 2))
    due = deadline(any_engine, adm.id, "extension_due")
    remind = deadline(any_engine, adm.id, "extension_reminder")
    # Day 60 is 1 May; the stay passes 60 days from 2 May. Reminder 7 days before (E6).
    assert due.due_at == datetime.fromisoformat("2026-05-01T16:00:00+00:00")
    assert remind.due_at == datetime.fromisoformat("2026-04-24T16:00:00+00:00")

    day_60 = any_engine.coverage(adm.id, OFFICER, day=date(2026, 5, 1))
    day_61 = any_engine.coverage(adm.id, OFFICER, day=date(2026, 5, 2))
    assert (day_60.direct_settlement, day_61.direct_settlement, day_61.rule_id) == (
        True, False, "E6",
    )  # fmt: skip

    clock.to_local(date(2026, 4, 28))
    refused(lambda: any_engine.request_extension(adm.id, HOSPITAL, documents=[]), "E6")
    refused(lambda: any_engine.grant_extension(adm.id, OFFICER), "E6")
    any_engine.request_extension(adm.id, HOSPITAL, documents=["continued_stay_certificate"])
    refused(lambda: any_engine.grant_extension(adm.id, HOSPITAL), "E6")
    granted = any_engine.grant_extension(adm.id, OFFICER)

    assert granted.extension.value == "granted"
    assert any_engine.coverage(adm.id, OFFICER, day=date(2026, 5, 2)).direct_settlement
    clock.now = due.due_at
    assert any_engine.fire_deadline(adm.id, "extension_due", due.due_at) == "retired"


def test_without_an_extension_the_days_past_60_go_to_manual_reimbursement(
    any_engine: FilingEngine, clock: Clock
) -> None:
    adm = _referred_stay(any_engine, jiangmen_person(), date(2026, 3, 2))
    due = deadline(any_engine, adm.id, "extension_due")
    clock.now = due.due_at

    assert any_engine.fire_deadline(adm.id, "extension_due", due.due_at) == "fired"
    assert events(any_engine, adm.id)[-1] == ("extension_missing", "applied", "E6")
    clock.to_local(date(2026, 5, 10))
    adm, cov = any_engine.discharge(adm.id, date(2026, 5, 10), HOSPITAL)

    # The stay began covered and settles directly; the days past 60 are claimed by hand.
    assert (cov.direct_settlement, adm.settlement.value, adm.route_rule) == (True, "direct", "E6")
    claim = any_engine.get_claim(adm.claim_id)
    assert claim.reduction_percent == 20 and ("referral_certificate",) in claim.documents_required


# -- V5 and the claims ----------------------------------------------------------------------


def test_an_admission_inside_validity_is_covered_for_the_whole_stay(
    any_engine: FilingEngine, clock: Clock
) -> None:
    person = xiamen_person()
    filing = any_engine.submit(
        retro(any_engine, person, admit(any_engine, person, XIAMEN, date(2026, 3, 2)).id, XIAMEN,
              kind="K6", documents=["identity", "declaration_form"]).id, PERSON,
    )  # fmt: skip
    assert filing.valid_until == date(2026, 9, 2)
    clock.to_local(date(2026, 9, 2), 12)
    adm = admit(any_engine, person, XIAMEN, date(2026, 9, 2))
    clock.to_local(date(2026, 9, 20))
    any_engine.expire(filing.id, Actor("system", Role.SYSTEM, Channel.SYSTEM))

    adm, cov = any_engine.discharge(adm.id, date(2026, 9, 20), HOSPITAL)

    assert (cov.basis, cov.rule_id, adm.settlement.value) == ("filing", "V5", "direct")


def test_a_claim_is_filed_with_its_documents_before_its_deadline(
    any_engine: FilingEngine, clock: Clock
) -> None:
    adm = admit(any_engine, xiamen_person(), XIAMEN, date(2026, 3, 1), networked=False)
    clock.to_local(date(2026, 3, 3))
    adm, _ = any_engine.discharge(adm.id, date(2026, 3, 3), HOSPITAL)
    claim = any_engine.get_claim(adm.claim_id)
    docs = [group[0].value for group in claim.documents_required]

    refused(lambda: any_engine.file_claim(claim.id, PERSON, documents=docs[:-1]), "P5")
    filed = any_engine.file_claim(claim.id, PERSON, documents=docs)
    refused(lambda: any_engine.file_claim(claim.id, PERSON, documents=docs), "P6")

    assert filed.status == "filed"
    assert {d.outcome for d in any_engine.deadlines(claim.id)} == {"retired"}


def test_an_unfiled_claim_lapses_at_its_deadline(any_engine: FilingEngine, clock: Clock) -> None:
    adm = admit(any_engine, xiamen_person(), XIAMEN, date(2026, 3, 1), networked=False)
    clock.to_local(date(2026, 3, 3))
    adm, _ = any_engine.discharge(adm.id, date(2026, 3, 3), HOSPITAL)
    claim = any_engine.get_claim(adm.claim_id)
    docs = [group[0].value for group in claim.documents_required]

    clock.now = claim.due_at
    refused(lambda: any_engine.file_claim(claim.id, PERSON, documents=docs), "P6")
    assert any_engine.fire_deadline(claim.id, "claim_due", claim.due_at) == "fired"

    assert any_engine.get_claim(claim.id).status == "lapsed"
    assert events(any_engine, claim.id)[-1] == ("lapse_claim", "applied", "P6")


# -- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field", "rule"),
    [
        ({"admitted_on": date(2026, 3, 3)}, "admitted_on", "E2"),
        ({"transfer_first": True}, "transfer_first", "E5"),
        ({"treatment_region": "810000"}, "treatment_region", "K7"),
        ({"hospital_code": "H 1"}, "hospital_code", "P1"),
        ({"institution": "pharmacy"}, "care", "P3"),
        ({"actor": PERSON}, "actor.role", "L7"),
    ],
)
def test_a_bad_admission_names_its_field_and_rule_and_writes_only_its_denied_record(
    engine: FilingEngine, change: dict[str, Any], field: str, rule: str
) -> None:
    args: dict[str, Any] = {
        "id_number": xiamen_person(), "insurance_type": "employee", "hospital_code": "H1",
        "admitted_on": date(2026, 3, 2), "actor": HOSPITAL, **XIAMEN,
    }  # fmt: skip
    args.update(change)
    before = engine.checkpoint()

    with pytest.raises(InvalidInput) as bad:
        engine.admit(**args)

    assert (bad.value.field, bad.value.rule_id) == (field, rule)
    assert engine.checkpoint().count == before.count + 1
    with engine.sql_engine.connect() as conn:
        last = conn.exec_driver_sql(
            "SELECT event, outcome, rule_id FROM audit_record ORDER BY seq DESC LIMIT 1"
        ).one()
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM admission_record").scalar() == 0
    assert tuple(last) == ("admit", "denied", rule)


def test_the_admission_keeps_only_the_masked_id_number(engine: FilingEngine) -> None:
    person = xiamen_person()
    adm = admit(engine, person, XIAMEN, date(2026, 3, 2), emergency=True)

    assert adm.person_masked != person and person[-4:] == adm.person_masked[-4:]
    with engine.sql_engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT * FROM admission_record").all()
        audit = conn.exec_driver_sql("SELECT inputs, reason FROM audit_record").all()
    assert person not in repr(rows) and person not in repr(audit)


# -- E7: treat first, file within working days (a region that sets it) ----------------------


@pytest.fixture
def treat_first_engine(open_engine: Any, db_url: str, settings: Any) -> FilingEngine:
    """Xiamen's policy with a 5-working-day treat-first window (E7), as some cities set."""
    import dataclasses

    xiamen = dataclasses.replace(
        settings.policies["350200"], version="test-e7", treat_first_working_days=5
    )
    policies = {**settings.policies, "350200": xiamen}
    engine: FilingEngine = open_engine(
        db_url, settings=dataclasses.replace(settings, policies=policies)
    )
    return engine


def test_e7_counts_its_window_in_working_days_on_the_state_council_calendar(
    treat_first_engine: FilingEngine, clock: Clock
) -> None:
    engine = treat_first_engine
    on_time, late = xiamen_person(1), xiamen_person(2)
    # Admitted Thursday 24 September 2026: working days after it are 28, 29, 30 September,
    # then (National Day and its rest days skipped) 8 and 9 October: the fifth is 9 October.
    clock.to_local(date(2026, 9, 24))
    a1 = admit(engine, on_time, XIAMEN, date(2026, 9, 24), emergency=True)
    a2 = admit(engine, late, XIAMEN, date(2026, 9, 24), emergency=True)
    window = deadline(engine, a1.deemed_filing_id, "filing_window")
    assert (window.due_at, window.rule_id) == (
        datetime.fromisoformat("2026-10-09T16:00:00+00:00"), "E7",
    )  # fmt: skip

    clock.to_local(date(2026, 10, 9), 23, 30)
    accepted = engine.submit(retro(engine, on_time, a1.id, XIAMEN).id, PERSON)
    clock.to_local(date(2026, 10, 10), 8)  # a 调休 Saturday: a working day, but day six
    error = refused(lambda: engine.submit(retro(engine, late, a2.id, XIAMEN).id, PERSON), "E7")

    assert accepted.state.value == "effective"
    assert error.inputs["last_day"] == "2026-10-09"


def test_shanghai_counts_its_3_month_claim_from_the_receipt_and_others_from_discharge(
    any_engine: FilingEngine, clock: Clock
) -> None:
    shanghai = {"insured_region": "310000", "treatment_region": "440100"}
    sh = admit(any_engine, id_number(1, region="310104"), shanghai, date(2026, 3, 1),
               networked=False)  # fmt: skip
    xm = admit(any_engine, xiamen_person(), XIAMEN, date(2026, 3, 1), networked=False)
    clock.to_local(date(2026, 3, 10))  # discharged on the 5th, settled (receipt) on the 10th

    sh, _ = any_engine.discharge(sh.id, date(2026, 3, 5), HOSPITAL)
    xm, _ = any_engine.discharge(xm.id, date(2026, 3, 5), HOSPITAL)

    sh_claim, xm_claim = any_engine.get_claim(sh.claim_id), any_engine.get_claim(xm.claim_id)
    assert (sh_claim.counted_from, sh_claim.last_day) == (date(2026, 3, 10), date(2026, 6, 10))
    assert (xm_claim.counted_from, xm_claim.last_day) == (date(2026, 3, 5), date(2026, 9, 7))


# -- a filing made in time and still under review meets its window ----------------------------


def test_a_retro_filing_submitted_in_time_keeps_the_deemed_filing_until_its_review(
    any_engine: FilingEngine, clock: Clock
) -> None:
    person = jiangmen_person()
    adm = admit(any_engine, person, JIANGMEN, date(2026, 3, 1), emergency=True)
    clock.to_local(date(2026, 3, 11), 15)
    filing = any_engine.submit(retro(any_engine, person, adm.id, JIANGMEN).id, PERSON)
    window = deadline(any_engine, adm.deemed_filing_id, "filing_window")

    clock.now = window.due_at  # the sweep runs while the filing is under review
    assert any_engine.fire_deadline(adm.deemed_filing_id, "filing_window", window.due_at) == (
        "retired"
    )
    assert any_engine.coverage(adm.id, OFFICER).basis == "deemed"
    clock.to_local(date(2026, 3, 13))
    approved = any_engine.approve(filing.id, OFFICER)

    assert approved.state.value == "effective"
    assert any_engine.get(adm.deemed_filing_id).state.value == "cancelled"
    routed = any_engine.get_admission(adm.id)
    assert (routed.route, routed.claim_id) == (None, None)
    adm, cov = any_engine.discharge(adm.id, date(2026, 3, 13), HOSPITAL)
    assert (cov.basis, adm.settlement.value, adm.claim_id) == ("filing", "direct", None)


def test_a_retro_filing_rejected_after_its_window_lets_the_deemed_filing_lapse(
    any_engine: FilingEngine, clock: Clock
) -> None:
    person = jiangmen_person()
    adm = admit(any_engine, person, JIANGMEN, date(2026, 3, 1), emergency=True)
    clock.to_local(date(2026, 3, 10))
    filing = any_engine.submit(retro(any_engine, person, adm.id, JIANGMEN).id, PERSON)
    clock.to_local(date(2026, 3, 14))

    any_engine.reject(filing.id, OFFICER, reason="missing_documents")

    assert any_engine.get(adm.deemed_filing_id).state.value == "lapsed"
    assert any_engine.get_admission(adm.id).route_rule == "E3"


def test_a_referral_reported_in_time_but_approved_after_the_e5_window_is_not_routed(
    any_engine: FilingEngine, clock: Clock
) -> None:
    person = jiangmen_person()
    adm = admit(any_engine, person, JIANGMEN, date(2026, 3, 2), referral=True, transfer_first=True)
    clock.to_local(date(2026, 3, 11))
    reported = any_engine.submit(_report_referral(any_engine, person, adm.id).id, HOSPITAL)
    window = deadline(any_engine, adm.id, "report_window")

    clock.now = window.due_at
    assert any_engine.fire_deadline(adm.id, "report_window", window.due_at) == "retired"
    clock.to_local(date(2026, 3, 14))
    any_engine.approve(reported.id, OFFICER)

    assert any_engine.get_admission(adm.id).route is None
    assert any_engine.coverage(adm.id, OFFICER).direct_settlement


def test_a_refused_retro_filing_after_direct_settlement_opens_no_claim(
    any_engine: FilingEngine, clock: Clock
) -> None:
    person = xiamen_person()
    adm = admit(any_engine, person, XIAMEN, date(2026, 3, 1), emergency=True)
    clock.to_local(date(2026, 3, 5))
    adm, _ = any_engine.discharge(adm.id, date(2026, 3, 5), HOSPITAL)
    late = retro(any_engine, person, adm.id, XIAMEN, documents=["identity", "declaration_form"])

    refused(lambda: any_engine.submit(late.id, PERSON), "E2")

    after = any_engine.get_admission(adm.id)
    assert (after.settlement.value, after.route, after.claim_id) == ("direct", None, None)


def test_an_extension_requested_before_day_60_and_granted_after_leaves_no_claim(
    any_engine: FilingEngine, clock: Clock
) -> None:
    adm = _referred_stay(any_engine, jiangmen_person(), date(2026, 3, 2))
    clock.to_local(date(2026, 4, 26))  # day 55
    any_engine.request_extension(adm.id, HOSPITAL, documents=["continued_stay_certificate"])
    due = deadline(any_engine, adm.id, "extension_due")
    clock.now = due.due_at
    assert any_engine.fire_deadline(adm.id, "extension_due", due.due_at) == "retired"
    clock.to_local(date(2026, 5, 3))  # day 62
    any_engine.grant_extension(adm.id, OFFICER)
    clock.to_local(date(2026, 5, 20))

    adm, _ = any_engine.discharge(adm.id, date(2026, 5, 20), HOSPITAL)

    assert (adm.settlement.value, adm.route, adm.claim_id) == ("direct", None, None)


def test_an_extension_granted_after_the_sweep_routed_the_stay_clears_the_route(
    any_engine: FilingEngine, clock: Clock
) -> None:
    adm = _referred_stay(any_engine, jiangmen_person(), date(2026, 3, 2))
    due = deadline(any_engine, adm.id, "extension_due")
    clock.now = due.due_at
    any_engine.fire_deadline(adm.id, "extension_due", due.due_at)
    assert any_engine.get_admission(adm.id).route_rule == "E6"
    clock.to_local(date(2026, 5, 4))
    any_engine.request_extension(adm.id, HOSPITAL, documents=["continued_stay_certificate"])

    granted = any_engine.grant_extension(adm.id, OFFICER)

    assert (granted.route, granted.route_rule) == (None, None)
    assert any_engine.history(adm.id)[-1]["inputs"]["manual_route_cleared"] is True


def test_the_decision_and_the_claim_agree_on_the_deadline_counted_from_the_receipt(
    any_engine: FilingEngine, clock: Clock
) -> None:
    shanghai = {"insured_region": "310000", "treatment_region": "440100"}
    adm = admit(any_engine, id_number(1, region="310104"), shanghai, date(2026, 3, 1),
                networked=False)  # fmt: skip
    clock.to_local(date(2026, 3, 9))
    adm, cov = any_engine.discharge(adm.id, date(2026, 3, 2), HOSPITAL)

    assert cov.manual is not None and cov.manual.deadline is not None
    assert cov.manual.deadline.last_day == any_engine.get_claim(adm.claim_id).last_day
    assert cov.manual.deadline.last_day == date(2026, 6, 9)


# -- who may act ------------------------------------------------------------------------------


def test_a_hospital_acts_only_on_its_own_admissions_and_never_files_the_claim(
    any_engine: FilingEngine, clock: Clock
) -> None:
    other = Actor("his-9", Role.HOSPITAL, Channel.HOSPITAL_SYSTEM, organisation="H3301009")
    adm = admit(any_engine, xiamen_person(), XIAMEN, date(2026, 3, 1), networked=False)
    clock.to_local(date(2026, 3, 3))

    refused(lambda: any_engine.discharge(adm.id, date(2026, 3, 3), other), "E2")
    assert any_engine.get_admission(adm.id).status.value == "admitted"
    adm, _ = any_engine.discharge(adm.id, date(2026, 3, 3), HOSPITAL)
    docs = [g[0].value for g in any_engine.get_claim(adm.claim_id).documents_required]
    refused(lambda: any_engine.file_claim(adm.claim_id, HOSPITAL, documents=docs), "P5")

    assert any_engine.get_claim(adm.claim_id).status == "open"
    assert events(any_engine, adm.claim_id)[-1] == ("file_claim", "denied", "P5")


def test_a_counter_referral_does_not_continue_the_deductible(any_engine: FilingEngine) -> None:
    filing = any_engine.create(
        id_number=jiangmen_person(), kind="K4", insurance_type="employee", actor=PERSON,
        documents=K4_DOCS, **JIANGMEN,
    )  # fmt: skip
    approved = any_engine.approve(any_engine.submit(filing.id, PERSON).id, OFFICER)
    assert approved.state.value == "effective" and not approved.continues_deductible


def test_a_long_term_retro_filing_is_accepted_and_one_ending_before_admission_is_not(
    any_engine: FilingEngine, clock: Clock
) -> None:
    person = xiamen_person()
    adm = admit(any_engine, person, XIAMEN, date(2026, 3, 1))
    with pytest.raises(InvalidInput) as stale:
        retro(any_engine, person, adm.id, XIAMEN, kind="K6", start_date=date(2025, 8, 31),
              documents=["identity", "declaration_form"])  # fmt: skip
    assert (stale.value.field, stale.value.rule_id) == ("start_date", "E2")

    filing = retro(any_engine, person, adm.id, XIAMEN, kind="K2",
                   documents=["identity", "declaration_form", "household_register",
                              "residence_permit"])  # fmt: skip
    filing = any_engine.submit(filing.id, PERSON)

    assert (filing.state.value, filing.effective_on) == ("effective", date(2026, 3, 1))
    assert any_engine.coverage(adm.id, OFFICER).filing_id == filing.id


def test_a_filing_cancelled_mid_stay_still_covers_the_stay_it_began_inside(
    any_engine: FilingEngine, clock: Clock
) -> None:
    from tests.conftest import effective

    person = id_number(7, region="110105")
    filing = effective(any_engine, id_number=person, treatment_region="440100")
    beijing = {"insured_region": "110000", "treatment_region": "440100"}
    clock.to_local(date(2026, 3, 5))
    during = admit(any_engine, person, beijing, date(2026, 3, 5))
    clock.to_local(date(2026, 3, 6))
    any_engine.cancel(filing.id, PERSON)
    after = admit(any_engine, person, beijing, date(2026, 3, 6))

    assert (
        any_engine.coverage(during.id, OFFICER).rule_id,
        any_engine.coverage(after.id, OFFICER).basis,
    ) == ("V5", "none")


def test_a_late_second_retro_filing_leaves_a_stay_filed_in_time_alone(
    any_engine: FilingEngine, clock: Clock
) -> None:
    person = jiangmen_person()
    adm = admit(any_engine, person, JIANGMEN, date(2026, 3, 1), emergency=True)
    in_time = any_engine.approve(
        any_engine.submit(retro(any_engine, person, adm.id, JIANGMEN).id, PERSON).id, OFFICER
    )
    clock.to_local(date(2026, 3, 12))
    refused(lambda: any_engine.submit(retro(any_engine, person, adm.id, JIANGMEN).id, PERSON), "E3")

    assert any_engine.get_admission(adm.id).route is None
    adm, cov = any_engine.discharge(adm.id, date(2026, 3, 12), HOSPITAL)
    assert (cov.filing_id, adm.settlement.value, adm.claim_id) == (in_time.id, "direct", None)
