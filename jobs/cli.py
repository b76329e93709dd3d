"""The `filing` command: the operator and auditor commands of workflow.cli, plus the scheduler
daemon's (`filing daemon run | once | status`). `main` is workflow.cli's, run once this
module has added the daemon's commands to its app."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from jobs.daemon import Daemon, run_once, status
from jobs.notify import Notifier, WebhookNotifier
from workflow.api import FilingEngine
from workflow.cli import ConfigOpt, DatabaseOpt, _open, app, main
from workflow.config import check_webhook_url

daemon_app = typer.Typer(help="The scheduler daemon: deadlines, reminders, heartbeat.")
app.add_typer(daemon_app, name="daemon")

WebhookOpt = Annotated[
    str | None,
    typer.Option(help="POST reminders to this URL (overrides config.toml and FILING_WEBHOOK_URL)"),
]


def _notifier(engine: FilingEngine, webhook_url: str | None) -> Notifier | None:
    if not webhook_url:
        return None  # config.toml's choice (jobs.notify.notifier_for)
    url = check_webhook_url(webhook_url, "--webhook-url")
    return WebhookNotifier(url, engine.settings.scheduler.webhook_timeout_seconds)


@daemon_app.command("run")
def run(
    config: ConfigOpt = None, database_url: DatabaseOpt = None, webhook_url: WebhookOpt = None
) -> None:
    """Run the daemon until SIGTERM or Ctrl-C: catch up on everything overdue, then sweep."""
    engine = _open(config, database_url)
    try:
        Daemon(engine, notifier=_notifier(engine, webhook_url)).run()
    finally:
        engine.close()


@daemon_app.command("once")
def once(
    config: ConfigOpt = None, database_url: DatabaseOpt = None, webhook_url: WebhookOpt = None
) -> None:
    """Catch up once (recount, sweep, deliver) and exit; prints what was done as JSON."""
    engine = _open(config, database_url)
    try:
        typer.echo(json.dumps(run_once(engine, _notifier(engine, webhook_url))))
    finally:
        engine.close()


@daemon_app.command("status")
def show_status(config: ConfigOpt = None, database_url: DatabaseOpt = None) -> None:
    """The heartbeat as JSON: due backlog and lag, failing rows, the outbox, every daemon."""
    with _open(config, database_url, read_only=True) as engine:
        typer.echo(json.dumps(status(engine), ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
