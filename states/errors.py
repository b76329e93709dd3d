"""Domain errors. Each carries its fields and builds its own message from them.

Messages carry opaque ids and rule ids, never personal data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class FilingError(Exception):
    """Base of every error the engine raises on purpose."""

    rule_id: str | None = None


class InvalidInput(FilingError):
    """A field of a request breaks a rule; nothing was written."""

    def __init__(self, field: str, rule_id: str, problem: str) -> None:
        self.field = field
        self.rule_id = rule_id
        self.problem = problem
        super().__init__(f"{field}: {problem} [{rule_id}]")


class TransitionRefused(FilingError):
    """A rule refused a transition. The refusal itself is recorded in the audit trail."""

    def __init__(
        self,
        *,
        filing_id: str,
        event: str,
        state: str,
        rule_id: str,
        reason: str,
        inputs: Mapping[str, Any] | None = None,
    ) -> None:
        self.filing_id = filing_id
        self.event = event
        self.state = state
        self.rule_id = rule_id
        self.reason = reason
        self.inputs = dict(inputs or {})
        super().__init__(
            f"filing {filing_id}: {event} refused in state {state} [{rule_id}]: {reason}"
        )


class FilingNotFound(FilingError):
    def __init__(self, filing_id: str) -> None:
        self.filing_id = filing_id
        super().__init__(f"no filing {filing_id}")


class ConcurrentUpdate(FilingError):
    """The filing changed since it was read (optimistic concurrency on `version`)."""

    def __init__(self, filing_id: str, expected_version: int) -> None:
        self.filing_id = filing_id
        self.expected_version = expected_version
        super().__init__(f"filing {filing_id} is no longer at version {expected_version}")


class PolicyConfigError(FilingError):
    """config.toml (or an option or environment variable standing for one of its keys) holds a
    setting the engine will not run with. Carries every problem found, each naming its key;
    `key` and `problem` are the first."""

    def __init__(self, key: str, problem: str, *more: tuple[str, str]) -> None:
        self.key = key
        self.problem = problem
        self.problems: tuple[tuple[str, str], ...] = ((key, problem), *more)
        super().__init__("config " + "; ".join(f"{k}: {p}" for k, p in self.problems))

    @classmethod
    def of(cls, problems: Sequence[tuple[str, str]]) -> PolicyConfigError:
        """One error for several problems (at least one)."""
        (key, problem), *more = problems
        return cls(key, problem, *more)
