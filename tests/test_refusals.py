"""Every refusal is on the record: a field a rule refused when a draft is made, changed or an
admission reported, and a command that lost a race it pinned with `expected_version`; and one
error class an embedding caller catches, whichever step refused."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
import sqlalchemy as sa

from states.vocabulary import Channel, Role
from tests.conftest import FULL_DOCUMENTS, OFFICER, PERSON, Clock, draft, effective, id_number, race
from workflow import ConcurrentUpdate, FilingEngine, InvalidInput, Refused, TransitionRefused
from workflow.context import Actor

HOSPITAL = Actor("his-1", Role.HOSPITAL, Channel.HOSPITAL_SYSTEM, organisation="H4401001")
XIAMEN_PERSON = id_number(7, region="350203", born="19900101")


def denied(engine: FilingEngine, event: str) -> list[dict[str, Any]]:
    """The denied audit records of `event`, oldest first, inputs decoded."""
    with engine.sql_engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT * FROM audit_record WHERE event = :e AND outcome = 'denied' ORDER BY seq"
            ),
            {"e": event},
        ).mappings()
        return [{**r, "inputs": json.loads(r["inputs"])} for r in rows]


def rows(engine: FilingEngine, table: str) -> int:
    with engine.sql_engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one())


def xiamen(**over: Any) -> dict[str, Any]:
    """A Xiamen retiree resettled in Shenzhen (K1), complete and valid unless `over` says."""
    args: dict[str, Any] = {
        "id_number": XIAMEN_PERSON,
        "kind": "K1",
        "insurance_type": "employee",
        "insured_region": "350200",
        "treatment_region": "440300",
        "actor": PERSON,
        "documents": FULL_DOCUMENTS["K1"],
        "consent_given": True,
        "card_settlement_enabled": True,
    }
    return {**args, **over}


def jiangmen_admission(engine: FilingEngine, person: int) -> Any:
    """A Jiangmen person admitted in Guangzhou on 1 March (out of the city: E3 applies)."""
    return engine.admit(
        id_number=id_number(person, region="440703", born="20000101"),
        insurance_type="employee",
        insured_region="440700",
        treatment_region="440100",
        hospital_code="H4401001",
        admitted_on=date(2026, 3, 1),
        actor=HOSPITAL,
    )


# -- create-time refusals ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("over", "rule", "field"),
    [
        ({"treatment_region": "350100"}, "K8", "treatment_region"),  # in-province: no filing
        ({"card_number": "35020000123"}, "M9", "card_number"),  # a 3502 card to replace
        ({"card_settlement_enabled": False}, "M10", "card_settlement_enabled"),
        ({"start_date": date(2026, 3, 1)}, "V1", "start_date"),  # before the day it is made
        ({"kind": "K4", "by_commitment": True, "documents": []}, "V6", "by_commitment"),
        ({"treatment_region": "810000"}, "K7", "treatment_region"),  # Hong Kong
    ],
)
def test_a_draft_a_rule_refuses_is_recorded_as_a_denied_create_naming_rule_actor_and_person(
    any_engine: FilingEngine, over: dict[str, Any], rule: str, field: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        any_engine.create(**xiamen(**over), request_id="req-create-1")

    [record] = denied(any_engine, "create")
    assert refused.value.rule_id == rule and refused.value.field == field
    assert record["rule_id"] == rule and record["filing_id"] is None
    assert record["actor_id"] == PERSON.id and record["channel"] == PERSON.channel.value
    assert record["request_id"] == "req-create-1"
    assert record["policy_region"] == "350200"
    assert record["inputs"]["field"] == field
    assert record["inputs"]["kind"] == over.get("kind", "K1")
    assert record["inputs"]["person_masked"] == "3502**********" + XIAMEN_PERSON[-4:]
    assert len(record["inputs"]["person_key"]) == 64
    assert XIAMEN_PERSON not in json.dumps(record, default=str)
    assert rows(any_engine, "filing_record") == 0


def test_a_refused_id_number_is_recorded_without_any_form_of_the_number(
    engine: FilingEngine,
) -> None:
    bad = XIAMEN_PERSON[:-1] + ("0" if XIAMEN_PERSON[-1] != "0" else "1")  # wrong check digit

    with pytest.raises(InvalidInput) as refused:
        engine.create(**xiamen(id_number=bad))

    [record] = denied(engine, "create")
    assert refused.value.rule_id == record["rule_id"] == "M1"
    assert "person_key" not in record["inputs"] and "person_masked" not in record["inputs"]
    assert bad not in json.dumps(record, default=str) and bad[:14] not in str(refused.value)


def test_a_malformed_request_naming_no_rule_is_refused_but_not_recorded(
    engine: FilingEngine,
) -> None:
    with pytest.raises(InvalidInput) as refused:
        engine.create(**xiamen(kind="K9"))

    assert refused.value.rule_id is None and refused.value.field == "kind"
    assert denied(engine, "create") == []


def test_a_free_text_region_is_never_quoted_in_the_record(engine: FilingEngine) -> None:
    with pytest.raises(InvalidInput):
        engine.create(**xiamen(treatment_region=XIAMEN_PERSON))

    [record] = denied(engine, "create")
    assert record["inputs"]["treatment_region"] == "(malformed)"
    assert XIAMEN_PERSON not in json.dumps(record, default=str)


def test_a_change_whose_replacement_a_rule_refuses_is_a_denied_change_of_the_old_filing(
    any_engine: FilingEngine, clock: Clock
) -> None:
    old = effective(any_engine, **xiamen())
    clock.advance(days=100)  # past Xiamen's three-month lock (V2)

    with pytest.raises(InvalidInput) as refused:
        any_engine.change(old.id, **xiamen(treatment_region="350100"))

    [record] = denied(any_engine, "change")
    assert refused.value.rule_id == record["rule_id"] == "K8"
    assert record["filing_id"] == old.id and record["from_state"] == "effective"
    assert any_engine.get(old.id).state.value == "effective"
    assert rows(any_engine, "filing_record") == 1


def test_an_admission_a_rule_refuses_is_a_denied_admit(engine: FilingEngine, clock: Clock) -> None:
    with pytest.raises(InvalidInput) as refused:
        engine.admit(
            id_number=id_number(3, region="440703", born="20000101"),
            insurance_type="employee",
            insured_region="440700",
            treatment_region="440100",
            hospital_code="H4401001",
            admitted_on=date(2026, 3, 9),  # after today
            actor=HOSPITAL,
        )

    [record] = denied(engine, "admit")
    assert record["rule_id"] == refused.value.rule_id is not None
    assert record["actor_org"] == "H4401001" and record["filing_id"] is None
    assert rows(engine, "admission_record") == 0


def test_a_reason_that_is_not_a_code_is_a_denied_reject_of_that_filing(
    engine: FilingEngine,
) -> None:
    filing = engine.submit(draft(engine).id, PERSON)

    with pytest.raises(InvalidInput) as refused:
        engine.reject(filing.id, OFFICER, reason="free text, not a code")

    [record] = denied(engine, "reject")
    assert record["rule_id"] == refused.value.rule_id is not None
    assert record["filing_id"] == filing.id and record["from_state"] == "submitted"
    assert engine.get(filing.id).state.value == "submitted"


# -- stale versions -----------------------------------------------------------------------------


def test_a_command_at_a_stale_version_is_refused_and_recorded_with_both_versions(
    any_engine: FilingEngine,
) -> None:
    filing = any_engine.submit(draft(any_engine).id, PERSON)  # now at version 2

    with pytest.raises(ConcurrentUpdate) as stale:
        any_engine.approve(filing.id, OFFICER, expected_version=1, request_id="req-stale")

    [record] = denied(any_engine, "approve")
    assert stale.value.expected_version == 1 and stale.value.actual_version == 2
    assert "at version 2, not 1" in str(stale.value)
    assert record["rule_id"] == "R1" and record["request_id"] == "req-stale"
    assert record["inputs"] == {"expected_version": 1, "actual_version": 2}
    assert record["filing_id"] == filing.id and record["from_state"] == "submitted"
    assert any_engine.get(filing.id).state.value == "submitted"


def test_of_two_concurrent_cancels_at_one_version_one_applies_and_the_other_is_on_record(
    any_engine: FilingEngine, clock: Clock
) -> None:
    filing = effective(any_engine)  # Beijing K6: no cancel lock (V4)
    version = filing.version

    def cancel() -> Any:
        return any_engine.cancel(filing.id, PERSON, expected_version=version)

    results = race(cancel, cancel)

    assert sorted(type(r).__name__ for r in results) == ["ConcurrentUpdate", "Filing"]
    history = any_engine.history(filing.id)
    cancels = sorted((h["outcome"], h["rule_id"]) for h in history if h["event"] == "cancel")
    assert cancels == [("applied", "L4"), ("denied", "R1")]
    assert any_engine.get(filing.id).state.value == "cancelled"


def test_an_admission_command_at_a_stale_version_is_recorded(
    engine: FilingEngine, clock: Clock
) -> None:
    adm = jiangmen_admission(engine, 4)

    with pytest.raises(ConcurrentUpdate):
        engine.discharge(adm.id, date(2026, 3, 2), HOSPITAL, expected_version=adm.version + 3)

    [record] = denied(engine, "discharge")
    assert record["rule_id"] == "R1" and record["filing_id"] == adm.id
    assert record["inputs"] == {"expected_version": adm.version + 3, "actual_version": adm.version}


# -- one error class ----------------------------------------------------------------------------


def test_an_embedding_caller_catches_one_class_and_reads_rule_field_and_inputs(
    engine: FilingEngine, clock: Clock
) -> None:
    caught: list[Refused] = []
    filing = effective(engine, **xiamen())
    attempts = [
        lambda: engine.create(**xiamen(treatment_region="350100")),
        lambda: engine.cancel(filing.id, PERSON),  # inside the lock (V2)
        lambda: engine.cancel(filing.id, PERSON, expected_version=filing.version - 1),
    ]
    for attempt in attempts:
        try:
            attempt()
        except Refused as refusal:
            caught.append(refusal)

    assert [type(c) for c in caught] == [InvalidInput, TransitionRefused, ConcurrentUpdate]
    assert [c.rule_id for c in caught] == ["K8", "V2", "R1"]
    assert [c.field for c in caught] == ["treatment_region", None, "expected_version"]
    assert caught[0].inputs["field"] == "treatment_region"
    assert "lock_ends_on" in caught[1].inputs
    assert caught[2].inputs == {
        "expected_version": filing.version - 1,
        "actual_version": filing.version,
    }


def test_a_coverage_day_before_the_admission_is_a_denied_decision(engine: FilingEngine) -> None:
    adm = jiangmen_admission(engine, 5)

    with pytest.raises(InvalidInput) as refused:
        engine.coverage(adm.id, HOSPITAL, day=date(2026, 2, 27))

    [record] = denied(engine, "decide_coverage")
    assert refused.value.rule_id == record["rule_id"] == "V5"
    assert record["filing_id"] == adm.id and record["from_state"] == adm.status.value
