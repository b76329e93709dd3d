"""The one function that fires transitions. Nobody else calls the transitions library.

The machine is built once from `states.table.TRANSITIONS` and shared by every filing: a filing
is wrapped in a small subject for the duration of one trigger (cheaper than a Machine per
filing, and no model is ever registered). `auto_transitions=False`, so `to_<state>()` does not
exist to bypass the rules. A failing guard in transitions only returns False; here it leaves a
`Denial` naming its rule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from transitions import Machine

from states.denial import Denial
from states.guards import GUARDS, ROUTES, Attempt
from states.table import EVENT_ROLES, TRANSITIONS, WRONG_STATE_RULE, Transition, wrong_state_reason
from states.vocabulary import FilingState, Role


class _Subject:
    """What transitions sees as the model: a state and guard methods bound to one attempt."""

    __slots__ = ("attempt", "denial", "state")

    def __init__(self, attempt: Attempt) -> None:
        self.state: FilingState = attempt.filing.state
        self.attempt = attempt
        self.denial: Denial | None = None

    def __getattr__(self, name: str) -> Any:
        if name in ROUTES:
            route = ROUTES[name]
            return lambda *_a, **_k: route(self.attempt)
        if name in GUARDS:
            guard = GUARDS[name]

            def check(*_a: Any, **_k: Any) -> bool:
                self.denial = guard(self.attempt)
                return self.denial is None

            return check
        raise AttributeError(name)


@dataclass(frozen=True)
class Fired:
    """What happened: the row applied, or the denial."""

    row: Transition | None
    denial: Denial | None


class FilingMachine:
    def __init__(self) -> None:
        self._machine = Machine(
            model=None,
            states=FilingState,
            initial=FilingState.DRAFT,
            auto_transitions=False,
            send_event=False,
            model_attribute="state",
        )
        for t in TRANSITIONS:
            # The routing condition first, so only the guards of the chosen row can deny.
            conditions: list[str | Callable[..., bool | None]] = [
                *([t.when] if t.when else []),
                *t.guards,
            ]
            self._machine.add_transition(t.event, t.source, t.dest, conditions=conditions)
        self._rows = {(t.event, t.source, t.dest): t for t in TRANSITIONS}
        self._sources = {(t.event, t.source) for t in TRANSITIONS}

    def allows(self, event: str, state: FilingState, role: Role) -> bool:
        """Whether the table has `event` from `state` for `role`, before any guard."""
        return role in EVENT_ROLES.get(event, ()) and (event, state) in self._sources

    def fire(self, event: str, attempt: Attempt, role: Role) -> Fired:
        state = attempt.filing.state
        rule = WRONG_STATE_RULE.get(event)
        if rule is None:
            raise ValueError(f"unknown event {event!r}")
        if role not in EVENT_ROLES[event]:
            return Fired(
                None, Denial(rule, f"the {role.value} role may not {event}", {"role": role.value})
            )
        if (event, state) not in self._sources:
            return Fired(
                None, Denial(rule, wrong_state_reason(event, state), {"state": state.value})
            )
        subject = _Subject(attempt)
        if not self._machine.events[event].trigger(subject):
            denial = subject.denial or Denial(rule, "no rule allowed it", {})
            return Fired(None, denial)
        return Fired(self._rows[(event, state, subject.state)], None)
