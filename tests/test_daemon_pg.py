"""Several scheduler daemons on one PostgreSQL database (jobs/daemon.py): each its own engine and
connection pool, sweeping and delivering at the same time. Every due row is applied once, every
reminder written and delivered once, the audit chain stays whole; one daemon at a time leads
the recount (C6); a reminder claimed by one daemon is skipped by the others, both while the
claim's transaction is open (SKIP LOCKED) and after it committed (the lease)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from jobs.daemon import _RECOMPUTE_LOCK_KEY, Daemon, _leader
from tests.conftest import Clock, effective, id_number, race
from workflow import FilingEngine
from workflow import outbox as outbox_module
from workflow.config import Settings

pytestmark = pytest.mark.postgres

Open = Callable[..., FilingEngine]


class Recording:
    """A notifier shared by every daemon: each reminder id it was given, from any thread (the id
    is what a receiver deduplicates on)."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self._lock = threading.Lock()

    def send(self, payload: Mapping[str, Any]) -> None:
        with self._lock:
            self.sent.append(str(payload["id"]))

    def ids(self) -> Counter[str]:
        with self._lock:
            return Counter(self.sent)


def tuned(settings: Settings, **scheduler: Any) -> Settings:
    return replace(settings, scheduler=replace(settings.scheduler, **scheduler))


def rows(engine: FilingEngine, sql: str, **params: Any) -> list[dict[str, Any]]:
    with engine.store.read() as tx:
        return tx.all(sql, params)


def with_option(pg_url: str, option: str) -> str:
    """The same schema, with one more server setting on every connection."""
    url = sa.make_url(pg_url)
    options = f"{url.query['options']} -c{option}"
    return url.update_query_dict({"options": options}).render_as_string(hide_password=False)


# -- many daemons, one database ------------------------------------------------------------------

FILINGS = 150  # 150 expiries and 300 expiry reminders: 450 due rows


@pytest.mark.parametrize("daemons", [2, 4])
def test_concurrent_daemons_apply_every_due_row_once_and_deliver_every_reminder_once(
    daemons: int, pg_url: str, open_engine: Open, settings: Settings, clock: Clock
) -> None:
    small_batches = tuned(settings, batch_size=20)
    setup = open_engine(pg_url, settings=small_batches)
    filings = [effective(setup, id_number=id_number(n)) for n in range(FILINGS)]
    recording = Recording()
    workers = [
        Daemon(
            open_engine(pg_url, settings=small_batches),
            notifier=recording,
            daemon_id=f"daemon-{i}",
        )
        for i in range(daemons)
    ]

    # Past both reminders (30 and 7 days before), then past every validity (6 months): a
    # reminder swept only after what it warns of would be retired as late, not sent.
    results = []
    for day in (date(2026, 8, 28), date(2026, 9, 20)):
        clock.to_local(day)
        results += race(*[lambda d=d: (d.sweep(), d.deliver()) for d in workers])

    assert not [r for r in results if isinstance(r, Exception)], results
    sweeps = [sweep for sweep, _ in results]
    deliveries = [delivery for _, delivery in results]
    # Each row counted by exactly one daemon, none failed, and the work was shared.
    assert sum(s.fired for s in sweeps) == 3 * FILINGS
    assert sum(s.retired + s.failed for s in sweeps) == 0
    assert sum(1 for s in sweeps if s.fired) >= 2, sweeps
    assert rows(setup, "SELECT * FROM deadline_record WHERE fired_at IS NULL") == []
    # One applied expiry per filing in the audit trail, and the chain is whole.
    expiries = rows(
        setup,
        "SELECT filing_id, COUNT(*) AS n FROM audit_record "
        "WHERE event = 'expire' AND outcome = 'applied' GROUP BY filing_id",
    )
    assert {r["filing_id"]: r["n"] for r in expiries} == {f.id: 1 for f in filings}
    assert {setup.get(f.id).state.value for f in filings} == {"expired"}
    verification = setup.verify()
    assert verification.ok, verification.problems
    assert verification.count == 4 * FILINGS  # create, submit, approve, expire
    # One outbox row per fired reminder, each delivered exactly once.
    reminders = setup.reminders()
    fired_reminders = rows(
        setup,
        "SELECT subject_id, due_at FROM deadline_record "
        "WHERE kind = 'expiry_reminder' AND outcome = 'fired'",
    )
    assert len(reminders) == len(fired_reminders) == 2 * FILINGS
    assert {(r.subject_id, r.due_at) for r in reminders} == {
        (r["subject_id"], r["due_at"]) for r in fired_reminders
    }
    assert recording.ids() == Counter({r.payload["id"]: 1 for r in reminders})
    assert sum(sent for sent, _ in deliveries) == 2 * FILINGS
    assert sum(missed for _, missed in deliveries) == 0
    assert all(r.delivered_at is not None and r.attempts == 1 for r in reminders)


