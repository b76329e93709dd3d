"""The three folders depend one way: jobs -> workflow -> states; states uses the standard
library only. Checked with import-linter (pyproject.toml) and by reading states/' imports."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_linter_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), str(ROOT / "pyproject.toml")],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


def test_states_imports_only_the_standard_library_and_itself() -> None:
    foreign: list[str] = []
    for path in sorted((ROOT / "states").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top != "states" and top not in sys.stdlib_module_names and top != "__future__":
                    foreign.append(f"{path.name}: {name}")
    assert foreign == []


def test_states_never_reads_the_clock() -> None:
    offenders = [
        p.name
        for p in (ROOT / "states").glob("*.py")
        if any(
            s in p.read_text(encoding="utf-8")
            for s in ("datetime.now(", "date.today(", "time.time(")
        )
    ]
    assert offenders == []
