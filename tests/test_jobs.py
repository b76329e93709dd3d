"""The scheduler's sweeps (workflow.sweep, jobs/): due deadline rows applied in batches, once,
at and not before their instant; reminders written to the outbox once and delivered; rows that
no longer apply recorded; a failing row retried alone; provisional deadlines recounted (C6)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from jobs.daemon import Daemon, run_once, status
from jobs.notify import LogNotifier, backoff
from states.errors import PolicyConfigError
from tests.conftest import PERSON, ROOT, Clock, effective, id_number
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
from workflow.config import CalendarYear, Settings, load_settings, settings_from_mapping
from workflow.service import FilingService

TEST_ENV = {"FILING_PERSON_KEY": "test-person-key"}

# -- a scenario per deadline kind ------------------------------------------------------------


def _expiring(engine: FilingEngine) -> str:
    return effective(engine).id


def _deemed(engine: FilingEngine) -> str:
    adm = admit(engine, jiangmen_person(), JIANGMEN, date(2026, 3, 2), emergency=True)
    assert adm.deemed_filing_id is not None
    return str(adm.deemed_filing_id)


def _transferred_first(engine: FilingEngine) -> str:
    adm = admit(engine, jiangmen_person(), JIANGMEN, date(2026, 3, 2), referral=True,
                transfer_first=True)  # fmt: skip
    return str(adm.id)


def _referred(engine: FilingEngine) -> str:
    return str(_referred_stay(engine, jiangmen_person(), date(2026, 3, 2)).id)


def _claim(engine: FilingEngine) -> str:
    adm = admit(engine, xiamen_person(), XIAMEN, date(2026, 3, 2), networked=False)
    adm, _ = engine.discharge(adm.id, date(2026, 3, 2), HOSPITAL)
    assert adm.claim_id is not None
    return str(adm.claim_id)


KINDS: dict[str, Callable[[FilingEngine], str]] = {
    "expire": _expiring,
    "expiry_reminder": _expiring,
    "filing_window": _deemed,
    "window_reminder": _deemed,
    "report_window": _transferred_first,
    "extension_reminder": _referred,
    "extension_due": _referred,
    "claim_reminder": _claim,
    "claim_due": _claim,
}
REMINDERS = {"expiry_reminder", "window_reminder", "extension_reminder", "claim_reminder"}


def _row(engine: FilingEngine, subject: str, kind: str) -> Any:
    return next(d for d in engine.deadlines(subject) if d.kind == kind)


def _sweep(engine: FilingEngine) -> list[Any]:
    """What the daemon's sweep does: batches until nothing is due."""
    applied: list[Any] = []
    while True:
        batch = engine.fire_due(limit=7)
        applied += batch.applied
        if batch.claimed < 7:
            return applied


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_kind_of_deadline_fires_at_and_not_before_its_due_instant(
    any_engine: FilingEngine, clock: Clock, kind: str
) -> None:
    subject = KINDS[kind](any_engine)
    due_at = _row(any_engine, subject, kind).due_at

    clock.now = due_at - timedelta(microseconds=1)
    _sweep(any_engine)
    assert _row(any_engine, subject, kind).fired_at is None

    clock.now = due_at
    applied = [a for a in _sweep(any_engine) if (a.subject_id, a.kind) == (subject, kind)]

    assert [(a.due_at, a.outcome) for a in applied] == [(due_at, "fired")]
    row = _row(any_engine, subject, kind)
    assert (row.fired_at, row.outcome) == (due_at, "fired")
    reminders = [r for r in any_engine.reminders(subject) if r.kind == kind]
    assert len(reminders) == (1 if kind in REMINDERS else 0)
    assert _sweep(any_engine) == []  # a rerun is a no-op


def test_an_expiry_sweep_expires_the_filing_with_an_audited_transition(
    any_engine: FilingEngine, clock: Clock
) -> None:
    filing = effective(any_engine)
    clock.now = _row(any_engine, filing.id, "expire").due_at

    _sweep(any_engine)

    expired = any_engine.get(filing.id)
    assert (expired.state.value, expired.version) == ("expired", filing.version + 1)
    last = any_engine.history(filing.id)[-1]
    assert (last["event"], last["outcome"], last["from_state"], last["to_state"]) == (
        "expire", "applied", "effective", "expired",
    )  # fmt: skip
    assert any_engine.verify().ok


