"""The HTTP client of the tests and benchmarks that talk to a served process (`filing serve`).

A kept-alive connection can be closed by the server just as the client sends on it (an idle
timeout, a restart, a loaded machine): the request then fails with `RemoteProtocolError`
("Server disconnected without sending a response") or `ReadError` before the server saw it.
httpx's own transport retries cover failures to connect only, so a request that is safe to
send twice is retried here once: an idempotent method, or a request with an Idempotency-Key
(the server answers its replay with the stored answer). Anything else fails as it did.

The client keeps an idle connection for `KEEPALIVE_EXPIRY` seconds, less than the server's
`[http] keep_alive_seconds`, so in the ordinary case the client drops it first.
"""

from __future__ import annotations

from typing import Any

import httpx

KEEPALIVE_EXPIRY = 5.0  # seconds; httpx's default, stated
DROPPED = (httpx.RemoteProtocolError, httpx.ReadError)
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


def replayable(request: httpx.Request) -> bool:
    return request.method in IDEMPOTENT or "idempotency-key" in request.headers


class RetryDropped(httpx.BaseTransport):
    """Sends again, once, a replayable request whose connection was dropped under it."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.retried = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return self.inner.handle_request(request)
        except DROPPED:
            if not replayable(request):
                raise
            self.retried += 1
            return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


class AsyncRetryDropped(httpx.AsyncBaseTransport):
    """`RetryDropped` for an `httpx.AsyncClient`."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.retried = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await self.inner.handle_async_request(request)
        except DROPPED:
            if not replayable(request):
                raise
            self.retried += 1
            return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def _limits(connections: int) -> httpx.Limits:
    return httpx.Limits(
        max_connections=connections,
        max_keepalive_connections=connections,
        keepalive_expiry=KEEPALIVE_EXPIRY,
    )


def client(base_url: str, *, connections: int = 10, **kw: Any) -> httpx.Client:
    transport = RetryDropped(httpx.HTTPTransport(limits=_limits(connections)))
    return httpx.Client(base_url=base_url, transport=transport, **kw)


def async_client(base_url: str, *, connections: int = 256, **kw: Any) -> httpx.AsyncClient:
    transport = AsyncRetryDropped(httpx.AsyncHTTPTransport(limits=_limits(connections)))
    return httpx.AsyncClient(base_url=base_url, transport=transport, **kw)
