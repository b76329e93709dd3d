"""Crash soak of the scheduler daemon: SIGKILL at random instants, restart, repeat, then check
that no deadline was lost or applied twice, no reminder written twice or left undelivered, and
that the SQLite file and the audit chain are intact.

The daemon runs as it does in production, `python -m jobs.cli daemon run`, on a SQLite file
with a copy of config.toml whose [scheduler] sweeps often and in small batches, so that a kill
lands between many commits and inside many transactions. Its deadlines are due in real time:
the data is written through the engine on a clock set in the past (2 March 2026, and about
five and a half months ago), so its deadlines have already passed. The data is
- temporary (K6) filings taken to effective: an `expire` row and two `expiry_reminder` rows
  each (fired set-wise, and one by one through the outbox);
- K6 filings whose validity ends in about two weeks: only their 30-day reminder is due, and it
  warns of something still ahead (so it is sent even where a late reminder is not);
- Jiangmen emergency admissions, deemed filed: `filing_window` and `window_reminder` (E3);
- Xiamen admissions outside the network, discharged into a manual claim: `claim_due` and
  `claim_reminder` (P6).
More of it is written between kills (while the next daemon is still importing) once the due
rows run low: the daemons between two refills sweep, and the last of them delivers reminders.

A kill is made either at a random instant after the process was spawned (interpreter start,
imports, migration check, registration) or at a random delay after the daemon logged
`daemon.started`, when it is catching up: most of these land in the middle of a sweep. After the
last kill the leases of the dead daemon's reminders are left to run out, one `daemon once` runs
to completion, and the checks below are made.

    python bench/soak_kill.py [--kills 500] [--seed 1] [--due-rows 4000] [--batch-size 5]

tests/test_daemon_crash.py runs the same harness with fewer kills (FILING_KILLS, default 50).
Exit status: 0 if every check passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stdnum.cn import ric  # noqa: E402

from jobs.daemon import status  # noqa: E402
from states.periods import LOCAL_TZ  # noqa: E402
from workflow import Actor, Channel, FilingEngine, Role  # noqa: E402
from workflow.clock import ManualClock  # noqa: E402
from workflow.config import load_settings  # noqa: E402
from workflow.hospital import REMINDER_KINDS  # noqa: E402
from workflow.logs import configure_logging  # noqa: E402

PERSON = Actor("soak-person", Role.INSURED, Channel.COUNTER)
OFFICER = Actor("soak-officer", Role.OFFICER, Channel.COUNTER, organisation="agency-1")
HOSPITAL = Actor("soak-his", Role.HOSPITAL, Channel.HOSPITAL_SYSTEM, organisation="H4401001")
PERSON_KEY = "soak-person-key"
# The day most of the data is written: everything it schedules is due long before today.
WRITTEN_ON = date(2026, 3, 2)
# "upcoming" filings are written this many days before today: their validity ends about two
# weeks from now, so their 30-day reminder is due and warns of something still ahead.
UPCOMING_AGO = 167
# Of every ten units: six K6 filings past their validity, two upcoming K6 filings, one Jiangmen
# emergency, one Xiamen claim.
UNIT_KINDS = ("filing",) * 6 + ("upcoming",) * 2 + ("emergency", "claim")
ROWS_WRITTEN = {"filing": 3, "upcoming": 3, "emergency": 2, "claim": 2}  # deadline rows
ROWS_DUE = {"filing": 3, "upcoming": 1, "emergency": 2, "claim": 2}  # of which due today
_SQLITE_INSTANT = "%Y-%m-%d %H:%M:%S.%f"


@dataclass(frozen=True)
class SoakConfig:
    kills: int = 500
    seed: int = 1
    due_rows: int = 4000  # due rows written before the first start and at each refill
    # Refill once fewer than due_rows / 10 rows are due, unless more reminders than this are
    # undelivered: then the daemons deliver until fewer are (the final run delivers the rest).
    outbox_cap: int = 16000
    batch_size: int = 5
    sweep_seconds: float = 0.05
    deliver_seconds: float = 0.05
    heartbeat_seconds: float = 0.05
    lease_seconds: int = 2
    max_delay: float = 0.4  # longest wait after `daemon.started` before a kill, seconds
    early_share: float = 0.2  # kills made at a random instant of the start-up instead
    ready_timeout: float = 60.0


@dataclass
class Life:
    """One daemon process, from spawn to SIGKILL."""

    n: int
    mode: str  # "startup": killed at a random instant after spawn; "ready": after it started
    delay: float  # seconds after spawn ("startup") or after `daemon.started` ("ready")
    started: bool = False  # it logged `daemon.started`
    ready_after: float | None = None  # seconds from spawn to `daemon.started`
    fired: int = 0  # deadline rows it applied (fired or retired) before it died
    delivered: int = 0  # reminders it recorded as delivered before it died
    due_left: int = 0  # due rows still pending when it died
    outbox_left: int = 0  # reminders still undelivered when it died
    exit_code: int | None = None

    @property
    def phase(self) -> str:
        """Where the kill landed: "startup" (before `daemon.started`), "sweep" (due rows were
        left), "deliver" (reminders were left: being sent, or leased by a killed daemon) or
        "idle" (only the interval jobs had anything to do)."""
        if not self.started:
            return "startup"
        if self.due_left:
            return "sweep"
        if self.outbox_left:
            return "deliver"
        return "idle"


@dataclass
class Soak:
    """The harness: a work folder with its database, config copy and daemon log."""

    workdir: Path
    cfg: SoakConfig = field(default_factory=SoakConfig)
    lives: list[Life] = field(default_factory=list)
    units: Counter[str] = field(default_factory=Counter)
    # The ids written, by unit kind ("emergency": the deemed filings, "admission": theirs).
    subjects: dict[str, set[str]] = field(default_factory=dict)
    deliveries: Counter[str] = field(default_factory=Counter)  # reminder id -> times sent
    log_errors: list[str] = field(default_factory=list)
    process_problems: list[str] = field(default_factory=list)
    final: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.db = self.workdir / "filings.db"
        self.config = self.workdir / "config.toml"
        self.log = self.workdir / "daemon.log"
        self.url = f"sqlite:///{self.db}"
        self.rng = random.Random(self.cfg.seed)
        self._next_person = 0
        self._last_kill = 0.0
        self._engine: FilingEngine | None = None
        self._clock = ManualClock(_local(WRITTEN_ON))
        scheduler = {
            "sweep_seconds": self.cfg.sweep_seconds,
            "batch_size": self.cfg.batch_size,
            "deliver_seconds": self.cfg.deliver_seconds,
            "heartbeat_seconds": self.cfg.heartbeat_seconds,
            "misfire_grace_seconds": 1,
            "lease_seconds": self.cfg.lease_seconds,
            "webhook_timeout_seconds": 0.5,  # deliveries are log lines; the lease must exceed it
        }
        write_config(ROOT / "config.toml", self.config, scheduler)
        self.settings = load_settings(
            self.config, database_url=self.url, environ={"FILING_PERSON_KEY": PERSON_KEY}
        )
        taken = {k: getattr(self.settings.scheduler, k) for k in scheduler}
        if taken != scheduler:
            raise ValueError(f"{self.config}: [scheduler] is {taken}, not {scheduler}")
        self.env = {
            k: v for k, v in os.environ.items() if not k.startswith("FILING_") and k != "PYTHONPATH"
        }
        self.env.update(
            FILING_PERSON_KEY=PERSON_KEY, FILING_LOG_FORMAT="json", PYTHONPATH=str(ROOT)
        )

    # -- running -------------------------------------------------------------------------------

    def run(self, progress: Callable[[str], None] | None = None) -> Soak:
        """Write the first data, make `cfg.kills` kills, finish with `daemon once`."""
        start = time.perf_counter()
        configure_logging("json", "error", stdlib=False)  # the writer's own lines: errors only
        try:
            self.refill()
            for n in range(self.cfg.kills):
                life = self.kill_once(n)
                if progress and (n + 1) % 50 == 0:
                    progress(f"{n + 1} kills, last {life.phase}, due left {life.due_left}")
        finally:
            if self._engine is not None:
                self._engine.close()
                self._engine = None
        _sleep_until(self._last_kill + self.cfg.lease_seconds + 0.2)  # its leases run out
        self.finish()
        self.seconds = time.perf_counter() - start
        return self

    def daemon_command(self, *args: str) -> list[str]:
        return [
            sys.executable, "-m", "jobs.cli", "daemon", *args,
            "--config", str(self.config), "--database-url", self.url,
        ]  # fmt: skip

    def kill_once(self, n: int) -> Life:
        """Spawn a daemon, write more due rows while it imports, kill it, look at what it did."""
        before = self.counts()
        offset = self.log.stat().st_size if self.log.exists() else 0
        early = self.rng.random() < self.cfg.early_share
        # Drawn before anything is timed, so the sequence depends on the seed alone.
        draw = self.rng.random()
        with self.log.open("ab") as err:
            spawned = time.perf_counter()
            proc = subprocess.Popen(
                self.daemon_command("run"),
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        try:
            self.refill(before)
            if early:
                life = Life(n, "startup", draw * self._startup_estimate())
                _sleep_until(spawned + life.delay)
            else:
                life = Life(n, "ready", draw * self.cfg.max_delay)
                ready = self._wait_started(proc, offset)
                if ready is None:
                    self.process_problems.append(
                        f"life {n}: no daemon.started within {self.cfg.ready_timeout}s "
                        f"(exit code {proc.poll()})"
                    )
                else:
                    life.ready_after = ready - spawned
                    _sleep_until(ready + life.delay)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            life_code = proc.wait(timeout=30)
            self._last_kill = time.perf_counter()
        life.exit_code = life_code
        if life_code != -signal.SIGKILL:
            self.process_problems.append(f"life {n}: the daemon exited by itself ({life_code})")
        self._read_log(offset, life)
        after = self.counts()
        life.fired = after["fired"] - before["fired"]
        life.delivered = after["delivered"] - before["delivered"]
        life.due_left = after["due"]
        life.outbox_left = after["outbox_pending"]
        self.lives.append(life)
        return life

    def finish(self) -> None:
        """One `daemon once`, run to completion."""
        offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as err:
            done = subprocess.run(
                self.daemon_command("once"),
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
                timeout=600,
                check=False,
            )
        self._read_log(offset, None)
        if done.returncode != 0:
            self.process_problems.append(f"daemon once exited with {done.returncode}")
            return
        self.final = json.loads(done.stdout)

    # -- the data ------------------------------------------------------------------------------

    def refill(self, counts: dict[str, int] | None = None) -> int:
        """Once fewer than a tenth of `cfg.due_rows` rows are due (and no more than
        `cfg.outbox_cap` reminders undelivered), write units until about `cfg.due_rows` rows
        are due; the units written."""
        counts = counts or self.counts()
        if counts["due"] >= self.cfg.due_rows // 10:
            return 0
        if counts["outbox_pending"] > self.cfg.outbox_cap:
            return 0
        per_unit = sum(ROWS_DUE[k] for k in UNIT_KINDS) / len(UNIT_KINDS)
        units = math.ceil((self.cfg.due_rows - counts["due"]) / per_unit)
        self.populate(units)
        return units

    def populate(self, units: int) -> None:
        """Write `units` units through the engine on a clock in the past."""
        engine = self._writer()
        clock = self._clock
        admitted_on = WRITTEN_ON - timedelta(days=1)
        upcoming_on = datetime.now(LOCAL_TZ).date() - timedelta(days=UPCOMING_AGO)
        ids = {k: self.subjects.setdefault(k, set()) for k in (*UNIT_KINDS, "admission")}
        to_discharge: list[str] = []
        for _ in range(units):
            n = self._next_person
            self._next_person += 1
            kind = UNIT_KINDS[n % len(UNIT_KINDS)]
            self.units[kind] += 1
            clock.set(_local(upcoming_on if kind == "upcoming" else WRITTEN_ON))
            if kind in ("filing", "upcoming"):
                filing = engine.create(
                    id_number=_id_number(n, "110105"), kind="K6", insurance_type="employee",
                    insured_region="110000", treatment_region="440300", actor=PERSON,
                    documents=["identity", "declaration_form"], consent_given=True,
                )  # fmt: skip
                engine.approve(engine.submit(filing.id, PERSON).id, OFFICER)
                ids[kind].add(filing.id)
            elif kind == "emergency":  # Jiangmen: deemed filed, a 10-day window (E1, E3)
                admission = engine.admit(
                    id_number=_id_number(n, "440703"), insurance_type="employee",
                    insured_region="440700", treatment_region="440100", hospital_code="H4401001",
                    admitted_on=admitted_on, actor=HOSPITAL, emergency=True,
                )  # fmt: skip
                ids["admission"].add(admission.id)
                ids[kind].add(str(admission.deemed_filing_id))
            else:  # Xiamen, outside the network: a manual claim once discharged (P5, P6)
                admission = engine.admit(
                    id_number=_id_number(n, "350203"), insurance_type="employee",
                    insured_region="350200", treatment_region="440100", hospital_code="H4401001",
                    admitted_on=admitted_on, actor=HOSPITAL, networked=False,
                )  # fmt: skip
                to_discharge.append(admission.id)
        clock.set(_local(WRITTEN_ON + timedelta(days=1)))
        for admission_id in to_discharge:
            admission, _ = engine.discharge(admission_id, WRITTEN_ON + timedelta(days=1), HOSPITAL)
            ids["claim"].add(str(admission.claim_id))

    def _writer(self) -> FilingEngine:
        """The engine that writes the data: this process, no fsync (it is never killed)."""
        if self._engine is None:
            settings = replace(self.settings, sqlite_synchronous="OFF")
            self._engine = FilingEngine.open(settings=settings, clock=self._clock)
        return self._engine

    # -- looking -------------------------------------------------------------------------------

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A plain sqlite3 connection (no engine, no pool), closed after the block."""
        conn = sqlite3.connect(self.db, timeout=30)
        conn.row_factory = sqlite3.Row
        try:
            yield conn
        finally:
            conn.close()

    def counts(self) -> dict[str, int]:
        if not self.db.exists():
            return {"due": 0, "fired": 0, "outbox_pending": 0, "delivered": 0}
        with self.connect() as conn:
            try:
                row = conn.execute(
                    "SELECT (SELECT COUNT(*) FROM deadline_record "
                    "        WHERE fired_at IS NULL AND due_at <= :now) AS due, "
                    "(SELECT COUNT(*) FROM deadline_record WHERE fired_at IS NOT NULL) AS fired, "
                    "(SELECT COUNT(*) FROM outbox_record WHERE delivered_at IS NULL) "
                    "AS outbox_pending, "
                    "(SELECT COUNT(*) FROM outbox_record WHERE delivered_at IS NOT NULL) "
                    "AS delivered",
                    {"now": _now_text()},
                ).fetchone()
            except sqlite3.OperationalError as exc:  # before the first migration
                if "no such table" in str(exc):
                    return {"due": 0, "fired": 0, "outbox_pending": 0, "delivered": 0}
                raise
        return {k: int(v) for k, v in dict(row).items()}

    def _startup_estimate(self) -> float:
        seen = [life.ready_after for life in self.lives if life.ready_after is not None]
        return statistics.median(seen[-20:]) if seen else 0.8

    def _wait_started(self, proc: subprocess.Popen[bytes], offset: int) -> float | None:
        """The instant the daemon logged `daemon.started`, or None if it never did."""
        limit = time.perf_counter() + self.cfg.ready_timeout
        with self.log.open("rb") as log:
            log.seek(offset)
            seen = b""
            while time.perf_counter() < limit:
                seen += log.read()
                if b'"daemon.started"' in seen:
                    return time.perf_counter()
                if proc.poll() is not None:
                    return None
                time.sleep(0.002)
        return None

    def _read_log(self, offset: int, life: Life | None) -> None:
        """Deliveries, errors and stray output of one daemon's stderr."""
        with self.log.open("rb") as log:
            log.seek(offset)
            text = log.read().decode("utf-8", "replace")
        who = f"life {life.n}" if life else "daemon once"
        for line in text.splitlines(keepends=True):
            complete = line.endswith("\n")
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                if complete and line.strip():  # a cut last line is the kill's; others are not
                    self.log_errors.append(f"{who}: stray output: {line.strip()[:200]}")
                continue
            event = str(entry.get("event", ""))
            if event == "daemon.started" and life is not None:
                life.started = True
            elif event.startswith("reminder.") and "id" in entry:
                self.deliveries[str(entry["id"])] += 1
            if entry.get("level") in ("error", "critical", "exception") or "exception" in entry:
                self.log_errors.append(f"{who}: {line.strip()[:300]}")

    # -- the checks ----------------------------------------------------------------------------

    def check_no_due_deadline_pending(self) -> list[str]:
        with self.connect() as conn:
            pending = conn.execute(
                "SELECT subject_id, kind, due_at, attempts, last_error FROM deadline_record "
                "WHERE fired_at IS NULL AND due_at <= :now ORDER BY due_at LIMIT 5",
                {"now": _now_text()},
            ).fetchall()
            failed = conn.execute(
                "SELECT COUNT(*) FROM deadline_record WHERE attempts > 0"
            ).fetchone()[0]
            total = conn.execute("SELECT COUNT(*) FROM deadline_record").fetchone()[0]
        problems = [f"still pending: {dict(r)}" for r in pending]
        if failed:
            problems.append(f"{failed} deadline rows failed at least once")
        expected = sum(ROWS_WRITTEN[k] * n for k, n in self.units.items())
        if total != expected:
            problems.append(f"{total} deadline rows, the data wrote {expected}")
        return problems

    def check_each_deadline_applied_once(self) -> list[str]:
        """Every due deadline was applied exactly once: one applied `expire` per K6 filing
        past its validity (now expired) and none for an upcoming one (still effective), one
        `close_window` per deemed filing and one `route_manual` per its admission, one
        `lapse_claim` per claim; and no system event was applied twice to one subject."""
        expected = {
            ("expire", "filing"): 1,
            ("expire", "upcoming"): 0,
            ("close_window", "emergency"): 1,
            ("route_manual", "admission"): 1,
            ("lapse_claim", "claim"): 1,
        }
        problems: list[str] = []
        with self.connect() as conn:
            applied = Counter(
                (r[0], r[1])
                for r in conn.execute(
                    "SELECT event, filing_id FROM audit_record WHERE outcome = 'applied'"
                )
            )
            states = dict(conn.execute("SELECT id, state FROM filing_record").fetchall())
            repeated = conn.execute(
                "SELECT filing_id, event, COUNT(*) AS n FROM audit_record "
                "WHERE actor_role = 'system' AND outcome = 'applied' "
                "GROUP BY filing_id, event HAVING COUNT(*) > 1 LIMIT 5"
            ).fetchall()
        for (event, unit), times in expected.items():
            wrong = sorted(i for i in self.subjects.get(unit, ()) if applied[event, i] != times)
            if wrong:
                problems.append(
                    f"{len(wrong)} {unit} subjects with {event} applied other than {times} "
                    f"times, e.g. {wrong[0]} ({applied[event, wrong[0]]})"
                )
        for unit, state in (("filing", "expired"), ("upcoming", "effective")):
            wrong = sorted(i for i in self.subjects.get(unit, ()) if states.get(i) != state)
            if wrong:
                problems.append(f"{len(wrong)} {unit} filings not {state}, e.g. {wrong[0]}")
        return problems + [f"applied twice: {dict(r)}" for r in repeated]

    def check_outbox_matches_fired_reminders(self) -> list[str]:
        """One outbox row per fired reminder row and no other: compared key by key."""
        kinds = ", ".join(f"'{k}'" for k in sorted(REMINDER_KINDS))
        with self.connect() as conn:
            fired = {
                tuple(r)
                for r in conn.execute(
                    "SELECT subject_id, kind, due_at FROM deadline_record "
                    f"WHERE kind IN ({kinds}) AND outcome = 'fired'"
                )
            }
            rows = [
                tuple(r) for r in conn.execute("SELECT subject_id, kind, due_at FROM outbox_record")
            ]
        problems = []
        if len(rows) != len(fired):
            problems.append(f"{len(rows)} outbox rows for {len(fired)} fired reminders")
        if len(set(rows)) != len(rows):
            problems.append("duplicate outbox keys")
        if missing := fired - set(rows):
            problems.append(f"{len(missing)} fired reminders without an outbox row")
        if extra := set(rows) - fired:
            problems.append(f"{len(extra)} outbox rows without a fired reminder")
        return problems

    def check_every_reminder_delivered(self) -> list[str]:
        """Every outbox row is marked delivered, and each was in fact sent (logged by the
        LogNotifier) at least once; more than once is allowed (at-least-once across kills)."""
        with self.connect() as conn:
            rows = conn.execute("SELECT payload, delivered_at FROM outbox_record").fetchall()
        undelivered = [json.loads(r["payload"])["id"] for r in rows if r["delivered_at"] is None]
        ids = {json.loads(r["payload"])["id"] for r in rows}
        problems = [f"{len(undelivered)} undelivered, e.g. {undelivered[0]}"] if undelivered else []
        if unsent := ids - set(self.deliveries):
            problems.append(f"{len(unsent)} marked delivered but never sent, e.g. {min(unsent)}")
        if unknown := set(self.deliveries) - ids:
            problems.append(f"{len(unknown)} sent without an outbox row, e.g. {min(unknown)}")
        return problems

    def check_sqlite_integrity(self) -> list[str]:
        with self.connect() as conn:
            result = [r[0] for r in conn.execute("PRAGMA integrity_check")]
            foreign = conn.execute("PRAGMA foreign_key_check").fetchall()
        problems = [] if result == ["ok"] else [f"integrity_check: {result[:5]}"]
        return problems + [f"foreign_key_check: {tuple(r)}" for r in foreign[:5]]

    def check_audit_chain_verifies(self) -> list[str]:
        with FilingEngine.open(settings=self.settings, read_only=True) as engine:
            result = engine.verify()
        with self.connect() as conn:
            rows = conn.execute("SELECT COUNT(*) FROM audit_record").fetchone()[0]
        problems = list(result.problems[:5])
        if result.count != rows:
            problems.append(f"the chain holds {result.count} of {rows} audit records")
        return problems

    def check_status_shows_nothing_pending(self) -> list[str]:
        """What `filing daemon status` shows an operator: no backlog, nothing failing."""
        with FilingEngine.open(settings=self.settings, read_only=True) as engine:
            shown = status(engine)
        seen = {
            "due_backlog": shown["due_backlog"],
            "failing_deadlines": shown["failing_deadlines"],
            "outbox_pending": shown["outbox"]["pending"],
            "outbox_failing": shown["outbox"]["failing"],
        }
        return [f"status shows {seen}"] if any(seen.values()) else []

    def check_daemons_ran_cleanly(self) -> list[str]:
        """Each daemon died of its SIGKILL (none exited on its own), `daemon once` succeeded,
        and no daemon logged an error or wrote stray output (a traceback, `database is
        locked`)."""
        return self.process_problems + self.log_errors

    CHECKS = (
        "no_due_deadline_pending",
        "each_deadline_applied_once",
        "outbox_matches_fired_reminders",
        "every_reminder_delivered",
        "sqlite_integrity",
        "audit_chain_verifies",
        "status_shows_nothing_pending",
        "daemons_ran_cleanly",
    )

    def checks(self) -> dict[str, list[str]]:
        return {name: getattr(self, f"check_{name}")() for name in self.CHECKS}

    # -- the summary ---------------------------------------------------------------------------

    def phases(self) -> Counter[str]:
        return Counter(life.phase for life in self.lives)

    def summary(self, checks: dict[str, list[str]] | None = None) -> str:
        phases = self.phases()
        progressed = sum(1 for life in self.lives if life.phase == "sweep" and life.fired)
        ready = [life.ready_after for life in self.lives if life.ready_after is not None]
        with self.connect() as conn:
            outcomes = conn.execute(
                "SELECT COALESCE(outcome, 'pending (not due)'), COUNT(*) FROM deadline_record "
                "GROUP BY outcome ORDER BY outcome"
            ).fetchall()
            daemons = conn.execute("SELECT COUNT(*) FROM daemon_record").fetchone()[0]
        sent = sum(self.deliveries.values())
        final = self.final
        lines = [
            f"kills: {len(self.lives)} (seed {self.cfg.seed}): "
            + ", ".join(f"{phases[p]} {p}" for p in ("startup", "sweep", "deliver", "idle"))
            + f" (mid-sweep after a batch had committed: {progressed})",
            f"data: {dict(self.units)} units; deadline rows: "
            + ", ".join(f"{o} {n}" for o, n in outcomes),
            f"deadline rows applied by the killed daemons: {sum(x.fired for x in self.lives)}; "
            f"by the final run: {final.get('fired', '?')} fired, {final.get('retired', '?')} "
            f"retired, {final.get('failed', '?')} failed",
            f"reminders: {len(self.deliveries)} sent, {sent} sends "
            f"({sent - len(self.deliveries)} repeated after a kill: at-least-once)",
            f"daemons registered: {daemons}; spawn to daemon.started: median "
            f"{statistics.median(ready) if ready else float('nan'):.2f}s",
        ]
        for name, problems in (checks or {}).items():
            lines.append(f"check {name}: {'ok' if not problems else 'FAILED'}")
            lines += [f"    {p}" for p in problems[:10]]
        lines.append(f"elapsed: {self.seconds:.1f}s")
        return "\n".join(lines)


