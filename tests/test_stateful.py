"""Random walks over the lifecycle (Hypothesis stateful testing) with the invariants that make
the engine trustworthy: a filing's version is one plus its applied transitions, and rises by
exactly one per applied transition; every attempt leaves exactly one record on the filing it
targeted, applied or denied; the chain always verifies; nothing leaves a final state.

Some transitions touch a second filing in the same transaction (a replacement taking effect
cancels the filing it replaces, L5; a filing past its validity is expired before it can block
a new one, L6): those records are checked by the version invariant, on every filing."""

from __future__ import annotations

import shutil
import tempfile
from datetime import UTC, datetime

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule

from states.vocabulary import FINAL_STATES, FilingState
from tests.conftest import FULL_DOCUMENTS, OFFICER, PERSON, ROOT, SYSTEM, Clock, id_number
from workflow import Actor, FilingEngine, InvalidInput, TransitionRefused
from workflow.config import load_settings

SETTINGS = load_settings(ROOT / "config.toml", environ={"FILING_PERSON_KEY": "stateful"})
REGIONS = {"110000": "440300", "350200": "310000", "440700": "440100"}
ACTORS = {"person": PERSON, "officer": OFFICER, "system": SYSTEM}
NEXT = {
    FilingState.DRAFT: ("submit", PERSON),
    FilingState.SUBMITTED: ("approve", OFFICER),
    FilingState.EFFECTIVE: ("supply_documents", PERSON),
}
EVENTS = [
    "submit",
    "approve",
    "reject",
    "withdraw",
    "cancel",
    "expire",
    "stop_insurance",
    "supply_documents",
]


class Lifecycle(RuleBasedStateMachine):
    filings = Bundle("filings")

    @initialize()
    def open_engine(self) -> None:
        self.folder = tempfile.mkdtemp()
        self.clock = Clock(datetime(2026, 3, 2, 2, tzinfo=UTC))
        self.engine = FilingEngine.open(
            database_url=f"sqlite:///{self.folder}/walk.db", settings=SETTINGS, clock=self.clock
        )
        self.people: dict[str, tuple[str, str]] = {}  # filing id -> (id number, insured region)
        self.ended: dict[str, FilingState] = {}  # filings seen in a final state

    def teardown(self) -> None:
        if hasattr(self, "engine"):
            self.engine.close()
            shutil.rmtree(self.folder, ignore_errors=True)

    def _records(self, filing_id: str) -> int:
        return len(self.engine.history(filing_id))

    @rule(
        target=filings,
        insured=st.sampled_from(sorted(REGIONS)),
        kind=st.sampled_from(sorted(FULL_DOCUMENTS)),
        person=st.integers(1, 2),
        complete=st.sampled_from([True, True, True, False]),
        commitment=st.booleans(),
    )
    def create(self, insured: str, kind: str, person: int, complete: bool, commitment: bool) -> str:
        if insured == "440700" and kind == "K6":
            kind = "K5"  # Jiangmen files no other-temporary kind (seed 001)
        long_term = kind in ("K1", "K2", "K3")
        documents = FULL_DOCUMENTS[kind] if complete else ["identity"]  # incomplete: M1 refusals
        if commitment and long_term:
            documents = ["identity", "declaration_form", "personal_commitment"]
        region = "110105" if insured == "110000" else insured[:4] + "03"
        number = id_number(person, region=region, born="20000101")
        filing = self.engine.create(
            id_number=number, kind=kind, insurance_type="employee", insured_region=insured,
            treatment_region=REGIONS[insured], actor=PERSON, documents=documents,
            by_commitment=commitment and long_term, consent_given=True,
            card_settlement_enabled=True,
        )  # fmt: skip
        assert filing.version == 1 and filing.state is FilingState.DRAFT
        assert self._records(filing.id) == 1
        self.people[filing.id] = (number, insured)
        return filing.id

    @rule(filing_id=filings, event=st.sampled_from(EVENTS), who=st.sampled_from(sorted(ACTORS)))
    def fire(self, filing_id: str, event: str, who: str) -> None:
        """Any event, by anyone: mostly refusals, each of which must be recorded."""
        self._attempt(filing_id, event, ACTORS[who])

    @rule(filing_id=filings)
    def advance(self, filing_id: str) -> None:
        """The event a filing's lifecycle asks for next, by the actor who would fire it."""
        state = self.engine.get(filing_id).state
        event, actor = NEXT.get(state, ("cancel", PERSON))
        self._attempt(filing_id, event, actor)

    def _attempt(self, filing_id: str, event: str, actor: Actor) -> None:
        before, records = self.engine.get(filing_id), self._records(filing_id)
        kwargs: dict[str, object] = {"reason": "not_eligible"} if event == "reject" else {}
        args: tuple[object, ...] = (filing_id, actor)
        if event == "supply_documents":
            args = (*args, FULL_DOCUMENTS[before.kind.value])
        try:
            after = getattr(self.engine, event)(*args, **kwargs)
        except TransitionRefused as refusal:
            after = self.engine.get(filing_id)
            assert refusal.rule_id and refusal.filing_id == filing_id
            assert (after.state, after.version) == (before.state, before.version)
        else:
            assert before.state not in FINAL_STATES, f"{event} moved a {before.state} filing"
            assert after.version == before.version + 1
        assert self._records(filing_id) == records + 1

    @rule(filing_id=filings, treatment=st.sampled_from(["310000", "440100", "440305"]))
    def change(self, filing_id: str, treatment: str) -> None:
        number, insured = self.people[filing_id]
        before, records = self.engine.get(filing_id), self._records(filing_id)
        try:
            old, new = self.engine.change(
                filing_id, id_number=number, kind="K6", insurance_type="employee",
                insured_region=insured, treatment_region=treatment, actor=PERSON,
                documents=FULL_DOCUMENTS["K6"], consent_given=True,
            )  # fmt: skip
        except TransitionRefused:
            after = self.engine.get(filing_id)
            assert (after.state, after.version) == (before.state, before.version)
            assert self._records(filing_id) == records + 1
        except InvalidInput:
            assert (
                self._records(filing_id) == records
            )  # e.g. no filing needed there: nothing written
        else:
            assert new.supersedes == filing_id and self._records(new.id) == 2
            self.people[new.id] = (number, insured)
            if new.state is FilingState.EFFECTIVE:
                assert old.state is FilingState.CANCELLED and old.version == before.version + 1
            else:
                assert (old.state, old.version) == (before.state, before.version)

    @rule(days=st.integers(0, 120))
    def time_passes(self, days: int) -> None:
        self.clock.advance(days=days)

    @invariant()
    def the_chain_verifies(self) -> None:
        if hasattr(self, "engine"):
            result = self.engine.verify()
            assert result.ok, result.problems

    @invariant()
    def a_version_is_one_plus_the_applied_transitions_and_final_states_stay(self) -> None:
        for filing_id in getattr(self, "people", {}):
            filing = self.engine.get(filing_id)
            applied = [r for r in self.engine.history(filing_id) if r["outcome"] == "applied"]
            assert filing.version == len(applied)  # create is applied at version 1
            if filing_id in self.ended:
                assert filing.state is self.ended[filing_id]
            elif filing.state in FINAL_STATES:
                self.ended[filing_id] = filing.state


Lifecycle.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLifecycle = Lifecycle.TestCase
