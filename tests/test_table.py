"""The transition table, walked: every guard resolves, every state is reachable, every
non-final state can end, and every (state, event) pair is allowed or refused with a named rule."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from states.catalogue import RULES
from states.filing import Filing
from states.guards import GUARDS, ROUTES, Attempt
from states.table import EVENT_ROLES, EVENTS, TRANSITIONS, WRONG_STATE_RULE
from states.vocabulary import FINAL_STATES, Channel, FilingState, InsuranceType, Kind, Role
from workflow.config import Settings
from workflow.machine import FilingMachine


def _graph() -> dict[FilingState, set[FilingState]]:
    graph: dict[FilingState, set[FilingState]] = {s: set() for s in FilingState}
    for t in TRANSITIONS:
        graph[t.source].add(t.dest)
    return graph


def _reachable(start: FilingState) -> set[FilingState]:
    graph, seen, todo = _graph(), {start}, [start]
    while todo:
        for nxt in graph[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_every_guard_and_route_named_in_the_table_resolves() -> None:
    for t in TRANSITIONS:
        for name in t.guards:
            assert name in GUARDS, f"{t.event}: unknown guard {name}"
        if t.when is not None:
            assert t.when in ROUTES, f"{t.event}: unknown route {t.when}"


def test_every_state_is_reachable_from_draft() -> None:
    assert _reachable(FilingState.DRAFT) == set(FilingState)


def test_every_non_final_state_can_reach_a_final_state() -> None:
    for state in set(FilingState) - FINAL_STATES:
        assert _reachable(state) & FINAL_STATES, f"{state} can never end"


def test_nothing_leaves_a_final_state() -> None:
    assert not [t for t in TRANSITIONS if t.source in FINAL_STATES]


def test_every_rule_cited_by_the_table_exists_in_the_policy() -> None:
    cited = {t.rule for t in TRANSITIONS} | set(WRONG_STATE_RULE.values())
    assert cited <= set(RULES)
    assert set(WRONG_STATE_RULE) == set(EVENTS) == set(EVENT_ROLES)


def test_the_machine_has_no_automatic_shortcut_to_a_state() -> None:
    machine = FilingMachine()
    assert not [name for name in machine._machine.events if name.startswith("to_")]


def _filing(state: FilingState) -> Filing:
    now = datetime(2026, 3, 2, tzinfo=UTC)
    return Filing(
        id="f1", kind=Kind.OTHER_TEMPORARY, insurance_type=InsuranceType.EMPLOYEE,
        insured_region="110000", treatment_region="440300", person_key="k", person_masked="m",
        channel=Channel.COUNTER, filed_by="a", on_behalf=False, policy_region="national",
        policy_version="2026.1", start_date=date(2026, 3, 2), created_at=now, updated_at=now,
        state=state,
    )  # fmt: skip


@pytest.mark.parametrize("state", list(FilingState))
@pytest.mark.parametrize("event", EVENTS)
def test_every_state_and_event_pair_is_allowed_or_refused_with_a_named_rule(
    state: FilingState, event: str, settings: Settings
) -> None:
    machine = FilingMachine()
    role = Role.ADMINISTRATOR
    attempt = Attempt(
        _filing(state), settings.policies["national"], event,
        datetime(2026, 3, 2, tzinfo=UTC), date(2026, 3, 2), reason="other",
    )  # fmt: skip
    fired = machine.fire(event, attempt, role)
    has_row = any(t.event == event and t.source is state for t in TRANSITIONS)
    if not has_row:
        assert fired.row is None and fired.denial is not None
        assert fired.denial.rule_id == WRONG_STATE_RULE[event]
        assert state.value in fired.denial.reason
    elif fired.row is None:
        assert fired.denial is not None and fired.denial.rule_id in RULES
        assert fired.denial.reason
    else:
        assert fired.row.event == event and fired.row.source is state


def test_a_role_not_allowed_an_event_is_refused_with_its_rule(settings: Settings) -> None:
    attempt = Attempt(
        _filing(FilingState.SUBMITTED), settings.policies["national"], "approve",
        datetime(2026, 3, 2, tzinfo=UTC), date(2026, 3, 2),
    )  # fmt: skip
    fired = FilingMachine().fire("approve", attempt, Role.INSURED)
    assert fired.row is None and fired.denial is not None
    assert fired.denial.rule_id == "L1" and "insured" in fired.denial.reason
