"""`filing serve`: one command runs the HTTP API with the scheduler in the same process on the
embedded SQLite default, ready for the README's first requests; SIGTERM stops both cleanly."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tests import readme
from tests.http_client import KEEPALIVE_EXPIRY, RetryDropped, client

ROOT = Path(__file__).resolve().parents[1]
FILING = [sys.executable, "-m", "jobs.cli"]
PERSON = "35020319900101123X"
FIRST_FILING = {
    "id_number": PERSON,
    "kind": "K1",
    "insurance_type": "employee",
    "insured_region": "350200",
    "treatment_region": "440300",
    "documents": ["identity", "declaration_form", "household_register", "residence_proof"],
    "consent_given": True,
    "card_settlement_enabled": True,
}


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "FILING_CONFIG": str(ROOT / "config.toml"),
        "FILING_DATABASE_URL": f"sqlite:///{tmp_path / 'filings.db'}",
        "FILING_PERSON_KEY": "serve-test",
        "FILING_LOG_FORMAT": "json",
        "PYTHONPATH": str(ROOT),
    }


def _serve(tmp_path: Path, *extra: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`filing serve` on a port the system picks (no fixed port: runs side by side never
    collide), read back from --port-file."""
    port_file = tmp_path / "port"
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [*FILING, "serve", "--port", "0", "--port-file", str(port_file), *extra],
        env=_env(tmp_path),
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = _wait_until_healthy(proc, port_file, tmp_path / "serve.log")
        yield base, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        log.close()


def _wait_until_healthy(proc: subprocess.Popen[str], port_file: Path, log: Path) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        text = port_file.read_text() if port_file.exists() else ""
        if text.endswith("\n"):
            base = f"http://127.0.0.1:{int(text)}"
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    return base
            except httpx.TransportError:
                pass
        time.sleep(0.05)
    raise AssertionError(log.read_text())


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[httpx.Client, subprocess.Popen[str]]]:
    """The service, and a client that keeps its connections alive as a real caller does."""
    for base, proc in _serve(tmp_path):
        with client(base, timeout=30) as web:
            yield web, proc


