"""M1: a resident ID number is accepted when each of its parts is valid, and refused naming the
part that is not, never the number. The region code is the place of registration when the
18-digit number was issued, so it only has to be a GB/T 2260 code of some time, not one that
existed in the birth year: retirees (K1) born before their district was created must file."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from stdnum.cn import ric

from states.errors import InvalidInput
from tests.conftest import Clock, draft
from workflow import FilingEngine
from workflow.identity import normalise_id_number, region_exists

TODAY = date(2026, 3, 2)

# People born 1930-1965, registered in districts created 1983-1997 (first year in the table).
OLDER_PEOPLE = [
    "35020319500314023X",  # Xiamen Siming (1983-), born 1950
    "440304195007021178",  # Shenzhen Futian (1983- as 上埗区办事处), born 1950
    "440703195511200461",  # Jiangmen Pengjiang (1994-), born 1955
    "440704196001050310",  # Jiangmen Jianghai (1994-), born 1960
    "110112193805092150",  # Beijing Tongzhou (1997-), born 1938
    "310115194508230626",  # Shanghai Pudong (1992-), born 1945
    "350206195212010182",  # Xiamen Huli (1987-), born 1952
    "440306196206302738",  # Shenzhen Bao'an (1992-), born 1962
    "320106193302280442",  # Nanjing Gulou (1983-), born 1933
    "330108196409171295",  # Hangzhou Binjiang (1996-), born 1964
    "420115194104110869",  # Wuhan Jiangxia (1995-), born 1941
    "510107195710103526",  # Chengdu Wuhou (1990-), born 1957
]


def number(region: str, born: str, serial: str = "021") -> str:
    """An 18-digit number with a correct check digit, whatever its other parts."""
    body = region + born + serial
    return body + ric.calc_check_digit(body + "0")


def refusal(text: str, today: date = TODAY) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        normalise_id_number(text, today)
    return caught.value


@pytest.mark.parametrize("older", OLDER_PEOPLE)
def test_an_older_persons_number_from_a_district_created_after_their_birth_is_accepted(
    older: str,
) -> None:
    assert not ric.is_valid(older)  # python-stdnum's own validate refuses every one of them

    accepted = normalise_id_number(older, TODAY)

    assert accepted == older


def test_older_people_of_districts_created_after_their_birth_file_through_the_engine(
    engine: FilingEngine,
) -> None:
    filings = [draft(engine, id_number=older) for older in OLDER_PEOPLE]

    assert [f.state.value for f in filings] == ["draft"] * len(OLDER_PEOPLE)
    assert [engine.list_for_person(older)[0].id for older in OLDER_PEOPLE] == [
        f.id for f in filings
    ]


def test_a_lower_case_x_check_digit_is_accepted_as_the_number() -> None:
    assert normalise_id_number("35020319500314023x", TODAY) == "35020319500314023X"


def test_a_code_no_longer_in_use_is_a_region_code_of_an_id_number_but_not_a_region() -> None:
    ended = number("110221", "19450101")  # 昌平县, 1982-1999

    accepted = normalise_id_number(ended, TODAY)

    assert accepted == ended
    assert not region_exists("110221")
    assert region_exists("110114")  # 昌平区, its successor


def test_a_filing_still_names_regions_in_use_today(engine: FilingEngine) -> None:
    """The insured and treatment regions are judged by `region_exists` (current codes, K8),
    not by what an ID number's region code may be."""
    with pytest.raises(InvalidInput) as caught:
        draft(engine, id_number=number("110221", "19450101"), treatment_region="110221")

    assert (caught.value.field, caught.value.rule_id) == ("treatment_region", "K8")
    assert "current" in caught.value.problem


@pytest.mark.parametrize("code", ["999999", "000000", "359999", "350299", "440799"])
def test_a_number_with_a_region_code_that_never_existed_is_refused_naming_the_region_code(
    code: str,
) -> None:
    unknown = number(code, "19500314")

    error = refusal(unknown)

    assert (error.field, error.rule_id) == ("id_number", "M1")
    assert "region code" in error.problem
    assert unknown not in str(error) and unknown[:17] not in str(error)


@pytest.mark.parametrize(
    ("text", "part"),
    [
        ("35020319500314023", "length"),
        ("35020319500314023X1", "length"),
        ("", "length"),
        ("3502031950031402AX", "format"),
        ("35020319500314023Y", "format"),
        ("350203195003140-3X", "format"),
        ("350203195003140231", "check digit"),
        (number("350203", "19500230"), "birth date"),
        (number("350203", "19501301"), "birth date"),
        (number("350203", "18991231"), "birth date"),
        (number("350203", "20260303"), "birth date"),
    ],
)
def test_a_number_with_one_wrong_part_is_refused_naming_that_part(text: str, part: str) -> None:
    error = refusal(text)

    assert (error.field, error.rule_id) == ("id_number", "M1")
    assert part in error.problem
    assert all(p not in error.problem for p in {"length", "format", "check digit"} - {part})
    if len(text) >= 6:
        assert text not in str(error) and text[6:14] not in str(error)


def test_a_birth_date_in_the_future_is_judged_by_the_engines_clock(
    engine: FilingEngine, clock: Clock
) -> None:
    born_tomorrow = number("350203", (TODAY + timedelta(days=1)).strftime("%Y%m%d"))
    clock.to_local(TODAY)
    with pytest.raises(InvalidInput) as caught:
        draft(engine, id_number=born_tomorrow)
    assert "birth date is in the future" in caught.value.problem

    clock.to_local(TODAY + timedelta(days=1))
    filing = draft(engine, id_number=born_tomorrow)

    assert filing.state.value == "draft"


def test_the_first_day_of_1900_is_accepted_as_a_birth_date() -> None:
    oldest = number("350203", "19000101")

    assert normalise_id_number(oldest, TODAY) == oldest
