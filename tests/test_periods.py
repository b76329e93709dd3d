"""Period counting (C1-C6, the catalogue's §7; E7) against the real State Council calendar."""

from __future__ import annotations

import calendar as gregorian
from datetime import UTC, date, datetime, time, timedelta

import chinese_calendar
import pytest
from hypothesis import given
from hypothesis import strategies as st

from states.periods import (
    LOCAL_TZ,
    WorkCalendar,
    act_deadline,
    add_months,
    calendar_from,
    end_of_local_day,
    local_date,
    validity_end,
    working_days_deadline,
)

KNOWN_YEARS = frozenset(range(2004, 2027))


@pytest.fixture
def cn_calendar() -> WorkCalendar:
    return WorkCalendar(
        holidays=frozenset(chinese_calendar.holidays),
        workdays=frozenset(chinese_calendar.workdays),
        known_years=KNOWN_YEARS,
    )


@pytest.fixture
def cn_calendar_with_2027() -> WorkCalendar:
    made_up_spring_festival = [date(2027, 2, 10), date(2027, 2, 11), date(2027, 2, 12)]
    return calendar_from(
        holidays=[*chinese_calendar.holidays, *made_up_spring_festival],
        workdays=chinese_calendar.workdays,
        known_years=[*KNOWN_YEARS, 2027],
    )


# C1: the first day is not counted


def test_a_one_day_period_ends_on_the_day_after_the_event() -> None:
    end = validity_end(date(2026, 3, 15), days=1)

    assert end.last_day == date(2026, 3, 16)


def test_ten_days_from_september_24_end_on_october_4() -> None:
    end = validity_end(date(2026, 9, 24), days=10)

    assert end.last_day == date(2026, 10, 4)


# C2: periods in months


def test_six_months_from_march_15_ends_on_september_15() -> None:
    assert validity_end(date(2026, 3, 15), months=6).last_day == date(2026, 9, 15)


def test_one_month_from_january_31_ends_on_february_28() -> None:
    assert add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)


def test_one_month_from_january_31_in_a_leap_year_ends_on_february_29() -> None:
    assert add_months(date(2028, 1, 31), 1) == date(2028, 2, 29)


def test_six_months_from_august_31_ends_on_february_28() -> None:
    end = validity_end(date(2026, 8, 31), months=6)

    assert end.last_day == date(2027, 2, 28)
    assert end.rules == ("C1", "C2", "C5")


def test_six_months_from_august_31_before_a_leap_year_ends_on_february_29() -> None:
    assert validity_end(date(2027, 8, 31), months=6).last_day == date(2028, 2, 29)


def test_twelve_months_from_february_29_ends_on_february_28() -> None:
    assert add_months(date(2028, 2, 29), 12) == date(2029, 2, 28)


def test_adding_negative_months_is_refused() -> None:
    with pytest.raises(ValueError, match="months"):
        add_months(date(2026, 1, 31), -1)


@given(
    start=st.dates(min_value=date(1900, 1, 1), max_value=date(9000, 12, 31)),
    months=st.integers(min_value=1, max_value=24),
)
def test_adding_months_keeps_the_day_or_falls_back_to_the_month_end(
    start: date, months: int
) -> None:
    result = add_months(start, months)

    month_end = gregorian.monthrange(result.year, result.month)[1]
    assert (result.year * 12 + result.month) - (start.year * 12 + start.month) == months
    assert result.day <= start.day
    assert result.day in (start.day, month_end)
    assert validity_end(start, months=months).last_day > start


# C3: a deadline on a rest day moves to the next working day


def test_a_deadline_on_an_ordinary_saturday_moves_to_monday(cn_calendar: WorkCalendar) -> None:
    end = act_deadline(date(2026, 3, 4), days=10, calendar=cn_calendar)

    assert end.computed_last_day == date(2026, 3, 14)
    assert end.last_day == date(2026, 3, 16)
    assert end.rules == ("C1", "C3", "C4")
    assert end.provisional is False


def test_emergency_admitted_september_24_must_file_by_october_8(
    cn_calendar: WorkCalendar,
) -> None:
    end = act_deadline(date(2026, 9, 24), days=10, calendar=cn_calendar)

    assert end.computed_last_day == date(2026, 10, 4)
    assert end.last_day == date(2026, 10, 8)
    assert end.rules == ("C1", "C3", "C4")