def _issue(tmp_path: Path, *args: str) -> str:
    out = subprocess.run(
        [*FILING, "keys", "issue", "--token-only", *args],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def test_serve_answers_the_readme_first_requests_and_runs_the_scheduler_inside(
    tmp_path: Path, served: tuple[httpx.Client, subprocess.Popen[str]]
) -> None:
    web, proc = served
    key = _issue(tmp_path, "--role", "insured", "--label", "me", "--id-number", PERSON,
                 "--channel", "mini_program")  # fmt: skip
    auth = {"Authorization": f"Bearer {key}"}

    created = web.post("/filings", json=FIRST_FILING, headers=auth)
    assert created.status_code == 201, created.text
    assert created.headers["etag"] == '"1"'
    filing = created.json()
    submitted = web.post(f"/filings/{filing['id']}/submit", headers={**auth, "If-Match": '"1"'})
    assert submitted.status_code == 200
    assert submitted.json()["state"] == "effective"  # Xiamen online: at once (L1)

    with sqlite3.connect(tmp_path / "filings.db") as db:
        daemons = db.execute("SELECT pid, stopped_at FROM daemon_record").fetchall()
        reminders = db.execute(
            "SELECT kind FROM deadline_record WHERE subject_id = ?", (filing["id"],)
        ).fetchall()
    assert daemons == [(proc.pid, None)]  # the scheduler registered from inside this process
    assert reminders == []  # K1 in Xiamen is indefinite: nothing to expire or remind of

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    with sqlite3.connect(tmp_path / "filings.db") as db:
        stopped = db.execute("SELECT stopped_at FROM daemon_record").fetchone()[0]
    assert stopped is not None  # the daemon recorded its clean stop


def test_serve_without_the_scheduler_leaves_deadlines_to_a_daemon_apart(tmp_path: Path) -> None:
    for base, _proc in _serve(tmp_path, "--no-scheduler"):
        assert httpx.get(f"{base}/health").json() == {"status": "ok"}
        with sqlite3.connect(tmp_path / "filings.db") as db:
            assert db.execute("SELECT count(*) FROM daemon_record").fetchone()[0] == 0


def test_keys_issued_from_the_terminal_are_listed_without_secrets_and_revoked(
    tmp_path: Path, served: tuple[httpx.Client, subprocess.Popen[str]]
) -> None:
    web, _ = served
    key = _issue(tmp_path, "--role", "auditor", "--label", "audit-team", "--region", "350200")
    assert web.get("/audit/checkpoint", headers={"Authorization": f"Bearer {key}"}).is_success

    listed = subprocess.run(
        [*FILING, "keys", "list"], env=_env(tmp_path), capture_output=True, text=True, check=True
    ).stdout
    (row,) = [json.loads(line) for line in listed.splitlines()]
    assert row["role"] == "auditor" and row["regions"] == ["350200"]
    secret = key.rsplit("_", 1)[1]
    assert secret not in listed and "secret_hash" not in listed

    subprocess.run(
        [*FILING, "keys", "revoke", row["id"]], env=_env(tmp_path), check=True, capture_output=True
    )
    after = web.get("/audit/checkpoint", headers={"Authorization": f"Bearer {key}"})
    assert after.status_code == 401
    assert after.headers["content-type"] == "application/problem+json"


@pytest.mark.skipif(shutil.which("curl") is None, reason="the README's request uses curl")
def test_the_readme_first_request_prints_what_is_shown(
    tmp_path: Path, served: tuple[httpx.Client, subprocess.Popen[str]]
) -> None:
    base = str(served[0].base_url).rstrip("/")
    script, shown = readme.first_request()
    script = (
        script.replace(".venv/bin/filing", '"$FILING_PY" -m jobs.cli')
        .replace(".venv/bin/python", '"$FILING_PY"')
        .replace("http://127.0.0.1:8080", base)
    )

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            env={**_env(tmp_path), "FILING_PY": sys.executable},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )

    first, again = run(), run()

    assert first.returncode == 0, first.stderr
    printed = first.stdout.replace("\r\n", "\n")  # the status line and headers end in CRLF
    assert readme.without_the_day(printed) == readme.without_the_day(shown)
    # Run again (as the README says): a new draft, whose submit L6 refuses.
    assert again.returncode == 0, again.stderr
    answer = again.stdout.replace("\r\n", "\n").split("\n")
    assert answer[1] == "HTTP/1.1 409 Conflict"
    assert json.loads(answer[-2])["rule_id"] == "L6"


# -- a bad config, host or port refuses the start, naming what is wrong -----------------------


def _config_with(tmp_path: Path, old: str, new: str) -> Path:
    text = (ROOT / "config.toml").read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "config.toml"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


