"""Random walks over the lifecycle (Hypothesis stateful testing) with the invariants that make
the engine trustworthy: version rises by one per applied transition and never otherwise; one
audit record per attempt, applied or denied; the chain always verifies; nothing leaves a final
state."""

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


class Lifecycle(RuleBasedStateMachine):
    filings = Bundle("filings")

    @initialize()
    def open_engine(self) -> None:
        self.folder = tempfile.mkdtemp()
        self.clock = Clock(datetime(2026, 3, 2, 2, tzinfo=UTC))
        self.engine = FilingEngine.open(
            database_url=f"sqlite:///{self.folder}/walk.db", settings=SETTINGS, clock=self.clock
        )
        self.attempts = 0
        self.versions: dict[str, int] = {}

    def teardown(self) -> None:
        if hasattr(self, "engine"):
            self.engine.close()
            shutil.rmtree(self.folder, ignore_errors=True)

    @rule(
        target=filings,
        insured=st.sampled_from(sorted(REGIONS)),
        kind=st.sampled_from(sorted(FULL_DOCUMENTS)),
        person=st.integers(1, 2),
        complete=st.booleans(),
        commitment=st.booleans(),
    )
    def create(self, insured: str, kind: str, person: int, complete: bool, commitment: bool) -> str:
        long_term = kind in ("K1", "K2", "K3")
        documents = FULL_DOCUMENTS[kind] if complete else ["identity"]
        if commitment and long_term:
            documents = ["identity", "declaration_form", "personal_commitment"]
        region = "110105" if insured == "110000" else insured[:4] + "03"
        filing = self.engine.create(
            id_number=id_number(person, region=region, born="20000101"),
            kind=kind, insurance_type="employee", insured_region=insured,
            treatment_region=REGIONS[insured], actor=PERSON, documents=documents,
            by_commitment=commitment and long_term, consent_given=True,
            card_settlement_enabled=True,
        )  # fmt: skip
        self.attempts += 1
        self.versions[filing.id] = filing.version
        assert filing.version == 1 and filing.state is FilingState.DRAFT
        return filing.id

    @rule(
        filing_id=filings,
        event=st.sampled_from(
            [
                "submit",
                "approve",
                "reject",
                "withdraw",
                "cancel",
                "expire",
                "stop_insurance",
                "supply_documents",
            ]
        ),
        who=st.sampled_from(sorted(ACTORS)),
    )
    def fire(self, filing_id: str, event: str, who: str) -> None:
        actor: Actor = ACTORS[who]
        before = self.engine.get(filing_id)
        kwargs: dict[str, object] = {}
        if event == "reject":
            kwargs["reason"] = "not_eligible"
        method = getattr(self.engine, event)
        args: tuple[object, ...] = (filing_id, actor)
        if event == "supply_documents":
            args = (*args, FULL_DOCUMENTS[before.kind.value])
        try:
            after = method(*args, **kwargs)
        except TransitionRefused as refusal:
            after = self.engine.get(filing_id)
            assert refusal.rule_id and refusal.filing_id == filing_id
            assert (after.state, after.version) == (before.state, before.version)
        else:
            assert before.state not in FINAL_STATES, f"{event} moved a {before.state} filing"
            assert after.version == before.version + 1
        self.attempts += 1
        self.versions[filing_id] = after.version

    @rule(filing_id=filings)
    def change(self, filing_id: str) -> None:
        before = self.engine.get(filing_id)
        try:
            old, new = self.engine.change(
                filing_id, id_number=id_number(9, region="110105", born="20000101"),
                kind="K6", insurance_type="resident", insured_region="110000",
                treatment_region="310000", actor=PERSON, documents=FULL_DOCUMENTS["K6"],
            )  # fmt: skip
        except TransitionRefused:
            after = self.engine.get(filing_id)
            assert (after.state, after.version) == (before.state, before.version)
            self.attempts += 1
        except InvalidInput as invalid:
            assert invalid.field == "id_number"  # another person's filing: nothing written
        else:
            assert old.state is FilingState.CANCELLED and old.version == before.version + 1
            self.attempts += 3  # change on the old, create and submit of the new
            self.versions[new.id] = new.version

    @rule(days=st.integers(0, 120))
    def time_passes(self, days: int) -> None:
        self.clock.advance(days=days)

    @invariant()
    def one_audit_record_per_attempt_and_the_chain_verifies(self) -> None:
        if not hasattr(self, "engine"):
            return
        result = self.engine.verify()
        assert result.ok, result.problems
        assert result.count == self.attempts

    @invariant()
    def stored_versions_match_what_each_call_returned(self) -> None:
        for filing_id, version in self.versions.items():
            assert self.engine.get(filing_id).version == version


Lifecycle.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLifecycle = Lifecycle.TestCase
