"""A scenario for each rule of the catalogue's §1–§4 this engine enforces, through the Python API,
with dates the day before, on and after each boundary. Each refusal names its rule."""

from __future__ import annotations

import copy
import json
import tomllib
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

import pytest

from states.filing import Filing
from tests.conftest import (
    FULL_DOCUMENTS,
    OFFICER,
    ONLINE,
    PERSON,
    SYSTEM,
    Clock,
    draft,
    effective,
    id_number,
    local,
)
from workflow import Actor, Channel, FilingEngine, InvalidInput, Role, TransitionRefused
from workflow.config import settings_from_mapping

ROOT = Path(__file__).resolve().parents[1]
XIAMEN = {
    "insured_region": "350200",
    "id_number": id_number(2, region="350203"),
    "card_settlement_enabled": True,
}
JIANGMEN = {
    "insured_region": "440700",
    "id_number": id_number(3, region="440703", born="20000101"),
    "treatment_region": "440100",
}


def refused(action: Callable[[], object], rule: str) -> TransitionRefused:
    with pytest.raises(TransitionRefused) as caught:
        action()
    assert caught.value.rule_id == rule, str(caught.value)
    return caught.value


def invalid(action: Callable[[], object], field: str, rule: str | None) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        action()
    assert (caught.value.field, caught.value.rule_id) == (field, rule), str(caught.value)
    return caught.value


# --- §1 kinds and scope -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["K1", "K2", "K3"])
def test_long_term_kinds_are_valid_indefinitely_under_the_national_policy(
    engine: FilingEngine, kind: str
) -> None:
    filing = effective(engine, kind=kind)
    assert filing.category.value == "long_term" and filing.valid_until is None


@pytest.mark.parametrize("kind", ["K4", "K5", "K6"])
def test_temporary_kinds_are_valid_for_six_months(engine: FilingEngine, kind: str) -> None:
    filing = effective(engine, kind=kind)
    assert filing.category.value == "temporary" and filing.valid_until == date(2026, 9, 2)


@pytest.mark.parametrize(
    ("region", "place"), [("810000", "Hong Kong"), ("820000", "Macao"), ("710000", "Taiwan")]
)
def test_hong_kong_macao_and_taiwan_are_never_covered(
    engine: FilingEngine, region: str, place: str
) -> None:
    err = invalid(lambda: draft(engine, treatment_region=region), "treatment_region", "K7")
    assert place in str(err)
    assert engine.list_for_person(id_number(1, region="110105")) == []


def test_treatment_abroad_is_never_covered(engine: FilingEngine) -> None:
    invalid(lambda: draft(engine, treatment_region="JP"), "treatment_region", "K7")


def test_xiamen_care_inside_fujian_needs_no_filing(engine: FilingEngine) -> None:
    err = invalid(
        lambda: draft(engine, **XIAMEN, treatment_region="350100"), "treatment_region", "K8"
    )
    assert "no filing" in str(err)
    assert draft(engine, **XIAMEN, treatment_region="440300").state.value == "draft"


def test_jiangmen_files_no_other_temporary_kind_and_posts_only_employees(
    engine: FilingEngine,
) -> None:
    invalid(lambda: draft(engine, **JIANGMEN), "kind", "K6")  # K6: not one of seed 001's cases
    invalid(
        lambda: draft(engine, **JIANGMEN, kind="K3", insurance_type="resident"),
        "insurance_type",
        "K3",
    )
    assert draft(engine, kind="K3", insurance_type="resident").state.value == "draft"  # national


def test_jiangmen_files_for_care_outside_the_city_only(engine: FilingEngine) -> None:
    emergency = {**JIANGMEN, "kind": "K5"}
    invalid(
        lambda: draft(engine, **{**emergency, "treatment_region": "440703"}),
        "treatment_region",
        "K8",
    )
    assert draft(engine, **emergency).state.value == "draft"  # Guangzhou, same province


def test_a_district_of_an_insured_city_files_under_the_city_policy(engine: FilingEngine) -> None:
    filing = draft(engine, **{**XIAMEN, "insured_region": "350203"})
    assert (filing.policy_region, filing.policy_version) == ("350200", "2026.3")


