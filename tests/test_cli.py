"""The command line: the demo tells a real story, and the auditor's verify fails loudly."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from workflow.cli import app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FILING_CONFIG", str(ROOT / "config.toml"))
    monkeypatch.setenv("FILING_PERSON_KEY", "cli-test")
    return tmp_path


def test_the_demo_walks_filings_and_prints_their_histories(env: Path) -> None:
    result = runner.invoke(app, ["demo"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "refused [V2]" in out and "lock ends on 2026-06-02" in out
    assert "refused [L6]" in out and "refused [K8]" in out
    assert "cancel         denied  effective -> (unchanged) rule V2" in out
    assert (
        "retro filing on day 10: applied" in out and "retro filing on day 11: refused [E3]" in out
    )
    assert "route_manual   applied admitted -> admitted     rule E3" in out
    assert "verified: True" in out
    assert (env / "filing-demo.db").exists()


def test_the_demo_gives_the_same_story_every_run(env: Path) -> None:
    def story(output: str) -> str:  # without the random filing ids and the chain's hash
        return re.sub(
            r"head [0-9a-f]+", "head …", re.sub(r"\b(adm)?[0-9a-f]{24}\b", "<id>", output)
        )

    first = runner.invoke(app, ["demo"]).output
    second = runner.invoke(app, ["demo"]).output
    assert story(first) == story(second)
    assert first.count(": refused [") == 4


def test_verify_passes_then_fails_after_tampering(env: Path) -> None:
    url = f"sqlite:///{env / 'audit.db'}"
    assert runner.invoke(app, ["demo", "--database-url", url]).exit_code == 0
    checkpoint = runner.invoke(app, ["checkpoint", "--database-url", url])
    assert checkpoint.exit_code == 0
    (env / "cp.json").write_text(checkpoint.output)
    assert json.loads(checkpoint.output)["count"] == 24
    ok = runner.invoke(app, ["verify", "--against", "cp.json", "--database-url", url])
    assert ok.exit_code == 0 and '"ok": true' in ok.output

    conn = sqlite3.connect(env / "audit.db")
    conn.execute("DROP TRIGGER audit_record_no_update")
    conn.execute("UPDATE audit_record SET rule_id = 'L4' WHERE seq = 3")
    conn.commit()
    conn.close()
    bad = runner.invoke(app, ["verify", "--against", "cp.json", "--database-url", url])
    assert bad.exit_code == 1
    assert "record 3: content does not match its hash" in bad.output
