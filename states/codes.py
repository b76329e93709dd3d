"""What an organisation's code looks like: a hospital's own code (P1: the designated
institution that settles) and the organisation a key is issued for (A5). The patterns are
config.toml's `[codes]`, each citing its rule; a code that does not match is refused naming
its field before anything is written, so a code can never carry an ID number."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from states.catalogue import RULES
from states.errors import InvalidInput, PolicyConfigError

_KINDS = ("hospital", "organisation")


@dataclass(frozen=True)
class CodePattern:
    pattern: re.Pattern[str]
    example: str
    rule: str

    def check(self, field: str, value: object, rule: str | None = None) -> None:
        """Refuse `value` unless it matches, naming `field` and the rule (the pattern's own,
        or the one the caller checks it for); the error never echoes the value."""
        if not isinstance(value, str) or not self.pattern.fullmatch(value):
            raise InvalidInput(
                field,
                rule or self.rule,
                f"must be a code like {self.example} (pattern {self.pattern.pattern})",
            )


@dataclass(frozen=True)
class Codes:
    hospital: CodePattern
    organisation: CodePattern


def parse_codes(raw: object) -> Codes:
    """`[codes]`: `hospital` and `organisation`, each `{ value = "regex", example = "...",
    rule = "ID" }`; the example must match its own pattern."""
    if not isinstance(raw, Mapping):
        raise PolicyConfigError("codes", "must be a table")
    unknown = set(raw) - set(_KINDS)
    if unknown:
        raise PolicyConfigError(f"codes.{sorted(unknown)[0]}", "unknown key")
    parsed: dict[str, CodePattern] = {}
    for kind in _KINDS:
        where = f"codes.{kind}"
        entry = raw.get(kind)
        if not isinstance(entry, Mapping) or set(entry) != {"value", "example", "rule"}:
            raise PolicyConfigError(
                where, 'must be written as { value = "regex", example = "...", rule = "ID" }'
            )
        try:
            pattern = re.compile(str(entry["value"]))
        except re.error as exc:
            raise PolicyConfigError(f"{where}.value", f"not a regular expression: {exc}") from None
        if entry["rule"] not in RULES:
            raise PolicyConfigError(f"{where}.rule", "must name a rule of the catalogue")
        example = entry["example"]
        if not isinstance(example, str) or not pattern.fullmatch(example):
            raise PolicyConfigError(f"{where}.example", "must match the pattern")
        parsed[kind] = CodePattern(pattern, example, entry["rule"])
    return Codes(**parsed)
