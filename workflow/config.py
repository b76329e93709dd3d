"""Settings: config.toml parsed once at start into a frozen object, environment overriding.

Nothing here runs at import time. Secrets (the person-lookup key) come only from the environment.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from states.codes import Codes, parse_codes
from states.errors import PolicyConfigError
from states.policy import Policy, parse_policies
from states.reasons import Reason, parse_reasons

DEV_PERSON_KEY = "development-only-person-key-do-not-use-in-production"
_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")


@dataclass(frozen=True)
class CalendarYear:
    holidays: frozenset[date]
    workdays: frozenset[date]


@dataclass(frozen=True)
class SchedulerSettings:
    """[scheduler]: the daemon's sweeps (jobs/). Seconds unless named otherwise."""

    sweep_seconds: float = 5.0
    batch_size: int = 500
    misfire_grace_seconds: int = 60
    deliver_seconds: float = 5.0
    heartbeat_seconds: float = 10.0
    recompute_hours: float = 24.0
    lease_seconds: int = 120
    retry_base_seconds: float = 30.0
    retry_max_seconds: float = 3600.0
    webhook_url: str | None = None
    webhook_timeout_seconds: float = 5.0


_SCHEDULER_NUMBERS = {
    "sweep_seconds": (0.01, 3600.0),
    "batch_size": (1, 100_000),
    "misfire_grace_seconds": (1, 86_400),
    "deliver_seconds": (0.01, 3600.0),
    "heartbeat_seconds": (0.01, 3600.0),
    "recompute_hours": (0.001, 24.0 * 31),
    "lease_seconds": (1, 86_400),
    "retry_base_seconds": (0.01, 86_400.0),
    "retry_max_seconds": (0.01, 7 * 86_400.0),
    "webhook_timeout_seconds": (0.1, 300.0),
}


@dataclass(frozen=True)
class HttpSettings:
    """[http]: the HTTP API (workflow/http). Limits protect the service from one caller."""

    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 64 * 1024
    default_page_size: int = 50
    max_page_size: int = 500
    rate_limit: str = "50/second"  # per API key
    # Calls without a valid key, per client address: each is recorded in the audit trail, so
    # they are held to far less than a caller's own rate.
    anonymous_rate_limit: str = "20/minute"
    rate_limit_storage: str = "memory://"  # per process; "redis://host:6379" to share
    idempotency_hours: int = 24  # how long a stored response can be replayed


