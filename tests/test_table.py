"""The transition table, walked: every guard resolves, every state is reachable, every
non-final state can end, and every (state, event) pair is allowed or refused with a named rule.

The walk fires each pair in a context where every guard of the event's rows holds, so a pair
with a row must apply and a pair without one must be refused with the event's wrong-state rule:
the deemed path (E1-E3) and the hospital's stamp (E4) are applied, not merely refused. The
admission's own events (states.admissions) are walked the same way, through the service."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

import pytest

from states.admissions import ADMISSION_EVENTS, Admission, AdmissionStatus, Care, Extension
from states.catalogue import RULES
from states.filing import Filing
from states.guards import GUARDS, ROUTES, Attempt
from states.periods import WorkCalendar, local_date
from states.table import EVENT_ROLES, EVENTS, TRANSITIONS, WRONG_STATE_RULE
from states.vocabulary import (
    FINAL_STATES,
    Channel,
    Document,
    FilingState,
    Institution,
    InsuranceType,
    Kind,
    Role,
    Settlement,
)
from tests.conftest import OFFICER, id_number
from workflow import FilingEngine, TransitionRefused
from workflow.calendar import build_calendar
from workflow.config import Settings
from workflow.context import Actor
from workflow.machine import FilingMachine

NOW = datetime(2026, 3, 2, tzinfo=UTC)  # 08:00 on Monday 2 March 2026 in Asia/Shanghai
JIANGMEN, GUANGZHOU = "440700", "440100"
M1 = frozenset({Document.IDENTITY, Document.DECLARATION_FORM})


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


def test_every_guard_is_named_by_some_row() -> None:
    named = {g for t in TRANSITIONS for g in t.guards}
    assert set(GUARDS) == named
    assert set(ROUTES) == {t.when for t in TRANSITIONS if t.when}


def test_every_state_is_reachable_from_draft() -> None:
    assert _reachable(FilingState.DRAFT) == set(FilingState)


def test_every_non_final_state_can_reach_a_final_state() -> None:
    for state in set(FilingState) - FINAL_STATES:
        assert _reachable(state) & FINAL_STATES, f"{state} can never end"


def test_nothing_leaves_a_final_state() -> None:
    assert not [t for t in TRANSITIONS if t.source in FINAL_STATES]


def test_a_deemed_filing_never_becomes_effective_and_only_ends() -> None:
    """E1: a deemed filing stands in for a filing for one admission; it is never a filing
    the person made, so it never becomes effective, and everything it can do ends it."""
    assert _reachable(FilingState.DEEMED) == {FilingState.DEEMED} | (
        _reachable(FilingState.DEEMED) & FINAL_STATES
    )
    assert {t.dest for t in TRANSITIONS if t.source is FilingState.DEEMED} <= FINAL_STATES
    assert [t.source for t in TRANSITIONS if t.dest is FilingState.DEEMED] == [FilingState.DRAFT]


def test_every_rule_cited_by_the_table_exists_in_the_policy() -> None:
    cited = {t.rule for t in TRANSITIONS} | set(WRONG_STATE_RULE.values())
    assert cited <= set(RULES)
    assert all(t.rule for t in TRANSITIONS)
    assert set(WRONG_STATE_RULE) == set(EVENTS) == set(EVENT_ROLES)
    assert all(EVENT_ROLES[e] for e in EVENTS)


def test_the_machine_has_no_automatic_shortcut_to_a_state() -> None:
    machine = FilingMachine()
    assert not [name for name in machine._machine.events if name.startswith("to_")]


# -- contexts ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def calendar(settings: Settings) -> WorkCalendar:
    return build_calendar(settings.calendar_years)


def _filing(state: FilingState = FilingState.DRAFT, **fields: Any) -> Filing:
    values: dict[str, Any] = dict(
        id="f1", kind=Kind.OTHER_TEMPORARY, insurance_type=InsuranceType.EMPLOYEE,
        insured_region="110000", treatment_region="440300", person_key="k", person_masked="m",
        channel=Channel.COUNTER, filed_by="a", on_behalf=False, policy_region="national",
        policy_version="2026.3", start_date=date(2026, 3, 2), created_at=NOW, updated_at=NOW,
        documents=M1, state=state,
    )  # fmt: skip
    values.update(fields)
    return Filing(**values)


def _jiangmen(state: FilingState = FilingState.DRAFT, **fields: Any) -> Filing:
    """A Jiangmen person's filing for care in Guangzhou (outside the city, K8)."""
    values: dict[str, Any] = dict(
        kind=Kind.EMERGENCY, insured_region=JIANGMEN, treatment_region=GUANGZHOU,
        policy_region=JIANGMEN, documents=M1 | {Document.EMERGENCY_DIAGNOSIS},
    )  # fmt: skip
    values.update(fields)
    return _filing(state, **values)


