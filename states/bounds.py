"""How far from today a date a caller gives may lie: the range checks on input dates.

A date of care or of a filing far from today is a slip of the keyboard or an attack, never a
real stay: year 1 or year 9999 would have periods counted from or to the edge of the calendar
(C1, C2), and deadlines no scheduler could hold. So every such date is judged against today
(the local date, C4) with bounds from config.toml's `[input]` section, before anything is
written, and the refusal names the field and rule R2 (the rule of the date's own meaning,
such as E2's "an admission is recorded once it has begun", is judged apart):

| field | bounded by |
|---|---|
| `admitted_on` | `past_days` back |
| `discharged_on` | `past_days` back |
| `start_date` (a filing) | `ahead_days` ahead |
| `start_date` (a retro filing) | `past_days` back |
| `day` (coverage) | `ahead_days` ahead |

Pure: today and the bounds are passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from states.errors import InvalidInput

RULE = "R2"  # a date a caller gives lies within the bounds config.toml's [input] sets


@dataclass(frozen=True)
class DateBounds:
    """config.toml [input]: days back and ahead of today that a given date may lie."""

    past_days: int = 730
    ahead_days: int = 366

    def earliest(self, today: date) -> date:
        return today - timedelta(days=self.past_days)

    def latest(self, today: date) -> date:
        return today + timedelta(days=self.ahead_days)


def check_not_before(field: str, day: date, today: date, bounds: DateBounds) -> None:
    """Refuse a date more than `past_days` before today (the value itself is not echoed)."""
    earliest = bounds.earliest(today)
    if day < earliest:
        raise InvalidInput(
            field,
            RULE,
            f"must not be before {earliest} ({bounds.past_days} days back, config input.past_days)",
        )


def check_not_after(field: str, day: date, today: date, bounds: DateBounds) -> None:
    """Refuse a date more than `ahead_days` after today."""
    latest = bounds.latest(today)
    if day > latest:
        raise InvalidInput(
            field,
            RULE,
            f"must not be after {latest} ({bounds.ahead_days} days ahead, config input.ahead_days)",
        )