_HTTP_NUMBERS = {
    "port": (1, 65_535),
    "max_body_bytes": (1024, 16 * 1024 * 1024),
    "default_page_size": (1, 10_000),
    "max_page_size": (1, 10_000),
    "idempotency_hours": (1, 24 * 30),
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
    scheduler: SchedulerSettings = SchedulerSettings()
    http: HttpSettings = HttpSettings()


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
    env = os.environ if environ is None else environ
    unknown = set(raw) - {
        "database", "logging", "calendar", "policy", "scheduler", "http", "reasons", "codes",
    }  # fmt: skip
    if unknown:
        raise PolicyConfigError(sorted(unknown)[0], "unknown section")
    db = _section(raw, "database", {"url", "sqlite_synchronous", "busy_timeout_ms"})
    log = _section(raw, "logging", {"format", "level"})
    cal = _section(raw, "calendar", {"years"})

    url = (
        database_url or env.get("FILING_DATABASE_URL") or str(db.get("url", "sqlite:///filings.db"))
    )
    url = _anchor_sqlite_path(url, base_dir)
    synchronous = str(env.get("FILING_SQLITE_SYNCHRONOUS") or db.get("sqlite_synchronous", "FULL"))
    if synchronous.upper() not in _SYNCHRONOUS:
        raise PolicyConfigError("database.sqlite_synchronous", f"must be one of {_SYNCHRONOUS}")
    busy = db.get("busy_timeout_ms", 5000)
    if not isinstance(busy, int) or busy < 0:
        raise PolicyConfigError(
            "database.busy_timeout_ms", "must be a whole number of milliseconds"
        )
    log_format = str(env.get("FILING_LOG_FORMAT") or log.get("format", "auto"))
    if log_format not in ("auto", "json", "console"):
        raise PolicyConfigError("logging.format", 'must be "auto", "json" or "console"')

    key = env.get("FILING_PERSON_KEY")
    return Settings(
        database_url=url,
        sqlite_synchronous=synchronous.upper(),
        busy_timeout_ms=busy,
        log_format=log_format,
        log_level=str(log.get("level", "info")),
        calendar_years=_calendar_years(cal.get("years", {})),
        policies=parse_policies(raw.get("policy", {})),
        reasons=parse_reasons(raw.get("reasons", {})),
        codes=parse_codes(raw.get("codes", {})),
        person_key=(key or DEV_PERSON_KEY).encode(),
        person_key_is_development_default=not key,
        scheduler=_scheduler(raw, env),
        http=_http(raw),
    )


def _http(raw: Mapping[str, Any]) -> HttpSettings:
    from limits import parse  # the rate-limit library parses its own notation

    texts = ("host", "rate_limit", "anonymous_rate_limit", "rate_limit_storage")
    table = _section(raw, "http", {*_HTTP_NUMBERS, *texts})
    values: dict[str, Any] = {}
    for key, (low, high) in _HTTP_NUMBERS.items():
        if key not in table:
            continue
        v = table[key]
        if isinstance(v, bool) or not isinstance(v, int):
            raise PolicyConfigError(f"http.{key}", "must be a whole number")
        if not low <= v <= high:
            raise PolicyConfigError(f"http.{key}", f"must be from {low} to {high}")
        values[key] = v
    for key in texts:
        if key in table:
            if not isinstance(table[key], str) or not table[key]:
                raise PolicyConfigError(f"http.{key}", "must be a non-empty string")
            values[key] = table[key]
    settings = HttpSettings(**values)
    for key in ("rate_limit", "anonymous_rate_limit"):
        try:
            parse(getattr(settings, key))
        except ValueError:
            raise PolicyConfigError(
                f"http.{key}", 'must read like "50/second" or "3000 per minute"'
            ) from None
    if settings.default_page_size > settings.max_page_size:
        raise PolicyConfigError("http.default_page_size", "must not exceed http.max_page_size")
    return settings


def _scheduler(raw: Mapping[str, Any], env: Mapping[str, str]) -> SchedulerSettings:
    table = _section(raw, "scheduler", {*_SCHEDULER_NUMBERS, "webhook_url"})
    values: dict[str, Any] = {}
    for key, (low, high) in _SCHEDULER_NUMBERS.items():
        if key not in table:
            continue
        v = table[key]
        whole = isinstance(low, int)
        if isinstance(v, bool) or not isinstance(v, int if whole else (int, float)):
            raise PolicyConfigError(f"scheduler.{key}", "must be a number")
        if not low <= v <= high:
            raise PolicyConfigError(f"scheduler.{key}", f"must be from {low} to {high}")
        values[key] = v
    url = env.get("FILING_WEBHOOK_URL") or table.get("webhook_url") or None
    if url is not None:
        check_webhook_url(url, "scheduler.webhook_url")
    settings = SchedulerSettings(**values, webhook_url=url)
    if settings.lease_seconds < settings.webhook_timeout_seconds + 1:
        raise PolicyConfigError(
            "scheduler.lease_seconds",
            "must exceed webhook_timeout_seconds by a second at least: a lease that ends while "
            "a delivery is under way lets another daemon send the same reminder",
        )
    return settings


def check_webhook_url(url: object, where: str) -> str:
    """An http(s) URL with a host and no user or password in it (urllib cannot send those)."""
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise PolicyConfigError(where, "must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise PolicyConfigError(where, "must not carry a user or password")
    return str(url)


def _section(raw: Mapping[str, Any], name: str, keys: set[str]) -> Mapping[str, Any]:
    table = raw.get(name, {})
    if not isinstance(table, Mapping):
        raise PolicyConfigError(name, "must be a table")
    unknown = set(table) - keys
    if unknown:
        raise PolicyConfigError(f"{name}.{sorted(unknown)[0]}", "unknown key")
    return table


def _calendar_years(raw: Any) -> dict[int, CalendarYear]:
    years: dict[int, CalendarYear] = {}
    if not isinstance(raw, Mapping):
        raise PolicyConfigError("calendar.years", "must be a table of years")
    for year_text, table in raw.items():
        where = f"calendar.years.{year_text}"
        if not str(year_text).isdigit() or not isinstance(table, Mapping):
            raise PolicyConfigError(where, "must be a year with holidays and workdays lists")
        if set(table) - {"holidays", "workdays"}:
            raise PolicyConfigError(
                f"{where}.{sorted(set(table) - {'holidays', 'workdays'})[0]}", "unknown key"
            )
        year = int(year_text)
        parsed: dict[str, frozenset[date]] = {}
        for key in ("holidays", "workdays"):
            try:
                days = frozenset(
                    d if isinstance(d, date) else date.fromisoformat(str(d))
                    for d in table.get(key, [])
                )
            except ValueError as exc:
                raise PolicyConfigError(f"{where}.{key}", f"not a date: {exc}") from None
            if any(d.year != year for d in days):
                raise PolicyConfigError(f"{where}.{key}", f"every date must be in {year}")
            parsed[key] = days
        years[year] = CalendarYear(parsed["holidays"], parsed["workdays"])
    return years


def _anchor_sqlite_path(url: str, base_dir: Path) -> str:
    """A relative SQLite path in config.toml is relative to the config file, not the cwd."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith("sqlite:////") and ":memory:" not in url:
        return prefix + str((base_dir / url[len(prefix) :]).resolve())
    return url
