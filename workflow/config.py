"""Settings: config.toml parsed once at start into a frozen object, environment overriding.

Every setting is checked here, in one place, against a declarative schema: each non-policy
section of config.toml is one frozen dataclass validated by pydantic (strict types, ranges,
unknown keys refused), and the policies are parsed by `states.policy`. A bad config is refused
with one `PolicyConfigError` listing every problem found, each naming its key; a value is never
echoed (it could hold a secret, such as a password in a URL).

To add a section: one schema class below (`@schema(frozen=True, config=_SCHEMA)`), its entry
in `SECTIONS`, and a field of the same name on `Settings`.

Nothing here runs at import time. Secrets (the person-lookup key) come only from the environment.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import date
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import sqlalchemy as sa
from limits import parse

# limits' registry of storage schemes (imported there without being re-exported by name).
from limits.storage import SCHEMES, Storage  # type: ignore[attr-defined]
from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic.dataclasses import dataclass as schema
from pydantic_core import ErrorDetails

from states.bounds import DateBounds
from states.codes import Codes, parse_codes
from states.errors import PolicyConfigError
from states.policy import Policy, parse_policies
from states.reasons import Reason, parse_reasons

DEV_PERSON_KEY = "development-only-person-key-do-not-use-in-production"

# A section's schema: a frozen dataclass whose constructor validates (so a copy made with
# `dataclasses.replace` is checked too), refusing unknown keys. Types are strict (each alias
# below says so): a string is never read as a number, nor a number as true or false.
_SCHEMA = ConfigDict(extra="forbid")


@cache
def _adapter(cls: type) -> TypeAdapter[Any]:
    return TypeAdapter(cls)


class Located(ValueError):
    """A validator's finding about a part of the value it checks: the path below it (a year of
    the calendar, a field another field must agree with) and the problem."""

    def __init__(self, path: Sequence[str], problem: str) -> None:
        super().__init__(problem)
        self.path, self.problem = tuple(path), problem


# -- value types --------------------------------------------------------------------------------


Whole = Annotated[int, Strict()]
"""A whole number: a float such as 1e12, or true/false, is refused."""
Number = Annotated[float, Strict()]
"""A number, whole or not (true/false refused)."""
Text = Annotated[str, Strict(), Field(min_length=1)]
"""A non-empty string."""


def _range(low: float, high: float) -> Any:
    return Field(ge=low, le=high)


def _lower(v: Any) -> Any:
    return v.lower() if isinstance(v, str) else v


def _upper(v: Any) -> Any:
    return v.upper() if isinstance(v, str) else v


def _iso_day(v: Any) -> Any:
    if isinstance(v, str):
        try:
            return date.fromisoformat(v)
        except ValueError:
            raise ValueError("must be a date written YYYY-MM-DD") from None
    return v


_Day = Annotated[date, BeforeValidator(_iso_day), Strict()]


def _database_url(url: str) -> str:
    """A URL of a database the engine runs on: SQLite (pysqlite) or PostgreSQL (psycopg)."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        raise ValueError(
            "must be a database URL, e.g. sqlite:///filings.db or "
            "postgresql+psycopg://user@host/database"
        ) from None
    backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    if backend == "sqlite" and driver == "pysqlite":
        return url
    if backend == "postgresql" and (parsed.drivername == "postgresql" or driver == "psycopg"):
        return url
    raise ValueError(
        "must be a sqlite:/// or postgresql:// URL: the engine runs on SQLite, and on "
        "PostgreSQL through psycopg"
    )


_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")


