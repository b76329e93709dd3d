"""Pure unit tests of the hospital-side rules: admission windows (E2, E3, E5, E7), the extension
of a referred stay (E6) and the coverage decision (E1, V5, P1-P7), against the regional values of
config.toml and the real State Council calendar (C1-C6). No database.

Every date is chosen on, just before or just after a boundary, and every test asserts the rule id
that decided the outcome.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from states.admissions import (
    Admission,
    Care,
    Extension,
    extension_denial,
    extension_reminder_at,
    extension_threshold,
    filing_window,
    retro_denial,
)
from states.coverage import (
    Coverage,
    claim_deadline,
    claim_documents,
    covering_filing,
    decide,
)
from states.filing import Filing
from states.periods import LOCAL_TZ, WorkCalendar, end_of_local_day
from states.policy import Policy
from states.vocabulary import (
    Channel,
    Document,
    FilingState,
    Institution,
    InsuranceType,
    Kind,
    Settlement,
)
from workflow.calendar import build_calendar
from workflow.config import Settings

CREATED = datetime(2026, 1, 1, tzinfo=UTC)
JIANGMEN, XIAMEN, SHENZHEN, SHANGHAI = "440700", "350200", "440300", "310000"
GUANGZHOU, FUZHOU, HANGZHOU = "440100", "350100", "330100"


# -- fixtures and builders --------------------------------------------------------------------


@pytest.fixture(scope="module")
def policies(settings: Settings) -> dict[str, Policy]:
    return dict(settings.policies)


@pytest.fixture(scope="module")
def national(policies: dict[str, Policy]) -> Policy:
    return policies["national"]


@pytest.fixture(scope="module")
def jiangmen(policies: dict[str, Policy]) -> Policy:
    return policies[JIANGMEN]


@pytest.fixture(scope="module")
def calendar(settings: Settings) -> WorkCalendar:
    # config.toml adds no year: the bundled calendar knows 2026, not 2027 (C6).
    return build_calendar(settings.calendar_years)


def at(y: int, m: int, d: int, hh: int = 10, mm: int = 0, ss: int = 0) -> datetime:
    """A local (Asia/Shanghai) wall-clock instant, as UTC."""
    return datetime(y, m, d, hh, mm, ss, tzinfo=LOCAL_TZ).astimezone(UTC)


def admission(**changes: Any) -> Admission:
    """A Jiangmen-insured inpatient stay in Hangzhou: outside the city and the province, so a
    filing is needed under every policy."""
    base = Admission(
        id="adm-test-0001",
        person_key="pk-test-0001",
        person_masked="4407**********0000",
        insurance_type=InsuranceType.EMPLOYEE,
        insured_region=JIANGMEN,
        treatment_region=HANGZHOU,
        hospital_code="H-TEST-01",
        institution=Institution.HOSPITAL,
        networked=True,
        care=Care.INPATIENT,
        admitted_on=date(2026, 3, 1),
        emergency=False,
        referral=False,
        transfer_first=False,
        policy_region=JIANGMEN,
        policy_version="2026.3",
        hospital_org="org-test-01",
        created_at=CREATED,
        updated_at=CREATED,
    )
    return replace(base, **changes)


def filing(**changes: Any) -> Filing:
    """An effective K6 filing for treatment in Hangzhou, from 2026-01-10 for six months."""
    base = Filing(
        id="fil-test-0001",
        kind=Kind.OTHER_TEMPORARY,
        insurance_type=InsuranceType.EMPLOYEE,
        insured_region=JIANGMEN,
        treatment_region=HANGZHOU,
        person_key="pk-test-0001",
        person_masked="4407**********0000",
        channel=Channel.NATIONAL_APP,
        filed_by="actor-test-01",
        on_behalf=False,
        policy_region=JIANGMEN,
        policy_version="2026.3",
        start_date=date(2026, 1, 10),
        created_at=CREATED,
        updated_at=CREATED,
        state=FilingState.EFFECTIVE,
        effective_on=date(2026, 1, 10),
        valid_until=date(2026, 7, 10),
    )
    return replace(base, **changes)


def deemed_for(adm: Admission, **changes: Any) -> Filing:
    """E1: the engine's deemed K5 filing tied to `adm`."""
    fields: dict[str, Any] = {
        "id": "fil-test-deemed",
        "kind": Kind.EMERGENCY,
        "deemed": True,
        "state": FilingState.DEEMED,
        "admission_id": adm.id,
        "start_date": adm.admitted_on,
        "effective_on": adm.admitted_on,
        "valid_until": None,
    }
    return filing(**{**fields, **changes})


def settled(adm: Admission, discharged_on: date) -> Admission:
    return replace(
        adm,
        discharged_on=discharged_on,
        settlement=Settlement.SELF_PAID,
        settled_at=at(discharged_on.year, discharged_on.month, discharged_on.day, 11),
    )


BASE_CLAIM_DOCUMENTS = (
    (Document.IDENTITY,),
    (Document.RECEIPTS,),
    (Document.ITEMISED_LIST,),
    (Document.MEDICAL_RECORD,),
    (Document.BANK_ACCOUNT,),
)


# -- the calendar facts the tests below rely on -----------------------------------------------


def test_the_calendar_knows_2026_and_not_2027(calendar: WorkCalendar) -> None:
    assert calendar.is_known(date(2026, 12, 31))
    assert not calendar.is_known(date(2027, 1, 1))
    # National Day 2026: 1-7 October off, Saturday 10 October a swapped working day (调休).
    assert all(calendar.is_rest_day(date(2026, 10, d)) for d in range(1, 8))
    assert calendar.is_workday(date(2026, 10, 8))
    assert calendar.is_workday(date(2026, 10, 10))
    assert calendar.is_rest_day(date(2026, 10, 11))
    # Sunday 20 September 2026 is a swapped working day as well.
    assert calendar.is_workday(date(2026, 9, 20))


# -- E3: Jiangmen, emergency while away: file within 10 days of admission and before discharge --


def test_e3_window_is_ten_days_from_admission_first_day_not_counted(
    jiangmen: Policy, calendar: WorkCalendar
) -> None:
    window = filing_window(admission(emergency=True), jiangmen, calendar)

    assert window is not None
    assert window.rule == "E3"
    assert window.before_discharge is True
    assert window.end.computed_last_day == date(2026, 3, 11)
    assert window.end.last_day == date(2026, 3, 11)
    assert window.end.ends_at == at(2026, 3, 12, 0, 0)  # C4: 24:00 local
    assert window.end.provisional is False
    assert window.end.rules == ("C1", "C4")


