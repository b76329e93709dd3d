"""Due deadline rows, applied in batches: the transactional core of the scheduler (jobs/).

Deadlines are rows, not timers. A batch is one write transaction: it claims up to
`limit` due rows, earliest first, and applies each with the service's own guarded transitions
(`_fire_row`), so a batch that fails or is killed half way leaves nothing of itself. A row is
marked when it is applied, so a rerun is a no-op. On PostgreSQL the rows are claimed with
`FOR UPDATE SKIP LOCKED` inside the write transaction; every write there first takes the audit
chain's lock (workflow.store), so several daemons take turns batch by batch.

Expiries of plain filings, by far the most numerous deadline, are applied set-wise: the same
table row, guard, state change, version bump, settled deadlines and audit records as one
`expire` through `_fire_in`, written with one statement per kind for the whole group. Every
other row (and any expiry the fast path cannot decide) goes through `_fire_row`, inside a
savepoint: a row whose application raises (a bug, not a refusal) is rolled back alone, left
pending with its error and retried later, and never holds up the rows behind it.

Provisional deadlines (C6) are recomputed by `recompute_provisional` once the year they fall in
becomes known to the calendar (holidays added to config.toml).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog

from states.admissions import filing_window, window_reminder_at
from states.coverage import claim_deadline, claim_reminder_at
from states.guards import validity_over
from states.periods import local_date, start_of_local_day
from states.table import TRANSITIONS
from states.vocabulary import FilingState, Outcome, Role
from workflow import audit
from workflow.context import SYSTEM_ACTOR, Request
from workflow.hospital import (
    CLAIM_DUE,
    CLAIM_REMINDER,
    FILING_WINDOW,
    REPORT_WINDOW,
    WINDOW_REMINDER,
)
from workflow.outbox import ABANDON, Reminder
from workflow.store import Row, Tx

if TYPE_CHECKING:
    from workflow.service import FilingService


def _log() -> Any:
    """Looked up at each use: a logger cached at import would keep the first configuration."""
    return structlog.get_logger("workflow.sweep")


_KEY = "subject_id = :s AND kind = :k AND due_at = :d"
_DUE_COLUMNS = "subject_id, kind, due_at, attempts"
_DUE_WHERE = (
    "WHERE fired_at IS NULL AND due_at <= :now AND (retry_at IS NULL OR retry_at <= :now) "
    "ORDER BY due_at, subject_id, kind LIMIT :limit"
)
_FAILED = (
    "UPDATE deadline_record SET attempts = attempts + 1, last_error = :error, "
    "retry_at = :retry_at WHERE subject_id = :s AND kind = :k AND due_at = :d"
)
_EXPIRE_FILING = (
    "UPDATE filing_record SET state = 'expired', version = :version, updated_at = :at "
    "WHERE id = :id AND version = :expected_version AND state = 'effective'"
)
_SETTLE_EXPIRED = (
    "UPDATE deadline_record SET fired_at = :at, "
    "outcome = CASE WHEN kind = 'expire' THEN 'fired' ELSE 'retired' END "
    "WHERE subject_id = :id AND fired_at IS NULL"
)
_RETRY_BASE = timedelta(seconds=30)
_RETRY_CAP = timedelta(hours=1)
_EXPIRE_ROW = next(t for t in TRANSITIONS if t.event == "expire")


@dataclass(frozen=True)
class Applied:
    """What became of one due row: "fired", "retired" (moot, recorded) or "failed" (set
    aside with its error, retried after a backoff). `due_at` is None for a row whose stored
    instant could not be read."""

    subject_id: str
    kind: str
    due_at: datetime | None
    outcome: str


@dataclass(frozen=True)
class Batch:
    applied: tuple[Applied, ...]
    claimed: int  # due rows the batch took; fewer than its limit: nothing more is due now

    def count(self, outcome: str) -> int:
        return sum(1 for a in self.applied if a.outcome == outcome)

    def __len__(self) -> int:
        return len(self.applied)


def fire_due(service: FilingService, request: Request, *, limit: int = 500) -> Batch:
    """Apply up to `limit` due rows, earliest first, in one transaction."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    lock = " FOR UPDATE SKIP LOCKED" if service.store.postgres else ""

    def work(tx: Tx, journal: list[dict[str, Any]]) -> Batch:
        now = service._now()
        params = {"now": now, "limit": limit}
        rows, unreadable, _ = _read_rows(tx, _DUE_COLUMNS, _DUE_WHERE + lock, params)
        applied = [_set_aside(tx, row, now) for row in unreadable]
        plain = _expirable(service, tx, rows, now)
        group: list[Mapping[str, Any]] = []
        for row in rows:
            if row["kind"] == "expire" and row["subject_id"] in plain:
                group.append({**plain[row["subject_id"]], "due_at": row["due_at"]})
                continue
            if group:
                applied += _expire_group(service, tx, group, request, journal, now)
                group = []
            done = _one(service, tx, row, request, journal, now)
            if done is not None:
                applied.append(done)
        if group:
            applied += _expire_group(service, tx, group, request, journal, now)
        return Batch(tuple(applied), len(rows) + len(unreadable))

    return service._run(work, request, retry_stale=False)


