"""A short, readable walk of real filings through the engine, printing their histories.

It uses its own clock, moved forward by hand, so the dates it prints are the rules' dates.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

from states.errors import FilingError
from states.periods import local_date
from states.vocabulary import Channel, Role
from workflow.api import FilingEngine
from workflow.clock import ManualClock
from workflow.service import Actor

# Example ID numbers: valid check digits, not real people.
XIAMEN_PERSON = "35020319900101123X"
BEIJING_PERSON = "11010519491231002X"
JIANGMEN_PEOPLE = ("440703200001010012", "440703200001010020")


def run_demo(
    open_engine: Callable[[ManualClock], FilingEngine], say: Callable[[str], None]
) -> None:
    clock = ManualClock(datetime(2026, 3, 2, 1, 30, tzinfo=UTC))  # 09:30 in Xiamen
    engine = open_engine(clock)
    person = Actor("wechat:demo-user", Role.INSURED, Channel.WECHAT_OFFICIAL_ACCOUNT)
    officer = Actor("officer:demo", Role.OFFICER, Channel.COUNTER, organisation="110000")

    say(
        "1. A Xiamen retiree moving to Shenzhen files online: effective at once (L1), "
        "no cancel for 3 months (V2)."
    )
    f = engine.create(
        id_number=XIAMEN_PERSON, kind="K1", insurance_type="employee",
        insured_region="350200", treatment_region="440300", actor=person,
        documents=["identity", "declaration_form", "household_register", "residence_proof"],
        consent_given=True, card_settlement_enabled=True,
    )  # fmt: skip
    f = engine.submit(f.id, person)
    say(
        f"   {f.id}: {f.state.value} from {f.effective_on}, "
        f"valid {'until ' + str(f.valid_until) if f.valid_until else 'indefinitely'}, "
        f"lock ends {f.lock_until}"
    )
    clock.advance(days=60)
    _attempt(say, "   two months later, cancel", lambda: engine.cancel(f.id, person))
    clock.advance(days=35)
    f = engine.cancel(f.id, person)
    say(f"   after the lock: {f.state.value}")
    _history(engine, f.id, say)

    say(
        "2. A Beijing employee going to Guangzhou for other temporary care: "
        "reviewed by the agency (L1), valid 6 months (V3)."
    )
    g = engine.create(
        id_number=BEIJING_PERSON, kind="K6", insurance_type="employee",
        insured_region="110000", treatment_region="440100", actor=officer,
        documents=["identity", "declaration_form"],
    )  # fmt: skip
    g = engine.submit(g.id, officer)
    say(f"   submitted: {g.state.value}")
    g = engine.approve(g.id, officer)
    say(f"   approved: {g.state.value}, valid until {g.valid_until}")
    for d in engine.deadlines(g.id):
        say(f"   deadline row: {d.kind} due {d.due_at.isoformat()} ({d.rule_id})")
    second = engine.create(
        id_number=BEIJING_PERSON, kind="K6", insurance_type="employee",
        insured_region="110000", treatment_region="440100", actor=officer,
        documents=["identity", "declaration_form"],
    )  # fmt: skip
    engine.submit(second.id, officer)
    _attempt(
        say,
        "   approving a second filing for the same place",
        lambda: engine.approve(second.id, officer),
    )
    _history(engine, g.id, say)

    say("3. Care inside the insured province needs no filing (K8):")
    _attempt(say, "   Xiamen person, treatment in Fuzhou", lambda: engine.create(
        id_number=XIAMEN_PERSON, kind="K6", insurance_type="employee",
        insured_region="350200", treatment_region="350100", actor=person,
    ))  # fmt: skip

    _hospital_side(engine, clock, officer, say)

    check = engine.checkpoint()
    result = engine.verify(check)
    say(f"Audit trail: {check.count} records, head {check.head_hash[:16]}…, verified: {result.ok}")
    engine.close()


def _hospital_side(
    engine: FilingEngine, clock: ManualClock, officer: Actor, say: Callable[[str], None]
) -> None:
    say(
        "4. Two Jiangmen people are admitted as emergencies in Guangzhou: deemed filed (E1) "
        "until the 10-day window closes (E3)."
    )
    hospital = Actor("his:demo", Role.HOSPITAL, Channel.HOSPITAL_SYSTEM, organisation="H4401001")
    person = Actor("app:demo-family", Role.INSURED, Channel.COUNTER)
    where: dict[str, Any] = {
        "insurance_type": "employee", "insured_region": "440700", "treatment_region": "440100",
    }  # fmt: skip
    today = local_date(clock())
    admissions = [
        engine.admit(id_number=number, hospital_code="H4401001", admitted_on=today,
                     emergency=True, actor=hospital, **where)
        for number in JIANGMEN_PEOPLE
    ]  # fmt: skip
    for adm in admissions:
        deemed = engine.get(adm.deemed_filing_id or "")
        window = next(d for d in engine.deadlines(deemed.id) if d.kind == "filing_window")
        say(f"   {adm.id}: admitted {adm.admitted_on}, filing {deemed.id} {deemed.state.value}, "
            f"window to file ends {window.due_at.isoformat()} ({window.rule_id})")  # fmt: skip
    for days, number, adm in ((10, JIANGMEN_PEOPLE[0], admissions[0]),
                              (1, JIANGMEN_PEOPLE[1], admissions[1])):  # fmt: skip
        clock.advance(days=days)
        filing = engine.create(
            id_number=number, kind="K5", actor=person, admission_id=adm.id,
            documents=["identity", "declaration_form", "emergency_diagnosis"], **where,
        )  # fmt: skip
        day = (local_date(clock()) - adm.admitted_on).days
        _attempt(say, f"   retro filing on day {day}", partial(engine.submit, filing.id, person))
    decision = engine.coverage(admissions[1].id, officer)
    route = engine.get_admission(admissions[1].id).route
    say(f"   {admissions[1].id}: direct settlement {decision.direct_settlement} "
        f"[{decision.rule_id}]; routed to {route}")  # fmt: skip
    _history(engine, admissions[1].id, say)


def _attempt(say: Callable[[str], None], label: str, action: Callable[[], object]) -> None:
    try:
        action()
        say(f"{label}: applied")
    except FilingError as exc:
        say(f"{label}: refused [{exc.rule_id}] {exc}")


def _history(engine: FilingEngine, filing_id: str, say: Callable[[str], None]) -> None:
    say("   history:")
    for h in engine.history(filing_id):
        moved = f"{h['from_state'] or '-'} -> {h['to_state'] or '(unchanged)'}"
        say(
            f"     #{h['seq']:<3} {h['at']:%Y-%m-%d %H:%MZ} {h['event']:<14} {h['outcome']:<7} "
            f"{moved:<24} rule {h['rule_id'] or '-':<3} by {h['actor_role']} via {h['channel']}"
        )
