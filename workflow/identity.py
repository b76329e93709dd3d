"""Personal data at the edge: ID numbers are validated, masked and turned into a keyed lookup
hash here, and go no further. Nothing downstream (rows, audit, logs, errors) sees them whole."""

from __future__ import annotations

import hashlib
import hmac
import re
from functools import cache

from stdnum import numdb
from stdnum.cn import ric
from stdnum.exceptions import ValidationError

from states.errors import InvalidInput


def normalise_id_number(id_number: str, field: str = "id_number") -> str:
    """Validate a resident ID number (居民身份证号码) with python-stdnum's `cn.ric`."""
    try:
        return str(ric.validate(id_number))
    except ValidationError as exc:
        # The message names the field and the check, never the number itself.
        raise InvalidInput(field, "M1", f"not a valid resident ID number ({exc})") from None


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


_ENDED = re.compile(r"^\[\d*-\d{4}\]")  # e.g. "[1982-1999]昌平县": a code no longer in use


def region_exists(code: str) -> bool:
    """Whether a six-digit code is a current code of the GB/T 2260 table python-stdnum ships
    (the table keeps abolished codes, marked with the years they were in use)."""
    if len(code) != 6 or not code.isdigit():
        return False
    parts = _regions().info(code)
    if len(parts) != 2 or not parts[0][1] or not parts[1][1]:
        return False
    # Names in use over time, oldest first: "[1983-1989]上埗区办事处,[1990-]福田区".
    latest = parts[1][1].get("county", "").split(",")[-1]
    return not _ENDED.match(latest)