def _read_rows(
    tx: Tx, columns: str, where: str, params: Mapping[str, Any]
) -> tuple[list[Row], list[Row], tuple[Any, str, str] | None]:
    """Deadline rows (`columns` of those `where` selects), and apart from them the rows whose
    stored values no reader takes (written by hand, or by an old bug): one such row must not
    stop every timer. If the rows cannot be read whole, they are found again by their keys,
    the instant as the database's own text (which no reader decodes), and read one by one;
    the unreadable ones keep that text as `due_text`, by which they are set aside. The last
    key read, in the form the query takes back, is returned for paging."""
    tx.run("SAVEPOINT read_rows")
    try:
        rows = tx.all(f"SELECT {columns} FROM deadline_record {where}", params)
    except Exception:  # a value no reader takes: the rows are read one by one below
        tx.run("ROLLBACK TO SAVEPOINT read_rows")
    else:
        tx.run("RELEASE SAVEPOINT read_rows")
        return rows, [], _position(rows[-1], "due_at") if rows else None
    tx.run("RELEASE SAVEPOINT read_rows")
    as_text = columns.replace("due_at", "CAST(due_at AS TEXT) AS due_text")
    keys = tx.all(f"SELECT {as_text} FROM deadline_record {where}", params)
    one = f"SELECT {columns} FROM deadline_record WHERE {_KEY}"
    readable: list[Row] = []
    unreadable: list[Row] = []
    for key in keys:
        try:
            row = tx.one(one, {"s": key["subject_id"], "k": key["kind"], "d": key["due_text"]})
        except Exception:  # this row alone cannot be read
            unreadable.append(key)
            continue
        if row is not None:
            readable.append(row)
    return readable, unreadable, _position(keys[-1], "due_text") if keys else None


def _position(row: Row, instant: str) -> tuple[Any, str, str]:
    return row[instant], row["subject_id"], row["kind"]


def _set_aside(tx: Tx, key: Mapping[str, Any], now: datetime) -> Applied:
    """A due row that cannot be read is set aside like one that cannot be applied: its
    error kept on the row (shown by `filing daemon status`), retried after a backoff."""
    attempts = key["attempts"] + 1
    retry_at = now + min(_RETRY_BASE * 2 ** (attempts - 1), _RETRY_CAP)
    error = "unreadable stored value"
    tx.run(
        _FAILED,
        {"s": key["subject_id"], "k": key["kind"], "d": key["due_text"], "error": error,
         "retry_at": retry_at},
    )  # fmt: skip
    _log().error(
        "deadline.failed", subject_id=key["subject_id"], kind=key["kind"],
        due_at=key["due_text"], error=error, attempts=attempts, retry_at=retry_at.isoformat(),
    )  # fmt: skip
    return Applied(key["subject_id"], key["kind"], None, "failed")