def _deemed(state: FilingState = FilingState.DEEMED, **fields: Any) -> Filing:
    """The filing the engine deems made for an emergency admission (E1)."""
    values: dict[str, Any] = dict(
        deemed=True, admission_id="adm1", channel=Channel.HOSPITAL_SYSTEM,
        start_date=date(2026, 2, 20), documents=frozenset(),
    )  # fmt: skip
    values.update(fields)
    return _jiangmen(state, **values)


def _referral(**fields: Any) -> Filing:
    """A referral the hospital's clinical department applied for (E4)."""
    values: dict[str, Any] = dict(
        kind=Kind.REFERRAL, channel=Channel.HOSPITAL_SYSTEM,
        documents=M1 | {Document.REFERRAL_CERTIFICATE},
    )  # fmt: skip
    values.update(fields)
    return _jiangmen(**values)


def _retro(**fields: Any) -> Filing:
    """A filing made for an admission already begun (E2)."""
    values: dict[str, Any] = dict(admission_id="adm1", start_date=date(2026, 2, 20))
    values.update(fields)
    return _jiangmen(**values)


def _admission(**fields: Any) -> Admission:
    """A Jiangmen person's emergency admission in Guangzhou on 20 February 2026: the window to
    file is 10 days (E3), to the end of 2 March."""
    values: dict[str, Any] = dict(
        id="adm1", person_key="k", person_masked="m", insurance_type=InsuranceType.EMPLOYEE,
        insured_region=JIANGMEN, treatment_region=GUANGZHOU, hospital_code="H1",
        institution=Institution.HOSPITAL, networked=True, care=Care.INPATIENT,
        admitted_on=date(2026, 2, 20), emergency=True, referral=False, transfer_first=False,
        policy_region=JIANGMEN, policy_version="2026.3", hospital_org="H1",
        created_at=NOW, updated_at=NOW,
    )  # fmt: skip
    values.update(fields)
    return Admission(**values)


def _attempt(
    settings: Settings,
    calendar: WorkCalendar,
    event: str,
    filing: Filing,
    *,
    admission: Admission | None = None,
    now: datetime = NOW,
    actor_id: str = "reviewer",
    **policy_changes: Any,
) -> Attempt:
    policy = settings.policies[filing.policy_region]
    if policy_changes:
        policy = replace(policy, **policy_changes)
    return Attempt(
        filing, policy, event, now, local_date(now), reason="other", supplied=M1,
        admission=admission, calendar=calendar, actor_id=actor_id,
    )  # fmt: skip


def _passing(
    settings: Settings,
    calendar: WorkCalendar,
    event: str,
    state: FilingState,
    *,
    instant: bool = False,
) -> Attempt:
    """An attempt at `event` on a filing in `state` in which every guard of the event's rows
    holds, so only the table decides. `instant`: where submit takes effect at once (Xiamen's
    counter, L1); otherwise the agency reviews first."""
    filing = _deemed(state) if state is FilingState.DEEMED else _filing(state)
    admission = None
    if instant:
        filing = replace(filing, insured_region="350200", policy_region="350200")
    if event == "stamp":
        filing = _referral(state=state)
    elif event == "deem":
        filing, admission = _deemed(state), _admission()
    elif event in ("close_window", "supersede", "settle"):
        # Discharged without a filing: the window, which had to be met before discharge, closed.
        filing, admission = _deemed(state), _admission(discharged_on=date(2026, 3, 1))
    elif event == "supply_documents":
        filing = replace(filing, entitlement_pending=True)
    elif event == "expire":
        filing = replace(filing, valid_until=date(2026, 3, 1))
    return _attempt(settings, calendar, event, filing, admission=admission)


