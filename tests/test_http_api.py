"""The HTTP API end to end on SQLite: every command and query for the role meant to use it,
problems, engine-set fields refused, cursor pages, Idempotency-Key, If-Match, body and rate
limits, the [http] config, and API keys (401, revocation, `filing keys`)."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import tomllib
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from fastapi.testclient import TestClient
from typer.testing import CliRunner, Result

from jobs.cli import app as cli_app
from states.errors import PolicyConfigError
from tests.conftest import ROOT, Clock, id_number, race
from tests.http_world import (
    A_ID,
    B_ID,
    C_ID,
    D_ID,
    E_ID,
    H1,
    H2,
    JIANGMEN,
    XIAMEN_GZ,
    Http,
    Keys,
    admission_body,
    audit_of,
    beijing_body,
    count,
    etag_of,
    issue,
    issue_keys,
    jiangmen_body,
    k1_body,
    key_id,
    problem,
    roomy,
    served,
)
from workflow import FilingEngine
from workflow.config import Settings, load_settings, settings_from_mapping
from workflow.http import create_app


@pytest.fixture
def engine(
    open_engine: Callable[..., FilingEngine], sqlite_url: str, settings: Settings
) -> FilingEngine:
    return open_engine(sqlite_url, settings=roomy(settings))


@pytest.fixture
def k(engine: FilingEngine) -> Keys:
    return issue_keys(engine)


@pytest.fixture
def http(engine: FilingEngine) -> Iterator[Http]:
    with TestClient(create_app(engine)) as client:
        yield Http(client)


def created(http: Http, token: str, body: dict[str, Any]) -> dict[str, Any]:
    r = http.post("/filings", token, json=body)
    assert r.status_code == 201, r.text
    assert r.headers["etag"] == etag_of(r.json()["version"])
    data: dict[str, Any] = r.json()
    return data


def act(http: Http, token: str, obj: dict[str, Any], action: str, **kw: Any) -> dict[str, Any]:
    """A transition on a filing at the version read; the answer carries the new ETag."""
    r = http.post(f"/filings/{obj['id']}/{action}", token, if_match=etag_of(obj["version"]), **kw)
    assert r.status_code == 200, r.text
    assert r.headers["etag"] == etag_of(r.json()["version"])
    data: dict[str, Any] = r.json()
    return data


def records(engine: FilingEngine) -> tuple[int, int, int]:
    """Rows that a refused request must not add: filings, admissions, audit records."""
    return (
        count(engine, "SELECT COUNT(*) FROM filing_record"),
        count(engine, "SELECT COUNT(*) FROM admission_record"),
        count(engine, "SELECT COUNT(*) FROM audit_record"),
    )


# -- every route, for the role meant to use it ---------------------------------------------------


def test_a_person_files_online_and_reads_the_filing_its_history_deadlines_and_policy(
    http: Http, k: Keys
) -> None:
    draft = created(http, k.a, k1_body())
    assert (draft["state"], draft["version"], draft["person_masked"]) == (
        "draft",
        1,
        "3502**********123X",
    )
    assert "id_number" not in draft and "person_key" not in draft
    assert draft["filed_by"] == f"key:{key_id(k.a)}" and draft["channel"] == "mini_program"

    filing = act(http, k.a, draft, "submit")

    assert (filing["state"], filing["effective_on"], filing["lock_until"]) == (
        "effective",
        "2026-03-02",
        "2026-06-02",
    )
    got = http.get(f"/filings/{draft['id']}", k.a)
    assert got.status_code == 200 and got.json() == filing and got.headers["etag"] == '"2"'
    history = http.ok("GET", f"/filings/{draft['id']}/history", k.a)
    assert [(i["event"], i["outcome"], i["rule_id"]) for i in history["items"]] == [
        ("create", "applied", None),
        ("submit", "applied", "L1"),
    ]
    assert {i["actor_id"] for i in history["items"]} == {f"key:{key_id(k.a)}"}
    assert http.ok("GET", f"/filings/{draft['id']}/deadlines", k.a) == []  # long-term (K1)
    policy = http.ok("GET", f"/filings/{draft['id']}/policy", k.a)
    assert (policy["region"], policy["version"]) == ("350200", filing["policy_version"])
    assert policy["values"]
    listed = http.ok("GET", "/filings", k.a, params={"state": "effective"})
    assert [f["id"] for f in listed["items"]] == [draft["id"]]
    assert http.ok("GET", "/filings", k.a, params={"state": "draft"})["items"] == []


def test_the_agency_approves_or_rejects_reviewed_filings_and_a_person_withdraws_one(
    http: Http, k: Keys
) -> None:
    mine = act(http, k.c, created(http, k.c, jiangmen_body(C_ID)), "submit")
    counter = act(
        http,
        k.jm,
        created(http, k.jm, jiangmen_body(id_number(101, "440703", "20000101"))),
        "submit",
    )
    second = act(http, k.b, created(http, k.b, jiangmen_body(B_ID)), "submit")
    assert {mine["state"], counter["state"], second["state"]} == {"submitted"}

    approved = act(http, k.jm, mine, "approve")
    rejected = act(http, k.jm, counter, "reject", json={"reason": "missing_documents"})
    withdrawn = act(http, k.b, second, "withdraw")

    assert (approved["state"], approved["valid_until"]) == ("effective", None)
    assert (rejected["state"], rejected["reason"]) == ("rejected", "missing_documents")
    assert withdrawn["state"] == "withdrawn"
    states = {f["id"]: f["state"] for f in http.ok("GET", "/filings", k.jm)["items"]}
    assert states == {mine["id"]: "effective", counter["id"]: "rejected", second["id"]: "withdrawn"}
    listed = http.ok("GET", "/filings", k.jm, params={"state": "rejected"})["items"]
    assert [f["id"] for f in listed] == [counter["id"]]


def test_a_person_cancels_after_the_lock_and_changes_a_filing(
    http: Http, k: Keys, clock: Clock
) -> None:
    first = act(http, k.a, created(http, k.a, k1_body()), "submit")
    clock.advance(days=95)  # past the lock (V2)

    cancelled = act(http, k.a, first, "cancel", json={"reason": "moved_home"})
    again = act(http, k.a, created(http, k.a, k1_body()), "submit")
    clock.advance(days=95)
    r = http.post(
        f"/filings/{again['id']}/change",
        k.a,
        if_match=etag_of(again["version"]),
        json=k1_body(treatment_region="440100"),
    )

    assert (cancelled["state"], cancelled["reason"]) == ("cancelled", "moved_home")
    assert r.status_code == 201, r.text
    old, new = r.json()["old"], r.json()["new"]
    assert (old["id"], old["state"]) == (again["id"], "cancelled")
    assert (new["state"], new["treatment_region"], new["supersedes"]) == (
        "effective",
        "440100",
        again["id"],
    )


def test_a_commitment_filing_gets_its_documents_and_officers_stop_insurance(
    http: Http, k: Keys
) -> None:
    body = k1_body(
        by_commitment=True, documents=["identity", "declaration_form", "personal_commitment"]
    )
    pending = act(http, k.a, created(http, k.a, body), "submit")
    assert (pending["state"], pending["entitlement_pending"]) == ("effective", True)

    complete = act(
        http,
        k.a,
        pending,
        "supply-documents",
        json={"documents": ["household_register", "residence_proof"]},
    )
    lapsed = act(http, k.xm, complete, "stop-insurance")
    other = act(http, k.d, created(http, k.d, k1_body(D_ID)), "submit")
    r = http.post(
        "/persons/stop-insurance", k.xm, json={"id_number": D_ID, "insurance_type": "employee"}
    )

    assert complete["entitlement_pending"] is False
    assert (lapsed["state"], lapsed["reason"]) == ("lapsed", "insurance_stopped")
    assert r.status_code == 200 and [(f["id"], f["state"]) for f in r.json()] == [
        (other["id"], "lapsed")
    ]


def test_an_administrator_expires_filings_and_fires_due_deadlines(
    http: Http, k: Keys, clock: Clock
) -> None:
    def approved(body: dict[str, Any]) -> dict[str, Any]:
        return act(
            http, k.admin, act(http, k.admin, created(http, k.admin, body), "submit"), "approve"
        )

    one, two, three = (approved(beijing_body(id_number(n, "110105"))) for n in (6, 7, 8))
    rows = http.ok("GET", f"/filings/{two['id']}/deadlines", k.admin)
    assert [(d["kind"], d["rule_id"]) for d in rows] == [
        ("expiry_reminder", "V3"),
        ("expiry_reminder", "V3"),
        ("expire", "V3"),
    ]
    clock.set(datetime(2026, 9, 10, tzinfo=UTC))

    expired = act(http, k.admin, one, "expire")
    fired = http.ok(
        "POST",
        "/deadlines/fire",
        k.admin,
        json={"subject_id": two["id"], "kind": "expire", "due_at": rows[2]["due_at"]},
    )
    swept = http.ok("POST", "/deadlines/fire-due", k.admin, json={"limit": 100})

    assert expired["state"] == "expired"
    assert fired == {"result": "fired"}
    expires = {
        (a["subject_id"], a["outcome"]) for a in swept["result"]["applied"] if a["kind"] == "expire"
    }
    assert (three["id"], "fired") in expires
    assert two["id"] not in {subject for subject, _ in expires}  # fired once, by the call
    states = {
        i: http.ok("GET", f"/filings/{i}", k.admin)["state"]
        for i in (one["id"], two["id"], three["id"])
    }
    assert set(states.values()) == {"expired"}


def test_a_hospital_stamps_and_reports_a_referral_that_the_agency_approves(
    http: Http, k: Keys
) -> None:
    referral = created(http, k.h1, jiangmen_body(E_ID, "K4"))

    stamped = act(http, k.h1_office, referral, "stamp")
    reported = act(http, k.h1, stamped, "submit")
    approved = act(http, k.jm, reported, "approve")

    assert stamped["hospital_reviewed"] is True and reported["state"] == "submitted"
    assert (approved["state"], approved["continues_deductible"]) == ("effective", True)
    assert [f["id"] for f in http.ok("GET", "/filings", k.h1)["items"]] == [referral["id"]]


def test_a_hospital_admits_and_discharges_and_the_person_files_the_claim(
    http: Http, k: Keys, clock: Clock
) -> None:
    r = http.post("/admissions", k.h2, json=admission_body(D_ID, H2, XIAMEN_GZ, date(2026, 3, 2)))
    assert r.status_code == 201 and r.headers["etag"] == '"1"', r.text
    adm = r.json()
    assert (adm["hospital_org"], adm["person_masked"]) == (H2, "3502**********0026")
    assert http.ok("GET", f"/admissions/{adm['id']}", k.d) == adm
    decision = http.ok(
        "GET", f"/admissions/{adm['id']}/coverage", k.h2, params={"day": "2026-03-02"}
    )
    assert (decision["direct_settlement"], decision["rule_id"]) == (False, "P3")
    assert {"part": "self_share", "rule_id": "P3"}.items() <= decision["parts"][2].items()
    clock.advance(days=3)

    r = http.post(
        f"/admissions/{adm['id']}/discharge",
        k.h2,
        if_match='"1"',
        json={"discharged_on": "2026-03-05"},
    )
    assert r.status_code == 200, r.text
    out = r.json()
    claim = http.ok("GET", f"/claims/{out['admission']['claim_id']}", k.d)
    docs = [group[0] for group in claim["documents_required"]]
    filed = http.post(
        f"/claims/{claim['id']}/file",
        k.d,
        if_match=etag_of(claim["version"]),
        json={"documents": docs},
    )
    history = http.ok("GET", f"/admissions/{adm['id']}/history", k.h2)["items"]

    assert (out["admission"]["settlement"], out["coverage"]["rule_id"]) == ("self_paid", "P3")
    assert r.headers["etag"] == etag_of(out["admission"]["version"])
    assert (claim["status"], claim["last_day"]) == ("open", "2026-09-07")
    assert filed.status_code == 200 and filed.json()["status"] == "filed"
    assert filed.headers["etag"] == etag_of(filed.json()["version"])
    assert [h["event"] for h in history][:2] == ["admit", "decide_coverage"]
    assert "discharge" in {h["event"] for h in history}


def test_extensions_are_asked_for_by_the_hospital_and_decided_by_the_agency(
    http: Http, k: Keys
) -> None:
    referral = act(
        http,
        k.h1,
        act(http, k.h1_office, created(http, k.h1, jiangmen_body(E_ID, "K4")), "stamp"),
        "submit",
    )
    act(http, k.jm, referral, "approve")
    stay = http.ok(
        "POST",
        "/admissions",
        k.h1,
        json=admission_body(E_ID, H1, JIANGMEN, date(2026, 3, 2), referral=True),
    )
    path = f"/admissions/{stay['id']}"
    day_61 = {"day": "2026-05-12"}
    assert http.ok("GET", f"{path}/coverage", k.jm, params=day_61)["rule_id"] == "E6"

    def step(action: str, token: str, adm: dict[str, Any], **kw: Any) -> dict[str, Any]:
        r = http.post(f"{path}/{action}", token, if_match=etag_of(adm["version"]), **kw)
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()
        return data

    ask = {"json": {"documents": ["continued_stay_certificate"]}}
    asked = step("request-extension", k.h1, stay, **ask)
    refused = step("refuse-extension", k.jm, asked)
    asked_again = step("request-extension", k.h1, refused, **ask)
    granted = step("grant-extension", k.jm, asked_again)

    assert [a["extension"] for a in (asked, refused, asked_again, granted)] == [
        "requested",
        "refused",
        "requested",
        "granted",
    ]
    assert http.ok("GET", f"{path}/coverage", k.jm, params=day_61)["direct_settlement"] is True


def test_an_emergency_is_deemed_filed_and_the_persons_filings_are_found_by_id_number(
    http: Http, k: Keys
) -> None:
    adm = http.ok(
        "POST",
        "/admissions",
        k.h1,
        json=admission_body(B_ID, H1, JIANGMEN, date(2026, 3, 1), emergency=True),
    )
    retro = created(http, k.b, jiangmen_body(B_ID, "K5", admission_id=adm["id"]))
    submitted = act(http, k.b, retro, "submit")

    every = http.ok("POST", "/filings/search", k.b, json={"id_number": B_ID})
    effective = http.ok(
        "POST", "/filings/search", k.jm, json={"id_number": B_ID, "effective_only": True}
    )

    assert submitted["state"] == "submitted" and retro["admission_id"] == adm["id"]
    assert {(f["id"], f["state"]) for f in every} == {
        (adm["deemed_filing_id"], "deemed"),
        (retro["id"], "submitted"),
    }
    assert effective == []  # deemed is not an effective filing; the retro one waits
    assert B_ID not in json.dumps(every)  # found by the number, shown masked


def test_auditors_export_the_trail_with_filters_checkpoint_and_verify_it(
    http: Http, k: Keys, engine: FilingEngine
) -> None:
    xiamen = act(http, k.a, created(http, k.a, k1_body()), "submit")
    jiangmen = act(http, k.c, created(http, k.c, jiangmen_body()), "submit")

    everything = http.ok("GET", "/audit", k.admin)["items"]
    one = http.ok("GET", "/audit", k.admin, params={"filing_id": xiamen["id"]})["items"]
    submits = http.ok("GET", "/audit", k.admin, params={"event": ["submit"]})["items"]
    regional = http.ok("GET", "/audit", k.auditor)["items"]
    later = http.ok(
        "GET",
        "/audit",
        k.admin,
        params={"since": "2026-03-02T02:00:00Z", "until": "2026-03-02T02:00:01Z"},
    )
    none = http.ok("GET", "/audit", k.admin, params={"since": "2026-03-03T00:00:00Z"})
    cp = http.ok("GET", "/audit/checkpoint", k.auditor)
    verified = http.ok("POST", "/audit/verify", k.admin, json=cp)
    bare = http.ok("POST", "/audit/verify", k.admin)
    wrong = http.ok(
        "POST", "/audit/verify", k.admin, json={"count": cp["count"] + 5, "head_hash": "0" * 64}
    )
    by_auditor = http.post("/audit/verify", k.auditor, json=cp)

    assert [r["seq"] for r in everything] == list(range(1, 5))
    assert [(r["filing_id"], r["event"]) for r in one] == [
        (xiamen["id"], "create"),
        (xiamen["id"], "submit"),
    ]
    assert {r["filing_id"] for r in submits} == {xiamen["id"], jiangmen["id"]}
    assert {r["filing_id"] for r in regional} == {jiangmen["id"]}
    assert len(later["items"]) == 4 and none["items"] == []
    assert cp == {"count": 4, "head_hash": everything[-1]["hash"]}
    assert verified["ok"] is True and verified["problems"] == []
    assert bare["ok"] is True and bare["count"] == 4
    assert wrong["ok"] is False and wrong["problems"]
    assert problem(by_auditor, 403)["rule_id"] == "A2"  # the whole chain: the administrator's
    # Reads and verifications write nothing; the auditor's denied call is on the record.
    assert engine.checkpoint().count == 5


def test_policies_and_health_answer(http: Http, k: Keys, engine: FilingEngine) -> None:
    policies = http.ok("GET", "/policies", k.h1)
    health = http.get("/health", None)

    assert {p["region"] for p in policies} == set(engine.settings.policies)
    assert all(p["version"] and p["values"] for p in policies)
    assert health.status_code == 200 and health.json() == {"status": "ok"}


# -- problems ---------------------------------------------------------------------------------


def test_a_refusal_is_a_409_problem_naming_its_rule_and_request_id_as_its_audit_record_does(
    http: Http, k: Keys, engine: FilingEngine
) -> None:
    filing = act(http, k.a, created(http, k.a, k1_body()), "submit")

    r = http.post(
        f"/filings/{filing['id']}/cancel",
        k.a,
        if_match='"2"',
        json={},
        headers={"X-Correlation-ID": "corr-1"},
    )

    body = problem(r, 409)
    assert (body["code"], body["rule_id"], body["event"], body["state"]) == (
        "refused",
        "V2",
        "cancel",
        "effective",
    )
    assert body["inputs"]["lock_ends_on"] == "2026-06-02"
    assert r.headers["x-request-id"].startswith("t-")
    [record] = audit_of(engine, body["request_id"])
    assert (record["event"], record["outcome"], record["rule_id"]) == ("cancel", "denied", "V2")
    assert (record["filing_id"], record["correlation_id"]) == (filing["id"], "corr-1")
    assert http.ok("GET", f"/filings/{filing['id']}", k.a)["version"] == 2


def test_a_request_without_its_own_request_id_gets_one_that_the_audit_record_carries(
    http: Http, k: Keys, engine: FilingEngine
) -> None:
    r = http.client.post(
        "/filings",
        json=k1_body(),
        headers={"Authorization": f"Bearer {k.a}", "X-Request-ID": "bad id with spaces"},
    )

    rid = r.headers["x-request-id"]
    assert r.status_code == 201 and rid != "bad id with spaces" and len(rid) == 32
    assert [(a["event"], a["filing_id"]) for a in audit_of(engine, rid)] == [
        ("create", r.json()["id"])
    ]


@pytest.mark.parametrize(
    ("body", "field", "rule"),
    [
        (k1_body(kind="K6", by_commitment=True, documents=["identity"]), "by_commitment", "V6"),
        (k1_body(insured_region="35020"), "insured_region", None),
        (k1_body(kind="K9"), "kind", None),
        (k1_body(id_number="12345678901234567"), "id_number", "M1"),
    ],
)
def test_invalid_input_is_a_422_problem_naming_the_field_with_only_a_rules_refusal_recorded(
    http: Http, k: Keys, engine: FilingEngine, body: dict[str, Any], field: str, rule: str | None
) -> None:
    before = records(engine)

    r = http.post("/filings", k.a, json=body)

    got = problem(r, 422)
    assert (got["code"], got["field"], got.get("rule_id")) == ("invalid_input", field, rule)
    recorded = audit_of(engine, r.headers["x-request-id"])
    if rule == "V6":  # refused by a rule of the engine: a denied create, nothing else
        assert [(a["event"], a["outcome"], a["rule_id"]) for a in recorded] == [
            ("create", "denied", rule)
        ]
    else:  # refused at the edge, by the request's shape
        assert recorded == []
    assert records(engine) == (before[0], before[1], before[2] + len(recorded))
    for value in ("12345678901234567", A_ID):
        assert value not in r.text  # the input is never echoed


ENGINE_FIELDS = [
    "state",
    "version",
    "organisation",
    "policy_version",
    "policy_region",
    "filed_by",
    "seq",
    "hash",
    "prev_hash",
    "actor_id",
    "actor_role",
    "id",
    "person_key",
    "person_masked",
    "channel",
    "on_behalf",
    "created_at",
    "effective_on",
    "deemed",
    "hospital_org",
]


@pytest.mark.parametrize("field", ENGINE_FIELDS)
def test_a_body_that_sets_what_only_the_engine_sets_is_refused_and_writes_nothing(
    http: Http, k: Keys, engine: FilingEngine, field: str
) -> None:
    filing = act(http, k.c, created(http, k.c, jiangmen_body()), "submit")
    before = records(engine)
    value: Any = {"version": 9, "seq": 1, "on_behalf": True, "deemed": True}.get(field, "x")

    answers = [
        http.post("/filings", k.c, json={**jiangmen_body(), field: value}),
        http.post(
            f"/filings/{filing['id']}/reject",
            k.jm,
            if_match='"2"',
            json={"reason": "missing_documents", field: value},
        ),
        http.post(
            f"/filings/{filing['id']}/change",
            k.c,
            if_match='"2"',
            json={**jiangmen_body(), field: value},
        ),
        http.post(
            "/admissions",
            k.h1,
            json={**admission_body(B_ID, H1, JIANGMEN, date(2026, 3, 1)), field: value},
        ),
    ]

    for r in answers:
        got = problem(r, 422)
        assert got["code"] == "invalid_input"
        assert {"field": field, "problem": "Extra inputs are not permitted"} in got["errors"]
    assert records(engine) == before
    assert http.ok("GET", f"/filings/{filing['id']}", k.c)["state"] == "submitted"


# -- cursor pages -------------------------------------------------------------------------------


def test_cursor_pages_cover_every_visible_filing_once_in_order(
    http: Http, k: Keys, engine: FilingEngine
) -> None:
    mine = [
        created(http, k.jm, jiangmen_body(id_number(n, "440703", "20000101")))["id"]
        for n in range(7)
    ]
    created(http, k.xm, k1_body())  # another agency's region: never on jm's pages

    pages, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = http.ok("GET", "/filings", k.jm, params=params)
        pages.append([f["id"] for f in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert [len(p) for p in pages] == [3, 3, 1]
    assert [i for p in pages for i in p] == sorted(mine)  # ids are time-ordered
    every = http.ok("GET", "/filings", k.admin, params={"limit": 2})
    assert len(every["items"]) == 2 and every["next_cursor"] is not None


def test_a_forged_cursor_or_a_limit_past_the_maximum_is_a_422(
    http: Http, k: Keys, engine: FilingEngine
) -> None:
    created(http, k.a, k1_body())
    most = engine.settings.http.max_page_size
    as_int = base64.urlsafe_b64encode(b'{"after":5}').decode().rstrip("=")

    forged = [
        http.get("/filings", k.a, params={"cursor": c}) for c in ("not-a-cursor", as_int, "e30")
    ]
    audit_forged = http.get("/audit", k.admin, params={"cursor": "eyJhZnRlciI6ImEifQ"})
    too_many = http.get("/filings", k.a, params={"limit": most + 1})
    zero = http.get("/filings", k.a, params={"limit": 0})

    for r in [*forged, audit_forged]:
        assert (problem(r, 422)["code"], r.json()["field"]) == ("invalid_cursor", "cursor")
    for r in (too_many, zero):
        assert problem(r, 422)["field"] == "limit" and str(most) in r.json()["detail"]
    assert len(http.ok("GET", "/filings", k.a, params={"limit": most})["items"]) == 1


# -- Idempotency-Key ----------------------------------------------------------------------------


def test_an_idempotent_replay_returns_the_stored_answer_and_creates_one_filing(
    http: Http, k: Keys, engine: FilingEngine
) -> None:
    first = http.post("/filings", k.a, json=k1_body(), idem="create-A-0001")
    replay = http.post("/filings", k.a, json=k1_body(), idem="create-A-0001")
    other_body = http.post(
        "/filings", k.a, json=k1_body(treatment_region="440100"), idem="create-A-0001"
    )
    bad_key = http.post("/filings", k.a, json=k1_body(), idem="short")

    assert first.status_code == replay.status_code == 201
    assert replay.json() == first.json() and replay.headers["etag"] == first.headers["etag"]
    assert replay.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert (problem(other_body, 422)["code"], other_body.json()["field"]) == (
        "idempotency_key_reused",
        "Idempotency-Key",
    )
    assert problem(bad_key, 422)["field"] == "Idempotency-Key"
    assert count(engine, "SELECT COUNT(*) FROM filing_record") == 1


def test_a_draft_a_rule_refuses_is_recorded_stored_with_its_answer_and_replayed(
    http: Http, k: Keys, engine: FilingEngine
) -> None:
    body = k1_body(kind="K6", by_commitment=True, documents=["identity"])

    first = http.post("/filings", k.a, json=body, idem="refused-0001")
    again = http.post("/filings", k.a, json=body, idem="refused-0001")

    # The refusal is on the record (a denied create under the request id, naming the rule
    # and the key's person masked), and its answer committed with it: a replay is that answer.
    assert problem(first, 422)["field"] == "by_commitment" and first.json()["rule_id"] == "V6"
    [record] = audit_of(engine, first.headers["x-request-id"])
    assert (record["event"], record["outcome"], record["rule_id"]) == ("create", "denied", "V6")
    assert record["inputs"]["person_masked"] == "3502**********123X"
    assert A_ID not in json.dumps(record, default=str)
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert count(engine, "SELECT COUNT(*) FROM filing_record") == 0
    assert count(engine, "SELECT COUNT(*) FROM idempotency_record") == 1


def test_a_malformed_request_under_an_idempotency_key_is_not_stored_and_is_judged_again(
    http: Http, k: Keys, engine: FilingEngine
) -> None:
    body = k1_body(start_date="the first of March")
    before = records(engine)

    first = http.post("/filings", k.a, json=body, idem="malformed-0001")
    again = http.post("/filings", k.a, json=body, idem="malformed-0001")

    # A malformed request names no rule: nothing is written or kept (as with Stripe's keys,
    # only a request that ran is replayed), so it is judged again and refused the same way.
    assert problem(first, 422)["field"] == problem(again, 422)["field"]
    assert "idempotent-replayed" not in again.headers
    assert records(engine) == before
    assert count(engine, "SELECT COUNT(*) FROM idempotency_record") == 0


def test_the_same_idempotency_key_of_another_caller_is_another_request(
    http: Http, k: Keys, engine: FilingEngine
) -> None:
    mine = http.post("/filings", k.a, json=k1_body(), idem="shared-key-1")
    theirs = http.post("/filings", k.xm, json=k1_body(), idem="shared-key-1")
    theirs_again = http.post("/filings", k.xm, json=k1_body(), idem="shared-key-1")

    assert mine.status_code == theirs.status_code == 201
    assert theirs.json()["id"] != mine.json()["id"]
    assert theirs.json()["filed_by"] == f"key:{key_id(k.xm)}"
    assert "idempotent-replayed" not in theirs.headers
    assert theirs_again.json() == theirs.json()
    assert count(engine, "SELECT COUNT(*) FROM filing_record") == 2


def test_an_admission_and_a_change_take_an_idempotency_key(
    http: Http, k: Keys, engine: FilingEngine, clock: Clock
) -> None:
    body = admission_body(D_ID, H2, XIAMEN_GZ, date(2026, 3, 2))
    adm = [http.post("/admissions", k.h2, json=body, idem="admit-0001") for _ in range(2)]
    filing = act(http, k.a, created(http, k.a, k1_body()), "submit")
    clock.advance(days=95)
    change = [
        http.post(
            f"/filings/{filing['id']}/change",
            k.a,
            if_match='"2"',
            idem="chg-0001",
            json=k1_body(treatment_region="440100"),
        )
        for _ in range(2)
    ]

    assert adm[0].status_code == adm[1].status_code == 201 and adm[1].json() == adm[0].json()
    assert count(engine, "SELECT COUNT(*) FROM admission_record") == 1
    assert change[0].status_code == change[1].status_code == 201
    assert change[1].json() == change[0].json()
    assert change[1].headers["idempotent-replayed"] == "true"
    assert count(engine, "SELECT COUNT(*) FROM filing_record") == 2


def test_a_refused_change_is_stored_with_its_refusal_and_replayed_without_a_second_attempt(
    http: Http, k: Keys, engine: FilingEngine
) -> None:
    filing = act(http, k.a, created(http, k.a, k1_body()), "submit")  # V2: locked 3 months

    def change() -> httpx.Response:
        return http.post(
            f"/filings/{filing['id']}/change",
            k.a,
            if_match='"2"',
            idem="chg-locked-01",
            json=k1_body(treatment_region="440100"),
        )

    first, replay = change(), change()

    assert problem(first, 409)["rule_id"] == "V2"
    assert replay.json() == first.json()  # the same request id: the stored answer itself
    assert replay.headers["idempotent-replayed"] == "true"
    denied = count(
        engine,
        "SELECT COUNT(*) FROM audit_record WHERE event = 'change' AND outcome = 'denied'",
    )
    assert denied == 1  # the refusal and its answer committed together, once
    assert count(engine, "SELECT COUNT(*) FROM idempotency_record") == 1


def test_concurrent_duplicates_of_an_idempotent_request_create_one_filing(
    any_engine: FilingEngine,
) -> None:
    engine = any_engine
    a = issue(engine, "insured", "person A", id_number=A_ID, channel="mini_program")
    with served(create_app(engine)) as base:

        def create() -> httpx.Response:
            with httpx.Client(base_url=base, timeout=60) as client:
                return Http(client).post("/filings", a, json=k1_body(), idem="same-0000001")

        answers = race(*[create for _ in range(10)])

    statuses = sorted(r.status_code for r in answers)
    assert count(engine, "SELECT COUNT(*) FROM filing_record") == 1
    [the_id] = {r.json()["id"] for r in answers if r.status_code == 201}
    firsts = [r for r in answers if r.status_code == 201 and "idempotent-replayed" not in r.headers]
    assert len(firsts) == 1 and set(statuses) <= {201, 409}
    for r in answers:
        if r.status_code == 409:
            assert problem(r, 409)["code"] == "request_in_progress"
    assert the_id


# -- If-Match -----------------------------------------------------------------------------------


def test_a_transition_without_if_match_is_a_428_and_a_stale_one_a_412_changing_nothing(
    http: Http, k: Keys, engine: FilingEngine
) -> None:
    draft = created(http, k.a, k1_body())
    before = records(engine)

    missing = http.post(f"/filings/{draft['id']}/submit", k.a)
    stale = http.post(f"/filings/{draft['id']}/submit", k.a, if_match='"7"')
    garbage = http.post(f"/filings/{draft['id']}/submit", k.a, if_match="yesterday")
    adm = http.ok(
        "POST", "/admissions", k.h2, json=admission_body(D_ID, H2, XIAMEN_GZ, date(2026, 3, 2))
    )
    after_admit = records(engine)
    no_adm_match = http.post(
        f"/admissions/{adm['id']}/discharge", k.h2, json={"discharged_on": "2026-03-02"}
    )
    stale_adm = http.post(
        f"/admissions/{adm['id']}/discharge",
        k.h2,
        if_match='"5"',
        json={"discharged_on": "2026-03-02"},
    )

    assert problem(missing, 428)["code"] == "precondition_required"
    stale_problem = problem(stale, 412)
    assert stale_problem["code"] == "stale_version" and stale_problem["rule_id"] == "R1"
    assert stale_problem["inputs"] == {"expected_version": 7, "actual_version": 1}
    assert problem(garbage, 412)["code"] == "stale_version"
    assert problem(no_adm_match, 428) and problem(stale_adm, 412)
    # The admission and its record; the stale submit's denied record was before it.
    assert after_admit == (before[0], before[1] + 1, before[2] + 2)
    # Each stale attempt is on the record (R1), under its request id; nothing else changed.
    assert records(engine) == (after_admit[0], after_admit[1], after_admit[2] + 1)
    for answer in (stale, stale_adm):
        [record] = audit_of(engine, answer.headers["x-request-id"])
        assert (record["outcome"], record["rule_id"]) == ("denied", "R1")
    assert http.ok("GET", f"/filings/{draft['id']}", k.a)["state"] == "draft"
    anyway = http.post(f"/filings/{draft['id']}/submit", k.a, if_match="*")
    assert anyway.status_code == 200 and anyway.json()["state"] == "effective"


def test_twenty_concurrent_transitions_at_one_version_apply_exactly_once(
    any_engine: FilingEngine,
) -> None:
    engine = any_engine
    a = issue(engine, "insured", "person A", id_number=A_ID, channel="mini_program")
    app = create_app(engine)
    with TestClient(app) as client:
        draft = created(Http(client), a, k1_body())

    with served(app) as base:

        def submit() -> httpx.Response:
            with httpx.Client(base_url=base, timeout=60) as client:
                return Http(client).post(f"/filings/{draft['id']}/submit", a, if_match='"1"')

        answers = race(*[submit for _ in range(20)])

    assert sorted(r.status_code for r in answers) == [200] + [412] * 19
    assert all(problem(r, 412)["code"] == "stale_version" for r in answers if r.status_code == 412)
    applied = [
        h
        for h in engine.history(draft["id"])
        if h["event"] == "submit" and h["outcome"] == "applied"
    ]
    assert len(applied) == 1
    stale = [h for h in engine.history(draft["id"]) if h["rule_id"] == "R1"]
    assert len(stale) == 19 and all(h["outcome"] == "denied" for h in stale)
    assert {h["request_id"] for h in stale} == {
        r.headers["x-request-id"] for r in answers if r.status_code == 412
    }
    [winner] = [r for r in answers if r.status_code == 200]
    assert applied[0]["request_id"] == winner.headers["x-request-id"]
    assert engine.get(draft["id"]).version == 2


def test_of_two_concurrent_cancels_with_one_if_match_one_applies_and_one_is_on_record(
    any_engine: FilingEngine, clock: Clock
) -> None:
    engine = any_engine
    a = issue(engine, "insured", "person A", id_number=A_ID, channel="mini_program")
    app = create_app(engine)
    with TestClient(app) as client:
        filing = act(Http(client), a, created(Http(client), a, k1_body()), "submit")
    clock.advance(days=95)  # past Xiamen's three-month lock (V2)

    with served(app) as base:

        def cancel() -> httpx.Response:
            with httpx.Client(base_url=base, timeout=60) as client:
                return Http(client).post(
                    f"/filings/{filing['id']}/cancel", a, if_match='"2"', json={}
                )

        answers = race(cancel, cancel)

    assert sorted(r.status_code for r in answers) == [200, 412]
    [loser] = [r for r in answers if r.status_code == 412]
    assert problem(loser, 412)["inputs"] == {"expected_version": 2, "actual_version": 3}
    cancels = [
        (h["outcome"], h["rule_id"], h["request_id"])
        for h in engine.history(filing["id"])
        if h["event"] == "cancel"
    ]
    assert sorted(c[:2] for c in cancels) == [("applied", "L4"), ("denied", "R1")]
    assert ("denied", "R1", loser.headers["x-request-id"]) in cancels


# -- limits -------------------------------------------------------------------------------------


def test_a_body_over_the_limit_is_a_413_whether_it_states_its_length_or_streams(
    http: Http, k: Keys, engine: FilingEngine
) -> None:
    limit = engine.settings.http.max_body_bytes
    padding = "x" * (limit + 10)
    before = records(engine)

    stated = http.post("/filings", k.a, json={**k1_body(), "note": padding})

    def chunks() -> Iterator[bytes]:
        blob = json.dumps({**k1_body(), "note": padding}).encode()
        for i in range(0, len(blob), 4096):
            yield blob[i : i + 4096]

    streamed = http.client.post(
        "/filings",
        content=chunks(),
        headers={"Authorization": f"Bearer {k.a}", "Content-Type": "application/json"},
    )
    nothing_written = records(engine) == before
    just_under = http.post("/filings", k.a, json=k1_body())

    assert "content-length" not in streamed.request.headers
    assert streamed.request.headers["transfer-encoding"] == "chunked"
    for r in (stated, streamed):
        assert problem(r, 413)["code"] == "too_large" and str(limit) in r.json()["detail"]
    assert nothing_written
    assert just_under.status_code == 201


def test_a_key_past_the_rate_limit_gets_429_with_retry_after(
    open_engine: Callable[..., FilingEngine], sqlite_url: str, settings: Settings
) -> None:
    engine = open_engine(
        sqlite_url,
        settings=roomy(settings, rate_limit="3/minute", anonymous_rate_limit="2/minute"),
    )
    a = issue(engine, "insured", "person A", id_number=A_ID)
    b = issue(engine, "insured", "person B", id_number=B_ID)
    http = Http(TestClient(create_app(engine)))

    answers = [http.get("/filings", a) for _ in range(4)]
    others = http.get("/filings", b)
    anonymous = [http.get("/filings", "fk_nope") for _ in range(4)]

    assert [r.status_code for r in answers] == [200, 200, 200, 429]
    limited = problem(answers[3], 429)
    assert limited["code"] == "rate_limited"
    assert 1 <= int(answers[3].headers["retry-after"]) <= 60
    assert others.status_code == 200  # per key
    # Per client address, at the lower rate of calls without a valid key.
    assert [r.status_code for r in anonymous] == [401, 401, 429, 429]


@pytest.mark.parametrize(
    ("http_table", "key"),
    [
        ({"rate_limit": "lots"}, "http.rate_limit"),
        ({"anonymous_rate_limit": "often"}, "http.anonymous_rate_limit"),
        ({"rate_limit": ""}, "http.rate_limit"),
        ({"max_page_size": 0}, "http.max_page_size"),
        ({"max_page_size": "500"}, "http.max_page_size"),
        ({"default_page_size": 600, "max_page_size": 500}, "http.default_page_size"),
        ({"max_body_bytes": 10}, "http.max_body_bytes"),
        ({"idempotency_hours": True}, "http.idempotency_hours"),
        ({"page_size": 5}, "http"),
    ],
)
def test_a_bad_http_section_is_refused_naming_its_key(http_table: dict[str, Any], key: str) -> None:
    raw = tomllib.loads((ROOT / "config.toml").read_text(encoding="utf-8"))
    raw["http"] = http_table
    assert settings_from_mapping({k: v for k, v in raw.items() if k != "http"}, environ={})

    with pytest.raises(PolicyConfigError) as refused:
        settings_from_mapping(raw, environ={})

    assert refused.value.key.startswith(key)


def test_the_http_section_of_config_toml_sets_the_limits_the_api_applies(
    tmp_path: Path, clock: Clock
) -> None:
    text = (ROOT / "config.toml").read_text(encoding="utf-8")
    text = text.replace('rate_limit = "50/second"', 'rate_limit = "100/second"')
    text = text.replace("max_page_size = 500", "max_page_size = 4")
    text = text.replace("default_page_size = 50", "default_page_size = 2")
    (tmp_path / "config.toml").write_text(text, encoding="utf-8")
    settings = load_settings(tmp_path / "config.toml", environ={"FILING_PERSON_KEY": "k"})
    engine = FilingEngine.open(
        database_url=f"sqlite:///{tmp_path}/t.db", settings=settings, clock=clock
    )
    try:
        admin = issue(engine, "administrator", "operator")
        http = Http(TestClient(create_app(engine)))
        for n in range(3):
            created(http, admin, jiangmen_body(id_number(n, "440703", "20000101")))

        default = http.ok("GET", "/filings", admin)
        too_many = http.get("/filings", admin, params={"limit": 5})
    finally:
        engine.close()

    assert (settings.http.max_page_size, settings.http.default_page_size) == (4, 2)
    assert len(default["items"]) == 2 and default["next_cursor"]
    assert problem(too_many, 422)["field"] == "limit"


# -- keys ---------------------------------------------------------------------------------------


def test_a_missing_malformed_unknown_or_revoked_key_is_a_401_and_is_audited(
    http: Http, k: Keys, engine: FilingEngine
) -> None:
    from workflow import keys

    revoked = issue(engine, "insured", "lost phone", id_number=A_ID)
    assert http.get("/filings", revoked).status_code == 200
    keys.revoke(engine.store, key_id(revoked), engine.clock())
    forged_secret = k.a[: k.a.rindex("_") + 1] + "A" * 43
    unknown = "fk_0123456789ab_" + "A" * 43

    answers = {
        "revoked": http.get("/filings", revoked),
        "none": http.get("/filings", None),
        "malformed": http.get("/filings", "not-a-key"),
        "unknown": http.get("/filings", unknown),
        "wrong secret": http.get("/filings", forged_secret),
        "basic": http.get("/filings", None, headers={"Authorization": f"Basic {k.a}"}),
    }

    for name, r in answers.items():
        body = problem(r, 401)
        assert (body["code"], body["rule_id"]) == ("not_authenticated", "A1"), name
        assert r.headers["www-authenticate"] == "Bearer"
        [record] = audit_of(engine, body["request_id"])
        assert (record["event"], record["outcome"], record["actor_id"], record["rule_id"]) == (
            "access",
            "denied",
            "anonymous",
            "A1",
        ), name
        assert record["inputs"] == {"route": "GET /filings", "status": 401, "key_id": None}
        assert k.a.split("_")[-1] not in json.dumps(record, default=str)


def test_filing_keys_issue_list_and_revoke_from_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: Clock
) -> None:
    monkeypatch.setenv("FILING_CONFIG", str(ROOT / "config.toml"))
    monkeypatch.setenv("FILING_PERSON_KEY", "cli-keys-test")
    url = f"sqlite:///{tmp_path}/keys.db"

    def filing(*args: str) -> Result:
        result = CliRunner().invoke(cli_app, [*args, "--database-url", url])
        # The command pointed the logs at its captured stderr, closed now.
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()
        return result

    issued = filing(
        "keys",
        "issue",
        "--role",
        "insured",
        "--label",
        "A's app",
        "--id-number",
        A_ID,
        "--channel",
        "mini_program",
    )
    officer = filing(
        "keys",
        "issue",
        "--role",
        "officer",
        "--label",
        "XM",
        "--organisation",
        "XM",
        "--region",
        "350200",
        "--region",
        "350100",
        "--token-only",
    )
    assert issued.exit_code == 0 and officer.exit_code == 0, issued.output + officer.output
    shown = json.loads(issued.stdout)
    token, officer_token = shown["key"], officer.stdout.strip()
    assert (shown["role"], shown["person"], shown["channel"]) == (
        "insured",
        "3502**********123X",
        "mini_program",
    )
    assert token.startswith(f"fk_{shown['id']}_") and officer_token.startswith("fk_")
    assert "not shown again" in issued.stderr

    listed = filing("keys", "list")
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert {r["role"] for r in rows} == {"insured", "officer"}
    assert [r["regions"] for r in rows if r["role"] == "officer"] == [["350100", "350200"]]
    for secret in (token.split("_", 2)[2], officer_token.split("_", 2)[2]):
        assert secret not in listed.output
        assert hashlib.sha256(secret.encode()).hexdigest() not in listed.output
    assert A_ID not in listed.output and "secret" not in listed.output

    settings = load_settings(ROOT / "config.toml", environ={"FILING_PERSON_KEY": "cli-keys-test"})
    engine = FilingEngine.open(database_url=url, settings=roomy(settings), clock=clock)
    try:
        http = Http(TestClient(create_app(engine)))
        assert http.post("/filings", token, json=k1_body()).status_code == 201
        revoked = filing("keys", "revoke", shown["id"])
        after = http.get("/filings", token)
        still = http.get("/filings", officer_token)
        again = filing("keys", "revoke", shown["id"])
        unknown = filing("keys", "revoke", "ffffffffffff")
        relisted = filing("keys", "list")
    finally:
        engine.close()

    assert revoked.exit_code == 0 and json.loads(revoked.stdout) == {
        "id": shown["id"],
        "revoked": True,
    }
    assert problem(after, 401)["code"] == "not_authenticated"
    assert still.status_code == 200
    assert again.exit_code == 0 and unknown.exit_code != 0
    [row] = [json.loads(x) for x in relisted.stdout.splitlines() if shown["id"] in x]
    assert row["revoked_at"] is not None

    from_stdin = CliRunner().invoke(
        cli_app,
        ["keys", "issue", "--role", "insured", "--label", "A again", "--id-number", "-",
         "--database-url", url],
        input=f"{A_ID}\n",
    )  # fmt: skip
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()
    assert from_stdin.exit_code == 0, from_stdin.output
    assert json.loads(from_stdin.stdout)["person"] == "3502**********123X"

    unscoped = filing("keys", "issue", "--role", "auditor", "--label", "audit")
    national = filing("keys", "issue", "--role", "auditor", "--label", "audit", "--all-regions")
    assert unscoped.exit_code == 2 and "regions" in unscoped.output
    assert national.exit_code == 0 and json.loads(national.stdout)["regions"] == "all"


def test_a_key_issued_with_a_bad_scope_is_refused(engine: FilingEngine) -> None:
    from states.errors import InvalidInput

    # A5: what a key must state when issued; never a filing rule (L7, K8) for a key's scope.
    cases: list[tuple[dict[str, Any], str]] = [
        ({"role": "system"}, "role"),
        ({"role": "clerk"}, "role"),
        ({"role": "insured"}, "id_number"),  # names no person
        ({"role": "officer", "organisation": "XM"}, "regions"),  # no regions
        ({"role": "hospital"}, "organisation"),  # no organisation
        ({"role": "hospital", "organisation": H1, "regions": ("440100",)}, "regions"),
        ({"role": "officer", "organisation": "XM", "regions": ("999999",)}, "regions"),
        ({"role": "auditor", "id_number": A_ID}, "id_number"),
        ({"role": "auditor"}, "regions"),  # every region only when asked for
        ({"role": "auditor", "regions": ("440700",), "all_regions": True}, "all_regions"),
        ({"role": "hospital", "organisation": H1, "all_regions": True}, "regions"),
    ]
    for case, field in cases:
        with pytest.raises(InvalidInput) as caught:
            issue(engine, label="x", **case)
        assert (caught.value.field, caught.value.rule_id) == (field, "A5"), case
    assert count(engine, "SELECT COUNT(*) FROM api_key_record") == 0


def test_the_deadline_of_a_claim_lapses_it_when_fired_by_an_administrator(
    http: Http, k: Keys, clock: Clock
) -> None:
    adm = http.ok(
        "POST", "/admissions", k.h2, json=admission_body(D_ID, H2, XIAMEN_GZ, date(2026, 3, 2))
    )
    out = http.ok(
        "POST",
        f"/admissions/{adm['id']}/discharge",
        k.xm,
        if_match='"1"',
        json={"discharged_on": "2026-03-02"},
    )
    claim = http.ok("GET", f"/claims/{out['admission']['claim_id']}", k.xm)
    clock.now = datetime.fromisoformat(claim["due_at"]) + timedelta(seconds=1)

    fired = http.ok(
        "POST",
        "/deadlines/fire",
        k.admin,
        json={"subject_id": claim["id"], "kind": "claim_due", "due_at": claim["due_at"]},
    )
    twice = http.ok(
        "POST",
        "/deadlines/fire",
        k.admin,
        json={"subject_id": claim["id"], "kind": "claim_due", "due_at": claim["due_at"]},
    )

    assert fired == {"result": "fired"} and twice == {"result": None}
    assert http.ok("GET", f"/claims/{claim['id']}", k.d)["status"] == "lapsed"


def test_an_instant_without_an_offset_is_read_as_utc(
    http: Http, k: Keys, engine: FilingEngine
) -> None:
    created(http, k.a, k1_body())

    naive = http.ok("GET", "/audit", k.admin, params={"since": "2026-03-01T00:00:00"})
    aware = http.ok("GET", "/audit", k.admin, params={"since": "2026-03-01T00:00:00Z"})

    assert naive == aware and naive["items"]


def test_an_unexpected_failure_is_a_bare_500_logged_with_its_request_id(
    http: Http, k: Keys, engine: FilingEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> None:
        raise RuntimeError("35020319900101123X leaked by a driver")

    monkeypatch.setattr(engine, "checkpoint", broken)
    with structlog.testing.capture_logs() as logs:
        r = http.get("/audit/checkpoint", k.admin)

    body = problem(r, 500)
    assert body["code"] == "internal" and "35020319900101123X" not in r.text
    [line] = [e for e in logs if e["event"] == "http.unexpected_error"]
    assert line["request_id"] == body["request_id"] == r.headers["x-request-id"]
    assert any(f.endswith(" broken") for f in line["frames"])
    assert "35020319900101123X" not in str(line)


def test_answers_past_their_time_are_purged_by_a_later_idempotent_request(
    http: Http, k: Keys, engine: FilingEngine, clock: Clock
) -> None:
    http.post("/filings", k.a, json=k1_body(), idem="old-answer-01")
    clock.advance(hours=engine.settings.http.idempotency_hours, minutes=2)

    fresh = http.post("/filings", k.b, json=k1_body(B_ID), idem="new-answer-01")

    assert fresh.status_code == 201, fresh.text
    with engine.store.read() as tx:
        rows = tx.all("SELECT created_at FROM idempotency_record")
    assert [r["created_at"] for r in rows] == [clock()]  # the old answer is gone
