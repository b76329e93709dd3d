"""How periods are counted (rules C1-C6 of the catalogue's §7; Civil Code arts. 200-204).

Pure date arithmetic for filing deadlines, validity periods and locks: where a period starts
(C1), where a period in months ends (C2), when a deadline moves past a rest day (C3), the instant
its last day is over (C4), which periods are never moved (C5), and how working days are counted
with State Council calendar data that may not yet know a year (C6, E7).

No I/O, no clock: every instant is passed in, every calendar is data.
"""

from __future__ import annotations

import calendar as _gregorian
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

LOCAL_TZ = ZoneInfo("Asia/Shanghai")
_ONE_DAY = timedelta(days=1)
_SATURDAY = 5


def _require_aware(instant: datetime) -> None:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"naive datetime {instant!r}: a timezone-aware instant is required")


@dataclass(frozen=True)
class WorkCalendar:
    """State Council calendar data: statutory holidays and swapped working days (调休), and which
    years are known.

    The data can be extended year by year (C6): a calendar that does not know a year treats only
    weekends as rest days there, and periods depending on such a year are marked provisional.
    """

    holidays: frozenset[date]  # statutory holidays (法定节假日 incl. the bridge days)
    workdays: frozenset[date]  # weekend days that are working days (调休上班)
    known_years: frozenset[int]  # years whose holiday arrangements are known

    def __post_init__(self) -> None:
        both = self.holidays & self.workdays
        if both:
            raise ValueError(f"days both holiday and working day: {sorted(both)}")
        unknown = sorted(d for d in self.holidays | self.workdays if d.year not in self.known_years)
        if unknown:
            raise ValueError(f"calendar days in years not marked known: {unknown}")

    def is_known(self, day: date) -> bool:
        return day.year in self.known_years

    def is_rest_day(self, day: date) -> bool:
        """C3: a public holiday, or a Saturday/Sunday that is not a 调休 working day.

        C6: in a year the calendar does not know, weekends only.
        """
        weekend = day.weekday() >= _SATURDAY
        if not self.is_known(day):
            return weekend
        return day in self.holidays or (weekend and day not in self.workdays)

    def is_workday(self, day: date) -> bool:
        return not self.is_rest_day(day)


def calendar_from(
    holidays: Iterable[date], workdays: Iterable[date], known_years: Iterable[int]
) -> WorkCalendar:
    """Build a WorkCalendar from any iterables (e.g. the dicts of the chinese_calendar package)."""
    return WorkCalendar(
        holidays=frozenset(holidays),
        workdays=frozenset(workdays),
        known_years=frozenset(known_years),
    )


@dataclass(frozen=True)
class PeriodEnd:
    """Where a period ends, and why."""

    last_day: date  # the last day of the period (local date)
    ends_at: datetime  # UTC-aware instant when the period is over (C4)
    computed_last_day: date  # the last day before any rest-day extension (C3)
    provisional: bool  # depends on a day in a year the calendar does not know (C6)
    rules: tuple[str, ...]  # ids of the rules that shaped it

    def is_over(self, instant: datetime) -> bool:
        """True from `ends_at` on (the end instant itself is already over)."""
        _require_aware(instant)
        return instant >= self.ends_at

    def contains(self, day: date) -> bool:
        """True if the local date `day` is not after the last day."""
        return day <= self.last_day


def local_date(instant: datetime) -> date:
    """The date in Asia/Shanghai (C4) of a timezone-aware instant."""
    _require_aware(instant)
    return instant.astimezone(LOCAL_TZ).date()


def end_of_local_day(day: date, closing: time | None = None) -> datetime:
    """C4: the UTC instant at which local `day` ends: 24:00 Asia/Shanghai (00:00 of the next local
    day), or the counter's `closing` time (local, naive) on `day`."""
    if closing is None:
        local = datetime.combine(day + _ONE_DAY, time(0), tzinfo=LOCAL_TZ)
    else:
        if closing.tzinfo is not None:
            raise ValueError("closing time must be a naive local (Asia/Shanghai) time")
        local = datetime.combine(day, closing, tzinfo=LOCAL_TZ)
    return local.astimezone(UTC)


def start_of_local_day(day: date) -> datetime:
    """The UTC instant at which local `day` begins (00:00 Asia/Shanghai): when a reminder set
    some days before a deadline is sent."""
    return end_of_local_day(day - _ONE_DAY)


def add_months(day: date, months: int) -> date:
    """C2: the same-numbered day `months` later, or that month's last day if it has none
    (31 August + 6 months -> 28 or 29 February)."""
    if months < 0:
        raise ValueError(f"months must be >= 0, got {months}")
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    month += 1
    last = _gregorian.monthrange(year, month)[1]
    return date(year, month, min(day.day, last))


def _computed_last_day(start: date, months: int, days: int) -> tuple[date, tuple[str, ...]]:
    """C1 (first day not counted) and C2 (months): the last day before any extension."""
    if months < 0 or days < 0 or (months > 0) == (days > 0):
        raise ValueError(f"exactly one of months/days must be > 0, got months={months} days={days}")
    if months:
        return add_months(start, months), ("C1", "C2")
    return start + timedelta(days=days), ("C1",)


def validity_end(start: date, *, months: int = 0, days: int = 0) -> PeriodEnd:
    """C1, C2, C5: the end of a validity period (V1, V3) or a lock (V2) counted from the event day
    `start`. It ends on its computed last day at 24:00 local, never moved past a rest day."""
    last, rules = _computed_last_day(start, months, days)
    return PeriodEnd(
        last_day=last,
        ends_at=end_of_local_day(last),
        computed_last_day=last,
        provisional=False,
        rules=(*rules, "C5"),
    )


def act_deadline(
    start: date,
    *,
    calendar: WorkCalendar,
    days: int = 0,
    months: int = 0,
    closing: time | None = None,
) -> PeriodEnd:
    """C1-C4: a deadline to act (file, report, claim; e.g. E3's 10 days from admission) counted
    from the event day `start`. A last day that is a rest day moves to the next working day (C3);
    it ends at 24:00 local or at `closing` (C4). Provisional if any day examined lies in a year
    the calendar does not know (C6)."""
    computed, rules = _computed_last_day(start, months, days)
    last = computed
    provisional = not calendar.is_known(last)
    while calendar.is_rest_day(last):
        last += _ONE_DAY
        provisional = provisional or not calendar.is_known(last)
    if last != computed:
        rules = (*rules, "C3")
    rules = (*rules, "C4")
    if provisional:
        rules = (*rules, "C6")
    return PeriodEnd(
        last_day=last,
        ends_at=end_of_local_day(last, closing),
        computed_last_day=computed,
        provisional=provisional,
        rules=rules,
    )


def working_days_deadline(start: date, working_days: int, *, calendar: WorkCalendar) -> PeriodEnd:
    """E7, C6: the `working_days`-th working day after `start` (start not counted, C1), ending at
    24:00 local (C4). Provisional if any day examined lies in a year the calendar does not know."""
    if working_days < 1:
        raise ValueError(f"working_days must be >= 1, got {working_days}")
    day = start
    provisional = False
    remaining = working_days
    while remaining:
        day += _ONE_DAY
        provisional = provisional or not calendar.is_known(day)
        if calendar.is_workday(day):
            remaining -= 1
    return PeriodEnd(
        last_day=day,
        ends_at=end_of_local_day(day),
        computed_last_day=day,
        provisional=provisional,
        rules=("C1", "C4", "C6", "E7"),
    )