@pytest.mark.parametrize(
    ("now", "denied"),
    [
        (at(2026, 3, 1, 9), False),  # admission day
        (at(2026, 3, 10, 12), False),  # the day before the last day
        (at(2026, 3, 11, 23, 59, 59), False),  # the last second of the last day
        (at(2026, 3, 12, 0, 0), True),  # 24:00 of the last day (C4)
        (at(2026, 3, 13, 10), True),
    ],
)
def test_e3_retro_filing_around_the_last_day(
    jiangmen: Policy, calendar: WorkCalendar, now: datetime, denied: bool
) -> None:
    denial = retro_denial(admission(emergency=True), jiangmen, calendar, now)

    if not denied:
        assert denial is None
    else:
        assert denial is not None
        assert denial.rule_id == "E3"
        assert "closed at the end of 2026-03-11" in denial.reason
        assert "moved" not in denial.reason
        assert denial.inputs["window_rule"] == "E3"
        assert denial.inputs["last_day"] == "2026-03-11"
        assert denial.inputs["provisional"] is False


def test_e3_last_day_in_the_national_day_holiday_moves_to_the_first_working_day(
    jiangmen: Policy, calendar: WorkCalendar
) -> None:
    window = filing_window(
        admission(emergency=True, admitted_on=date(2026, 9, 24)), jiangmen, calendar
    )

    assert window is not None
    assert window.rule == "E3"
    assert window.end.computed_last_day == date(2026, 10, 4)
    first_working_day_after = date(2026, 10, 5)
    while calendar.is_rest_day(first_working_day_after):
        first_working_day_after += timedelta(days=1)
    assert first_working_day_after == date(2026, 10, 8)
    assert window.end.last_day == first_working_day_after
    assert window.end.ends_at == at(2026, 10, 9, 0, 0)
    assert "C3" in window.end.rules
    assert window.end.provisional is False


@pytest.mark.parametrize(
    ("now", "denied"),
    [
        (at(2026, 10, 4, 23, 59, 59), False),  # the computed last day
        (at(2026, 10, 5, 10), False),  # after the computed last day: C3 keeps it open
        (at(2026, 10, 8, 23, 59, 59), False),  # the moved last day
        (at(2026, 10, 9, 0, 0), True),
    ],
)
def test_e3_holiday_window_retro_filing(
    jiangmen: Policy, calendar: WorkCalendar, now: datetime, denied: bool
) -> None:
    adm = admission(emergency=True, admitted_on=date(2026, 9, 24))

    denial = retro_denial(adm, jiangmen, calendar, now)

    if not denied:
        assert denial is None
    else:
        assert denial is not None
        assert denial.rule_id == "E3"
        assert "2026-10-08" in denial.reason
        assert "moved from 2026-10-04" in denial.reason
        assert denial.inputs["computed_last_day"] == "2026-10-04"
        assert "C3" in denial.inputs["period_rules"]


@pytest.mark.parametrize(
    ("admitted_on", "computed", "last_day", "provisional", "rules"),
    [
        # Month ends: ten days run on into the next month.
        (date(2026, 1, 31), date(2026, 2, 10), date(2026, 2, 10), False, ("C1", "C4")),
        (date(2026, 2, 28), date(2026, 3, 10), date(2026, 3, 10), False, ("C1", "C4")),
        (date(2026, 3, 31), date(2026, 4, 10), date(2026, 4, 10), False, ("C1", "C4")),
        # Spring Festival 2026 (15-23 February): moved to Tuesday 24 February.
        (date(2026, 2, 5), date(2026, 2, 15), date(2026, 2, 24), False, ("C1", "C3", "C4")),
        # A Saturday that is a swapped working day (调休) is not moved.
        (date(2026, 9, 30), date(2026, 10, 10), date(2026, 10, 10), False, ("C1", "C4")),
        # Year end, still inside the known year.
        (date(2026, 12, 20), date(2026, 12, 30), date(2026, 12, 30), False, ("C1", "C4")),
        # Into 2027, whose holidays are unknown: weekends only, marked provisional (C6).
        (date(2026, 12, 22), date(2027, 1, 1), date(2027, 1, 1), True, ("C1", "C4", "C6")),
        (date(2026, 12, 23), date(2027, 1, 2), date(2027, 1, 4), True, ("C1", "C3", "C4", "C6")),
    ],
)
def test_e3_window_at_month_and_year_ends(
    jiangmen: Policy,
    calendar: WorkCalendar,
    admitted_on: date,
    computed: date,
    last_day: date,
    provisional: bool,
    rules: tuple[str, ...],
) -> None:
    window = filing_window(admission(emergency=True, admitted_on=admitted_on), jiangmen, calendar)

    assert window is not None
    assert window.rule == "E3"
    assert window.end.computed_last_day == computed
    assert window.end.last_day == last_day
    assert window.end.provisional is provisional
    assert window.end.rules == rules


def test_e3_discharged_before_the_window_ends_is_refused(
    jiangmen: Policy, calendar: WorkCalendar
) -> None:
    adm = admission(emergency=True)
    discharged = replace(adm, discharged_on=date(2026, 3, 5))

    assert retro_denial(adm, jiangmen, calendar, at(2026, 3, 6)) is None
    denial = retro_denial(discharged, jiangmen, calendar, at(2026, 3, 6))

    assert denial is not None
    assert denial.rule_id == "E3"
    assert "before discharge" in denial.reason
    assert denial.inputs["discharged_on"] == "2026-03-05"


def test_e3_settled_admission_is_refused_by_e3_naming_the_discharge(
    jiangmen: Policy, calendar: WorkCalendar
) -> None:
    """Discharge settles the stay, but what closes Jiangmen's door is E3's "before discharge"."""
    adm = settled(admission(emergency=True), date(2026, 3, 5))

    denial = retro_denial(adm, jiangmen, calendar, at(2026, 3, 6))

    assert denial is not None
    assert denial.rule_id == "E3"
    assert "before discharge" in denial.reason
    assert denial.inputs["discharged_on"] == "2026-03-05"


def test_a_settled_admission_without_a_window_is_refused_by_e2(
    national: Policy, calendar: WorkCalendar
) -> None:
    adm = settled(admission(emergency=True), date(2026, 3, 5))

    denial = retro_denial(adm, national, calendar, at(2026, 3, 6))

    assert denial is not None
    assert denial.rule_id == "E2"
    assert "settled" in denial.reason
    assert denial.inputs["settled_at"] == at(2026, 3, 5, 11).isoformat()
    assert denial.inputs["discharged_on"] == "2026-03-05"


# -- E5: Jiangmen, referral transferred first: report within 10 days and before discharge --------


def test_e5_transfer_first_referral_has_a_ten_day_window(
    jiangmen: Policy, calendar: WorkCalendar
) -> None:
    adm = admission(referral=True, transfer_first=True)

    window = filing_window(adm, jiangmen, calendar)

    assert window is not None
    assert window.rule == "E5"
    assert window.before_discharge is True
    assert window.end.last_day == date(2026, 3, 11)
    assert window.end.ends_at == at(2026, 3, 12, 0, 0)