def test_a_region_code_not_in_gb_t_2260_is_refused(engine: FilingEngine) -> None:
    invalid(lambda: draft(engine, treatment_region="449999"), "treatment_region", "K8")
    invalid(lambda: draft(engine, insured_region="12345"), "insured_region", "K8")


def test_a_bad_id_number_is_refused_without_echoing_it(engine: FilingEngine) -> None:
    err = invalid(lambda: draft(engine, id_number="110105196001010010"), "id_number", "M1")
    assert "110105196001010010" not in str(err)


# --- §2 lifecycle -----------------------------------------------------------------------------


def test_national_filings_are_reviewed_then_approved(engine: FilingEngine) -> None:
    filing = engine.submit(draft(engine).id, PERSON)
    assert filing.state.value == "submitted" and filing.effective_on is None
    filing = engine.approve(filing.id, OFFICER)
    assert filing.state.value == "effective" and filing.effective_on == date(2026, 3, 2)


def test_a_rejection_needs_a_reason_code(engine: FilingEngine) -> None:
    filing = engine.submit(draft(engine).id, PERSON)
    invalid(lambda: engine.reject(filing.id, OFFICER, reason="Missing the form!"), "reason", "L1")
    refused(lambda: engine._fire(filing.id, "reject", OFFICER), "L1")  # no reason at all
    rejected = engine.reject(filing.id, OFFICER, reason="missing_documents")
    assert (rejected.state.value, rejected.reason) == ("rejected", "missing_documents")


def test_only_the_agency_approves(engine: FilingEngine) -> None:
    filing = engine.submit(draft(engine).id, PERSON)
    refused(lambda: engine.approve(filing.id, PERSON), "L1")


@pytest.mark.parametrize("channel", [Channel.MINI_PROGRAM, Channel.COUNTER, Channel.PROVINCIAL_APP])
def test_xiamen_online_and_counter_filings_take_effect_at_once(
    engine: FilingEngine, channel: Channel
) -> None:
    actor = Actor("p", Role.INSURED, channel)
    filing = engine.submit(draft(engine, **XIAMEN, actor=actor).id, actor)
    assert filing.state.value == "effective"


def test_xiamen_phone_filings_are_reviewed(engine: FilingEngine) -> None:
    actor = Actor("p", Role.INSURED, Channel.PHONE)
    assert engine.submit(draft(engine, **XIAMEN, actor=actor).id, actor).state.value == "submitted"


def test_insurance_stopping_makes_an_effective_filing_lapse(engine: FilingEngine) -> None:
    filing = engine.stop_insurance(effective(engine).id, OFFICER)
    assert filing.state.value == "lapsed"
    refused(lambda: engine.cancel(filing.id, PERSON), "L4")


def test_a_draft_can_be_withdrawn_and_is_then_final(engine: FilingEngine) -> None:
    filing = engine.withdraw(draft(engine).id, PERSON)
    assert filing.state.value == "withdrawn"
    err = refused(lambda: engine.submit(filing.id, PERSON), "L1")
    assert "final" in err.reason


def test_a_person_sees_all_filings_and_the_effective_ones(
    engine: FilingEngine, clock: Clock
) -> None:
    person = id_number(1, region="110105")
    first = effective(engine)
    clock.advance(minutes=1)
    second = draft(engine, treatment_region="310000")
    assert [f.id for f in engine.list_for_person(person)] == [first.id, second.id]
    assert [f.id for f in engine.effective_filings(person)] == [first.id]
    clock.to_local(date(2026, 9, 3))  # past validity, not yet expired by the scheduler
    assert engine.effective_filings(person) == []


def test_a_person_cancels_an_effective_filing_but_not_a_draft(engine: FilingEngine) -> None:
    refused(lambda: engine.cancel(draft(engine).id, PERSON), "L4")
    assert (
        engine.cancel(effective(engine, treatment_region="310000").id, PERSON).state.value
        == "cancelled"
    )


