"""Reasons are codes of config.toml's vocabulary, never text; words go in an optional note,
refused when they hold anything shaped like personal data. A refusal is on the record as a
denied attempt, and nothing a refused reason or note held reaches the filing, the audit trail,
an answer or an export."""

from __future__ import annotations

import copy
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from states.errors import PolicyConfigError
from tests.conftest import OFFICER, PERSON, draft, effective, id_number
from workflow import FilingEngine, InvalidInput
from workflow import export as ex
from workflow.config import settings_from_mapping

ROOT = Path(__file__).resolve().parents[1]
HIDDEN = id_number(26, region="350203", born="19900101")


def submitted(engine: FilingEngine) -> str:
    return engine.submit(draft(engine).id, PERSON).id


def refused_input(
    engine: FilingEngine, action: Any, field: str, rule: str, leaked: str = HIDDEN
) -> InvalidInput:
    """The action is refused naming the field and the rule; the refusal is on the record as
    one denied attempt, which holds nothing of what was refused."""
    before = engine.checkpoint().count
    with pytest.raises(InvalidInput) as caught:
        action()
    assert (caught.value.field, caught.value.rule_id) == (field, rule), str(caught.value)
    with engine.store.read() as tx:
        records = tx.all("SELECT * FROM audit_record WHERE seq > :n", {"n": before})
    assert [(r["outcome"], r["rule_id"]) for r in records] == [("denied", rule)]
    assert leaked not in json.dumps([str(v) for v in records[0].values()])
    return caught.value


@pytest.mark.parametrize("reason", [f"r{HIDDEN}", "lost_paperwork", "moved_home", "Missing!"])
def test_a_rejection_whose_reason_is_no_code_for_it_is_refused_naming_reason_and_l1(
    any_engine: FilingEngine, reason: str
) -> None:
    filing_id = submitted(any_engine)

    error = refused_input(
        any_engine,
        lambda: any_engine.reject(filing_id, OFFICER, reason=reason),
        "reason",
        "L1",
        leaked=reason,
    )

    assert HIDDEN not in str(error) and reason not in str(error)
    assert "missing_documents" in str(error)  # the codes it could have given
    assert any_engine.get(filing_id).state.value == "submitted"


def test_a_cancel_reason_must_be_a_code_for_cancel(any_engine: FilingEngine) -> None:
    filing = effective(any_engine)

    refused_input(
        any_engine,
        lambda: any_engine.cancel(filing.id, PERSON, reason="missing_documents"),
        "reason",
        "L4",
    )

    assert any_engine.cancel(filing.id, PERSON, reason="moved_home").reason == "moved_home"


@pytest.mark.parametrize(
    "note",
    [
        f"r{HIDDEN}",
        f"person {HIDDEN[:6]} {HIDDEN[6:14]} {HIDDEN[14:]}",
        "call back on tel13800138000",
        "refund to 6222 0212 3456 7890",
    ],
)
def test_a_note_holding_personal_data_is_refused_naming_note(
    any_engine: FilingEngine, note: str
) -> None:
    filing_id = submitted(any_engine)

    error = refused_input(
        any_engine,
        lambda: any_engine.reject(filing_id, OFFICER, reason="other", note=note),
        "note",
        "L1",
        leaked=note,
    )

    assert note not in str(error) and HIDDEN not in str(error)
    assert any_engine.get(filing_id).state.value == "submitted"


@pytest.mark.parametrize("note", ["", "   ", "x" * 201, "line one\nline two"])
def test_a_note_that_is_no_short_line_of_text_is_refused(engine: FilingEngine, note: str) -> None:
    filing_id = submitted(engine)

    refused_input(
        engine,
        lambda: engine.reject(filing_id, OFFICER, reason="other", note=note),
        "note",
        "L1",
    )


def test_a_note_without_a_reason_code_is_refused(engine: FilingEngine) -> None:
    filing = effective(engine)

    refused_input(engine, lambda: engine.cancel(filing.id, PERSON, note="moving"), "note", "L4")


def test_a_note_is_kept_on_the_filing_and_in_the_audit_record_of_the_rejection(
    any_engine: FilingEngine, tmp_path: Path
) -> None:
    filing_id = submitted(any_engine)

    rejected = any_engine.reject(
        filing_id, OFFICER, reason="missing_documents", note="表格第3页未签名 (page 3 unsigned)"
    )

    assert (rejected.reason, rejected.note) == (
        "missing_documents",
        "表格第3页未签名 (page 3 unsigned)",
    )
    assert any_engine.get(filing_id).note == rejected.note
    last = any_engine.history(filing_id)[-1]
    assert (last["event"], last["reason"]) == ("reject", "missing_documents")
    assert last["inputs"]["note"] == rejected.note
    database = any_engine.checkpoint()
    with (tmp_path / "out.jsonl").open("wb") as out:
        done = ex.write_export(
            ex.records(any_engine.store, ex.Filters(filing_id=filing_id), database.count),
            out, "jsonl", database, ex.Filters(filing_id=filing_id), any_engine.clock(),
        )  # fmt: skip
    assert done.masked_seqs == ()  # the note needed no masking: it passed the check


def test_stopping_insurance_records_the_engines_own_reason_code(engine: FilingEngine) -> None:
    filing = effective(engine)

    lapsed = engine.stop_insurance(filing.id, OFFICER)

    assert (lapsed.state.value, lapsed.reason, lapsed.note) == ("lapsed", "insurance_stopped", None)


# -- the vocabulary in config.toml ------------------------------------------------------------

RAW = tomllib.loads((ROOT / "config.toml").read_text(encoding="utf-8"))


def _config_refused(change: Any) -> PolicyConfigError:
    raw = copy.deepcopy(RAW)
    change(raw["reasons"])
    with pytest.raises(PolicyConfigError) as caught:
        settings_from_mapping(raw, environ={})
    return caught.value


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (lambda r: r.update(r350203199001010026={"events": ["reject"], "rule": "L1"}),
         "reasons.r350203199001010026"),
        (lambda r: r.update(late={"events": ["approve"], "rule": "L1"}), "reasons.late.events"),
        (lambda r: r.update(late={"events": ["reject"], "rule": "Z9"}), "reasons.late.rule"),
        (lambda r: r.update(late={"events": ["reject"]}), "reasons.late"),
        (lambda r: r.pop("insurance_stopped"), "reasons.insurance_stopped"),
    ],
)  # fmt: skip
def test_a_bad_reason_vocabulary_is_refused_at_start_naming_the_key(change: Any, key: str) -> None:
    assert _config_refused(change).key == key


def test_every_reason_code_of_the_shipped_config_cites_a_rule_and_events() -> None:
    from states.catalogue import RULES

    reasons = settings_from_mapping(RAW, environ={}).reasons
    assert {"missing_documents", "moved_home", "insurance_stopped", "other"} <= set(reasons)
    assert all(r.rule in RULES and r.events for r in reasons.values())
