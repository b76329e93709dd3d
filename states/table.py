"""The transition table: the lifecycle as data, in lifecycle order, one row per rule.

`jobs` and `workflow` never move a filing except through a row of this table. A test walks it:
every guard resolves, every state is reachable, every non-final state can end, and every
(state, event) pair is either allowed or refused with a named rule.
"""

from __future__ import annotations

from dataclasses import dataclass

from states.vocabulary import FINAL_STATES, FilingState, Role

S = FilingState


@dataclass(frozen=True)
class Transition:
    event: str
    source: FilingState
    dest: FilingState
    guards: tuple[str, ...] = ()
    when: str | None = None  # routing condition choosing between rows of one event
    rule: str = ""  # the rule this row implements


_SUBMIT = ("consent_given", "documents_complete", "hospital_review_done", "retro_in_time")

TRANSITIONS: tuple[Transition, ...] = (
    Transition("stamp", S.DRAFT, S.DRAFT, ("referral_to_review",), None, "E4"),
    Transition("submit", S.DRAFT, S.SUBMITTED, _SUBMIT, "review_required", "L1"),
    Transition("submit", S.DRAFT, S.EFFECTIVE, (*_SUBMIT, "one_effective_per_scope"), "instant_effect", "L1"),
    Transition("approve", S.SUBMITTED, S.EFFECTIVE, ("one_effective_per_scope",), None, "L1"),
    Transition("reject", S.SUBMITTED, S.REJECTED, ("reason_given",), None, "L1"),
    Transition("withdraw", S.DRAFT, S.WITHDRAWN, (), None, "L1"),
    Transition("withdraw", S.SUBMITTED, S.WITHDRAWN, (), None, "L1"),
    Transition("supply_documents", S.EFFECTIVE, S.EFFECTIVE, ("entitlement_pending", "pending_documents_supplied"), None, "V6"),
    Transition("cancel", S.EFFECTIVE, S.CANCELLED, ("cancel_lock_elapsed",), None, "L4"),
    Transition("change", S.EFFECTIVE, S.CANCELLED, ("cancel_lock_elapsed",), None, "L5"),
    Transition("expire", S.EFFECTIVE, S.EXPIRED, ("validity_ended",), None, "V3"),
    Transition("stop_insurance", S.DRAFT, S.LAPSED, (), None, "L2"),
    Transition("stop_insurance", S.SUBMITTED, S.LAPSED, (), None, "L2"),
    Transition("stop_insurance", S.EFFECTIVE, S.LAPSED, (), None, "L2"),
    # The emergency deemed-filed path (E1, E3) and its end by a retro filing (E2).
    Transition("deem", S.DRAFT, S.DEEMED, ("emergency_admission",), None, "E1"),
    Transition("close_window", S.DEEMED, S.LAPSED, ("filing_window_closed",), None, "E3"),
    Transition("supersede", S.DEEMED, S.CANCELLED, (), None, "E2"),
    Transition("settle", S.DEEMED, S.EXPIRED, (), None, "E1"),
    Transition("stop_insurance", S.DEEMED, S.LAPSED, (), None, "L2"),
)  # fmt: skip

EVENTS: tuple[str, ...] = tuple(dict.fromkeys(t.event for t in TRANSITIONS))

# The rule that refuses an event in a state with no row for it.
WRONG_STATE_RULE: dict[str, str] = {
    "submit": "L1",
    "approve": "L1",
    "reject": "L1",
    "withdraw": "L1",
    "supply_documents": "V6",
    "cancel": "L4",
    "change": "L5",
    "expire": "V3",
    "stop_insurance": "L2",
    "stamp": "E4",
    "deem": "E1",
    "close_window": "E3",
    "supersede": "E2",
    "settle": "E1",
}

# Who may fire each event. Review is the agency's (L1); expiry is the engine's (V1, V3).
EVENT_ROLES: dict[str, frozenset[Role]] = {
    "submit": frozenset({Role.INSURED, Role.OFFICER, Role.HOSPITAL, Role.ADMINISTRATOR}),
    "approve": frozenset({Role.OFFICER, Role.ADMINISTRATOR}),
    "reject": frozenset({Role.OFFICER, Role.ADMINISTRATOR}),
    "withdraw": frozenset({Role.INSURED, Role.OFFICER, Role.ADMINISTRATOR}),
    "supply_documents": frozenset({Role.INSURED, Role.OFFICER, Role.ADMINISTRATOR}),
    "cancel": frozenset({Role.INSURED, Role.OFFICER, Role.ADMINISTRATOR}),
    "change": frozenset({Role.INSURED, Role.OFFICER, Role.ADMINISTRATOR}),
    "expire": frozenset({Role.SYSTEM, Role.ADMINISTRATOR}),
    "stop_insurance": frozenset({Role.OFFICER, Role.SYSTEM, Role.ADMINISTRATOR}),
    # The hospital-side paths: the hospital's medical office (E4); the engine itself (E1-E3).
    "stamp": frozenset({Role.HOSPITAL, Role.ADMINISTRATOR}),
    "deem": frozenset({Role.HOSPITAL, Role.SYSTEM, Role.ADMINISTRATOR}),
    "close_window": frozenset({Role.SYSTEM, Role.ADMINISTRATOR}),
    "supersede": frozenset({Role.SYSTEM, Role.ADMINISTRATOR}),
    "settle": frozenset({Role.HOSPITAL, Role.SYSTEM, Role.ADMINISTRATOR}),
}


def wrong_state_reason(event: str, state: FilingState) -> str:
    if state in FINAL_STATES:
        return f"the filing is {state.value}, a final state; nothing more can happen to it"
    sources = sorted({t.source.value for t in TRANSITIONS if t.event == event})
    return f"{event} applies to a filing that is {' or '.join(sources)}, not {state.value}"


def mermaid() -> str:
    """The state diagram, generated from the table (never drawn by hand)."""
    lines = ["stateDiagram-v2", f"    [*] --> {FilingState.DRAFT.value}"]
    for t in TRANSITIONS:
        label = t.event + (f" [{t.when}]" if t.when else "")
        if t.guards:
            label += " / " + ", ".join(t.guards)
        lines.append(f"    {t.source.value} --> {t.dest.value}: {label}")
    lines += [f"    {s.value} --> [*]" for s in FilingState if s in FINAL_STATES]
    return "\n".join(lines) + "\n"


def dot() -> str:
    """The same diagram in Graphviz's DOT language, for an SVG (`filing diagram --format svg`):
    one edge per row of the table, final states drawn with a double border."""

    def quoted(text: str) -> str:  # names are snake_case; "\\n" in a label is a line break
        return '"' + text.replace('"', '\\"') + '"'

    lines = [
        "digraph filing {",
        '    graph [rankdir=TB, fontname="Helvetica", nodesep=0.6, ranksep=0.7];',
        '    node [shape=box, style="rounded", fontname="Helvetica"];',
        '    edge [fontname="Helvetica", fontsize=10];',
        '    start [shape=point, width=0.15, label=""];',
    ]
    for s in FilingState:
        shape = ", peripheries=2" if s in FINAL_STATES else ""
        lines.append(f"    {quoted(s.value)} [label={quoted(s.value)}{shape}];")
    lines.append(f"    start -> {quoted(FilingState.DRAFT.value)};")
    for t in TRANSITIONS:
        label = t.event + (f" [{t.when}]" if t.when else "")
        if t.guards:
            label += "\\n" + ",\\n".join(t.guards)
        lines.append(
            f"    {quoted(t.source.value)} -> {quoted(t.dest.value)} [label={quoted(label)}];"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"