# -- the filing table, walked --------------------------------------------------------------------


@pytest.mark.parametrize("state", list(FilingState))
@pytest.mark.parametrize("event", EVENTS)
def test_every_state_and_event_pair_is_allowed_or_refused_with_a_named_rule(
    state: FilingState, event: str, settings: Settings, calendar: WorkCalendar
) -> None:
    attempt = _passing(settings, calendar, event, state)
    fired = FilingMachine().fire(event, attempt, Role.ADMINISTRATOR)
    rows = [t for t in TRANSITIONS if t.event == event and t.source is state]
    if not rows:
        assert fired.row is None and fired.denial is not None
        assert fired.denial.rule_id == WRONG_STATE_RULE[event]
        assert state.value in fired.denial.reason
        if state in FINAL_STATES:
            assert "final state" in fired.denial.reason
    else:
        # Every guard holds here: the table alone decides, and it has a row.
        assert fired.denial is None, fired.denial
        assert fired.row in rows


def test_the_walk_covers_the_deemed_state_and_the_hospital_events() -> None:
    walked = {(t.event, t.source) for t in TRANSITIONS}
    for pair in [
        ("stamp", FilingState.DRAFT),
        ("deem", FilingState.DRAFT),
        ("close_window", FilingState.DEEMED),
        ("supersede", FilingState.DEEMED),
        ("settle", FilingState.DEEMED),
        ("stop_insurance", FilingState.DEEMED),
    ]:
        assert pair in walked
    assert {"stamp", "deem", "close_window", "supersede", "settle"} <= set(EVENTS)


def test_every_row_applies_where_its_guards_hold(
    settings: Settings, calendar: WorkCalendar
) -> None:
    """Each row, both routes of submit included, is reached by the walk's contexts."""
    machine = FilingMachine()
    for t in TRANSITIONS:
        instant = t.when == "instant_effect"
        attempt = _passing(settings, calendar, t.event, t.source, instant=instant)
        fired = machine.fire(t.event, attempt, Role.ADMINISTRATOR)
        assert fired.row == t, (t, fired.denial)


@pytest.mark.parametrize("event", EVENTS)
def test_every_event_refuses_a_role_it_does_not_allow(
    event: str, settings: Settings, calendar: WorkCalendar
) -> None:
    source = next(t.source for t in TRANSITIONS if t.event == event)
    machine = FilingMachine()
    for role in Role:
        fired = machine.fire(event, _passing(settings, calendar, event, source), role)
        if role in EVENT_ROLES[event]:
            assert fired.row is not None and fired.row.event == event, (role, fired.denial)
        else:
            assert fired.row is None and fired.denial is not None
            assert fired.denial.rule_id == WRONG_STATE_RULE[event]
            assert role.value in fired.denial.reason


def test_a_role_not_allowed_an_event_is_refused_with_its_rule(settings: Settings) -> None:
    attempt = Attempt(
        _filing(FilingState.SUBMITTED), settings.policies["national"], "approve",
        datetime(2026, 3, 2, tzinfo=UTC), date(2026, 3, 2),
    )  # fmt: skip
    fired = FilingMachine().fire("approve", attempt, Role.INSURED)
    assert fired.row is None and fired.denial is not None
    assert fired.denial.rule_id == "L1" and "insured" in fired.denial.reason