def _host(host: str) -> str:
    """An IP address or a host name to listen on (whether this machine has it is seen when the
    service binds: `filing serve` says so, naming the key)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not _HOSTNAME.match(host):
            raise ValueError("must be an IP address or a host name, e.g. 127.0.0.1") from None
    return host


def _rate(text: str) -> str:
    try:  # the rate-limit library reads its own notation
        item = parse(text)
    except ValueError:
        raise ValueError('must read like "50/second" or "3000 per minute"') from None
    if item.amount < 1:
        raise ValueError("must allow at least one request: a rate of 0 refuses every call")
    return text


def _rate_storage(uri: str) -> str:
    """A storage the rate-limit library knows, used synchronously. Whether it is reachable is
    checked when the service starts (workflow.http.capacity)."""
    scheme = uri.split("://", 1)[0] if "://" in uri else ""
    known = sorted(s for s, cls in SCHEMES.items() if issubclass(cls, Storage))
    if scheme not in known:
        raise ValueError(
            'must be a storage URI of the limits library: "memory://", or "redis://host:6379" '
            "to share the counts between processes"
        )
    return uri


def webhook_problem(url: object) -> str | None:
    """What is wrong with a webhook URL, or None: an http(s) URL with a host and no user or
    password in it (urllib cannot send those)."""
    try:
        parts = urlsplit(url) if isinstance(url, str) else None
        host = parts.hostname if parts is not None else None
    except ValueError:
        parts = host = None
    if parts is None or parts.scheme not in ("http", "https") or not host:
        return "must be an http:// or https:// URL with a host"
    if parts.username is not None or parts.password is not None:
        return "must not carry a user or password"
    return None


def _webhook_url(url: str) -> str:
    problem = webhook_problem(url)
    if problem:
        raise ValueError(problem)
    return url


def check_webhook_url(url: object, where: str) -> str:
    """A webhook URL given outside config.toml (an option): refused naming `where`."""
    problem = webhook_problem(url)
    if problem:
        raise PolicyConfigError(where, problem)
    return str(url)


# -- the sections -------------------------------------------------------------------------------


@schema(frozen=True, config=_SCHEMA)
class DatabaseSection:
    """[database]: where filings are stored (FILING_DATABASE_URL and --database-url override)."""

    url: Annotated[Text, AfterValidator(_database_url)] = "sqlite:///filings.db"
    # SQLite durability: FULL survives power loss; NORMAL survives a process crash only.
    sqlite_synchronous: Annotated[
        Literal["OFF", "NORMAL", "FULL", "EXTRA"], BeforeValidator(_upper)
    ] = "FULL"
    busy_timeout_ms: Annotated[Whole, _range(0, 600_000)] = 5000


@schema(frozen=True, config=_SCHEMA)
class LoggingSection:
    """[logging]: structlog's renderer and level (FILING_LOG_FORMAT overrides the format)."""

    format: Literal["auto", "json", "console"] = "auto"
    level: Annotated[Literal["debug", "info", "warning", "error"], BeforeValidator(_lower)] = "info"


@schema(frozen=True, config=_SCHEMA)
class CalendarYear:
    """[calendar.years.YYYY]: a year's holidays and swapped working days, once announced (C6)."""

    holidays: frozenset[_Day] = frozenset()
    workdays: frozenset[_Day] = frozenset()


@schema(frozen=True, config=_SCHEMA)
class CalendarSection:
    """[calendar]: years the bundled calendar does not know yet."""

    years: Mapping[Annotated[str, Field(pattern=r"^\d{4}$")], CalendarYear] = Field(
        default_factory=dict
    )

    @model_validator(mode="after")
    def _dates_in_their_year(self) -> CalendarSection:
        for year, table in self.years.items():
            for key in ("holidays", "workdays"):
                if any(d.year != int(year) for d in getattr(table, key)):
                    raise Located(("years", year, key), f"every date must be in {year}")
        return self


@schema(frozen=True, config=_SCHEMA)
class SchedulerSettings:
    """[scheduler]: the daemon's sweeps (jobs/). Seconds unless named otherwise."""

    sweep_seconds: Annotated[Number, _range(0.01, 3600.0)] = 5.0
    batch_size: Annotated[Whole, _range(1, 100_000)] = 500
    misfire_grace_seconds: Annotated[Whole, _range(1, 86_400)] = 60
    deliver_seconds: Annotated[Number, _range(0.01, 3600.0)] = 5.0
    heartbeat_seconds: Annotated[Number, _range(0.01, 3600.0)] = 10.0
    recompute_hours: Annotated[Number, _range(0.001, 24.0 * 31)] = 24.0
    lease_seconds: Annotated[Whole, _range(1, 86_400)] = 120
    retry_base_seconds: Annotated[Number, _range(0.01, 86_400.0)] = 30.0
    retry_max_seconds: Annotated[Number, _range(0.01, 7 * 86_400.0)] = 3600.0
    webhook_url: Annotated[Text, AfterValidator(_webhook_url)] | None = None
    webhook_timeout_seconds: Annotated[Number, _range(0.1, 300.0)] = 5.0

    @model_validator(mode="after")
    def _lease_outlasts_a_delivery(self) -> SchedulerSettings:
        if self.lease_seconds < self.webhook_timeout_seconds + 1:
            raise Located(
                ("lease_seconds",),
                "must exceed webhook_timeout_seconds by a second at least: a lease that ends "
                "while a delivery is under way lets another daemon send the same reminder",
            )
        return self