def _change_to_shanghai(
    engine: FilingEngine, old_id: str, **overrides: object
) -> tuple[Filing, Filing]:
    args: dict[str, object] = {
        "id_number": id_number(1, region="110105"), "kind": "K6", "insurance_type": "employee",
        "insured_region": "110000", "treatment_region": "310000", "actor": PERSON,
        "documents": FULL_DOCUMENTS["K6"],
    }  # fmt: skip
    args.update(overrides)
    return engine.change(old_id, **args)  # type: ignore[arg-type]


def test_a_reviewed_change_cancels_the_old_filing_when_the_new_one_is_approved(
    engine: FilingEngine,
) -> None:
    old = effective(engine)
    before, new = _change_to_shanghai(engine, old.id)
    assert before.state.value == "effective"  # still covered while the agency reviews
    assert new.state.value == "submitted" and new.supersedes == old.id
    engine.approve(new.id, OFFICER)
    cancelled = engine.get(old.id)
    assert (cancelled.state.value, cancelled.reason) == ("cancelled", "change")
    assert engine.history(old.id)[-1]["event"] == "change"
    assert [h["event"] for h in engine.history(new.id)] == ["create", "submit", "approve"]


def test_a_rejected_replacement_leaves_the_old_filing_effective(engine: FilingEngine) -> None:
    old = effective(engine)
    _, new = _change_to_shanghai(engine, old.id)
    engine.reject(new.id, OFFICER, reason="not_eligible")
    assert engine.get(old.id).state.value == "effective"


def test_an_instant_change_in_the_same_city_replaces_the_old_filing_at_once(
    engine: FilingEngine, clock: Clock
) -> None:
    old = engine.submit(draft(engine, **XIAMEN, kind="K1").id, PERSON)  # Shenzhen, 440300
    same_city = {
        **XIAMEN,
        "kind": "K1",
        "documents": FULL_DOCUMENTS["K1"],
        "treatment_region": "440304",
    }
    refused(lambda: _change_to_shanghai(engine, old.id, **same_city), "V2")  # the 3-month lock
    clock.to_local(date(2026, 6, 3))
    before, new = _change_to_shanghai(engine, old.id, **same_city)
    assert (before.state.value, new.state.value) == ("cancelled", "effective")
    assert new.treatment_region == "440304" and new.supersedes == old.id


def test_a_change_of_another_persons_filing_is_refused(engine: FilingEngine) -> None:
    old = effective(engine)
    invalid(lambda: _change_to_shanghai(engine, old.id, id_number=id_number(2, region="110105")),
            "id_number", "L5")  # fmt: skip
    assert engine.get(old.id).state.value == "effective"


def test_a_change_inside_the_lock_is_refused_and_creates_nothing(engine: FilingEngine) -> None:
    old = effective(engine, kind="K1")
    refused(lambda: engine.change(
        old.id, id_number=id_number(1, region="110105"), kind="K1", insurance_type="employee",
        insured_region="110000", treatment_region="310000", actor=PERSON,
        documents=FULL_DOCUMENTS["K1"],
    ), "V2")  # fmt: skip
    assert len(engine.list_for_person(id_number(1, region="110105"))) == 1
    assert engine.get(old.id).state.value == "effective"
    assert engine.history(old.id)[-1]["outcome"] == "denied"


def test_a_change_whose_replacement_is_refused_leaves_the_old_filing_effective(
    engine: FilingEngine,
) -> None:
    old = effective(engine)
    err = refused(lambda: engine.change(
        old.id, id_number=id_number(1, region="110105"), kind="K4", insurance_type="employee",
        insured_region="110000", treatment_region="310000", actor=PERSON,
        documents=["identity", "declaration_form"],
    ), "M5")  # fmt: skip
    assert "replacement" in err.reason
    assert engine.get(old.id).state.value == "effective"
    assert len(engine.list_for_person(id_number(1, region="110105"))) == 1


