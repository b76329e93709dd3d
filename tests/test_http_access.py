"""The role × route matrix: every route that names an object, called by every key on every
object that key must not see, answers 404 (or 403 where the role may not call the route at
all), leaks nothing of the object, changes nothing, and is recorded as a denied access under
the request's id. Each key still sees its own objects, and lists hold nothing else."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from tests.conftest import Clock
from tests.http_world import (
    A_ID,
    B_ID,
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
    etag_of,
    issue,
    issue_keys,
    jiangmen_body,
    k1_body,
    key_id,
    problem,
    roomy,
)
from workflow import FilingEngine
from workflow.config import Settings
from workflow.http import create_app

INSURED, HOSPITAL, OFFICER, AUDITOR, ADMIN = (
    "insured",
    "hospital",
    "officer",
    "auditor",
    "administrator",
)
EVERYONE = frozenset({INSURED, HOSPITAL, OFFICER, AUDITOR, ADMIN})
AGENCY = frozenset({OFFICER, ADMIN})
CLAIM_DOCS = ["identity", "receipts", "itemised_list", "medical_record", "bank_account"]

# Every route that names an object, with the roles that may call it at all (README: who may
# act) and a valid body. A new route with an object id in its path must be added here.
ROUTES: dict[tuple[str, str], tuple[frozenset[str], Callable[[Obj], Any]]] = {}


@dataclass(frozen=True)
class Obj:
    name: str
    kind: str  # filing, admission, claim
    id: str
    person: str | None  # the ID number of its person, for bodies that name one
    masked: str | None


def _route(method: str, path: str, roles: frozenset[str], body: Any = None) -> None:
    def fixed(_o: Obj) -> Any:
        return body

    ROUTES[(method, path)] = (roles, body if callable(body) else fixed)


def _change_body(o: Obj) -> dict[str, Any]:
    person = o.person or A_ID
    return k1_body(person) if person in (A_ID, D_ID) else jiangmen_body(person)


F, A, C = "/filings/{filing_id}", "/admissions/{admission_id}", "/claims/{claim_id}"
_route("GET", F, EVERYONE)
_route("POST", f"{F}/submit", frozenset({INSURED, HOSPITAL, OFFICER, ADMIN}))
_route("POST", f"{F}/approve", AGENCY)
_route("POST", f"{F}/reject", AGENCY, {"reason": "missing_documents"})
_route("POST", f"{F}/withdraw", frozenset({INSURED, OFFICER, ADMIN}))
_route("POST", f"{F}/cancel", frozenset({INSURED, OFFICER, ADMIN}), {"reason": "moved_home"})
_route(
    "POST",
    f"{F}/supply-documents",
    frozenset({INSURED, OFFICER, ADMIN}),
    {"documents": ["household_register", "residence_proof"]},
)
_route("POST", f"{F}/stop-insurance", AGENCY)
_route("POST", f"{F}/expire", frozenset({ADMIN}))
_route("POST", f"{F}/stamp", frozenset({HOSPITAL, ADMIN}))
_route("POST", f"{F}/change", frozenset({INSURED, OFFICER, ADMIN}), _change_body)
_route("GET", f"{F}/history", EVERYONE)
_route("GET", f"{F}/deadlines", EVERYONE)
_route("GET", f"{F}/policy", EVERYONE)
_route("GET", f"{F}/reminders", EVERYONE)
_route("GET", A, EVERYONE)
_route(
    "POST", f"{A}/discharge", frozenset({HOSPITAL, OFFICER, ADMIN}), {"discharged_on": "2026-03-05"}
)
_route(
    "POST",
    f"{A}/request-extension",
    frozenset({INSURED, HOSPITAL, OFFICER, ADMIN}),
    {"documents": ["continued_stay_certificate"]},
)
_route("POST", f"{A}/grant-extension", AGENCY)
_route("POST", f"{A}/refuse-extension", AGENCY)
_route("GET", f"{A}/coverage", EVERYONE - {AUDITOR})
_route("GET", f"{A}/history", EVERYONE)
_route("GET", C, EVERYONE)
_route("POST", f"{C}/file", frozenset({INSURED, OFFICER, ADMIN}), {"documents": CLAIM_DOCS})

PARAM = {"filing": "{filing_id}", "admission": "{admission_id}", "claim": "{claim_id}"}
ROLE_OF = {
    "a": INSURED,
    "b": INSURED,
    "h1": HOSPITAL,
    "h2": HOSPITAL,
    "xm": OFFICER,
    "jm": OFFICER,
    "auditor": AUDITOR,
    "admin": ADMIN,
}

# Who sees what: insured persons their own; hospitals their admissions and the filings tied to
# them or that they acted on; agencies and auditors what is insured in their regions.
OBJECTS = ("fa", "deemed", "retro", "referral", "adm1", "adm2", "claim2")
VISIBLE = {
    "a": {"fa"},
    "b": {"deemed", "retro", "adm1"},
    "h1": {"deemed", "retro", "referral", "adm1"},
    "h2": {"adm2", "claim2"},
    "xm": {"fa", "adm2", "claim2"},
    "jm": {"deemed", "retro", "referral", "adm1"},
    "auditor": {"deemed", "retro", "referral", "adm1"},
    "admin": set(OBJECTS),
}


@dataclass
class World:
    engine: FilingEngine
    http: Http
    keys: Keys
    objects: dict[str, Obj]

    def token(self, holder: str) -> str:
        return str(getattr(self.keys, holder))

    def state(self, o: Obj) -> tuple[int, str]:
        """An object's version and state, read past the API."""
        if o.kind == "filing":
            f = self.engine.get(o.id)
            return f.version, f.state.value
        if o.kind == "admission":
            adm = self.engine.get_admission(o.id)
            return adm.version, f"{adm.status}/{adm.extension}/{adm.settlement}"
        claim = self.engine.get_claim(o.id)
        return claim.version, claim.status