# -- helpers -----------------------------------------------------------------------------------


def write_config(source: Path, target: Path, scheduler: dict[str, Any]) -> None:
    """Copy config.toml with some [scheduler] values replaced (each key must be there)."""
    text = source.read_text(encoding="utf-8")
    head, sep, tail = text.partition("\n[scheduler]\n")
    if not sep:
        raise ValueError(f"{source} has no [scheduler] section")
    section, rest = re.match(r"(.*?)(\n\[.*)", tail, re.S).groups()  # type: ignore[union-attr]
    for key, value in scheduler.items():
        section, found = re.subn(
            rf"^{key}\s*=\s*[^#\n]*?(?=\s*(#|$))", f"{key} = {value!r}", section, flags=re.M
        )
        if found != 1:
            raise ValueError(f"[scheduler] {key} not found in {source}")
    target.write_text(head + sep + section + rest, encoding="utf-8")


def _id_number(n: int, region: str) -> str:
    """A valid resident ID number for soak person `n`, unique over n (not a real person)."""
    born = date(2000, 1, 1) + timedelta(days=n // 1000)
    body = f"{region}{born:%Y%m%d}{n % 1000:03d}"
    return body + ric.calc_check_digit(body + "0")


def _local(day: date, hour: int = 10) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=LOCAL_TZ).astimezone(UTC)