def _expirable(
    service: FilingService, tx: Tx, rows: Sequence[Mapping[str, Any]], now: datetime
) -> dict[str, Mapping[str, Any]]:
    """The due expiries the set-wise path decides: plain filings (no admission) still
    effective whose validity is over (V1/V3, the table's own guard). Anything else is left
    to `_fire_row`, which records why it does not apply (or, for a filing whose row cannot
    be read, sets its deadline aside alone)."""
    ids = [r["subject_id"] for r in rows if r["kind"] == "expire"]
    if not ids or not service.machine.allows("expire", FilingState.EFFECTIVE, Role.SYSTEM):
        return {}
    names = ", ".join(f":i{n}" for n in range(len(ids)))
    tx.run("SAVEPOINT due_filings")
    try:
        found = tx.all(
            "SELECT id, version, state, valid_until, policy_region, policy_version, "
            f"admission_id FROM filing_record WHERE id IN ({names})",
            {f"i{n}": i for n, i in enumerate(ids)},
        )
    except Exception:  # a filing row no reader takes: every expiry goes the single way
        tx.run("ROLLBACK TO SAVEPOINT due_filings")
        found = []
    tx.run("RELEASE SAVEPOINT due_filings")
    return {
        f["id"]: f
        for f in found
        if f["state"] == FilingState.EFFECTIVE.value
        and f["admission_id"] is None
        and validity_over(f["valid_until"], now)
    }


def _expire_group(
    service: FilingService,
    tx: Tx,
    group: Sequence[Mapping[str, Any]],
    request: Request,
    journal: list[dict[str, Any]],
    now: datetime,
) -> list[Applied]:
    at = tx.bound(now)  # one conversion per group, not one per row
    changed = tx.run_many(
        _EXPIRE_FILING,
        [
            {"id": f["id"], "version": f["version"] + 1, "expected_version": f["version"]}
            | {"at": at}
            for f in group
        ],
        bound=True,
    )
    if changed != len(group):  # impossible under the write lock; loud if it ever is not
        raise AssertionError(f"expired {changed} of {len(group)} filings")
    tx.run_many(_SETTLE_EXPIRED, [{"id": f["id"], "at": at} for f in group], bound=True)
    today = str(local_date(now))
    actor = SYSTEM_ACTOR
    shared = {  # what every record of the group has in common, built once
        "event": "expire",
        "from_state": _EXPIRE_ROW.source.value,
        "to_state": _EXPIRE_ROW.dest.value,
        "outcome": Outcome.APPLIED.value,
        "rule_id": _EXPIRE_ROW.rule,
        "reason": "expire applied",
        "actor_id": actor.id,
        "actor_role": actor.role.value,
        "actor_org": actor.organisation,
        "channel": actor.channel.value,
        "on_behalf": actor.on_behalf,
        "request_id": request.request_id,
        "correlation_id": request.correlation_id,
        "at": now,
    }
    journal += audit.append_many(
        tx,
        [
            {
                **shared,
                "filing_id": f["id"],
                "inputs": audit.canonical_inputs(
                    {"today": today, "valid_until": str(f["valid_until"])}
                ),
                "policy_region": f["policy_region"],
                "policy_version": f["policy_version"],
            }
            for f in group
        ],
    )
    return [Applied(f["id"], "expire", f["due_at"], "fired") for f in group]