@pytest.fixture
def world(
    open_engine: Callable[..., FilingEngine], sqlite_url: str, settings: Settings, clock: Clock
) -> Iterator[World]:
    """A's Xiamen filing (effective); B admitted by H1 as an emergency (deemed filing) and
    B's retro filing (submitted); H1's referral for E (a draft only H1 acted on); D admitted
    by H2 and discharged with a claim."""
    engine = open_engine(sqlite_url, settings=roomy(settings))
    k = issue_keys(engine)
    with TestClient(create_app(engine)) as client:
        http = Http(client)

        def post(path: str, token: str, **kw: Any) -> dict[str, Any]:
            data: dict[str, Any] = http.ok("POST", path, token, **kw)
            return data

        fa = post("/filings", k.a, json=k1_body())
        fa = post(f"/filings/{fa['id']}/submit", k.a, if_match='"1"')
        adm1 = post(
            "/admissions",
            k.h1,
            json=admission_body(B_ID, H1, JIANGMEN, date(2026, 3, 1), emergency=True),
        )
        retro = post("/filings", k.b, json=jiangmen_body(B_ID, "K5", admission_id=adm1["id"]))
        retro = post(f"/filings/{retro['id']}/submit", k.b, if_match='"1"')
        referral = post("/filings", k.h1, json=jiangmen_body(E_ID, "K4"))
        adm2 = post("/admissions", k.h2, json=admission_body(D_ID, H2, XIAMEN_GZ, date(2026, 3, 2)))
        out = post(
            f"/admissions/{adm2['id']}/discharge",
            k.h2,
            if_match='"1"',
            json={"discharged_on": "2026-03-02"},
        )
        objects = {
            "fa": Obj("fa", "filing", fa["id"], A_ID, fa["person_masked"]),
            "deemed": Obj(
                "deemed", "filing", adm1["deemed_filing_id"], B_ID, adm1["person_masked"]
            ),
            "retro": Obj("retro", "filing", retro["id"], B_ID, retro["person_masked"]),
            "referral": Obj("referral", "filing", referral["id"], E_ID, referral["person_masked"]),
            "adm1": Obj("adm1", "admission", adm1["id"], B_ID, adm1["person_masked"]),
            "adm2": Obj("adm2", "admission", adm2["id"], D_ID, adm2["person_masked"]),
            "claim2": Obj("claim2", "claim", out["admission"]["claim_id"], D_ID, None),
        }
        yield World(engine, http, k, objects)


def routes_naming_objects(engine: FilingEngine) -> set[tuple[str, str]]:
    """(method, path) of every route of the app with an object id in its path."""
    found: set[tuple[str, str]] = set()
    for route in create_app(engine).routes:
        if isinstance(route, APIRoute) and any(p in route.path for p in PARAM.values()):
            found |= {(method, route.path) for method in route.methods or ()}
    return found