def test_the_set_wise_expiry_records_what_a_single_expiry_records(
    any_engine: FilingEngine, clock: Clock
) -> None:
    """The sweep's fast path for plain expiries and `fire_deadline` (the path every other row
    takes) must leave the same filing, deadlines and audit content."""
    swept = effective(any_engine, id_number=id_number(1))
    single = effective(any_engine, id_number=id_number(2), treatment_region="310000")
    due_at = _row(any_engine, swept.id, "expire").due_at
    assert _row(any_engine, single.id, "expire").due_at == due_at
    clock.now = due_at
    assert any_engine.fire_deadline(single.id, "expire", due_at) == "fired"

    _sweep(any_engine)

    def content(filing_id: str) -> tuple[Any, ...]:
        f = any_engine.get(filing_id)
        record = dict(any_engine.history(filing_id)[-1])
        for key in ("seq", "filing_id", "hash", "prev_hash", "request_id", "correlation_id"):
            record.pop(key)
        expire = _row(any_engine, filing_id, "expire")
        return f.state, f.version, f.updated_at, record, expire.fired_at, expire.outcome

    assert content(swept.id) == content(single.id)


def test_reminders_are_written_once_with_no_personal_data(
    any_engine: FilingEngine, clock: Clock
) -> None:
    number = id_number(7)
    filing = effective(any_engine, id_number=number)
    first = _row(any_engine, filing.id, "expiry_reminder")
    clock.now = first.due_at + timedelta(hours=1)

    _sweep(any_engine)
    _sweep(any_engine)

    (reminder,) = any_engine.reminders(filing.id)
    assert (reminder.kind, reminder.due_at, reminder.rule_id) == (
        "expiry_reminder", first.due_at, "V3",
    )  # fmt: skip
    assert reminder.payload["id"] == f"{filing.id}:expiry_reminder:{first.due_at.isoformat()}"
    assert reminder.payload["subject_state"] == "effective"
    text = json.dumps(reminder.payload)
    # Neither the number, nor its masked form, nor the keyed lookup hash (ids are random hex,
    # so four digits of the number may well occur in one by chance).
    assert number not in text and filing.person_masked not in text
    assert filing.person_key not in text and "person" not in text


def test_a_reminder_whose_subject_moved_on_is_retired_and_recorded_as_refused(
    any_engine: FilingEngine, clock: Clock
) -> None:
    adm = _referred_stay(any_engine, jiangmen_person(), date(2026, 3, 2))
    remind = _row(any_engine, adm.id, "extension_reminder")
    clock.now = remind.due_at - timedelta(days=1)
    any_engine.request_extension(adm.id, HOSPITAL, documents=["continued_stay_certificate"])
    clock.now = remind.due_at

    _sweep(any_engine)

    row = _row(any_engine, adm.id, "extension_reminder")
    assert (row.fired_at, row.outcome) == (remind.due_at, "retired")
    assert any_engine.reminders(adm.id) == []
    last = any_engine.history(adm.id)[-1]
    assert (last["event"], last["outcome"], last["rule_id"]) == ("retire_deadline", "denied", "E6")
    assert last["inputs"]["kind"] == "extension_reminder"
    assert any_engine.get_admission(adm.id).version == adm.version + 1  # only the request


def test_a_cancelled_filing_leaves_nothing_for_the_sweep(
    any_engine: FilingEngine, clock: Clock
) -> None:
    filing = any_engine.cancel(effective(any_engine).id, PERSON)
    clock.now = _row(any_engine, filing.id, "expire").due_at + timedelta(days=1)

    assert _sweep(any_engine) == []
    assert any_engine.get(filing.id).state.value == "cancelled"
    assert {d.outcome for d in any_engine.deadlines(filing.id)} == {"retired"}


