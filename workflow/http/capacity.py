"""What the service takes on: a bound on the requests in flight, and the rate-limit storage,
checked when the service starts.

Past the bound a request is answered at once with 503 and `Retry-After` instead of waiting in
a queue: under an offered load the service cannot keep, latency stays that of the requests it
serves, and callers learn when to come back (uvicorn's own `limit_concurrency` answers a
plain-text 503 without `Retry-After`, and counts idle keep-alive connections too).
"""

from __future__ import annotations

from collections.abc import Collection

from limits.errors import ConfigurationError
from limits.storage import Storage, storage_from_string
from starlette.types import ASGIApp, Receive, Scope, Send

from states.errors import PolicyConfigError
from workflow.http.support import problem

# Answered whatever the load: a liveness probe that got 503 under load would have the
# service restarted when it is only busy.
UNBOUNDED = frozenset({"/health"})


class InFlightLimit:
    """Pure ASGI middleware: at most `limit` requests inside the app at once. One more is
    answered 503 (problem+json, `Retry-After: retry_after_seconds`) without entering it.
    Counted on the event loop's thread, so no lock is needed: nothing awaits between the
    check and the count."""

    def __init__(
        self,
        app: ASGIApp,
        limit: int,
        retry_after_seconds: int,
        unbounded: Collection[str] = UNBOUNDED,
    ) -> None:
        self.app, self.limit, self.retry_after = app, limit, retry_after_seconds
        self.unbounded = frozenset(unbounded)
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.unbounded:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            await problem(
                503,
                "overloaded",
                f"the service is serving {self.limit} requests; retry after {self.retry_after} s",
                headers={"Retry-After": str(self.retry_after)},
            )(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


def rate_limit_storage(uri: str) -> Storage:
    """The rate-limit counts' storage, reachable now. An unreachable shared storage refuses
    the start (naming the key) rather than fall back to counting in each process, which would
    multiply every caller's limit by the number of processes unnoticed."""
    key = "http.rate_limit_storage"
    try:
        store = storage_from_string(uri)
    except (ConfigurationError, ValueError):
        raise PolicyConfigError(
            key, "cannot be opened: its client library is missing or the URI is malformed"
        ) from None
    if not isinstance(store, Storage):  # an async+ storage: this service counts synchronously
        raise PolicyConfigError(key, "must be a storage used synchronously (no async+ scheme)")
    if not store.check():
        raise PolicyConfigError(key, "cannot be reached; the service does not start without it")
    return store