@pytest.mark.parametrize(
    ("now", "denied"),
    [
        (at(2026, 3, 10, 12), False),
        (at(2026, 3, 11, 23, 59, 59), False),
        (at(2026, 3, 12, 0, 0), True),
    ],
)
def test_e5_report_around_the_last_day(
    jiangmen: Policy, calendar: WorkCalendar, now: datetime, denied: bool
) -> None:
    adm = admission(referral=True, transfer_first=True)

    denial = retro_denial(adm, jiangmen, calendar, now)

    if not denied:
        assert denial is None
    else:
        assert denial is not None
        assert denial.rule_id == "E5"
        assert denial.inputs["window_rule"] == "E5"
        assert denial.inputs["last_day"] == "2026-03-11"


def test_e5_discharged_before_the_report_is_refused(
    jiangmen: Policy, calendar: WorkCalendar
) -> None:
    adm = admission(referral=True, transfer_first=True, discharged_on=date(2026, 3, 4))

    denial = retro_denial(adm, jiangmen, calendar, at(2026, 3, 5))

    assert denial is not None
    assert denial.rule_id == "E5"
    assert "before discharge" in denial.reason


def test_e5_a_referral_not_transferred_first_has_no_window(
    jiangmen: Policy, calendar: WorkCalendar
) -> None:
    adm = admission(referral=True, transfer_first=False)

    assert filing_window(adm, jiangmen, calendar) is None
    # Long after ten days, and after discharge (not settled): only E2 applies, and it is met.
    assert retro_denial(adm, jiangmen, calendar, at(2026, 6, 1)) is None
    discharged = replace(adm, discharged_on=date(2026, 5, 30))
    assert retro_denial(discharged, jiangmen, calendar, at(2026, 6, 1)) is None


def test_e5_needs_the_region_value(national: Policy, calendar: WorkCalendar) -> None:
    adm = admission(referral=True, transfer_first=True)

    assert filing_window(adm, national, calendar) is None


# -- E7: treat first, file within N working days (a region value no config sets yet) ----------


@pytest.fixture(scope="module")
def treat_first(national: Policy) -> Policy:
    return replace(national, treat_first_working_days=5)


@pytest.mark.parametrize(
    ("admitted_on", "last_day", "provisional"),
    [
        # Monday: Tue-Fri are 4, the weekend is skipped, Monday 9 March is the 5th.
        (date(2026, 3, 2), date(2026, 3, 9), False),
        # Mid-Autumn (25-27 Sep) and National Day (1-7 Oct) are skipped.
        (date(2026, 9, 24), date(2026, 10, 9), False),
        # Saturday 10 October is a swapped working day (调休) and counts: 8, 9, 10, 12, 13.
        (date(2026, 10, 7), date(2026, 10, 13), False),
        # Spring Festival: Sat 14 Feb counts (调休), 15-23 Feb are skipped: 13, 14, 24, 25, 26.
        (date(2026, 2, 12), date(2026, 2, 26), False),
        # Ends on the last day of the known year: not provisional.
        (date(2026, 12, 24), date(2026, 12, 31), False),
        # Reaches into 2027 (unknown, weekends only): provisional (C6).
        (date(2026, 12, 28), date(2027, 1, 4), True),
    ],
)
def test_e7_working_day_window(
    treat_first: Policy,
    calendar: WorkCalendar,
    admitted_on: date,
    last_day: date,
    provisional: bool,
) -> None:
    window = filing_window(
        admission(emergency=True, admitted_on=admitted_on), treat_first, calendar
    )

    assert window is not None
    assert window.rule == "E7"
    assert window.before_discharge is False
    assert window.end.last_day == last_day
    assert window.end.ends_at == end_of_local_day(last_day)
    assert window.end.provisional is provisional
    assert "E7" in window.end.rules


@pytest.mark.parametrize(
    ("now", "denied"),
    [
        (at(2026, 3, 8, 12), False),  # Sunday: not a working day, window still open
        (at(2026, 3, 9, 23, 59, 59), False),
        (at(2026, 3, 10, 0, 0), True),
    ],
)
def test_e7_retro_filing_around_the_last_working_day(
    treat_first: Policy, calendar: WorkCalendar, now: datetime, denied: bool
) -> None:
    adm = admission(emergency=True, admitted_on=date(2026, 3, 2))

    denial = retro_denial(adm, treat_first, calendar, now)

    if not denied:
        assert denial is None
    else:
        assert denial is not None
        assert denial.rule_id == "E7"
        assert denial.inputs["last_day"] == "2026-03-09"


def test_e7_window_does_not_close_at_discharge_but_settlement_does(
    treat_first: Policy, calendar: WorkCalendar
) -> None:
    adm = admission(emergency=True, admitted_on=date(2026, 3, 2), discharged_on=date(2026, 3, 3))

    assert retro_denial(adm, treat_first, calendar, at(2026, 3, 5)) is None
    denial = retro_denial(settled(adm, date(2026, 3, 3)), treat_first, calendar, at(2026, 3, 5))
    assert denial is not None
    assert denial.rule_id == "E2"


def test_e7_applies_to_emergencies_and_e3_takes_precedence(
    jiangmen: Policy, treat_first: Policy, calendar: WorkCalendar
) -> None:
    assert filing_window(admission(), treat_first, calendar) is None
    both = replace(jiangmen, treat_first_working_days=5)
    window = filing_window(admission(emergency=True), both, calendar)
    assert window is not None
    assert window.rule == "E3"


# -- E2 (national): no window beyond "before discharge settlement" -----------------------------


@pytest.mark.parametrize(
    "adm",
    [
        admission(emergency=True),
        admission(referral=True, transfer_first=True),
        admission(),
    ],
    ids=["emergency", "transfer_first", "plain"],
)
def test_e2_national_has_no_window(
    national: Policy, calendar: WorkCalendar, adm: Admission
) -> None:
    assert filing_window(adm, national, calendar) is None
    # Months after admission, even after discharge: still open until settlement.
    assert retro_denial(adm, national, calendar, at(2026, 12, 31, 23, 59)) is None
    discharged = replace(adm, discharged_on=date(2026, 12, 30))
    assert retro_denial(discharged, national, calendar, at(2026, 12, 31, 23, 59)) is None


def test_e2_national_refuses_after_settlement(national: Policy, calendar: WorkCalendar) -> None:
    adm = settled(admission(emergency=True), date(2026, 3, 2))

    denial = retro_denial(adm, national, calendar, at(2026, 3, 2, 12))

    assert denial is not None
    assert denial.rule_id == "E2"
    assert "P5" in denial.reason


def test_e2_a_region_without_retro_filing_refuses_any(
    national: Policy, calendar: WorkCalendar
) -> None:
    strict = replace(national, retro_filing_before_settlement=False)

    denial = retro_denial(admission(), strict, calendar, at(2026, 3, 1, 11))

    assert denial is not None
    assert denial.rule_id == "E2"
    assert "no filing after admission" in denial.reason