@schema(frozen=True, config=_SCHEMA)
class HttpSettings:
    """[http]: the HTTP API (workflow/http). Limits protect the service from one caller, and
    from more callers than it can serve at once."""

    host: Annotated[Text, AfterValidator(_host)] = "127.0.0.1"
    port: Annotated[Whole, _range(0, 65_535)] = 8080  # 0: any free port
    max_body_bytes: Annotated[Whole, _range(1024, 16 * 1024 * 1024)] = 64 * 1024
    default_page_size: Annotated[Whole, _range(1, 10_000)] = 50
    max_page_size: Annotated[Whole, _range(1, 10_000)] = 500
    rate_limit: Annotated[Text, AfterValidator(_rate)] = "50/second"  # per API key
    # Calls without a valid key, per client address: each is recorded in the audit trail, so
    # they are held to far less than a caller's own rate.
    anonymous_rate_limit: Annotated[Text, AfterValidator(_rate)] = "20/minute"
    # Per process; "redis://host:6379" to share. Checked when the service starts.
    rate_limit_storage: Annotated[Text, AfterValidator(_rate_storage)] = "memory://"
    idempotency_hours: Annotated[Whole, _range(1, 24 * 30)] = 24
    # Requests inside the app at once; past it, 503 with Retry-After at once instead of a
    # queue whose wait no caller would accept (/health is not counted).
    max_in_flight: Annotated[Whole, _range(1, 10_000)] = 64
    retry_after_seconds: Annotated[Whole, _range(1, 3600)] = 1
    # How long an idle connection is kept open: longer than clients keep theirs (httpx: 5 s),
    # so a client never sends on a connection the server is closing.
    keep_alive_seconds: Annotated[Whole, _range(1, 3600)] = 15

    @model_validator(mode="after")
    def _default_page_fits(self) -> HttpSettings:
        if self.default_page_size > self.max_page_size:
            raise Located(("default_page_size",), "must not exceed max_page_size")
        return self


@schema(frozen=True, config=_SCHEMA)
class InputSection:
    """[input]: how many days back and ahead of today a date a caller gives may lie
    (states.bounds judges the dates, naming the rule each is refused under)."""

    past_days: Annotated[Whole, _range(1, 36_500)] = 730
    ahead_days: Annotated[Whole, _range(0, 3_650)] = 366


SECTIONS: Mapping[str, type] = {
    "database": DatabaseSection,
    "logging": LoggingSection,
    "calendar": CalendarSection,
    "scheduler": SchedulerSettings,
    "http": HttpSettings,
    "input": InputSection,
}
"""Each non-policy section of config.toml and its schema; `[policy.*]` is states.policy's."""

# Environment variables that override a key: (section, key) -> variable.
_ENVIRONMENT = {
    ("database", "url"): "FILING_DATABASE_URL",
    ("database", "sqlite_synchronous"): "FILING_SQLITE_SYNCHRONOUS",
    ("logging", "format"): "FILING_LOG_FORMAT",
    ("scheduler", "webhook_url"): "FILING_WEBHOOK_URL",
}


