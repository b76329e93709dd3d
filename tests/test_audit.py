"""The audit trail: one record per attempted transition, applied or denied; hash-chained, so
that `verify` detects an edit, a deletion, a reordering or an insertion (and, against a
checkpoint kept outside the database, a truncation or a wholesale rewrite); append-only in the
database itself; and free of whole ID numbers.

Tampering needs the append-only triggers gone first, as it would for an attacker with DDL rights.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from tests.conftest import FULL_DOCUMENTS, OFFICER, PERSON, SYSTEM, draft, effective, id_number
from workflow import Checkpoint, FilingEngine, TransitionRefused, audit
from workflow.store import Tx
from workflow.tables import AuditRecord, DeadlineRecord, FilingRecord, PolicyRecord

AUDIT: sa.Table = AuditRecord.__table__  # type: ignore[attr-defined]
FILING: sa.Table = FilingRecord.__table__  # type: ignore[attr-defined]
DEADLINE: sa.Table = DeadlineRecord.__table__  # type: ignore[attr-defined]
POLICY: sa.Table = PolicyRecord.__table__  # type: ignore[attr-defined]

SQLITE_TRIGGERS = ("audit_record_no_update", "audit_record_no_delete")
POSTGRES_TRIGGER = "audit_record_no_change"


# --- helpers ------------------------------------------------------------------------------------


def _postgres(engine: FilingEngine) -> bool:
    return engine.sql_engine.dialect.name == "postgresql"


def _rows(engine: FilingEngine, table: sa.Table) -> list[dict[str, Any]]:
    order = [table.c.seq] if table is AUDIT else list(table.primary_key.columns)
    with engine.sql_engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(table).order_by(*order)).mappings()]


def _records(engine: FilingEngine) -> list[dict[str, Any]]:
    return _rows(engine, AUDIT)


def _execute(engine: FilingEngine, *statements: Any) -> None:
    with engine.sql_engine.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement) if isinstance(statement, str) else statement)


def _allow_tampering(engine: FilingEngine) -> None:
    """Drop the append-only triggers of audit_record (workflow/migrations 0001)."""
    if _postgres(engine):
        _execute(engine, f"DROP TRIGGER {POSTGRES_TRIGGER} ON audit_record")
    else:
        _execute(engine, *(f"DROP TRIGGER {name}" for name in SQLITE_TRIGGERS))


def _set(engine: FilingEngine, seq: int, /, **values: Any) -> None:
    _execute(engine, sa.update(AUDIT).where(AUDIT.c.seq == seq).values(**values))


def _trail(engine: FilingEngine) -> str:
    """Five records on one filing: 1 create, 2 submit, 3 a denied approve, 4 approve, 5 cancel."""
    filing = draft(engine)
    engine.submit(filing.id, PERSON)
    with pytest.raises(TransitionRefused):
        engine.approve(filing.id, PERSON)
    engine.approve(filing.id, OFFICER)
    engine.cancel(filing.id, PERSON)
    return filing.id


def _fields(record: dict[str, Any], *names: str) -> dict[str, Any]:
    return {n: record[n] for n in names}


RECORD_FIELDS = (
    "event", "outcome", "rule_id", "from_state", "to_state", "actor_id", "actor_role",
    "actor_org", "channel", "policy_region", "policy_version", "request_id", "correlation_id",
)  # fmt: skip


# --- one record per attempt ---------------------------------------------------------------------


def test_an_applied_transition_is_recorded_with_its_rule_actor_policy_and_request_ids(
    any_engine: FilingEngine,
) -> None:
    filing = draft(any_engine)

    any_engine.submit(filing.id, PERSON, request_id="r-1", correlation_id="c-1")
    any_engine.approve(filing.id, OFFICER, request_id="r-2")

    create, submit, approve = any_engine.history(filing.id)
    assert _fields(create, "event", "outcome", "from_state", "to_state") == {
        "event": "create", "outcome": "applied", "from_state": None, "to_state": "draft",
    }  # fmt: skip
    assert _fields(submit, *RECORD_FIELDS) == {
        "event": "submit", "outcome": "applied", "rule_id": "L1",
        "from_state": "draft", "to_state": "submitted",
        "actor_id": "person-1", "actor_role": "insured", "actor_org": None, "channel": "counter",
        "policy_region": "national", "policy_version": "2026.3",
        "request_id": "r-1", "correlation_id": "c-1",
    }  # fmt: skip
    assert _fields(approve, *RECORD_FIELDS) == {
        "event": "approve", "outcome": "applied", "rule_id": "L1",
        "from_state": "submitted", "to_state": "effective",
        "actor_id": "officer-1", "actor_role": "officer", "actor_org": "agency-1",
        "channel": "counter", "policy_region": "national", "policy_version": "2026.3",
        "request_id": "r-2", "correlation_id": "r-2",  # defaults to the request id
    }  # fmt: skip
    assert approve["inputs"]["valid_until"] == "2026-09-02"


def test_an_approval_by_the_insured_person_is_denied_and_recorded(any_engine: FilingEngine) -> None:
    filing = any_engine.submit(draft(any_engine).id, PERSON)

    with pytest.raises(TransitionRefused) as refused:
        any_engine.approve(filing.id, PERSON, request_id="r-7", correlation_id="c-7")

    assert refused.value.rule_id == "L1"
    record = any_engine.history(filing.id)[-1]
    assert _fields(record, *RECORD_FIELDS) == {
        "event": "approve", "outcome": "denied", "rule_id": "L1",
        "from_state": "submitted", "to_state": None,
        "actor_id": "person-1", "actor_role": "insured", "actor_org": None, "channel": "counter",
        "policy_region": "national", "policy_version": "2026.3",
        "request_id": "r-7", "correlation_id": "c-7",
    }  # fmt: skip
    assert record["inputs"] == {"role": "insured"}


def test_cancelling_a_draft_is_denied_under_l4_and_recorded_with_the_request_ids(
    any_engine: FilingEngine,
) -> None:
    filing = draft(any_engine)

    with pytest.raises(TransitionRefused) as refused:
        any_engine.cancel(filing.id, PERSON, request_id="r-1", correlation_id="c-1")

    assert refused.value.rule_id == "L4"
    record = any_engine.history(filing.id)[-1]
    assert _fields(record, "event", "outcome", "rule_id", "from_state", "to_state") == {
        "event": "cancel", "outcome": "denied", "rule_id": "L4",
        "from_state": "draft", "to_state": None,
    }  # fmt: skip
    assert (record["request_id"], record["correlation_id"]) == ("r-1", "c-1")
    assert record["reason"] == refused.value.reason


def test_every_attempt_applied_or_denied_adds_exactly_one_record(any_engine: FilingEngine) -> None:
    filing = draft(any_engine)
    attempts: list[Callable[[], object]] = [
        lambda: any_engine.approve(filing.id, PERSON),  # denied: role (L1)
        lambda: any_engine.submit(filing.id, PERSON),  # applied
        lambda: any_engine.cancel(filing.id, PERSON),  # denied: not effective (L4)
        lambda: any_engine.approve(filing.id, OFFICER),  # applied
        lambda: any_engine.expire(filing.id, SYSTEM),  # denied: still valid (V3)
    ]

    for attempt in attempts:
        before = any_engine.checkpoint().count
        with contextlib.suppress(TransitionRefused):
            attempt()
        assert any_engine.checkpoint().count == before + 1

    assert [(r["event"], r["outcome"], r["rule_id"]) for r in any_engine.history(filing.id)] == [
        ("create", "applied", None),
        ("approve", "denied", "L1"),
        ("submit", "applied", "L1"),
        ("cancel", "denied", "L4"),
        ("approve", "applied", "L1"),
        ("expire", "denied", "V3"),
    ]


def test_a_denied_attempt_changes_nothing_on_the_filing_but_is_recorded(
    any_engine: FilingEngine,
) -> None:
    filing = effective(any_engine)
    before = any_engine.get(filing.id)
    records_before = len(any_engine.history(filing.id))

    with pytest.raises(TransitionRefused):
        any_engine.expire(filing.id, SYSTEM)

    after = any_engine.get(filing.id)
    assert after == before
    assert (after.state.value, after.version) == ("effective", 3)
    history = any_engine.history(filing.id)
    assert len(history) == records_before + 1
    assert (history[-1]["event"], history[-1]["outcome"]) == ("expire", "denied")


# --- the chain ----------------------------------------------------------------------------------


def test_a_clean_trail_verifies_and_its_checkpoint_counts_every_record(
    any_engine: FilingEngine,
) -> None:
    _trail(any_engine)
    effective(any_engine, id_number=id_number(2, region="110105"))

    checkpoint = any_engine.checkpoint()
    result = any_engine.verify(against=checkpoint)

    records = _records(any_engine)
    assert result.ok, result.problems
    assert checkpoint == Checkpoint(count=len(records), head_hash=records[-1]["hash"])
    assert checkpoint.count == 8
    assert [r["seq"] for r in records] == list(range(1, 9))
    assert result.checkpoint == checkpoint
    assert Checkpoint.from_dict(checkpoint.to_dict()) == checkpoint


def test_verification_reports_its_progress_up_to_the_last_record(engine: FilingEngine) -> None:
    _trail(engine)
    seen: list[int] = []

    result = engine.verify(progress=seen.append)

    assert result.ok
    assert seen[-1] == result.count == engine.checkpoint().count


def test_each_record_chains_onto_the_one_before(any_engine: FilingEngine) -> None:
    _trail(any_engine)

    records = _records(any_engine)

    assert records[0]["prev_hash"] == audit.GENESIS_HASH
    for before, record in itertools.pairwise(records):
        assert record["prev_hash"] == before["hash"]
    assert all(audit.record_hash(r) == r["hash"] for r in records)


def test_a_checkpoint_taken_earlier_still_verifies_a_trail_that_has_grown(
    any_engine: FilingEngine,
) -> None:
    filing = effective(any_engine)
    earlier = any_engine.checkpoint()

    any_engine.cancel(filing.id, PERSON)
    draft(any_engine, id_number=id_number(2, region="110105"))

    result = any_engine.verify(against=earlier)
    assert result.ok, result.problems
    assert result.count == earlier.count + 2


def test_an_edited_record_is_detected(any_engine: FilingEngine) -> None:
    _trail(any_engine)
    _allow_tampering(any_engine)

    _set(any_engine, 4, rule_id="L9")

    result = any_engine.verify()
    assert not result.ok
    assert result.problems == ["record 4: content does not match its hash"]


def test_an_edited_reason_is_detected(any_engine: FilingEngine) -> None:
    _trail(any_engine)
    _allow_tampering(any_engine)

    _set(any_engine, 3, reason="approved after review", outcome="applied")

    assert any_engine.verify().problems == ["record 3: content does not match its hash"]


def test_a_record_deleted_from_the_middle_is_detected(any_engine: FilingEngine) -> None:
    _trail(any_engine)
    _allow_tampering(any_engine)

    _execute(any_engine, "DELETE FROM audit_record WHERE seq = 3")

    problems = any_engine.verify().problems
    assert "record 4: expected sequence number 3" in problems
    assert "record 4: does not follow the record before it" in problems
    assert len([p for p in problems if "sequence" in p]) == 1  # one gap, reported once


def test_two_records_with_swapped_contents_are_detected(any_engine: FilingEngine) -> None:
    _trail(any_engine)
    _allow_tampering(any_engine)
    records = _records(any_engine)
    second, third = ({k: v for k, v in records[i].items() if k != "seq"} for i in (1, 2))

    _set(any_engine, 2, **third)
    _set(any_engine, 3, **second)

    problems = any_engine.verify().problems
    assert "record 2: content does not match its hash" in problems
    assert "record 3: content does not match its hash" in problems
    assert "record 2: does not follow the record before it" in problems


def test_a_forged_record_inserted_with_the_rest_renumbered_is_detected(
    any_engine: FilingEngine,
) -> None:
    filing_id = _trail(any_engine)
    _allow_tampering(any_engine)
    records = _records(any_engine)
    for record in reversed(records[2:]):  # make room at 3, highest first (primary key)
        _set(any_engine, record["seq"], seq=record["seq"] + 1)
    forged = {
        **records[1],
        "seq": 3, "event": "withdraw", "from_state": "submitted", "to_state": "withdrawn",
        "reason": "withdraw applied", "prev_hash": records[1]["hash"],
    }  # fmt: skip
    forged["hash"] = audit.record_hash(forged)  # a well-formed record in itself

    _execute(any_engine, sa.insert(AUDIT).values(**forged))

    assert [r["event"] for r in any_engine.history(filing_id)][:4] == [
        "create",
        "submit",
        "withdraw",
        "approve",
    ]
    problems = any_engine.verify().problems
    assert not any(p.startswith("record 3:") for p in problems)
    assert "record 4: content does not match its hash" in problems
    assert "record 4: does not follow the record before it" in problems


def test_a_truncated_tail_is_detected_only_against_an_earlier_checkpoint(
    any_engine: FilingEngine,
) -> None:
    _trail(any_engine)
    checkpoint = any_engine.checkpoint()
    _allow_tampering(any_engine)

    _execute(any_engine, "DELETE FROM audit_record WHERE seq >= 4")

    assert any_engine.verify().ok  # what is left is a perfect chain
    result = any_engine.verify(against=checkpoint)
    assert result.problems == ["the trail has 3 records, the checkpoint 5 (truncated)"]


def test_a_chain_rewritten_with_recomputed_hashes_is_detected_against_an_earlier_checkpoint(
    any_engine: FilingEngine,
) -> None:
    _trail(any_engine)
    checkpoint = any_engine.checkpoint()
    _allow_tampering(any_engine)
    records = _records(any_engine)
    records[2].update(outcome="applied", to_state="effective", reason="approve applied")
    prev = audit.GENESIS_HASH
    for record in records:
        record["prev_hash"] = prev
        record["hash"] = prev = audit.record_hash(record)
        changed = ("prev_hash", "hash", "outcome", "to_state", "reason")
        _set(any_engine, record["seq"], **{k: record[k] for k in changed})

    assert any_engine.verify().ok  # internally consistent: only a checkpoint can tell
    result = any_engine.verify(against=checkpoint)
    assert result.problems == ["record 5: differs from the checkpoint's head (history rewritten)"]


def test_a_checkpoint_taken_while_another_engine_writes_is_consistent(
    any_engine: FilingEngine,
    open_engine: Callable[..., FilingEngine],
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Regression (fixed in 485cb3e): head() read the last record and count(*) in two
    statements; under PostgreSQL READ COMMITTED a commit in between gave a checkpoint whose
    count was one ahead of its head hash, and verify() then cried 'history rewritten'."""
    writer = open_engine(db_url)
    filing = effective(any_engine)
    wrote: list[str] = []

    def then_another_engine_writes(method: Callable[..., Any]) -> Callable[..., Any]:
        def read(self: Tx, sql: str, params: Any = None) -> Any:
            result = method(self, sql, params)
            if not wrote:  # right after the checkpoint's first read
                wrote.append(sql)
                writer.cancel(filing.id, PERSON)
            return result

        return read

    for name in ("one", "scalar", "all"):
        monkeypatch.setattr(Tx, name, then_another_engine_writes(getattr(Tx, name)))
    checkpoint = any_engine.checkpoint()
    monkeypatch.undo()

    assert wrote and any_engine.checkpoint().count == 4
    result = any_engine.verify(against=checkpoint)
    assert result.ok, result.problems


