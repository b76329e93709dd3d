"""Clocks. The engine never reads the time itself: it asks the clock it was given."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def system_clock() -> datetime:
    return datetime.now(UTC)


class ManualClock:
    """A clock moved by hand, for demos and for tests of code that embeds the engine."""

    def __init__(self, now: datetime) -> None:
        if now.tzinfo is None:
            raise ValueError("a clock's time must be timezone-aware")
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def set(self, now: datetime) -> None:
        self.now = now

    def advance(self, **delta: float) -> None:
        """`advance(days=60)`, `advance(hours=2)`: any `timedelta` keyword."""
        self.now += timedelta(**delta)
