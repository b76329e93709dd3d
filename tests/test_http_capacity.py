"""What the service takes on at once: past `[http] max_in_flight` requests inside the app, one
more is shed at once with 503 and Retry-After, and the service recovers as soon as they end;
a shared rate-limit storage it cannot reach refuses the start. No timing: requests are held
inside the app by an event the test sets."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from limits.storage import MemoryStorage

from states.errors import PolicyConfigError
from tests.http_world import issue, problem, roomy
from workflow import FilingEngine
from workflow.config import Settings
from workflow.http import create_app

HELD = 2


@pytest.fixture
def engine(
    open_engine: Callable[..., FilingEngine], sqlite_url: str, settings: Settings
) -> FilingEngine:
    return open_engine(
        sqlite_url, settings=roomy(settings, max_in_flight=HELD, retry_after_seconds=7)
    )


class Gate:
    """Holds every call inside the app until opened; counts who is waiting at it."""

    def __init__(self) -> None:
        self.entered = threading.Semaphore(0)
        self.opened = threading.Event()

    def hold(self, call: Callable[[], Any]) -> Callable[[], Any]:
        def held() -> Any:
            self.entered.release()
            assert self.opened.wait(timeout=60), "the test never opened the gate"
            return call()

        return held

    async def until_inside(self, n: int) -> None:
        for _ in range(n):
            assert await asyncio.to_thread(self.entered.acquire, timeout=60)


def test_past_the_bound_a_request_is_shed_with_503_and_retry_after_and_the_service_recovers(
    engine: FilingEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = issue(engine, "administrator", "operator")
    gate = Gate()
    monkeypatch.setattr(engine, "checkpoint", gate.hold(engine.checkpoint))
    app = create_app(engine)

    async def overload() -> tuple[httpx.Response, httpx.Response, list[httpx.Response], Any]:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://service",
            headers={"Authorization": f"Bearer {admin}"},
        ) as client:
            held = [asyncio.create_task(client.get("/audit/checkpoint")) for _ in range(HELD)]
            await gate.until_inside(HELD)
            shed = await client.get("/audit/checkpoint")
            health = await client.get("/health")
            gate.opened.set()
            served = await asyncio.gather(*held)
            after = await client.get("/audit/checkpoint")
        return shed, health, list(served), after

    shed, health, served, after = asyncio.run(overload())

    body = problem(shed, 503)
    assert body["code"] == "overloaded" and shed.headers["retry-after"] == "7"  # [http]
    assert health.status_code == 200  # /health is not bounded: busy is not dead
    assert [r.status_code for r in served] == [200] * HELD
    assert after.status_code == 200


class Unreachable(MemoryStorage):
    """A shared storage whose server does not answer (registered as `unreachable://`)."""

    STORAGE_SCHEME = ["unreachable"]  # noqa: RUF012 (limits reads it from the class)

    def check(self) -> bool:
        return False


def test_a_rate_limit_storage_that_cannot_be_reached_refuses_the_start(
    open_engine: Callable[..., FilingEngine], sqlite_url: str, settings: Settings
) -> None:
    engine = open_engine(sqlite_url, settings=roomy(settings, rate_limit_storage="unreachable://"))

    with pytest.raises(PolicyConfigError) as refused:
        create_app(engine)

    assert refused.value.key == "http.rate_limit_storage"
    assert "cannot be reached" in refused.value.problem
