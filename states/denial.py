"""A rule's refusal: which rule, why, and the inputs it judged (never personal data)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Denial:
    rule_id: str
    reason: str
    inputs: Mapping[str, Any] = field(default_factory=dict)