# -- E6: Jiangmen, a referred stay past 60 days needs an extension ------------------------------


def test_e6_threshold_and_reminder(jiangmen: Policy) -> None:
    adm = admission(referral=True)

    assert extension_threshold(adm, jiangmen) == date(2026, 4, 30)  # 1 March + 60 days
    # 7 days before the end of the threshold day: 24:00 local on 23 April.
    assert extension_reminder_at(adm, jiangmen) == end_of_local_day(date(2026, 4, 23))
    assert extension_reminder_at(adm, jiangmen) == datetime(2026, 4, 23, 16, 0, tzinfo=UTC)


def test_e6_threshold_is_a_length_of_stay_not_moved_past_rest_days(jiangmen: Policy) -> None:
    adm = admission(referral=True, admitted_on=date(2026, 8, 6))

    # 5 October 2026 is a National Day holiday; C5: the threshold is not moved.
    assert extension_threshold(adm, jiangmen) == date(2026, 10, 5)


def test_e6_no_threshold_without_referral_or_region_value(
    jiangmen: Policy, national: Policy
) -> None:
    assert extension_threshold(admission(), jiangmen) is None
    assert extension_reminder_at(admission(), jiangmen) is None
    assert extension_threshold(admission(referral=True), national) is None
    assert extension_reminder_at(admission(referral=True), national) is None


@pytest.fixture(scope="module")
def referral_filing() -> Filing:
    return filing(
        kind=Kind.REFERRAL,
        documents=frozenset({Document.REFERRAL_CERTIFICATE}),
        effective_on=date(2026, 2, 20),
        valid_until=date(2026, 8, 20),
        continues_deductible=True,
    )


@pytest.mark.parametrize(
    ("day", "direct", "rule"),
    [
        (date(2026, 4, 29), True, "P1"),  # day 59
        (date(2026, 4, 30), True, "P1"),  # day 60: the threshold
        (date(2026, 5, 1), False, "E6"),  # day 61
        (date(2026, 6, 15), False, "E6"),
    ],
)
def test_e6_coverage_around_the_threshold_without_extension(
    jiangmen: Policy,
    calendar: WorkCalendar,
    referral_filing: Filing,
    day: date,
    direct: bool,
    rule: str,
) -> None:
    adm = admission(referral=True)

    cov = decide(adm, jiangmen, [referral_filing], calendar, day)

    assert cov.day == day
    assert cov.basis == "filing"
    assert cov.filing_id == referral_filing.id
    assert cov.direct_settlement is direct
    assert cov.reimbursable is True
    assert cov.rule_id == rule
    assert cov.continues_deductible is True  # E4
    assert "E4" in cov.rules
    if direct:
        assert cov.manual is None
        assert "E6" not in cov.rules
    else:
        assert cov.manual is not None  # "manual_reimbursement" is the region's value
        assert cov.manual.counted_from is None  # not yet discharged
        assert cov.manual.deadline is None
        assert cov.manual.reduction_percent == 20  # P4: a temporary (K4) filing
        assert "E6" in cov.rules


@pytest.mark.parametrize(
    ("extension", "direct", "rule"),
    [
        (None, False, "E6"),
        (Extension.REQUESTED, False, "E6"),
        (Extension.REFUSED, False, "E6"),
        (Extension.GRANTED, True, "P1"),
    ],
)
def test_e6_day_61_settles_directly_only_with_a_granted_extension(
    jiangmen: Policy,
    calendar: WorkCalendar,
    referral_filing: Filing,
    extension: Extension | None,
    direct: bool,
    rule: str,
) -> None:
    adm = admission(referral=True, extension=extension)

    cov = decide(adm, jiangmen, [referral_filing], calendar, date(2026, 5, 1))

    assert cov.direct_settlement is direct
    assert cov.rule_id == rule


def test_e6_not_covered_region_value(
    jiangmen: Policy, calendar: WorkCalendar, referral_filing: Filing
) -> None:
    strict = replace(jiangmen, after_extension_missing="not_covered")
    adm = admission(referral=True)

    on_threshold = decide(adm, strict, [referral_filing], calendar, date(2026, 4, 30))
    past = decide(adm, strict, [referral_filing], calendar, date(2026, 5, 1))

    assert on_threshold.direct_settlement is True
    assert on_threshold.reimbursable is True
    assert past.direct_settlement is False
    assert past.reimbursable is False
    assert past.manual is None
    assert past.rule_id == "E6"
    assert "manual_reimbursement" not in [p.part for p in past.parts]


def test_e6_request_needs_the_continued_stay_certificate(jiangmen: Policy) -> None:
    adm = admission(referral=True)

    denial = extension_denial("request_extension", adm, jiangmen, frozenset({Document.IDENTITY}))

    assert denial is not None
    assert denial.rule_id == "E6"
    assert denial.inputs["missing"] == [Document.CONTINUED_STAY_CERTIFICATE.value]
    with_it = frozenset({Document.CONTINUED_STAY_CERTIFICATE})
    assert extension_denial("request_extension", adm, jiangmen, with_it) is None


@pytest.mark.parametrize("state", [Extension.REQUESTED, Extension.GRANTED])
def test_e6_request_twice_is_refused(jiangmen: Policy, state: Extension) -> None:
    adm = admission(referral=True, extension=state)
    with_it = frozenset({Document.CONTINUED_STAY_CERTIFICATE})

    denial = extension_denial("request_extension", adm, jiangmen, with_it)

    assert denial is not None
    assert denial.rule_id == "E6"
    assert f"already {state.value}" in denial.reason


def test_e6_a_refused_extension_may_be_requested_again(jiangmen: Policy) -> None:
    adm = admission(referral=True, extension=Extension.REFUSED)
    with_it = frozenset({Document.CONTINUED_STAY_CERTIFICATE})

    assert extension_denial("request_extension", adm, jiangmen, with_it) is None
    denial = extension_denial("request_extension", adm, jiangmen, frozenset())
    assert denial is not None
    assert denial.rule_id == "E6"


@pytest.mark.parametrize("event", ["grant_extension", "refuse_extension"])
@pytest.mark.parametrize(
    ("state", "refused"),
    [
        (None, True),
        (Extension.REFUSED, True),
        (Extension.GRANTED, True),
        (Extension.REQUESTED, False),
    ],
)
def test_e6_decision_needs_a_waiting_request(
    jiangmen: Policy, event: str, state: Extension | None, refused: bool
) -> None:
    adm = admission(referral=True, extension=state)

    denial = extension_denial(event, adm, jiangmen, frozenset())

    if refused:
        assert denial is not None
        assert denial.rule_id == "E6"
        assert "no extension request is waiting" in denial.reason
    else:
        assert denial is None


