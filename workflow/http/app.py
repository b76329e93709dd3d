"""The HTTP API (FastAPI): every command and query of `FilingEngine`, for back-offices in any
language. `create_app(engine)` builds it; `filing serve` runs it (with the scheduler inside on
the embedded default).

Every route authenticates an API key (`Authorization: Bearer fk_…`), checks the key's role may
call it (403) and that the object it names is one the key may see (404, the same answer as for
an object that does not exist), and records each denied call in the audit trail. Transitions
need `If-Match` with the version read (412 when stale, 428 when missing); creating requests take
an `Idempotency-Key`. Errors are `application/problem+json` with the rule id and the request id
that the audit record also carries.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from states.admissions import ADMISSION_EVENTS, ADMITTERS, CLAIMANTS
from states.errors import FilingError
from states.table import EVENT_ROLES as ROLES
from states.vocabulary import FilingState, Kind, Role
from workflow import export, keys
from workflow.api import FilingEngine
from workflow.http import models as m
from workflow.http.capacity import InFlightLimit, rate_limit_storage
from workflow.http.support import (
    ApiProblem,
    Edge,
    Idempotency,
    OneAtATime,
    RateLimit,
    Route,
    Seal,
    decode_cursor,
    deny,
    encode_cursor,
    etag,
    expected_version,
    problem,
    problem_of,
    request_ids,
    route_of,
    scope_sql,
    sees_admission,
)
from workflow.identity import mask_personal_data
from workflow.keys import Principal
from workflow.service import _filing_from_row

_ALL = frozenset({Role.INSURED, Role.HOSPITAL, Role.OFFICER, Role.AUDITOR, Role.ADMINISTRATOR})
_READERS = _ALL
_AUDIT = frozenset({Role.AUDITOR, Role.ADMINISTRATOR})
_AGENCY = frozenset({Role.OFFICER, Role.ADMINISTRATOR})
_ADMIN = frozenset({Role.ADMINISTRATOR})
_CREATORS = frozenset({Role.INSURED, Role.HOSPITAL, Role.OFFICER, Role.ADMINISTRATOR})
# One walk of the whole audit chain at a time in this process: each reads every record.
WHOLE_CHAIN = OneAtATime()

IfMatch = Annotated[
    str | None,
    Header(alias="If-Match", description='the ETag of the version read, e.g. "3"; * for any'),
]
IdemKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="8-64 characters; a replay returns the first answer (per API key)",
        pattern=r"^[A-Za-z0-9._:-]{8,64}$",  # documented as support.Idempotency checks it
    ),
]
Cursor = Annotated[str | None, Query(max_length=200, description="next_cursor of a page")]
Limit = Annotated[int | None, Query(description="page size (config: http.max_page_size)")]


def _well_formed(subject_id: str) -> bool:
    """Whether an id in a path is shaped like the ids this API gives out. One that is not
    names nothing (404, as if absent) and is never sent to the database, which may refuse
    it (PostgreSQL refuses NUL in text)."""
    return re.fullmatch(r"[0-9a-z]{1,32}", subject_id) is not None


def _caller(request: Request) -> Principal:
    api: Api = request.app.state.api
    return api.caller(request)


Caller = Annotated[Principal, Depends(_caller)]


@dataclass(frozen=True)
class Allow:
    """A route's role check (A2), declared on the route and run as its first dependency: after
    the key is authenticated (A1), before FastAPI validates the path, query, headers or body,
    so a caller who may not call the route learns nothing from a 422."""

    roles: frozenset[Role]

    def __call__(self, request: Request, p: Caller) -> None:
        api: Api = request.app.state.api
        api.allow(p, self.roles, route_of(request))
        request.state.allowed = True


def allow(roles: Iterable[Role]) -> list[Any]:
    """`dependencies=` of a route that `roles` may call."""
    return [Depends(Allow(frozenset(roles)))]


def allowed_roles(route: object) -> frozenset[Role] | None:
    """The roles a route admits (None: a route that needs no key, such as /health)."""
    for dependency in getattr(route, "dependencies", ()):
        if isinstance(dependency.dependency, Allow):
            return dependency.dependency.roles
    return None


# Operations that take If-Match: their links pass the response's ETag along with the id.
_VERSIONED = frozenset({"submitFiling", "approveFiling", "withdrawFiling", "dischargeAdmission"})


def _links(*pairs: tuple[str, str, str]) -> dict[str, Any]:
    """OpenAPI links from a response to the operations that take its id, and the version
    read as If-Match where the target is a transition (for clients and stateful testing)."""
    return {
        name: {
            "operationId": op,
            "parameters": {param: "$response.body#/id"}
            | ({"header.If-Match": "$response.header.ETag"} if op in _VERSIONED else {}),
        }
        for name, op, param in pairs
    }


_FILING_LINKS = _links(
    ("get", "getFiling", "filing_id"),
    ("submit", "submitFiling", "filing_id"),
    ("approve", "approveFiling", "filing_id"),
    ("withdraw", "withdrawFiling", "filing_id"),
    ("history", "getFilingHistory", "filing_id"),
    ("deadlines", "getFilingDeadlines", "filing_id"),
)
_ADMISSION_LINKS = _links(
    ("get", "getAdmission", "admission_id"),
    ("coverage", "getCoverage", "admission_id"),
    ("discharge", "dischargeAdmission", "admission_id"),
    ("history", "getAdmissionHistory", "admission_id"),
)
_PROBLEMS: dict[int | str, dict[str, Any]] = {
    code: {"model": m.Problem, "content": {"application/problem+json": {}}}
    for code in (400, 401, 403, 404, 409, 412, 413, 422, 428, 429, 503)
}


def _out(model: type[BaseModel], obj: Any, status: int = 200) -> JSONResponse:
    data = model.model_validate(m.plain(obj)).model_dump(mode="json")
    headers = {"ETag": etag(data["version"])} if "version" in data else None
    return JSONResponse(data, status_code=status, headers=headers)


@dataclass
class Api:
    engine: FilingEngine
    limiter: RateLimit
    idempotency: Idempotency

    # -- dependencies --------------------------------------------------------------------------

    def caller(self, request: Request) -> Principal:
        """The key's holder; 401 (audited) without a valid key; 429 past the rate limit."""
        auth = request.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        client = request.client.host if request.client else "-"
        principal = (
            keys.authenticate(self.engine.store, token.strip())
            if scheme.lower() == "bearer"
            else None
        )
        if principal is None:
            self.limiter.check(f"ip:{client}", anonymous=True)
            deny(self.engine, None, route_of(request), 401, "no valid API key", rule_id="A1")
            raise ApiProblem(
                401,
                "not_authenticated",
                "send a valid API key: Authorization: Bearer fk_…",
                headers={"WWW-Authenticate": "Bearer"},
                rule_id="A1",
            )
        request.state.key_id = principal.key_id
        self.limiter.check(f"key:{principal.key_id}")
        request.state.principal = principal
        return principal

    def allow(self, p: Principal, roles: Iterable[Role], route: Route) -> None:
        if p.role not in roles:
            reason = f"the {p.role.value} role may not call {route}"
            deny(self.engine, p, route, 403, reason, rule_id="A2")
            raise ApiProblem(403, "forbidden", reason, rule_id="A2")

    def gate(self, request: Request) -> None:
        """What a route checks before its input, for input FastAPI refused before the route's
        dependencies ran (a body that is not JSON): the key (A1), then the role (A2)."""
        roles = allowed_roles(request.scope.get("route"))
        if roles is None or getattr(request.state, "allowed", False):
            return
        principal = getattr(request.state, "principal", None) or self.caller(request)
        self.allow(principal, roles, route_of(request))

    def _not_visible(self, p: Principal, route: Route, subject_id: str, exists: bool) -> None:
        deny(
            self.engine,
            p,
            route,
            404,
            "not visible to this key" if exists else "no such object",
            rule_id="A3",
            subject_id=subject_id if exists else None,
        )
        # The id is not echoed: a caller may have put anything in the path.
        raise ApiProblem(404, "not_found", "no such object visible to this key", rule_id="A3")

    def filing_row(self, p: Principal, filing_id: str, route: Route) -> dict[str, Any]:
        if not _well_formed(filing_id):
            self._not_visible(p, route, filing_id, False)
        where, params = scope_sql(p)
        with self.engine.store.read() as tx:
            row = tx.one(
                f"SELECT * FROM filing_record WHERE id = :id AND {where}",
                {**params, "id": filing_id},
            )
            if row is not None:
                return row
            exists = tx.one("SELECT 1 FROM filing_record WHERE id = :id", {"id": filing_id})
        self._not_visible(p, route, filing_id, exists is not None)
        raise AssertionError  # unreachable: _not_visible raises

    def visible(self, p: Principal, filing_ids: Iterable[str]) -> set[str]:
        """Of these filings, the ones the key may see (the same scope as every list)."""
        ids = sorted(set(filing_ids))
        if not ids:
            return set()
        where, params = scope_sql(p)
        marks = ", ".join(f":f{i}" for i in range(len(ids)))
        with self.engine.store.read() as tx:
            rows = tx.all(
                f"SELECT id FROM filing_record WHERE id IN ({marks}) AND {where}",
                {**params, **{f"f{i}": x for i, x in enumerate(ids)}},
            )
        return {r["id"] for r in rows}

    def admission_row(self, p: Principal, admission_id: str, route: Route) -> dict[str, Any]:
        if not _well_formed(admission_id):
            self._not_visible(p, route, admission_id, False)
        with self.engine.store.read() as tx:
            row = tx.one("SELECT * FROM admission_record WHERE id = :id", {"id": admission_id})
        if row is not None and sees_admission(p, row):
            return row
        self._not_visible(p, route, admission_id, row is not None)
        raise AssertionError

    def claim_admission(self, p: Principal, claim_id: str, route: Route) -> None:
        if not _well_formed(claim_id):
            self._not_visible(p, route, claim_id, False)
        with self.engine.store.read() as tx:
            claim = tx.one("SELECT admission_id FROM claim_record WHERE id = :id", {"id": claim_id})
            adm = (
                tx.one(
                    "SELECT * FROM admission_record WHERE id = :id",
                    {"id": claim["admission_id"]},
                )
                if claim
                else None
            )
        if adm is None or not sees_admission(p, adm):
            self._not_visible(p, route, claim_id, claim is not None)

    def same_person(self, p: Principal, id_number: str, route: Route) -> None:
        """An insured key acts for its own person only (A3; L8: a family account is issued
        for the person it acts for)."""
        if p.role is not Role.INSURED:
            return
        from states.periods import local_date
        from workflow.identity import normalise_id_number, person_key

        today = local_date(self.engine.clock())
        mine = person_key(normalise_id_number(id_number, today), self.engine.settings.person_key)
        if mine != p.person_key:
            reason = "an insured key acts only for the person it was issued for"
            deny(self.engine, p, route, 403, reason, rule_id="A3")
            raise ApiProblem(403, "forbidden", reason, rule_id="A3")

    def own_hospital(self, p: Principal, hospital_code: str, route: Route) -> None:
        """A4: a hospital's key records admissions of its own hospital code only."""
        if p.role is Role.HOSPITAL and hospital_code != p.organisation:
            reason = "a hospital records admissions of its own hospital code only"
            deny(self.engine, p, route, 403, reason, rule_id="A4")
            raise ApiProblem(403, "forbidden", reason, rule_id="A4")

    def region(self, p: Principal, region: str, route: Route) -> None:
        if p.role in (Role.OFFICER, Role.AUDITOR) and not p.covers_region(region):
            reason = "the insured region is not one this key's agency serves"
            deny(self.engine, p, route, 403, reason, rule_id="A3")
            raise ApiProblem(403, "forbidden", reason, rule_id="A3")

    def ids(self) -> dict[str, Any]:
        rid, cid = request_ids.get()
        return {"request_id": rid, "correlation_id": cid}