# --- append-only in the database ----------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_record SET rule_id = 'L9' WHERE seq = 1",
        "UPDATE audit_record SET outcome = 'applied'",
        "DELETE FROM audit_record WHERE seq = 2",
        "DELETE FROM audit_record",
    ],
)
def test_the_database_refuses_to_change_or_delete_an_audit_record(
    any_engine: FilingEngine, statement: str
) -> None:
    _trail(any_engine)
    before = _records(any_engine)

    with pytest.raises(sa.exc.DBAPIError, match="audit_record is append-only"):
        _execute(any_engine, statement)

    assert _records(any_engine) == before
    assert any_engine.verify().ok


def test_postgresql_refuses_to_truncate_the_audit_trail(
    pg_url: str, open_engine: Callable[..., FilingEngine]
) -> None:
    engine = open_engine(pg_url)
    _trail(engine)
    before = _records(engine)

    with pytest.raises(sa.exc.DBAPIError, match="audit_record is append-only"):
        _execute(engine, "TRUNCATE audit_record")

    assert _records(engine) == before


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE policy_record SET content = '{}' WHERE region = 'national'",
        "DELETE FROM policy_record WHERE region = 'national'",
    ],
)
def test_the_database_refuses_to_change_or_delete_a_pinned_policy(
    any_engine: FilingEngine, statement: str
) -> None:
    draft(any_engine)
    before = _rows(any_engine, POLICY)

    with pytest.raises(sa.exc.DBAPIError, match="policy_record is append-only"):
        _execute(any_engine, statement)

    assert _rows(any_engine, POLICY) == before
    assert len(before) == 5


