"""What every route shares: request ids, problem responses, authentication, rate limits,
object visibility, denied-call audit records, idempotency and version preconditions."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import re
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from fastapi import Request
from fastapi.responses import JSONResponse, Response
from limits import parse, storage, strategies
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from states.errors import (
    ConcurrentUpdate,
    FilingError,
    FilingNotFound,
    InvalidInput,
    PolicyConfigError,
    TransitionRefused,
)
from states.regions import prefix_of
from states.vocabulary import Channel, Outcome, Role
from workflow import audit
from workflow.api import FilingEngine
from workflow.context import new_request_id
from workflow.identity import mask_personal_data
from workflow.keys import Principal
from workflow.store import Row, Tx

PROBLEM = "application/problem+json"
_RID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
request_ids: ContextVar[tuple[str, str]] = ContextVar("request_ids", default=("-", "-"))


def log() -> Any:
    return structlog.get_logger("workflow.http")


# -- problems --------------------------------------------------------------------------------


class ApiProblem(Exception):
    """An answer other than success that no domain error stands for (401, 403, 404...)."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail
        self.headers = dict(headers or {})
        self.extra = extra


_TITLES = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    412: "Precondition failed",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Unprocessable request",
    428: "Precondition required",
    429: "Too many requests",
    500: "Internal error",
    503: "Service unavailable",
}


def problem(
    status: int, code: str, detail: str, headers: Mapping[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"urn:filing:problem:{code}",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "request_id": request_ids.get()[0],
        "code": code,
    }
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=dict(headers or {}))


def problem_of(exc: Exception) -> JSONResponse:
    """The response for an error a route raised. Messages are the errors' own, which carry
    ids and rule ids, never personal data; anything unexpected is a bare 500."""
    if isinstance(exc, ApiProblem):
        return problem(exc.status, exc.code, exc.detail, exc.headers, **exc.extra)
    if isinstance(exc, InvalidInput):
        return problem(422, "invalid_input", str(exc), rule_id=exc.rule_id, field=exc.field)
    if isinstance(exc, TransitionRefused):
        return problem(
            409,
            "refused",
            exc.reason,
            rule_id=exc.rule_id,
            subject_id=exc.filing_id,
            event=exc.event,
            state=exc.state,
            inputs=exc.inputs,
        )
    if isinstance(exc, ConcurrentUpdate):
        return problem(
            412,
            "stale_version",
            str(exc),
            rule_id=exc.rule_id,
            subject_id=exc.filing_id,
            inputs=exc.inputs,
        )
    if isinstance(exc, FilingNotFound):
        return problem(404, "not_found", "no such object visible to this key")
    if isinstance(exc, FilingError) and not isinstance(exc, PolicyConfigError):
        return problem(400, "refused", str(exc), rule_id=exc.rule_id)
    # Where it failed (file, line, function), without the message or source lines, which may
    # quote values.
    log().error(
        "http.unexpected_error",
        error_type=type(exc).__name__,
        request_id=request_ids.get()[0],
        frames=[
            f"{f.filename}:{f.lineno} {f.name}" for f in traceback.extract_tb(exc.__traceback__)
        ],
    )
    return problem(500, "internal", "the request failed; its request id is in the service log")


# -- middleware --------------------------------------------------------------------------------


