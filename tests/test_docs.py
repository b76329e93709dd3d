"""The documentation shows what the code does: every session README.md shows is run, and what
it prints is compared whole with the output shown (tests/readme.py says what is set aside)."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

import pytest
from typer.testing import CliRunner

from states.table import mermaid
from states.vocabulary import Role
from tests import readme
from workflow.cli import app

ROOT = readme.ROOT
PYTHON_SESSIONS = ["## Using it from Python", "## The hospital side", "## The scheduler daemon"]


def test_the_state_diagram_in_architecture_md_is_the_generated_one() -> None:
    text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    assert "```mermaid\n" + mermaid() + "```" in text


def _run_python(code: str) -> str:
    out = io.StringIO()
    with redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    return out.getvalue()


@pytest.mark.parametrize("heading", PYTHON_SESSIONS)
def test_a_readme_python_session_prints_what_is_shown_each_time_it_is_run(
    heading: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, shown = readme.python_session(heading)
    shutil.copy(ROOT / "config.toml", tmp_path / "config.toml")
    monkeypatch.chdir(tmp_path)  # as a reader runs it: in a folder with config.toml beside it
    monkeypatch.setenv("FILING_PERSON_KEY", "readme")

    runs = [_run_python(code), _run_python(code)]  # twice, in the same folder

    assert [readme.without_ids(out) for out in runs] == [readme.without_ids(shown)] * 2


def _bash_session(steps: list[tuple[str, str]]) -> str:
    """The console session as one bash script, each command's output after a line `@@@`. The
    venv's activation is the one command replaced: functions stand in for its two programs."""
    lines = [
        "set -euo pipefail",
        'filing() { "$FILING_PY" -m jobs.cli "$@"; }',
        'python() { "$FILING_PY" "$@"; }',
    ]
    for command, _ in steps:
        lines += ["echo @@@", ":" if command == ". .venv/bin/activate" else command]
    return "\n".join(lines) + "\n"


def test_the_readme_terminal_walk_through_prints_what_is_shown_and_runs_again(
    tmp_path: Path,
) -> None:
    steps = readme.console_session("A filing from a terminal, start to end")
    script = _bash_session(steps)
    shutil.copy(ROOT / "config.toml", tmp_path / "config.toml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FILING_")}
    env.update(FILING_PY=sys.executable, PYTHONPATH=str(ROOT))  # a reader sets no FILING_*

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)  # fmt: skip

    first, again = run(), run()

    shown = [readme.without_the_day(output) for _, output in steps]
    for done in (first, again):
        assert done.returncode == 0, done.stderr
        printed = done.stdout.split("@@@\n")[1:]
        assert [readme.without_the_day(out) for out in printed] == shown
    assert first.stderr.count("person_key.development_default") == 1  # once: a new database
    assert again.stderr.count("person_key.development_default") == 0


def test_the_readme_route_table_names_roles_as_keys_are_issued_with_them() -> None:
    table = readme.text().split("| route | who (roles) | what |", 1)[1].split("\n\n", 1)[0]
    who = [row.split(" | ")[1] for row in table.strip().splitlines()[1:]]
    # The words the column joins roles with; every other word must be a role's own name.
    joining = {"all", "but", "who", "may", "see", "it", "the", "roles", "transition", "table",
               "allows", "anyone", "reads", "excepted", "for", "coverage", "discharge",
               "request", "same", "and", "grant", "refuse", "filing"}  # fmt: skip
    words = {word for cell in who for word in re.findall(r"[a-z]+", cell)}
    assert words - joining <= {role.value for role in Role}, words - joining


def test_the_readme_counts_the_demo_s_stories_as_the_demo_tells_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FILING_CONFIG", str(ROOT / "config.toml"))
    monkeypatch.setenv("FILING_PERSON_KEY", "readme")

    told = CliRunner().invoke(app, ["demo"]).stdout

    stories = re.findall(r"^\d+\. ", told, re.MULTILINE)
    more = ["none", "one", "two", "three", "four", "five"][len(stories) - 1]
    assert f"the Python walk-through above and {more} more" in readme.text()
