"""Deadline sweeps: speed against the raw-SQL floor, rows not yet due, memory, APScheduler.

Expiries per second against the raw-SQL floor, a sweep's cost among many rows not yet due, the
daemon's resident memory, and writing deadline rows against registering APScheduler jobs.

Databases are seeded quickly: one filing goes through the engine (create, submit, approve) for
the exact shape of its filing_record and deadline_record rows and to pin the policies; the
others are copies of those rows (distinct ids and person keys) inserted with executemany. The
copies have no audit history: the sweep appends to the chain's head, and the chain verifies. A
due filing's two reminders are stored as fired, as a running daemon would have left them a
month and a week earlier, so what comes due is the expiry alone (the sweep's set-wise path).

1. Throughput. --count effective filings whose validity is over (ending over 30 days, each
   day's in a block of neighbouring ids, as time-ordered ids place them). `Daemon.sweep()`
   expires them, 500 per transaction: filings, deadline rows, hash-chained audit records, one
   JSON log line each (to /dev/null). The floor, on a copy of the same file (WAL, same
   `synchronous`): per batch of 500, BEGIN IMMEDIATE, the sweep's SELECT of due rows,
   executemany of the same UPDATE filing_record, UPDATE deadline_record and INSERT
   audit_record (the audit values, hashes included, precomputed: the engine's own records from
   an untimed run on a third copy), COMMIT. The floor leaves out the engine's two other reads
   per batch (the filings' rows, the chain's head). Medians of --rounds, engine and floor
   taking turns to go first. Target engine / floor >= 0.3.
2. Rows not yet due. The sweep (`Daemon.sweep()`) of --due due filings among --small and among
   --big (README: 1,000,000) stored filings; the others are effective, their expiry and
   reminders pending months ahead. Each of --rounds rounds moves the clock a day and sweeps its
   own --due filings in each database in turn; the medians are compared. Two layouts, each in
   its own pair of databases: a day's due filings in one block of neighbouring ids (as
   time-ordered ids place filings made, and so ending, on the same day), and spread evenly over
   the table (every due filing on a page of its own: the costly case). Target big / small
   <= 1.3.
3. Memory. `python -m jobs.cli daemon run` as a subprocess, with a copy of config.toml pointing
   at a database of --small, then of --big, stored filings of which --daemon-due are overdue,
   1 s sweep, delivery and heartbeat intervals, and the system clock: it catches up, runs
   --daemon-seconds of intervals, then VmHWM (peak resident set) and VmRSS are read from
   /proc/<pid>/status and it is stopped with SIGTERM. Its log gives the time the C6 recount at
   start took. Target: peak <= 150 MB with --big filings.
4. Deadline rows against APScheduler 3 jobs. --filings filings, 3 deadlines each (the expiry
   and the reminders 30 and 7 days before). APScheduler: `add_job` of one `date` job per
   deadline (the engine's own deadlines: same count, same instants) to a started, paused
   BackgroundScheduler with a SQLAlchemyJobStore on its own SQLite file (WAL, same
   `synchronous`); each add_job is one INSERT and one commit. Against it, the engine two ways:
   (a) whole filings: create + submit + approve of the filings through the engine, three
       transactions each (the approve writes the three deadline rows), against adding their
       3 jobs each. This charges everything a filing costs to its deadlines: not a like for
       like comparison, shown for scale.
   (b) per deadline, the engine's marginal cost: what writing the rows adds to the approve
       transaction they ride in, timed inside the engine (`_write_validity_deadline`: its
       Python and its three INSERTs, the commit excluded), against one add_job. For the
       commit's share, also approve with the rows minus approve without them (a second copy
       of the database where the rows are not written; approves paired and interleaved, the
       median of the pairs' differences; noisy at this size). The issue's target (rows at
       least 10x faster) is judged on (b).

    python bench/bench_sweep.py [--count 10000] [--big 100000] [--filings 500] [--only 1,2,3,4]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import json
import os
import platform
import pstats
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_transitions import OFFICER, PERSON, _clock, _id_number  # noqa: E402

from jobs.daemon import Daemon  # noqa: E402
from states.periods import end_of_local_day, local_date, start_of_local_day  # noqa: E402
from workflow import FilingEngine, audit  # noqa: E402
from workflow.logs import configure_logging  # noqa: E402
from workflow.service import FilingService  # noqa: E402
from workflow.store import _bind_sqlite  # noqa: E402
from workflow.sweep import (  # noqa: E402
    _DUE_COLUMNS,
    _DUE_WHERE,
    _EXPIRE_FILING,
    _SETTLE_EXPIRED,
)

# The sweep's own claim of due rows, as its batch read runs it.
_DUE = f"SELECT {_DUE_COLUMNS} FROM deadline_record {_DUE_WHERE}"

BATCH = 500  # config.toml's [scheduler] batch_size
REMINDER_DAYS = (30, 7)  # config.toml's expiry_reminder_days


class Clock:
    """The engine's clock, moved by the benchmark."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _open(path: Path, clock: Callable[[], datetime], **kw: Any) -> FilingEngine:
    return FilingEngine.open(
        ROOT / "config.toml", database_url=f"sqlite:///{path}", clock=clock, **kw
    )