class Edge:
    """Pure ASGI middleware around the app: gives each request its ids, refuses an oversized
    body before the app reads it, answers any exception the app let through as a bare 500
    problem (so Starlette's own error page, with its trace, is never reached), and logs one
    line per request (route template, never the body)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app, self.max_body = app, max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        given = headers.get("x-request-id", "")
        rid = given if _caller_id(given) else new_request_id()
        cid = headers.get("x-correlation-id", "")
        ids = (rid, cid if _caller_id(cid) else rid)
        token = request_ids.set(ids)
        started = time.perf_counter()
        status = 500
        started_response = False

        async def send_with_ids(message: Message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                started_response = True
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        try:
            length = headers.get("content-length")
            if length is not None and (not length.isdigit() or int(length) > self.max_body):
                await problem(
                    413, "too_large", f"request bodies are limited to {self.max_body} bytes"
                )(scope, receive, send_with_ids)
                return
            buffered = await self._buffered(receive)
            if buffered is None:
                await problem(
                    413, "too_large", f"request bodies are limited to {self.max_body} bytes"
                )(scope, receive, send_with_ids)
                return
            await self.app(scope, buffered, send_with_ids)
        except Exception as exc:
            # Answered here, inside the request's ids, and never re-raised: a server's own
            # error page would carry a stack trace.
            if started_response:
                log().error("http.failed_mid_response", error_type=type(exc).__name__)
                return
            await problem_of(exc)(scope, receive, send_with_ids)
        finally:
            route = scope.get("route")
            log().info(
                "http.request",
                method=scope["method"],
                route=getattr(route, "path", "-"),
                status=status,
                ms=round((time.perf_counter() - started) * 1000, 2),
                request_id=rid,
                key_id=scope.get("state", {}).get("key_id"),
            )
            request_ids.reset(token)

    async def _buffered(self, receive: Receive) -> Receive | None:
        """The request body read whole before the app runs, then replayed to it; None once it
        passes the limit. A body sent without Content-Length (chunked) is refused here like
        one that states its size: an error raised while FastAPI reads the body would become
        its own 400."""
        messages: list[Message] = []
        seen = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            seen += len(message.get("body", b""))
            if seen > self.max_body:
                return None
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        return replay


def _caller_id(value: str) -> bool:
    """Whether a caller's request or correlation id can be used as given: not one holding an
    ID or mobile number, which would be echoed, logged and stored in the audit trail."""
    return bool(_RID.match(value)) and mask_personal_data(value) == value


# -- authentication, rate limits, access ------------------------------------------------------


class RateLimit:
    """Per caller (`limits`): a key at its own rate, a client address without a valid key at
    the (lower) anonymous rate."""

    def __init__(self, rate: str, anonymous_rate: str, store: storage.Storage) -> None:
        self.item, self.anonymous = parse(rate), parse(anonymous_rate)
        self.limiter = strategies.SlidingWindowCounterRateLimiter(store)

    def check(self, caller: str, *, anonymous: bool = False) -> None:
        item = self.anonymous if anonymous else self.item
        if self.limiter.hit(item, caller):
            return
        reset = self.limiter.get_window_stats(item, caller).reset_time
        wait = max(1, int(reset - time.time() + 0.999))
        raise ApiProblem(
            429,
            "rate_limited",
            f"more than {item} from this caller; retry after {wait} s",
            headers={"Retry-After": str(wait)},
        )


@dataclass(frozen=True)
class Route:
    """A route as the audit trail names it: `POST /filings/{filing_id}/submit`."""

    method: str
    path: str

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def route_of(request: Request) -> Route:
    r = request.scope.get("route")
    return Route(request.method, getattr(r, "path", request.url.path))


# The access rule a denied call cites when the caller names none, by status.
ACCESS_RULES = {401: "A1", 403: "A2", 404: "A3"}

_ANONYMOUS = Principal("-", Role.INSURED, Channel.WEB_HALL, None, None, None, False, (), "-")


def deny(
    engine: FilingEngine,
    principal: Principal | None,
    route: Route,
    status: int,
    reason: str,
    *,
    rule_id: str | None = None,
    subject_id: str | None = None,
    policy: tuple[str | None, str | None] = (None, None),
) -> None:
    """Record a denied call in the audit trail (event `access`, outcome denied) with the rule
    that refused it, then log it. By default the access rule of the status: A1 no valid key
    (401), A2 a role the route does not admit (403), A3 an object outside the key's scope (404)."""
    rid, cid = request_ids.get()
    who = principal or _ANONYMOUS
    rule_id = rule_id or ACCESS_RULES.get(status)
    record = {
        "filing_id": subject_id,
        "event": "access",
        "from_state": None,
        "to_state": None,
        "outcome": Outcome.DENIED.value,
        "rule_id": rule_id,
        "reason": reason,
        "inputs": audit.canonical_inputs(
            {"route": str(route), "status": status, "key_id": principal and principal.key_id}
        ),
        "actor_id": f"key:{who.key_id}" if principal else "anonymous",
        "actor_role": who.role.value if principal else "anonymous",
        "actor_org": who.organisation,
        "channel": who.channel.value if principal else "unknown",
        "on_behalf": who.on_behalf,
        "policy_region": policy[0],
        "policy_version": policy[1],
        "request_id": rid,
        "correlation_id": cid,
        "at": engine.clock(),
    }
    with engine.store.write() as tx:
        seq = audit.append(tx, record)["seq"]
    log().warning(
        "http.access_denied",
        route=str(route),
        status=status,
        rule_id=rule_id,
        key_id=principal and principal.key_id,
        subject_id=subject_id,
        audit_seq=seq,
        request_id=rid,
    )


