"""The documentation shows what the code does."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from states.table import mermaid

ROOT = Path(__file__).resolve().parents[1]


def test_the_state_diagram_in_architecture_md_is_the_generated_one() -> None:
    text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    assert "```mermaid\n" + mermaid() + "```" in text


def _python_session(heading: str = "## Using it from Python") -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split(heading, 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def _run_session(heading: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run a README session as a reader would: in a fresh folder with config.toml beside it."""
    shutil.copy(ROOT / "config.toml", tmp_path / "config.toml")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FILING_PERSON_KEY", "readme")
    exec(compile(_python_session(heading), "README.md", "exec"), {})


def test_the_readme_python_session_runs_as_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _run_session("## Using it from Python", tmp_path, monkeypatch)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "effective 2026-03-02 2026-06-02"
    assert out[1] == "V2 2026-06-02"
    assert "the lock ends on 2026-06-02" in out[2]
    assert out[3] == "cancelled"
    assert [line.split()[1:4] for line in out[4:8]] == [
        ["create", "applied", "None"],
        ["submit", "applied", "L1"],
        ["cancel", "denied", "V2"],
        ["cancel", "applied", "L4"],
    ]
    assert out[-1] == "True"


def test_the_readme_hospital_session_runs_as_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _run_session("## The hospital side", tmp_path, monkeypatch)
    out = capsys.readouterr().out.splitlines()
    assert out[:8] == [
        "deemed",
        "submitted",
        "E3 2026-03-11",
        "manual_reimbursement",
        "deemed True E1",
        "False P3 10",
        "False E6",
        "True",
    ]
    assert [line.split()[:3] for line in out[8:]] == [
        ["admit", "applied", "None"],
        ["route_manual", "applied", "E3"],
    ]


def test_the_readme_scheduler_session_runs_as_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _run_session("## The scheduler daemon", tmp_path, monkeypatch)
    out = capsys.readouterr().out.splitlines()
    assert out[:3] == [
        "expiry_reminder 2026-08-02T16:00:00+00:00 V3",
        "expiry_reminder 2026-08-25T16:00:00+00:00 V3",
        "expire 2026-09-02T16:00:00+00:00 V3",
    ]
    assert out[3:] == [
        "1 [('expiry_reminder', True)]",
        "1 1 expired",
        "retire_deadline denied expire applied",
        "the expiry_reminder came too late: what it warned of was due at 2026-09-02T16:00:00+00:00",
        "0",
    ]