def test_one_effective_filing_per_person_insurance_type_and_place(engine: FilingEngine) -> None:
    first = effective(engine)
    second = engine.submit(draft(engine).id, PERSON)
    refused(lambda: engine.approve(second.id, OFFICER), "L6")
    assert effective(engine, insurance_type="resident").state.value == "effective"
    assert effective(engine, treatment_region="310000").state.value == "effective"
    engine.cancel(first.id, PERSON)
    assert engine.approve(second.id, OFFICER).state.value == "effective"


def test_one_effective_filing_is_configurable(
    open_engine: Callable[..., FilingEngine], sqlite_url: str
) -> None:
    raw = copy.deepcopy(tomllib.loads((ROOT / "config.toml").read_text(encoding="utf-8")))
    raw["policy"]["national"]["one_effective_per_scope"] = {"value": False, "rule": "L6"}
    raw["policy"]["national"]["version"] = "test-multi"
    engine = open_engine(
        sqlite_url, settings=settings_from_mapping(raw, environ={"FILING_PERSON_KEY": "k"})
    )
    effective(engine)
    assert effective(engine).state.value == "effective"


def test_channel_and_on_behalf_are_recorded_on_the_filing_and_every_record(
    engine: FilingEngine,
) -> None:
    family = Actor("family-7", Role.INSURED, Channel.NATIONAL_APP, on_behalf=True)
    filing = engine.submit(draft(engine, actor=family).id, family)
    assert filing.channel is Channel.NATIONAL_APP and filing.on_behalf
    records = engine.history(filing.id)
    assert {(r["channel"], r["on_behalf"], r["actor_id"]) for r in records} == {
        ("national_app", True, "family-7")
    }


# --- §3 validity and the cancel lock ---------------------------------------------------------


def test_an_indefinite_filing_never_expires(engine: FilingEngine, clock: Clock) -> None:
    filing = effective(engine, kind="K1")
    clock.to_local(date(2036, 3, 2))
    err = refused(lambda: engine.expire(filing.id, SYSTEM), "V1")
    assert "indefinitely" in err.reason


@pytest.mark.parametrize(
    ("today", "allowed"),
    [(date(2026, 9, 1), False), (date(2026, 9, 2), False), (date(2026, 9, 3), True)],
)
def test_national_long_term_cancel_lock_is_six_months(
    engine: FilingEngine, clock: Clock, today: date, allowed: bool
) -> None:
    filing = effective(engine, kind="K2")
    clock.to_local(today)
    if allowed:
        assert engine.cancel(filing.id, PERSON).state.value == "cancelled"
    else:
        err = refused(lambda: engine.cancel(filing.id, PERSON), "V2")
        assert "2026-09-02" in err.reason and err.inputs["allowed_from"] == "2026-09-03"


@pytest.mark.parametrize(
    ("today", "allowed"),
    [(date(2026, 6, 1), False), (date(2026, 6, 2), False), (date(2026, 6, 3), True)],
)
def test_xiamen_lock_is_three_months_for_long_term_filings(
    engine: FilingEngine, clock: Clock, today: date, allowed: bool
) -> None:
    filing = engine.submit(draft(engine, **XIAMEN, kind="K1").id, PERSON)
    clock.to_local(today)
    if allowed:
        assert engine.cancel(filing.id, PERSON).state.value == "cancelled"
    else:
        refused(lambda: engine.cancel(filing.id, PERSON), "V2")


@pytest.mark.parametrize(
    ("region", "lock_until"), [("110000", date(2027, 2, 28)), ("350200", date(2026, 11, 30))]
)
def test_a_lock_from_a_month_end_ends_on_the_last_day_of_the_shorter_month(
    engine: FilingEngine, clock: Clock, region: str, lock_until: date
) -> None:
    clock.to_local(date(2026, 8, 31))
    overrides = XIAMEN if region == "350200" else {}
    filing = effective(engine, **overrides, kind="K1")
    assert filing.lock_until == lock_until


def test_xiamen_three_month_lock_applies_to_temporary_filings_too(engine: FilingEngine) -> None:
    filing = engine.submit(draft(engine, **XIAMEN).id, PERSON)
    refused(lambda: engine.cancel(filing.id, PERSON), "V2")