def create_app(
    engine: FilingEngine,
    *,
    on_start: Callable[[], None] | None = None,
    on_stop: Callable[[], None] | None = None,
) -> FastAPI:
    """The HTTP API over an open engine. The caller owns the engine (and closes it).
    `on_start` and `on_stop` run as the server starts and stops (`filing serve` starts and
    stops the scheduler with them, so the server's own signal handling covers both)."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if on_start is not None:
            await run_in_threadpool(on_start)
        yield
        if on_stop is not None:
            await run_in_threadpool(on_stop)

    settings = engine.settings.http
    api = Api(
        engine,
        RateLimit(
            settings.rate_limit,
            settings.anonymous_rate_limit,
            rate_limit_storage(settings.rate_limit_storage),  # reachable, or the start is refused
        ),
        Idempotency(engine, settings.idempotency_hours),
    )
    app = FastAPI(
        title="filing-workflow",
        version="0.1.0",
        summary="Cross-region medical treatment filing (异地就医备案) engine",
        description=__doc__,
        responses=_PROBLEMS,
        lifespan=lifespan,
    )
    app.state.api = api
    # Inside Edge (added last, so outermost): a request shed for load has its ids and log line.
    app.add_middleware(
        InFlightLimit,
        limit=settings.max_in_flight,
        retry_after_seconds=settings.retry_after_seconds,
    )
    app.add_middleware(Edge, max_body_bytes=settings.max_body_bytes)
    _handlers(app)

    def page_size(limit: int | None) -> int:
        if limit is None:
            return settings.default_page_size
        if not 1 <= limit <= settings.max_page_size:
            raise ApiProblem(
                422,
                "invalid_input",
                f"limit: from 1 to {settings.max_page_size}",
                field="limit",
            )
        return limit

    # -- health ----------------------------------------------------------------------------------

    @app.get("/health", operation_id="health", tags=["service"])
    def health() -> dict[str, str]:
        """Liveness: the process answers and its database does (no key needed)."""
        with engine.store.read() as tx:
            tx.scalar("SELECT 1")
        return {"status": "ok"}

    # -- filings ---------------------------------------------------------------------------------

    @app.post(
        "/filings",
        status_code=201,
        response_model=m.FilingOut,
        operation_id="createFiling",
        tags=["filings"],
        responses={201: {"description": "the draft", "links": _FILING_LINKS}},
        dependencies=allow(_CREATORS),
    )
    def create_filing(
        body: m.FilingIn, request: Request, p: Caller, idempotency_key: IdemKey = None
    ) -> Response:
        """Draft a filing (submit it next). With `admission_id`, a retro filing (E2)."""
        route = route_of(request)

        def work(seal: Seal | None) -> Response:
            api.same_person(p, body.id_number, route)
            api.region(p, body.insured_region, route)
            if p.role is Role.HOSPITAL and body.kind is not Kind.REFERRAL and not body.admission_id:
                reason = (
                    "a hospital files referrals (E4) and retro filings for its own admissions "
                    "(E2), nothing else"
                )
                deny(engine, p, route, 403, reason, rule_id="A4")
                raise ApiProblem(403, "forbidden", reason, rule_id="A4")
            if body.admission_id is not None:
                api.admission_row(p, body.admission_id, route)
            return _sealed(
                seal,
                lambda filing: _out(m.FilingOut, filing, 201),
                lambda seal: engine.create(
                    **body.model_dump(), actor=p.actor, seal=seal, **api.ids()
                ),
            )

        return api.idempotency.run(p, idempotency_key, route, body.model_dump(mode="json"), work)

    @app.get(
        "/filings",
        response_model=m.FilingPage,
        operation_id="listFilings",
        tags=["filings"],
        dependencies=allow(_READERS),
    )
    def list_filings(
        p: Caller,
        state: FilingState | None = None,
        insured_region: Annotated[str | None, Query(pattern=r"^\d{6}$")] = None,
        cursor: Cursor = None,
        limit: Limit = None,
    ) -> Response:
        """The filings this key may see, oldest first (ids are time-ordered): an insured
        person's own (L3), a hospital's, an agency's regions'."""
        n = page_size(limit)
        after = decode_cursor(cursor, str)
        where, params = scope_sql(p)
        sql = f"SELECT * FROM filing_record WHERE {where}"
        if state is not None:
            sql += " AND state = :state"
            params["state"] = state.value
        if insured_region is not None:
            sql += " AND insured_region = :region"
            params["region"] = insured_region
        if after is not None:
            sql += " AND id > :after"
            params["after"] = after
        params["n"] = n + 1
        with engine.store.read() as tx:
            rows = tx.all(sql + " ORDER BY id LIMIT :n", params)
        more = len(rows) > n
        items = [_filing_from_row(r) for r in rows[:n]]
        return JSONResponse(
            m.FilingPage(
                items=[m.FilingOut.model_validate(m.plain(f)) for f in items],
                next_cursor=encode_cursor(items[-1].id) if more else None,
            ).model_dump(mode="json")
        )

    @app.post(
        "/filings/search",
        response_model=list[m.FilingOut],
        operation_id="searchFilingsOfPerson",
        tags=["filings"],
        dependencies=allow(_ALL - {Role.HOSPITAL}),
    )
    def search_person(body: m.PersonIn, request: Request, p: Caller) -> Response:
        """Every filing of a person (L3), or the effective ones (有效备案记录). The ID number
        travels in the body, never in a URL."""
        route = route_of(request)
        api.same_person(p, body.id_number, route)
        found = (
            engine.effective_filings(body.id_number)
            if body.effective_only
            else engine.list_for_person(body.id_number)
        )
        seen = api.visible(p, (f.id for f in found))
        return JSONResponse([m.FilingOut.model_validate(m.plain(f)).model_dump(mode="json")
                             for f in found if f.id in seen])  # fmt: skip

    @app.get(
        "/filings/{filing_id}",
        response_model=m.FilingOut,
        operation_id="getFiling",
        tags=["filings"],
        responses={200: {"description": "the filing; ETag is its version"}},
        dependencies=allow(_READERS),
    )
    def get_filing(filing_id: str, request: Request, p: Caller) -> Response:
        row = api.filing_row(p, filing_id, route_of(request))
        return _out(m.FilingOut, _filing_from_row(row))

    def transition(
        event: str,
        op: str,
        doc: str,
        body_model: type[m.Body] | None = None,
    ) -> None:
        path = f"/filings/{{filing_id}}/{event.replace('_', '-')}"
        roles = ROLES[event] & _ALL

        def endpoint(
            filing_id: str, request: Request, p: Caller, if_match: IfMatch = None, **kw: Any
        ) -> Response:
            route = route_of(request)
            api.filing_row(p, filing_id, route)
            version = expected_version(if_match)
            extra = kw["body"].model_dump() if kw.get("body") is not None else {}
            method: Callable[..., Any] = getattr(engine, event)
            filing = method(filing_id, p.actor, expected_version=version, **extra, **api.ids())
            return _out(m.FilingOut, filing)

        endpoint.__doc__ = doc
        _with_body(endpoint, body_model)
        app.post(
            path,
            response_model=m.FilingOut,
            operation_id=op,
            tags=["filings"],
            responses={
                200: {
                    "description": "the filing after the transition; ETag is its version",
                    "links": _FILING_LINKS,
                }
            },
            dependencies=allow(roles),
        )(endpoint)

    transition("submit", "submitFiling", "Submit a draft: under review, or effective (L1).")
    transition("approve", "approveFiling", "Approve a filing under review (L1).")
    transition("reject", "rejectFiling", "Reject a filing under review (L1).", m.ReasonIn)
    transition("withdraw", "withdrawFiling", "Withdraw a draft or a filing under review (L1).")
    transition(
        "cancel", "cancelFiling", "Cancel an effective filing after the lock (L4, V2, V4).",
        m.OptionalReasonIn,
    )  # fmt: skip
    transition(
        "supply_documents", "supplyDocuments", "Complete a commitment filing (V6).", m.DocumentsIn
    )
    transition("stop_insurance", "stopInsurance", "停保: the filing lapses (L2).")
    transition("expire", "expireFiling", "Expire a filing whose validity is over (V1, V3).")
    transition("stamp", "stampReferral", "The hospital's office stamps a referral (E4).")

    @app.post(
        "/filings/{filing_id}/change",
        status_code=201,
        response_model=m.ChangeOut,
        operation_id="changeFiling",
        tags=["filings"],
        dependencies=allow(ROLES["change"] & _ALL),
    )
    def change_filing(
        filing_id: str,
        body: m.FilingIn,
        request: Request,
        p: Caller,
        if_match: IfMatch = None,
        idempotency_key: IdemKey = None,
    ) -> Response:
        """L5: file a replacement; the old filing is cancelled when the new one takes effect."""
        route = route_of(request)
        api.filing_row(p, filing_id, route)
        version = expected_version(if_match)

        def render(pair: tuple[Any, Any]) -> JSONResponse:
            data = m.ChangeOut(
                old=m.FilingOut.model_validate(m.plain(pair[0])),
                new=m.FilingOut.model_validate(m.plain(pair[1])),
            ).model_dump(mode="json")
            return JSONResponse(data, status_code=201)

        def work(seal: Seal | None) -> Response:
            api.same_person(p, body.id_number, route)
            api.region(p, body.insured_region, route)
            fields = body.model_dump(exclude={"admission_id"})
            return _sealed(
                seal,
                render,
                lambda seal: engine.change(
                    filing_id,
                    **fields,
                    actor=p.actor,
                    expected_version=version,
                    seal=seal,
                    **api.ids(),
                ),
            )

        return api.idempotency.run(
            p, idempotency_key, route, {"filing": filing_id, **body.model_dump(mode="json")}, work
        )

    @app.post(
        "/persons/stop-insurance",
        response_model=list[m.FilingOut],
        operation_id="stopInsuranceForPerson",
        tags=["filings"],
        dependencies=allow(ROLES["stop_insurance"] & _ALL),
    )
    def stop_person(body: m.StopInsuranceIn, request: Request, p: Caller) -> Response:
        """停保: every open filing of the person under the insurance type lapses (L2), of those
        insured in the key's regions (A3). The answer is the same whether or not the person
        has filings elsewhere: it says nothing of what the key may not see."""
        lapsed = engine.stop_insurance_for_person(
            body.id_number, body.insurance_type, p.actor, regions=p.regions, **api.ids()
        )
        return JSONResponse(
            [m.FilingOut.model_validate(m.plain(f)).model_dump(mode="json") for f in lapsed]
        )

    @app.get(
        "/filings/{filing_id}/history",
        response_model=m.AuditPage,
        operation_id="getFilingHistory",
        tags=["audit"],
        dependencies=allow(_READERS),
    )
    def filing_history(
        filing_id: str, request: Request, p: Caller, cursor: Cursor = None, limit: Limit = None
    ) -> Response:
        """Every attempt on the filing, applied or denied, with its rule (oldest first)."""
        route = route_of(request)
        api.filing_row(p, filing_id, route)
        return _audit_page(engine, export.Filters(filing_id=filing_id),
                           decode_cursor(cursor, int), page_size(limit))  # fmt: skip

    @app.get(
        "/filings/{filing_id}/deadlines",
        response_model=list[m.DeadlineOut],
        operation_id="getFilingDeadlines",
        tags=["filings"],
        dependencies=allow(_READERS),
    )
    def filing_deadlines(filing_id: str, request: Request, p: Caller) -> Response:
        route = route_of(request)
        api.filing_row(p, filing_id, route)
        return JSONResponse(
            [
                m.DeadlineOut.model_validate(m.plain(d)).model_dump(mode="json")
                for d in engine.deadlines(filing_id)
            ]
        )

    @app.get(
        "/filings/{filing_id}/policy",
        operation_id="getFilingPolicy",
        tags=["filings"],
        dependencies=allow(_READERS),
    )
    def filing_policy(filing_id: str, request: Request, p: Caller) -> dict[str, Any]:
        """The policy version the filing is pinned to, every value with its rule id."""
        route = route_of(request)
        api.filing_row(p, filing_id, route)
        pol = engine.policy(filing_id)
        return {"region": pol.region, "version": pol.version, "values": pol.to_document()}

    # -- admissions, coverage, claims ---------------------------------------------------------

    @app.post(
        "/admissions",
        status_code=201,
        response_model=m.AdmissionOut,
        operation_id="admit",
        tags=["hospital"],
        responses={201: {"description": "the admission", "links": _ADMISSION_LINKS}},
        dependencies=allow(ADMITTERS & _ALL),
    )
    def admit(
        body: m.AdmissionIn, request: Request, p: Caller, idempotency_key: IdemKey = None
    ) -> Response:
        """Record an admission (or visit, or pharmacy purchase); an emergency without a
        covering filing is deemed filed (E1)."""
        route = route_of(request)

        def work(seal: Seal | None) -> Response:
            api.own_hospital(p, body.hospital_code, route)
            api.region(p, body.insured_region, route)
            return _sealed(
                seal,
                lambda adm: _out(m.AdmissionOut, adm, 201),
                lambda seal: engine.admit(
                    **body.model_dump(), actor=p.actor, seal=seal, **api.ids()
                ),
            )

        return api.idempotency.run(p, idempotency_key, route, body.model_dump(mode="json"), work)

    @app.get(
        "/admissions/{admission_id}",
        response_model=m.AdmissionOut,
        operation_id="getAdmission",
        tags=["hospital"],
        dependencies=allow(_READERS),
    )
    def get_admission(admission_id: str, request: Request, p: Caller) -> Response:
        route = route_of(request)
        api.admission_row(p, admission_id, route)
        return _out(m.AdmissionOut, engine.get_admission(admission_id))

    @app.post(
        "/admissions/{admission_id}/discharge",
        response_model=m.DischargeOut,
        operation_id="dischargeAdmission",
        tags=["hospital"],
        dependencies=allow(ADMISSION_EVENTS["discharge"].roles & _ALL),
    )
    def discharge(
        admission_id: str,
        body: m.DischargeIn,
        request: Request,
        p: Caller,
        if_match: IfMatch = None,
    ) -> Response:
        """出院结算: settle directly or route to manual reimbursement with a claim (P5, P6)."""
        route = route_of(request)
        api.admission_row(p, admission_id, route)
        version = expected_version(if_match)
        adm, cov = engine.discharge(
            admission_id,
            body.discharged_on,
            p.actor,
            system_fault=body.system_fault,
            expected_version=version,
            **api.ids(),
        )
        data = m.DischargeOut(
            admission=m.AdmissionOut.model_validate(m.plain(adm)),
            coverage=m.CoverageOut.model_validate(_coverage(cov)),
        ).model_dump(mode="json")
        return JSONResponse(data, headers={"ETag": etag(adm.version)})

    def extension(event: str, op: str, doc: str, with_documents: bool) -> None:
        def endpoint(
            admission_id: str,
            request: Request,
            p: Caller,
            if_match: IfMatch = None,
            **kw: Any,
        ) -> Response:
            route = route_of(request)
            api.admission_row(p, admission_id, route)
            version = expected_version(if_match)
            method: Callable[..., Any] = getattr(engine, event)
            args = (kw["body"].documents,) if with_documents else ()
            adm = method(admission_id, p.actor, *args, expected_version=version, **api.ids())
            return _out(m.AdmissionOut, adm)

        endpoint.__doc__ = doc
        _with_body(endpoint, m.DocumentsIn if with_documents else None)
        app.post(
            f"/admissions/{{admission_id}}/{event.replace('_', '-')}",
            response_model=m.AdmissionOut,
            operation_id=op,
            tags=["hospital"],
            dependencies=allow(ADMISSION_EVENTS[event].roles & _ALL),
        )(endpoint)

    extension("request_extension", "requestExtension", "E6: ask to extend a stay.", True)
    extension("grant_extension", "grantExtension", "E6: the agency grants it.", False)
    extension("refuse_extension", "refuseExtension", "E6: the agency refuses it.", False)

    @app.get(
        "/admissions/{admission_id}/coverage",
        response_model=m.CoverageOut,
        operation_id="getCoverage",
        tags=["hospital"],
        dependencies=allow(_READERS - {Role.AUDITOR}),
    )
    def coverage(
        admission_id: str, request: Request, p: Caller, day: m.IsoDate | None = None
    ) -> Response:
        """The coverage decision for a day of the stay, each part with its rule (recorded)."""
        route = route_of(request)
        api.admission_row(p, admission_id, route)
        cov = engine.coverage(admission_id, p.actor, day=day, **api.ids())
        return JSONResponse(m.CoverageOut.model_validate(_coverage(cov)).model_dump(mode="json"))

    @app.get(
        "/admissions/{admission_id}/history",
        response_model=m.AuditPage,
        operation_id="getAdmissionHistory",
        tags=["audit"],
        dependencies=allow(_READERS),
    )
    def admission_history(
        admission_id: str,
        request: Request,
        p: Caller,
        cursor: Cursor = None,
        limit: Limit = None,
    ) -> Response:
        route = route_of(request)
        api.admission_row(p, admission_id, route)
        return _audit_page(engine, export.Filters(filing_id=admission_id),
                           decode_cursor(cursor, int), page_size(limit))  # fmt: skip

    @app.get(
        "/claims/{claim_id}",
        response_model=m.ClaimOut,
        operation_id="getClaim",
        tags=["hospital"],
        dependencies=allow(_READERS),
    )
    def get_claim(claim_id: str, request: Request, p: Caller) -> Response:
        route = route_of(request)
        api.claim_admission(p, claim_id, route)
        return _out(m.ClaimOut, engine.get_claim(claim_id))

    @app.post(
        "/claims/{claim_id}/file",
        response_model=m.ClaimOut,
        operation_id="fileClaim",
        tags=["hospital"],
        dependencies=allow(CLAIMANTS & _ALL),
    )
    def file_claim(
        claim_id: str,
        body: m.DocumentsIn,
        request: Request,
        p: Caller,
        if_match: IfMatch = None,
    ) -> Response:
        """P5, P6: file a manual reimbursement claim with its documents before its deadline."""
        route = route_of(request)
        api.claim_admission(p, claim_id, route)
        version = expected_version(if_match)
        claim = engine.file_claim(
            claim_id, p.actor, body.documents, expected_version=version, **api.ids()
        )
        return _out(m.ClaimOut, claim)

    # -- deadlines (operators) ----------------------------------------------------------------

    @app.post(
        "/deadlines/fire",
        operation_id="fireDeadline",
        tags=["operations"],
        dependencies=allow(_ADMIN),
    )
    def fire_deadline(body: m.FireIn, request: Request, p: Caller) -> dict[str, Any]:
        """Apply one due deadline row now (the scheduler does this for every due row)."""
        result = engine.fire_deadline(
            body.subject_id, body.kind, body.due_at, request_id=api.ids()["request_id"]
        )
        return {"result": result}

    @app.post(
        "/deadlines/fire-due",
        operation_id="fireDue",
        tags=["operations"],
        dependencies=allow(_ADMIN),
    )
    def fire_due(body: m.FireDueIn, request: Request, p: Caller) -> dict[str, Any]:
        """Sweep once: apply up to `limit` due deadline rows, earliest first."""
        batch = engine.fire_due(limit=body.limit, request_id=api.ids()["request_id"])
        return {"result": m.plain(batch)}

    @app.post(
        "/deadlines/recompute",
        operation_id="recomputeProvisional",
        tags=["operations"],
        dependencies=allow(_ADMIN),
    )
    def recompute(request: Request, p: Caller) -> dict[str, Any]:
        """C6: recount provisional deadlines whose year the calendar now knows (audited)."""
        changed = engine.recompute_provisional(request_id=api.ids()["request_id"])
        return {"result": m.plain(changed)}

    @app.get(
        "/filings/{filing_id}/reminders",
        operation_id="getReminders",
        tags=["filings"],
        dependencies=allow(_READERS),
    )
    def reminders(filing_id: str, request: Request, p: Caller) -> list[dict[str, Any]]:
        """The reminders written for the filing (the outbox), delivered or not."""
        route = route_of(request)
        api.filing_row(p, filing_id, route)
        return [
            {k: v for k, v in m.plain(r).items() if k != "payload"}
            for r in engine.reminders(filing_id)
        ]

    @app.get(
        "/calendar/{year}",
        operation_id="getCalendar",
        tags=["policies"],
        dependencies=allow(_READERS),
    )
    def calendar(
        year: Annotated[int, Path(ge=1900, le=2200)], request: Request, p: Caller
    ) -> dict[str, Any]:
        """The working-day calendar in force for a year (C6): holidays, swapped working
        days, and whether the year is known (unknown: weekends only, deadlines provisional)."""
        cal = engine.calendar
        return {
            "year": year,
            "known": year in cal.known_years,
            "holidays": sorted(str(d) for d in cal.holidays if d.year == year),
            "workdays": sorted(str(d) for d in cal.workdays if d.year == year),
        }

    # -- audit -------------------------------------------------------------------------------

    @app.get(
        "/audit",
        response_model=m.AuditPage,
        operation_id="exportAudit",
        tags=["audit"],
        dependencies=allow(_AUDIT),
    )
    def audit_export(
        request: Request,
        p: Caller,
        filing_id: Annotated[str | None, Query(pattern=m.SUBJECT_ID)] = None,
        region: Annotated[str | None, Query(pattern=r"^\d{6}$")] = None,
        event: Annotated[list[m.EventName] | None, Query(max_length=20)] = None,
        since: m.IsoDateTime | None = None,
        until: m.IsoDateTime | None = None,
        cursor: Cursor = None,
        limit: Limit = None,
    ) -> Response:
        """The audit trail in order, filtered (auditors: within their regions)."""
        route = route_of(request)
        if region is not None:
            api.region(p, region, route)
        filters = export.Filters(filing_id=filing_id, region=region, since=since, until=until,
                                 events=tuple(event or ()))  # fmt: skip
        return _audit_page(engine, filters, decode_cursor(cursor, int), page_size(limit), p.regions)

    @app.get(
        "/audit/checkpoint",
        response_model=m.CheckpointOut,
        operation_id="auditCheckpoint",
        tags=["audit"],
        dependencies=allow(_AUDIT),
    )
    def checkpoint(request: Request, p: Caller) -> dict[str, Any]:
        """Count and head hash of the audit trail: keep it outside the database."""
        return engine.checkpoint().to_dict()

    @app.post(
        "/audit/verify",
        response_model=m.VerificationOut,
        operation_id="verifyAudit",
        tags=["audit"],
        dependencies=allow(_ADMIN),
    )
    def verify(request: Request, p: Caller, body: m.CheckpointIn | None = None) -> dict[str, Any]:
        """Walk the whole chain; with a checkpoint, also detect truncation and rewrites. The
        whole chain is the administrator's (A2: an auditor verifies the export of its regions,
        `filing audit verify-export`); one verification runs at a time in the process, others
        get 429 with Retry-After."""
        from workflow.audit import Checkpoint

        with WHOLE_CHAIN.hold("a verification of the whole chain"):
            result = engine.verify(Checkpoint(body.count, body.head_hash) if body else None)
        return {"ok": result.ok, **result.checkpoint.to_dict(), "problems": result.problems}

    @app.get(
        "/policies", operation_id="listPolicies", tags=["policies"], dependencies=allow(_READERS)
    )
    def policies(request: Request, p: Caller) -> list[dict[str, Any]]:
        """The policies config.toml defines, each value with its rule id."""
        return [
            {"region": pol.region, "version": pol.version, "values": pol.to_document()}
            for pol in engine.settings.policies.values()
        ]

    return app


def _sealed(
    seal: Seal | None,
    render: Callable[[Any], JSONResponse],
    call: Callable[[Seal | None], Any],
) -> JSONResponse:
    """Run a creating command; with an Idempotency-Key, its answer is rendered and stored
    inside the command's transaction, and that stored answer is the one sent."""
    if seal is not None:
        seal.render = render
    result = call(seal)
    if seal is not None and seal.answer is not None:
        return seal.answer
    return render(result)


