"""Hostile input stops nothing: a deadline row no reader takes is set aside alone while every
other row fires; instants of any year round-trip; dates a caller gives are range-checked against
the clock ([input]); far instants, huge cursors and control characters are 422s (exit 2 on the
command line) naming the field, never a 500 or a traceback, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from jobs.cli import app as cli_app
from jobs.daemon import status
from tests.conftest import ROOT, Clock, effective
from tests.http_world import (
    Http,
    Keys,
    issue_keys,
    roomy,
)
from workflow import FilingEngine
from workflow.config import Settings
from workflow.http import create_app
from workflow.tables import deadline_t


def _raw_deadline(
    engine: FilingEngine, subject: str, kind: str, due_sql: str = ":due", **params: Any
) -> None:
    """A deadline row written by hand, as an old bug or an operator's SQL would leave it."""
    with engine.store.write() as tx:
        tx.run(
            "INSERT INTO deadline_record (subject_id, kind, due_at, provisional, rule_id, "
            f"created_at, attempts) VALUES (:s, :k, {due_sql}, :p, 'E3', :at, 0)",
            {"s": subject, "k": kind, "p": False, "at": engine.clock(), **params},
        )


@pytest.mark.parametrize("year", [1, 999, 1000, 2026, 9999])
def test_an_instant_of_any_year_reads_back_as_written_by_the_engine_and_by_sqlalchemy(
    any_engine: FilingEngine, year: int
) -> None:
    at = datetime(year, 1, 11, 15, 54, 17, 250, tzinfo=UTC)

    _raw_deadline(any_engine, "y", "expire", due=at)

    with any_engine.store.read() as tx:
        assert tx.scalar("SELECT COUNT(*) FROM deadline_record WHERE due_at = :d", {"d": at}) == 1
        assert tx.one("SELECT due_at FROM deadline_record WHERE subject_id = 'y'") == {"due_at": at}
    with any_engine.sql_engine.connect() as conn:
        stored = conn.execute(sa.select(deadline_t.c.due_at)).scalar_one()
    assert stored == at


# -- A. one bad row stops no timer -------------------------------------------------------------


runner = CliRunner()


# A due instant no reader takes, as each database keeps it: on SQLite the text strftime('%Y')
# gave for year 1 (no zero padding), on PostgreSQL a year before year 1.
UNREADABLE = {
    "sqlite": "'1-01-11 15:54:17.000000'",
    "postgresql": "'0044-03-15 12:00:00+00 BC'",
}


def _pending(engine: FilingEngine) -> dict[tuple[str, str], tuple[int, str | None]]:
    """(subject, kind) -> (attempts, last_error) of every row not yet fired."""
    with engine.store.read() as tx:
        rows = tx.all(
            "SELECT subject_id, kind, attempts, last_error FROM deadline_record "
            "WHERE fired_at IS NULL"
        )
    return {(r["subject_id"], r["kind"]): (r["attempts"], r["last_error"]) for r in rows}


@pytest.fixture
def with_bad_rows(any_engine: FilingEngine, clock: Clock) -> str:
    """A filing whose expiry and both reminders are due, beside two bad rows written by hand:
    one whose instant cannot be read, one of a kind nobody knows. Returns the filing's id."""
    filing = effective(any_engine)
    expire_at = next(d.due_at for d in any_engine.deadlines(filing.id) if d.kind == "expire")
    clock.now = expire_at + timedelta(days=1)
    _raw_deadline(
        any_engine, "adm0unreadable", "filing_window", UNREADABLE[any_engine.store.dialect]
    )
    _raw_deadline(any_engine, "adm0unknown", "no_such_kind", due=expire_at)
    return filing.id