def test_a_national_temporary_filing_can_be_cancelled_at_once(engine: FilingEngine) -> None:
    assert engine.cancel(effective(engine).id, PERSON).state.value == "cancelled"


@pytest.mark.parametrize(
    ("moment", "expires"),
    [
        (local(2026, 9, 2, 23, 59), False),
        (local(2026, 9, 3, 0, 0), True),
        (local(2026, 9, 4), True),
    ],
)
def test_a_temporary_filing_expires_after_its_last_valid_day(
    engine: FilingEngine, clock: Clock, moment: datetime, expires: bool
) -> None:
    filing = effective(engine)
    assert filing.valid_until == date(2026, 9, 2)
    clock.set(moment)
    if expires:
        assert engine.expire(filing.id, SYSTEM).state.value == "expired"
    else:
        refused(lambda: engine.expire(filing.id, SYSTEM), "V3")


def test_validity_ending_on_a_holiday_is_not_extended(engine: FilingEngine, clock: Clock) -> None:
    clock.to_local(date(2026, 4, 1))
    assert effective(engine).valid_until == date(2026, 10, 1)  # National Day: C5, no extension


def test_validity_counts_from_a_future_start_date(engine: FilingEngine) -> None:
    filing = effective(engine, start_date=date(2026, 4, 15))
    assert (filing.effective_on, filing.valid_until) == (date(2026, 4, 15), date(2026, 10, 15))


def test_a_start_date_in_the_past_is_refused(engine: FilingEngine) -> None:
    invalid(lambda: draft(engine, start_date=date(2026, 3, 1)), "start_date", "V3")


def test_a_commitment_filing_is_effective_but_waits_for_documents(engine: FilingEngine) -> None:
    filing = effective(
        engine, kind="K1", by_commitment=True,
        documents=["identity", "declaration_form", "personal_commitment"],
    )  # fmt: skip
    assert filing.entitlement_pending
    err = refused(lambda: engine.supply_documents(filing.id, PERSON, ["household_register"]), "V6")
    assert "residence_proof" in err.reason
    filing = engine.supply_documents(filing.id, PERSON, ["household_register", "residence_proof"])
    assert filing.state.value == "effective" and not filing.entitlement_pending
    refused(lambda: engine.supply_documents(filing.id, PERSON, ["residence_proof"]), "V6")


def test_only_long_term_kinds_may_file_by_commitment(engine: FilingEngine) -> None:
    invalid(lambda: draft(engine, kind="K6", by_commitment=True), "by_commitment", "V6")


# --- §4 documents ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "documents", "rule", "named"),
    [
        ("K6", ["declaration_form"], "M1", "identity"),
        ("K1", ["identity", "declaration_form", "residence_proof"], "M2", "household_register"),
        ("K2", ["identity", "declaration_form"], "M3", "residence_permit or residence_proof"),
        (
            "K3",
            ["identity", "declaration_form"],
            "M4",
            "posting_certificate or local_employer_certificate or labour_contract",
        ),
        ("K4", ["identity", "declaration_form"], "M5", "referral_certificate"),
    ],
)
def test_submit_is_refused_naming_each_missing_document(
    engine: FilingEngine, kind: str, documents: list[str], rule: str, named: str
) -> None:
    filing = draft(engine, kind=kind, documents=documents)
    err = refused(lambda: engine.submit(filing.id, PERSON), rule)
    assert named in err.reason
    assert engine.get(filing.id).state.value == "draft"


def test_any_one_of_the_posted_worker_documents_will_do_nationally_but_not_in_jiangmen(
    engine: FilingEngine,
) -> None:
    docs = ["identity", "declaration_form", "labour_contract"]
    assert (
        engine.submit(draft(engine, kind="K3", documents=docs).id, PERSON).state.value
        == "submitted"
    )
    filing = draft(engine, **JIANGMEN, kind="K3", documents=docs)
    refused(lambda: engine.submit(filing.id, PERSON), "M4")


def test_an_emergency_filing_needs_no_more_than_identity_nationally(engine: FilingEngine) -> None:
    filing = draft(engine, kind="K5", documents=["identity", "declaration_form"])
    assert engine.submit(filing.id, PERSON).state.value == "submitted"