def _with_body(endpoint: Callable[..., Any], model: type[m.Body] | None) -> None:
    """Show FastAPI a generated endpoint's real parameters: its `**kw` replaced by a
    `body: model` parameter, or by nothing."""
    sig = inspect.signature(endpoint, eval_str=True)
    params = [p for p in sig.parameters.values() if p.kind is not p.VAR_KEYWORD]
    if model is not None:
        params.append(inspect.Parameter("body", inspect.Parameter.KEYWORD_ONLY, annotation=model))
    endpoint.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]


def _coverage(cov: Any) -> dict[str, Any]:
    data = m.plain(cov)
    data["parts"] = [{"part": p[0], "rule_id": p[1], "reason": p[2]} if isinstance(p, list)
                     else p for p in data["parts"]]  # fmt: skip
    return dict(data)


def _audit_page(
    engine: FilingEngine,
    filters: export.Filters,
    after: int | None,
    n: int,
    scope: tuple[str, ...] = (),
) -> Response:
    rows = export.page(engine.store, filters, after=after or 0, limit=n + 1, scope=scope)
    items = [m.AuditOut.model_validate(r).model_dump(mode="json") for r in rows[:n]]
    more = len(rows) > n
    return JSONResponse(
        {"items": items, "next_cursor": encode_cursor(rows[n - 1]["seq"]) if more else None}
    )


