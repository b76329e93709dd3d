"""The HTTP API against its own OpenAPI document, with Schemathesis (in-process, over ASGI).

Stateless: every operation, with an administrator's key and with an insured person's key, on
valid data and on data that breaks the schema: never a 5xx, every response (status, content
type, headers, body) as the document says, and invalid input always refused with a 4xx.
Stateful: sequences that follow the document's links (createFiling -> submitFiling ->
approveFiling..., admit -> dischargeAdmission...), carrying the id and the ETag (as If-Match)
from one response to the next request.

Generated ID numbers and region codes almost never pass the checks (checksum, GB/T 2260), so
a body hook swaps some of them for valid ones: creates then succeed and later steps act on
real filings and admissions. A bug found here is fixed in workflow/http, never filtered out.

Seeded (FILING_SCHEMA_SEED, see tests/conftest.py): the same examples every run unless it
says otherwise; CI runs the fixed seed, then a random one whose number it prints.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, seed, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.schemas import OpenApiSchema

from states.vocabulary import Role
from tests.conftest import FULL_DOCUMENTS, ROOT, SCHEMA_SEED, id_number
from workflow import keys
from workflow.api import FilingEngine
from workflow.clock import ManualClock
from workflow.config import load_settings
from workflow.http import create_app

# Checks for every response. positive_data_acceptance is left out on purpose: a body the
# schema accepts can still be refused by a rule (an ID number's checksum, a region that does
# not exist, a transition the state forbids), and those refusals are 4xx by design.
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "missing_required_header",
    "unsupported_method",
]
# Per operation and key; FILING_SCHEMA_EXAMPLES=500 for a deeper run.
EXAMPLES = int(os.environ.get("FILING_SCHEMA_EXAMPLES", "25"))
STATEFUL_EXAMPLES = 2 * EXAMPLES

# Valid data the generator would not find by itself: (insured region, treatment region).
REGIONS = [("110000", "440300"), ("440700", "110105"), ("350203", "310104"), ("310000", "510100")]
PEOPLE = [id_number(n, region="110105") for n in range(1, 6)]
OWN = PEOPLE[0]  # the insured key's person
TODAY = date(2026, 3, 2)  # the clock's (Asia/Shanghai) day
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9._:-]{8,64}$")


def _open_world() -> dict[str, Any]:
    """A fresh SQLite file for this module, the app over it, and keys of two roles. Opened
    at import: Schemathesis parametrizes the tests from the app's document at collection."""
    folder = Path(tempfile.mkdtemp(prefix="http-schema-"))
    base = load_settings(ROOT / "config.toml", environ={"FILING_PERSON_KEY": "test-person-key"})
    fast = replace(
        base,
        http=replace(base.http, rate_limit="1000000/second", anonymous_rate_limit="1000000/second"),
    )
    clock = ManualClock(datetime(2026, 3, 2, 2, 0, tzinfo=UTC))
    engine = FilingEngine.open(
        database_url=f"sqlite:///{folder / 'filings.db'}", settings=fast, clock=clock
    )
    common = {
        "now": clock(),
        "person_secret": engine.settings.person_key,
        "codes": engine.settings.codes,
    }
    admin = keys.issue(engine.store, role=Role.ADMINISTRATOR, label="schema-admin", **common)
    insured = keys.issue(
        engine.store, role=Role.INSURED, label="schema-insured", id_number=OWN, **common
    )
    return {
        "folder": folder,
        "engine": engine,
        "app": create_app(engine),
        "admin": {"Authorization": f"Bearer {admin.token}"},
        "insured": {"Authorization": f"Bearer {insured.token}"},
    }


WORLD = _open_world()


@pytest.fixture(scope="module", autouse=True)
def _close_world() -> Iterator[None]:
    yield
    WORLD["engine"].close()
    shutil.rmtree(WORLD["folder"], ignore_errors=True)
    FRESH.close()
    shutil.rmtree(FRESH.folder, ignore_errors=True)


def _pick(value: str, options: list[Any]) -> Any:
    return options[zlib.crc32(value.encode()) % len(options)]


def _often(value: str, always: bool) -> bool:
    """Three times in four, by the value (one in four keeps the made-up value, so the refusals
    of a bad checksum, a region that does not exist or a past date are exercised too)."""
    return always or zlib.crc32(value.encode()) % 4 != 0


def _plausible_body(body: Any, always: bool) -> Any:
    """Swap schema-valid but made-up values for ones the rules accept: an ID number with its
    checksum, a real pair of regions, a date near the clock's today. Values the schema itself
    rejects are left alone, so negative cases stay negative."""
    if not isinstance(body, dict):
        return body
    body = dict(body)
    number = body.get("id_number")
    if isinstance(number, str) and 15 <= len(number) <= 18 and _often(number, always):
        body["id_number"] = _pick(number, PEOPLE)
    insured, treated = body.get("insured_region"), body.get("treatment_region")
    if all(isinstance(r, str) and len(r) == 6 and r.isdigit() for r in (insured, treated)):
        body["insured_region"], body["treatment_region"] = _pick(str(insured), REGIONS)
    for name, sign in (("start_date", 1), ("admitted_on", -1), ("discharged_on", 0)):
        day = body.get(name)
        if isinstance(day, str) and _DAY.match(day) and _often(day, always):
            body[name] = str(TODAY + sign * timedelta(days=zlib.crc32(day.encode()) % 20))
    if always and body.get("kind") in FULL_DOCUMENTS:
        # A filing that can take effect: its documents (M1-M5), the card confirmed (M10).
        body.update(documents=FULL_DOCUMENTS[body["kind"]], card_settlement_enabled=True,
                    by_commitment=False, consent_given=True)  # fmt: skip
    if always and isinstance(body.get("hospital_code"), str):
        # An admission a hospital could record (P1, P3, P7).
        body["hospital_code"] = f"H{zlib.crc32(body['hospital_code'].encode()) % 9}"
        body["care"] = "outpatient" if body.get("institution") == "pharmacy" else "inpatient"
    return body