_LATER = datetime(2026, 3, 2, 16, tzinfo=UTC)  # 00:00 on 3 March in Asia/Shanghai
_SETTLED = dict(
    discharged_on=date(2026, 3, 1),
    settlement=Settlement.DIRECT,
    settled_at=datetime(2026, 3, 1, 4, tzinfo=UTC),
)
# (event, filing, admission, now, policy changes, the rule that refuses, or None: it applies);
# the attempt is made by "reviewer" unless the changes name another actor_id.
_Case = tuple[str, Filing, Admission | None, datetime, dict[str, Any], str | None]
_HOSPITAL_CASES: dict[str, _Case] = {
    "stamp: a hospital's referral": ("stamp", _referral(), None, NOW, {}, None),
    "stamp: not a referral": (
        "stamp", _jiangmen(channel=Channel.HOSPITAL_SYSTEM), None, NOW, {}, "E4"
    ),
    "stamp: not from the hospital": (
        "stamp", _referral(channel=Channel.COUNTER), None, NOW, {}, "E4"
    ),
    "stamp: twice": ("stamp", _referral(hospital_reviewed=True), None, NOW, {}, "E4"),
    "stamp: by the department that applied": (
        "stamp", _referral(), None, NOW, {"actor_id": "a"}, "E4"
    ),
    "stamp: no review in the region": (
        "stamp", _referral(), None, NOW, {"referral_hospital_review": False}, "E4"
    ),
    "submit: referral not stamped": ("submit", _referral(), None, NOW, {}, "E4"),
    "submit: referral stamped": ("submit", _referral(hospital_reviewed=True), None, NOW, {}, None),
    "deem: an emergency": ("deem", _deemed(FilingState.DRAFT), _admission(), NOW, {}, None),
    "deem: no admission": ("deem", _deemed(FilingState.DRAFT), None, NOW, {}, "E1"),
    "deem: not an emergency": (
        "deem", _deemed(FilingState.DRAFT), _admission(emergency=False), NOW, {}, "E1"
    ),
    "deem: a filing the person made": (
        "deem", _deemed(FilingState.DRAFT, deemed=False), _admission(), NOW, {}, "E1"
    ),
    "deem: the region deems none": (
        "deem", _deemed(FilingState.DRAFT), _admission(), NOW,
        {"emergency_deemed_filed": False}, "E1",
    ),
    "close_window: no admission": ("close_window", _deemed(), None, NOW, {}, "E3"),
    "close_window: window still open": ("close_window", _deemed(), _admission(), NOW, {}, "E3"),
    "close_window: window over": ("close_window", _deemed(), _admission(), _LATER, {}, None),
    "close_window: no window in the region": (
        "close_window", _deemed(), _admission(discharged_on=date(2026, 3, 1)), _LATER,
        {"emergency_filing_window_days": 0}, "E3",
    ),
    "submit: retro in time": ("submit", _retro(), _admission(), NOW, {}, None),
    "submit: retro, admission not found": ("submit", _retro(), None, NOW, {}, "E2"),
    "submit: retro after settlement, no window": (
        "submit", _retro(), _admission(**_SETTLED), NOW, {"emergency_filing_window_days": 0}, "E2"
    ),
    "submit: retro after settlement, the window closed at discharge": (
        "submit", _retro(), _admission(**_SETTLED), NOW, {}, "E3"
    ),
    "submit: retro, region accepts none": (
        "submit", _retro(), _admission(), NOW, {"retro_filing_before_settlement": False}, "E2"
    ),
    "submit: retro after discharge": (
        "submit", _retro(), _admission(discharged_on=date(2026, 3, 1)), NOW, {}, "E3"
    ),
    "submit: retro after the window": ("submit", _retro(), _admission(), _LATER, {}, "E3"),
    "submit: transfer-first referral reported after discharge": (
        "submit", _retro(kind=Kind.REFERRAL, documents=M1 | {Document.REFERRAL_CERTIFICATE}),
        _admission(emergency=False, referral=True, transfer_first=True,
                   discharged_on=date(2026, 3, 1)),
        NOW, {}, "E5",
    ),
    "submit: treat first, working days over": (
        "submit", _retro(), _admission(), NOW,
        {"emergency_filing_window_days": 0, "treat_first_working_days": 3}, "E7",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(_HOSPITAL_CASES))
def test_the_hospital_side_guards_apply_or_refuse_with_their_rule(
    case: str, settings: Settings, calendar: WorkCalendar
) -> None:
    event, filing, admission, now, changes, rule = _HOSPITAL_CASES[case]
    attempt = _attempt(settings, calendar, event, filing, admission=admission, now=now, **changes)
    fired = FilingMachine().fire(event, attempt, Role.ADMINISTRATOR)
    if rule is None:
        assert fired.denial is None and fired.row is not None, fired.denial
        assert fired.row.event == event and fired.row.source is filing.state
    else:
        assert fired.row is None and fired.denial is not None
        assert fired.denial.rule_id == rule, fired.denial
        assert fired.denial.reason


# -- the admission's events, walked ---------------------------------------------------------------

HOSPITAL = Actor("his-1", Role.HOSPITAL, Channel.HOSPITAL_SYSTEM, organisation="H1")
CERTIFICATE = [Document.CONTINUED_STAY_CERTIFICATE]
_Fire = Callable[[FilingEngine, str, Actor], object]
FIRE_ADMISSION: dict[str, _Fire] = {
    "discharge": lambda e, a, who: e.discharge(a, date(2026, 3, 2), who),
    "request_extension": lambda e, a, who: e.request_extension(a, who, CERTIFICATE),
    "grant_extension": lambda e, a, who: e.grant_extension(a, who),
    "refuse_extension": lambda e, a, who: e.refuse_extension(a, who),
}
# The actor each event is normally fired by, and what must have happened first.
ADMISSION_ACTOR = {
    "discharge": HOSPITAL,
    "request_extension": HOSPITAL,
    "grant_extension": OFFICER,
    "refuse_extension": OFFICER,
}
ADMISSION_BEFORE = {"grant_extension": "request_extension", "refuse_extension": "request_extension"}
EXTENSION_AFTER = {
    "request_extension": Extension.REQUESTED,
    "grant_extension": Extension.GRANTED,
    "refuse_extension": Extension.REFUSED,
}


def test_every_admission_event_names_its_rule_roles_and_statuses() -> None:
    assert set(ADMISSION_EVENTS) == set(FIRE_ADMISSION)
    for name, spec in ADMISSION_EVENTS.items():
        assert spec.event == name
        assert spec.rule in RULES, f"{name}: unknown rule {spec.rule}"
        assert spec.roles and spec.roles <= set(Role), name
        assert spec.sources and spec.sources <= set(AdmissionStatus), name
        assert spec.dest is None or spec.dest in set(AdmissionStatus), name
        assert callable(getattr(FilingEngine, name, None)), f"no FilingEngine.{name}"
        assert ADMISSION_ACTOR[name].role in spec.roles


def test_every_admission_status_is_reachable_and_a_final_one_is_left_by_nothing() -> None:
    reached = {AdmissionStatus.ADMITTED} | {
        e.dest for e in ADMISSION_EVENTS.values() if e.dest is not None
    }
    assert reached == set(AdmissionStatus)
    sources = {s for e in ADMISSION_EVENTS.values() for s in e.sources}
    final = set(AdmissionStatus) - sources
    assert final == {AdmissionStatus.DISCHARGED}
    for status in sources:  # every status that is not final can end
        assert any(status in e.sources and e.dest in final for e in ADMISSION_EVENTS.values()), (
            status
        )


def test_the_agency_decides_an_extension_and_the_hospital_discharges() -> None:
    """E6: the hospital or the person asks, the agency grants or refuses; a discharge is the
    hospital's (or the agency's, or the engine's), never the person's."""
    agency = {Role.OFFICER, Role.ADMINISTRATOR}
    assert ADMISSION_EVENTS["grant_extension"].roles == agency
    assert ADMISSION_EVENTS["refuse_extension"].roles == agency
    assert {Role.HOSPITAL, Role.INSURED} <= ADMISSION_EVENTS["request_extension"].roles
    assert Role.HOSPITAL in ADMISSION_EVENTS["discharge"].roles
    assert Role.INSURED not in ADMISSION_EVENTS["discharge"].roles


def test_a_hospital_acts_only_on_the_admissions_it_recorded(engine: FilingEngine) -> None:
    adm = _referred_stay(engine)
    other = Actor("his-9", Role.HOSPITAL, Channel.HOSPITAL_SYSTEM, organisation="H2")
    hospital_events = [
        e for e, spec in sorted(ADMISSION_EVENTS.items()) if Role.HOSPITAL in spec.roles
    ]
    for event in hospital_events:
        with pytest.raises(TransitionRefused) as refused:
            FIRE_ADMISSION[event](engine, adm.id, other)
        assert refused.value.rule_id == ADMISSION_EVENTS[event].rule, event
    denied = [r for r in engine.history(adm.id) if r["outcome"] == "denied"]
    assert [(r["event"], r["actor_org"]) for r in denied] == [(e, "H2") for e in hospital_events]
    assert engine.get_admission(adm.id).version == adm.version


def _referred_stay(engine: FilingEngine) -> Admission:
    """A Jiangmen person's referred stay in Guangzhou, admitted on 25 February: the extension
    threshold (E6) applies to it, no filing covers it."""
    return engine.admit(
        id_number=id_number(1, region="440703", born="20000101"), insurance_type="employee",
        insured_region=JIANGMEN, treatment_region=GUANGZHOU, hospital_code="H1",
        admitted_on=date(2026, 2, 25), actor=HOSPITAL, referral=True,
    )  # fmt: skip


def _admission_in(engine: FilingEngine, status: AdmissionStatus, event: str) -> Admission:
    """An admission in `status` that meets every other condition of `event`."""
    adm = _referred_stay(engine)
    before = ADMISSION_BEFORE.get(event)
    if before is not None:
        FIRE_ADMISSION[before](engine, adm.id, ADMISSION_ACTOR[before])
    if status is AdmissionStatus.DISCHARGED:
        engine.discharge(adm.id, date(2026, 3, 2), HOSPITAL)
    adm = engine.get_admission(adm.id)
    assert adm.status is status
    return adm


@pytest.mark.parametrize("status", list(AdmissionStatus))
@pytest.mark.parametrize("event", sorted(ADMISSION_EVENTS))
def test_every_admission_status_and_event_pair_is_applied_or_refused_with_its_rule(
    status: AdmissionStatus, event: str, engine: FilingEngine
) -> None:
    spec = ADMISSION_EVENTS[event]
    adm = _admission_in(engine, status, event)
    before = len(engine.history(adm.id))
    if status in spec.sources:
        FIRE_ADMISSION[event](engine, adm.id, ADMISSION_ACTOR[event])
        after = engine.get_admission(adm.id)
        assert after.status is (spec.dest or status)
        opened_claim = adm.claim_id is None and after.claim_id is not None
        assert after.version == adm.version + 1 + opened_claim
        if event in EXTENSION_AFTER:
            assert after.extension is EXTENSION_AFTER[event]
        new = engine.history(adm.id)[before:]
        assert [(r["event"], r["outcome"]) for r in new] == [(event, "applied")]
    else:
        with pytest.raises(TransitionRefused) as refused:
            FIRE_ADMISSION[event](engine, adm.id, ADMISSION_ACTOR[event])
        assert refused.value.rule_id == spec.rule
        assert refused.value.filing_id == adm.id and refused.value.event == event
        assert status.value in refused.value.reason
        after = engine.get_admission(adm.id)
        assert (after.status, after.version, after.extension) == (
            adm.status,
            adm.version,
            adm.extension,
        )
        new = engine.history(adm.id)[before:]
        assert [(r["event"], r["outcome"], r["rule_id"]) for r in new] == [
            (event, "denied", spec.rule)
        ]


def test_every_admission_event_refuses_a_role_it_does_not_allow(engine: FilingEngine) -> None:
    adm = _referred_stay(engine)
    channels = {Role.SYSTEM: Channel.SYSTEM, Role.HOSPITAL: Channel.HOSPITAL_SYSTEM}
    refused_roles = 0
    for event, spec in sorted(ADMISSION_EVENTS.items()):
        for role in sorted(set(Role) - spec.roles):
            actor = Actor(f"{role.value}-1", role, channels.get(role, Channel.COUNTER))
            before = len(engine.history(adm.id))
            with pytest.raises(TransitionRefused) as refused:
                FIRE_ADMISSION[event](engine, adm.id, actor)
            assert refused.value.rule_id == spec.rule, (event, role)
            assert role.value in refused.value.reason
            new = engine.history(adm.id)[before:]
            assert [(r["event"], r["outcome"], r["actor_role"]) for r in new] == [
                (event, "denied", role.value)
            ]
            refused_roles += 1
    assert refused_roles  # some role is refused some event
    after = engine.get_admission(adm.id)
    assert (after.status, after.version, after.extension) == (adm.status, adm.version, None)
