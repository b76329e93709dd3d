"""Reason codes: why a filing was rejected, cancelled or lapsed, as a code from the vocabulary
config.toml's `[reasons]` defines, each code with the events it may be given with and its
rule. Free text could carry personal data into the append-only audit trail, so a reason is
never text; words go in an optional note, which the engine checks for personal data."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from states.catalogue import RULES
from states.errors import InvalidInput, PolicyConfigError
from states.table import WRONG_STATE_RULE

# Letters and _ only: a number, whole or in part, has no place in a code.
REASON_CODE = re.compile(r"^[a-z][a-z_]{0,39}$")
# The events a caller gives a reason with, and the engine's own code for 停保 (L2).
REASONED_EVENTS = ("reject", "cancel", "stop_insurance")
INSURANCE_STOPPED = "insurance_stopped"


@dataclass(frozen=True)
class Reason:
    code: str
    events: frozenset[str]
    rule: str


def parse_reasons(raw: object) -> dict[str, Reason]:
    """`[reasons]`: `code = { events = [...], rule = "ID" }`, refused naming the key."""
    if not isinstance(raw, Mapping):
        raise PolicyConfigError("reasons", "must be a table of reason codes")
    reasons: dict[str, Reason] = {}
    for code, entry in raw.items():
        where = f"reasons.{code}"
        if not REASON_CODE.match(code):
            raise PolicyConfigError(where, "a code is lower-case letters and _, at most 40")
        if not isinstance(entry, Mapping) or set(entry) != {"events", "rule"}:
            raise PolicyConfigError(
                where, 'must be written as { events = [...], rule = "ID" } naming its rule'
            )
        events = entry["events"]
        if (
            not isinstance(events, list)
            or not events
            or any(e not in REASONED_EVENTS for e in events)
        ):
            raise PolicyConfigError(
                f"{where}.events", f"must list events from {', '.join(REASONED_EVENTS)}"
            )
        if entry["rule"] not in RULES:
            raise PolicyConfigError(f"{where}.rule", "must name a rule of the catalogue")
        reasons[code] = Reason(code, frozenset(events), entry["rule"])
    if not codes_for(reasons, "reject"):
        raise PolicyConfigError("reasons", "must give at least one code for reject (L1)")
    if "stop_insurance" not in getattr(reasons.get(INSURANCE_STOPPED), "events", ()):
        raise PolicyConfigError(
            f"reasons.{INSURANCE_STOPPED}", "must be defined for stop_insurance (L2)"
        )
    return reasons


def codes_for(reasons: Mapping[str, Reason], event: str) -> list[str]:
    return sorted(code for code, r in reasons.items() if event in r.events)


def reason_rule(event: str) -> str:
    """The rule a reason given with `event` answers to (a rejection's is L1, a cancel's L4)."""
    return WRONG_STATE_RULE.get(event, "L1")


def check_reason(reasons: Mapping[str, Reason], event: str, reason: Any) -> None:
    """A reason given with `event` is one of the vocabulary's codes for it; the error lists
    the codes, never echoing what was given."""
    if reason is None:
        return
    found = reasons.get(reason) if isinstance(reason, str) else None
    if found is None or event not in found.events:
        codes = codes_for(reasons, event)
        raise InvalidInput(
            "reason",
            reason_rule(event),
            f"must be one of the reason codes for {event}: {', '.join(codes)}"
            if codes
            else f"{event} takes no reason",
        )
