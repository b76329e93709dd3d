"""Durable transitions per second through the Python API, against the raw-SQL floor.

The floor runs, in the same process and on the same disk, the statements a transition cannot
do without: one transaction of SELECT filing + UPDATE filing + INSERT audit, through sqlite3
directly, in WAL mode at the same `synchronous` setting. The API side runs real transitions
(submit, then approve: guards, version check, expiry deadline row, hash-chained audit record
and one JSON log line each, written to /dev/null).

    python bench/bench_transitions.py [--count 2000] [--synchronous FULL]
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def floor(path: Path, count: int, synchronous: str) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("CREATE TABLE filing (id TEXT PRIMARY KEY, state TEXT, version INTEGER)")
    conn.execute(
        "CREATE TABLE audit (seq INTEGER PRIMARY KEY, filing_id TEXT, event TEXT, hash TEXT)"
    )
    conn.executemany(
        "INSERT INTO filing VALUES (?, 'draft', 1)", [(f"f{i:08d}",) for i in range(count)]
    )
    start = time.perf_counter()
    for i in range(count):
        fid = f"f{i:08d}"
        conn.execute("BEGIN IMMEDIATE")
        _state, version = conn.execute(
            "SELECT state, version FROM filing WHERE id = ?", (fid,)
        ).fetchone()
        conn.execute(
            "UPDATE filing SET state = 'submitted', version = ? WHERE id = ? AND version = ?",
            (version + 1, fid, version),
        )
        conn.execute(
            "INSERT INTO audit (filing_id, event, hash) VALUES (?, 'submit', ?)", (fid, "0" * 64)
        )
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return count / elapsed


def engine_rate(path: Path, count: int, synchronous: str) -> float:
    sys.path.insert(0, str(ROOT))
    from workflow import Actor, Channel, FilingEngine, Role
    from workflow.logs import configure_logging

    configure_logging("json", stream=open(os.devnull, "w"))  # noqa: SIM115 - lives for the run
    os.environ["FILING_SQLITE_SYNCHRONOUS"] = synchronous
    clock = lambda: datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # noqa: E731
    engine = FilingEngine.open(ROOT / "config.toml", database_url=f"sqlite:///{path}", clock=clock)
    person = Actor("bench-person", Role.INSURED, Channel.COUNTER)
    officer = Actor("bench-officer", Role.OFFICER, Channel.COUNTER, organisation="110000")
    ids = []
    for i in range(count):
        filing = engine.create(
            id_number=_id_number(i),
            kind="K6",
            insurance_type="employee",
            insured_region="110000",  # Beijing: national default, reviewed
            treatment_region="440300",
            actor=person,
            documents=["identity", "declaration_form"],
        )
        ids.append(filing.id)
    start = time.perf_counter()
    for fid in ids:
        engine.submit(fid, person)
    for fid in ids:
        engine.approve(fid, officer)
    elapsed = time.perf_counter() - start
    assert engine.verify().ok
    engine.close()
    return 2 * count / elapsed


def _id_number(i: int) -> str:
    from stdnum.cn import ric

    body = f"110105{19600101 + (i % 28) + 100 * ((i // 28) % 12):08d}{i % 1000:03d}"
    return body + ric.calc_check_digit(body + "0")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="filings (transitions: twice this)")
    parser.add_argument("--rounds", type=int, default=3, help="floor/engine pairs (medians)")
    parser.add_argument("--synchronous", default="FULL", choices=["OFF", "NORMAL", "FULL"])
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}"
    )
    print(f"synchronous={args.synchronous}, {2 * args.count} transitions per round")
    floors, engines = [], []
    for n in range(args.rounds):
        with tempfile.TemporaryDirectory(dir=ROOT / "bench") as tmp:
            floors.append(floor(Path(tmp) / "floor.db", 2 * args.count, args.synchronous))
            engines.append(engine_rate(Path(tmp) / "engine.db", args.count, args.synchronous))
        print(f"round {n + 1}: floor {floors[-1]:7.0f}/s  engine {engines[-1]:7.0f}/s")
    raw, api = statistics.median(floors), statistics.median(engines)
    print(f"raw-SQL floor:   {raw:9.0f} transactions/s (median)")
    print(f"engine (API):    {api:9.0f} transitions/s (median)")
    print(f"ratio:           {api / raw:9.2f}  (target >= 0.50)")


if __name__ == "__main__":
    main()
