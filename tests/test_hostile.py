"""Hostile input stops nothing: a deadline row no reader takes is set aside alone while every
other row fires; instants of any year round-trip; dates a caller gives are range-checked against
the clock ([input]); far instants, huge cursors and control characters are 422s (exit 2 on the
command line) naming the field, never a 500 or a traceback, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from workflow import FilingEngine
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
