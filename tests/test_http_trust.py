"""Access over HTTP that gives nothing away: a hospital acts only for its own code (A4), an
agency stops insurance only where it serves and answers alike either way, the whole-chain
verify is the administrator's and runs one at a time (A2), reasons and notes hold no personal
data, and every route checks the key (A1) and the role (A2) before it judges any input."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from tests.http_world import (
    B_ID,
    C_ID,
    D_ID,
    H1,
    H2,
    JIANGMEN,
    XIAMEN_GZ,
    Http,
    Keys,
    admission_body,
    audit_of,
    count,
    etag_of,
    issue,
    issue_keys,
    jiangmen_body,
    k1_body,
    problem,
    roomy,
    served,
)
from workflow import FilingEngine
from workflow.config import Settings
from workflow.http import create_app
from workflow.http.app import allowed_roles


@pytest.fixture
def engine(
    open_engine: Callable[..., FilingEngine], db_url: str, settings: Settings
) -> FilingEngine:
    """On SQLite, then on PostgreSQL."""
    return open_engine(db_url, settings=roomy(settings))


@pytest.fixture
def k(engine: FilingEngine) -> Keys:
    return issue_keys(engine)


@pytest.fixture
def http(engine: FilingEngine) -> Iterator[Http]:
    with TestClient(create_app(engine)) as client:
        yield Http(client)


def denial_of(engine: FilingEngine, r: httpx.Response) -> dict[str, Any]:
    [record] = audit_of(engine, r.json()["request_id"])
    assert (record["event"], record["outcome"]) == ("access", "denied")
    return record


def filed(http: Http, token: str, body: dict[str, Any]) -> dict[str, Any]:
    """A filing made and submitted: effective (Xiamen, online) or under review (Jiangmen)."""
    made = http.ok("POST", "/filings", token, json=body)
    return dict(http.ok("POST", f"/filings/{made['id']}/submit", token, if_match=etag_of(1)))


# -- A4: a hospital acts only for itself ------------------------------------------------------


def test_a_hospital_key_recording_an_admission_for_another_hospital_is_refused_a4(
    http: Http, k: Keys, engine: FilingEngine
) -> None:
    body = admission_body(D_ID, H2, XIAMEN_GZ, date(2026, 3, 2))

    other = http.post("/admissions", k.h1, json=body)
    own = http.post("/admissions", k.h2, json=body)

    assert problem(other, 403)["rule_id"] == "A4"
    assert denial_of(engine, other)["rule_id"] == "A4"
    assert own.status_code == 201, own.text
    assert count(engine, "SELECT COUNT(*) FROM admission_record") == 1


# -- stopping insurance within the key's regions ----------------------------------------------


def test_stopping_insurance_answers_alike_whether_or_not_the_person_has_filings_elsewhere(
    http: Http, k: Keys, engine: FilingEngine
) -> None:
    jiangmen = filed(http, k.c, jiangmen_body(C_ID))  # under review in Jiangmen
    before = engine.checkpoint().count

    has_elsewhere = http.post(
        "/persons/stop-insurance", k.xm, json={"id_number": C_ID, "insurance_type": "employee"}
    )
    has_none = http.post(
        "/persons/stop-insurance", k.xm, json={"id_number": B_ID, "insurance_type": "employee"}
    )

    assert (has_elsewhere.status_code, has_elsewhere.json()) == (200, [])
    assert (has_none.status_code, has_none.json()) == (200, [])
    assert engine.get(jiangmen["id"]).state.value == "submitted"
    assert engine.checkpoint().count == before  # nothing lapsed, nothing to record


def test_an_officer_stops_only_the_filings_insured_in_its_regions(
    http: Http, k: Keys, engine: FilingEngine
) -> None:
    c = issue(engine, "insured", "person C online", id_number=C_ID, channel="mini_program")
    in_xiamen = filed(http, c, k1_body(C_ID))  # C insured in Xiamen too: effective at once
    in_jiangmen = filed(http, k.c, jiangmen_body(C_ID))

    lapsed = http.ok(
        "POST",
        "/persons/stop-insurance",
        k.xm,
        json={"id_number": C_ID, "insurance_type": "employee"},
    )

    assert [f["id"] for f in lapsed] == [in_xiamen["id"]]
    assert engine.get(in_xiamen["id"]).state.value == "lapsed"
    assert engine.get(in_jiangmen["id"]).state.value == "submitted"


# -- A2: the whole-chain verify ---------------------------------------------------------------


def test_the_whole_chain_verify_is_the_administrators_a2(
    http: Http, k: Keys, engine: FilingEngine
) -> None:
    national = issue(engine, "auditor", "national auditor", all_regions=True)

    regional = http.post("/audit/verify", k.auditor)
    everywhere = http.post("/audit/verify", national)
    admin = http.ok("POST", "/audit/verify", k.admin)

    assert problem(regional, 403)["rule_id"] == "A2"
    assert denial_of(engine, regional)["rule_id"] == "A2"
    assert problem(everywhere, 403)["rule_id"] == "A2"
    assert admin["ok"] is True


def test_one_whole_chain_verify_runs_at_a_time_and_others_are_told_when_to_retry(
    engine: FilingEngine, k: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    walking, release = threading.Event(), threading.Event()
    real_verify = engine.verify

    def slow_verify(*args: Any, **kw: Any) -> Any:
        walking.set()
        assert release.wait(timeout=30)
        return real_verify(*args, **kw)

    monkeypatch.setattr(engine, "verify", slow_verify)
    with served(create_app(engine)) as base, httpx.Client(base_url=base, timeout=60) as client:
        http = Http(client)
        with ThreadPoolExecutor(max_workers=1) as pool:
            first = pool.submit(http.post, "/audit/verify", k.admin)
            assert walking.wait(timeout=30)

            second = http.post("/audit/verify", k.admin)
            release.set()
            first_done = first.result(timeout=60)
        third = http.post("/audit/verify", k.admin)

    assert problem(second, 429)["code"] == "busy"
    assert int(second.headers["retry-after"]) >= 1
    assert first_done.status_code == 200 and first_done.json()["ok"] is True
    assert third.status_code == 200  # the lock was let go


# -- reasons and notes over HTTP --------------------------------------------------------------


def test_a_rejection_with_an_id_number_for_its_reason_or_in_its_note_is_a_422_storing_none(
    http: Http, k: Keys, engine: FilingEngine
) -> None:
    filing = filed(http, k.c, jiangmen_body(C_ID))
    before = engine.checkpoint().count
    path, version = f"/filings/{filing['id']}/reject", etag_of(filing["version"])

    as_reason = http.post(path, k.jm, json={"reason": f"r{D_ID}"}, if_match=version)
    in_note = http.post(path, k.jm, json={"reason": "other", "note": f"r{D_ID}"}, if_match=version)
    rejected = http.ok(
        "POST", path, k.jm, json={"reason": "other", "note": "审核未通过"}, if_match=version
    )

    assert (problem(as_reason, 422)["field"], as_reason.json()["rule_id"]) == ("reason", "L1")
    assert (problem(in_note, 422)["field"], in_note.json()["rule_id"]) == ("note", "L1")
    assert D_ID not in as_reason.text + in_note.text
    assert (rejected["reason"], rejected["note"]) == ("other", "审核未通过")
    # The two refusals are on the record, without the number; then the rejection.
    for r in (as_reason, in_note):
        [record] = audit_of(engine, r.json()["request_id"])
        assert (record["outcome"], record["rule_id"]) == ("denied", "L1")
        assert D_ID not in json.dumps(record, default=str)
    assert engine.checkpoint().count == before + 3
    history = http.ok("GET", f"/filings/{filing['id']}/history", k.jm)["items"]
    assert history[-1]["inputs"]["note"] == "审核未通过"


# -- authentication, then the role, then the input --------------------------------------------

INVALID_HEADERS = {"Idempotency-Key": "!", "If-Match": "W/nonsense"}


def _routes(engine: FilingEngine) -> list[tuple[str, str, frozenset[str] | None, bool]]:
    """(method, path, roles, takes a body) of every route of the app."""
    found = []
    for route in create_app(engine).routes:
        if isinstance(route, APIRoute):
            roles = allowed_roles(route)
            names = frozenset(r.value for r in roles) if roles is not None else None
            for method in sorted(route.methods or ()):
                found.append((method, route.path, names, route.body_field is not None))
    return sorted(found)


def _garbage(path: str) -> tuple[str, dict[str, str]]:
    """The path with every parameter filled with nonsense, and a query of nonsense."""
    filled = path
    while "{" in filled:
        start, end = filled.index("{"), filled.index("}")
        filled = filled[:start] + "not-a-number" + filled[end + 1 :]
    junk = "x" * 300
    params = {n: junk for n in ("since", "until", "limit", "cursor", "state", "region", "day")}
    return filled, params | {"filing_id": junk, "insured_region": junk, "event": junk}


def test_every_route_but_health_declares_the_roles_it_admits(engine: FilingEngine) -> None:
    undeclared = [(m, p) for m, p, roles, _ in _routes(engine) if roles is None]

    assert undeclared == [("GET", "/health")]


@pytest.mark.parametrize("body", ["not json", "wrong fields"])
def test_a_role_that_may_not_call_a_route_gets_403_whatever_its_input(
    http: Http, k: Keys, engine: FilingEngine, body: str
) -> None:
    holders = {"insured": k.a, "hospital": k.h1, "officer": k.jm, "auditor": k.auditor}
    checked = 0
    for method, path, roles, takes_body in _routes(engine):
        barred = [role for role in holders if roles is not None and role not in roles]
        if not barred:
            continue
        url, params = _garbage(path)
        content = b'{"id_number": ' if body == "not json" else b'{"state": "effective", "x": 1}'

        r = http.client.request(
            method,
            url,
            params=params,
            content=content if takes_body else None,
            headers={"Authorization": f"Bearer {holders[barred[0]]}",
                     "Content-Type": "application/json", **INVALID_HEADERS},
        )  # fmt: skip

        assert r.status_code == 403, (method, path, barred[0], r.text)
        assert problem(r, 403)["rule_id"] == "A2"
        assert denial_of(engine, r)["rule_id"] == "A2"
        checked += 1
    assert checked >= 15  # most routes bar some role


@pytest.mark.parametrize("body", ["not json", "wrong fields"])
def test_a_call_without_a_key_gets_401_whatever_its_input(
    http: Http, engine: FilingEngine, body: str
) -> None:
    for method, path, roles, takes_body in _routes(engine):
        if roles is None:
            continue
        url, params = _garbage(path)
        content = b'{"id_number": ' if body == "not json" else b'{"state": "effective", "x": 1}'

        r = http.client.request(
            method,
            url,
            params=params,
            content=content if takes_body else None,
            headers={"Content-Type": "application/json", **INVALID_HEADERS},
        )

        assert r.status_code == 401, (method, path, r.text)
        assert problem(r, 401)["rule_id"] == "A1"
        assert denial_of(engine, r)["rule_id"] == "A1"


def test_an_insured_key_on_the_audit_trail_gets_403_whatever_its_query(
    http: Http, k: Keys, engine: FilingEngine
) -> None:
    for query in ({"since": "yesterday"}, {"limit": "all"}, {"region": "x"}, {}):
        r = http.get("/audit", k.a, params=query)

        assert problem(r, 403)["code"] == "forbidden", query
    allowed = http.get("/audit", k.auditor, params={"since": "yesterday"})
    assert problem(allowed, 422)["field"] == "since"  # a caller who may call it hears why


def test_an_admission_for_another_region_is_still_judged_after_the_role(
    http: Http, k: Keys
) -> None:
    """The order does not hide a scope refusal: an officer outside the region is told A3."""
    r = http.post("/admissions", k.xm, json=admission_body(B_ID, H1, JIANGMEN, date(2026, 3, 2)))

    assert problem(r, 403)["rule_id"] == "A3"
