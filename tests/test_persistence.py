"""Persistence: one transaction per transition, optimistic concurrency on `version`, races
between engines on one database, deadlines written with their transition, storage formats both
paths (the driver-level store and SQLAlchemy Core) agree on, SQLite durability settings,
reopening, and policy versions pinned across restarts.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import sqlite3
import tomllib
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory

from states.filing import Filing
from tests.conftest import (
    FULL_DOCUMENTS,
    OFFICER,
    PERSON,
    ROOT,
    SYSTEM,
    Clock,
    draft,
    effective,
    id_number,
    race,
)
from workflow import (
    Actor,
    Channel,
    ConcurrentUpdate,
    FilingEngine,
    FilingError,
    PolicyConfigError,
    Role,
    TransitionRefused,
    audit,
)
from workflow.config import Settings, settings_from_mapping
from workflow.db import alembic_config
from workflow.service import FilingService
from workflow.tables import FilingRecord, PolicyRecord

FILING: sa.Table = FilingRecord.__table__  # type: ignore[attr-defined]
POLICY: sa.Table = PolicyRecord.__table__  # type: ignore[attr-defined]
TEST_ENV = {"FILING_PERSON_KEY": "test-person-key"}
REGIONS = ("national", "350200", "440700", "440300", "310000")


def person(n: int) -> str:
    return id_number(n, region="110105")


def _race(*calls: Callable[[], Filing]) -> list[Filing | Exception]:
    return race(*calls, timeout=30)


def _count(engine: FilingEngine, sql: str, **params: Any) -> int:
    with engine.sql_engine.connect() as conn:
        return int(conn.execute(sa.text(sql), params).scalar_one())


# --- versions -----------------------------------------------------------------------------------


def test_the_version_rises_by_one_per_applied_transition_and_not_on_a_denied_one(
    any_engine: FilingEngine,
) -> None:
    filing = draft(any_engine)
    versions = [filing.version]

    versions.append(any_engine.submit(filing.id, PERSON).version)
    with pytest.raises(TransitionRefused):
        any_engine.approve(filing.id, PERSON)
    versions.append(any_engine.get(filing.id).version)
    versions.append(any_engine.approve(filing.id, OFFICER).version)
    versions.append(any_engine.cancel(filing.id, PERSON).version)

    assert versions == [1, 2, 2, 3, 4]
    assert any_engine.get(filing.id).version == 4


def test_a_stale_expected_version_raises_changes_nothing_and_is_recorded(
    any_engine: FilingEngine,
) -> None:
    filing = effective(any_engine)  # version 3
    checkpoint = any_engine.checkpoint()

    with pytest.raises(ConcurrentUpdate) as stale:
        any_engine.cancel(filing.id, PERSON, expected_version=2)

    assert (stale.value.filing_id, stale.value.expected_version) == (filing.id, 2)
    assert any_engine.get(filing.id) == filing
    assert any_engine.checkpoint().count == checkpoint.count + 1
    last = any_engine.history(filing.id)[-1]
    assert (last["event"], last["outcome"], last["rule_id"]) == ("cancel", "denied", "R1")
    cancelled = any_engine.cancel(filing.id, PERSON, expected_version=3)
    assert (cancelled.state.value, cancelled.version) == ("cancelled", 4)


# --- races between engines ----------------------------------------------------------------------


def test_of_two_concurrent_cancels_exactly_one_applies_and_the_other_is_refused(
    any_engine: FilingEngine, open_engine: Callable[..., FilingEngine], db_url: str
) -> None:
    filings = [effective(any_engine, id_number=person(n)) for n in range(1, 6)]
    left, right = open_engine(db_url), open_engine(db_url)

    for filing in filings:
        results = _race(
            lambda f=filing: left.cancel(f.id, PERSON),
            lambda f=filing: right.cancel(f.id, PERSON),
        )

        applied = [r for r in results if isinstance(r, Filing)]
        refused = [r for r in results if isinstance(r, TransitionRefused)]
        assert len(applied) == 1 and len(refused) == 1, results
        assert (applied[0].state.value, applied[0].version) == ("cancelled", 4)
        assert (refused[0].state, refused[0].rule_id) == ("cancelled", "L4")
        cancels = [r["outcome"] for r in any_engine.history(filing.id) if r["event"] == "cancel"]
        assert sorted(cancels) == ["applied", "denied"]
        assert any_engine.get(filing.id).version == 4

    result = any_engine.verify()
    assert result.ok, result.problems
    assert result.count == 5 * 5  # create, submit, approve, and the two cancels


def test_of_two_concurrent_approvals_in_one_scope_exactly_one_takes_effect(
    any_engine: FilingEngine, open_engine: Callable[..., FilingEngine], db_url: str
) -> None:
    left, right = open_engine(db_url), open_engine(db_url)

    for n in range(1, 4):
        pair = [any_engine.submit(draft(any_engine, id_number=person(n)).id, PERSON) for _ in "ab"]

        results = _race(
            lambda f=pair[0]: left.approve(f.id, OFFICER),
            lambda f=pair[1]: right.approve(f.id, OFFICER),
        )

        refused = [r for r in results if isinstance(r, TransitionRefused)]
        assert len(refused) == 1 and refused[0].rule_id == "L6", results
        states = sorted(any_engine.get(f.id).state.value for f in pair)
        assert states == ["effective", "submitted"]
        assert len(any_engine.effective_filings(person(n))) == 1

    assert any_engine.verify().ok


# --- one transition, one transaction ------------------------------------------------------------


def _fail_after_audit_append(monkeypatch: pytest.MonkeyPatch) -> None:
    original = audit.append

    def append_then_fail(tx: Any, record: dict[str, Any]) -> dict[str, Any]:
        original(tx, record)
        raise RuntimeError("disk full")

    monkeypatch.setattr(audit, "append", append_then_fail)


def _fail_after_writing_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    original = FilingService._write_validity_deadline

    def write_then_fail(
        self: FilingService, tx: Any, filing: Filing, policy: Any, now: datetime
    ) -> None:
        original(self, tx, filing, policy, now)
        raise RuntimeError("disk full")

    monkeypatch.setattr(FilingService, "_write_validity_deadline", write_then_fail)


@pytest.mark.parametrize("failure", [_fail_after_audit_append, _fail_after_writing_the_deadline])
def test_a_failure_inside_the_transaction_leaves_nothing_of_the_transition(
    any_engine: FilingEngine,
    monkeypatch: pytest.MonkeyPatch,
    failure: Callable[[pytest.MonkeyPatch], None],
) -> None:
    filing = any_engine.submit(draft(any_engine).id, PERSON)
    checkpoint = any_engine.checkpoint()
    failure(monkeypatch)

    with pytest.raises(RuntimeError, match="disk full"):
        any_engine.approve(filing.id, OFFICER)

    monkeypatch.undo()
    assert any_engine.get(filing.id) == filing
    assert (filing.state.value, filing.version) == ("submitted", 2)
    assert any_engine.deadlines(filing.id) == []
    assert any_engine.checkpoint() == checkpoint
    assert len(any_engine.history(filing.id)) == 2
    assert any_engine.approve(filing.id, OFFICER).state.value == "effective"
    assert len(any_engine.deadlines(filing.id)) == 3  # the expiry and its two reminders


def test_a_change_that_fails_half_way_leaves_the_old_filing_effective_and_no_new_one(
    any_engine: FilingEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = effective(any_engine)
    checkpoint = any_engine.checkpoint()
    original, calls = audit.append, []

    def fail_on_the_second_record(tx: Any, record: dict[str, Any]) -> dict[str, Any]:
        calls.append(record["event"])
        original(tx, record)
        if len(calls) == 2:  # the replacement is drafted and submitted, its record written
            raise RuntimeError("disk full")
        return record

    monkeypatch.setattr(audit, "append", fail_on_the_second_record)

    with pytest.raises(RuntimeError, match="disk full"):
        any_engine.change(
            old.id, id_number=person(1), kind="K4", insurance_type="employee",
            insured_region="110000", treatment_region="440300", actor=PERSON,
            documents=FULL_DOCUMENTS["K4"], consent_given=True,
        )  # fmt: skip

    monkeypatch.undo()
    assert calls == ["create", "submit"]
    assert any_engine.list_for_person(person(1)) == [old]
    assert any_engine.checkpoint() == checkpoint


# --- deadlines ----------------------------------------------------------------------------------


def test_approving_a_temporary_filing_writes_its_expiry_deadline(any_engine: FilingEngine) -> None:
    filing = any_engine.submit(draft(any_engine).id, PERSON)
    assert any_engine.deadlines(filing.id) == []

    approved = any_engine.approve(filing.id, OFFICER)

    assert approved.valid_until == date(2026, 9, 2)
    first, second, deadline = any_engine.deadlines(filing.id)
    assert (deadline.kind, deadline.provisional, deadline.rule_id, deadline.fired_at) == (
        "expire", False, "V3", None,
    )  # fmt: skip
    # 24:00 Asia/Shanghai on 2 September 2026
    assert deadline.due_at == datetime(2026, 9, 2, 16, 0, tzinfo=UTC)
    assert deadline.due_at.utcoffset() == timedelta(0)
    # Reminders 30 and 7 days before the last valid day, at 00:00 Asia/Shanghai (config.toml).
    assert [(d.kind, d.due_at, d.rule_id) for d in (first, second)] == [
        ("expiry_reminder", datetime(2026, 8, 2, 16, 0, tzinfo=UTC), "V3"),
        ("expiry_reminder", datetime(2026, 8, 25, 16, 0, tzinfo=UTC), "V3"),
    ]


def test_an_instant_filing_writes_its_expiry_deadline_on_submit(any_engine: FilingEngine) -> None:
    filing = draft(
        any_engine, insured_region="350200", id_number=id_number(2, region="350203"),
        start_date=date(2026, 8, 31),
    )  # fmt: skip

    submitted = any_engine.submit(filing.id, PERSON)

    assert (submitted.state.value, submitted.valid_until) == ("effective", date(2027, 2, 28))
    *_, deadline = any_engine.deadlines(filing.id)
    assert (deadline.kind, deadline.rule_id) == ("expire", "V3")
    assert deadline.due_at == datetime(2027, 2, 28, 16, 0, tzinfo=UTC)


def test_a_long_term_filing_valid_indefinitely_gets_no_expiry_deadline(
    any_engine: FilingEngine,
) -> None:
    filing = effective(any_engine, kind="K1")

    assert filing.valid_until is None
    assert any_engine.deadlines(filing.id) == []


# --- storage formats ----------------------------------------------------------------------------


def _xiamen_temporary_filed_for_a_family_member(engine: FilingEngine, clock: Clock) -> Filing:
    family = Actor("family-1", Role.INSURED, Channel.MINI_PROGRAM, on_behalf=True)
    filing = draft(
        engine, insured_region="350200", id_number=id_number(2, region="350203"),
        actor=family, start_date=date(2026, 4, 15),
    )  # fmt: skip
    clock.advance(hours=1, microseconds=654321)
    return engine.submit(filing.id, family)


def _national_long_term_by_commitment(engine: FilingEngine, clock: Clock) -> Filing:
    filing = draft(
        engine, kind="K1", by_commitment=True,
        documents=["identity", "declaration_form", "personal_commitment"],
    )  # fmt: skip
    clock.advance(days=1, microseconds=1)
    engine.submit(filing.id, PERSON)
    return engine.approve(filing.id, OFFICER)


@pytest.fixture(
    params=[_xiamen_temporary_filed_for_a_family_member, _national_long_term_by_commitment]
)
def stored(request: pytest.FixtureRequest, any_engine: FilingEngine, clock: Clock) -> Filing:
    clock.advance(microseconds=123456)
    build: Callable[[FilingEngine, Clock], Filing] = request.param
    return build(any_engine, clock)


def _core_row(engine: FilingEngine, filing_id: str) -> dict[str, Any]:
    with engine.sql_engine.connect() as conn:
        return dict(
            conn.execute(sa.select(FILING).where(FILING.c.id == filing_id)).mappings().one()
        )


# Storage-only columns: the L6 key and slot are the index's, not the filing's.
STORAGE_ONLY = ("documents", "exclusive_key", "holds_scope")
SHARED = [c.name for c in FILING.columns if c.name not in STORAGE_ONLY]


def test_a_filing_reads_back_equal_with_its_types(any_engine: FilingEngine, stored: Filing) -> None:
    loaded = any_engine.get(stored.id)

    assert loaded == stored
    assert loaded.created_at.microsecond == 123456 and loaded.updated_at > loaded.created_at
    for name in ("created_at", "updated_at"):
        value = getattr(loaded, name)
        assert type(value) is datetime and value.utcoffset() == timedelta(0), name
    for name in ("start_date", "effective_on", "valid_until", "lock_until"):
        value = getattr(loaded, name)
        assert value is None or type(value) is date, name
    for name in ("on_behalf", "by_commitment", "student", "flexible_employment",
                 "consent_given", "entitlement_pending"):  # fmt: skip
        assert type(getattr(loaded, name)) is bool, name
    assert True in (loaded.on_behalf, loaded.by_commitment)
    assert loaded.lock_until is not None


def test_sqlalchemy_core_reads_what_the_engine_wrote(
    any_engine: FilingEngine, stored: Filing
) -> None:
    row = _core_row(any_engine, stored.id)

    assert {n: row[n] for n in SHARED} == {n: getattr(stored, n) for n in SHARED}
    assert json.loads(row["documents"]) == sorted(stored.documents)
    assert row["created_at"].utcoffset() == timedelta(0)


def test_the_engine_reads_what_sqlalchemy_core_wrote(
    any_engine: FilingEngine, stored: Filing
) -> None:
    row = _core_row(any_engine, stored.id)
    copy_id = "c" + stored.id[1:]
    with any_engine.sql_engine.begin() as conn:
        conn.execute(
            sa.insert(FILING).values(
                {**row, "id": copy_id, "exclusive_key": None, "holds_scope": False}
            )
        )

    assert any_engine.get(copy_id) == dataclasses.replace(stored, id=copy_id)


@pytest.mark.postgres
def test_instants_read_back_in_utc_whatever_the_postgresql_session_timezone(
    pg_url: str, open_engine: Callable[..., FilingEngine]
) -> None:
    url = sa.make_url(pg_url)
    options = f"{url.query['options']} -ctimezone=Asia/Shanghai"
    engine = open_engine(url.update_query_dict({"options": options}).render_as_string(False))
    filing = draft(engine)

    loaded = engine.get(filing.id)

    assert loaded.created_at == filing.created_at
    assert loaded.created_at.utcoffset() == timedelta(0)


# --- SQLite settings ----------------------------------------------------------------------------


@pytest.mark.parametrize(("configured", "pragma_value"), [("FULL", 2), ("NORMAL", 1)])
def test_sqlite_runs_in_wal_mode_with_the_configured_synchronous(
    open_engine: Callable[..., FilingEngine],
    sqlite_url: str,
    settings: Settings,
    configured: str,
    pragma_value: int,
) -> None:
    engine = open_engine(
        sqlite_url, settings=dataclasses.replace(settings, sqlite_synchronous=configured)
    )
    draft(engine)

    raw = engine.sql_engine.raw_connection()
    try:
        cur = raw.cursor()
        assert cur.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert cur.execute("PRAGMA synchronous").fetchone()[0] == pragma_value
    finally:
        raw.close()
    with sqlite3.connect(sa.make_url(sqlite_url).database or "") as plain:  # WAL is persistent
        assert plain.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


# --- opening and reopening ----------------------------------------------------------------------


def test_an_engine_opens_the_database_it_is_given_even_with_ready_made_settings(
    settings: Settings, sqlite_url: str, tmp_path: Any, clock: Clock
) -> None:
    configured = tmp_path / "configured.db"
    ready_made = dataclasses.replace(settings, database_url=f"sqlite:///{configured}")

    with FilingEngine.open(database_url=sqlite_url, settings=ready_made, clock=clock) as engine:
        draft(engine)
        assert engine.sql_engine.url.database == sa.make_url(sqlite_url).database

    assert not configured.exists()


def test_reopening_the_database_migrates_idempotently_and_keeps_everything(
    open_engine: Callable[..., FilingEngine], db_url: str
) -> None:
    first = open_engine(db_url)
    one = effective(first)
    two = draft(first, id_number=person(2))
    checkpoint = first.checkpoint()
    policies = [(r["region"], r["version"], r["content_hash"]) for r in _policies(first)]
    first.close()

    again = open_engine(db_url)
    open_engine(db_url).close()
    reopened = open_engine(db_url)

    assert reopened.get(one.id) == one and reopened.get(two.id) == two
    assert reopened.history(one.id) == again.history(one.id) and len(reopened.history(one.id)) == 3
    assert reopened.checkpoint() == checkpoint
    assert reopened.verify(against=checkpoint).ok
    assert [(r["region"], r["version"], r["content_hash"]) for r in _policies(reopened)] == policies
    head = ScriptDirectory.from_config(alembic_config(reopened.sql_engine)).get_current_head()
    assert _versions(reopened) == [head]
    with (
        pytest.raises(sa.exc.DBAPIError, match="append-only"),  # the triggers are still there
        reopened.sql_engine.begin() as conn,
    ):
        conn.execute(sa.text("DELETE FROM audit_record"))
    assert reopened.cancel(one.id, PERSON).version == 4
    assert reopened.verify(against=checkpoint).ok


def _policies(engine: FilingEngine) -> list[dict[str, Any]]:
    with engine.sql_engine.connect() as conn:
        query = sa.select(POLICY).order_by(POLICY.c.region, POLICY.c.version)
        return [dict(r) for r in conn.execute(query).mappings()]


def _versions(engine: FilingEngine) -> list[str]:
    with engine.sql_engine.connect() as conn:
        return list(conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars())


# --- policy versions pinned across restarts -----------------------------------------------------


@pytest.fixture
def config() -> dict[str, Any]:
    return tomllib.loads((ROOT / "config.toml").read_text(encoding="utf-8"))


def _national_validity(config: dict[str, Any], months: int, *bumped: str) -> Settings:
    raw = copy.deepcopy(config)
    raw["policy"]["national"]["temporary_validity_months"]["value"] = months
    for region in bumped:
        raw["policy"][region]["version"] = "2026.9"
    return settings_from_mapping(raw, base_dir=ROOT, environ=TEST_ENV)


def test_editing_a_policy_without_a_new_version_refuses_to_start(
    open_engine: Callable[..., FilingEngine], db_url: str, config: dict[str, Any]
) -> None:
    open_engine(db_url)

    with pytest.raises(PolicyConfigError) as refused:
        open_engine(db_url, settings=_national_validity(config, 12))

    assert refused.value.key == "policy.national.version"
    assert "2026.3" in str(refused.value)


def test_a_region_inheriting_the_edited_value_needs_a_new_version_too(
    open_engine: Callable[..., FilingEngine], db_url: str, config: dict[str, Any]
) -> None:
    open_engine(db_url)

    with pytest.raises(PolicyConfigError) as refused:
        open_engine(db_url, settings=_national_validity(config, 12, "national"))

    assert refused.value.key in {f"policy.{r}.version" for r in REGIONS[1:]}


def test_an_unchanged_policy_starts_again(
    open_engine: Callable[..., FilingEngine], db_url: str, config: dict[str, Any]
) -> None:
    open_engine(db_url)

    engine = open_engine(db_url, settings=_national_validity(config, 6))

    assert len(_policies(engine)) == len(REGIONS)


def test_a_new_policy_version_applies_to_new_filings_and_pinned_ones_keep_theirs(
    open_engine: Callable[..., FilingEngine], db_url: str, config: dict[str, Any]
) -> None:
    before = open_engine(db_url)
    old = draft(before, id_number=person(1))

    after = open_engine(db_url, settings=_national_validity(config, 12, *REGIONS))
    old_approved = after.approve(after.submit(old.id, PERSON).id, OFFICER)
    new_approved = effective(after, id_number=person(2))

    assert (old_approved.policy_version, old_approved.valid_until) == ("2026.3", date(2026, 9, 2))
    assert after.policy(old.id).temporary_validity_months == 6
    assert (new_approved.policy_version, new_approved.valid_until) == ("2026.9", date(2027, 3, 2))
    assert after.policy(new_approved.id).temporary_validity_months == 12
    assert len(_policies(after)) == 2 * len(REGIONS)


# --- found in review ----------------------------------------------------------------------------


def test_leaving_effective_settles_the_pending_expiry(
    any_engine: FilingEngine, clock: Clock
) -> None:
    cancelled = any_engine.cancel(effective(any_engine).id, PERSON)
    deadlines = any_engine.deadlines(cancelled.id)
    assert len(deadlines) == 3
    assert {(d.outcome, d.fired_at) for d in deadlines} == {("retired", clock.now)}

    expiring = effective(any_engine, treatment_region="310000")
    clock.to_local(date(2026, 9, 3))
    any_engine.expire(expiring.id, SYSTEM)
    *reminders, deadline = any_engine.deadlines(expiring.id)
    assert (deadline.kind, deadline.outcome) == ("expire", "fired")
    # Reminders that never went out (no daemon ran) are moot once the filing expired.
    assert [r.outcome for r in reminders] == ["retired", "retired"]


def test_a_read_only_engine_verifies_and_writes_nothing(
    open_engine: Callable[..., FilingEngine], db_url: str
) -> None:
    writer = open_engine(db_url)
    filing = effective(writer)
    before = writer.checkpoint()
    reader = open_engine(db_url, read_only=True)
    assert reader.verify(before).ok and reader.get(filing.id).state.value == "effective"
    with pytest.raises(FilingError, match="read-only"):
        reader.cancel(filing.id, PERSON)
    assert writer.checkpoint() == before


@pytest.mark.postgres
def test_a_shared_database_is_not_opened_with_the_development_key(
    open_engine: Callable[..., FilingEngine], pg_url: str, settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.delenv("FILING_ALLOW_DEVELOPMENT_KEY", raising=False)
    dev = dataclasses.replace(settings, person_key_is_development_default=True)
    with pytest.raises(PolicyConfigError) as refused:
        open_engine(pg_url, settings=dev)
    assert refused.value.key == "FILING_PERSON_KEY"


# --- the L6 slot (migration 0004) -----------------------------------------------------------------


def _slots(engine: FilingEngine) -> dict[str, tuple[str, bool]]:
    with engine.sql_engine.connect() as conn:
        rows = conn.execute(sa.select(FILING.c.id, FILING.c.state, FILING.c.holds_scope))
        return {r.id: (r.state, bool(r.holds_scope)) for r in rows}


def test_an_expired_filing_keeps_its_slot_until_the_next_of_its_scope_takes_effect(
    any_engine: FilingEngine, clock: Clock
) -> None:
    first = effective(any_engine)
    clock.to_local(date(2026, 9, 3))
    any_engine.expire(first.id, SYSTEM)
    assert _slots(any_engine)[first.id] == ("expired", True)  # the index was not rewritten

    second = effective(any_engine)

    assert _slots(any_engine) == {first.id: ("expired", False), second.id: ("effective", True)}
    with pytest.raises(TransitionRefused) as refused:  # L6 still holds
        effective(any_engine)
    assert refused.value.rule_id == "L6"


def test_two_filings_of_one_scope_can_never_both_hold_it(any_engine: FilingEngine) -> None:
    held = effective(any_engine)
    other = draft(any_engine)

    with pytest.raises(sa.exc.IntegrityError), any_engine.sql_engine.begin() as conn:
        conn.execute(sa.update(FILING).where(FILING.c.id == other.id).values(holds_scope=True))

    assert _slots(any_engine)[held.id] == ("effective", True)


def test_the_slot_migration_gives_each_effective_filing_its_slot(
    open_engine: Callable[..., FilingEngine], db_url: str, clock: Clock
) -> None:
    engine = open_engine(db_url)
    live = effective(engine)
    gone = engine.cancel(effective(engine, treatment_region="310000").id, PERSON)
    config = alembic_config(engine.sql_engine)
    command.downgrade(config, "0003")
    command.upgrade(config, "head")

    assert _slots(engine) == {live.id: ("effective", True), gone.id: ("cancelled", False)}
