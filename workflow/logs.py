"""structlog, configured once at the entry point (CLI, demo, service), never at import.

JSON in production, readable on a terminal. The stdlib loggers of SQLAlchemy, Alembic and
APScheduler go through the same renderer.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog
from structlog.typing import EventDict


def _exception_type_only(_logger: object, _name: str, event: EventDict) -> EventDict:
    """A library's log record with an exception (APScheduler's "job raised", SQLAlchemy's pool
    errors) keeps the exception's type only: its message could quote input, personal data
    included, and its traceback is not for a log pipeline."""
    exc = event.pop("exc_info", None)
    if exc:
        if exc is True:
            exc = sys.exc_info()
        kind = type(exc) if isinstance(exc, BaseException) else exc[0]
        if kind is not None:
            event["exception_type"] = kind.__name__
    return event


def configure_logging(
    fmt: str = "auto", level: str = "info", stream: TextIO | None = None, *, stdlib: bool = True
) -> None:
    """Configure structlog; with `stdlib`, also route the standard library's loggers (SQLAlchemy,
    Alembic, APScheduler, transitions) through the same renderer. Entry points (CLI, daemon)
    take both; an engine embedded in an application that did not configure structlog only
    configures structlog and leaves the application's stdlib logging alone."""
    out = stream or sys.stderr
    renderer: structlog.types.Processor
    if fmt == "console" or (fmt == "auto" and out.isatty()):
        renderer = structlog.dev.ConsoleRenderer()
    else:
        renderer = structlog.processors.JSONRenderer(ensure_ascii=False)
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    # structlog's own events render straight to the stream (a stdlib round trip per
    # transition costs more than the rest of the log line); stdlib records join below.
    structlog.configure(
        processors=[*shared, renderer],
        logger_factory=structlog.WriteLoggerFactory(file=out),
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=True,
    )
    if not stdlib:
        return
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=[*shared, _exception_type_only],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # transitions logs every trigger at INFO; our own line per transition says more.
    for name in ("sqlalchemy", "alembic", "apscheduler", "transitions"):
        logging.getLogger(name).setLevel(logging.WARNING)