def _copy(source: Path, target: Path) -> Path:
    for suffix in ("-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    shutil.copy(source, target)
    return target


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


@cache
def _stored(instant: datetime) -> str:
    """An instant as the store writes it."""
    return str(_bind_sqlite(instant))


@cache
def _day_end(day: date) -> str:
    return _stored(end_of_local_day(day))


@cache
def _day_start(day: date) -> str:
    return _stored(start_of_local_day(day))


def _create(engine: FilingEngine, i: int) -> str:
    """A draft of person i (Beijing, K6: temporary, six months; reviewed), its id."""
    return engine.create(
        id_number=_id_number(i), kind="K6", insurance_type="employee", insured_region="110000",
        treatment_region="440300", actor=PERSON, documents=["identity", "declaration_form"],
    ).id  # fmt: skip


def seed(path: Path, created: datetime, total: int, due: Mapping[int, date]) -> int:
    """A database of `total` effective filings: one made through the engine (effective at
    `created`, valid six months), the others copies of its rows in slots 0 to total - 2 (in id
    order): valid until `due[slot]` where given, else until 60 to 183 days after `created` (so
    their reminders are 30 days away at least). Returns the version every filing is at."""
    engine = _open(path, Clock(created))
    made = _create(engine, 0)
    engine.submit(made, PERSON)
    version = engine.approve(made, OFFICER).version
    engine.close()
    conn = sqlite3.connect(path, isolation_level=None)
    # A bulk load: no journal to speak of and no fsync; the file is in WAL mode again after.
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-262144")
    cur = conn.execute("SELECT * FROM filing_record WHERE id = ?", (made,))
    columns = [d[0] for d in cur.description]
    template = list(cur.fetchone())
    cur = conn.execute("SELECT * FROM deadline_record WHERE subject_id = ?", (made,))
    dl_columns = [d[0] for d in cur.description]
    dl_rows = cur.fetchall()
    assert len(dl_rows) == 1 + len(REMINDER_DAYS), "the engine's deadline rows changed"
    f = {name: n for n, name in enumerate(columns)}
    d = {name: n for n, name in enumerate(dl_columns)}
    dl_template = list(dl_rows[0])

    assert all(0 <= slot < total - 1 for slot in due)
    start = created.date()
    prefix = f"{int((created - timedelta(days=400)).timestamp() * 1000):012x}"
    scope = template[f["exclusive_key"]].split(":", 1)[1]

    def rows(lo: int, hi: int) -> tuple[list[list[Any]], list[list[Any]]]:
        filings, deadlines = [], []
        for i in range(lo, hi):
            until = due.get(i)
            overdue = until is not None
            if until is None:
                until = start + timedelta(days=60 + i % 124)
            effective = until - timedelta(days=184)
            fid = f"{prefix}{i:012x}"  # time-ordered like new_id(), distinct
            key = hashlib.sha256(b"bench-person-%d" % i).hexdigest()
            row = template.copy()
            row[f["id"]] = fid
            row[f["person_key"]] = key
            row[f["exclusive_key"]] = f"{key}:{scope}"
            row[f["start_date"]] = row[f["effective_on"]] = effective.isoformat()
            row[f["valid_until"]] = until.isoformat()
            row[f["created_at"]] = row[f["updated_at"]] = _day_start(effective)
            filings.append(row)
            expire = dl_template.copy()
            expire[d["subject_id"]] = fid
            expire[d["kind"]] = "expire"
            expire[d["due_at"]] = _day_end(until)
            expire[d["created_at"]] = _day_start(effective)
            deadlines.append(expire)
            for lead in REMINDER_DAYS:
                reminder = expire.copy()
                reminder[d["kind"]] = "expiry_reminder"
                reminder[d["due_at"]] = at = _day_start(until - timedelta(days=lead))
                if overdue:  # sent a month and a week before
                    reminder[d["fired_at"]], reminder[d["outcome"]] = at, "fired"
                deadlines.append(reminder)
        return filings, deadlines

    insert_filing = (
        f"INSERT INTO filing_record ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    )
    insert_deadline = (
        f"INSERT INTO deadline_record ({', '.join(dl_columns)}) "
        f"VALUES ({', '.join('?' * len(dl_columns))})"
    )
    gc.disable()  # millions of lists, none of them cyclic
    try:
        conn.execute("BEGIN")
        for lo in range(0, total - 1, 50_000):
            filings, deadlines = rows(lo, min(lo + 50_000, total - 1))
            conn.executemany(insert_filing, filings)
            conn.executemany(insert_deadline, deadlines)
        conn.execute("COMMIT")
    finally:
        gc.enable()
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    return version


def _even(total: int, days: Sequence[date]) -> dict[int, date]:
    """Filings valid until each of `days`, spread evenly over the `total - 1` slots: one every
    `total / len(days)` ids."""
    stride = (total - 1) / len(days)
    return {int(k * stride): day for k, day in enumerate(days)}


def _blocks(total: int, days: Sequence[date], size: int) -> dict[int, date]:
    """`size` filings valid until each of `days`, each day's in one block of neighbouring ids
    (time-ordered ids put together the filings made, and so ending, on the same day), the
    blocks spaced evenly over the table."""
    gap = (total - 1) // len(days)
    assert gap >= size, "too few filings for the blocks"
    start = (gap - size) // 2
    return {r * gap + start + j: day for r, day in enumerate(days) for j in range(size)}


# -- 1. throughput against the floor ---------------------------------------------------------


def sweep_engine(path: Path, now: datetime, profile: bool = False) -> tuple[int, float]:
    engine = _open(path, Clock(now))
    daemon = Daemon(engine)
    profiler = _profiler() if profile else None
    start = time.perf_counter()
    report = daemon.sweep()
    elapsed = time.perf_counter() - start
    if profiler is not None:
        profiler()
    assert report.failed == report.retired == 0
    assert engine.verify().ok
    engine.close()
    return report.fired, elapsed


def _profiler() -> Callable[[], None]:
    """Start a profiler (pyinstrument if installed, else cProfile); the call stops and prints."""
    try:
        from pyinstrument import Profiler
    except ImportError:
        profile = cProfile.Profile()
        profile.enable()

        def stop() -> None:
            profile.disable()
            pstats.Stats(profile).sort_stats("tottime").print_stats(30)

        return stop
    profiler = Profiler(interval=0.0002)
    profiler.start()

    def done() -> None:
        profiler.stop()
        print(profiler.output_text(unicode=True, color=False))

    return done


def appended(path: Path, after: int) -> list[list[dict[str, Any]]]:
    """The audit records appended after `after`, as stored, in batches."""
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    rows = [
        dict(r)
        for r in conn.execute("SELECT * FROM audit_record WHERE seq > ? ORDER BY seq", (after,))
    ]
    conn.close()
    return [rows[n : n + BATCH] for n in range(0, len(rows), BATCH)]


def sweep_floor(
    path: Path, now: datetime, batches: list[list[dict[str, Any]]], version: int, sync: str
) -> tuple[int, float]:
    """The same statements, batch for batch, straight through sqlite3, values precomputed."""
    at = _stored(now)
    expected = {"version": version + 1, "expected_version": version, "at": at}
    work = [
        (
            [{**expected, "id": r["filing_id"]} for r in records],
            [{"id": r["filing_id"], "at": at} for r in records],
            records,
        )
        for records in batches
    ]
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={sync}")
    done = 0
    start = time.perf_counter()
    for n in range(len(work) + 1):
        conn.execute("BEGIN IMMEDIATE")
        rows = conn.execute(_DUE, {"now": at, "limit": BATCH}).fetchall()
        if rows:
            filings, deadlines, records = work[n]
            conn.executemany(_EXPIRE_FILING, filings)
            conn.executemany(_SETTLE_EXPIRED, deadlines)
            conn.executemany(audit._INSERT, records)
            done += len(rows)
        conn.execute("COMMIT")
        if len(rows) < BATCH:
            break
    elapsed = time.perf_counter() - start
    conn.close()
    return done, elapsed


def throughput(tmp: Path, count: int, rounds: int, sync: str, profile: bool) -> None:
    now = _clock()
    base = tmp / "sweep.db"
    t = time.perf_counter()
    # Validity ends over the 30 days before today, each day's in a block of neighbouring ids.
    days = [local_date(now) - timedelta(days=30 - k * 30 // count) for k in range(count)]
    version = seed(base, now, count + 1, _even(count + 1, days))
    print(f"1. expiry sweep of {count} due filings (seeded in {time.perf_counter() - t:.1f} s)")
    with _open(base, Clock(now), read_only=True) as engine:
        head = engine.checkpoint().count
    fired, _ = sweep_engine(_copy(base, tmp / "record.db"), now)
    assert fired == count, (fired, count)
    batches = appended(tmp / "record.db", head)
    engines: list[float] = []
    floors: list[float] = []
    for n in range(rounds):
        for side in ("engine", "floor") if n % 2 == 0 else ("floor", "engine"):
            path = _copy(base, tmp / f"{side}.db")
            if side == "engine":
                fired, seconds = sweep_engine(path, now)
                engines.append(fired / seconds)
            else:
                fired, seconds = sweep_floor(path, now, batches, version, sync)
                floors.append(fired / seconds)
                with _open(path, Clock(now), read_only=True) as check:
                    assert check.verify().ok  # the floor wrote a whole chain
                    with check.store.read() as tx:
                        expired = "SELECT count(*) FROM filing_record WHERE state = 'expired'"
                        assert tx.scalar(expired) == count
            assert fired == count, (side, fired, count)
        print(f"   round {n + 1}: engine {engines[-1]:7.0f}/s  floor {floors[-1]:7.0f}/s")
    engine, floor = statistics.median(engines), statistics.median(floors)
    verdict = "met" if engine / floor >= 0.3 else "NOT met"
    print(f"   engine, Daemon.sweep():        {engine:7.0f} expiries/s (median)")
    print(f"   floor, the same statements:    {floor:7.0f} expiries/s (median)")
    print(f"   ratio engine / floor:          {engine / floor:7.2f}   (target >= 0.30: {verdict})")
    if profile:
        sweep_engine(_copy(base, tmp / "profile.db"), now, profile=True)


# -- 2. rows not yet due ---------------------------------------------------------------------


def not_due(tmp: Path, small: int, big: int, due: int, rounds: int) -> None:
    now = _clock()
    days = [local_date(now) + timedelta(days=r) for r in range(rounds)]
    layouts = {
        "in blocks of neighbouring ids (one day's expiries, as time-ordered ids place them)": (
            lambda total: _blocks(total, days, due)
        ),
        "spread evenly over the table (a page each: the costly case)": (
            lambda total: _even(total, [day for _ in range(due) for day in days])
        ),
    }
    print(f"2. sweeps of {due} due filings among many not due ({rounds} rounds, medians)")
    for layout, place in layouts.items():
        print(f"   due filings {layout}:")
        sizes = (small, big)
        clock = Clock(now)
        daemons = {}
        for total in sizes:
            path = tmp / f"stored-{total}.db"
            t = time.perf_counter()
            seed(path, now, total, place(total))
            seeded = time.perf_counter() - t
            daemons[total] = Daemon(_open(path, clock))
            print(f"   {total:>11,} filings seeded in {seeded:5.1f} s")
        times: dict[int, list[float]] = {total: [] for total in sizes}
        for r, day in enumerate(days):
            clock.now = end_of_local_day(day) + timedelta(minutes=1)
            for total in sizes if r % 2 == 0 else sizes[::-1]:
                report = daemons[total].sweep()
                assert report.fired == due and report.failed == report.retired == 0, report
                times[total].append(report.seconds)
        medians = {}
        for total in sizes:
            engine = daemons[total].engine
            assert engine.verify().ok
            engine.close()
            _remove(tmp / f"stored-{total}.db")
            medians[total] = statistics.median(times[total])
            each = ", ".join(f"{t * 1000:.0f}" for t in times[total])
            print(
                f"   {total:>11,} filings: sweep of {due} in {medians[total] * 1000:6.1f} ms "
                f"(rounds: {each} ms)"
            )
        ratio = medians[big] / medians[small]
        verdict = "met" if ratio <= 1.3 else "NOT met"
        print(f"     ratio big / small:         {ratio:7.2f}   (target <= 1.30: {verdict})")


# -- 3. the daemon's memory ------------------------------------------------------------------


def _memory(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of a process, in MB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0]) / 1024
    return values


def daemon_memory(tmp: Path, total: int, due: int, seconds: float, sync: str) -> dict[str, Any]:
    now = datetime.now(UTC)  # the daemon runs on the system clock
    path = tmp / f"daemon-{total}.db"
    t = time.perf_counter()
    overdue = [local_date(now) - timedelta(days=1 + k % 5) for k in range(due)]  # up to 5 days
    seed(path, now, total, _even(total, overdue))
    seeded = time.perf_counter() - t
    config = (ROOT / "config.toml").read_text(encoding="utf-8")
    config = re.sub(r'(?m)^url = "[^"]*"', f'url = "sqlite:///{path.name}"', config)  # beside it
    config = re.sub(r'(?m)^sqlite_synchronous = "[^"]*"', f'sqlite_synchronous = "{sync}"', config)
    config = re.sub(r'(?m)^format = "[^"]*"', 'format = "json"', config)
    for key in ("sweep_seconds", "deliver_seconds", "heartbeat_seconds"):
        config = re.sub(rf"(?m)^{key} = \S+", f"{key} = 1", config)
    (tmp / "config.toml").write_text(config, encoding="utf-8")
    log = tmp / "daemon.log"
    command = [sys.executable, "-m", "jobs.cli", "daemon", "run", "--config", "config.toml"]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=tmp, stdout=subprocess.DEVNULL, stderr=out,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        start = time.perf_counter()
        caught_up: dict[str, Any] | None = None
        try:
            while caught_up is None:
                if process.poll() is not None:
                    raise RuntimeError(f"the daemon exited: {log.read_text()[-2000:]}")
                time.sleep(0.05)
                for line in log.read_text(encoding="utf-8").splitlines():
                    if '"daemon.caught_up"' in line:
                        caught_up = json.loads(line)
            catch_up = time.perf_counter() - start
            time.sleep(seconds)
            memory = _memory(process.pid)
        finally:
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=60)
    text = log.read_text(encoding="utf-8")
    assert code == 0 and '"daemon.stopped"' in text, text[-2000:]
    events = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    at = {e["event"]: datetime.fromisoformat(e["timestamp"]) for e in reversed(events)}
    sweep = next(e for e in events if e["event"] == "sweep.done")  # the catch-up's
    conn = sqlite3.connect(path)
    started, swept, fired = conn.execute(
        "SELECT started_at, last_sweep_at, fired_total FROM daemon_record"
    ).fetchone()
    conn.close()
    _remove(path)
    last = (datetime.fromisoformat(swept) - datetime.fromisoformat(started)).total_seconds()
    return {
        "seeded": seeded, "fired": fired, "caught_up": caught_up["fired"], "catch_up": catch_up,
        "sweep": sweep["ms"] / 1000, "last_sweep": last, **memory,
        # From `daemon.started` to the end of the first sweep, less the sweep: the recount.
        "recount": (at["sweep.done"] - at["daemon.started"]).total_seconds() - sweep["ms"] / 1000,
    }  # fmt: skip


def memory(tmp: Path, small: int, big: int, due: int, seconds: float, sync: str) -> None:
    print(f"3. daemon resident memory ({due} overdue at start, then {seconds:g} s of 1 s sweeps)")
    peaks = {}
    for total in (small, big):
        m = daemon_memory(tmp, total, due, seconds, sync)
        assert m["fired"] == m["caught_up"] == due, m
        peaks[total] = m["VmHWM"]
        print(
            f"   {total:>11,} filings (seeded in {m['seeded']:4.1f} s): "
            f"peak RSS (VmHWM) {m['VmHWM']:5.1f} MB, RSS at the end {m['VmRSS']:5.1f} MB"
        )
        print(
            f"   {'':>11}  caught up {m['catch_up']:4.1f} s after the process started "
            f"(C6 recount {m['recount']:4.1f} s, sweep {m['sweep']:4.1f} s); "
            f"last sweep +{m['last_sweep']:.0f} s"
        )
    verdict = "met" if peaks[big] <= 150 else "NOT met"
    print(f"   peak RSS with {big:,} filings: {peaks[big]:5.1f} MB   (target <= 150 MB: {verdict})")


# -- 4. deadline rows against APScheduler jobs -----------------------------------------------


@contextmanager
def _timed(spent: list[float]) -> Iterator[None]:
    """Add the time spent writing validity deadline rows to spent[0]."""
    original = FilingService._write_validity_deadline

    def timed(*args: Any) -> None:
        start = time.perf_counter()
        original(*args)
        spent[0] += time.perf_counter() - start

    FilingService._write_validity_deadline = timed  # type: ignore[method-assign]
    try:
        yield
    finally:
        FilingService._write_validity_deadline = original  # type: ignore[method-assign]


def create_filings(path: Path, now: datetime, count: int) -> tuple[float, float]:
    """Seconds for create + submit + approve of `count` filings, and seconds of those spent
    writing their deadline rows inside the approves."""
    engine = _open(path, Clock(now))
    spent = [0.0]
    with _timed(spent):
        start = time.perf_counter()
        for i in range(count):
            fid = _create(engine, i)
            engine.submit(fid, PERSON)
            engine.approve(fid, OFFICER)
        elapsed = time.perf_counter() - start
    engine.close()
    return elapsed, spent[0]


def approve_with_and_without(tmp: Path, now: datetime, count: int) -> float:
    """The median, over `count` pairs of approves, of (approve writing its deadline rows) minus
    (approve on a copy of the database where `_write_validity_deadline` writes nothing)."""
    with_rows, without = tmp / "with.db", tmp / "without.db"
    engine = _open(with_rows, Clock(now))
    ids = [engine.submit(_create(engine, i), PERSON).id for i in range(count)]
    engine.close()
    _copy(with_rows, without)
    engines = [_open(with_rows, Clock(now)), _open(without, Clock(now))]
    original = FilingService._write_validity_deadline
    writes = [True]

    def switched(self: FilingService, *args: Any) -> None:
        if writes[0]:
            original(self, *args)

    pairs = []
    FilingService._write_validity_deadline = switched  # type: ignore[method-assign]
    try:
        for n, fid in enumerate(ids):
            spent = [0.0, 0.0]
            for side in (0, 1) if n % 2 == 0 else (1, 0):
                writes[0] = side == 0
                start = time.perf_counter()
                engines[side].approve(fid, OFFICER)
                spent[side] = time.perf_counter() - start
            pairs.append(spent[0] - spent[1])
    finally:
        FilingService._write_validity_deadline = original  # type: ignore[method-assign]
    for engine, rows in zip(engines, (3 * count, 0), strict=True):
        with engine.store.read() as tx:
            assert tx.scalar("SELECT count(*) FROM deadline_record") == rows
        engine.close()
    return statistics.median(pairs)


def _fire_deadline(subject_id: str, kind: str) -> None:
    """What a job per deadline would run (never, here: the scheduler stays paused)."""


def add_jobs(path: Path, deadlines: list[tuple[str, str, datetime]], sync: str) -> float:
    """Seconds to add one APScheduler `date` job per deadline to a SQLAlchemyJobStore."""
    import sqlalchemy as sa
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    engine = sa.create_engine(f"sqlite:///{path}")

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute("PRAGMA journal_mode=WAL")
        dbapi_conn.execute(f"PRAGMA synchronous={sync}")

    scheduler = BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=engine)}, timezone="UTC"
    )
    scheduler.start(paused=True)
    start = time.perf_counter()
    for subject_id, kind, due_at in deadlines:
        scheduler.add_job(
            _fire_deadline, "date", run_date=due_at, args=(subject_id, kind),
            id=f"{subject_id}:{kind}:{due_at.isoformat()}",
        )  # fmt: skip
    elapsed = time.perf_counter() - start
    stored = len(scheduler.get_jobs())
    scheduler.shutdown(wait=True)
    engine.dispose()
    assert stored == len(deadlines), (stored, len(deadlines))
    return elapsed