@pytest.mark.parametrize(
    ("start", "computed", "expected"),
    [
        (date(2026, 9, 20), date(2026, 9, 30), date(2026, 9, 30)),  # day before National Day
        (date(2026, 9, 21), date(2026, 10, 1), date(2026, 10, 8)),  # its first day
        (date(2026, 9, 27), date(2026, 10, 7), date(2026, 10, 8)),  # its last day
        (date(2026, 9, 28), date(2026, 10, 8), date(2026, 10, 8)),  # day after it
    ],
)
def test_national_day_deadlines_move_only_when_they_land_inside_the_holiday(
    cn_calendar: WorkCalendar, start: date, computed: date, expected: date
) -> None:
    end = act_deadline(start, days=10, calendar=cn_calendar)

    assert end.computed_last_day == computed
    assert end.last_day == expected
    assert ("C3" in end.rules) == (computed != expected)


def test_a_deadline_on_a_swapped_working_saturday_is_not_moved(
    cn_calendar: WorkCalendar,
) -> None:
    end = act_deadline(date(2026, 9, 30), days=10, calendar=cn_calendar)

    assert date(2026, 10, 10).weekday() == 5
    assert cn_calendar.is_workday(date(2026, 10, 10))
    assert end.last_day == date(2026, 10, 10)
    assert end.computed_last_day == end.last_day
    assert "C3" not in end.rules


def test_a_deadline_in_months_on_a_holiday_moves_too(cn_calendar: WorkCalendar) -> None:
    end = act_deadline(date(2026, 7, 1), months=3, calendar=cn_calendar)

    assert end.computed_last_day == date(2026, 10, 1)
    assert end.last_day == date(2026, 10, 8)
    assert end.rules == ("C1", "C2", "C3", "C4")


# C4: the last day ends at 24:00 Shanghai time, or at closing time


def test_a_deadline_ends_at_midnight_shanghai_which_is_16_00_utc(
    cn_calendar: WorkCalendar,
) -> None:
    end = act_deadline(date(2026, 9, 24), days=10, calendar=cn_calendar)

    assert end.ends_at == datetime(2026, 10, 8, 16, 0, tzinfo=UTC)
    assert end.ends_at.tzinfo is UTC


def test_a_deadline_at_a_counter_closing_at_17_30_ends_at_09_30_utc(
    cn_calendar: WorkCalendar,
) -> None:
    end = act_deadline(date(2026, 9, 24), days=10, calendar=cn_calendar, closing=time(17, 30))

    assert end.ends_at == datetime(2026, 10, 8, 9, 30, tzinfo=UTC)


def test_end_of_local_day_is_the_next_local_midnight() -> None:
    end = end_of_local_day(date(2026, 12, 31))

    assert end == datetime(2027, 1, 1, 0, 0, tzinfo=LOCAL_TZ)
    assert end.utcoffset() == timedelta(0)


def test_a_closing_time_with_a_timezone_is_refused() -> None:
    with pytest.raises(ValueError, match="naive local"):
        end_of_local_day(date(2026, 10, 8), time(17, 30, tzinfo=UTC))


def test_an_instant_after_16_00_utc_is_already_the_next_shanghai_day() -> None:
    assert local_date(datetime(2026, 10, 8, 15, 59, 59, tzinfo=UTC)) == date(2026, 10, 8)
    assert local_date(datetime(2026, 10, 8, 16, 0, tzinfo=UTC)) == date(2026, 10, 9)


def test_a_period_is_over_exactly_at_its_end_and_not_a_microsecond_before(
    cn_calendar: WorkCalendar,
) -> None:
    end = act_deadline(date(2026, 9, 24), days=10, calendar=cn_calendar)

    assert end.is_over(end.ends_at) is True
    assert end.is_over(end.ends_at - timedelta(microseconds=1)) is False
    assert end.is_over(datetime(2026, 10, 9, 0, 0, tzinfo=LOCAL_TZ)) is True


def test_a_period_contains_its_last_day_but_not_the_day_after(
    cn_calendar: WorkCalendar,
) -> None:
    end = act_deadline(date(2026, 9, 24), days=10, calendar=cn_calendar)

    assert end.contains(date(2026, 10, 8)) is True
    assert end.contains(date(2026, 10, 9)) is False


def test_naive_datetimes_are_refused(cn_calendar: WorkCalendar) -> None:
    end = act_deadline(date(2026, 9, 24), days=10, calendar=cn_calendar)

    with pytest.raises(ValueError, match="naive"):
        end.is_over(datetime(2026, 10, 9, 0, 0))  # noqa: DTZ001
    with pytest.raises(ValueError, match="naive"):
        local_date(datetime(2026, 10, 9, 0, 0))  # noqa: DTZ001


# C5: validity periods and locks are never moved


