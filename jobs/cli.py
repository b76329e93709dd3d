"""The `filing` command: the operator and auditor commands of workflow.cli, plus the scheduler
daemon's (`filing daemon run | once | status`), the API keys' (`filing keys`) and the service
(`filing serve`: the HTTP API with the scheduler in the same process). `main` is
workflow.cli's, run once this module has added its commands to the app."""

from __future__ import annotations

import errno
import gc
import json
import signal
import socket
from pathlib import Path
from typing import Annotated

import structlog
import typer

from jobs.daemon import Daemon, run_once, status
from jobs.notify import Notifier, WebhookNotifier
from states.errors import PolicyConfigError
from workflow.api import FilingEngine
from workflow.cli import ConfigOpt, DatabaseOpt, _open, app, main
from workflow.cli_keys import keys_app
from workflow.config import check_webhook_url

daemon_app = typer.Typer(help="The scheduler daemon: deadlines, reminders, heartbeat.")
app.add_typer(daemon_app, name="daemon")
app.add_typer(keys_app, name="keys")

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


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="overrides config.toml's http.host")] = None,
    port: Annotated[
        int | None,
        typer.Option(help="overrides config.toml's http.port; 0: any free port", min=0, max=65535),
    ] = None,
    port_file: Annotated[
        Path | None,
        typer.Option(help="write the port listened on to this file (useful with --port 0)"),
    ] = None,
    scheduler: Annotated[
        bool,
        typer.Option(
            help="run the scheduler daemon in this process (turn off where daemons run apart)"
        ),
    ] = True,
    config: ConfigOpt = None,
    database_url: DatabaseOpt = None,
    webhook_url: WebhookOpt = None,
) -> None:
    """Run the HTTP API, with the scheduler inside by default, until SIGTERM or Ctrl-C."""
    import uvicorn

    from workflow.http import create_app

    engine = _open(config, database_url)
    try:
        http = engine.settings.http
        sock = _listen(
            host or http.host,
            http.port if port is None else port,
            "--host" if host else "http.host",
            "--port" if port is not None else "http.port",
        )
        daemon = Daemon(engine, notifier=_notifier(engine, webhook_url)) if scheduler else None
        app = create_app(
            engine,
            on_start=daemon.start if daemon is not None else None,  # catches up first
            on_stop=daemon.stop if daemon is not None else None,
        )
    except BaseException:
        engine.close()
        raise
    bound_host, bound_port = sock.getsockname()[:2]
    if port_file is not None:
        port_file.write_text(f"{bound_port}\n", encoding="utf-8")
    structlog.get_logger("workflow.http").info(
        "http.listening", host=bound_host, port=bound_port, scheduler=scheduler
    )
    # The scheduler starts and stops with the server (its lifespan), under uvicorn's own
    # handling of SIGTERM and Ctrl-C. uvicorn re-raises the signal once it has stopped, to the
    # handler it found: a no-op here, so the command ends with exit status 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_config=None,  # our structlog setup renders uvicorn's lines too
            access_log=False,  # one line per request comes from the API itself
            server_header=False,
            # Longer than clients keep an idle connection (httpx: 5 s), so a client never
            # sends a request on a connection the server is closing.
            timeout_keep_alive=http.keep_alive_seconds,
        )
    )
    # What start-up made lives as long as the process: move it out of the collector's sight,
    # so full collections under load walk only what requests allocate.
    gc.collect()
    gc.freeze()
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        engine.close()


def _listen(host: str, port: int, host_key: str, port_key: str) -> socket.socket:
    """A socket bound to (host, port), or the start refused naming the key (or option) that is
    wrong: a host this machine cannot listen on, a port in use or not allowed."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError):
        raise PolicyConfigError(host_key, "is not an address of this machine") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno in (errno.EADDRINUSE, errno.EACCES):
            raise PolicyConfigError(port_key, f"cannot be listened on ({exc.strerror})") from None
        raise PolicyConfigError(host_key, f"cannot be listened on ({exc.strerror})") from None
    return sock


if __name__ == "__main__":
    main()