def _run(
    tmp_path: Path, *args: str, config: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = _env(tmp_path)
    if config is not None:
        env["FILING_CONFIG"] = str(config)
    return subprocess.run(
        [*FILING, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ('level = "info"', 'level = "verbose"', "logging.level"),
        ("busy_timeout_ms = 5000", "busy_timeout_ms = 1e12", "database.busy_timeout_ms"),
        ('rate_limit = "50/second"', 'rate_limit = "0/second"', "http.rate_limit"),
        ('rate_limit_storage = "memory://"', 'rate_limit_storage = "bogus://"',
         "http.rate_limit_storage"),
        ('host = "127.0.0.1"', 'host = "not a host"', "http.host"),
        ("[calendar]", "[calendar.years.2027]\nholidays = 5\n[calendar]",
         "calendar.years.2027.holidays"),
    ],
)  # fmt: skip
def test_a_bad_config_refuses_the_service_naming_the_key_without_a_traceback(
    tmp_path: Path, old: str, new: str, key: str
) -> None:
    config = _config_with(tmp_path, old, new)

    done = _run(tmp_path, "serve", "--port", "0", config=config)

    assert done.returncode == 2
    assert f"{key}: " in done.stderr and "Traceback" not in done.stderr


def test_a_bad_config_refuses_the_daemon_naming_the_key_without_a_traceback(
    tmp_path: Path,
) -> None:
    config = _config_with(tmp_path, "sweep_seconds = 5 ", "sweep_seconds = true ")

    done = _run(tmp_path, "daemon", "run", config=config)

    assert done.returncode == 2
    assert "scheduler.sweep_seconds: must be a number" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_database_url_the_engine_cannot_run_on_refuses_the_start(tmp_path: Path) -> None:
    env_url = {"FILING_DATABASE_URL": "mysql://x/y"}
    done = subprocess.run(
        [*FILING, "serve", "--port", "0"],
        env={**_env(tmp_path), **env_url},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 2
    assert "FILING_DATABASE_URL: must be a sqlite:/// or postgresql:// URL" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_unreachable_rate_limit_storage_refuses_the_start(tmp_path: Path) -> None:
    # Nothing listens on port 1: whether the redis client is installed (the storage cannot be
    # reached) or not (it cannot be opened), the service does not start counting apart.
    config = _config_with(
        tmp_path, 'rate_limit_storage = "memory://"', 'rate_limit_storage = "redis://127.0.0.1:1"'
    )

    done = _run(tmp_path, "serve", "--port", "0", config=config)

    assert done.returncode == 2
    assert "http.rate_limit_storage: cannot be" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_host_this_machine_does_not_have_refuses_the_start_naming_the_key(
    tmp_path: Path,
) -> None:
    # 192.0.2.1 is a documentation address (TEST-NET-1): no machine has it.
    config = _config_with(tmp_path, 'host = "127.0.0.1"', 'host = "192.0.2.1"')

    done = _run(tmp_path, "serve", "--port", "0", config=config)

    assert done.returncode == 2
    assert "http.host: cannot be listened on" in done.stderr and "Traceback" not in done.stderr


def test_a_port_in_use_refuses_the_start_naming_the_option(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        done = _run(tmp_path, "serve", "--port", str(port))

    assert done.returncode == 2
    assert "--port: cannot be listened on" in done.stderr and "Traceback" not in done.stderr


def test_the_server_keeps_an_idle_connection_longer_than_the_client_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    from jobs.cli import app

    started: list[uvicorn.Config] = []

    class Server:
        def __init__(self, config: uvicorn.Config) -> None:
            started.append(config)

        def run(self, sockets: list[socket.socket]) -> None:
            pass

    monkeypatch.setattr(uvicorn, "Server", Server)
    monkeypatch.setattr(signal, "signal", lambda *_: None)
    monkeypatch.setattr("gc.freeze", lambda: None)
    for name, value in _env(tmp_path).items():
        monkeypatch.setenv(name, value)

    result = CliRunner().invoke(app, ["serve", "--port", "0", "--no-scheduler"])

    assert result.exit_code == 0, result.output
    (config,) = started
    assert config.timeout_keep_alive == 15 > KEEPALIVE_EXPIRY  # config.toml's keep_alive_seconds


# -- the tests' client ------------------------------------------------------------------------


def _dropping(times: int) -> tuple[httpx.MockTransport, list[str]]:
    """A server that drops the connection under the first `times` requests."""
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        if len(seen) <= times:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response")
        return httpx.Response(200, json={"ok": True})

    return httpx.MockTransport(handle), seen


@pytest.mark.parametrize(
    ("method", "headers"), [("GET", {}), ("POST", {"Idempotency-Key": "bench-1-1"})]
)
def test_the_client_sends_a_replayable_request_again_once_when_its_connection_drops(
    method: str, headers: dict[str, str]
) -> None:
    transport, seen = _dropping(1)

    with httpx.Client(transport=RetryDropped(transport), base_url="http://t") as web:
        answer = web.request(method, "/x", headers=headers)

    assert answer.status_code == 200 and seen == [method, method]


def test_the_client_does_not_send_again_what_is_not_replayable_nor_retry_twice() -> None:
    once, seen_once = _dropping(1)
    twice, seen_twice = _dropping(2)

    with (
        httpx.Client(transport=RetryDropped(once), base_url="http://t") as web,
        pytest.raises(httpx.RemoteProtocolError),
    ):
        web.post("/filings/x/submit", headers={"If-Match": '"1"'})
    with (
        httpx.Client(transport=RetryDropped(twice), base_url="http://t") as web,
        pytest.raises(httpx.RemoteProtocolError),
    ):
        web.get("/health")

    assert seen_once == ["POST"] and seen_twice == ["GET", "GET"]
