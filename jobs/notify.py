"""Delivering reminders from the outbox (workflow.outbox): as a structured log line by
default, or as an HTTP POST to a webhook when one is configured.

A delivery that fails stays in the outbox with its error and is retried with exponential
backoff (`retry_base_seconds`, doubling, capped at `retry_max_seconds`): never dropped. The
payload carries ids, instants and rule ids only, never personal data, and a stable `id` that a
receiver deduplicates on (a crash between a delivery and its record can repeat it).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, Protocol

import structlog

from workflow.api import FilingEngine
from workflow.config import SchedulerSettings
from workflow.outbox import Reminder, claim, delivered, failed


def _log() -> Any:
    """Looked up at each use: a logger cached at import would keep the first configuration."""
    return structlog.get_logger("jobs.notify")


class DeliveryError(Exception):
    """A delivery did not succeed; its message names the cause, never the payload."""


class Notifier(Protocol):
    def send(self, payload: Mapping[str, Any]) -> None:
        """Deliver one reminder or raise (any exception counts as a failed delivery)."""


class LogNotifier:
    """A structured log line per reminder (`reminder.<kind>`), for a log pipeline to route."""

    def send(self, payload: Mapping[str, Any]) -> None:
        _log().info(str(payload["event"]), **{k: v for k, v in payload.items() if k != "event"})


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """urllib would follow a 301/302 answer to a POST with a bodiless GET, and that GET's 200
    would mark a reminder delivered that the receiver never got: a redirect is a failure."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class WebhookNotifier:
    """POST the reminder as JSON; a 2xx answer to that POST is delivered, anything else
    (redirects included) is a failure to retry. The reminder's id is also sent as
    `Idempotency-Key`."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url = url
        self.timeout = timeout
        self._opener = urllib.request.build_opener(_NoRedirects())

    def send(self, payload: Mapping[str, Any]) -> None:
        body = json.dumps(payload, ensure_ascii=False, sort_keys=True).encode()
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Idempotency-Key": str(payload["id"]),
                "User-Agent": "filing-workflow-scheduler",
            },
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            raise DeliveryError(f"HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DeliveryError(f"{type(exc).__name__}: {reason}") from None
        if not 200 <= status < 300:
            raise DeliveryError(f"HTTP {status}")


def notifier_for(settings: SchedulerSettings) -> Notifier:
    if settings.webhook_url:
        return WebhookNotifier(settings.webhook_url, settings.webhook_timeout_seconds)
    return LogNotifier()


def backoff(attempts: int, settings: SchedulerSettings) -> timedelta:
    """The wait after the `attempts`-th failed delivery: base, doubling, capped."""
    seconds = settings.retry_base_seconds * 2 ** max(attempts - 1, 0)
    return timedelta(seconds=min(seconds, settings.retry_max_seconds))


def deliver_due(
    engine: FilingEngine,
    notifier: Notifier,
    worker: str,
    settings: SchedulerSettings,
    *,
    limit: int = 100,
    stopping: Callable[[], bool] = lambda: False,
) -> tuple[int, int, int]:
    """Claim deliverable reminders (lease), drop those no longer worth sending (recorded),
    send each of the rest, record the result. Returns (delivered, failed, claimed). Stops early,
    leaving the rest leased to expire, when `stopping()` says so."""
    store, clock = engine.store, engine.clock
    sent = missed = 0
    lease = timedelta(seconds=settings.lease_seconds)
    # Claim no more than can be sent, each at its full timeout, before the lease runs out:
    # a lease that ran out would let another daemon send the same reminder meanwhile.
    limit = max(
        1, min(limit, int(settings.lease_seconds // (settings.webhook_timeout_seconds + 1)))
    )
    claimed = claim(store, worker, clock(), lease, limit)
    for reminder in engine.vet_reminders(claimed, worker):
        if stopping():
            break
        try:
            notifier.send(reminder.payload)
        except Exception as exc:
            missed += 1
            error = str(exc) if isinstance(exc, DeliveryError) else type(exc).__name__
            next_at = clock() + backoff(reminder.attempts + 1, settings)
            failed(store, worker, reminder, error, next_at)
            _log().warning(
                "reminder.delivery_failed", reminder_id=reminder.payload["id"],
                error=error, attempts=reminder.attempts + 1, next_attempt_at=next_at.isoformat(),
            )  # fmt: skip
            continue
        if delivered(store, worker, reminder, clock()):
            sent += 1
    return sent, missed, len(claimed)


__all__ = ["DeliveryError", "LogNotifier", "Notifier", "Reminder", "WebhookNotifier", "deliver_due"]
