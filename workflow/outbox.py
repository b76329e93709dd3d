"""The reminder outbox: rows written by the sweep in the transaction that fired a reminder's
deadline (so a reminder exists exactly once per subject, kind and due instant), delivered by a
notifier (jobs/notify.py).

Delivery is claimed with a lease: `claim` marks up to `limit` deliverable rows as this worker's
until `lease_until` (on PostgreSQL with `FOR UPDATE SKIP LOCKED`, so workers never wait on each
other), the worker delivers them outside any transaction, then `delivered` or `failed` records
the result. A worker that dies holding a lease loses it when the lease ends. A failed delivery
stays, with its error and attempt count, and is retried with exponential backoff: never lost.
Across a crash between a delivery and its record a reminder can be sent again, so each carries
a stable `id` for the receiver to deduplicate on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from workflow.store import Row, Store

_CLAIMABLE = (
    "delivered_at IS NULL AND abandoned_at IS NULL AND next_attempt_at <= :now "
    "AND (claimed_until IS NULL OR claimed_until < :now)"
)
_CLAIM_PG = (
    "UPDATE outbox_record SET claimed_by = :worker, claimed_until = :until "
    "WHERE (subject_id, kind, due_at) IN (SELECT subject_id, kind, due_at FROM outbox_record "
    f"WHERE {_CLAIMABLE} ORDER BY next_attempt_at LIMIT :limit FOR UPDATE SKIP LOCKED) "
    "RETURNING *"
)
_SELECT_SQLITE = (
    f"SELECT * FROM outbox_record WHERE {_CLAIMABLE} ORDER BY next_attempt_at LIMIT :limit"
)
_CLAIM_ONE = (
    "UPDATE outbox_record SET claimed_by = :worker, claimed_until = :until "
    "WHERE subject_id = :subject_id AND kind = :kind AND due_at = :due_at"
)
_KEY = "subject_id = :subject_id AND kind = :kind AND due_at = :due_at AND claimed_by = :worker"
_DELIVERED = (
    "UPDATE outbox_record SET delivered_at = :at, attempts = attempts + 1, last_error = NULL, "
    f"claimed_by = NULL, claimed_until = NULL WHERE {_KEY} AND delivered_at IS NULL"
)
_FAILED = (
    "UPDATE outbox_record SET attempts = attempts + 1, last_error = :error, "
    "next_attempt_at = :next_at, claimed_by = NULL, claimed_until = NULL "
    f"WHERE {_KEY} AND delivered_at IS NULL"
)


@dataclass(frozen=True)
class Reminder:
    subject_id: str
    kind: str
    due_at: datetime
    rule_id: str
    payload: dict[str, Any]
    created_at: datetime
    attempts: int
    next_attempt_at: datetime
    delivered_at: datetime | None
    last_error: str | None
    abandoned_at: datetime | None = None

    @classmethod
    def from_row(cls, r: Row) -> Reminder:
        return cls(
            r["subject_id"], r["kind"], r["due_at"], r["rule_id"], json.loads(r["payload"]),
            r["created_at"], r["attempts"], r["next_attempt_at"], r["delivered_at"],
            r["last_error"], r["abandoned_at"],
        )  # fmt: skip

    @property
    def key(self) -> dict[str, Any]:
        return {"subject_id": self.subject_id, "kind": self.kind, "due_at": self.due_at}


def claim(store: Store, worker: str, now: datetime, lease: timedelta, limit: int) -> list[Reminder]:
    """Lease up to `limit` deliverable reminders to `worker`, oldest first."""
    params = {"worker": worker, "until": now + lease, "now": now, "limit": limit}
    with store.write(chained=False) as tx:
        if store.postgres:
            rows = tx.all(_CLAIM_PG, params)
        else:  # the write lock is already ours: select, then mark
            rows = tx.all(_SELECT_SQLITE, params)
            for r in rows:
                tx.run(_CLAIM_ONE, {**params, **_key(r)})
    return sorted((Reminder.from_row(r) for r in rows), key=lambda r: r.next_attempt_at)


def delivered(store: Store, worker: str, reminder: Reminder, now: datetime) -> bool:
    with store.write(chained=False) as tx:
        return tx.run(_DELIVERED, {**reminder.key, "worker": worker, "at": now}) == 1


def failed(store: Store, worker: str, reminder: Reminder, error: str, next_at: datetime) -> bool:
    with store.write(chained=False) as tx:
        params = {**reminder.key, "worker": worker, "error": error[:200], "next_at": next_at}
        return tx.run(_FAILED, params) == 1


# Written in a chained transaction (with its audit record) by workflow.sweep.vet_reminders.
ABANDON = (
    "UPDATE outbox_record SET abandoned_at = :at, last_error = :why, claimed_by = NULL, "
    f"claimed_until = NULL WHERE {_KEY} AND delivered_at IS NULL AND abandoned_at IS NULL"
)


def reminders(store: Store, subject_id: str | None = None) -> list[Reminder]:
    where, params = ("WHERE subject_id = :s ", {"s": subject_id}) if subject_id else ("", {})
    with store.read() as tx:
        rows = tx.all(f"SELECT * FROM outbox_record {where}ORDER BY due_at, subject_id", params)
    return [Reminder.from_row(r) for r in rows]


def _key(r: Row) -> dict[str, Any]:
    return {"subject_id": r["subject_id"], "kind": r["kind"], "due_at": r["due_at"]}
