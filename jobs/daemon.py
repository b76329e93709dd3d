"""The scheduler daemon: a few static APScheduler 3 interval jobs over the deadline rows.

Deadlines are rows, not timers (ARCHITECTURE.md): nothing is scheduled per deadline. The jobs are
- `sweep`: apply due deadline rows in batches (`FilingEngine.fire_due`) until none is due;
- `deliver`: send the outbox's reminders (jobs.notify);
- `heartbeat`: record that this daemon is alive (`filing daemon status` reads it);
- `recompute`: recount provisional deadlines once the calendar knows their year (C6).

At start the daemon catches up on everything overdue (sweeping until nothing is due) and
recounts provisional deadlines before the first interval. Every job coalesces missed runs,
never overlaps itself (`max_instances=1`) and has an explicit misfire grace; the scheduler
runs in UTC. SIGTERM or SIGINT stops it gracefully: the batch in hand commits (or, if the
process dies, rolls back whole), no new batch starts, and the heartbeat records the stop.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any

import structlog
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from jobs.notify import Notifier, deliver_due, notifier_for
from workflow.api import FilingEngine
from workflow.store import WRITE_LOCK_KEY, Store, insert_sql
from workflow.tables import daemon_t


def _log() -> Any:
    """Looked up at each use: a logger cached at import would keep the first configuration."""
    return structlog.get_logger("jobs.daemon")


_RECOMPUTE_LOCK_KEY = WRITE_LOCK_KEY + 1  # one daemon at a time recounts (PostgreSQL)
_INSERT_DAEMON = insert_sql(daemon_t)
_FORGET_AFTER = timedelta(days=7)
_BEAT = (
    "UPDATE daemon_record SET beat_at = :beat_at, last_sweep_at = :last_sweep_at, "
    "last_sweep_ms = :last_sweep_ms, fired_total = :fired_total, "
    "delivered_total = :delivered_total, last_error = :last_error, stopped_at = :stopped_at "
    "WHERE id = :id"
)


@dataclass(frozen=True)
class SweepReport:
    batches: int
    fired: int
    retired: int
    failed: int
    seconds: float


class Daemon:
    """One scheduler daemon over one engine. `run()` blocks until stopped; `sweep()`,
    `deliver()` and `recompute()` can also be called directly (tests, `--once`)."""

    def __init__(
        self,
        engine: FilingEngine,
        *,
        notifier: Notifier | None = None,
        daemon_id: str | None = None,
    ) -> None:
        self.engine = engine
        self.settings = engine.settings.scheduler
        self.notifier = notifier or notifier_for(self.settings)
        host = socket.gethostname()[:32]
        self.id = daemon_id or f"{host}:{os.getpid()}:{secrets.token_hex(3)}"
        self._host = host
        self._stop = threading.Event()
        self._lock = threading.Lock()  # the counters below
        self._fired = self._delivered = 0
        self._last_sweep_at: datetime | None = None
        self._last_sweep_ms: int | None = None
        self._last_error: str | None = None
        self._scheduler: BackgroundScheduler | None = None

    @property
    def store(self) -> Store:
        return self.engine.store

    def now(self) -> datetime:
        return self.engine.clock()

    # -- the jobs ------------------------------------------------------------------------------

    def sweep(self) -> SweepReport:
        """Apply due rows, batch after batch, until none is due or the daemon is stopping."""
        start = time.perf_counter()
        limit = self.settings.batch_size
        batches = fired = retired = failed = 0
        while not self._stop.is_set():
            batch = self.engine.fire_due(limit=limit)
            batches += 1
            fired += batch.count("fired")
            retired += batch.count("retired")
            failed += batch.count("failed")
            if batch.claimed < limit:
                break
        seconds = time.perf_counter() - start
        with self._lock:
            self._fired += fired
            self._last_sweep_at = self.now()
            self._last_sweep_ms = round(seconds * 1000)
        if fired or retired or failed:
            _log().info(
                "sweep.done", daemon_id=self.id, batches=batches, fired=fired, retired=retired,
                failed=failed, ms=round(seconds * 1000, 1),
            )  # fmt: skip
        return SweepReport(batches, fired, retired, failed, seconds)

    def deliver(self) -> tuple[int, int]:
        """Deliver the outbox until nothing is deliverable now."""
        sent = missed = 0
        while not self._stop.is_set():
            ok, bad, claimed = deliver_due(
                self.engine, self.notifier, self.id, self.settings, stopping=self._stop.is_set
            )
            sent, missed = sent + ok, missed + bad
            if claimed == 0:  # each claimed one was sent, failed (backoff) or abandoned
                break
        with self._lock:
            self._delivered += sent
        return sent, missed

    def recompute(self) -> int:
        """C6. On PostgreSQL one daemon leads (a session advisory lock); the others skip."""
        with _leader(self.store, _RECOMPUTE_LOCK_KEY) as leading:
            if not leading:
                return 0
            changed = self.engine.recompute_provisional()
        if changed:
            _log().info("recompute.done", daemon_id=self.id, deadlines=len(changed))
        return len(changed)

    def heartbeat(self, *, stopped: bool = False) -> None:
        now = self.now()
        with self._lock:
            values = {
                "id": self.id, "beat_at": now, "last_sweep_at": self._last_sweep_at,
                "last_sweep_ms": self._last_sweep_ms, "fired_total": self._fired,
                "delivered_total": self._delivered, "last_error": self._last_error,
                "stopped_at": now if stopped else None,
            }  # fmt: skip
        with self.store.write(chained=False) as tx:
            tx.run(_BEAT, values)

    # -- running -------------------------------------------------------------------------------

    def register(self) -> None:
        """Record this daemon; forget daemons not heard from for a week (killed ones never
        record their stop), so `status` lists the ones that matter."""
        now = self.now()
        with self.store.write(chained=False) as tx:
            tx.run("DELETE FROM daemon_record WHERE beat_at < :t", {"t": now - _FORGET_AFTER})
            tx.run(
                _INSERT_DAEMON,
                {
                    "id": self.id, "host": self._host, "pid": os.getpid(), "started_at": now,
                    "beat_at": now, "last_sweep_at": None, "last_sweep_ms": None,
                    "fired_total": 0, "delivered_total": 0, "last_error": None,
                    "stopped_at": None,
                },
            )  # fmt: skip

    def backfill(self) -> int:
        """Reminders for filings that took effect before reminders existed (or under a policy
        that had none): written once, only those still ahead."""
        written = self.engine.backfill_reminders()
        if written:
            _log().info("backfill.done", daemon_id=self.id, reminders=written)
        return written

    def catch_up(self) -> SweepReport:
        """Everything overdue, before the first interval: recount (C6), backfill reminders,
        sweep, deliver. A step that fails is logged and the others still run; the interval
        jobs try it again."""
        report = SweepReport(0, 0, 0, 0, 0.0)
        for step in (self.recompute, self.backfill, self.sweep, self.deliver, self.heartbeat):
            done = self._guarded(step)()
            if isinstance(done, SweepReport):
                report = done
        return report

    def _guarded(self, job: Callable[[], Any]) -> Callable[[], Any]:
        """A job as the scheduler runs it: an exception is logged by its type only (a message
        could quote input) and recorded in the heartbeat, never raised into APScheduler, whose
        own log line would carry the message."""

        def run() -> Any:
            try:
                return job()
            except Exception as exc:
                self._error(exc, job.__name__)
                return None

        run.__name__ = job.__name__
        return run

    def start(self) -> None:
        """Register, catch up, then start the interval jobs in background threads."""
        self.register()
        _log().info("daemon.started", daemon_id=self.id, **_public(self.settings))
        report = self.catch_up()
        _log().info(
            "daemon.caught_up", daemon_id=self.id, fired=report.fired, batches=report.batches
        )
        s = self.settings
        scheduler = BackgroundScheduler(
            timezone="UTC",
            executors={"default": ThreadPoolExecutor(max_workers=4)},
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": s.misfire_grace_seconds,
            },
        )
        for job, seconds in (
            (self.sweep, s.sweep_seconds),
            (self.deliver, s.deliver_seconds),
            (self.heartbeat, s.heartbeat_seconds),
            (self.recompute, s.recompute_hours * 3600),
        ):
            scheduler.add_job(self._guarded(job), "interval", seconds=seconds, id=job.__name__)
        scheduler.start()
        self._scheduler = scheduler

    def stop(self) -> None:
        """Finish the batch in hand, start no other, wait for the jobs, record the stop."""
        self._stop.set()
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None
        self.heartbeat(stopped=True)
        _log().info(
            "daemon.stopped", daemon_id=self.id, fired=self._fired, delivered=self._delivered
        )

    def run(self, *, install_signals: bool = True) -> None:
        """Start, then block until SIGTERM/SIGINT (or `request_stop()`), then stop."""
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, self._on_signal)
        self.start()
        try:
            while not self._stop.wait(1.0):
                pass
        finally:
            self.stop()

    def request_stop(self) -> None:
        self._stop.set()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        _log().info("daemon.stopping", daemon_id=self.id, signal=signal.Signals(signum).name)
        self._stop.set()

    def _error(self, exc: Exception, job: str) -> None:
        with self._lock:
            self._last_error = f"{job}: {type(exc).__name__}"[:200]
        _log().error("daemon.job_failed", daemon_id=self.id, job=job, error=type(exc).__name__)


class _leader:
    """A session advisory lock on PostgreSQL, held for the block; always held on SQLite,
    where the single write lock already serialises the work."""

    def __init__(self, store: Store, key: int) -> None:
        self.store, self.key = store, key
        self._raw: Any = None

    def __enter__(self) -> bool:
        if not self.store.postgres:
            return True
        self._raw = self.store.engine.raw_connection()
        cur = self._raw.cursor()
        cur.execute(f"SELECT pg_try_advisory_lock({self.key})")
        got = bool(cur.fetchone()[0])
        self._raw.commit()
        if not got:
            self._raw.close()
            self._raw = None
        return got

    def __exit__(self, *exc: object) -> None:
        if self._raw is not None:
            cur = self._raw.cursor()
            cur.execute(f"SELECT pg_advisory_unlock({self.key})")
            self._raw.commit()
            self._raw.close()


_SET_ASIDE = (
    "SELECT subject_id, kind, CAST(due_at AS TEXT) AS due_text, attempts, last_error, "
    "CAST(retry_at AS TEXT) AS retry_text FROM deadline_record "
    "WHERE fired_at IS NULL AND attempts > 0 ORDER BY subject_id, kind LIMIT 20"
)


def status(engine: FilingEngine, *, now: datetime | None = None) -> dict[str, Any]:
    """What an operator needs to see: the due backlog waiting for the sweep and its lag, the
    rows set aside with their errors (a row that could not be read or applied waits alone,
    retried after a backoff), the outbox, and every daemon's heartbeat (alive if it beat
    within three heartbeat intervals). Instants of deadline rows are read as the database's
    text, so a row no reader takes is shown, not a traceback."""
    now = now or engine.clock()
    beat = timedelta(seconds=engine.settings.scheduler.heartbeat_seconds * 3)
    with engine.store.read() as tx:
        backlog = tx.one(
            "SELECT COUNT(*) AS n, CAST(MIN(due_at) AS TEXT) AS oldest FROM deadline_record "
            "WHERE fired_at IS NULL AND due_at <= :now AND (retry_at IS NULL OR retry_at <= :now)",
            {"now": now},
        )
        failing = tx.scalar(
            "SELECT COUNT(*) FROM deadline_record WHERE fired_at IS NULL AND attempts > 0"
        )
        set_aside = tx.all(_SET_ASIDE)
        upcoming = tx.one(
            "SELECT CAST(MIN(due_at) AS TEXT) AS next_due_at FROM deadline_record "
            "WHERE fired_at IS NULL AND due_at > :now",
            {"now": now},
        )
        outbox = tx.one(
            "SELECT COUNT(*) AS pending, MIN(created_at) AS oldest, "
            "SUM(CASE WHEN attempts > 0 THEN 1 ELSE 0 END) AS failing "
            "FROM outbox_record WHERE delivered_at IS NULL AND abandoned_at IS NULL"
        )
        abandoned = tx.scalar("SELECT COUNT(*) FROM outbox_record WHERE abandoned_at IS NOT NULL")
        daemons = tx.all("SELECT * FROM daemon_record ORDER BY beat_at DESC LIMIT 20")
    assert backlog is not None and upcoming is not None and outbox is not None
    oldest = _instant(backlog["oldest"])
    return {
        "now": now.isoformat(),
        "due_backlog": int(backlog["n"]),
        # None: the oldest due row's instant cannot be read (the next sweep sets it aside).
        "lag_seconds": round((now - oldest).total_seconds(), 3)
        if oldest
        else (0.0 if backlog["oldest"] is None else None),
        "failing_deadlines": int(failing or 0),
        "set_aside": [
            {
                "subject_id": r["subject_id"],
                "kind": r["kind"],
                "due_at": _shown(r["due_text"]),
                "attempts": r["attempts"],
                "error": r["last_error"],
                "retry_at": _shown(r["retry_text"]),
            }
            for r in set_aside
        ],
        "next_due_at": _shown(upcoming["next_due_at"]),
        "outbox": {
            "pending": int(outbox["pending"] or 0),
            "failing": int(outbox["failing"] or 0),
            "oldest_pending_at": _iso(_instant(outbox["oldest"])),
            "abandoned": int(abandoned or 0),
        },
        "daemons": [
            {
                "id": d["id"],
                "host": d["host"],
                "pid": d["pid"],
                "alive": d["stopped_at"] is None and now - d["beat_at"] <= beat,
                "started_at": _iso(d["started_at"]),
                "beat_at": _iso(d["beat_at"]),
                "last_sweep_at": _iso(d["last_sweep_at"]),
                "last_sweep_ms": d["last_sweep_ms"],
                "fired_total": d["fired_total"],
                "delivered_total": d["delivered_total"],
                "last_error": d["last_error"],
                "stopped_at": _iso(d["stopped_at"]),
            }
            for d in daemons
        ],
    }


def _instant(value: Any) -> datetime | None:
    """An instant read as the database's text (SQLite's, or PostgreSQL's with its offset);
    None if no reader takes it (the row is then shown as stored)."""
    if value is None or isinstance(value, datetime):
        return value
    try:
        instant = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant.astimezone(UTC)


def _shown(text: str | None) -> str | None:
    """An instant of a deadline row for the operator: ISO 8601 in UTC, or as stored."""
    instant = _instant(text)
    return text if instant is None else instant.isoformat()


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _public(settings: Any) -> dict[str, Any]:
    """The settings worth logging at start (the webhook URL may carry a token: only its host)."""
    from urllib.parse import urlsplit

    values = {k: v for k, v in vars(settings).items() if k != "webhook_url"}
    if settings.webhook_url:
        values["webhook_host"] = urlsplit(settings.webhook_url).hostname
    return values


def run_once(engine: FilingEngine, notifier: Notifier | None = None) -> dict[str, Any]:
    """Catch up once and return (no interval jobs): for cron-style use and tests."""
    daemon = Daemon(engine, notifier=notifier)
    daemon.register()
    report = daemon.catch_up()
    daemon.heartbeat(stopped=True)
    return {"daemon_id": daemon.id, "fired": report.fired, "retired": report.retired,
            "failed": report.failed, "batches": report.batches}  # fmt: skip


Clock = Callable[[], datetime]
