"""Who acts and under which request: passed to every command, recorded in every audit record."""

from __future__ import annotations

import dataclasses
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from states.admissions import Visit
from states.denial import Denial
from states.errors import ConcurrentUpdate, InvalidInput, Refused, TransitionRefused
from states.lifecycle import Application
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

    error: Refused


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
            raise InvalidInput(field, None, f"at most {_ID_LIMIT} characters")
        # Identifiers go into the audit trail, which is never erased (an organisation's code
        # may read like a mobile number: H13… is a Hebei hospital's). Malformed, not refused
        # by a rule: the attempt is not recorded, or the record would carry the number.
        if mask_personal_data(value, mobiles=field != "actor.organisation") != value:
            raise InvalidInput(field, None, "holds what looks like an ID or mobile number")
    if not actor.id:
        raise InvalidInput("actor.id", None, "every transition names who made it")


@dataclass(frozen=True)
class Attempted:
    """What a command is about, for the denied record of a refusal raised while judging it (a
    field a rule refused, a stale version): event, subject (None for a creation that never
    happened), the policy it was judged under, the inputs judged and the subject's state."""

    event: str
    subject_id: str | None
    policy: tuple[str | None, str | None] | None  # None: the subject's own, read when recording
    inputs: Mapping[str, Any]
    state: str | None = None
    table: str = "filing_record"  # where the subject lives


_CODE = re.compile(r"\d{6}")
_SUBJECT_ID = re.compile(r"(adm|clm)?[0-9a-f]{24}")


def _code(value: str, shape: re.Pattern[str]) -> str:
    """A caller's code or id as a record may quote it: as given where it has its shape,
    otherwise not at all (a free string could hold anything, an ID number included)."""
    return value if shape.fullmatch(value) else "(malformed)"


def application_inputs(app: Application) -> dict[str, Any]:
    """An application's fields as a refusal's record names them (no personal data: the card
    number is judged, never stored)."""
    inputs: dict[str, Any] = {
        "kind": app.kind.value,
        "insurance_type": app.insurance_type.value,
        "insured_region": _code(app.insured_region, _CODE),
        "treatment_region": _code(app.treatment_region, _CODE),
        "documents": sorted(d.value for d in app.documents),
        "by_commitment": app.by_commitment,
        "consent_given": app.consent_given,
    }
    if app.start_date is not None:
        inputs["start_date"] = str(app.start_date)
    if app.admission_id is not None:
        inputs["admission_id"] = _code(app.admission_id, _SUBJECT_ID)
    return inputs


def visit_inputs(visit: Visit) -> dict[str, Any]:
    """A reported visit's fields as a refusal's record names them (the hospital's code is the
    key's own organisation, recorded as the actor's)."""
    return {
        "insurance_type": visit.insurance_type.value,
        "insured_region": _code(visit.insured_region, _CODE),
        "treatment_region": _code(visit.treatment_region, _CODE),
        "admitted_on": str(visit.admitted_on),
        "institution": visit.institution.value,
        "care": visit.care.value,
        "emergency": visit.emergency,
        "referral": visit.referral,
        "transfer_first": visit.transfer_first,
    }


def check_version(
    subject_id: str,
    version: int,
    expected: int | None,
    event: str,
    state: str,
    policy: tuple[str | None, str | None],
) -> None:
    """R1: a command that names the version it read applies to that version only."""
    if expected is not None and version != expected:
        raise ConcurrentUpdate(
            subject_id, expected, actual_version=version, event=event, state=state, policy=policy
        )