@pytest.mark.parametrize("event", ["request_extension", "grant_extension"])
def test_e6_extension_of_a_non_referral_or_without_threshold_is_refused(
    jiangmen: Policy, national: Policy, event: str
) -> None:
    with_it = frozenset({Document.CONTINUED_STAY_CERTIFICATE})
    for adm, policy in (
        (admission(referral=False, extension=Extension.REQUESTED), jiangmen),
        (admission(referral=True, extension=Extension.REQUESTED), national),
    ):
        denial = extension_denial(event, adm, policy, with_it)
        assert denial is not None
        assert denial.rule_id == "E6"
        assert "referred stay" in denial.reason


# -- V5: validity is judged by the admission date -----------------------------------------------


@pytest.fixture(scope="module")
def expired_filing() -> Filing:
    return filing(
        id="fil-test-expired",
        state=FilingState.EXPIRED,
        start_date=date(2026, 3, 1),
        effective_on=date(2026, 3, 1),
        valid_until=date(2026, 9, 1),
    )


@pytest.mark.parametrize(
    ("admitted_on", "covered"),
    [
        (date(2026, 2, 28), False),  # the day before effective_on
        (date(2026, 3, 1), True),  # effective_on
        (date(2026, 8, 31), True),
        (date(2026, 9, 1), True),  # valid_until
        (date(2026, 9, 2), False),  # the day after
    ],
)
def test_v5_an_expired_filing_covers_admissions_inside_its_validity(
    national: Policy,
    calendar: WorkCalendar,
    expired_filing: Filing,
    admitted_on: date,
    covered: bool,
) -> None:
    adm = admission(admitted_on=admitted_on)

    cov = decide(adm, national, [expired_filing], calendar)

    if covered:
        assert covering_filing(adm, [expired_filing]) is expired_filing
        assert cov.basis == "filing"
        assert cov.filing_id == expired_filing.id
        assert cov.direct_settlement is True
        assert cov.rule_id == "V5"
    else:
        assert covering_filing(adm, [expired_filing]) is None
        assert cov.basis == "none"
        assert cov.filing_id is None
        assert cov.direct_settlement is False
        assert cov.rule_id == "P5"


def test_v5_covers_the_whole_stay_past_expiry(
    national: Policy, calendar: WorkCalendar, expired_filing: Filing
) -> None:
    adm = admission(admitted_on=date(2026, 9, 1))

    cov = decide(adm, national, [expired_filing], calendar, date(2026, 10, 20))

    assert cov.basis == "filing"
    assert cov.direct_settlement is True
    assert cov.rule_id == "V5"


def test_p1_an_effective_filing_covers_from_its_effective_date(
    national: Policy, calendar: WorkCalendar
) -> None:
    f = filing(effective_on=date(2026, 3, 1), valid_until=date(2026, 9, 1))

    on = decide(admission(admitted_on=date(2026, 3, 1)), national, [f], calendar)
    before = decide(admission(admitted_on=date(2026, 2, 28)), national, [f], calendar)

    assert on.basis == "filing"
    assert on.direct_settlement is True
    assert on.rule_id == "P1"
    assert before.basis == "none"
    assert before.rule_id == "P5"


@pytest.mark.parametrize(
    "changes",
    [
        {"state": FilingState.CANCELLED},
        {"state": FilingState.SUBMITTED},
        {"state": FilingState.LAPSED},
        {"effective_on": None},
        {"insurance_type": InsuranceType.RESIDENT},
        {"treatment_region": "330200"},  # Ningbo: another city than the admission's
    ],
    ids=["cancelled", "submitted", "lapsed", "never_effective", "other_insurance", "other_city"],
)
def test_filings_that_do_not_cover(
    national: Policy, calendar: WorkCalendar, changes: dict[str, Any]
) -> None:
    adm = admission()
    f = filing(**changes)
    assert covering_filing(adm, [filing()]) is not None  # the unchanged filing covers

    assert covering_filing(adm, [f]) is None
    assert decide(adm, national, [f], calendar).basis == "none"


def test_a_filing_for_another_district_of_the_same_city_covers() -> None:
    adm = admission(treatment_region="330106")  # a district of Hangzhou

    assert covering_filing(adm, [filing(treatment_region=HANGZHOU)]) is not None


# -- E1: emergency rescue is treated as already filed -------------------------------------------


def test_e1_deemed_filing_settles_directly_with_the_k5_reduction(
    national: Policy, calendar: WorkCalendar
) -> None:
    adm = admission(emergency=True)
    deemed = deemed_for(adm)

    cov = decide(adm, national, [deemed], calendar)

    assert cov.basis == "deemed"
    assert cov.filing_id == deemed.id
    assert cov.direct_settlement is True
    assert cov.rule_id == "E1"
    assert cov.ratio_reduction_points == 10  # P4: K5 nationally
    assert cov.ratio_percent_of_local == 100
    assert cov.manual is None
    assert {"E1", "P1", "P4"} <= set(cov.rules)


def test_e1_deemed_filing_of_another_admission_does_not_cover(
    national: Policy, calendar: WorkCalendar
) -> None:
    adm = admission(emergency=True)
    other = deemed_for(admission(id="adm-test-0002", emergency=True))

    cov = decide(adm, national, [other], calendar)

    assert covering_filing(adm, [other]) is None
    assert cov.basis == "none"
    assert cov.direct_settlement is False
    assert cov.rule_id == "P5"


def test_e1_a_deemed_filing_no_longer_deemed_does_not_cover(
    national: Policy, calendar: WorkCalendar
) -> None:
    adm = admission(emergency=True)
    lapsed = deemed_for(adm, state=FilingState.CANCELLED)

    assert covering_filing(adm, [lapsed]) is None
    assert decide(adm, national, [lapsed], calendar).basis == "none"


def test_e1_a_real_filing_wins_over_the_deemed_one(
    national: Policy, calendar: WorkCalendar
) -> None:
    adm = admission(emergency=True)
    deemed = deemed_for(adm)
    real = filing(kind=Kind.RESETTLED_RETIREE, valid_until=None)

    cov = decide(adm, national, [deemed, real], calendar)

    assert covering_filing(adm, [deemed, real]) is real
    assert cov.basis == "filing"
    assert cov.rule_id == "P1"
    assert cov.ratio_reduction_points == 0


def test_e1_jiangmen_deemed_filing_names_its_e3_window(
    jiangmen: Policy, calendar: WorkCalendar
) -> None:
    adm = admission(emergency=True)

    cov = decide(adm, jiangmen, [deemed_for(adm)], calendar)

    assert cov.basis == "deemed"
    assert cov.rule_id == "E1"
    window_parts = [p for p in cov.parts if p.rule_id == "E3"]
    assert len(window_parts) == 1
    assert "2026-03-11" in window_parts[0].reason
    assert "before discharge" in window_parts[0].reason


# -- P3: not filed (Xiamen) ---------------------------------------------------------------------


def xiamen_admission(**changes: Any) -> Admission:
    return admission(
        insured_region=XIAMEN, policy_region=XIAMEN, person_masked="3502**********0000", **changes
    )


