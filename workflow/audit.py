"""The audit trail: one record per attempted transition, in the transition's own transaction,
hash-chained so that any edit, deletion, reordering, insertion or truncation is detected.

Each record's `hash` is SHA-256 over its canonical content, which includes the previous
record's hash. A checkpoint (count + head hash), kept outside the database, pins the chain's
length and history: a verifier given one also detects a truncated tail or a rewritten chain.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from workflow.store import Tx

GENESIS_HASH = "0" * 64

# The content a record's hash covers, in this order.
HASHED_FIELDS: tuple[str, ...] = (
    "seq",
    "filing_id",
    "event",
    "from_state",
    "to_state",
    "outcome",
    "rule_id",
    "reason",
    "inputs",
    "actor_id",
    "actor_role",
    "actor_org",
    "channel",
    "on_behalf",
    "policy_region",
    "policy_version",
    "request_id",
    "correlation_id",
    "at",
    "prev_hash",
)


def canonical_inputs(inputs: Mapping[str, Any]) -> str:
    return json.dumps(
        inputs, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str
    )


_AT = HASHED_FIELDS.index("at")


def record_hash(record: Mapping[str, Any]) -> str:
    values = [record[f] for f in HASHED_FIELDS]
    at = values[_AT]  # the one instant among the hashed fields
    if isinstance(at, datetime):
        values[_AT] = at.astimezone(UTC).isoformat()
    blob = json.dumps(values, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


_COLUMNS = (*HASHED_FIELDS, "hash")
_INSERT = (
    f"INSERT INTO audit_record ({', '.join(_COLUMNS)}) "
    f"VALUES ({', '.join(':' + c for c in _COLUMNS)})"
)
_LAST = "SELECT seq, hash FROM audit_record ORDER BY seq DESC LIMIT 1"


def append(tx: Tx, record: dict[str, Any]) -> dict[str, Any]:
    """Chain `record` (all HASHED_FIELDS but seq and prev_hash) onto the trail, in `tx`.

    Appenders never race: the write transaction holds SQLite's write lock (BEGIN IMMEDIATE) or
    PostgreSQL's advisory write lock (workflow.store). The primary key on `seq` would refuse a
    fork even so.
    """
    last = tx.one(_LAST)
    if last is None:
        record["seq"], record["prev_hash"] = 1, GENESIS_HASH
    else:
        record["seq"], record["prev_hash"] = last["seq"] + 1, last["hash"]
    record["hash"] = record_hash(record)
    tx.run(_INSERT, record)
    return record


def append_many(tx: Tx, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chain several records at once (one read of the head, one statement): what `append`
    does for each in turn, for the scheduler's set-wise expiries."""
    if not records:
        return records
    last = tx.one(_LAST)
    seq, prev = (0, GENESIS_HASH) if last is None else (last["seq"], last["hash"])
    rows = []
    bound: dict[Any, Any] = {}  # each instant converted once, not once per record
    for record in records:
        seq += 1
        record["seq"], record["prev_hash"] = seq, prev
        record["hash"] = prev = record_hash(record)
        at = record["at"]
        if at not in bound:
            bound[at] = tx.bound(at)
        rows.append({**record, "at": bound[at]})
    tx.run_many(_INSERT, rows, bound=True)
    return records


@dataclass(frozen=True)
class Checkpoint:
    count: int
    head_hash: str

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "head_hash": self.head_hash}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Checkpoint:
        return cls(count=int(data["count"]), head_hash=str(data["head_hash"]))


@dataclass
class Verification:
    """The result of walking the chain. `ok` only if no problem was found."""

    count: int = 0
    head_hash: str = GENESIS_HASH
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def checkpoint(self) -> Checkpoint:
        return Checkpoint(self.count, self.head_hash)


def verify(records: Iterable[Mapping[str, Any]], against: Checkpoint | None = None) -> Verification:
    """Walk records in stored order and report every break in the chain.

    Detects: an edited record (hash mismatch), a deleted or inserted record (sequence gap or
    previous-hash mismatch), reordering (both), and, given a checkpoint, a truncated tail
    (fewer records) or a rewritten history (different hash at the checkpoint's position).
    """
    result = Verification()
    prev = GENESIS_HASH
    expected_seq = 1
    for record in records:
        seq = record["seq"]
        if seq != expected_seq:
            result.problems.append(f"record {seq}: expected sequence number {expected_seq}")
        expected_seq = seq + 1  # resynchronise: one gap is one problem, not one per record
        if record["prev_hash"] != prev:
            result.problems.append(f"record {seq}: does not follow the record before it")
        if record_hash(record) != record["hash"]:
            result.problems.append(f"record {seq}: content does not match its hash")
        prev = record["hash"]
        result.count += 1
        if against is not None and result.count == against.count and prev != against.head_hash:
            result.problems.append(
                f"record {seq}: differs from the checkpoint's head (history rewritten)"
            )
    result.head_hash = prev
    if against is not None and result.count < against.count:
        result.problems.append(
            f"the trail has {result.count} records, the checkpoint {against.count} (truncated)"
        )
    return result


def stream(tx: Tx) -> Iterator[Mapping[str, Any]]:
    """All records in sequence order, fetched in batches (memory stays flat)."""
    return tx.iterate("SELECT * FROM audit_record ORDER BY seq")


def head(tx: Tx) -> Checkpoint:
    """Count and head hash, read in one statement so that both come from one snapshot (under
    READ COMMITTED two statements could straddle another transaction's commit)."""
    last = tx.one(
        "SELECT (SELECT count(*) FROM audit_record) AS n, hash "
        "FROM audit_record ORDER BY seq DESC LIMIT 1"
    )
    if last is None:
        return Checkpoint(0, GENESIS_HASH)
    return Checkpoint(int(last["n"]), last["hash"])
