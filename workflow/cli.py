"""Command line for operators and auditors (Typer). Configures logging once, at entry."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from states.errors import FilingError
from workflow.api import FilingEngine
from workflow.audit import Checkpoint
from workflow.config import load_settings
from workflow.logs import configure_logging

app = typer.Typer(
    help="Cross-region medical treatment filing (异地就医备案) engine.", no_args_is_help=True
)

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="config.toml (default: FILING_CONFIG or ./config.toml)"),
]
DatabaseOpt = Annotated[
    str | None, typer.Option("--database-url", help="overrides config.toml and FILING_DATABASE_URL")
]


def _open(
    config: Path | None, database_url: str | None, log_level: str | None = None, **kw: object
) -> FilingEngine:
    settings = load_settings(config, database_url=database_url)
    configure_logging(settings.log_format, log_level or settings.log_level)
    return FilingEngine.open(settings=settings, **kw)  # type: ignore[arg-type]


@app.command()
def demo(
    config: ConfigOpt = None,
    database_url: DatabaseOpt = None,
    verbose: Annotated[
        bool, typer.Option(help="also show the log line of every transition")
    ] = False,
) -> None:
    """Walk a few real filings through the engine and print their histories."""
    from workflow.demo import run_demo

    level = "info" if verbose else "error"
    if database_url is None:
        # A fresh file each run, so the demo's dates and refusals are the same every time.
        path = Path("filing-demo.db")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        database_url = f"sqlite:///{path.resolve()}"
        typer.echo(f"demo database: {path}")
    run_demo(lambda clock: _open(config, database_url, level, clock=clock), typer.echo)


@app.command()
def upgrade(config: ConfigOpt = None, database_url: DatabaseOpt = None) -> None:
    """Create or migrate the database schema to the latest version."""
    _open(config, database_url).close()
    typer.echo("database is at the latest schema")


@app.command()
def history(filing_id: str, config: ConfigOpt = None, database_url: DatabaseOpt = None) -> None:
    """Print a filing's audit history as JSON Lines."""
    with _open(config, database_url, read_only=True) as engine:
        for record in engine.history(filing_id):
            typer.echo(json.dumps(record, default=str, ensure_ascii=False))


@app.command()
def checkpoint(config: ConfigOpt = None, database_url: DatabaseOpt = None) -> None:
    """Print the audit trail's checkpoint (count + head hash) as JSON: keep it elsewhere."""
    with _open(config, database_url, read_only=True) as engine:
        typer.echo(json.dumps(engine.checkpoint().to_dict()))


@app.command()
def verify(
    against: Annotated[
        Path | None, typer.Option(help="a checkpoint JSON file from `filing checkpoint`")
    ] = None,
    config: ConfigOpt = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Verify the audit chain; exit 1 and list the problems if it was tampered with."""
    cp = Checkpoint.from_dict(json.loads(against.read_text())) if against else None
    with _open(config, database_url, read_only=True) as engine:
        result = engine.verify(cp)
    for problem in result.problems:
        typer.echo(problem, err=True)
    typer.echo(json.dumps({"ok": result.ok, **result.checkpoint.to_dict()}))
    raise typer.Exit(0 if result.ok else 1)


@app.command()
def diagram() -> None:
    """Print the filing state machine as a Mermaid diagram, generated from the table."""
    from states.table import mermaid

    typer.echo(mermaid(), nl=False)


def main() -> None:
    try:
        app()
    except FilingError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
