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

from tests import readme

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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
    port = _free_port()
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [*FILING, "serve", "--port", str(port), *extra],
        env=_env(tmp_path),
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        else:
            raise AssertionError((tmp_path / "serve.log").read_text())
        yield base, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        log.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    yield from _serve(tmp_path)


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
    tmp_path: Path, served: tuple[str, subprocess.Popen[str]]
) -> None:
    base, proc = served
    key = _issue(tmp_path, "--role", "insured", "--label", "me", "--id-number", PERSON,
                 "--channel", "mini_program")  # fmt: skip
    auth = {"Authorization": f"Bearer {key}"}

    created = httpx.post(f"{base}/filings", json=FIRST_FILING, headers=auth)
    assert created.status_code == 201, created.text
    assert created.headers["etag"] == '"1"'
    filing = created.json()
    submitted = httpx.post(
        f"{base}/filings/{filing['id']}/submit", headers={**auth, "If-Match": '"1"'}
    )
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
    tmp_path: Path, served: tuple[str, subprocess.Popen[str]]
) -> None:
    base, _ = served
    key = _issue(tmp_path, "--role", "auditor", "--label", "audit-team", "--region", "350200")
    assert httpx.get(
        f"{base}/audit/checkpoint", headers={"Authorization": f"Bearer {key}"}
    ).is_success

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
    after = httpx.get(f"{base}/audit/checkpoint", headers={"Authorization": f"Bearer {key}"})
    assert after.status_code == 401
    assert after.headers["content-type"] == "application/problem+json"


@pytest.mark.skipif(shutil.which("curl") is None, reason="the README's request uses curl")
def test_the_readme_first_request_prints_what_is_shown(
    tmp_path: Path, served: tuple[str, subprocess.Popen[str]]
) -> None:
    base, _ = served
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
