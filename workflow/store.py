"""Units of work on the DBAPI connection itself.

A durable transition is a handful of statements and one commit. SQLAlchemy Core spends about
50 µs of Python on each statement, several times the cost of the statement on SQLite, so the
service runs its statements here, directly on the pooled driver connection that the SQLAlchemy
engine hands out (with its pragmas, busy timeout and pool). The schema itself stays with the
SQLModel tables and Alembic; values are stored in exactly the formats SQLAlchemy uses, so either
side reads what the other wrote (tests/test_persistence.py holds them to it).

SQL is written once with `:name` parameters, which sqlite3 takes as they are and which are
rewritten to `%(name)s` for psycopg.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from functools import cache
from typing import Any

import sqlalchemy as sa

from states.errors import FilingError
from workflow.tables import UTCDateTime

_PARAM = re.compile(r"(?<![:\w]):(\w+)")

Row = dict[str, Any]
WRITE_LOCK_KEY = 0x6175646974  # "audit"


def insert_sql(table: sa.Table) -> str:
    """`INSERT INTO table (every column) VALUES (:column, ...)`, written once per table."""
    cols = [c.name for c in table.columns]
    return (
        f"INSERT INTO {table.name} ({', '.join(cols)}) VALUES ({', '.join(':' + c for c in cols)})"
    )


class ReadOnlyEngine(FilingError):
    def __init__(self) -> None:
        super().__init__("this engine was opened read-only: it answers queries and verifies")


class Store:
    def __init__(
        self,
        engine: sa.Engine,
        tables: list[sa.Table],
        *,
        read_only: bool = False,
        busy_seconds: float = 5.0,
    ) -> None:
        self.engine = engine
        self.read_only = read_only
        self.dialect = engine.dialect.name
        self.postgres = self.dialect == "postgresql"
        self.integrity_error: type[Exception] = engine.dialect.loaded_dbapi.IntegrityError
        # SQLite has one writer. Threads of this process queue for it here, woken the moment
        # it is free, instead of in SQLite's busy handler, which polls with sleeps growing to
        # 100 ms and so turned contention between HTTP requests into latency spikes. Other
        # processes still wait in the busy handler, as before.
        self._writer = threading.Lock()
        self._writer_wait = busy_seconds
        # Column converters for what sqlite3 returns as text (psycopg returns Python types).
        self._readers: dict[str, Callable[[Any], Any]] = {}
        if not self.postgres:
            for table in tables:
                for col in table.columns:
                    if isinstance(col.type, UTCDateTime):
                        self._readers[col.name] = _read_sqlite_datetime
                    elif isinstance(col.type, sa.Date):
                        self._readers[col.name] = _read_sqlite_date
                    elif isinstance(col.type, sa.Boolean):
                        self._readers[col.name] = _read_bool

    @contextmanager
    def write(self, *, chained: bool = True) -> Iterator[Tx]:
        """One write transaction, committed on success. On SQLite, BEGIN IMMEDIATE takes the
        write lock up front. On PostgreSQL every write transaction first takes one advisory
        lock: writes share the audit chain and so are serialised anyway, and taking that lock
        first means two writers can never wait on each other in opposite orders.

        `chained=False` is for writes that never touch the audit chain nor any row a chained
        write takes (the outbox's delivery claims, heartbeats): on PostgreSQL they skip the
        lock and run beside chained writes."""
        if self.read_only:
            raise ReadOnlyEngine()
        # If the wait runs out, go on without the queue: SQLite's busy timeout then decides.
        queued = not self.postgres and self._writer.acquire(timeout=self._writer_wait)
        try:
            with self._unit(chained) as tx:
                yield tx
        finally:
            if queued:
                self._writer.release()

    @contextmanager
    def _unit(self, chained: bool) -> Iterator[Tx]:
        raw = self.engine.raw_connection()
        try:
            cur = raw.cursor()
            if not self.postgres:
                cur.execute("BEGIN IMMEDIATE")
            elif chained:
                cur.execute(f"SELECT pg_advisory_xact_lock({WRITE_LOCK_KEY})")
            tx = Tx(self, cur)
            try:
                yield tx
            except BaseException:
                raw.rollback() if self.postgres else _sqlite_rollback(cur)
                raise
            if self.postgres:
                raw.commit()
            else:
                cur.execute("COMMIT")
        finally:
            raw.close()

    @contextmanager
    def read(self) -> Iterator[Tx]:
        """A read-only unit: a deferred transaction on SQLite, so it takes no write lock."""
        raw = self.engine.raw_connection()
        try:
            cur = raw.cursor()
            if not self.postgres:
                cur.execute("BEGIN")
            try:
                yield Tx(self, cur)
            finally:
                raw.rollback() if self.postgres else _sqlite_rollback(cur)
        finally:
            raw.close()


class Tx:
    __slots__ = ("_cur", "_store")

    def __init__(self, store: Store, cur: Any) -> None:
        self._store = store
        self._cur = cur

    @property
    def postgres(self) -> bool:
        return self._store.postgres

    def _execute(self, sql: str, params: Mapping[str, Any]) -> None:
        self._cur.execute(sql, params)

    def run(self, sql: str, params: Mapping[str, Any] | None = None) -> int:
        self._execute(_sql(sql, self._store.postgres), self._bind(params))
        return int(self._cur.rowcount)

    def bound(self, value: Any) -> Any:
        """`value` as the driver stores it (an instant as SQLite's text): for a value repeated
        across many parameter sets, converted once."""
        return value if self._store.postgres else _bind_sqlite(value)

    def run_many(
        self, sql: str, params: Sequence[Mapping[str, Any]], *, bound: bool = False
    ) -> int:
        """One statement for many parameter sets; the rows it changed in all. With `bound`,
        the values are already in the driver's form (`Tx.bound`)."""
        if not params:
            return 0
        if not bound:
            params = [self._bind(p) for p in params]
        self._cur.executemany(_sql(sql, self._store.postgres), params)
        return int(self._cur.rowcount)

    def one(self, sql: str, params: Mapping[str, Any] | None = None) -> Row | None:
        self._execute(_sql(sql, self._store.postgres), self._bind(params))
        row = self._cur.fetchone()
        return None if row is None else self._decoder()(row)

    def scalar(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        self._execute(_sql(sql, self._store.postgres), self._bind(params))
        row = self._cur.fetchone()
        return None if row is None else row[0]

    def all(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        return list(self.iterate(sql, params))

    def iterate(
        self, sql: str, params: Mapping[str, Any] | None = None, batch: int = 2000
    ) -> Iterator[Row]:
        self._execute(_sql(sql, self._store.postgres), self._bind(params))
        decode = self._decoder()
        while rows := self._cur.fetchmany(batch):
            for row in rows:
                yield decode(row)

    def _decoder(self) -> Callable[[tuple[Any, ...]], Row]:
        """Turn rows of the current result into dicts, with the column plan worked out once
        per result rather than once per row (verify walks millions)."""
        names = [d[0] for d in self._cur.description]
        readers = self._store._readers
        plan = [(n, readers.get(n)) for n in names]
        if not any(reader for _, reader in plan):
            return lambda row: dict(zip(names, row, strict=True))
        return lambda row: {
            n: (reader(v) if reader is not None and v is not None else v)
            for (n, reader), v in zip(plan, row, strict=True)
        }

    def _bind(self, params: Mapping[str, Any] | None) -> Mapping[str, Any]:
        if not params:
            return {}
        if self._store.postgres:
            return params
        if not any(type(v) in _CONVERTED for v in params.values()):
            return params
        return {k: _bind_sqlite(v) for k, v in params.items()}


@cache
def _sql(sql: str, postgres: bool) -> str:
    return _PARAM.sub(r"%(\1)s", sql.replace("%", "%%")) if postgres else sql


_CONVERTED = frozenset({datetime, date})


def _bind_sqlite(value: Any) -> Any:
    kind = type(value)
    if kind is datetime:
        if value.tzinfo is None:
            raise ValueError("naive datetime: instants must be timezone-aware")
        # SQLAlchemy's own format, `0001-01-11 15:54:17.000000`: the year always has four
        # digits (strftime's %Y drops the zeros of years before 1000, which no reader takes).
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
    if kind is date:
        return value.isoformat()
    return value


def _read_sqlite_datetime(value: str) -> datetime:
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def _read_sqlite_date(value: str) -> date:
    return date.fromisoformat(value)


def _read_bool(value: Any) -> bool:
    return bool(value)


def _sqlite_rollback(cur: Any) -> None:
    if not cur.connection.in_transaction:
        return
    cur.execute("ROLLBACK")
