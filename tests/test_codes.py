"""Codes of organisations are checked against config.toml's patterns wherever one is given (an
admission's hospital code, a key's organisation), and identifiers a caller names (actor ids,
organisations, request ids) never carry an ID number into the audit trail."""

from __future__ import annotations

import copy
import json
import logging
import tomllib
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import structlog
from typer.testing import CliRunner

from states.errors import PolicyConfigError
from tests.conftest import ROOT, id_number
from tests.http_world import count, issue
from workflow import Actor, Channel, FilingEngine, InvalidInput, Role
from workflow.config import settings_from_mapping

HIDDEN = id_number(30, region="350203", born="19850101")
HOSPITAL = Actor("his-1", Role.HOSPITAL, Channel.HOSPITAL_SYSTEM, organisation="H4401001")
XIAMEN = {"insured_region": "350200", "treatment_region": "440100"}


def admit(engine: FilingEngine, hospital_code: str, actor: Actor = HOSPITAL, **kw: Any) -> Any:
    return engine.admit(
        id_number=id_number(1), insurance_type="employee", hospital_code=hospital_code,
        admitted_on=date(2026, 3, 2), actor=actor, **XIAMEN, **kw,
    )  # fmt: skip


@pytest.mark.parametrize(
    "code", [HIDDEN, f"H{HIDDEN}", "h4401001", "H-4401001", "4401001", "H", "H123456789012"]
)
def test_a_hospital_code_off_its_pattern_is_refused_naming_it_and_recorded_without_it(
    any_engine: FilingEngine, code: str
) -> None:
    before = any_engine.checkpoint().count

    with pytest.raises(InvalidInput) as bad:
        admit(any_engine, code)

    assert (bad.value.field, bad.value.rule_id) == ("hospital_code", "P1")
    assert HIDDEN not in str(bad.value) and "like H4401001" in str(bad.value)  # the example
    assert count(any_engine, "SELECT COUNT(*) FROM admission_record") == 0
    with any_engine.store.read() as tx:  # on the record, without the code refused
        records = tx.all("SELECT * FROM audit_record WHERE seq > :n", {"n": before})
    assert [(r["event"], r["outcome"], r["rule_id"]) for r in records] == [
        ("admit", "denied", "P1")
    ]
    assert HIDDEN not in json.dumps([str(v) for v in records[0].values()])


@pytest.mark.parametrize("code", ["H4401001", "H44010600123", "P1"])
def test_a_hospital_code_of_a_letter_and_digits_is_taken(engine: FilingEngine, code: str) -> None:
    assert admit(engine, code).hospital_code == code


@pytest.mark.parametrize(
    ("role", "organisation"),
    [
        ("hospital", HIDDEN),
        ("hospital", "H4401001-ward"),
        ("officer", f"r{HIDDEN}"),
        ("officer", "JM 13800138000"),
        ("officer", "x" * 65),
    ],
)
def test_a_key_whose_organisation_is_off_its_pattern_is_refused_naming_it(
    engine: FilingEngine, role: str, organisation: str
) -> None:
    regions = {"regions": ("440700",)} if role == "officer" else {}

    with pytest.raises(InvalidInput) as bad:
        issue(engine, role, "counter", organisation=organisation, **regions)

    assert (bad.value.field, bad.value.rule_id) == ("organisation", "A5")
    assert organisation not in str(bad.value)
    assert count(engine, "SELECT COUNT(*) FROM api_key_record") == 0


def test_a_key_whose_label_holds_a_mobile_number_is_refused(engine: FilingEngine) -> None:
    with pytest.raises(InvalidInput) as bad:
        issue(engine, "administrator", "Wang 138 0013 8000")

    assert (bad.value.field, bad.value.rule_id) == ("label", "A5")
    assert count(engine, "SELECT COUNT(*) FROM api_key_record") == 0


def test_keys_issue_refuses_an_organisation_shaped_like_an_id_number_with_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jobs.cli import app

    monkeypatch.setenv("FILING_CONFIG", str(ROOT / "config.toml"))
    monkeypatch.setenv("FILING_PERSON_KEY", "codes-test")

    result = CliRunner().invoke(
        app,
        ["keys", "issue", "--role", "hospital", "--label", "HIS", "--organisation", HIDDEN,
         "--database-url", f"sqlite:///{tmp_path / 'keys.db'}"],
    )  # fmt: skip
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()

    assert result.exit_code == 2, result.output
    assert "organisation" in result.stderr and "A5" in result.stderr
    assert HIDDEN not in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("actor", "field"),
    [
        (Actor(f"u{HIDDEN}", Role.HOSPITAL, Channel.HOSPITAL_SYSTEM, "H4401001"), "actor.id"),
        (
            Actor("his-1", Role.HOSPITAL, Channel.HOSPITAL_SYSTEM, f"o{HIDDEN}"),
            "actor.organisation",
        ),
        (Actor("tel13800138000", Role.HOSPITAL, Channel.HOSPITAL_SYSTEM, "H4401001"), "actor.id"),
    ],
)
def test_an_actor_naming_itself_with_personal_data_is_refused_and_writes_nothing(
    any_engine: FilingEngine, actor: Actor, field: str
) -> None:
    before = any_engine.checkpoint()

    with pytest.raises(InvalidInput) as bad:
        admit(any_engine, "H4401001", actor)

    assert (bad.value.field, bad.value.rule_id) == (field, None)  # malformed: not recorded
    assert any_engine.checkpoint() == before


def test_a_hebei_hospitals_code_is_no_mobile_number(engine: FilingEngine) -> None:
    hebei = Actor("his-9", Role.HOSPITAL, Channel.HOSPITAL_SYSTEM, organisation="H13010500001")

    assert admit(engine, "H13010500001", hebei).hospital_org == "H13010500001"


# -- the patterns in config.toml --------------------------------------------------------------

RAW = tomllib.loads((ROOT / "config.toml").read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (lambda c: c.pop("hospital"), "codes.hospital"),
        (lambda c: c["hospital"].update(value="^[A-Z"), "codes.hospital.value"),
        (lambda c: c["hospital"].update(example="4401001"), "codes.hospital.example"),
        (lambda c: c["organisation"].update(rule="Q1"), "codes.organisation.rule"),
        (lambda c: c.update(pharmacy={}), "codes.pharmacy"),
    ],
)
def test_a_bad_codes_table_is_refused_at_start_naming_the_key(change: Any, key: str) -> None:
    raw = copy.deepcopy(RAW)
    change(raw["codes"])

    with pytest.raises(PolicyConfigError) as caught:
        settings_from_mapping(raw, environ={})

    assert caught.value.key == key
