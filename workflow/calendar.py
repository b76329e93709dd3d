"""The working-day calendar: the State Council calendar from `chinese-calendar`, plus years
added in config.toml (C6). Built once at start and passed down."""

from __future__ import annotations

from collections.abc import Mapping

import chinese_calendar

from states.periods import WorkCalendar
from workflow.config import CalendarYear


def build_calendar(extra_years: Mapping[int, CalendarYear]) -> WorkCalendar:
    holidays = set(chinese_calendar.holidays)
    workdays = set(chinese_calendar.workdays)
    for year in extra_years.values():
        holidays |= year.holidays
        workdays |= year.workdays
    return WorkCalendar(
        holidays=frozenset(holidays),
        workdays=frozenset(workdays),
        # The years the bundled package knows (it raises for any other), plus config's.
        known_years=frozenset(d.year for d in holidays | workdays) | frozenset(extra_years),
    )