def test_a_deadline_row_that_cannot_be_read_or_applied_is_set_aside_and_every_other_fires(
    any_engine: FilingEngine, with_bad_rows: str
) -> None:
    batch = any_engine.fire_due(limit=50)

    outcomes = sorted((a.subject_id, a.kind, a.outcome) for a in batch.applied)
    assert outcomes == sorted([
        (with_bad_rows, "expire", "fired"),
        (with_bad_rows, "expiry_reminder", "retired"),  # late: the expiry is past
        (with_bad_rows, "expiry_reminder", "retired"),
        ("adm0unknown", "no_such_kind", "failed"),
        ("adm0unreadable", "filing_window", "failed"),
    ])  # fmt: skip
    assert any_engine.get(with_bad_rows).state.value == "expired"
    assert _pending(any_engine) == {
        ("adm0unknown", "no_such_kind"): (1, "InvalidInput"),
        ("adm0unreadable", "filing_window"): (1, "unreadable stored value"),
    }
    assert any_engine.fire_due(limit=50).claimed == 0  # set aside: they wait their backoff
    assert any_engine.verify().ok


def test_daemon_status_shows_the_rows_set_aside_with_their_errors(
    any_engine: FilingEngine, with_bad_rows: str, clock: Clock
) -> None:
    before = status(any_engine)  # not yet swept: the unreadable row is shown as stored
    any_engine.fire_due(limit=50)

    shown = status(any_engine)

    assert before["due_backlog"] == 5 and before["set_aside"] == []
    assert (shown["due_backlog"], shown["lag_seconds"], shown["failing_deadlines"]) == (0, 0.0, 2)
    retry_at = (clock.now + timedelta(seconds=30)).isoformat()
    expire_at = (clock.now - timedelta(days=1)).isoformat()
    by_subject = {r["subject_id"]: r for r in shown["set_aside"]}
    assert by_subject["adm0unknown"] == {
        "subject_id": "adm0unknown", "kind": "no_such_kind", "due_at": expire_at,
        "attempts": 1, "error": "InvalidInput", "retry_at": retry_at,
    }  # fmt: skip
    unreadable = by_subject["adm0unreadable"]
    assert (unreadable["kind"], unreadable["error"]) == ("filing_window", "unreadable stored value")
    assert unreadable["due_at"].startswith(("1-01-11 15:54:17", "0044-03-15"))  # as stored


def test_filing_daemon_status_prints_a_bad_row_instead_of_a_traceback(
    any_engine: FilingEngine, with_bad_rows: str, db_url: str
) -> None:
    result = runner.invoke(
        cli_app,
        ["daemon", "status", "--config", str(ROOT / "config.toml"), "--database-url", db_url],
        env={"FILING_PERSON_KEY": "test-person-key"},
    )

    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["lag_seconds"] is None  # the oldest due instant cannot be read
    assert shown["due_backlog"] == 5


def test_a_deadline_row_that_cannot_be_read_leaves_the_recount_of_the_others_running(
    any_engine: FilingEngine, clock: Clock
) -> None:
    _raw_deadline(
        any_engine, "adm0unreadable", "filing_window", UNREADABLE[any_engine.store.dialect]
    )
    with any_engine.store.write() as tx:
        tx.run("UPDATE deadline_record SET provisional = :p", {"p": True})

    assert any_engine.recompute_provisional() == []  # read past it, nothing to recount


@pytest.fixture
def world(
    open_engine: Callable[..., FilingEngine], db_url: str, settings: Settings
) -> Iterator[tuple[FilingEngine, Http, Keys]]:
    engine = open_engine(db_url, settings=roomy(settings))
    keys = issue_keys(engine)
    with TestClient(create_app(engine)) as client:
        yield engine, Http(client), keys


def _written(engine: FilingEngine) -> tuple[int, ...]:
    """Rows a refused request must not add."""
    with engine.store.read() as tx:
        return tuple(
            int(tx.scalar(f"SELECT COUNT(*) FROM {table}"))
            for table in ("filing_record", "admission_record", "deadline_record", "audit_record")
        )


def test_fire_due_and_recompute_answer_200_beside_a_row_that_cannot_be_read(
    world: tuple[FilingEngine, Http, Keys],
) -> None:
    engine, http, k = world
    _raw_deadline(engine, "adm0unreadable", "filing_window", UNREADABLE[engine.store.dialect])

    swept = http.ok("POST", "/deadlines/fire-due", k.admin, json={"limit": 10})
    recounted = http.ok("POST", "/deadlines/recompute", k.admin)

    assert swept["result"]["applied"] == [
        {"subject_id": "adm0unreadable", "kind": "filing_window", "due_at": None,
         "outcome": "failed"},
    ]  # fmt: skip
    assert recounted == {"result": []}