def test_a_row_that_fails_waits_alone_and_is_retried_after_its_backoff(
    any_engine: FilingEngine, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    claim_subject = _claim(any_engine)
    filing = effective(any_engine, id_number=id_number(3))
    clock.now = _row(any_engine, claim_subject, "claim_reminder").due_at  # 2026-08-03
    assert _row(any_engine, filing.id, "expiry_reminder").due_at < clock.now
    original = FilingService._reminder_target
    checkpoint = any_engine.checkpoint()

    def broken(self: FilingService, tx: Any, subject: str, kind: str) -> Any:
        if kind == "claim_reminder":
            original(self, tx, subject, kind)
            raise RuntimeError("a bug")
        return original(self, tx, subject, kind)

    monkeypatch.setattr(FilingService, "_reminder_target", broken)
    applied = _sweep(any_engine)

    assert [(a.kind, a.outcome) for a in applied] == [
        ("expiry_reminder", "fired"), ("claim_reminder", "failed"),
    ]  # fmt: skip
    assert len(any_engine.reminders(filing.id)) == 1  # the batch went on
    with any_engine.store.read() as tx:
        row = tx.one(
            "SELECT * FROM deadline_record WHERE subject_id = :s AND kind = 'claim_reminder'",
            {"s": claim_subject},
        )
    assert row is not None
    assert (row["fired_at"], row["attempts"], row["last_error"]) == (None, 1, "RuntimeError")
    assert row["retry_at"] == clock.now + timedelta(seconds=30)
    assert any_engine.reminders(claim_subject) == []  # nothing of the failed row remains
    assert any_engine.verify(checkpoint).ok
    assert status(any_engine)["failing_deadlines"] == 1

    monkeypatch.undo()
    assert _sweep(any_engine) == []  # not before its retry
    clock.now = row["retry_at"]
    assert [(a.kind, a.outcome) for a in _sweep(any_engine)] == [("claim_reminder", "fired")]
    assert len(any_engine.reminders(claim_subject)) == 1


def test_a_batch_takes_at_most_its_limit_earliest_first(
    any_engine: FilingEngine, clock: Clock
) -> None:
    filings = [effective(any_engine, id_number=id_number(n)) for n in range(1, 6)]
    clock.now = _row(any_engine, filings[0].id, "expire").due_at

    first = any_engine.fire_due(limit=4)

    assert first.claimed == 4
    assert [a.kind for a in first.applied] == ["expiry_reminder"] * 4  # 30 days before, first
    assert [a.due_at for a in first.applied] == sorted(a.due_at for a in first.applied)
    with pytest.raises(ValueError, match="limit"):
        any_engine.fire_due(limit=0)


# -- delivery ------------------------------------------------------------------------------------


def _due_reminders(engine: FilingEngine, clock: Clock, count: int = 3) -> list[str]:
    filings = [effective(engine, id_number=id_number(n)).id for n in range(1, count + 1)]
    clock.now = _row(engine, filings[0], "expiry_reminder").due_at
    _sweep(engine)
    return filings


class Recording:
    def __init__(self, fail: int = 0) -> None:
        self.fail = fail
        self.sent: list[dict[str, Any]] = []

    def send(self, payload: Any) -> None:
        if self.fail:
            self.fail -= 1
            raise ConnectionError("receiver down")
        self.sent.append(dict(payload))


def test_the_daemon_delivers_each_reminder_once(any_engine: FilingEngine, clock: Clock) -> None:
    _due_reminders(any_engine, clock)
    notifier = Recording()
    daemon = Daemon(any_engine, notifier=notifier, daemon_id="test-daemon")

    assert daemon.deliver() == (3, 0)
    assert daemon.deliver() == (0, 0)

    assert len({p["id"] for p in notifier.sent}) == len(notifier.sent) == 3
    assert all(r.delivered_at == clock.now for r in any_engine.reminders())


def test_a_failed_delivery_stays_visible_and_is_retried_with_backoff(
    any_engine: FilingEngine, clock: Clock
) -> None:
    _due_reminders(any_engine, clock, count=1)
    notifier = Recording(fail=2)
    daemon = Daemon(any_engine, notifier=notifier, daemon_id="test-daemon")
    settings = any_engine.settings.scheduler

    assert daemon.deliver() == (0, 1)
    (pending,) = any_engine.reminders()
    assert (pending.attempts, pending.last_error, pending.delivered_at) == (
        1, "ConnectionError", None,
    )  # fmt: skip
    assert pending.next_attempt_at == clock.now + backoff(1, settings)
    assert status(any_engine)["outbox"] == {
        "pending": 1, "failing": 1, "oldest_pending_at": pending.created_at.isoformat(),
        "abandoned": 0,
    }  # fmt: skip
    assert daemon.deliver() == (0, 0)  # not before its backoff

    clock.now = pending.next_attempt_at
    assert daemon.deliver() == (0, 1)
    assert any_engine.reminders()[0].next_attempt_at == clock.now + backoff(2, settings)
    clock.now += backoff(2, settings)
    assert daemon.deliver() == (1, 0)

    (done,) = any_engine.reminders()
    assert (done.attempts, done.last_error, done.delivered_at) == (3, None, clock.now)
    assert len(notifier.sent) == 1


def test_backoff_doubles_up_to_its_cap(settings: Settings) -> None:
    s = replace(settings.scheduler, retry_base_seconds=30, retry_max_seconds=100)
    assert [backoff(n, s).total_seconds() for n in (1, 2, 3, 4)] == [30, 60, 100, 100]


def test_the_log_notifier_writes_one_line_per_reminder(
    any_engine: FilingEngine, clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    from workflow.logs import configure_logging

    configure_logging("json", "info")
    filing = _due_reminders(any_engine, clock, count=1)[0]
    capsys.readouterr()

    Daemon(any_engine, notifier=LogNotifier(), daemon_id="t").deliver()

    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    (line,) = [x for x in lines if x["event"] == "reminder.expiry_reminder"]
    assert (line["subject_id"], line["rule_id"]) == (filing, "V3")


# -- the daemon ----------------------------------------------------------------------------------


def test_catch_up_fires_everything_overdue_and_the_heartbeat_shows_it(
    any_engine: FilingEngine, clock: Clock
) -> None:
    filings = [effective(any_engine, id_number=id_number(n)).id for n in range(1, 4)]
    expire_at = _row(any_engine, filings[0], "expire").due_at
    clock.now = expire_at - timedelta(days=1)  # both reminders due, the expiry not yet
    assert status(any_engine)["due_backlog"] == 6
    assert status(any_engine)["lag_seconds"] == pytest.approx(
        (clock.now - _row(any_engine, filings[0], "expiry_reminder").due_at).total_seconds()
    )
    notifier = Recording()

    result = run_once(any_engine, notifier)

    assert (result["fired"], result["failed"]) == (6, 0)
    assert len(notifier.sent) == 6
    shown = status(any_engine)
    assert (shown["due_backlog"], shown["lag_seconds"], shown["outbox"]["pending"]) == (0, 0.0, 0)
    assert shown["next_due_at"] == expire_at.isoformat()
    (daemon,) = shown["daemons"]
    assert (daemon["id"], daemon["fired_total"], daemon["delivered_total"]) == (
        result["daemon_id"], 6, 6,
    )  # fmt: skip
    assert daemon["alive"] is False and daemon["stopped_at"] is not None

    clock.now = expire_at + timedelta(days=30)
    assert run_once(any_engine, notifier)["fired"] == 3
    assert all(any_engine.get(f).state.value == "expired" for f in filings)


def test_a_reminder_swept_after_what_it_warns_of_is_retired_and_not_sent(
    any_engine: FilingEngine, clock: Clock
) -> None:
    """A daemon that was down must not tell a person, today, that their filing expires in 7
    days when it expired last week: the late reminder is recorded as refused, not sent."""
    filing = effective(any_engine)
    expire_at = _row(any_engine, filing.id, "expire").due_at
    clock.now = expire_at + timedelta(days=3)

    applied = _sweep(any_engine)

    assert sorted((a.kind, a.outcome) for a in applied) == [
        ("expire", "fired"), ("expiry_reminder", "retired"), ("expiry_reminder", "retired"),
    ]  # fmt: skip
    assert any_engine.reminders(filing.id) == []
    late = [h for h in any_engine.history(filing.id) if h["event"] == "retire_deadline"]
    assert [(h["outcome"], h["rule_id"], h["inputs"]["warned_of"]) for h in late] == [
        ("denied", "V3", expire_at.isoformat()),
    ] * 2
    assert "came too late" in late[0]["reason"]


def test_a_running_daemon_sweeps_on_its_interval_and_stops_cleanly(
    open_engine: Callable[..., FilingEngine], sqlite_url: str, settings: Settings, clock: Clock
) -> None:
    fast = replace(
        settings,
        scheduler=replace(settings.scheduler, sweep_seconds=0.05, deliver_seconds=0.05,
                          heartbeat_seconds=0.05),
    )  # fmt: skip
    engine = open_engine(sqlite_url, settings=fast)
    daemon = Daemon(engine, notifier=Recording(), daemon_id="interval")
    daemon.start()
    try:
        assert status(engine)["daemons"][0]["alive"] is True
        filing = effective(engine)  # made while the daemon runs
        clock.now = _row(engine, filing.id, "expire").due_at
        deadline = time.monotonic() + 10
        while engine.get(filing.id).state.value != "expired" and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        daemon.stop()
    assert engine.get(filing.id).state.value == "expired"
    (shown,) = status(engine)["daemons"]
    # The clock jumped past the expiry: its two reminders came too late and were not sent.
    assert shown["stopped_at"] is not None and shown["fired_total"] == 1


def test_sigterm_stops_the_daemon_process_gracefully(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    config = tmp_path / "config.toml"
    config.write_text(
        (ROOT / "config.toml")
        .read_text(encoding="utf-8")
        .replace('url = "sqlite:///filings.db"', f'url = "sqlite:///{db}"'),
        encoding="utf-8",
    )
    env = {**os.environ, **TEST_ENV, "FILING_LOG_FORMAT": "json"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobs.cli", "daemon", "run", "--config", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    try:
        _wait_for(lambda: _daemon_started(db), 30)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    events = [json.loads(line)["event"] for line in err.splitlines() if line.startswith("{")]
    assert events.index("daemon.stopping") < events.index("daemon.stopped")
    with FilingEngine.open(config, read_only=True) as engine:
        (shown,) = status(engine)["daemons"]
    assert shown["stopped_at"] is not None and shown["alive"] is False


def _daemon_started(db: Path) -> bool:
    if not db.exists():
        return False
    engine = sa.create_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            return bool(conn.exec_driver_sql("SELECT COUNT(*) FROM daemon_record").scalar())
    except sa.exc.OperationalError:
        return False
    finally:
        engine.dispose()


def _wait_for(check: Callable[[], bool], seconds: float) -> None:
    end = time.monotonic() + seconds
    while not check():
        if time.monotonic() > end:
            raise AssertionError("timed out")
        time.sleep(0.1)


# -- C6: provisional deadlines --------------------------------------------------------------------

# 2027's holidays as a config.toml would list them once announced (an invented example).
MAY_DAY_2027 = CalendarYear(
    holidays=frozenset(date(2027, 5, d) for d in range(1, 6)) | {date(2027, 9, 6)},
    workdays=frozenset({date(2027, 4, 25)}),
)


@pytest.fixture
def with_2027(settings: Settings) -> Settings:
    return replace(settings, calendar_years={**settings.calendar_years, 2027: MAY_DAY_2027})


def _provisional_claim(engine: FilingEngine, clock: Clock, discharged: date) -> Any:
    clock.to_local(discharged)
    adm = admit(engine, xiamen_person(), XIAMEN, discharged, networked=False)
    adm, _ = engine.discharge(adm.id, discharged, HOSPITAL)
    claim = engine.get_claim(adm.claim_id)
    assert claim.provisional
    return claim


def test_adding_a_years_holidays_moves_a_provisional_deadline_and_audits_it(
    open_engine: Callable[..., FilingEngine], db_url: str, clock: Clock, with_2027: Settings
) -> None:
    before = open_engine(db_url)
    # 6 months from 3 November 2026: 3 May 2027, a May Day holiday in the added year.
    claim = _provisional_claim(before, clock, date(2026, 11, 3))
    assert claim.last_day == date(2027, 5, 3)  # weekends only: a Monday
    old_due = claim.due_at

    after = open_engine(db_url, settings=with_2027)
    changed = {c.kind: c for c in after.recompute_provisional()}

    assert sorted(changed) == ["claim_due", "claim_reminder"]  # the reminder is counted from it
    due = changed["claim_due"]
    assert (due.old_due_at, due.provisional) == (old_due, False)
    moved = after.get_claim(claim.id)
    assert (moved.last_day, moved.provisional) == (date(2027, 5, 6), False)  # C3: next workday
    rows = {(d.kind, d.due_at): d for d in after.deadlines(claim.id)}
    assert rows[("claim_due", old_due)].outcome == "recomputed"
    assert rows[("claim_due", moved.due_at)].fired_at is None
    assert not rows[("claim_due", moved.due_at)].provisional
    record = [h for h in after.history(claim.id) if h["event"] == "recompute_deadline"]
    assert [(h["rule_id"], h["inputs"]["old_due_at"], h["inputs"]["new_due_at"]) for h in record
            if h["inputs"]["kind"] == "claim_due"] == [
        ("C6", old_due.isoformat(), moved.due_at.isoformat()),
    ]  # fmt: skip
    assert after.recompute_provisional() == []  # done once
    assert after.verify().ok


def test_a_provisional_deadline_that_holds_is_confirmed_and_one_still_unknown_is_left(
    open_engine: Callable[..., FilingEngine], db_url: str, clock: Clock, with_2027: Settings
) -> None:
    before = open_engine(db_url)
    # 6 months from 9 November 2026: 10 May 2027, a working day in the added year.
    holds = _provisional_claim(before, clock, date(2026, 11, 9))
    assert before.recompute_provisional() == []  # 2027 is not known yet: nothing to do

    after = open_engine(db_url, settings=with_2027)
    changed = after.recompute_provisional()

    assert [(c.kind, c.old_due_at == c.new_due_at) for c in changed] == [
        ("claim_reminder", True), ("claim_due", True),
    ]  # fmt: skip
    confirmed = after.get_claim(holds.id)
    assert (confirmed.last_day, confirmed.due_at, confirmed.provisional) == (
        holds.last_day, holds.due_at, False,
    )  # fmt: skip
    assert not any(d.provisional for d in after.deadlines(holds.id))


# -- settings ------------------------------------------------------------------------------------


def _with_scheduler(**table: Any) -> dict[str, Any]:
    import tomllib

    raw = tomllib.loads((ROOT / "config.toml").read_text(encoding="utf-8"))
    raw["scheduler"] = table
    return raw


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"batch_size": 0}, "scheduler.batch_size"),
        ({"sweep_seconds": "often"}, "scheduler.sweep_seconds"),
        ({"webhook_url": "ftp://x"}, "scheduler.webhook_url"),
        ({"sweep_every": 5}, "scheduler.sweep_every"),
    ],
)
def test_bad_scheduler_settings_are_refused_naming_the_key(table: dict[str, Any], key: str) -> None:
    with pytest.raises(PolicyConfigError) as refused:
        settings_from_mapping(_with_scheduler(**table), environ=TEST_ENV)
    assert refused.value.key == key


