"""Shared fixtures: an injected clock, engines on SQLite and PostgreSQL, and small builders.

PostgreSQL tests use FILING_TEST_PG_URL's server (default: the local one), in a database this
session creates with a unique name, each test in a schema of its own. Without a server they
skip, saying why; with FILING_REQUIRE_POSTGRES=1 (CI) a missing server fails them instead.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import structlog
from stdnum.cn import ric

from states.filing import Filing
from states.periods import LOCAL_TZ
from workflow import Actor, Channel, FilingEngine, Role
from workflow.clock import ManualClock
from workflow.config import Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]
PG_URL = os.environ.get("FILING_TEST_PG_URL", "postgresql+psycopg://root@127.0.0.1:5432/test")
REQUIRE_PG = os.environ.get("FILING_REQUIRE_POSTGRES") == "1"


def _schema_seed(text: str) -> int:
    """The seed of the Schemathesis tests (tests/test_http_schema.py), from FILING_SCHEMA_SEED:
    unset, the fixed seed (the same examples every run, as CI's first run has them); a number,
    that run again; "random", a new one. The report header prints it, so any run can be
    replayed."""
    if not text:
        return 20260302
    if text == "random":
        return random.SystemRandom().randrange(2**32)
    if not text.isdigit():
        raise pytest.UsageError('FILING_SCHEMA_SEED: a whole number, or "random"')
    return int(text)


SCHEMA_SEED = _schema_seed(os.environ.get("FILING_SCHEMA_SEED", ""))


def pytest_report_header() -> str:
    return f"schema tests seed: {SCHEMA_SEED} (replay: FILING_SCHEMA_SEED={SCHEMA_SEED})"


PERSON = Actor("person-1", Role.INSURED, Channel.COUNTER)
ONLINE = Actor("person-1", Role.INSURED, Channel.MINI_PROGRAM)
OFFICER = Actor("officer-1", Role.OFFICER, Channel.COUNTER, organisation="agency-1")
SYSTEM = Actor("system", Role.SYSTEM, Channel.SYSTEM)

FULL_DOCUMENTS: dict[str, list[str]] = {
    "K1": ["identity", "declaration_form", "household_register", "residence_proof"],
    "K2": ["identity", "declaration_form", "residence_permit"],
    "K3": ["identity", "declaration_form", "posting_certificate"],
    "K4": ["identity", "declaration_form", "referral_certificate"],
    "K5": ["identity", "declaration_form", "emergency_diagnosis"],
    "K6": ["identity", "declaration_form"],
}


def id_number(n: int = 1, region: str = "350203", born: str = "19900101") -> str:
    """A valid resident ID number for test person `n` (not a real person)."""
    body = f"{region}{born}{n % 1000:03d}"
    return body + ric.calc_check_digit(body + "0")


def local(year: int, month: int, day: int, hour: int = 10, minute: int = 0) -> datetime:
    """An instant given in Asia/Shanghai wall-clock time, as UTC."""
    return datetime(year, month, day, hour, minute, tzinfo=LOCAL_TZ).astimezone(UTC)


class Clock(ManualClock):
    """The injected clock the tests move by hand, with local (Asia/Shanghai) wall-clock setters."""

    def to_local(self, day: date, hour: int = 10, minute: int = 0) -> None:
        self.now = local(day.year, day.month, day.day, hour, minute)


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    """Tests that configure logging (CLI, privacy) must not leave it pointing at their streams."""
    yield
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()


@pytest.fixture
def clock() -> Clock:
    return Clock(local(2026, 3, 2))


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings(ROOT / "config.toml", environ={"FILING_PERSON_KEY": "test-person-key"})


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'filings.db'}"


def _postgres_problem() -> str | None:
    try:
        eng = sa.create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with eng.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        eng.dispose()
    except Exception as exc:  # any failure to connect means: no usable server here
        where = sa.make_url(PG_URL).render_as_string()
        return f"PostgreSQL at {where} not reachable: {type(exc).__name__}"
    return None


@pytest.fixture(scope="session")
def postgres_available() -> None:
    problem = _postgres_problem()
    if problem:
        if REQUIRE_PG:
            pytest.fail(f"{problem} (FILING_REQUIRE_POSTGRES=1)")
        pytest.skip(problem)


@pytest.fixture(scope="session")
def pg_database(postgres_available: None) -> Iterator[str]:
    """A database of this test session's own on FILING_TEST_PG_URL's server, dropped at the
    end: two runs against one server never meet, not even in their advisory locks (which are
    per database). Without the right to create one, the URL's own database is used."""
    name = f"filing_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.ProgrammingError:  # no CREATEDB: schemas of its own still keep tests apart
        admin.dispose()
        yield PG_URL
        return
    try:
        yield sa.make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def pg_url(pg_database: str) -> Iterator[str]:
    """A PostgreSQL URL whose connections work in a fresh schema of their own."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(pg_database)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    url = sa.make_url(pg_database).update_query_dict({"options": f"-csearch_path={schema}"})
    yield url.render_as_string(hide_password=False)
    with admin.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def open_engine(settings: Settings, clock: Clock) -> Iterator[Callable[..., FilingEngine]]:
    opened: list[FilingEngine] = []

    def _open(url: str, **kw: Any) -> FilingEngine:
        kw.setdefault("clock", clock)
        kw.setdefault("settings", settings)
        engine = FilingEngine.open(database_url=url, **kw)
        opened.append(engine)
        return engine

    yield _open
    for engine in opened:
        engine.close()


@pytest.fixture
def engine(open_engine: Callable[..., FilingEngine], sqlite_url: str) -> FilingEngine:
    """The engine on SQLite (the embedded default)."""
    return open_engine(sqlite_url)


@pytest.fixture
def any_engine(open_engine: Callable[..., FilingEngine], db_url: str) -> FilingEngine:
    """The engine on each backend in turn: SQLite, then PostgreSQL."""
    return open_engine(db_url)


def draft(engine: FilingEngine, **overrides: Any) -> Filing:
    """A complete draft: by default a Beijing employee's other-temporary filing to Shenzhen
    (national default policy: reviewed, no cancel lock for temporary filings)."""
    kind = str(overrides.get("kind", "K6"))
    args: dict[str, Any] = {
        "id_number": id_number(1, region="110105"),
        "kind": kind,
        "insurance_type": "employee",
        "insured_region": "110000",
        "treatment_region": "440300",
        "actor": PERSON,
        "documents": FULL_DOCUMENTS[kind],
        "consent_given": True,
    }
    args.update(overrides)
    if args["insured_region"].startswith("3502"):
        args.setdefault("card_settlement_enabled", True)
    return engine.create(**args)


def effective(engine: FilingEngine, **overrides: Any) -> Filing:
    """A filing taken all the way to effective (submitted, and approved where reviewed)."""
    filing = draft(engine, **overrides)
    actor = overrides.get("actor", PERSON)
    filing = engine.submit(filing.id, actor)
    if filing.state.value == "submitted":
        filing = engine.approve(filing.id, OFFICER)
    assert filing.state.value == "effective"
    return filing


def race(*calls: Callable[[], Any], timeout: float = 60.0) -> list[Any]:
    """Run `calls` in threads released together; each result, or the exception it raised."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int, call: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            results[i] = call()
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=timeout)
    assert not any(t.is_alive() for t in threads), "a racing call never returned"
    return results
