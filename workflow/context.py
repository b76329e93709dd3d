"""Who acts and under which request: passed to every command, recorded in every audit record."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from states.denial import Denial
from states.errors import InvalidInput, TransitionRefused
from states.vocabulary import Channel, Role
from workflow.identity import mask_personal_data


def new_id(now: datetime, prefix: str = "") -> str:
    """Opaque, time-ordered (good index locality): 12 hex of milliseconds + 12 random, after a
    prefix naming the subject's kind (`adm`, `clm`; none for filings)."""
    return f"{prefix}{int(now.timestamp() * 1000):012x}{secrets.token_hex(6)}"


_ID_LIMIT = 64  # actor ids, organisations, request and correlation ids (column widths)


def new_request_id() -> str:
    """32 random hex digits, drawn again in the rare case they read like an ID number (a run
    of eighteen digits with a valid check digit and birth date), which no id may hold."""
    while True:
        rid = secrets.token_hex(16)
        if mask_personal_data(rid) == rid:
            return rid


@dataclass(frozen=True)
class Actor:
    """Who acts, through which channel (L7), and whether for another person (L8)."""

    id: str
    role: Role
    channel: Channel
    organisation: str | None = None
    on_behalf: bool = False


SYSTEM_ACTOR = Actor(id="system", role=Role.SYSTEM, channel=Channel.SYSTEM)


Seal = Callable[[Any, Any], None]
"""Called as `seal(tx, outcome)` inside a command's transaction, just before it commits, with
the command's result or the refusal being recorded. What it writes commits with the command;
if it raises, the command rolls back. The HTTP API stores idempotent answers this way."""


@dataclass(frozen=True)
class Request:
    """Ids that tie a call to the caller's logs and to the audit record."""

    request_id: str
    correlation_id: str
    seal: Seal | None = dataclasses.field(default=None, compare=False)

    @classmethod
    def new(
        cls,
        request_id: str | None = None,
        correlation_id: str | None = None,
        seal: Seal | None = None,
    ) -> Request:
        rid = request_id or new_request_id()
        return cls(rid, correlation_id or rid, seal)


@dataclass(frozen=True)
class _Refused:
    """Returned by a unit of work whose refusal must be committed (audited), then raised."""

    error: TransitionRefused


def _refusal(subject_id: str, event: str, state: str, denial: Denial) -> TransitionRefused:
    return TransitionRefused(
        filing_id=subject_id,
        event=event,
        state=str(state),
        rule_id=denial.rule_id,
        reason=denial.reason,
        inputs=denial.inputs,
    )


def _check_request(actor: Actor, request: Request) -> None:
    """Identifiers live in fixed-width columns: refuse, naming the field, what would not fit."""
    for field, value in (
        ("actor.id", actor.id),
        ("actor.organisation", actor.organisation or ""),
        ("request_id", request.request_id),
        ("correlation_id", request.correlation_id),
    ):
        if len(value) > _ID_LIMIT:
            raise InvalidInput(field, "L7", f"at most {_ID_LIMIT} characters")
        # Identifiers go into the audit trail, which is never erased (an organisation's code
        # may read like a mobile number: H13… is a Hebei hospital's).
        if mask_personal_data(value, mobiles=field != "actor.organisation") != value:
            raise InvalidInput(field, "L7", "holds what looks like an ID or mobile number")
    if not actor.id:
        raise InvalidInput("actor.id", "L7", "every transition names who made it")