def call(w: World, holder: str, route: tuple[str, str], o: Obj) -> Any:
    method, template = route
    _roles, body = ROUTES[route]
    path = template.replace(PARAM[o.kind], o.id)
    version = w.state(o)[0] if o.id in {x.id for x in w.objects.values()} else 1
    return w.http.call(
        method,
        path,
        w.token(holder),
        json=body(o) if method == "POST" else None,
        if_match=etag_of(version) if method == "POST" else None,
    )


def kind_of(route: tuple[str, str]) -> str:
    return next(kind for kind, p in PARAM.items() if p in route[1])


def test_every_route_that_names_an_object_is_in_the_matrix(world: World) -> None:
    assert routes_naming_objects(world.engine) == set(ROUTES)


def test_the_world_is_what_the_matrix_expects(world: World) -> None:
    """Each key sees exactly its own objects through the object's own GET."""
    paths = {"filing": F, "admission": A, "claim": C}
    for holder in ROLE_OF:
        seen = set()
        for name, o in world.objects.items():
            r = call(world, holder, ("GET", paths[o.kind]), o)
            assert r.status_code in (200, 404), (holder, name, r.text)
            if r.status_code == 200:
                seen.add(name)
        assert seen == VISIBLE[holder], holder


@pytest.mark.parametrize("holder", [h for h in ROLE_OF if h != "admin"])
def test_no_key_reaches_an_object_it_must_not_see_on_any_route(world: World, holder: str) -> None:
    role = ROLE_OF[holder]
    denied = 0
    for route in sorted(ROUTES):
        roles, _ = ROUTES[route]
        for name in sorted(set(OBJECTS) - VISIBLE[holder]):
            o = world.objects[name]
            if o.kind != kind_of(route):
                continue
            before = {x.name: world.state(x) for x in world.objects.values()}

            r = call(world, holder, route, o)

            expected = 404 if role in roles else 403
            where = (holder, route, name, r.status_code, r.text)
            body = problem(r, expected)
            assert set(body) <= {
                "type",
                "title",
                "status",
                "detail",
                "request_id",
                "code",
                "rule_id",
            }, where
            for leak in (o.id, o.masked, "person_masked", '"version"', '"state"', o.person):
                assert leak is None or leak not in r.text, where
            after = {x.name: world.state(x) for x in world.objects.values()}
            assert after == before, where
            records = audit_of(world.engine, body["request_id"])
            assert [(x["event"], x["outcome"]) for x in records] == [("access", "denied")], where
            [record] = records
            assert record["inputs"] == {
                "route": f"{route[0]} {route[1]}",
                "status": expected,
                "key_id": key_id(world.token(holder)),
            }, where
            assert record["filing_id"] == (o.id if expected == 404 else None), where
            assert record["rule_id"] == ("A3" if expected == 404 else "A2"), where
            assert record["actor_id"] == f"key:{key_id(world.token(holder))}", where
            # A2: the route does not admit the role; A3: the object is outside the key's scope.
            rule = "A3" if expected == 404 else "A2"
            assert (body["rule_id"], record["rule_id"]) == (rule, rule), where
            denied += 1
    assert denied >= 20  # the holder was denied something on most routes


@pytest.mark.parametrize("holder", list(ROLE_OF))
def test_an_unknown_id_is_answered_like_an_object_out_of_sight(world: World, holder: str) -> None:
    role = ROLE_OF[holder]
    ghosts = {"filing": "0" * 24, "admission": "adm" + "0" * 24, "claim": "clm" + "0" * 24}
    hidden = {
        kind: next(
            (o for n, o in world.objects.items() if o.kind == kind and n not in VISIBLE[holder]),
            None,
        )
        for kind in ghosts
    }
    for route in sorted(ROUTES):
        roles, _ = ROUTES[route]
        kind = kind_of(route)
        ghost = Obj("ghost", kind, ghosts[kind], A_ID, None)

        r = call(world, holder, route, ghost)

        body = problem(r, 404 if role in roles else 403)
        [record] = audit_of(world.engine, body["request_id"])
        assert (record["event"], record["outcome"], record["filing_id"]) == (
            "access",
            "denied",
            None,
        )
        seen = hidden[kind]
        if seen is not None:
            other = call(world, holder, route, seen)
            same = {k: v for k, v in other.json().items() if k != "request_id"}
            assert same == {k: v for k, v in body.items() if k != "request_id"}, (holder, route)


