"""Personal data at the edge: ID numbers are validated, masked and turned into a keyed lookup
hash here, and go no further. Nothing downstream (rows, audit, logs, errors) sees them whole."""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import date
from functools import cache
from typing import NoReturn

from stdnum import numdb
from stdnum.cn import ric
from stdnum.exceptions import ValidationError
from stdnum.util import isdigits

from states.errors import InvalidInput

# M1: the earliest birth date a resident ID number is accepted with. Not a policy value: the
# identity card system postdates everyone born before it, and a date before it is a typo.
EARLIEST_BIRTH_DATE = date(1900, 1, 1)


def normalise_id_number(id_number: str, today: date, field: str = "id_number") -> str:
    """M1: a resident ID number (居民身份证号码), checked part by part with python-stdnum's `cn.ric`
    helpers: length, format, check digit, a birth date between 1900 and `today` (the engine's
    local date), and a region code of the GB/T 2260 table at any time.

    Not `ric.validate`, which also wants the region code to have existed in the birth year. The
    code is the place of registration when the number was issued (1999 onwards), not of birth:
    a Xiamen Siming resident born in 1950 carries 350203, a code created in 1983.

    The refusal names the part that is wrong and never the number itself."""
    number = ric.compact(id_number)
    if len(number) != 18:
        _refuse(field, "its length must be 18 characters")
    if not isdigits(number[:-1]) or not (isdigits(number[-1]) or number[-1] == "X"):
        _refuse(field, "its format must be 17 digits, then a digit or X")
    if number[-1] != ric.calc_check_digit(number):
        _refuse(field, "its check digit does not match the other digits")
    try:
        born = ric.get_birth_date(number)
    except ValidationError:
        _refuse(field, "its birth date is not a date")
    if born > today:
        _refuse(field, "its birth date is in the future")
    if born < EARLIEST_BIRTH_DATE:
        _refuse(field, f"its birth date is before {EARLIEST_BIRTH_DATE.year}")
    if not _county_names(number[:6]):
        _refuse(field, "its region code is not a GB/T 2260 code")
    return number


def _refuse(field: str, part: str) -> NoReturn:
    raise InvalidInput(field, "M1", f"not a valid resident ID number: {part}")


def mask(number: str, keep_start: int = 4, keep_end: int = 4) -> str:
    """`350203199001011234` -> `3502**********1234`."""
    if len(number) <= keep_start + keep_end:
        return "*" * len(number)
    return number[:keep_start] + "*" * (len(number) - keep_start - keep_end) + number[-keep_end:]


def person_key(id_number: str, key: bytes) -> str:
    """A keyed hash: equal for one person, useless to anyone without the key."""
    return hmac.new(key, id_number.encode(), hashlib.sha256).hexdigest()


@cache
def _regions() -> numdb.NumDB:
    return numdb.get("cn/loc")


def _county_names(code: str) -> list[str]:
    """The names a six-digit code of the GB/T 2260 table python-stdnum ships has had, oldest
    first, each ended one marked with the years it was in use: "[1982-1999]昌平县", or
    "[1983-1989]上埗区办事处" then "[1990-]福田区". Empty for a code that never existed."""
    if len(code) != 6 or not isdigits(code):
        return []
    parts = _regions().info(code)
    if len(parts) != 2 or not parts[0][1]:
        return []
    county = parts[1][1].get("county")
    return county.split(",") if county else []


_ENDED = re.compile(r"^\[\d*-\d{4}\]")  # e.g. "[1982-1999]昌平县": a code no longer in use


def region_exists(code: str) -> bool:
    """Whether a six-digit code is a current code of the GB/T 2260 table (the code of an
    insured or treatment region must be one in use today)."""
    names = _county_names(code)
    return bool(names) and not _ENDED.match(names[-1])
