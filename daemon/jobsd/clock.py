"""The one module of the daemon that reads the clock. Everything else asks it."""
from __future__ import annotations

import time
from datetime import datetime, timezone

__all__ = ["now", "now_ns", "monotonic", "to_epoch", "from_epoch"]


def now() -> datetime:
    """Aware UTC datetime."""
    return datetime.now(timezone.utc)


def now_ns() -> int:
    """UTC epoch nanoseconds (output chunks' read time)."""
    return time.time_ns()


def monotonic() -> float:
    return time.monotonic()


def to_epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def from_epoch(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, timezone.utc)
