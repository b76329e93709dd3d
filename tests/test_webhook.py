"""Reminders delivered to a real HTTP receiver (jobs/notify.py WebhookNotifier): a receiver that
fails for a while (a timeout, a dropped connection, HTTP 500s) gets every reminder exactly once
after it recovers, each failed attempt visible in the outbox meanwhile and retried after its
backoff; a receiver that is down leaves them pending and counted as failing. The payload names
no person."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from jobs.daemon import Daemon, status
from jobs.notify import WebhookNotifier
from tests.conftest import Clock, effective, id_number
from workflow import FilingEngine
from workflow.config import Settings

TIMEOUT = 0.5  # the notifier's; the receiver's slow answer takes longer
BASE = 60.0  # retry_base_seconds: the first wait after a failure, doubling


@dataclass
class Receiver:
    """Answers each POST by the next planned behaviour ("slow", "drop", "moved" or an HTTP
    status), then 200 for good. Keeps every request it read: its Idempotency-Key, its answer
    and its body."""

    plan: list[str | int]
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next(self) -> str | int:
        with self.lock:
            return self.plan.pop(0) if self.plan else 200

    def keep(self, key: str | None, answer: str | int, body: bytes, headers: Any) -> None:
        with self.lock:
            self.requests.append(
                {"key": key, "answer": answer, "body": body.decode(), "headers": dict(headers)}
            )

    def delivered(self) -> Counter[str]:
        """Requests answered 2xx, by Idempotency-Key: what the receiver accepted."""
        with self.lock:
            return Counter(r["key"] for r in self.requests if r["answer"] == 200)

    def answered(self, answer: str | int) -> int:
        with self.lock:
            return sum(1 for r in self.requests if r["answer"] == answer)


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            answer = receiver.next()
            receiver.keep(self.headers.get("Idempotency-Key"), answer, body, self.headers)
            if answer == "slow":  # the client gives up first; then the connection just ends
                time.sleep(TIMEOUT * 2)
                self.close_connection = True
                return
            if answer == "drop":  # no answer at all: the connection is closed under the client
                self.close_connection = True
                return
            if answer == "moved":  # the endpoint moved: a redirect, as a web server sends it
                self.send_response(301)
                self.send_header("Location", "/moved")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            assert isinstance(answer, int)
            self.send_response(answer)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:  # the page a redirect leads to, as a browser would see it
            receiver.keep(self.headers.get("Idempotency-Key"), "GET", b"", self.headers)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

    return Handler


@pytest.fixture
def receiver() -> Iterator[Callable[[list[str | int]], tuple[Receiver, str]]]:
    servers: list[ThreadingHTTPServer] = []

    def start(plan: list[str | int]) -> tuple[Receiver, str]:
        recv = Receiver(list(plan))
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(recv))
        server.daemon_threads = True
        server.handle_error = lambda *_: None  # type: ignore[method-assign]
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return recv, f"http://127.0.0.1:{server.server_address[1]}/reminders"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A local port nothing listens on: connecting to it is refused. The port stays bound (not
    listening) for the test, so no other process on the machine can take it meanwhile."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


@pytest.fixture
def retrying(settings: Settings) -> Settings:
    return replace(
        settings,
        scheduler=replace(settings.scheduler, retry_base_seconds=BASE, retry_max_seconds=8 * BASE),
    )


PEOPLE = range(4)


@pytest.fixture
def reminding(
    open_engine: Callable[..., FilingEngine], sqlite_url: str, retrying: Settings, clock: Clock
) -> FilingEngine:
    """Four effective filings, the clock a day before their validity ends: both expiry
    reminders of each (30 and 7 days before) are due, eight in all."""
    engine = open_engine(sqlite_url, settings=retrying)
    for n in PEOPLE:
        effective(engine, id_number=id_number(n))
    clock.advance(days=182)
    return engine


def pending(engine: FilingEngine) -> list[Any]:
    return [r for r in engine.reminders() if r.delivered_at is None]


def test_a_failing_receiver_gets_every_reminder_exactly_once_after_it_recovers(
    reminding: FilingEngine, clock: Clock, receiver: Any
) -> None:
    # Ten failures, then recovery: all eight fail once, two of them twice.
    recv, url = receiver(["slow", "drop", *[500] * 8])
    daemon = Daemon(reminding, notifier=WebhookNotifier(url, timeout=TIMEOUT), daemon_id="d1")
    assert daemon.sweep().fired == 8

    assert daemon.deliver() == (0, 8)
    first = reminding.reminders()
    assert len(first) == 8
    assert all(r.delivered_at is None and r.attempts == 1 for r in first)
    assert all(r.next_attempt_at == clock() + timedelta(seconds=BASE) for r in first)
    errors = sorted(str(r.last_error) for r in first)
    assert errors[:6] == ["HTTP 500"] * 6
    assert errors[6].startswith("RemoteDisconnected") and errors[7].startswith("TimeoutError")
    assert status(reminding)["outbox"] == {
        "pending": 8, "failing": 8, "oldest_pending_at": first[0].created_at.isoformat(),
        "abandoned": 0,
    }  # fmt: skip

    assert daemon.deliver() == (0, 0), "nothing is retried before its backoff"
    clock.advance(seconds=BASE)
    assert daemon.deliver() == (6, 2)
    twice = pending(reminding)
    assert [(r.attempts, r.last_error) for r in twice] == [(2, "HTTP 500")] * 2
    assert all(r.next_attempt_at == clock() + timedelta(seconds=2 * BASE) for r in twice)
    assert status(reminding)["outbox"]["failing"] == 2

    clock.advance(seconds=BASE)
    assert daemon.deliver() == (0, 0), "the second wait is twice the first"
    clock.advance(seconds=BASE)
    assert daemon.deliver() == (2, 0)

    final = reminding.reminders()
    assert len(final) == 8 and all(r.delivered_at is not None for r in final)
    assert all(r.last_error is None for r in final)
    assert recv.delivered() == Counter({r.payload["id"]: 1 for r in final})
    # Every attempt reached the receiver under the reminder's one Idempotency-Key.
    assert Counter(r["key"] for r in recv.requests) == {r.payload["id"]: r.attempts for r in final}
    assert len(recv.requests) == 8 + 2 + 8
    assert (recv.answered("slow"), recv.answered("drop"), recv.answered(500)) == (1, 1, 8)
    assert status(reminding)["outbox"]["failing"] == 0
    assert daemon.deliver() == (0, 0)


def test_a_receiver_that_is_down_leaves_the_reminders_pending_and_counted_as_failing(
    reminding: FilingEngine, clock: Clock, closed_port: int
) -> None:
    url = f"http://127.0.0.1:{closed_port}/reminders"
    daemon = Daemon(reminding, notifier=WebhookNotifier(url, timeout=TIMEOUT), daemon_id="d1")
    daemon.sweep()

    for _ in range(3):
        assert daemon.deliver() == (0, 8)
        clock.advance(seconds=8 * BASE)

    left = reminding.reminders()
    assert len(left) == 8
    assert all(r.delivered_at is None and r.attempts == 3 for r in left)
    assert all("refused" in (r.last_error or "").lower() for r in left), left[0].last_error
    outbox = status(reminding)["outbox"]
    assert (outbox["pending"], outbox["failing"]) == (8, 8)
    # Every due row fired all the same: the reminders wait in the outbox, not in the sweep.
    assert status(reminding)["due_backlog"] == 0


def test_the_webhook_payload_names_no_person(
    reminding: FilingEngine, clock: Clock, receiver: Any
) -> None:
    recv, url = receiver([])
    daemon = Daemon(reminding, notifier=WebhookNotifier(url, timeout=TIMEOUT), daemon_id="d1")
    daemon.sweep()
    assert daemon.deliver() == (8, 0)

    people = [id_number(n) for n in PEOPLE]
    filings = [f for p in people for f in reminding.list_for_person(p)]
    secrets = [*people, *(f.person_key for f in filings), *(f.person_masked for f in filings)]
    assert len(recv.requests) == 8
    for request in recv.requests:
        sent = request["body"] + json.dumps(request["headers"])
        assert not [s for s in secrets if s in sent]
        payload = json.loads(request["body"])
        assert payload["id"] == request["key"]
        assert payload["subject_id"] in {f.id for f in filings}


def test_a_reminder_is_delivered_only_when_a_post_carrying_it_is_answered_2xx(
    reminding: FilingEngine, receiver: Any
) -> None:
    recv, url = receiver(["moved"])  # the first POST is redirected, the rest accepted
    daemon = Daemon(reminding, notifier=WebhookNotifier(url, timeout=TIMEOUT), daemon_id="d1")
    daemon.sweep()

    daemon.deliver()

    delivered = {r.payload["id"] for r in reminding.reminders() if r.delivered_at is not None}
    assert delivered == set(recv.delivered())
