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


# -- personal data in text --------------------------------------------------------------------
# One place says what looks like personal data in text. Text a person writes (a note) is
# refused when it holds any of it (`personal_data_in`); text a machine writes (ids, audit
# records) is masked by the export's guard (`mask_personal_data`), and an identifier that guard
# would change (a request id, an actor id) is not taken up.

# A letter no hexadecimal number holds (g-z) ends a number as a space does: an ID number after
# one ("r350203…") stands alone, while a run of digits inside a hash or a hex id does not.
_ALONE_BEFORE = r"(?<![0-9A-Fa-f])"
_ALONE_AFTER = r"(?![0-9A-Fa-f])"
_ID_ALONE = re.compile(_ALONE_BEFORE + r"(?:\d{17}[\dXx]|\d{15})" + _ALONE_AFTER)
_MOBILE_ALONE = re.compile(_ALONE_BEFORE + r"(?:\+?86)?1[3-9]\d{9}" + _ALONE_AFTER)
# An ID number inside a longer run of digits or hex counts when it is one: its check digit
# and birth date are valid (a random run of 18 digits is, about once in 20 000).
_LONG_RUN = re.compile(r"\d{17,}[Xx]?")
# What a person writes: digits in groups of three or more, each joined by one space or dash
# ("138 0013 8000", "6222-0212-3456-7890"), letters around them or not ("r350203…").
_DIGIT_GROUPS = re.compile(r"\d{3,}(?:[ -]\d{3,})*[Xx]?")
_MOBILE = re.compile(r"(?:86)?1[3-9]\d{9}")
_CARD_DIGITS = 12  # bank and social security card numbers have 12 to 19 digits


def _is_id_number(text: str) -> bool:
    """Whether 18 characters are a resident ID number by check digit and birth date (the
    region code is not asked: a guard must not miss a number whose code has since changed)."""
    if len(text) != 18 or not text[:17].isdigit():
        return False
    if ric.calc_check_digit(text) != text[17].upper():
        return False
    try:
        return EARLIEST_BIRTH_DATE.year <= ric.get_birth_date(text).year < 2100
    except ValidationError:
        return False


def personal_data_in(text: str) -> str | None:
    """What `text` holds that is shaped like personal data: "an ID number" (18 or 15 digits),
    "a mobile number" or "a card number" (12 digits or more), or None. For text a person
    writes, where a number that long has no business."""
    found: set[str] = set()
    for m in _DIGIT_GROUPS.finditer(text):
        digits = re.sub(r"[ -]", "", m.group())
        core = digits.rstrip("Xx")
        if len(core) in (15, 18) or (len(core) == 17 and core != digits):
            found.add("an ID number")
        elif _MOBILE.fullmatch(core):
            found.add("a mobile number")
        elif len(core) >= _CARD_DIGITS:
            found.add("a card number")
    return next(
        (k for k in ("an ID number", "a mobile number", "a card number") if k in found), None
    )


def mask_personal_data(text: str, *, mobiles: bool = True) -> str:
    """`text` with every resident ID number masked (keep 4 + 4: `3502**********123X`) and every
    mainland mobile number (keep 3 + 4, as they are shown in China: `138****8000`), standing
    alone or after a letter (`r350203…`). A run of digits inside a hash or a hex id is left as
    it is, unless it holds a valid ID number. (Card numbers are not looked for here: a key's id
    is twelve hex digits, sometimes all of them digits.) Without `mobiles`, ID numbers only:
    for codes such as a hospital's, whose digits can read like a mobile number (H13…)."""
    spans: list[tuple[int, int, str]] = []  # (start, end, masked), the first found wins

    def add(start: int, number: str, keep_start: int = 4) -> None:
        end = start + len(number)
        if all(end <= s or e <= start for s, e, _ in spans):
            spans.append((start, end, mask(number, keep_start=keep_start)))

    for m in _LONG_RUN.finditer(text):
        run = m.group()
        for i in range(len(run) - 17):
            if _is_id_number(run[i : i + 18]):
                add(m.start() + i, run[i : i + 18])
    for m in _ID_ALONE.finditer(text):
        add(m.start(), m.group())
    for m in _MOBILE_ALONE.finditer(text) if mobiles else ():
        add(m.start(), m.group(), keep_start=len(m.group()) - 8)  # 3 of 11 digits, and +86
    out, at = [], 0
    for start, end, masked in sorted(spans):
        out += [text[at:start], masked]
        at = end
    return "".join(out) + text[at:]
