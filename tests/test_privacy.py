"""Personal data stays at the edge: ID numbers are checked with python-stdnum, stored only as a
keyed hash and a masked form, and never appear whole in a log line, an error or a row."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import OFFICER, PERSON, draft, effective, id_number
from workflow import FilingEngine, FilingError
from workflow.config import Settings
from workflow.identity import mask, person_key
from workflow.logs import configure_logging


def test_a_masked_id_keeps_four_digits_at_each_end() -> None:
    assert mask("35020319900101123X") == "3502**********123X"


def test_the_lookup_hash_depends_on_the_secret_key() -> None:
    number = id_number(1)
    assert person_key(number, b"a") != person_key(number, b"b")
    assert number not in person_key(number, b"a")


def test_a_person_is_found_by_id_number_without_it_being_stored(engine: FilingEngine) -> None:
    number = id_number(4, region="110105")
    filing = draft(engine, id_number=number)
    assert [f.id for f in engine.list_for_person(number)] == [filing.id]
    assert filing.person_masked == mask(number)
    with engine.sql_engine.connect() as conn:
        for table in ("filing_record", "audit_record", "deadline_record", "policy_record"):
            for row in conn.execute(sa.text(f"SELECT * FROM {table}")):
                assert not any(number in str(v) for v in row), table


def test_no_log_line_or_error_carries_an_id_number(engine: FilingEngine) -> None:
    stream = io.StringIO()
    configure_logging("json", "debug", stream=stream)
    number = id_number(5, region="110105")
    messages: list[str] = []
    filing = effective(engine, id_number=number)
    for action in (
        lambda: engine.approve(filing.id, OFFICER),
        lambda: engine.submit(draft(engine, id_number=number, documents=[]).id, PERSON),
        lambda: draft(engine, id_number=number, treatment_region="810000"),
        lambda: draft(engine, id_number=number[:-1] + ("0" if number[-1] != "0" else "1")),
    ):
        with pytest.raises(FilingError) as caught:
            action()
        messages.append(str(caught.value))
    lines = stream.getvalue().splitlines()
    assert any(json.loads(line)["event"] == "filing.transition_applied" for line in lines)
    assert any(json.loads(line)["event"] == "filing.transition_denied" for line in lines)
    for text in [*lines, *messages]:
        assert number not in text and number[:-1] not in text


def test_the_development_key_is_announced_once_per_database_when_it_is_created(
    open_engine: Callable[..., FilingEngine], settings: Settings, tmp_path: Path
) -> None:
    dev = replace(settings, person_key_is_development_default=True)
    stream = io.StringIO()
    configure_logging("json", stream=stream)

    def warnings_on_opening(url: str) -> int:
        start = len(stream.getvalue().splitlines())
        open_engine(url, settings=dev).close()
        lines = stream.getvalue().splitlines()[start:]
        return [json.loads(line)["event"] for line in lines].count("person_key.development_default")

    first = warnings_on_opening(f"sqlite:///{tmp_path / 'a.db'}")
    again = [warnings_on_opening(f"sqlite:///{tmp_path / 'a.db'}") for _ in range(3)]
    other = warnings_on_opening(f"sqlite:///{tmp_path / 'b.db'}")

    assert (first, again, other) == (1, [0, 0, 0], 1)


def test_the_hospital_side_keeps_id_numbers_out_of_rows_logs_and_errors(
    engine: FilingEngine,
) -> None:
    from datetime import date

    from states.vocabulary import Channel, Role
    from workflow.context import Actor

    stream = io.StringIO()
    configure_logging("json", "debug", stream=stream)
    number = id_number(6, region="440703", born="20000101")
    hospital = Actor("his-1", Role.HOSPITAL, Channel.HOSPITAL_SYSTEM, organisation="H1")
    where = {"insurance_type": "employee", "insured_region": "440700", "treatment_region": "440100"}
    adm = engine.admit(id_number=number, hospital_code="H1", admitted_on=date(2026, 3, 2),
                       emergency=True, actor=hospital, **where)  # fmt: skip
    engine.coverage(adm.id, OFFICER)
    engine.discharge(adm.id, date(2026, 3, 2), hospital)
    with pytest.raises(FilingError) as caught:
        engine.discharge(adm.id, date(2026, 3, 2), hospital)

    assert adm.person_masked == mask(number)
    with engine.sql_engine.connect() as conn:
        for table in ("admission_record", "claim_record", "filing_record", "audit_record"):
            rows = conn.execute(sa.text(f"SELECT * FROM {table}")).all()
            assert rows, table
            assert not any(number in str(v) for row in rows for v in row), table
    lines = stream.getvalue().splitlines()
    assert any(json.loads(line)["filing_id"] == adm.id for line in lines if "filing_id" in line)
    for text in [*lines, str(caught.value)]:
        assert number not in text and number[:-1] not in text
