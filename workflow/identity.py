"""Personal data at the edge: ID numbers are validated, masked and turned into a keyed lookup
hash here, and go no further. Nothing downstream (rows, audit, logs, errors) sees them whole."""

from __future__ import annotations

import hashlib
import hmac
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


def region_exists(code: str) -> bool:
    """Whether a six-digit code is in the GB/T 2260 table that python-stdnum ships."""
    if len(code) != 6 or not code.isdigit():
        return False
    parts = _regions().info(code)
    return len(parts) == 2 and bool(parts[0][1]) and bool(parts[1][1])
