"""A daemon that was off while many deadlines of every kind fell due (jobs/daemon.py catch_up),
on SQLite and PostgreSQL: at start it applies every overdue row exactly once, earliest due
first, across batches and within each, and delivers each reminder once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import date
from typing import Any

import pytest

from jobs.daemon import Daemon, status
from states.periods import local_date
from tests.conftest import Clock, effective, id_number
from tests.test_hospital import (
    HOSPITAL,
    JIANGMEN,
    XIAMEN,
    _referred_stay,
    admit,
    jiangmen_person,
    xiamen_person,
)
from workflow import FilingEngine
from workflow.config import Settings
from workflow.sweep import Applied, Batch

DAYS = 12
KINDS = {
    "expire", "expiry_reminder", "filing_window", "window_reminder", "extension_due",
    "extension_reminder", "claim_due", "claim_reminder", "report_window",
}  # fmt: skip


class Recording:
    def __init__(self) -> None:
        self.ids: Counter[str] = Counter()

    def send(self, payload: Mapping[str, Any]) -> None:
        self.ids[str(payload["id"])] += 1


def _twelve_days_of_work(engine: FilingEngine, clock: Clock) -> None:
    """Each day: three temporary filings; a Jiangmen emergency, deemed filed with its E3 window;
    every other day a transfer-first referral the hospital must report (E5); every third a
    Xiamen stay discharged to a manual claim; every fourth a referred stay that will need an
    extension (E6). Their deadlines interleave across kinds."""
    n = 0
    for day in range(DAYS):
        today = local_date(clock())
        for _ in range(3):
            n += 1
            effective(engine, id_number=id_number(n))
        n += 1
        admit(engine, jiangmen_person(n), JIANGMEN, today, emergency=True)
        if day % 3 == 0:
            n += 1
            stay = admit(engine, xiamen_person(n), XIAMEN, today, networked=False)
            engine.discharge(stay.id, today, HOSPITAL)
        if day % 4 == 0:
            n += 1
            _referred_stay(engine, jiangmen_person(n), today)
        if day % 2 == 0:
            n += 1
            admit(engine, jiangmen_person(n), JIANGMEN, today, referral=True, transfer_first=True)
        clock.advance(days=1)


def _rows(engine: FilingEngine, sql: str, **params: Any) -> list[dict[str, Any]]:
    with engine.store.read() as tx:
        return tx.all(sql, params)


def test_after_downtime_catch_up_applies_every_overdue_deadline_once_in_due_order(
    open_engine: Callable[..., FilingEngine],
    db_url: str,
    settings: Settings,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    small_batches = replace(settings, scheduler=replace(settings.scheduler, batch_size=50))
    engine = open_engine(db_url, settings=small_batches)
    _twelve_days_of_work(engine, clock)
    pending = _rows(engine, "SELECT * FROM deadline_record WHERE fired_at IS NULL")
    assert {r["kind"] for r in pending} == KINDS
    clock.to_local(date(2026, 12, 31))  # the daemon was off the whole time
    assert status(engine)["due_backlog"] == len(pending) > 150
    checkpoint = engine.checkpoint()

    applied: list[Applied] = []
    fire_due = engine.fire_due

    def recording_batches(**kw: Any) -> Batch:
        batch = fire_due(**kw)
        applied.extend(batch.applied)
        return batch

    monkeypatch.setattr(engine, "fire_due", recording_batches)
    notifier = Recording()
    daemon = Daemon(engine, notifier=notifier, daemon_id="late")

    report = daemon.catch_up()

    # Every row settled, each applied once and by itself (none overtaken by a later one).
    assert _rows(engine, "SELECT * FROM deadline_record WHERE fired_at IS NULL") == []
    keys = [(a.subject_id, a.kind, a.due_at) for a in applied]
    assert len(keys) == len(set(keys)) == report.fired + report.retired == len(pending)
    assert report.failed == 0 and report.batches >= 4
    assert {a.kind for a in applied} == KINDS
    # Earliest due first, across batches and within each.
    due = [a.due_at for a in applied]
    assert due == sorted(due)
    # The audit trail agrees: expiries and closed windows in the order they fell due.
    for event, kind in (("expire", "expire"), ("close_window", "filing_window")):
        trail = _rows(engine, "SELECT * FROM audit_record WHERE event = :e ORDER BY seq", e=event)
        records = [r["filing_id"] for r in trail]
        by_due = {a.subject_id: a.due_at for a in applied if a.kind == kind}
        assert len(records) == len(set(records)) == len(by_due) >= DAYS
        assert [by_due[s] for s in records] == sorted(by_due.values())
    # Each fired reminder written once and delivered once.
    reminders = engine.reminders()
    fired = {(a.subject_id, a.kind, a.due_at) for a in applied if a.outcome == "fired"}
    assert {(r.subject_id, r.kind, r.due_at) for r in reminders} == {
        k for k in fired if k[1].endswith("_reminder")
    }
    assert notifier.ids == Counter({r.payload["id"]: 1 for r in reminders})
    assert engine.verify(checkpoint).ok
    # A second catch-up finds nothing left to do.
    assert daemon.catch_up().fired == 0
    assert sum(notifier.ids.values()) == len(reminders)
    assert status(engine)["due_backlog"] == 0
    assert status(engine)["lag_seconds"] == 0.0