@dataclass(frozen=True)
class Settings:
    database_url: str
    sqlite_synchronous: str
    busy_timeout_ms: int
    log_format: str
    log_level: str
    calendar_years: Mapping[int, CalendarYear]
    policies: Mapping[str, Policy]
    reasons: Mapping[str, Reason]
    codes: Codes
    person_key: bytes
    person_key_is_development_default: bool
    scheduler: SchedulerSettings = field(default_factory=SchedulerSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    input: DateBounds = field(default_factory=DateBounds)  # [input]: bounds on given dates

    def __post_init__(self) -> None:
        # The flat [database] and [logging] values pass the same schema, however the settings
        # were made (a copy with another database URL, for one).
        problems = [
            *_problems("database", DatabaseSection, {
                "url": self.database_url,
                "sqlite_synchronous": self.sqlite_synchronous,
                "busy_timeout_ms": self.busy_timeout_ms,
            }),
            *_problems("logging", LoggingSection, {
                "format": self.log_format, "level": self.log_level,
            }),
        ]  # fmt: skip
        if problems:
            raise PolicyConfigError.of(problems)


def load_settings(
    path: str | os.PathLike[str] | None = None,
    *,
    database_url: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Read config.toml (or FILING_CONFIG), apply environment overrides, validate everything."""
    env = os.environ if environ is None else environ
    config_path = Path(path or env.get("FILING_CONFIG") or "config.toml")
    try:
        raw = tomllib.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PolicyConfigError(str(config_path), "config file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyConfigError(str(config_path), f"not valid TOML: {exc}") from None
    return settings_from_mapping(
        raw, base_dir=config_path.parent, database_url=database_url, environ=env
    )


def settings_from_mapping(
    raw: Mapping[str, Any],
    *,
    base_dir: Path = Path("."),
    database_url: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Validate every section and policy; refuse with every problem found, each naming its key
    (or the environment variable or option that set it)."""
    env = os.environ if environ is None else environ
    problems: list[tuple[str, str]] = [
        (name, "unknown section")
        for name in sorted(set(raw) - {*SECTIONS, "policy", "reasons", "codes"})
    ]
    sections: dict[str, Any] = {}
    for name, cls in SECTIONS.items():
        table = raw.get(name, {})
        overridden: dict[str, str] = {}
        if isinstance(table, Mapping):
            table = dict(table)
            for (section, key), variable in _ENVIRONMENT.items():
                if section == name and env.get(variable):
                    table[key], overridden[key] = env[variable], variable
            if name == "database" and database_url:
                table["url"], overridden["url"] = database_url, "--database-url"
        found = _problems(name, cls, table, overridden)
        problems.extend(found)
        if not found:
            sections[name] = _adapter(cls).validate_python(table)
    try:
        policies = parse_policies(raw.get("policy", {}))
    except PolicyConfigError as exc:
        problems.extend(exc.problems)
    try:
        reasons = parse_reasons(raw.get("reasons", {}))
    except PolicyConfigError as exc:
        problems.extend(exc.problems)
    try:
        codes = parse_codes(raw.get("codes", {}))
    except PolicyConfigError as exc:
        problems.extend(exc.problems)
    if problems:
        raise PolicyConfigError.of(problems)

    db, log, calendar = sections["database"], sections["logging"], sections["calendar"]
    person_key = env.get("FILING_PERSON_KEY")
    own = {f.name for f in fields(Settings)}
    return Settings(
        database_url=_anchor_sqlite_path(db.url, base_dir),
        sqlite_synchronous=db.sqlite_synchronous,
        busy_timeout_ms=db.busy_timeout_ms,
        log_format=log.format,
        log_level=log.level,
        calendar_years={int(year): table for year, table in calendar.years.items()},
        policies=policies,
        reasons=reasons,
        codes=codes,
        person_key=(person_key or DEV_PERSON_KEY).encode(),
        person_key_is_development_default=not person_key,
        input=DateBounds(sections["input"].past_days, sections["input"].ahead_days),
        **{name: section for name, section in sections.items() if name in own - {"input"}},
    )


def _problems(
    section: str, cls: type, table: Any, overridden: Mapping[str, str] | None = None
) -> list[tuple[str, str]]:
    """Every problem of one section's table, each as (key, what is wrong), the key being the
    environment variable or option where one set the value."""
    try:
        _adapter(cls).validate_python(table)
    except ValidationError as exc:
        found = []
        for error in exc.errors(include_url=False):
            path = [
                f"[{part}]" if isinstance(part, int) else str(part)
                for part in error["loc"]
                if part != "[key]"
            ]
            located = (error.get("ctx") or {}).get("error")
            if isinstance(located, Located):
                path.extend(located.path)
            where = (overridden or {}).get(path[0]) if len(path) == 1 else None
            dotted = ".".join([section, *path]).replace(".[", "[")
            found.append((where or dotted, _wording(error)))
        return found
    return []


def _wording(error: ErrorDetails) -> str:
    """pydantic's finding in the words of a config file, never quoting the value."""
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "value_error":
        found = ctx.get("error")
        return found.problem if isinstance(found, Located) else str(found)
    if kind == "literal_error":
        options = str(ctx["expected"]).replace("'", "").replace(" or ", ", ")
        return f"must be one of {options}"
    bounds = {
        "greater_than_equal": ("ge", "at least"),
        "less_than_equal": ("le", "at most"),
        "greater_than": ("gt", "more than"),
        "less_than": ("lt", "less than"),
    }
    if kind in bounds:
        bound, comparison = bounds[kind]
        return f"must be {comparison} {ctx[bound]}"
    words = {
        "int_type": "must be a whole number",
        "float_type": "must be a number",
        "bool_type": "must be true or false",
        "string_type": "must be a string",
        "string_too_short": "must not be empty",
        "string_pattern_mismatch": "must be a year, e.g. 2027",
        "date_type": "must be a date written YYYY-MM-DD",
        "frozen_set_type": "must be a list",
        "set_type": "must be a list",
        "dict_type": "must be a table",
        "mapping_type": "must be a table",
        "dataclass_type": "must be a table",
        "unexpected_keyword_argument": "unknown key",
        "extra_forbidden": "unknown key",
        "missing": "is required",
    }
    return words.get(kind, "is not valid")


def _anchor_sqlite_path(url: str, base_dir: Path) -> str:
    """A relative SQLite path in config.toml is relative to the config file, not the cwd."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith("sqlite:////") and ":memory:" not in url:
        return prefix + str((base_dir / url[len(prefix) :]).resolve())
    return url