def against_apscheduler(tmp: Path, filings: int, sync: str) -> None:
    # The system clock's today: APScheduler's run dates must lie ahead of its own clock.
    now = datetime.now(UTC)
    print(f"4. deadline rows vs APScheduler 3 jobs ({filings} filings, 3 deadlines each)")
    whole, inside = create_filings(tmp / "filings.db", now, filings)
    with (
        _open(tmp / "filings.db", Clock(now), read_only=True) as engine,
        engine.store.read() as tx,
    ):
        rows = tx.all("SELECT subject_id, kind, due_at FROM deadline_record")
    deadlines = [(r["subject_id"], r["kind"], r["due_at"]) for r in rows]
    assert len(deadlines) == 3 * filings, len(deadlines)
    jobs = add_jobs(tmp / "apscheduler.db", deadlines, sync)
    paired = approve_with_and_without(tmp, now, filings)
    n = len(deadlines)
    row, job, paired_row = inside / n * 1e6, jobs / n * 1e6, paired / 3 * 1e6
    print(
        f"   (a) whole filings: engine create+submit+approve {whole:6.2f} s "
        f"({whole / filings * 1e3:.2f} ms per filing)"
    )
    print(
        f"                      APScheduler add_job x {n:<6}  {jobs:6.2f} s "
        f"({jobs / filings * 1e3:.2f} ms per filing's 3 jobs)"
    )
    print(
        f"                      ratio jobs / engine         {jobs / whole:7.2f}x "
        "(above 1: the engine is faster)"
    )
    print(
        f"   (b) per deadline:  engine row, inside approve  {row:7.1f} µs "
        f"(approve with rows - without: {paired_row:.1f} µs, median of pairs)"
    )
    print(f"                      APScheduler add_job         {job:7.1f} µs")
    verdict = "met" if job / row >= 10 else "NOT met"
    print(
        f"                      ratio job / row             {job / row:7.0f}x "
        f"(target >= 10x: {verdict}; with - without: "
        f"{f'{job / paired_row:.0f}x' if paired_row > 0 else 'no difference measured'})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000, help="1: due filings swept")
    parser.add_argument("--rounds", type=int, default=5, help="1, 2: rounds (medians)")
    parser.add_argument("--due", type=int, default=1000, help="2: due filings per round")
    parser.add_argument("--small", type=int, default=10_000, help="2, 3: stored filings")
    parser.add_argument("--big", type=int, default=100_000, help="2, 3: stored (README: 1e6)")
    parser.add_argument("--daemon-due", type=int, default=5000, help="3: overdue at start")
    parser.add_argument("--daemon-seconds", type=float, default=3.0, help="3: after catching up")
    parser.add_argument("--filings", type=int, default=500, help="4: filings created")
    parser.add_argument("--only", default="1,2,3,4", help="which measurements, e.g. 1,4")
    parser.add_argument("--profile", action="store_true", help="1: profile one more sweep")
    parser.add_argument("--synchronous", default="FULL", choices=["OFF", "NORMAL", "FULL"])
    args = parser.parse_args()
    only = {int(n) for n in args.only.split(",")}
    assert args.rounds * args.due < args.small, "--small must hold --rounds x --due filings"
    assert args.rounds < 30, "the rounds' clock must stay short of the first pending reminder"
    assert args.filings <= 42_000, "_id_number repeats after 42,000 people"
    os.environ["FILING_SQLITE_SYNCHRONOUS"] = args.synchronous
    os.environ.setdefault("FILING_PERSON_KEY", "bench")
    configure_logging("json", stream=open(os.devnull, "w"))  # noqa: SIM115 - lives for the run
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}; "
        f"synchronous={args.synchronous}, batch {BATCH}"
    )
    with tempfile.TemporaryDirectory(dir=ROOT / "bench") as name:
        tmp = Path(name)
        if 1 in only:
            throughput(tmp, args.count, args.rounds, args.synchronous, args.profile)
        if 2 in only:
            not_due(tmp, args.small, args.big, args.due, args.rounds)
        if 3 in only:
            seconds = args.daemon_seconds
            memory(tmp, args.small, args.big, args.daemon_due, seconds, args.synchronous)
        if 4 in only:
            against_apscheduler(tmp, args.filings, args.synchronous)


if __name__ == "__main__":
    main()