def test_the_webhook_url_comes_from_the_environment_too() -> None:
    s = load_settings(
        ROOT / "config.toml", environ={**TEST_ENV, "FILING_WEBHOOK_URL": "http://h/x"}
    )
    assert s.scheduler.webhook_url == "http://h/x"


def test_a_provisional_e3_window_and_its_reminder_move_when_the_year_is_added(
    open_engine: Callable[..., FilingEngine], db_url: str, clock: Clock, settings: Settings
) -> None:
    before = open_engine(db_url)
    clock.to_local(date(2026, 12, 28))
    adm = admit(before, jiangmen_person(), JIANGMEN, date(2026, 12, 28), emergency=True)
    deemed = adm.deemed_filing_id
    window = _row(before, deemed, "filing_window")
    assert window.provisional  # 10 days: 7 January 2027, a year not yet known
    new_year = CalendarYear(
        holidays=frozenset({date(2027, 1, 1), date(2027, 1, 7), date(2027, 1, 8)}),
        workdays=frozenset(),
    )

    after = open_engine(db_url, settings=replace(settings, calendar_years={2027: new_year}))
    changed = {c.kind: c for c in after.recompute_provisional()}

    assert sorted(changed) == ["filing_window", "window_reminder"]
    moved = changed["filing_window"]
    # C3: the last day is a holiday, so the window runs to Monday 11 January (24:00 local).
    assert (moved.new_due_at, moved.provisional) == (datetime(2027, 1, 11, 16, tzinfo=UTC), False)
    pending = {d.kind: d for d in after.deadlines(deemed) if d.fired_at is None}
    assert pending["filing_window"].due_at == moved.new_due_at
    assert pending["window_reminder"].due_at == datetime(2027, 1, 7, 16, tzinfo=UTC)
    clock.now = window.due_at  # the old instant: nothing closes
    assert [a for a in _sweep(after) if a.kind == "filing_window"] == []
    assert after.get(deemed).state.value == "deemed"


