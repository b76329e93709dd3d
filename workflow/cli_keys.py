"""`filing keys issue | revoke | list`: the HTTP API's keys, from the operator's terminal."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from workflow import keys
from workflow.cli import ConfigOpt, DatabaseOpt, _open, read_id_number

keys_app = typer.Typer(help="API keys of the HTTP API: issue, revoke, list.", no_args_is_help=True)


@keys_app.command("issue")
def issue(
    role: Annotated[str, typer.Option(help="insured, hospital, officer, auditor, administrator")],
    label: Annotated[str, typer.Option(help="who holds it (shown in `keys list`)")],
    id_number: Annotated[
        str | None,
        typer.Option(help="insured: the person the key acts for (never stored); - reads stdin"),
    ] = None,
    organisation: Annotated[
        str | None, typer.Option(help="hospital: its code; officer: its agency")
    ] = None,
    region: Annotated[
        list[str] | None,
        typer.Option(help="officer, auditor: a region served (repeat; 440000 covers 44xxxx)"),
    ] = None,
    all_regions: Annotated[
        bool, typer.Option(help="officer, auditor: every region (instead of --region)")
    ] = False,
    channel: Annotated[str | None, typer.Option(help="the channel it acts through (L7)")] = None,
    on_behalf: Annotated[
        bool, typer.Option(help="insured: a linked family account acting for the person (L8)")
    ] = False,
    token_only: Annotated[bool, typer.Option(help="print only the key, for scripts")] = False,
    config: ConfigOpt = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Make a key and print it once: only its hash is kept."""
    with _open(config, database_url, "warning") as engine:
        made = keys.issue(
            engine.store,
            role=role,
            label=label,
            now=engine.clock(),
            person_secret=engine.settings.person_key,
            codes=engine.settings.codes,
            channel=channel,
            organisation=organisation,
            id_number=read_id_number(id_number) if id_number is not None else None,
            on_behalf=on_behalf,
            regions=tuple(region or ()),
            all_regions=all_regions,
        )
    if token_only:
        typer.echo(made.token)
        return
    p = made.principal
    typer.echo(
        json.dumps(
            {
                "id": p.key_id,
                "role": p.role.value,
                "channel": p.channel.value,
                "organisation": p.organisation,
                "person": p.person_masked,
                "regions": keys.regions_shown(p.role, p.regions),
                "key": made.token,
            },
            ensure_ascii=False,
        )
    )
    typer.echo("keep the key now: it is not shown again", err=True)


@keys_app.command("revoke")
def revoke(key_id: str, config: ConfigOpt = None, database_url: DatabaseOpt = None) -> None:
    """Revoke a key by its id: from the next request on it authenticates nothing."""
    with _open(config, database_url, "warning") as engine:
        keys.revoke(engine.store, key_id, engine.clock())
    typer.echo(json.dumps({"id": key_id, "revoked": True}))


@keys_app.command("list")
def list_keys(config: ConfigOpt = None, database_url: DatabaseOpt = None) -> None:
    """Every key, revoked or not, as JSON Lines (ids and scopes; never a secret)."""
    with _open(config, database_url, "warning") as engine:
        for row in keys.listing(engine.store):
            typer.echo(json.dumps(row, ensure_ascii=False))
