"""Durable transitions per second through the Python API, against the raw-SQL floor.

The engine side runs real transitions through `FilingEngine` on SQLite: for each filing a
submit and an approve (guards through the state machine, optimistic version check, the expiry
deadline row, the hash-chained audit record and one JSON log line each, written to /dev/null).

The floor, as the benchmark's target defines it: one transaction of SELECT + UPDATE + INSERT
per transition, run directly with sqlite3 in the same process, on the same disk, in WAL mode at
the same `synchronous` setting. The target is engine / floor >= 0.5.

To show where the difference goes, the script also replays the engine's own transactions
(recorded once on a copy of the database, untimed) statement by statement through sqlite3 on
another copy: engine / replay is what the Python above the database costs; replay / floor is
what the engine's schema and statements cost (more pages per commit: indexes the rules need).

    python bench/bench_transitions.py [--count 2000] [--rounds 3] [--synchronous FULL]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from workflow import Actor, Channel, FilingEngine, Role  # noqa: E402
from workflow.logs import configure_logging  # noqa: E402
from workflow.store import Store, Tx  # noqa: E402

PERSON = Actor("bench-person", Role.INSURED, Channel.COUNTER)
OFFICER = Actor("bench-officer", Role.OFFICER, Channel.COUNTER, organisation="110000")
Transaction = list[tuple[str, Any]]


def _clock() -> datetime:
    return datetime(2026, 3, 2, 2, 0, tzinfo=UTC)


def _id_number(i: int) -> str:
    from stdnum.cn import ric

    body = f"110105{19600101 + (i % 28) + 100 * ((i // 28) % 12):08d}{i % 1000:03d}"
    return body + ric.calc_check_digit(body + "0")


def _open(path: Path) -> FilingEngine:
    return FilingEngine.open(ROOT / "config.toml", database_url=f"sqlite:///{path}", clock=_clock)


def prepare(path: Path, count: int) -> list[str]:
    """A database with `count` complete drafts (Beijing: national policy, reviewed)."""
    engine = _open(path)
    ids = [
        engine.create(
            id_number=_id_number(i), kind="K6", insurance_type="employee",
            insured_region="110000", treatment_region="440300", actor=PERSON,
            documents=["identity", "declaration_form"],
        ).id
        for i in range(count)
    ]  # fmt: skip
    engine.close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return ids


def run_engine(path: Path, ids: list[str]) -> float:
    engine = _open(path)
    start = time.perf_counter()
    for fid in ids:
        engine.submit(fid, PERSON)
    for fid in ids:
        engine.approve(fid, OFFICER)
    elapsed = time.perf_counter() - start
    assert engine.verify().ok
    assert all(f.state.value == "effective" for f in map(engine.get, ids[:10]))
    engine.close()
    return 2 * len(ids) / elapsed


def record(path: Path, ids: list[str]) -> list[Transaction]:
    """The engine's transactions, statement by statement with their bound parameters."""
    log: list[Transaction] = []
    original_write, original_execute = Store.write, Tx._execute

    @contextmanager
    def write(self: Store) -> Iterator[Tx]:
        log.append([])
        with original_write(self) as tx:
            yield tx

    def execute(self: Tx, sql: str, params: Any) -> None:
        if log:
            log[-1].append((sql, params))
        original_execute(self, sql, params)

    Store.write, Tx._execute = write, execute  # type: ignore[method-assign]
    try:
        run_engine(path, ids)
    finally:
        Store.write, Tx._execute = original_write, original_execute  # type: ignore[method-assign]
    # Only the transitions: opening the engine also writes (pinning policies).
    return [t for t in log if any("INSERT INTO audit_record" in sql for sql, _ in t)]


def replay(path: Path, transactions: list[Transaction], synchronous: str) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    start = time.perf_counter()
    for statements in transactions:
        conn.execute("BEGIN IMMEDIATE")
        for sql, params in statements:
            conn.execute(sql, params).fetchall()
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return len(transactions) / elapsed


def bare_floor(path: Path, count: int, synchronous: str) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("CREATE TABLE filing (id TEXT PRIMARY KEY, state TEXT, version INTEGER)")
    conn.execute("CREATE TABLE audit (seq INTEGER PRIMARY KEY, filing_id TEXT, hash TEXT)")
    conn.executemany(
        "INSERT INTO filing VALUES (?, 'draft', 1)", [(f"f{i:08d}",) for i in range(count)]
    )
    start = time.perf_counter()
    for i in range(count):
        fid = f"f{i:08d}"
        conn.execute("BEGIN IMMEDIATE")
        (version,) = conn.execute("SELECT version FROM filing WHERE id = ?", (fid,)).fetchone()
        conn.execute(
            "UPDATE filing SET state = 'submitted', version = ? WHERE id = ? AND version = ?",
            (version + 1, fid, version),
        )
        conn.execute("INSERT INTO audit (filing_id, hash) VALUES (?, ?)", (fid, "0" * 64))
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="filings (transitions: twice this)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (medians are reported)")
    parser.add_argument("--synchronous", default="FULL", choices=["OFF", "NORMAL", "FULL"])
    args = parser.parse_args()
    os.environ["FILING_SQLITE_SYNCHRONOUS"] = args.synchronous
    os.environ.setdefault("FILING_PERSON_KEY", "bench")
    configure_logging("json", stream=open(os.devnull, "w"))  # noqa: SIM115 - lives for the run
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}"
    )
    print(f"synchronous={args.synchronous}, {2 * args.count} transitions per round")
    floors, engines, bares = [], [], []
    for n in range(args.rounds):
        with tempfile.TemporaryDirectory(dir=ROOT / "bench") as tmp:
            base = Path(tmp) / "base.db"
            ids = prepare(base, args.count)
            for name in ("record.db", "floor.db", "engine.db"):
                shutil.copy(base, Path(tmp) / name)
            transactions = record(Path(tmp) / "record.db", ids)
            floors.append(replay(Path(tmp) / "floor.db", transactions, args.synchronous))
            engines.append(run_engine(Path(tmp) / "engine.db", ids))
            bares.append(bare_floor(Path(tmp) / "bare.db", 2 * args.count, args.synchronous))
        print(
            f"round {n + 1}: floor {bares[-1]:6.0f}/s  engine {engines[-1]:6.0f}/s  "
            f"replay {floors[-1]:6.0f}/s"
        )
    replayed, api, floor = (statistics.median(x) for x in (floors, engines, bares))
    verdict = "met" if api / floor >= 0.5 else "NOT met"
    print(f"floor (SELECT+UPDATE+INSERT):  {floor:7.0f} transactions/s (median)")
    print(f"engine, Python API:            {api:7.0f} transitions/s (median)")
    print(f"ratio engine / floor:          {api / floor:7.2f}   (target >= 0.50: {verdict})")
    print(
        f"engine's own SQL replayed:     {replayed:7.0f} transactions/s "
        f"(engine / replay {api / replayed:.2f}, replay / floor {replayed / floor:.2f})"
    )


if __name__ == "__main__":
    main()