# -- the recount leader (C6) -------------------------------------------------------------------


def test_only_one_of_two_concurrent_holders_of_the_recompute_lock_leads(
    pg_url: str, open_engine: Open
) -> None:
    engines = [open_engine(pg_url), open_engine(pg_url)]
    holding = threading.Barrier(2)

    def hold(engine: FilingEngine) -> bool:
        with _leader(engine.store, _RECOMPUTE_LOCK_KEY) as leading:
            holding.wait(timeout=10)  # both have asked before either lets go
            return leading

    results = race(*[lambda e=e: hold(e) for e in engines])

    assert sorted(results) == [False, True]
    with _leader(engines[0].store, _RECOMPUTE_LOCK_KEY) as again:
        assert again, "the lock is released when its holder's block ends"


def test_a_daemon_skips_the_recount_while_another_leads_and_leads_once_it_is_free(
    pg_url: str, open_engine: Open, monkeypatch: pytest.MonkeyPatch
) -> None:
    leader, follower = open_engine(pg_url), open_engine(pg_url)
    recounts: list[str] = []

    def recount(**_: Any) -> list[Any]:
        recounts.append("ran")
        return []

    monkeypatch.setattr(follower, "recompute_provisional", recount)
    daemon = Daemon(follower, daemon_id="follower")

    with _leader(leader.store, _RECOMPUTE_LOCK_KEY) as leading:
        assert leading
        assert daemon.recompute() == 0
        assert recounts == []

    daemon.recompute()
    assert recounts == ["ran"]


def test_the_recompute_lock_is_released_when_the_leaders_block_raises(
    pg_url: str, open_engine: Open
) -> None:
    first, second = open_engine(pg_url), open_engine(pg_url)

    with pytest.raises(RuntimeError), _leader(first.store, _RECOMPUTE_LOCK_KEY):
        raise RuntimeError("the recount failed")

    with _leader(second.store, _RECOMPUTE_LOCK_KEY) as leading:
        assert leading


# -- outbox claims between daemons ------------------------------------------------------------


@pytest.fixture
def due_reminders(pg_url: str, open_engine: Open, clock: Clock) -> FilingEngine:
    """Twelve undelivered reminders (two per filing), their validity not yet over."""
    engine = open_engine(pg_url)
    for n in range(6):
        effective(engine, id_number=id_number(n))
    clock.advance(days=180)  # both reminders due, the expiry (day 184) not yet
    Daemon(engine, notifier=Recording()).sweep()
    assert len(engine.reminders()) == 12
    return engine


def test_a_claim_held_in_an_open_transaction_is_skipped_by_another_daemon_which_takes_the_rest(
    pg_url: str, open_engine: Open, due_reminders: FilingEngine, clock: Clock
) -> None:
    engine = due_reminders
    lease = timedelta(seconds=engine.settings.scheduler.lease_seconds)
    # The second daemon waits at most 2 s for a row lock: without SKIP LOCKED it fails.
    other = open_engine(with_option(pg_url, "lock_timeout=2000"))
    recording = Recording()
    second = Daemon(other, notifier=recording, daemon_id="second")
    now = clock()
    claim = {"worker": "first", "until": now + lease, "now": now, "limit": 5}

    with engine.store.write(chained=False) as tx:  # the first daemon's claim, not committed
        held = tx.all(outbox_module._CLAIM_PG, claim)
        assert len(held) == 5
        assert second.deliver() == (7, 0)
    held_ids = {f"{r['subject_id']}:{r['kind']}:{r['due_at'].isoformat()}" for r in held}
    assert set(recording.ids()).isdisjoint(held_ids)
    assert len(recording.ids()) == 7

    # Committed, the first daemon's lease still keeps the second away from its rows...
    assert second.deliver() == (0, 0)
    by_first = [r for r in engine.reminders() if r.delivered_at is None]
    assert {r.payload["id"] for r in by_first} == held_ids
    # ...until the lease ends: a daemon that died holding it loses its rows to another.
    clock.now = now + lease + timedelta(seconds=1)
    assert second.deliver() == (5, 0)
    assert recording.ids() == Counter({r.payload["id"]: 1 for r in engine.reminders()})
    # The first daemon, come back late, cannot record a delivery it no longer holds.
    late = outbox_module.Reminder.from_row(held[0])
    assert not outbox_module.delivered(engine.store, "first", late, clock())
