"""The sessions README.md shows, and the outputs it shows for them, read for the tests that keep
them true (tests/test_docs.py, and the first request in tests/test_http_serve.py).

A shown output is compared whole with what the session prints. What differs from run to run
is set aside by a few explicit substitutions, applied to both sides, and nothing else:
the ids the engine draws, and for sessions on the real clock, the instants and the day's dates
of a filing, a key's id in `filed_by`, and the headers that carry the time or the request id.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

# Filing, admission and claim ids: 24 hex digits, time-ordered and partly random.
_IDS = (re.compile(r"\b(adm|clm)?[0-9a-f]{24}\b"), r"\1<id>")
# A session on the real clock: the instants and dates of the day it runs on.
_REAL_CLOCK = (
    (
        re.compile(
            r'"(created_at|updated_at|start_date|effective_on|valid_until|lock_until)": ?"[^"]+"'
        ),
        r'"\1": "<of the day>"',
    ),
    (re.compile(r'"key:[0-9a-f]{12}"'), '"key:<key id>"'),
    (re.compile(r"^(date|x-request-id|content-length): .+$", re.MULTILINE), r"\1: <of the run>"),
)


def text() -> str:
    return README.read_text(encoding="utf-8")


def block(after: str, language: str) -> tuple[str, int]:
    """The first ```language block after the text `after`, and where it ends."""
    readme = text()
    fence = f"```{language}\n"
    begin = readme.index(fence, readme.index(after)) + len(fence)
    end = readme.index("```", begin)
    return readme[begin:end], end


def shown_after(end: int) -> str:
    """The output shown for the block ending at `end`: the very next block, a ```text one."""
    readme = text()
    at = readme.index("```", end + 3)
    fence = "```text\n"
    assert readme.startswith(fence, at), f"no output shown after README.md offset {end}"
    return readme[at + len(fence) : readme.index("```", at + len(fence))]


def python_session(heading: str) -> tuple[str, str]:
    """The Python session under `heading`, and the output shown right after it."""
    code, end = block(heading, "python")
    return code, shown_after(end)


def first_request() -> tuple[str, str]:
    script, end = block("A first request, from another terminal", "sh")
    return script, shown_after(end)


def console_session(after: str) -> list[tuple[str, str]]:
    """A ```console block as (command, the output shown for it) pairs: `$ ` starts a command,
    a line ending in a backslash continues it, any other line is its output."""
    session, _ = block(after, "console")
    steps: list[tuple[str, str]] = []
    continued = False
    for line in session.splitlines():
        if continued:
            command, output = steps[-1]
            steps[-1] = (f"{command}\n{line}", output)
        elif line.startswith("$ "):
            steps.append((line[2:], ""))
        else:
            command, output = steps[-1]
            steps[-1] = (command, f"{output}{line}\n")
        continued = line.endswith("\\") and not steps[-1][1]
    return steps


def without_ids(output: str) -> str:
    pattern, by = _IDS
    return pattern.sub(by, output)


def without_the_day(output: str) -> str:
    """For a session on the real clock: ids, and the instants, dates and headers of the run."""
    output = without_ids(output)
    for pattern, by in _REAL_CLOCK:
        output = pattern.sub(by, output)
    return output
