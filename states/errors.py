"""Domain errors. Each carries its fields and builds its own message from them.

Every refusal derives from `Refused`: an embedding caller catches that one class and reads
`rule_id`, `field` and `inputs`, whichever step refused (a field of the request, a rule of the
transition, a stale version). Messages carry opaque ids and rule ids, never personal data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class FilingError(Exception):
    """Base of every error the engine raises on purpose."""

    rule_id: str | None = None


class Refused(FilingError):
    """The engine refused a command. `rule_id` names the rule (None for a request that is
    malformed rather than refused by a rule), `field` the request field judged (None where the
    whole command was), `inputs` what was judged (never personal data)."""

    def __init__(
        self,
        message: str,
        *,
        rule_id: str | None,
        field: str | None = None,
        inputs: Mapping[str, Any] | None = None,
    ) -> None:
        self.rule_id = rule_id
        self.field = field
        self.inputs = dict(inputs or {})
        super().__init__(message)


class InvalidInput(Refused):
    """A field of a request breaks a rule. Nothing of the command was written; where a rule
    refused it (`rule_id` set) the attempt is recorded in the audit trail as denied. A request
    that is malformed rather than refused (`rule_id` None) is not recorded."""

    def __init__(self, field: str, rule_id: str | None, problem: str) -> None:
        self.problem = problem
        tag = f" [{rule_id}]" if rule_id else ""
        super().__init__(
            f"{field}: {problem}{tag}",
            rule_id=rule_id,
            field=field,
            inputs={"field": field, "problem": problem},
        )


class TransitionRefused(Refused):
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
        self.reason = reason
        super().__init__(
            f"filing {filing_id}: {event} refused in state {state} [{rule_id}]: {reason}",
            rule_id=rule_id,
            inputs=inputs,
        )


class ConcurrentUpdate(Refused):
    """The subject (filing, admission or claim) is not at the version the caller named
    (optimistic concurrency on `version`). The refused attempt is recorded in the audit trail,
    after the losing transaction rolled back, with both versions (rule R1)."""

    def __init__(
        self,
        filing_id: str,
        expected_version: int,
        *,
        actual_version: int | None = None,
        event: str | None = None,
        state: str | None = None,
        policy: tuple[str | None, str | None] = (None, None),
    ) -> None:
        self.filing_id = filing_id
        self.expected_version = expected_version
        self.actual_version = actual_version
        self.event = event
        self.state = state
        self.policy = policy
        inputs: dict[str, Any] = {"expected_version": expected_version}
        if actual_version is None:
            where = f"is no longer at version {expected_version}"
        else:
            inputs["actual_version"] = actual_version
            where = f"is at version {actual_version}, not {expected_version}"
        super().__init__(
            f"{filing_id} {where}: read it again [R1]",
            rule_id="R1",
            field="expected_version",
            inputs=inputs,
        )


class FilingNotFound(FilingError):
    def __init__(self, filing_id: str) -> None:
        self.filing_id = filing_id
        super().__init__(f"no filing {filing_id}")


class PolicyConfigError(FilingError):
    """config.toml holds a policy the engine will not run with."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"policy config {key}: {problem}")
