"""Shared helpers of the HTTP API tests: keys, a client that names its caller, problem checks,
the audit records of one request, and the app served by uvicorn on a free port (for real
concurrency)."""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from workflow import FilingEngine, keys
from workflow.config import Settings

# Realistic people (valid check digits; not real persons).
A_ID = "35020319900101123X"  # Xiamen retiree, files K1 online: effective at once
B_ID = "440703200001010012"  # Jiangmen, admitted as an emergency in Guangzhou
C_ID = "440703200001010020"  # Jiangmen, a second person
D_ID = "350203199001010026"  # Xiamen, a planned admission without a filing (P3: a claim)
E_ID = "440703200001010039"  # Jiangmen, referred by the hospital (E4)

H1, H2 = "H4401001", "H4401002"
XIAMEN = {"insurance_type": "employee", "insured_region": "350200", "treatment_region": "440300"}
XIAMEN_GZ = {**XIAMEN, "treatment_region": "440100"}
JIANGMEN = {"insurance_type": "employee", "insured_region": "440700", "treatment_region": "440100"}
K1_DOCS = ["identity", "declaration_form", "household_register", "residence_proof"]
K4_DOCS = ["identity", "declaration_form", "referral_certificate"]
K5_DOCS = ["identity", "declaration_form", "emergency_diagnosis"]
K2_DOCS = ["identity", "declaration_form", "residence_permit"]
K6_DOCS = ["identity", "declaration_form"]
BEIJING = {"insurance_type": "employee", "insured_region": "110000", "treatment_region": "440100"}
F_ID = "11010519491231002X"  # Beijing, a temporary filing (K6): six months (V3)


def k1_body(id_number: str = A_ID, **over: Any) -> dict[str, Any]:
    """A Xiamen K1 filing: on an online channel it takes effect at once (L1)."""
    body: dict[str, Any] = {
        "id_number": id_number,
        "kind": "K1",
        **XIAMEN,
        "documents": K1_DOCS,
        "consent_given": True,
        "card_settlement_enabled": True,
    }
    return {**body, **over}


def jiangmen_body(id_number: str = C_ID, kind: str = "K2", **over: Any) -> dict[str, Any]:
    """A Jiangmen filing: reviewed by the agency (submitted, then approved or rejected)."""
    docs = {"K2": K2_DOCS, "K4": K4_DOCS, "K5": K5_DOCS}[kind]
    return {"id_number": id_number, "kind": kind, **JIANGMEN, "documents": docs, **over}


def beijing_body(id_number: str = F_ID, **over: Any) -> dict[str, Any]:
    """A Beijing temporary filing (K6): reviewed, valid six months (V3)."""
    return {"id_number": id_number, "kind": "K6", **BEIJING, "documents": K6_DOCS, **over}


def admission_body(
    id_number: str, hospital: str, region: dict[str, str], admitted_on: date, **over: Any
) -> dict[str, Any]:
    return {
        "id_number": id_number,
        "hospital_code": hospital,
        "admitted_on": admitted_on.isoformat(),
        **region,
        **over,
    }


def issue(engine: FilingEngine, role: str, label: str, **kw: Any) -> str:
    """A key's token (what `filing keys issue` prints once)."""
    return keys.issue(
        engine.store,
        role=role,
        label=label,
        now=engine.clock(),
        person_secret=engine.settings.person_key,
        codes=engine.settings.codes,
        **kw,
    ).token


@dataclasses.dataclass(frozen=True)
class Keys:
    """One key per holder of the tests' world."""

    a: str  # insured A (Xiamen, online)
    b: str  # insured B (Jiangmen, at the counter)
    c: str  # insured C (Jiangmen)
    d: str  # insured D (Xiamen)
    h1: str  # hospital H1's information system
    h1_office: str  # H1's medical office: another actor of the same hospital (E4)
    h2: str  # hospital H2
    xm: str  # Xiamen agency officer (350200)
    jm: str  # Jiangmen agency officer (440700)
    auditor: str  # an auditor for Jiangmen (440700)
    admin: str