def _handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiProblem)
    async def on_problem(_request: Request, exc: ApiProblem) -> Response:
        return problem_of(exc)

    @app.exception_handler(FilingError)
    async def on_filing_error(_request: Request, exc: FilingError) -> Response:
        return problem_of(exc)

    async def gate(request: Request) -> Response | None:
        """Input FastAPI refused before the route's own checks ran (it reads the body first)
        is answered only once the key (A1) and the role (A2) are known to be good."""
        api: Api = request.app.state.api
        try:
            await run_in_threadpool(api.gate, request)
        except ApiProblem as refused:
            return problem_of(refused)
        return None

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> Response:
        refused = await gate(request)
        if refused is not None:
            return refused
        # Never echo the input: it may be an ID number.
        # Field names come from the caller too: mask any ID number one was made of.
        masked = mask_personal_data
        errors = [
            {"field": masked(".".join(str(x) for x in e["loc"][1:]) or str(e["loc"][0])),
             "problem": masked(str(e["msg"]))}
            for e in exc.errors()
        ]  # fmt: skip
        first = errors[0] if errors else {"field": "-", "problem": "invalid"}
        return problem(
            422, "invalid_input", f"{first['field']}: {first['problem']}",
            field=first["field"], errors=errors,
        )  # fmt: skip

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400:  # a body FastAPI could not read
            refused = await gate(request)
            if refused is not None:
                return refused
        code = {404: "no_route", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        # Keep the exception's headers: a 405 must say which methods are allowed (Allow).
        return problem(exc.status_code, code, str(exc.detail), exc.headers)
