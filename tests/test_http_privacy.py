"""No unmasked ID number leaves the HTTP API: a representative run through the API, with ID
numbers wherever a caller could put them (bodies, wrong fields, the URL path, the query string,
request-id and idempotency headers), then a scan of everything the run produced: every
response's status line, headers and body, every log line (JSON, debug level, the standard
library's loggers included), and every row of every table. None may hold one of the numbers
used, and none may hold anything shaped like a resident ID number at all, except masked.

The module runs its scenario itself (no conftest hook): one run, several scans.
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from tests.conftest import FULL_DOCUMENTS, id_number
from workflow import FilingEngine, FilingError, keys
from workflow.clock import ManualClock
from workflow.config import Settings
from workflow.http import create_app
from workflow.identity import mask, normalise_id_number
from workflow.logs import configure_logging

TODAY = date(2026, 3, 2)
NOW = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # 10:00 in China
# The people of the run (valid check digits; not real persons). X_PERSON ends in X.
OWNER = id_number(11, region="110105")
OTHER = id_number(12, region="440703", born="20000101")
PATIENT = id_number(13, region="440703", born="20000101")
X_PERSON = next(
    n for n in (id_number(i, region="350203") for i in range(20, 200)) if n.endswith("X")
)
NUMBERS = [OWNER, OTHER, PATIENT, X_PERSON]
BEIJING = {"insurance_type": "employee", "insured_region": "110000", "treatment_region": "440300"}
JIANGMEN = {"insurance_type": "employee", "insured_region": "440700", "treatment_region": "440100"}
XIAMEN = {"insurance_type": "employee", "insured_region": "350200", "treatment_region": "440300"}
# Anything shaped like an 18-character ID number, standing alone (not inside a longer token
# such as a hash); a 15-digit first-generation number too.
SHAPED = re.compile(r"(?<![0-9A-Za-z])(\d{17}[\dXx]|\d{15})(?![0-9A-Za-z])")


@dataclass
class Run:
    responses: list[str] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)
    rows: dict[str, list[str]] = field(default_factory=dict)
    statuses: list[tuple[str, int]] = field(default_factory=list)


class Recorder:
    """A client that keeps every response: status line, headers and body, as text."""

    def __init__(self, client: TestClient, run: Run) -> None:
        self.client, self.run = client, run

    def __call__(
        self, method: str, url: str, token: str | None = None, **kw: Any
    ) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if token:
            headers["Authorization"] = f"Bearer {token}"
        r = self.client.request(method, url, headers=headers, **kw)
        self.run.statuses.append((f"{method} {url}", r.status_code))
        self.run.responses.append(
            f"{r.status_code} {r.reason_phrase}\n"
            + "\n".join(f"{k}: {v}" for k, v in r.headers.items())
            + "\n\n"
            + r.text
        )
        return r


def _filing(number: str, region: dict[str, str], kind: str = "K6", **over: Any) -> dict[str, Any]:
    return {
        "id_number": number,
        "kind": kind,
        **region,
        "documents": FULL_DOCUMENTS[kind],
        "consent_given": True,
        **over,
    }


def _scenario(call: Recorder, tokens: dict[str, str]) -> None:
    admin, officer, insured = tokens["admin"], tokens["officer"], tokens["insured"]
    hospital, auditor = tokens["hospital"], tokens["auditor"]

    # Creates with ID numbers in bodies, one with an idempotency replay; a lower-case x.
    body = _filing(OWNER, BEIJING)
    first = call("POST", "/filings", insured, json=body, headers={"Idempotency-Key": "own-0001"})
    assert first.status_code == 201, first.text
    replay = call("POST", "/filings", insured, json=body, headers={"Idempotency-Key": "own-0001"})
    assert replay.headers.get("Idempotent-Replayed") == "true"
    reused = call(
        "POST",
        "/filings",
        insured,
        json=_filing(OWNER, BEIJING, kind="K2"),
        headers={"Idempotency-Key": "own-0001"},
    )
    assert reused.status_code == 422
    filing = first.json()
    x_body = _filing(X_PERSON.lower(), XIAMEN, kind="K1", card_settlement_enabled=True)
    assert call("POST", "/filings", officer, json=x_body).status_code in (201, 403)
    assert call("POST", "/filings", admin, json=x_body).status_code == 201

    # Transitions: a missing and a stale If-Match, then the real ones; a refusal (409).
    path = f"/filings/{filing['id']}"
    assert call("POST", f"{path}/submit", insured).status_code == 428
    assert call("POST", f"{path}/submit", insured, headers={"If-Match": '"99"'}).status_code == 412
    submitted = call("POST", f"{path}/submit", insured, headers={"If-Match": '"1"'})
    assert submitted.status_code == 200, submitted.text
    refused = call("POST", f"{path}/submit", insured, headers={"If-Match": "*"})
    assert refused.status_code == 409
    # A reason or a note that carries an ID number, written after a letter (422, not stored).
    for hostile in ({"reason": f"r{OWNER}"}, {"reason": "other", "note": f"r{OWNER}"}):
        r = call("POST", f"{path}/reject", officer, json=hostile, headers={"If-Match": "*"})
        assert r.status_code == 422, r.text
    approved = call("POST", f"{path}/approve", officer, headers={"If-Match": "*"})
    assert approved.status_code == 200, approved.text

    # Someone else's filing: the insured key may not act for another person (403, audited).
    assert (
        call("POST", "/filings", insured, json=_filing(OTHER, JIANGMEN, kind="K2")).status_code
        == 403
    )
    assert call("POST", "/filings/search", insured, json={"id_number": OTHER}).status_code == 403
    found = call("POST", "/filings/search", insured, json={"id_number": OWNER})
    assert found.status_code == 200 and found.json()

    # Validation errors on bodies that hold ID numbers, some in the wrong fields.
    for wrong in (
        {**_filing(OWNER, BEIJING), "kind": OWNER},
        {**_filing(OWNER, BEIJING), "insured_region": OWNER},
        {**_filing(OWNER, BEIJING), "documents": [OWNER]},
        {**_filing(OWNER, BEIJING), "card_number": OWNER, "person": OWNER},
        {**_filing(OWNER, BEIJING), "start_date": OWNER},
        {**_filing(OWNER, BEIJING), "id_number": OWNER[:-1] + ("0" if OWNER[-1] != "0" else "1")},
        {**_filing(OWNER, BEIJING), "id_number": OWNER + "0"},
        {**_filing(OWNER, BEIJING), "id_number": int(OWNER[:-1])},
    ):
        r = call("POST", "/filings", admin, json=wrong)
        assert r.status_code == 422, r.text
    assert (
        call(
            "POST",
            "/filings",
            admin,
            content=b'{"id_number": "' + OWNER.encode(),
            headers={"Content-Type": "application/json"},
        ).status_code
        == 422
    )
    assert (
        call(
            "POST",
            "/persons/stop-insurance",
            admin,
            json={"id_number": OTHER, "insurance_type": OWNER},
        ).status_code
        == 422
    )
    assert call(
        "POST", f"{path}/reject", officer, json={"reason": OWNER}, headers={"If-Match": "*"}
    ).status_code in (409, 422)

    # ID numbers in the URL path and the query string.
    for url in (
        f"/filings/{OWNER}",
        f"/filings/{OWNER}/history",
        f"/admissions/{PATIENT}",
        f"/claims/{PATIENT}",
        f"/persons/{OWNER}",
        f"/filings?insured_region={OWNER}",
        f"/filings?cursor={OWNER}",
        f"/filings?limit={OWNER}",
        f"/audit?filing_id={OWNER}",
        f"/audit?region={OWNER}&event={OWNER}",
        f"/audit?since={OWNER}",
        f"/filings/{filing['id']}/history?cursor={OWNER}",
        f"/filings?id_number={OWNER}",
    ):
        r = call("GET", url, admin)
        assert r.status_code in (200, 404, 422), (url, r.status_code)
    assert (
        call("POST", f"/filings/{OWNER}/submit", insured, headers={"If-Match": "*"}).status_code
        == 404
    )

    # ID numbers in headers a caller chooses.
    for headers in (
        {"X-Request-ID": OWNER},
        {"X-Correlation-ID": OTHER},
        {"X-Request-ID": f"req-{OWNER}"},
        {"X-Request-ID": X_PERSON.lower()},
        {"If-Match": OWNER},
        {"If-Match": f'"{OWNER}"'},
    ):
        call("GET", f"/filings/{filing['id']}", admin, headers=headers)
        call("POST", f"{path}/withdraw", insured, headers=headers)
    for idem in (OTHER, f"k-{OTHER}", X_PERSON.lower()):
        r = call(
            "POST",
            "/filings",
            admin,
            json=_filing(OTHER, JIANGMEN, kind="K2"),
            headers={"Idempotency-Key": idem},
        )
        assert r.status_code in (201, 422), r.text

    # 401s: no key, a made-up key, a key shaped like an ID number.
    call("GET", "/filings")
    call("GET", "/filings", f"fk_{OWNER[:12]}_{OWNER}")
    call("GET", "/filings", headers={"Authorization": OWNER})
    # 403s: roles that may not call.
    call("GET", "/audit", insured)
    call("POST", "/deadlines/fire-due", officer, json={})

    # The hospital side: an emergency admission, coverage, discharge, a second discharge (409).
    adm_body = {
        "id_number": PATIENT,
        "hospital_code": "H4401001",
        "admitted_on": str(TODAY),
        "emergency": True,
        **JIANGMEN,
    }
    adm = call(
        "POST", "/admissions", hospital, json=adm_body, headers={"Idempotency-Key": "adm-00001"}
    )
    assert adm.status_code == 201, adm.text
    aid = adm.json()["id"]
    call("POST", "/admissions", hospital, json=adm_body, headers={"Idempotency-Key": "adm-00001"})
    assert call("GET", f"/admissions/{aid}/coverage", hospital).status_code == 200
    assert call("GET", f"/admissions/{aid}/coverage?day={PATIENT}", hospital).status_code == 422
    out = {"discharged_on": str(TODAY + timedelta(days=3))}
    done = call(
        "POST", f"/admissions/{aid}/discharge", hospital, json=out, headers={"If-Match": "*"}
    )
    assert done.status_code in (200, 409, 422), done.text
    call("POST", f"/admissions/{aid}/discharge", hospital, json=out, headers={"If-Match": "*"})
    call("GET", f"/admissions/{aid}/history", hospital)
    call("POST", "/admissions", hospital, json={**adm_body, "admitted_on": PATIENT})
    call("POST", "/admissions", hospital, json={**adm_body, "hospital_code": PATIENT + "!"})
    r = call("POST", "/admissions", admin, json={**adm_body, "hospital_code": PATIENT})
    assert r.status_code == 422, r.text
    call("POST", "/admissions", insured, json=adm_body)

    # What an auditor and the back-office read: history, deadlines, the audit export.
    call("GET", f"{path}/history", insured)
    call("GET", f"{path}/deadlines", insured)
    call("GET", "/filings?limit=500", admin)
    export = call("GET", "/audit?limit=500", admin)
    assert export.status_code == 200 and export.json()["items"]
    call("GET", "/audit?limit=500", auditor)
    call("GET", "/audit/checkpoint", auditor)
    call("POST", "/audit/verify", auditor, json={})
    call(
        "POST",
        "/persons/stop-insurance",
        officer,
        json={"id_number": OWNER, "insurance_type": "employee"},
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, settings: Settings) -> Iterator[Run]:
    stream = io.StringIO()
    configure_logging("json", "debug", stream=stream)
    # The test client's own logger (httpx: one line per request it sends, URL included) is the
    # caller's, not the service's: the service receives requests and never logs their URLs.
    httpx_level = logging.getLogger("httpx").level
    logging.getLogger("httpx").setLevel(logging.WARNING)
    roomy = replace(
        settings,
        http=replace(
            settings.http, rate_limit="100000/second", anonymous_rate_limit="100000/second"
        ),
    )
    db: Path = tmp_path_factory.mktemp("privacy") / "filings.db"
    engine = FilingEngine.open(
        database_url=f"sqlite:///{db}", settings=roomy, clock=ManualClock(NOW)
    )
    common = {
        "now": NOW,
        "person_secret": engine.settings.person_key,
        "codes": engine.settings.codes,
    }

    def token(role: str, **kw: Any) -> str:
        return keys.issue(engine.store, role=role, label=f"privacy-{role}", **common, **kw).token

    tokens = {
        "admin": token("administrator"),
        "officer": token("officer", organisation="agency-1", regions=("110000", "440700")),
        "auditor": token("auditor", all_regions=True),
        "insured": token("insured", id_number=OWNER, channel="mini_program"),
        "hospital": token("hospital", organisation="H4401001"),
    }
    result = Run()
    with TestClient(create_app(engine), raise_server_exceptions=False) as client:
        _scenario(Recorder(client, result), tokens)
    with engine.sql_engine.connect() as conn:
        names = sa.inspect(conn).get_table_names()
        for table in names:
            rows = conn.execute(sa.text(f"SELECT * FROM {table}")).all()
            result.rows[table] = [json.dumps([str(v) for v in row]) for row in rows]
    engine.close()
    result.logs = stream.getvalue().splitlines()
    logging.getLogger("httpx").setLevel(httpx_level)
    yield result


def _leaks(text: str) -> list[str]:
    found = [n for n in NUMBERS if n.lower() in text.lower() or n[:-1] in text]
    found += [s for s in SHAPED.findall(text) if len(s) == 15 or _accepted(s)]
    return found


def _accepted(text: str) -> bool:
    """Whether the engine takes `text` as an ID number (of anyone born until today)."""
    try:
        normalise_id_number(text, date.max)
    except FilingError:
        return False
    return True


def test_the_run_covers_what_it_should(run: Run) -> None:
    """The scan means something: the run produced successes and every kind of refusal, logs
    at each level, and audit and idempotency rows."""
    statuses = {status for _, status in run.statuses}
    assert {200, 201, 401, 403, 404, 409, 412, 422, 428} <= statuses, sorted(statuses)
    events = {json.loads(line)["event"] for line in run.logs}
    assert {"http.request", "http.access_denied", "filing.transition_applied"} <= events
    assert len(run.rows["audit_record"]) > 20
    assert run.rows["idempotency_record"]
    # Masked forms do appear: the numbers were seen and masked, not lost.
    assert any(mask(OWNER) in text for text in run.responses)


def test_no_response_carries_an_id_number(run: Run) -> None:
    leaks = [(text[:200], _leaks(text)) for text in run.responses if _leaks(text)]
    assert not leaks


def test_no_log_line_carries_an_id_number(run: Run) -> None:
    leaks = [line for line in run.logs if _leaks(line)]
    assert not leaks


@pytest.mark.parametrize("table", ["audit_record", "idempotency_record", "*"])
def test_no_row_carries_an_id_number(run: Run, table: str) -> None:
    tables = run.rows if table == "*" else {table: run.rows[table]}
    leaks = [(name, row[:200]) for name, rows in tables.items() for row in rows if _leaks(row)]
    assert not leaks