def test_students_bring_the_document_their_region_asks_for(engine: FilingEngine) -> None:
    docs = [*FULL_DOCUMENTS["K3"], "student_card"]
    xiamen = draft(engine, **XIAMEN, kind="K3", student=True, documents=docs)
    refused(lambda: engine.submit(xiamen.id, PERSON), "M7")
    jiangmen = draft(engine, **JIANGMEN, kind="K3", student=True, documents=docs)
    assert engine.submit(jiangmen.id, PERSON).state.value == "submitted"


def test_flexible_employment_needs_a_residence_or_business_proof(engine: FilingEngine) -> None:
    docs = ["identity", "declaration_form", "residence_proof"]
    filing = draft(engine, kind="K2", flexible_employment=True, documents=docs)
    refused(lambda: engine.submit(filing.id, PERSON), "M8")


def test_a_xiamen_card_numbered_3502_must_be_replaced_first(engine: FilingEngine) -> None:
    err = invalid(lambda: draft(engine, **XIAMEN, card_number="350200001234"), "card_number", "M9")
    assert "replace" in str(err) and "350200001234" not in str(err)
    assert draft(engine, **XIAMEN, card_number="A35020000123").state.value == "draft"
    assert (
        draft(engine, card_number="350200001234").state.value == "draft"
    )  # national: no such rule


def test_a_xiamen_first_filing_needs_the_card_settlement_function_confirmed(
    engine: FilingEngine,
) -> None:
    unconfirmed = {**XIAMEN, "card_settlement_enabled": None}
    invalid(lambda: draft(engine, **unconfirmed), "card_settlement_enabled", "M10")
    draft(engine, **XIAMEN)
    assert (
        draft(engine, **unconfirmed, treatment_region="310000").state.value == "draft"
    )  # not the first


def test_an_online_filing_needs_the_notice_and_commitment(engine: FilingEngine) -> None:
    online = draft(engine, actor=ONLINE, consent_given=False)
    refused(lambda: engine.submit(online.id, ONLINE), "M11")
    counter = draft(engine, consent_given=False, treatment_region="310000")
    assert engine.submit(counter.id, PERSON).state.value == "submitted"


# --- found in review ---------------------------------------------------------------------------


def test_validity_counts_from_a_late_approval_not_from_the_draft(
    engine: FilingEngine, clock: Clock
) -> None:
    filing = engine.submit(draft(engine).id, PERSON)  # drafted and submitted 2026-03-02
    clock.to_local(date(2026, 10, 3))
    approved = engine.approve(filing.id, OFFICER)
    assert (approved.effective_on, approved.valid_until) == (date(2026, 10, 3), date(2027, 4, 3))
    assert [f.id for f in engine.effective_filings(id_number(1, region="110105"))] == [filing.id]


def test_a_filing_starting_later_is_not_listed_as_effective_yet(
    engine: FilingEngine, clock: Clock
) -> None:
    filing = effective(engine, start_date=date(2026, 4, 15))
    person = id_number(1, region="110105")
    assert engine.effective_filings(person) == []
    clock.to_local(date(2026, 4, 15))
    assert [f.id for f in engine.effective_filings(person)] == [filing.id]


def test_a_free_text_reason_is_refused_so_no_personal_data_reaches_the_trail(
    engine: FilingEngine,
) -> None:
    filing = effective(engine)
    before = engine.checkpoint()
    invalid(
        lambda: engine.cancel(filing.id, PERSON, reason="本人" + id_number(1, region="110105")),
        "reason",
        "L4",
    )
    # On the record as a denied cancel, without the text that held the number.
    assert engine.checkpoint().count == before.count + 1
    last = engine.history(filing.id)[-1]
    assert (last["event"], last["outcome"], last["rule_id"]) == ("cancel", "denied", "L4")
    assert id_number(1, region="110105") not in json.dumps(last, default=str)
    assert engine.get(filing.id).state.value == "effective"
    assert engine.cancel(filing.id, PERSON, reason="moved_home").reason == "moved_home"