def _plausible(case: schemathesis.Case, always: bool) -> schemathesis.Case:
    body = _plausible_body(case.body, always)
    if body is not case.body:
        case.body = body
    key = (case.headers or {}).get("Idempotency-Key")
    if isinstance(key, str) and _IDEMPOTENCY_KEY.match(key):
        # One key per body: a repeated body is a replay, another body another request (the
        # same key with another body is refused with 422, which the rest would then hit).
        blob = json.dumps(body, sort_keys=True, default=str).encode()
        case.headers = {**(case.headers or {}), "Idempotency-Key": f"idem-{zlib.crc32(blob):08x}"}
    return case


def _schema(modes: list[GenerationMode], *, always: bool = False, app: Any = None) -> OpenApiSchema:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app or WORLD["app"])
    schema.config.seed = SCHEMA_SEED  # each operation's examples derive from it
    schema.config.generation.update(modes=modes, max_examples=EXAMPLES, allow_x00=False)
    schema.config.checks.update(included_check_names=CHECKS)

    @schema.hook
    def map_case(_context: schemathesis.HookContext, case: schemathesis.Case) -> schemathesis.Case:
        return _plausible(case, always)

    return schema


schema = _schema(list(GenerationMode))
_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)


@schema.parametrize()
@_SETTINGS
def test_every_operation_as_an_administrator(case: schemathesis.Case) -> None:
    case.call_and_validate(headers=WORLD["admin"])


@schema.parametrize()
@_SETTINGS
def test_every_operation_as_an_insured_person(case: schemathesis.Case) -> None:
    case.call_and_validate(headers=WORLD["insured"])


# -- stateful: follow the document's links -------------------------------------------------------

LINKED = [
    "createFiling", "getFiling", "submitFiling", "approveFiling", "withdrawFiling",
    "getFilingHistory", "getFilingDeadlines",
    "admit", "getAdmission", "getCoverage", "dischargeAdmission", "getAdmissionHistory",
]  # fmt: skip


class _Fresh:
    """The stateful run's app: for each example, the app over a fresh copy of one database
    (its schema and an administrator's key). Hypothesis assumes an example runs the same way
    each time it is replayed; rows left by earlier examples would change which links can be
    followed, which it reports as flaky generation."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="http-stateful-"))
        template = self.folder / "template.db"
        engine = self._open(template)
        admin = keys.issue(
            engine.store,
            role=Role.ADMINISTRATOR,
            label="stateful-admin",
            now=engine.clock(),
            person_secret=engine.settings.person_key,
            codes=engine.settings.codes,
        )
        engine.close()  # its last connection checkpoints the WAL into the file
        self.template, self.headers = template, {"Authorization": f"Bearer {admin.token}"}
        self.engine: FilingEngine | None = None
        self.app: Any = None
        self.runs = 0
        self.renew()

    @staticmethod
    def _open(path: Path) -> FilingEngine:
        return FilingEngine.open(
            database_url=f"sqlite:///{path}",
            settings=WORLD["engine"].settings,
            clock=ManualClock(datetime(2026, 3, 2, 2, 0, tzinfo=UTC)),
        )

    def renew(self) -> None:
        self.close()
        self.runs += 1
        copy = self.folder / f"run-{self.runs}.db"
        shutil.copyfile(self.template, copy)
        self.engine = self._open(copy)
        self.app = create_app(self.engine)

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


FRESH = _Fresh()
stateful_schema = _schema([GenerationMode.POSITIVE], always=True, app=FRESH).include(
    operation_id=LINKED
)
# Only the links the document declares: inferred ones follow nullable fields (a coverage's
# `filing_id`), whose type then depends on what the database held, which Hypothesis reports as
# flaky generation.
stateful_schema.config.phases.stateful.inference.algorithms = []
REACHED: list[tuple[str, int]] = []


def test_linked_sequences_as_an_administrator() -> None:
    """createFiling -> getFiling / submitFiling / approveFiling / withdrawFiling / history /
    deadlines, admit -> getAdmission / getCoverage / dischargeAdmission / history: each step's
    path id and If-Match come from the previous response (its body's id, its ETag)."""

    class Workflow(stateful_schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            FRESH.renew()

        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"headers": FRESH.headers}

        def after_call(self, response: schemathesis.Response, case: schemathesis.Case) -> None:
            super().after_call(response, case)
            REACHED.append((str(case.operation.definition.raw.get("operationId")),
                            response.status_code))  # fmt: skip

    seed(SCHEMA_SEED)(Workflow).run(
        settings=settings(
            max_examples=STATEFUL_EXAMPLES,
            stateful_step_count=8,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
    )
    FRESH.close()
    # The links carried ids and ETags far enough for real transitions to apply.
    applied = {op for op, status in REACHED if status < 300}
    assert {"createFiling", "admit"} <= applied, sorted(set(REACHED))
    assert applied & {"submitFiling", "approveFiling", "withdrawFiling", "dischargeAdmission"}, (
        sorted(set(REACHED))
    )