def test_on_sqlite_the_api_and_a_sweeping_daemon_share_the_file_without_lock_errors(
    open_engine: Callable[..., FilingEngine], sqlite_url: str, settings: Settings, clock: Clock
) -> None:
    import threading

    api = open_engine(sqlite_url)
    due = [effective(api, id_number=id_number(n)).id for n in range(1, 301)]
    clock.now = _row(api, due[0], "expire").due_at
    daemon_engine = open_engine(
        sqlite_url, settings=replace(settings, scheduler=replace(settings.scheduler, batch_size=50))
    )
    daemon = Daemon(daemon_engine, notifier=Recording(), daemon_id="beside-the-api")
    errors: list[BaseException] = []

    def sweep() -> None:
        try:
            daemon.sweep()
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    thread = threading.Thread(target=sweep)
    thread.start()
    made = [effective(api, id_number=id_number(n)).state.value for n in range(301, 331)]
    thread.join()

    assert errors == []
    assert made == ["effective"] * 30
    assert all(api.get(f).state.value == "expired" for f in due)


def test_apscheduler_and_sqlalchemy_warnings_come_out_as_structured_lines() -> None:
    import io
    import logging

    from workflow.logs import configure_logging

    stream = io.StringIO()
    configure_logging("json", "info", stream=stream)
    logging.getLogger("apscheduler.scheduler").warning("Run time of job was missed")
    logging.getLogger("sqlalchemy.pool").warning("pool overflow")
    logging.getLogger("apscheduler.executors").info("below the daemon's level for its libraries")

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(x["event"], x["level"]) for x in lines] == [
        ("Run time of job was missed", "warning"),
        ("pool overflow", "warning"),
    ]
    assert all("timestamp" in x for x in lines)