def _one(
    service: FilingService,
    tx: Tx,
    row: Mapping[str, Any],
    request: Request,
    journal: list[dict[str, Any]],
    now: datetime,
) -> Applied | None:
    subject, kind, due_at = row["subject_id"], row["kind"], row["due_at"]
    mark = len(journal)
    tx.run("SAVEPOINT due_row")
    try:
        outcome = service._fire_row(tx, subject, kind, due_at, request, journal)
    except Exception as exc:  # a bug or bad data, not a refusal: this row alone waits
        tx.run("ROLLBACK TO SAVEPOINT due_row")
        tx.run("RELEASE SAVEPOINT due_row")
        del journal[mark:]
        attempts = row["attempts"] + 1
        delay = min(_RETRY_BASE * 2 ** (attempts - 1), _RETRY_CAP)
        error = type(exc).__name__[:64]
        tx.run(
            _FAILED,
            {"s": subject, "k": kind, "d": due_at, "error": error, "retry_at": now + delay},
        )
        # The class only: a message could quote input. The row keeps it too, for status.
        _log().error(
            "deadline.failed", subject_id=subject, kind=kind, due_at=due_at.isoformat(),
            error=error, attempts=attempts, retry_at=(now + delay).isoformat(),
        )  # fmt: skip
        return Applied(subject, kind, due_at, "failed")
    tx.run("RELEASE SAVEPOINT due_row")
    return None if outcome is None else Applied(subject, kind, due_at, outcome)


# -- C6: provisional deadlines ----------------------------------------------------------------


@dataclass(frozen=True)
class Recomputed:
    subject_id: str
    kind: str
    old_due_at: datetime
    new_due_at: datetime
    provisional: bool