def test_p3_xiamen_unfiled_hospital_stay_bears_ten_percent_first(
    policies: dict[str, Policy], calendar: WorkCalendar
) -> None:
    cov = decide(xiamen_admission(), policies[XIAMEN], [], calendar)

    assert cov.basis == "none"
    assert cov.direct_settlement is False
    assert cov.reimbursable is True
    assert cov.rule_id == "P3"
    assert cov.manual is not None
    assert cov.manual.self_share_first_percent == 10
    assert cov.manual.reduction_percent == 0
    assert "E2" in cov.rules  # a retro filing before settlement would still settle directly


def test_p3_xiamen_unfiled_pharmacy_is_not_reimbursed(
    policies: dict[str, Policy], calendar: WorkCalendar
) -> None:
    adm = xiamen_admission(institution=Institution.PHARMACY, care=Care.OUTPATIENT)

    cov = decide(adm, policies[XIAMEN], [], calendar)

    assert cov.basis == "none"
    assert cov.direct_settlement is False
    assert cov.reimbursable is False
    assert cov.manual is None
    assert cov.rule_id == "P3"


def test_p3_xiamen_filed_pharmacy_settles_directly(
    policies: dict[str, Policy], calendar: WorkCalendar
) -> None:
    adm = xiamen_admission(institution=Institution.PHARMACY, care=Care.OUTPATIENT)

    cov = decide(adm, policies[XIAMEN], [filing(insured_region=XIAMEN)], calendar)

    assert cov.direct_settlement is True
    assert cov.reimbursable is True
    assert cov.rule_id == "P1"


def test_p3_national_unfiled_pharmacy_is_reimbursed_by_manual_claim(
    national: Policy, calendar: WorkCalendar
) -> None:
    adm = admission(institution=Institution.PHARMACY, care=Care.OUTPATIENT)

    cov = decide(adm, national, [], calendar)

    assert cov.basis == "none"
    assert cov.reimbursable is True
    assert cov.direct_settlement is False
    assert cov.rule_id == "P5"
    assert cov.manual is not None
    assert cov.manual.self_share_first_percent == 0
    assert cov.manual.counted_from == date(2026, 3, 1)  # a visit: the expense date


def test_p3_xiamen_care_inside_fujian_needs_no_filing(
    policies: dict[str, Policy], calendar: WorkCalendar
) -> None:
    cov = decide(xiamen_admission(treatment_region=FUZHOU), policies[XIAMEN], [], calendar)

    assert cov.basis == "no_filing_needed"
    assert cov.direct_settlement is True
    assert cov.rule_id == "K8"


# -- P4: lower ratios for temporary filings, Shenzhen's in-province share -----------------------


@pytest.mark.parametrize(
    ("kind", "points", "ratio_rule"),
    [
        (Kind.REFERRAL, 10, "P4"),
        (Kind.EMERGENCY, 10, "P4"),
        (Kind.OTHER_TEMPORARY, 20, "P4"),
        (Kind.RESETTLED_RETIREE, 0, "P2"),
        (Kind.LONG_TERM_RESIDENT, 0, "P2"),
        (Kind.POSTED_WORKER, 0, "P2"),
    ],
)
def test_p4_ratio_points_by_kind(
    national: Policy, calendar: WorkCalendar, kind: Kind, points: int, ratio_rule: str
) -> None:
    cov = decide(admission(), national, [filing(kind=kind)], calendar)

    assert cov.basis == "filing"
    assert cov.direct_settlement is True
    assert cov.rule_id == "P1"
    assert cov.ratio_reduction_points == points
    assert cov.ratio_percent_of_local == 100
    ratio_parts = [p.rule_id for p in cov.parts if p.part == "ratio"]
    assert ratio_parts == [ratio_rule]


@pytest.mark.parametrize(("emergency", "percent"), [(True, 90), (False, 80)])
def test_p4_shenzhen_inside_guangdong_needs_no_filing(
    policies: dict[str, Policy], calendar: WorkCalendar, emergency: bool, percent: int
) -> None:
    adm = admission(
        insured_region=SHENZHEN,
        policy_region=SHENZHEN,
        treatment_region=GUANGZHOU,
        emergency=emergency,
    )

    cov = decide(adm, policies[SHENZHEN], [], calendar)

    assert cov.basis == "no_filing_needed"
    assert cov.filing_id is None
    assert cov.direct_settlement is True
    assert cov.ratio_percent_of_local == percent
    assert cov.ratio_reduction_points == 0
    assert cov.manual is None
    assert cov.rule_id == "K8"
    assert "P4" in cov.rules


def test_p4_national_inside_the_province_pays_the_full_in_city_ratio(
    national: Policy, calendar: WorkCalendar
) -> None:
    adm = admission(
        insured_region=SHENZHEN, policy_region=SHENZHEN, treatment_region=GUANGZHOU, emergency=True
    )

    cov = decide(adm, national, [], calendar)

    assert cov.basis == "no_filing_needed"
    assert cov.ratio_percent_of_local == 100


def test_p4_shenzhen_outside_guangdong_needs_a_filing(
    policies: dict[str, Policy], calendar: WorkCalendar
) -> None:
    adm = admission(insured_region=SHENZHEN, policy_region=SHENZHEN, treatment_region=SHANGHAI)

    cov = decide(adm, policies[SHENZHEN], [], calendar)

    assert cov.basis == "none"
    assert cov.direct_settlement is False
    assert cov.ratio_percent_of_local == 100
    assert cov.rule_id == "P5"


def test_p4_jiangmen_files_for_other_cities_of_its_province(
    jiangmen: Policy, calendar: WorkCalendar
) -> None:
    inside = decide(admission(treatment_region="440703"), jiangmen, [], calendar)
    outside = decide(admission(treatment_region=GUANGZHOU), jiangmen, [], calendar)

    assert inside.basis == "no_filing_needed"
    assert inside.rule_id == "K8"
    assert outside.basis == "none"
    assert outside.rule_id == "P5"


@pytest.mark.parametrize(
    ("kind", "reduction"),
    [(Kind.OTHER_TEMPORARY, 20), (Kind.REFERRAL, 20), (Kind.RESETTLED_RETIREE, 0)],
)
def test_p4_manual_reimbursement_of_a_temporary_filing_is_reduced(
    national: Policy, calendar: WorkCalendar, kind: Kind, reduction: int
) -> None:
    adm = admission(networked=False)

    cov = decide(adm, national, [filing(kind=kind)], calendar)

    assert cov.direct_settlement is False
    assert cov.rule_id == "P5"
    assert cov.manual is not None
    assert cov.manual.reduction_percent == reduction
    assert cov.manual.self_share_first_percent == 0
    assert any(
        p.part == "ratio" and p.rule_id == "P4" and "20%" in p.reason for p in cov.parts
    ) is (reduction > 0)