def _now_text() -> str:
    return datetime.now(UTC).strftime(_SQLITE_INSTANT)


def _sleep_until(instant: float) -> None:
    left = instant - time.perf_counter()
    if left > 0:
        time.sleep(left)


def main(argv: list[str] | None = None) -> int:
    defaults = SoakConfig()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=defaults.kills)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--due-rows", type=int, default=defaults.due_rows)
    parser.add_argument("--outbox-cap", type=int, default=defaults.outbox_cap)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--max-delay", type=float, default=defaults.max_delay)
    parser.add_argument("--early-share", type=float, default=defaults.early_share)
    parser.add_argument("--workdir", type=Path, help="keep the database and log here")
    args = parser.parse_args(argv)
    cfg = SoakConfig(
        kills=args.kills, seed=args.seed, due_rows=args.due_rows, outbox_cap=args.outbox_cap,
        batch_size=args.batch_size, max_delay=args.max_delay, early_share=args.early_share,
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="soak-kill-") as tmp:
        soak = Soak(args.workdir or Path(tmp), cfg)
        soak.run(progress=lambda line: print(line, flush=True))
        checks = soak.checks()
        print(soak.summary(checks))
        if args.workdir:
            print(f"database and daemon log kept in {args.workdir}")
    return 1 if any(checks.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