class OneAtATime:
    """A process-wide, non-blocking lock around work too heavy to queue (a walk of the whole
    audit chain): a second caller is told to come back (429 with Retry-After, about as long
    as the last run took) instead of waiting behind it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started = 0.0
        self._last = 1.0  # seconds the last run took

    @contextmanager
    def hold(self, what: str) -> Iterator[None]:
        if not self._lock.acquire(blocking=False):
            left = self._last - (time.monotonic() - self._started)
            wait = max(1, math.ceil(left))
            raise ApiProblem(
                429,
                "busy",
                f"{what} is running and one runs at a time; retry after {wait} s",
                headers={"Retry-After": str(wait)},
            )
        self._started = time.monotonic()
        try:
            yield
        finally:
            self._last = time.monotonic() - self._started
            self._lock.release()


def sees_admission(p: Principal, row: Row) -> bool:
    if p.role is Role.ADMINISTRATOR:
        return True
    if p.role is Role.INSURED:
        return p.person_key is not None and hmac.compare_digest(row["person_key"], p.person_key)
    if p.role is Role.HOSPITAL:
        return row["hospital_org"] is not None and row["hospital_org"] == p.organisation
    return p.covers_region(row["insured_region"])


def scope_sql(p: Principal) -> tuple[str, dict[str, Any]]:
    """The filings a key may see, as a WHERE clause over filing_record: its person's own
    (insured), one of its admissions' or one it acted on (hospital), one insured in its regions
    (officer, auditor), any (administrator). Every route and list uses this one clause."""
    if p.role is Role.ADMINISTRATOR:
        return "1 = 1", {}
    if p.role is Role.INSURED:
        return "person_key = :scope_person", {"scope_person": p.person_key or "-"}
    if p.role is Role.HOSPITAL:
        return (
            "(admission_id IN (SELECT id FROM admission_record WHERE hospital_org = :scope_org)"
            " OR id IN (SELECT filing_id FROM audit_record WHERE actor_org = :scope_org"
            " AND actor_role = 'hospital' AND outcome = 'applied'))",
            {"scope_org": p.organisation or "-"},
        )
    if not p.regions:
        return "1 = 1", {}
    clauses, params = [], {}
    for i, region in enumerate(p.regions):
        clauses.append(f"insured_region LIKE :scope_r{i}")
        params[f"scope_r{i}"] = prefix_of(region) + "%"
    return "(" + " OR ".join(clauses) + ")", params


# -- cursors ---------------------------------------------------------------------------------


def encode_cursor(value: str | int) -> str:
    raw = json.dumps({"after": value}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


_CURSOR_ID = re.compile(r"[0-9a-z]{1,32}")  # an id, as the API gives them out
_CURSOR_SEQ = range(2**63)  # a seq: what a BIGINT holds (SQLite overflows past it)


def decode_cursor(cursor: str | None, kind: type[str] | type[int]) -> Any:
    """The position a cursor this API gave out names: an id or a seq. Anything else (another
    type, a number past what the database holds, text no id is made of) is a 422."""
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))["after"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        value = None
    if (
        not isinstance(value, kind)
        or isinstance(value, bool)
        or not (value in _CURSOR_SEQ if isinstance(value, int) else _CURSOR_ID.fullmatch(value))
    ):
        raise ApiProblem(422, "invalid_cursor", "cursor: not a cursor this API gave out",
                         field="cursor")  # fmt: skip
    return value


# -- preconditions and idempotency -----------------------------------------------------------

_ETAG = re.compile(r'^(?:W/)?"(\d{1,9})"$')


def etag(version: int) -> str:
    return f'"{version}"'


def expected_version(if_match: str | None) -> int | None:
    """The version an `If-Match` names. Required on transitions (428 without it); `*` says
    the caller accepts whatever the current version is."""
    if if_match is None:
        raise ApiProblem(
            428,
            "precondition_required",
            'transitions need If-Match: the ETag of the version you read, e.g. If-Match: "3"',
        )
    if if_match.strip() == "*":
        return None
    m = _ETAG.match(if_match.strip())
    if m is None:
        raise ApiProblem(
            412, "stale_version", 'If-Match must be one ETag this API gave out, e.g. "3"'
        )
    return int(m.group(1))


_IDEM = re.compile(r"^[A-Za-z0-9._:-]{8,64}$")


class Idempotency:
    """`Idempotency-Key` on creating requests, scoped to the caller's key.

    The answer is stored in the command's own transaction (the engine's `seal`), so a filing
    and the answer that names it commit together or not at all: no window in which a crash
    leaves one without the other, and no write beyond the command's own. A replay gets the
    stored answer; the same key with another body is 422; a duplicate that ran beside the
    first finds the key taken when it comes to commit, rolls back everything it did, and is
    409. Answers that wrote nothing (bad input, a stale version) are not stored: a retry
    computes them again."""

    def __init__(self, engine: FilingEngine, hours: int) -> None:
        self.engine, self.ttl = engine, timedelta(hours=hours)
        self.purged_at: datetime | None = None

    def purge(self, tx: Tx, now: datetime) -> None:
        """Drop answers past their time, at most once a minute, inside a write that is
        happening anyway (the index on `created_at` keeps it a short range delete)."""
        if self.purged_at is not None and now - self.purged_at < timedelta(minutes=1):
            return
        self.purged_at = now
        tx.run("DELETE FROM idempotency_record WHERE created_at < :cut", {"cut": now - self.ttl})

    def _hmac(self, text: str) -> str:
        # Keyed: a body may hold an ID number (and a caller may make a key of one), so a plain
        # hash could be reversed by trying.
        return hmac.new(self.engine.settings.person_key, text.encode(), hashlib.sha256).hexdigest()

    def run(
        self,
        p: Principal,
        key: str | None,
        route: Route,
        body: Mapping[str, Any],
        work: Callable[[Seal | None], Response],
    ) -> Response:
        if key is None:
            return _answer(lambda: work(None))
        if not _IDEM.match(key):
            raise ApiProblem(
                422,
                "invalid_input",
                "Idempotency-Key: 8 to 64 letters, digits or ._:-",
                field="Idempotency-Key",
            )
        ids = {"k": p.key_id, "i": self._hmac(f"idempotency:{key}")}
        fp = self._hmac(json.dumps([str(route), body], sort_keys=True, default=str))
        with self.engine.store.read() as tx:
            row = tx.one(_FIND, ids)
        if row is not None and row["created_at"] >= self.engine.clock() - self.ttl:
            return _stored(row, fp)
        seal = Seal(self, ids, fp)
        try:
            return _answer(lambda: work(seal))
        except _KeyTaken as taken:
            if not hmac.compare_digest(taken.row["fingerprint"], fp):
                raise _reused() from None
            raise ApiProblem(
                409,
                "request_in_progress",
                "another request with this Idempotency-Key ran at the same time and was "
                "applied; this one was not. Send it again to get that answer",
            ) from None


_FIND = "SELECT * FROM idempotency_record WHERE key_id = :k AND idempotency_key = :i"


class _KeyTaken(Exception):
    def __init__(self, row: Row) -> None:
        self.row = row


def _reused() -> ApiProblem:
    return ApiProblem(
        422,
        "idempotency_key_reused",
        "this Idempotency-Key was used with another request body or route",
        field="Idempotency-Key",
    )


class Seal:
    """Called by the engine inside a command's transaction with its outcome: stores the
    answer under the key, or aborts the command if the key was taken meanwhile."""

    def __init__(self, owner: Idempotency, ids: dict[str, str], fingerprint: str) -> None:
        self.owner, self.ids, self.fingerprint = owner, ids, fingerprint
        self.render: Callable[[Any], JSONResponse] = problem_of
        self.answer: JSONResponse | None = None

    def __call__(self, tx: Tx, outcome: Any) -> None:
        now = self.owner.engine.clock()
        row = tx.one(_FIND, self.ids)
        if row is not None and row["created_at"] >= now - self.owner.ttl:
            raise _KeyTaken(row)
        if row is not None:
            tx.run(
                "DELETE FROM idempotency_record WHERE key_id = :k AND idempotency_key = :i",
                self.ids,
            )
        self.owner.purge(tx, now)
        answer = problem_of(outcome) if isinstance(outcome, Exception) else self.render(outcome)
        tx.run(
            "INSERT INTO idempotency_record (key_id, idempotency_key, fingerprint, "
            "request_id, status, body, created_at) VALUES (:k, :i, :f, :r, :s, :b, :at)",
            {**self.ids, "f": self.fingerprint, "r": request_ids.get()[0],
             "s": answer.status_code, "b": bytes(answer.body).decode(), "at": now},
        )  # fmt: skip
        self.answer = answer


def _stored(row: Row, fp: str) -> Response:
    if not hmac.compare_digest(row["fingerprint"], fp):
        raise _reused()
    body = row["body"] or "{}"
    headers = {"Idempotent-Replayed": "true"}
    version = json.loads(body).get("version") if row["status"] < 300 else None
    if isinstance(version, int):
        headers["ETag"] = etag(version)
    media = "application/json" if row["status"] < 400 else PROBLEM
    return Response(body, status_code=row["status"], media_type=media, headers=headers)


def _answer(work: Callable[[], Response]) -> Response:
    try:
        return work()
    except _KeyTaken:
        raise
    except Exception as exc:  # every other failure becomes a problem response
        return problem_of(exc)
