"""`filing keys` shows each key's scope as it was issued (a key for every region says so), and
the development person key is announced once per database, not by every command."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import structlog
from typer.testing import CliRunner, Result

from jobs.cli import app

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def filing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("FILING_CONFIG", str(ROOT / "config.toml"))
    monkeypatch.setenv("FILING_PERSON_KEY", "cli-keys-test")
    url = f"sqlite:///{tmp_path}/keys.db"

    def run(*args: str) -> Result:
        result = CliRunner().invoke(app, [*args, "--database-url", url])
        # The command pointed the logs at its captured stderr, closed now.
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()
        assert result.exit_code == 0, result.output
        return result

    return run


def test_a_key_for_every_region_is_listed_as_all_regions_not_as_none(filing: Any) -> None:
    issued = filing("keys", "issue", "--role", "auditor", "--label", "national audit",
                    "--all-regions")  # fmt: skip
    filing("keys", "issue", "--role", "officer", "--label", "XM", "--organisation", "XM",
           "--region", "350200", "--token-only")  # fmt: skip
    filing("keys", "issue", "--role", "hospital", "--label", "H1", "--organisation", "H4401001",
           "--token-only")  # fmt: skip

    listed = [json.loads(line) for line in filing("keys", "list").stdout.splitlines()]

    assert json.loads(issued.stdout)["regions"] == "all"
    assert [(row["label"], row["regions"]) for row in listed] == [
        ("national audit", "all"),
        ("XM", ["350200"]),
        ("H1", None),  # a hospital's scope is its organisation, not a region
    ]


def test_only_the_first_command_on_a_new_database_warns_of_the_development_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FILING_CONFIG", str(ROOT / "config.toml"))
    monkeypatch.delenv("FILING_PERSON_KEY", raising=False)
    url = f"sqlite:///{tmp_path}/dev.db"

    def stderr_of(*args: str) -> str:
        result = CliRunner().invoke(app, [*args, "--database-url", url])
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()
        assert result.exit_code == 0, result.output
        return result.stderr

    first = stderr_of("db", "upgrade")
    later = [stderr_of("keys", "list"), stderr_of("db", "upgrade")]

    assert "person_key.development_default" in first and "FILING_PERSON_KEY" in first
    assert later == ["", ""]