def test_p4_manual_reimbursement_of_a_deemed_filing_is_reduced(
    national: Policy, calendar: WorkCalendar
) -> None:
    adm = admission(emergency=True, system_fault=True)

    cov = decide(adm, national, [deemed_for(adm)], calendar)

    assert cov.basis == "deemed"
    assert cov.rule_id == "P5"
    assert cov.manual is not None
    assert cov.manual.reduction_percent == 20


# -- P5: no direct settlement: pay in full, then claim ------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [{"networked": False}, {"system_fault": True}],
    ids=["not_networked", "system_fault"],
)
def test_p5_no_direct_settlement_with_a_filing(
    national: Policy, calendar: WorkCalendar, changes: dict[str, Any]
) -> None:
    f = filing(kind=Kind.RESETTLED_RETIREE, valid_until=None)
    assert decide(admission(), national, [f], calendar).direct_settlement is True

    cov = decide(admission(**changes), national, [f], calendar)

    assert cov.basis == "filing"
    assert cov.direct_settlement is False
    assert cov.reimbursable is True
    assert cov.rule_id == "P5"
    assert cov.manual is not None
    assert cov.manual.documents == BASE_CLAIM_DOCUMENTS
    assert [p.rule_id for p in cov.parts if p.part == "direct_settlement"] == ["P5"]


def test_p5_no_filing_nationally(national: Policy, calendar: WorkCalendar) -> None:
    cov = decide(admission(), national, [], calendar)

    assert cov.basis == "none"
    assert cov.direct_settlement is False
    assert cov.rule_id == "P5"
    assert cov.manual is not None
    assert cov.manual.self_share_first_percent == 0


def test_p5_claim_documents_base(national: Policy) -> None:
    assert claim_documents(national, admission()) == BASE_CLAIM_DOCUMENTS


def test_p5_claim_documents_by_situation(national: Policy) -> None:
    adm = admission(referral=True, emergency=True)

    docs = claim_documents(national, adm, accident=True, outside_drugs=True, by_proxy=True)

    assert docs == (
        *BASE_CLAIM_DOCUMENTS,
        (Document.REFERRAL_CERTIFICATE,),
        (Document.EMERGENCY_DIAGNOSIS,),
        (Document.ACCIDENT_PROOF, Document.PERSONAL_COMMITMENT),
        (Document.OUTSIDE_DRUG_RECEIPTS,),
        (Document.PROXY_AUTHORISATION,),
    )


@pytest.mark.parametrize(
    ("changes", "extra"),
    [
        ({"referral": True}, (Document.REFERRAL_CERTIFICATE,)),
        ({"emergency": True}, (Document.EMERGENCY_DIAGNOSIS,)),
    ],
    ids=["referral", "emergency"],
)
def test_p5_the_claim_of_a_decision_lists_the_extra_documents(
    national: Policy, calendar: WorkCalendar, changes: dict[str, Any], extra: tuple[Document, ...]
) -> None:
    cov = decide(admission(networked=False, **changes), national, [], calendar)

    assert cov.manual is not None
    assert cov.manual.documents == (*BASE_CLAIM_DOCUMENTS, extra)


@pytest.mark.parametrize(
    ("flag", "extra"),
    [
        ("accident", (Document.ACCIDENT_PROOF, Document.PERSONAL_COMMITMENT)),
        ("outside_drugs", (Document.OUTSIDE_DRUG_RECEIPTS,)),
        ("by_proxy", (Document.PROXY_AUTHORISATION,)),
    ],
)
def test_p5_each_extra_on_its_own(national: Policy, flag: str, extra: tuple[Document, ...]) -> None:
    docs = claim_documents(national, admission(), **{flag: True})

    assert docs == (*BASE_CLAIM_DOCUMENTS, extra)


# -- P6: the claim deadline ---------------------------------------------------------------------


def test_p6_national_six_months_at_month_end_into_an_unknown_year(
    national: Policy, calendar: WorkCalendar
) -> None:
    end = claim_deadline(national, date(2026, 8, 31), calendar)

    assert end is not None
    assert end.computed_last_day == date(2027, 2, 28)  # C2: no 31 February
    # 28 February 2027 is a Sunday; 2027 is unknown: weekends only, Monday 1 March.
    assert end.last_day == date(2027, 3, 1)
    assert end.provisional is True
    assert end.rules == ("C1", "C2", "C3", "C4", "C6")


@pytest.mark.parametrize(
    ("region", "counted_from", "computed", "last_day", "provisional"),
    [
        # Shenzhen: 12 months.
        (SHENZHEN, date(2025, 3, 10), date(2026, 3, 10), date(2026, 3, 10), False),
        (SHENZHEN, date(2026, 3, 10), date(2027, 3, 10), date(2027, 3, 10), True),
        # Shanghai: 3 months (from the receipt); Sunday 28 June 2026 moves to Monday (C3).
        (SHANGHAI, date(2026, 3, 10), date(2026, 6, 10), date(2026, 6, 10), False),
        (SHANGHAI, date(2026, 3, 28), date(2026, 6, 28), date(2026, 6, 29), False),
        # National: Saturday 8 August 2026 moves to Monday 10 August (C3).
        ("national", date(2026, 2, 8), date(2026, 8, 8), date(2026, 8, 10), False),
        # Sunday 20 September 2026 is a swapped working day: not moved.
        ("national", date(2026, 3, 20), date(2026, 9, 20), date(2026, 9, 20), False),
        ("national", date(2026, 1, 31), date(2026, 7, 31), date(2026, 7, 31), False),
    ],
)
def test_p6_claim_deadline_by_region(
    policies: dict[str, Policy],
    calendar: WorkCalendar,
    region: str,
    counted_from: date,
    computed: date,
    last_day: date,
    provisional: bool,
) -> None:
    end = claim_deadline(policies[region], counted_from, calendar)

    assert end is not None
    assert end.computed_last_day == computed
    assert end.last_day == last_day
    assert end.provisional is provisional
    assert ("C3" in end.rules) is (last_day != computed)
    assert ("C6" in end.rules) is provisional
    assert end.ends_at == end_of_local_day(last_day)


def test_p6_region_values(policies: dict[str, Policy]) -> None:
    assert policies["national"].reimbursement_months == 6
    assert policies["national"].reimbursement_from == "discharge"
    assert policies[SHENZHEN].reimbursement_months == 12
    assert policies[SHANGHAI].reimbursement_months == 3
    assert policies[SHANGHAI].reimbursement_from == "receipt"
    assert policies[SHANGHAI].rule("reimbursement_months") == "P6"


def test_p6_claim_deadline_ends_at_24_00_local_on_the_moved_day(
    national: Policy, calendar: WorkCalendar
) -> None:
    end = claim_deadline(national, date(2026, 2, 8), calendar)

    assert end is not None
    assert not end.is_over(at(2026, 8, 8, 23, 59, 59))  # computed last day, a Saturday
    assert not end.is_over(at(2026, 8, 10, 23, 59, 59))
    assert end.is_over(at(2026, 8, 11, 0, 0))