def test_postgresql_refuses_to_truncate_the_pinned_policies(
    pg_url: str, open_engine: Callable[..., FilingEngine]
) -> None:
    engine = open_engine(pg_url)
    before = _rows(engine, POLICY)

    with pytest.raises(sa.exc.DBAPIError, match="policy_record is append-only"):
        _execute(engine, "TRUNCATE policy_record")

    assert _rows(engine, POLICY) == before


@pytest.mark.parametrize(("table", "key", "column"), [
    ("audit_record", "seq = 1", "reason"),
    ("policy_record", "region = 'national'", "content"),
])  # fmt: skip
def test_sqlite_refuses_to_overwrite_a_record_with_insert_or_replace(
    engine: FilingEngine, table: str, key: str, column: str
) -> None:
    draft(engine)
    columns = [c.name for c in (AUDIT if table == "audit_record" else POLICY).columns]
    chosen = ", ".join("'forged'" if c == column else c for c in columns)
    overwrite = (
        f"INSERT OR REPLACE INTO {table} ({', '.join(columns)}) "
        f"SELECT {chosen} FROM {table} WHERE {key}"
    )

    with contextlib.suppress(sa.exc.DBAPIError):
        _execute(engine, overwrite)

    with engine.sql_engine.connect() as conn:
        value = conn.execute(sa.text(f"SELECT {column} FROM {table} WHERE {key}")).scalar_one()
    assert value != "forged"