def issue_keys(engine: FilingEngine) -> Keys:
    return Keys(
        a=issue(engine, "insured", "person A", id_number=A_ID, channel="mini_program"),
        b=issue(engine, "insured", "person B", id_number=B_ID),
        c=issue(engine, "insured", "person C", id_number=C_ID),
        d=issue(engine, "insured", "person D", id_number=D_ID),
        h1=issue(engine, "hospital", "H1 HIS", organisation=H1),
        h1_office=issue(engine, "hospital", "H1 medical office", organisation=H1),
        h2=issue(engine, "hospital", "H2 HIS", organisation=H2),
        xm=issue(engine, "officer", "Xiamen counter", organisation="XM", regions=("350200",)),
        jm=issue(engine, "officer", "Jiangmen counter", organisation="JM", regions=("440700",)),
        auditor=issue(engine, "auditor", "Jiangmen auditor", regions=("440700",)),
        admin=issue(engine, "administrator", "operator"),
    )


def roomy(settings: Settings, **http: Any) -> Settings:
    """The settings with a rate limit no test reaches unless it means to (a test client is
    faster than 50 calls a second), and any other [http] value given."""
    values = {"rate_limit": "100000/second", "anonymous_rate_limit": "100000/second", **http}
    return dataclasses.replace(settings, http=dataclasses.replace(settings.http, **values))


def etag_of(version: int) -> str:
    return f'"{version}"'


def key_id(token: str) -> str:
    return token[len(keys.PREFIX) :].split("_", 1)[0]


class Http:
    """A client that names its caller per call and gives each call a known request id."""

    def __init__(self, client: TestClient | httpx.Client) -> None:
        self.client = client

    def call(
        self,
        method: str,
        path: str,
        token: str | None = None,
        *,
        json: Any = None,
        if_match: str | None = None,
        idem: str | None = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        # The hyphens of a UUID's text keep digit runs short: 15 digits in a row look like an ID
        # number, and the service replaces such a request id with its own.
        h = {"X-Request-ID": f"t-{uuid.uuid4()}"}
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        if if_match is not None:
            h["If-Match"] = if_match
        if idem is not None:
            h["Idempotency-Key"] = idem
        h.update(headers or {})
        return self.client.request(method, path, json=json, headers=h, params=params)

    def get(self, path: str, token: str | None, **kw: Any) -> httpx.Response:
        return self.call("GET", path, token, **kw)

    def post(self, path: str, token: str | None, **kw: Any) -> httpx.Response:
        return self.call("POST", path, token, **kw)

    def ok(self, method: str, path: str, token: str, **kw: Any) -> Any:
        """The JSON of a call that must succeed (2xx)."""
        r = self.call(method, path, token, **kw)
        assert 200 <= r.status_code < 300, (method, path, r.status_code, r.text)
        return r.json()


def problem(r: httpx.Response, status: int) -> dict[str, Any]:
    """Assert an RFC 9457 problem with this status whose request id is the response's."""
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body: dict[str, Any] = r.json()
    assert body["status"] == status
    assert body["code"]
    assert body["request_id"] == r.headers["x-request-id"]
    return body


def audit_of(engine: FilingEngine, request_id: str) -> list[dict[str, Any]]:
    """The audit records written under one request id, in order."""
    with engine.store.read() as tx:
        rows = tx.all(
            "SELECT * FROM audit_record WHERE request_id = :r ORDER BY seq", {"r": request_id}
        )
    return [{**r, "inputs": json.loads(r["inputs"])} for r in rows]


def count(engine: FilingEngine, sql: str, **params: Any) -> int:
    with engine.store.read() as tx:
        return int(tx.scalar(sql, params))


def free_port() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def served(app: FastAPI) -> Iterator[str]:
    """The app under a real uvicorn server in a background thread; yields its base URL.
    Requests run concurrently there, as in `filing serve` (sync routes in the server's thread
    pool, each request on its own connection)."""
    sock = free_port()
    config = uvicorn.Config(
        app, log_config=None, access_log=False, lifespan="off", server_header=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive(), "uvicorn did not start"
        assert time.monotonic() < deadline, "uvicorn did not start within 10 s"
        time.sleep(0.01)
    host, port = sock.getsockname()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