_PROVISIONAL_COLUMNS = "subject_id, kind, due_at, rule_id"
_PROVISIONAL_WHERE = (
    "WHERE provisional AND fired_at IS NULL AND due_at < :h "
    "AND (due_at, subject_id, kind) > (:d, :s, :k) "
    "ORDER BY due_at, subject_id, kind LIMIT :limit"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FAR = datetime(9999, 1, 1, tzinfo=UTC)
_SUPERSEDE = (
    "UPDATE deadline_record SET fired_at = :at, outcome = 'recomputed' "
    "WHERE subject_id = :s AND kind = :k AND due_at = :d AND fired_at IS NULL"
)
_CONFIRM = (
    "UPDATE deadline_record SET provisional = :p "
    "WHERE subject_id = :s AND kind = :k AND due_at = :d AND fired_at IS NULL"
)
_CLAIM_DEADLINE = (
    "UPDATE claim_record SET last_day = :last_day, due_at = :due_at, provisional = :p, "
    "updated_at = :at WHERE id = :id"
)


def recompute_provisional(
    service: FilingService, request: Request, *, batch: int = 500
) -> list[Recomputed]:
    """C6: recount the pending provisional deadlines on today's calendar. A deadline whose
    year has become known moves to its recounted instant (the old row is marked `recomputed`,
    a new row is written) or is confirmed where it stands; either way it is audited under
    rule C6 with the old and new instants. One still in an unknown year is left as it is.

    Rows are taken `batch` at a time, each batch its own short transaction, so writers never
    wait long; only rows up to the year after the last known one are read (a later deadline
    cannot depend on the years known so far). A row whose recount raises is rolled back alone,
    logged, and tried again next time; a row that cannot be read is logged and passed over
    (the sweep sets it aside)."""
    known = service.calendar.known_years
    horizon = start_of_local_day(date(max(known) + 2, 1, 1)) if known else _FAR
    after: tuple[Any, str, str] | None = (_EPOCH, "", "")
    done: list[Recomputed] = []
    while after is not None:
        read, changed, after = _recount_batch(service, request, after, horizon, batch)
        done += changed
        if read < batch:
            break
    return done


def _recount_batch(
    service: FilingService,
    request: Request,
    after: tuple[Any, str, str],
    horizon: datetime,
    limit: int,
) -> tuple[int, list[Recomputed], tuple[Any, str, str] | None]:
    """One batch: how many rows it read, what changed, and the key to read on from."""

    def work(
        tx: Tx, journal: list[dict[str, Any]]
    ) -> tuple[int, list[Recomputed], tuple[Any, str, str] | None]:
        now = service._now()
        params = {"d": after[0], "s": after[1], "k": after[2], "h": horizon, "limit": limit}
        rows, unreadable, last = _read_rows(tx, _PROVISIONAL_COLUMNS, _PROVISIONAL_WHERE, params)
        for key in unreadable:
            _log().error(
                "recompute.failed", subject_id=key["subject_id"], kind=key["kind"],
                error="unreadable stored value",
            )  # fmt: skip
        done: list[Recomputed] = []
        for row in rows:
            mark = len(journal)
            tx.run("SAVEPOINT recount_row")
            try:
                changed = _recount_row(service, tx, row, request, journal, now)
            except Exception as exc:  # this row alone waits for the next recount
                tx.run("ROLLBACK TO SAVEPOINT recount_row")
                del journal[mark:]
                _log().error(
                    "recompute.failed", subject_id=row["subject_id"], kind=row["kind"],
                    error=type(exc).__name__,
                )  # fmt: skip
                changed = None
            tx.run("RELEASE SAVEPOINT recount_row")
            if changed is not None:
                done.append(changed)
        return len(rows) + len(unreadable), done, last

    return service._run(work, request, retry_stale=False)


def _recount_row(
    service: FilingService,
    tx: Tx,
    row: Row,
    request: Request,
    journal: list[dict[str, Any]],
    now: datetime,
) -> Recomputed | None:
    recount = _recount(service, tx, row["subject_id"], row["kind"])
    if recount is None:
        return None
    due_at, provisional, extra = recount
    if provisional and due_at == row["due_at"]:
        return None  # still in an unknown year: nothing known has changed
    key = {"s": row["subject_id"], "k": row["kind"], "d": row["due_at"]}
    if due_at == row["due_at"]:
        tx.run(_CONFIRM, {**key, "p": provisional})
    else:
        tx.run(_SUPERSEDE, {**key, "at": now})
        service._deadline(
            tx, row["subject_id"], row["kind"], due_at, row["rule_id"], provisional, now
        )
    if extra is not None:
        tx.run(_CLAIM_DEADLINE, {**extra, "id": row["subject_id"], "at": now})
    policy, state, _ = service._subject(tx, row["subject_id"])
    journal.append(
        service._audit_subject(
            tx, row["subject_id"], policy, "recompute_deadline", state, state,
            Outcome.APPLIED, "C6",
            "the year's holidays are now known: the deadline is recounted",
            {
                "kind": row["kind"], "deadline_rule": row["rule_id"],
                "old_due_at": row["due_at"].isoformat(), "new_due_at": due_at.isoformat(),
                "provisional": provisional,
            },
            SYSTEM_ACTOR, request, now,
        )
    )  # fmt: skip
    return Recomputed(row["subject_id"], row["kind"], row["due_at"], due_at, provisional)


def _recount(
    service: FilingService, tx: Tx, subject: str, kind: str
) -> tuple[datetime, bool, dict[str, Any] | None] | None:
    """A provisional deadline counted again from what it was counted from."""
    calendar = service.calendar
    if kind in (CLAIM_DUE, CLAIM_REMINDER):
        loaded = service._load_claim(tx, subject)
        policy = service._policy(tx, *loaded.policy_region_version)
        end = claim_deadline(policy, loaded.claim.counted_from, calendar)
        if end is None:
            return None
        if kind == CLAIM_REMINDER:
            at = claim_reminder_at(policy, end.last_day)
            return None if at is None else (at, end.provisional, None)
        claim = {"last_day": end.last_day, "due_at": end.ends_at, "p": end.provisional}
        return end.ends_at, end.provisional, claim
    if kind in (FILING_WINDOW, REPORT_WINDOW, WINDOW_REMINDER):
        if subject.startswith("adm"):
            adm, policy = service._admission_and_policy(tx, subject)
        else:
            filing, _ = service._load(tx, subject)
            if filing.admission_id is None:
                return None
            adm, policy = service._admission_and_policy(tx, filing.admission_id)
        window = filing_window(adm, policy, calendar)
        if window is None:
            return None
        if kind == WINDOW_REMINDER:
            remind = window_reminder_at(window, policy)
            return None if remind is None else (remind, window.end.provisional, None)
        return window.end.ends_at, window.end.provisional, None
    return None  # validity periods and E6 thresholds are never provisional (C5)


# -- reminders: before delivery, and for filings older than reminders ----------------------------


def vet_reminders(
    service: FilingService, request: Request, worker: str, claimed: Sequence[Reminder]
) -> list[Reminder]:
    """The claimed reminders still worth sending. One whose subject moved on (cancelled,
    filed, granted) or whose deadline passed while delivery kept failing is abandoned, not
    sent, and recorded as a refused `abandon_reminder` naming why."""
    if not claimed:
        return []

    def work(tx: Tx, journal: list[dict[str, Any]]) -> list[Reminder]:
        now = service._now()
        keep: list[Reminder] = []
        for r in claimed:
            target = service._reminder_target(tx, r.subject_id, r.kind)
            if target is not None and target > now:
                keep.append(r)
                continue
            why = "late" if target is not None else "moot"
            params = {**r.key, "worker": worker, "at": now, "why": why}
            if tx.run(ABANDON, params) != 1:
                continue  # its lease passed to another daemon, which decides
            policy, state, what = service._subject(tx, r.subject_id)
            reason = (
                f"the {kind_of(r)} was not delivered before what it warned of, due at "
                f"{target.isoformat()}"
                if target is not None
                else f"the {kind_of(r)} no longer applies: the {what} is {state}"
            )
            inputs = {"kind": r.kind, "due_at": r.due_at.isoformat(), "attempts": r.attempts}
            journal.append(
                service._audit_subject(
                    tx, r.subject_id, policy, "abandon_reminder", state, state, Outcome.DENIED,
                    r.rule_id, reason, inputs, SYSTEM_ACTOR, request, now,
                )
            )  # fmt: skip
        return keep

    return service._run(work, request, retry_stale=False)


def kind_of(r: Reminder) -> str:
    return r.kind.replace("_", " ")


_WITHOUT_EXPIRY_REMINDERS = (
    "SELECT id FROM filing_record f WHERE state = 'effective' AND valid_until >= :today "
    "AND NOT EXISTS (SELECT 1 FROM deadline_record d "
    "WHERE d.subject_id = f.id AND d.kind = 'expiry_reminder') ORDER BY id"
)


def backfill_reminders(service: FilingService, request: Request, *, batch: int = 500) -> int:
    """Expiry reminders for effective filings that have none (they took effect before this
    version wrote reminders): those still ahead, written once, `batch` filings a transaction.
    Returns how many rows were written."""
    with service.store.read() as tx:
        ids = [
            r["id"]
            for r in tx.all(_WITHOUT_EXPIRY_REMINDERS, {"today": local_date(service._now())})
        ]
    written = 0
    for start in range(0, len(ids), batch):
        chunk = ids[start : start + batch]

        def work(tx: Tx, journal: list[dict[str, Any]], chunk: list[str] = chunk) -> int:
            now = service._now()
            n = 0
            for filing_id in chunk:
                filing, policy = service._load(tx, filing_id)
                has = tx.scalar(
                    "SELECT COUNT(*) FROM deadline_record "
                    "WHERE subject_id = :s AND kind = 'expiry_reminder'",
                    {"s": filing_id},
                )
                if filing.state is FilingState.EFFECTIVE and not has:
                    n += service._write_expiry_reminders(tx, filing, policy, now)
            return n

        written += service._run(work, request, retry_stale=False)
    return written