def test_a_daemon_not_heard_from_for_a_week_is_forgotten_when_another_starts(
    engine: FilingEngine, clock: Clock
) -> None:
    Daemon(engine, notifier=Recording(), daemon_id="killed-long-ago").register()
    clock.advance(days=6)
    Daemon(engine, notifier=Recording(), daemon_id="killed-last-week").register()
    clock.advance(days=2)

    Daemon(engine, notifier=Recording(), daemon_id="now").register()

    assert [d["id"] for d in status(engine)["daemons"]] == ["now", "killed-last-week"]


# -- found in review -----------------------------------------------------------------------------


def test_the_recount_goes_in_short_batches_and_a_row_that_fails_waits_alone(
    open_engine: Callable[..., FilingEngine],
    db_url: str,
    clock: Clock,
    with_2027: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from workflow import sweep
    from workflow.context import Request

    before = open_engine(db_url)
    broken = _provisional_claim(before, clock, date(2026, 11, 3))
    clock.to_local(date(2026, 11, 9))
    fine = _provisional_claim(before, clock, date(2026, 11, 9))
    after = open_engine(db_url, settings=with_2027)
    service = after._service
    original = sweep._recount

    def recount(svc: Any, tx: Any, subject: str, kind: str) -> Any:
        if subject == broken.id:
            raise RuntimeError("a bug")
        return original(svc, tx, subject, kind)

    monkeypatch.setattr(sweep, "_recount", recount)
    changed = sweep.recompute_provisional(service, Request.new(), batch=1)

    assert {(c.subject_id, c.kind) for c in changed} == {
        (fine.id, "claim_due"), (fine.id, "claim_reminder"),
    }  # fmt: skip
    assert after.get_claim(broken.id).provisional  # left for the next recount
    monkeypatch.undo()
    assert {c.subject_id for c in after.recompute_provisional()} == {broken.id}
    assert after.verify().ok


def test_a_failing_job_is_logged_by_its_type_and_the_others_still_run(
    any_engine: FilingEngine, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    from workflow.logs import configure_logging

    stream = io.StringIO()
    configure_logging("json", "info", stream=stream)
    filing = effective(any_engine)
    clock.now = _row(any_engine, filing.id, "expire").due_at

    def fails() -> None:
        raise RuntimeError("value 11010519491231002X rejected")

    monkeypatch.setattr(any_engine, "recompute_provisional", fails)
    daemon = Daemon(any_engine, notifier=Recording(), daemon_id="resilient")
    daemon.register()
    daemon.catch_up()

    assert any_engine.get(filing.id).state.value == "expired"  # the sweep still ran
    text = stream.getvalue()
    assert "11010519491231002X" not in text
    failed = [json.loads(x) for x in text.splitlines() if '"daemon.job_failed"' in x]
    assert [(x["job"], x["error"]) for x in failed] == [("recompute", "RuntimeError")]
    assert status(any_engine)["daemons"][0]["last_error"] == "recompute: RuntimeError"


def test_a_library_log_record_with_an_exception_keeps_its_type_only() -> None:
    import io
    import logging

    from workflow.logs import configure_logging

    stream = io.StringIO()
    configure_logging("json", "info", stream=stream)
    try:
        raise ValueError("person 11010519491231002X")
    except ValueError:
        logging.getLogger("apscheduler.executors.default").exception("Job raised an exception")

    (line,) = [json.loads(x) for x in stream.getvalue().splitlines()]
    assert (line["event"], line["exception_type"]) == ("Job raised an exception", "ValueError")
    assert "11010519491231002X" not in stream.getvalue()


def test_filings_effective_before_reminders_existed_get_the_ones_still_ahead_once(
    any_engine: FilingEngine, clock: Clock
) -> None:
    filing = effective(any_engine)
    first, second = [d for d in any_engine.deadlines(filing.id) if d.kind == "expiry_reminder"]
    with any_engine.sql_engine.begin() as conn:  # as a filing approved by the version before
        conn.execute(
            sa.text("DELETE FROM deadline_record WHERE subject_id = :s AND kind = :k"),
            {"s": filing.id, "k": "expiry_reminder"},
        )
    clock.now = first.due_at + timedelta(days=1)  # the 30-day reminder is past, the 7-day ahead

    assert any_engine.backfill_reminders() == 1
    assert any_engine.backfill_reminders() == 0

    (row,) = [d for d in any_engine.deadlines(filing.id) if d.kind == "expiry_reminder"]
    assert (row.due_at, row.fired_at, row.rule_id) == (second.due_at, None, "V3")


def test_a_reminder_whose_delivery_failed_past_its_deadline_is_abandoned_and_recorded(
    any_engine: FilingEngine, clock: Clock
) -> None:
    filing = _due_reminders(any_engine, clock, count=1)[0]
    notifier = Recording(fail=1)
    daemon = Daemon(any_engine, notifier=notifier, daemon_id="d")
    assert daemon.deliver() == (0, 1)
    clock.now = _row(any_engine, filing, "expire").due_at + timedelta(hours=1)
    notifier.fail = 0

    assert daemon.deliver() == (0, 0)

    assert notifier.sent == []
    (reminder,) = any_engine.reminders(filing)
    assert (reminder.delivered_at, reminder.abandoned_at, reminder.last_error) == (
        None, clock.now, "late",
    )  # fmt: skip
    last = any_engine.history(filing)[-1]
    assert (last["event"], last["outcome"], last["rule_id"]) == ("abandon_reminder", "denied", "V3")
    assert status(any_engine)["outbox"]["abandoned"] == 1
    assert status(any_engine)["outbox"]["pending"] == 0


def test_a_reminder_whose_subject_moved_on_before_delivery_is_abandoned(
    any_engine: FilingEngine, clock: Clock
) -> None:
    filing = _due_reminders(any_engine, clock, count=1)[0]
    any_engine.cancel(filing, PERSON)
    notifier = Recording()

    Daemon(any_engine, notifier=notifier, daemon_id="d").deliver()

    assert notifier.sent == []
    (reminder,) = any_engine.reminders(filing)
    assert reminder.last_error == "moot" and reminder.abandoned_at is not None
    last = any_engine.history(filing)[-1]
    assert last["event"] == "abandon_reminder" and "cancelled" in last["reason"]


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"webhook_url": "https://user:pw@hooks.example.org/x"}, "scheduler.webhook_url"),
        ({"webhook_url": "http:///no-host"}, "scheduler.webhook_url"),
        ({"lease_seconds": 5, "webhook_timeout_seconds": 5}, "scheduler.lease_seconds"),
    ],
)
def test_webhook_settings_that_could_only_fail_are_refused(table: dict[str, Any], key: str) -> None:
    with pytest.raises(PolicyConfigError) as refused:
        settings_from_mapping(_with_scheduler(**table), environ=TEST_ENV)
    assert refused.value.key == key


