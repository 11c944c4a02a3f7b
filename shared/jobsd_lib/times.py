"""Instants as jobsd keeps them and as people read them: the one set of conversions.

The store and the run folders keep an instant as float epoch seconds (UTC); the kernel and the
scheduler work with aware datetimes; receipts, events and `--json` show RFC 3339 in UTC
(`2026-11-23T09:27:57.123456+00:00`). None passes through as None. No clock is read here.
"""
from __future__ import annotations

from datetime import datetime, timezone

__all__ = ["to_epoch", "from_epoch", "iso"]


def to_epoch(value: datetime | None) -> float | None:
    """Epoch seconds of an aware datetime (a naive one is taken as local time: pass aware ones)."""
    return None if value is None else value.timestamp()


def from_epoch(value: float | None) -> datetime | None:
    """The aware UTC datetime of epoch seconds."""
    return None if value is None else datetime.fromtimestamp(value, timezone.utc)


def iso(epoch: float | None, timespec: str = "auto") -> str | None:
    """RFC 3339 in UTC with its offset; `timespec` as datetime.isoformat's ("microseconds": always
    six digits, what `jobs tail --timestamps` prints so that lines align)."""
    return None if epoch is None else datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec=timespec)