@pytest.mark.parametrize("holder", list(ROLE_OF))
def test_each_key_reads_its_own_objects_on_every_route_that_reads(
    world: World, holder: str
) -> None:
    role = ROLE_OF[holder]
    for route in sorted(r for r in ROUTES if r[0] == "GET"):
        roles, _ = ROUTES[route]
        for name in sorted(VISIBLE[holder]):
            o = world.objects[name]
            if o.kind != kind_of(route):
                continue
            r = call(world, holder, route, o)
            if role not in roles:
                assert problem(r, 403)["code"] == "forbidden"
                continue
            assert r.status_code == 200, (holder, route, name, r.text)
            if route[1].endswith(("/deadlines", "/reminders", "/policy")):
                assert r.json() is not None  # about the object, without its id
            else:
                assert o.id in r.text


@pytest.mark.parametrize("holder", list(ROLE_OF))
def test_the_list_of_filings_holds_exactly_what_the_key_may_see(world: World, holder: str) -> None:
    expected = {world.objects[n].id for n in VISIBLE[holder] if world.objects[n].kind == "filing"}
    listed: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        page = world.http.ok("GET", "/filings", world.token(holder), params=params)
        listed += [f["id"] for f in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    by_state = world.http.ok("GET", "/filings", world.token(holder), params={"state": "submitted"})[
        "items"
    ]
    by_region = world.http.ok(
        "GET", "/filings", world.token(holder), params={"insured_region": "350200"}
    )["items"]

    assert sorted(listed) == listed and set(listed) == expected and len(listed) == len(expected)
    assert {f["id"] for f in by_state} <= expected
    assert {f["id"] for f in by_region} <= expected


def test_the_audit_trail_is_for_auditors_and_administrators_within_their_regions(
    world: World,
) -> None:
    w = world
    regional = {w.objects[n].id for n in VISIBLE["auditor"]}
    everything = w.http.ok("GET", "/audit", w.keys.admin, params={"limit": 500})["items"]
    mine = w.http.ok("GET", "/audit", w.keys.auditor, params={"limit": 500})["items"]
    outside = w.http.ok("GET", "/audit", w.keys.auditor, params={"filing_id": w.objects["fa"].id})[
        "items"
    ]
    other_region = w.http.get("/audit", w.keys.auditor, params={"region": "350200"})
    wider = w.http.get("/audit", w.keys.auditor, params={"region": "440000"})

    assert {r["filing_id"] for r in mine} == regional
    assert {r["filing_id"] for r in everything} >= regional | {w.objects["fa"].id}
    assert outside == []
    assert problem(other_region, 403)["rule_id"] == "A3"
    assert problem(wider, 403)["rule_id"] == "A3"  # 440000 holds more than the auditor's region
    for holder in ("a", "b", "h1", "h2", "xm", "jm"):
        for path in ("/audit", "/audit/checkpoint"):
            r = w.http.get(path, w.token(holder))
            assert problem(r, 403)["code"] == "forbidden", (holder, path)
            [record] = audit_of(w.engine, r.json()["request_id"])
            assert (record["event"], record["outcome"], record["rule_id"]) == (
                "access",
                "denied",
                "A2",
            )
        assert problem(w.http.post("/audit/verify", w.token(holder)), 403)
    # The whole chain is the administrator's (A2), a regional auditor's trail is not all of it.
    assert problem(w.http.post("/audit/verify", w.keys.auditor), 403)["rule_id"] == "A2"


def test_a_regional_auditor_sees_the_claims_of_admissions_insured_in_its_region(
    world: World,
) -> None:
    w = world
    xiamen_auditor = issue(w.engine, "auditor", "xm-audit", regions=("350200",))
    claim = w.objects["claim2"].id

    records = w.http.ok("GET", "/audit", xiamen_auditor, params={"limit": 500})["items"]

    assert claim in {r["filing_id"] for r in records}  # D is insured in Xiamen (350200)
    assert w.objects["fa"].id in {r["filing_id"] for r in records}


def test_a_person_searches_and_stops_only_within_the_keys_scope(world: World) -> None:
    w = world
    before = {x.name: w.state(x) for x in w.objects.values()}

    other_person = w.http.post("/filings/search", w.keys.a, json={"id_number": B_ID})
    hospital = w.http.post("/filings/search", w.keys.h1, json={"id_number": B_ID})
    other_region = w.http.ok("POST", "/filings/search", w.keys.xm, json={"id_number": B_ID})
    own_region = w.http.ok("POST", "/filings/search", w.keys.jm, json={"id_number": B_ID})
    stop_elsewhere = w.http.post(
        "/persons/stop-insurance", w.keys.xm, json={"id_number": B_ID, "insurance_type": "employee"}
    )
    stop_by_person = w.http.post(
        "/persons/stop-insurance", w.keys.a, json={"id_number": A_ID, "insurance_type": "employee"}
    )

    assert problem(other_person, 403)["rule_id"] == "A3"
    assert problem(hospital, 403)["code"] == "forbidden"
    assert other_region == []
    assert {f["id"] for f in own_region} == {w.objects["deemed"].id, w.objects["retro"].id}
    assert stop_elsewhere.status_code == 200 and stop_elsewhere.json() == []  # as for anyone
    assert problem(stop_by_person, 403)["code"] == "forbidden"
    assert {x.name: w.state(x) for x in w.objects.values()} == before
    for r in (other_person, hospital, stop_by_person):
        [record] = audit_of(w.engine, r.json()["request_id"])
        assert (record["event"], record["outcome"]) == ("access", "denied")
        assert record["rule_id"] == r.json()["rule_id"]
        assert B_ID not in r.text


def test_creating_acts_only_for_the_keys_person_region_and_admissions(world: World) -> None:
    w = world
    adm1 = w.objects["adm1"].id
    filings_before = w.engine.checkpoint().count

    for_another = w.http.post("/filings", w.keys.a, json=jiangmen_body(B_ID))
    other_region = w.http.post("/filings", w.keys.xm, json=jiangmen_body(B_ID))
    on_hidden_admission = w.http.post(
        "/filings", w.keys.h2, json=jiangmen_body(B_ID, "K5", admission_id=adm1)
    )
    admit_elsewhere = w.http.post(
        "/admissions", w.keys.xm, json=admission_body(B_ID, H1, JIANGMEN, date(2026, 3, 2))
    )
    auditor_creates = w.http.post("/filings", w.keys.auditor, json=jiangmen_body(B_ID))
    for_another_hospital = w.http.post(
        "/admissions", w.keys.h1, json=admission_body(B_ID, H2, JIANGMEN, date(2026, 3, 2))
    )

    assert problem(for_another, 403)["rule_id"] == "A3"
    assert problem(other_region, 403)["rule_id"] == "A3"
    assert problem(on_hidden_admission, 404)["code"] == "not_found"
    assert adm1 not in on_hidden_admission.text
    assert problem(admit_elsewhere, 403)["rule_id"] == "A3"
    assert problem(auditor_creates, 403)["code"] == "forbidden"
    assert problem(for_another_hospital, 403)["rule_id"] == "A4"
    # Only the six denials were recorded; no filing or admission was made.
    assert w.engine.checkpoint().count == filings_before + 6


def test_a_hospital_files_only_referrals_and_retro_filings_for_its_own_admissions(
    world: World,
) -> None:
    w = world
    before = w.engine.checkpoint().count

    anyone = w.http.post("/filings", w.keys.h2, json=k1_body(D_ID))
    referral = w.http.post("/filings", w.keys.h1, json=jiangmen_body(E_ID, "K4"))

    assert problem(anyone, 403)["rule_id"] == "A4"
    [record] = audit_of(w.engine, anyone.json()["request_id"])
    assert (record["event"], record["outcome"], record["rule_id"]) == ("access", "denied", "A4")
    assert referral.status_code == 201, referral.text
    assert w.engine.checkpoint().count == before + 2  # the denial, and the referral's create


def test_stopping_a_persons_insurance_judges_only_the_filings_it_would_lapse(
    world: World,
) -> None:
    w = world
    # B's filings are all insured in Jiangmen; under another insurance type nothing lapses,
    # so the Xiamen officer learns nothing of them and is not refused.
    nothing = w.http.ok(
        "POST",
        "/persons/stop-insurance",
        w.keys.xm,
        json={"id_number": B_ID, "insurance_type": "resident"},
    )

    assert nothing == []


def test_an_administrator_reaches_everything(world: World) -> None:
    w = world
    for o in w.objects.values():
        path = {"filing": F, "admission": A, "claim": C}[o.kind].replace(PARAM[o.kind], o.id)
        assert w.http.get(path, w.keys.admin).status_code == 200
    listed = w.http.ok("GET", "/filings", w.keys.admin)["items"]
    assert {f["id"] for f in listed} == {o.id for o in w.objects.values() if o.kind == "filing"}