def test_p6_no_deadline_before_discharge(national: Policy, calendar: WorkCalendar) -> None:
    assert claim_deadline(national, None, calendar) is None

    cov = decide(admission(), national, [], calendar)

    assert cov.manual is not None
    assert cov.manual.counted_from is None
    assert cov.manual.deadline is None
    assert any(p.rule_id == "P6" and "within 6 months of discharge" in p.reason for p in cov.parts)


def test_p6_decision_counts_from_discharge(
    policies: dict[str, Policy], calendar: WorkCalendar
) -> None:
    adm = settled(admission(), date(2026, 3, 20))

    national = decide(adm, policies["national"], [], calendar)
    shenzhen = decide(
        replace(adm, insured_region=SHENZHEN, treatment_region=SHANGHAI),
        policies[SHENZHEN],
        [],
        calendar,
    )

    assert national.manual is not None
    assert national.manual.counted_from == date(2026, 3, 20)
    assert national.manual.deadline is not None
    assert national.manual.deadline.last_day == date(2026, 9, 20)
    assert national.manual.deadline.provisional is False
    assert national.as_inputs()["manual"]["last_day"] == "2026-09-20"
    assert shenzhen.manual is not None
    assert shenzhen.manual.deadline is not None
    assert shenzhen.manual.deadline.last_day == date(2027, 3, 22)  # Sat 20 → Mon 22, weekends only
    assert shenzhen.manual.deadline.provisional is True
    assert shenzhen.as_inputs()["manual"]["provisional"] is True
    assert "provisional" in next(
        p.reason for p in shenzhen.parts if p.part == "manual_reimbursement"
    )


def test_p6_outpatient_visit_counts_from_the_visit(
    policies: dict[str, Policy], calendar: WorkCalendar
) -> None:
    adm = admission(
        care=Care.OUTPATIENT,
        admitted_on=date(2026, 3, 10),
        insured_region=SHANGHAI,
        policy_region=SHANGHAI,
    )

    cov = decide(adm, policies[SHANGHAI], [], calendar)

    assert cov.manual is not None
    assert cov.manual.counted_from == date(2026, 3, 10)
    assert cov.manual.deadline is not None
    assert cov.manual.deadline.last_day == date(2026, 6, 10)


# -- P7: outpatient chronic and special diseases ------------------------------------------------


@pytest.mark.parametrize(
    ("enabled", "declared", "direct", "rule"),
    [
        (True, True, True, "P1"),
        (True, False, False, "P7"),
        (False, True, False, "P7"),
        (False, False, False, "P7"),
    ],
)
def test_p7_chronic_outpatient_needs_an_enabled_institution_and_a_declaration(
    national: Policy,
    calendar: WorkCalendar,
    enabled: bool,
    declared: bool,
    direct: bool,
    rule: str,
) -> None:
    adm = admission(
        care=Care.CHRONIC_OUTPATIENT, chronic_enabled=enabled, chronic_declared=declared
    )
    f = filing(kind=Kind.RESETTLED_RETIREE, valid_until=None)

    cov = decide(adm, national, [f], calendar)

    assert cov.basis == "filing"
    assert cov.direct_settlement is direct
    assert cov.rule_id == rule
    assert (cov.manual is None) is direct


def test_p7_does_not_apply_to_other_care(national: Policy, calendar: WorkCalendar) -> None:
    f = filing(kind=Kind.RESETTLED_RETIREE, valid_until=None)
    for care in (Care.INPATIENT, Care.OUTPATIENT):
        cov = decide(admission(care=care), national, [f], calendar)
        assert cov.direct_settlement is True
        assert cov.rule_id == "P1"


# -- the decision as audit inputs ---------------------------------------------------------------


def test_coverage_as_inputs_names_rules_not_people(
    national: Policy, calendar: WorkCalendar
) -> None:
    adm = admission(emergency=True)
    cov: Coverage = decide(adm, national, [deemed_for(adm)], calendar)

    inputs = cov.as_inputs()

    assert inputs["rule_id"] == "E1"
    assert inputs["basis"] == "deemed"
    assert inputs["day"] == "2026-03-01"
    assert inputs["ratio_reduction_points"] == 10
    assert "manual" not in inputs
    assert inputs["parts"][0][:2] == ["filing", "E1"]
    assert "pk-test-0001" not in repr(inputs)


@pytest.mark.parametrize("emergency", [True, False])
def test_p4_care_in_the_insured_city_itself_is_paid_the_in_city_ratio(
    policies: dict[str, Policy], calendar: WorkCalendar, emergency: bool
) -> None:
    # Shenzhen's 90 % / 80 % is for care elsewhere in Guangdong, not for Shenzhen itself.
    adm = admission(
        insured_region=SHENZHEN, policy_region=SHENZHEN, treatment_region="440304",
        emergency=emergency,
    )  # fmt: skip
    cov = decide(adm, policies[SHENZHEN], [], calendar)
    assert (cov.basis, cov.ratio_percent_of_local, cov.direct_settlement) == (
        "no_filing_needed", 100, True,
    )  # fmt: skip
    assert ("ratio", "P2") in [(p.part, p.rule_id) for p in cov.parts]


# -- reminder instants (jobs/ sends them; config.toml sets the lead times) ----------------------


def test_reminder_instants_before_a_validity_a_window_and_a_claim(
    national: Policy, jiangmen: Policy
) -> None:
    from states.admissions import filing_window, window_reminder_at
    from states.coverage import claim_reminder_at
    from states.lifecycle import expiry_reminders_at
    from workflow.calendar import build_calendar

    # V3: 30 and 7 days before the last valid day (2 September), at 00:00 local.
    assert expiry_reminders_at(date(2026, 9, 2), national) == [
        datetime(2026, 8, 2, 16, tzinfo=UTC), datetime(2026, 8, 25, 16, tzinfo=UTC),
    ]  # fmt: skip
    assert expiry_reminders_at(None, national) == []  # indefinite: nothing to remind of
    # E3: 3 days before the window's last day (11 March), at 00:00 local on 8 March.
    window = filing_window(admission(emergency=True), jiangmen, build_calendar({}))
    assert window is not None and window.end.last_day == date(2026, 3, 11)
    assert window_reminder_at(window, jiangmen) == datetime(2026, 3, 7, 16, tzinfo=UTC)
    assert window_reminder_at(window, replace(jiangmen, window_reminder_days=0)) is None
    # P6: as the day 30 days before the last day ends.
    assert claim_reminder_at(national, date(2026, 9, 7)) == end_of_local_day(date(2026, 8, 8))
    assert (
        claim_reminder_at(replace(national, reimbursement_reminder_days=0), date(2026, 9, 7))
        is None
    )