def test_a_filing_past_its_validity_is_expired_before_it_can_block_a_new_one(
    engine: FilingEngine, clock: Clock
) -> None:
    old = effective(engine)
    clock.to_local(date(2026, 9, 20))  # valid until 2026-09-02; the scheduler has not run
    new = effective(engine)
    assert engine.get(old.id).state.value == "expired"
    assert engine.history(old.id)[-1]["actor_role"] == "system"
    assert new.state.value == "effective"


def test_one_effective_filing_per_city_not_per_district(engine: FilingEngine) -> None:
    effective(engine, treatment_region="440304")  # Futian, Shenzhen
    second = engine.submit(draft(engine, treatment_region="440305").id, PERSON)  # Nanshan
    refused(lambda: engine.approve(second.id, OFFICER), "L6")


def test_an_instant_second_filing_for_the_same_place_is_refused(engine: FilingEngine) -> None:
    engine.submit(draft(engine, **XIAMEN).id, PERSON)
    second = draft(engine, **XIAMEN)
    refused(lambda: engine.submit(second.id, PERSON), "L6")
    assert engine.get(second.id).state.value == "draft"


def test_insurance_stopping_lapses_every_open_filing_of_the_person(engine: FilingEngine) -> None:
    person = id_number(1, region="110105")
    a, b = effective(engine), engine.submit(draft(engine, treatment_region="310000").id, PERSON)
    c = draft(engine, treatment_region="440100")
    other_insurance = draft(engine, insurance_type="resident")
    lapsed = engine.stop_insurance_for_person(person, "employee", OFFICER)
    assert {f.id for f in lapsed} == {a.id, b.id, c.id}
    assert {engine.get(f).state.value for f in (a.id, b.id, c.id)} == {"lapsed"}
    assert engine.get(other_insurance.id).state.value == "draft"


def test_an_abolished_or_province_level_treatment_code_is_refused(engine: FilingEngine) -> None:
    invalid(
        lambda: draft(engine, treatment_region="110221"), "treatment_region", "K8"
    )  # 昌平县, to 1999
    invalid(lambda: draft(engine, treatment_region="440000"), "treatment_region", "K8")  # Guangdong
    assert draft(engine, treatment_region="310000").state.value == "draft"  # Shanghai is a city


def test_filing_by_commitment_needs_the_signed_commitment(engine: FilingEngine) -> None:
    filing = draft(
        engine, kind="K1", by_commitment=True, documents=["identity", "declaration_form"]
    )
    refused(lambda: engine.submit(filing.id, PERSON), "M2")


def test_a_change_made_for_a_family_member_is_recorded_as_on_behalf(engine: FilingEngine) -> None:
    family = Actor("family-7", Role.INSURED, Channel.COUNTER, on_behalf=True)
    old = effective(engine)
    _, new = _change_to_shanghai(engine, old.id, actor=family)
    assert new.on_behalf and engine.history(new.id)[0]["on_behalf"]


def test_identifiers_too_long_for_the_trail_are_refused_naming_the_field(
    engine: FilingEngine,
) -> None:
    filing = effective(engine)
    invalid(lambda: engine.cancel(filing.id, PERSON, request_id="r" * 65), "request_id", None)
    invalid(
        lambda: engine.cancel(filing.id, Actor("a" * 65, Role.INSURED, Channel.COUNTER)),
        "actor.id",
        None,
    )


def test_supplying_an_unknown_document_is_refused_naming_the_field(engine: FilingEngine) -> None:
    commitment = ["identity", "declaration_form", "personal_commitment"]
    filing = effective(engine, kind="K1", by_commitment=True, documents=commitment)
    invalid(lambda: engine.supply_documents(filing.id, PERSON, ["passport"]), "documents", None)


def test_municipalities_are_one_area_and_cities_are_not(engine: FilingEngine) -> None:
    from states.regions import same_area

    assert same_area("310000", "310104", "city") and same_area("110105", "110108", "city")
    assert not same_area("440700", "440100", "city") and same_area("440700", "440703", "city")