# --- personal data ------------------------------------------------------------------------------


def test_no_record_holds_a_whole_id_number(any_engine: FilingEngine) -> None:
    first, second = id_number(7, region="110105"), id_number(8, region="110105")
    assert first.endswith("X")
    one = effective(any_engine, id_number=first.lower())
    any_engine.change(  # reviewed: the old filing stays effective until approval
        one.id, id_number=first, kind="K4", insurance_type="employee", insured_region="110000",
        treatment_region="440300", actor=PERSON, documents=FULL_DOCUMENTS["K4"], consent_given=True,
    )  # fmt: skip
    two = draft(any_engine, id_number=second)
    with pytest.raises(TransitionRefused):
        any_engine.cancel(two.id, PERSON)
    any_engine.submit(two.id, PERSON)
    with pytest.raises(TransitionRefused):
        any_engine.approve(two.id, PERSON)
    any_engine.approve(two.id, OFFICER)

    rows = {t.name: _rows(any_engine, t) for t in (AUDIT, FILING, DEADLINE, POLICY)}

    assert len(rows["audit_record"]) == 10 and len(rows["filing_record"]) == 3
    for table, table_rows in rows.items():
        for row in table_rows:
            for column, value in row.items():
                text = str(value).upper()
                assert first not in text and second not in text, f"{table}.{column}"
    masked = {r["person_masked"] for r in rows["filing_record"]}
    assert masked == {"1101**********007X", "1101**********0088"}
    assert {f.person_masked for f in any_engine.list_for_person(second)} == {"1101**********0088"}