def test_the_daemon_command_refuses_a_bad_webhook_url_naming_the_option(tmp_path: Path) -> None:
    env = {**os.environ, **TEST_ENV}
    done = subprocess.run(
        [sys.executable, "-m", "jobs.cli", "daemon", "once", "--config", str(ROOT / "config.toml"),
         "--database-url", f"sqlite:///{tmp_path / 'x.db'}", "--webhook-url", "not a url"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--webhook-url" in done.stderr and "http" in done.stderr


def test_every_interval_job_coalesces_never_overlaps_and_runs_in_utc(
    open_engine: Callable[..., FilingEngine], sqlite_url: str, settings: Settings
) -> None:
    grace = replace(settings, scheduler=replace(settings.scheduler, misfire_grace_seconds=42))
    daemon = Daemon(open_engine(sqlite_url, settings=grace), notifier=Recording(), daemon_id="j")
    daemon.start()
    try:
        assert daemon._scheduler is not None
        jobs = {job.id: job for job in daemon._scheduler.get_jobs()}
    finally:
        daemon.stop()
    assert sorted(jobs) == ["deliver", "heartbeat", "recompute", "sweep"]
    for job in jobs.values():
        assert (job.coalesce, job.max_instances, job.misfire_grace_time) == (True, 1, 42)
        assert str(job.trigger.timezone) == "UTC"
    assert jobs["sweep"].trigger.interval == timedelta(seconds=settings.scheduler.sweep_seconds)


def test_the_start_line_names_the_webhooks_host_not_its_url(settings: Settings) -> None:
    from jobs.daemon import _public

    hooked = replace(settings.scheduler, webhook_url="https://hooks.example.org/t/SECRET-TOKEN")
    shown = _public(hooked)
    assert shown["webhook_host"] == "hooks.example.org"
    assert "SECRET-TOKEN" not in json.dumps(shown)
