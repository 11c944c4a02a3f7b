"""Instants as jobsd keeps them and as people read them: the one set of conversions.

The store and the run folders keep an instant as float epoch seconds (UTC); the kernel and the
scheduler work with aware datetimes; receipts, events and `--json` show RFC 3339 in UTC
(`2026-11-23T09:27:57.123456+00:00`). None passes through as None. No clock is read here.

Every conversion of jobsd is one of these: the daemon's `clock.to_epoch`/`from_epoch` and
`facts.iso` are these functions re-exported, and run folders' receipts, summaries and
events.jsonl lines, event attributes, notify documents and the client's output all write `iso`
(its default `timespec="auto"` leaves out the microseconds of a whole second, as they always have).
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

__all__ = ["to_epoch", "from_epoch", "iso", "parse_until"]


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


def parse_until(text: str, now: datetime) -> datetime:
    """`jobs pause --until`: a duration from `now` ("2h", "1d", "2w") or an ISO 8601 time
    ("2026-12-04T09:00", "2026-12-04 09:00:00+01:00", "...Z"; without an offset it is local time).
    The aware instant; ValueError with a message for a person."""
    from jobsd_lib.units import parse_duration

    text = text.strip()
    try:
        seconds = parse_duration(text)
    except ValueError:
        pass
    else:
        if seconds <= 0:
            raise ValueError(f"{text!r}: the pause must last longer than 0s")
        return now + timedelta(seconds=seconds)
    try:
        at = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in ("Z", "z") else text)
    except ValueError:
        raise ValueError(f"{text!r} is neither a duration (90m, 2h, 1d, 2w) nor a time "
                         "(2026-12-04T09:00, optionally with an offset like +01:00 or Z)") from None
    return at if at.tzinfo is not None else at.astimezone()