def test_a_validity_period_ending_in_a_holiday_is_not_extended() -> None:
    end = validity_end(date(2026, 9, 24), days=10)

    assert end.last_day == date(2026, 10, 4)
    assert end.computed_last_day == end.last_day
    assert end.ends_at == datetime(2026, 10, 4, 16, 0, tzinfo=UTC)
    assert end.rules == ("C1", "C5")
    assert end.provisional is False


def test_a_three_month_lock_ending_on_national_day_is_not_extended() -> None:
    end = validity_end(date(2026, 7, 1), months=3)

    assert end.last_day == date(2026, 10, 1)


@pytest.mark.parametrize(("months", "days"), [(0, 0), (6, 10), (-1, 10), (6, -1)])
def test_a_period_needs_exactly_one_positive_length(
    cn_calendar: WorkCalendar, months: int, days: int
) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        validity_end(date(2026, 3, 15), months=months, days=days)
    with pytest.raises(ValueError, match="exactly one"):
        act_deadline(date(2026, 3, 15), calendar=cn_calendar, months=months, days=days)


# C6: years the calendar does not know


def test_a_year_the_calendar_does_not_know_has_weekends_only(cn_calendar: WorkCalendar) -> None:
    new_year_2027 = date(2027, 1, 1)  # a Friday

    assert cn_calendar.is_known(new_year_2027) is False
    assert cn_calendar.is_rest_day(new_year_2027) is False
    assert cn_calendar.is_rest_day(date(2027, 1, 2)) is True


def test_a_deadline_on_a_weekend_in_an_unknown_year_moves_and_is_provisional(
    cn_calendar: WorkCalendar,
) -> None:
    end = act_deadline(date(2026, 12, 23), days=10, calendar=cn_calendar)

    assert end.computed_last_day == date(2027, 1, 2)
    assert end.last_day == date(2027, 1, 4)
    assert end.provisional is True
    assert end.rules == ("C1", "C3", "C4", "C6")


def test_a_provisional_deadline_is_recomputed_once_the_year_is_known(
    cn_calendar: WorkCalendar, cn_calendar_with_2027: WorkCalendar
) -> None:
    before = act_deadline(date(2027, 2, 1), days=10, calendar=cn_calendar)

    after = act_deadline(date(2027, 2, 1), days=10, calendar=cn_calendar_with_2027)

    assert (before.last_day, before.provisional) == (date(2027, 2, 11), True)
    assert (after.last_day, after.provisional) == (date(2027, 2, 15), False)
    assert after.rules == ("C1", "C3", "C4")


def test_extending_into_an_unknown_year_makes_a_deadline_provisional() -> None:
    calendar = calendar_from(holidays=[date(2026, 12, 31)], workdays=[], known_years=[2026])

    end = act_deadline(date(2026, 12, 21), days=10, calendar=calendar)

    assert end.computed_last_day == date(2026, 12, 31)
    assert end.last_day == date(2027, 1, 1)
    assert end.provisional is True


def test_a_validity_period_in_an_unknown_year_is_not_provisional() -> None:
    assert validity_end(date(2027, 3, 1), months=6).provisional is False


def test_calendar_days_in_a_year_not_marked_known_are_refused() -> None:
    with pytest.raises(ValueError, match="not marked known"):
        calendar_from(holidays=[date(2027, 2, 11)], workdays=[], known_years=[2026])


def test_a_day_cannot_be_both_holiday_and_working_day() -> None:
    day = date(2026, 10, 10)

    with pytest.raises(ValueError, match="both"):
        calendar_from(holidays=[day], workdays=[day], known_years=[2026])


# E7: working days


def test_three_working_days_from_september_29_skip_national_day(
    cn_calendar: WorkCalendar,
) -> None:
    end = working_days_deadline(date(2026, 9, 29), 3, calendar=cn_calendar)

    assert end.last_day == date(2026, 10, 9)
    assert end.ends_at == datetime(2026, 10, 9, 16, 0, tzinfo=UTC)
    assert end.provisional is False
    assert end.rules == ("C1", "C4", "C6", "E7")


def test_a_swapped_working_saturday_counts_as_a_working_day(cn_calendar: WorkCalendar) -> None:
    end = working_days_deadline(date(2026, 10, 8), 2, calendar=cn_calendar)

    assert end.last_day == date(2026, 10, 10)


def test_working_days_into_an_unknown_year_are_provisional(cn_calendar: WorkCalendar) -> None:
    end = working_days_deadline(date(2026, 12, 30), 3, calendar=cn_calendar)

    assert end.last_day == date(2027, 1, 4)
    assert end.provisional is True


def test_zero_working_days_is_refused(cn_calendar: WorkCalendar) -> None:
    with pytest.raises(ValueError, match="working_days"):
        working_days_deadline(date(2026, 9, 29), 0, calendar=cn_calendar)
