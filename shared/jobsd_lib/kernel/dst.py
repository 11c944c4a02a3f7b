"""jobsd's daylight-saving-time (DST) policy: one run per wall-clock window. Pure maths over datetimes.

The daemon's cron trigger (jobsd.triggers.WallClockCronTrigger, an APScheduler CronTrigger) asks
these functions; so does `next_fire_times`, which lists what any trigger will fire. Nothing here
reads the clock or knows APScheduler: a trigger is passed in as a `Search`, a function from an
instant to the earliest fire time at or after it.

The policy
==========
A *window* is a local date and wall-clock time in the job's zone. Fire times are handled and
compared as UTC instants everywhere.

Fall-back (a repeated hour): a window whose wall time occurs twice runs ONCE, at its first
occurrence (the earlier UTC instant), for every schedule, sub-daily ones included
(`is_second_pass`, `first_passes`):

- ``30 2 * * *`` Europe/Berlin, 2026-10-25: runs 00:30Z (02:30 CEST), not 01:30Z (02:30 CET).
- ``0 * * * *`` Europe/Berlin, 2026-10-25: 02:00 CEST (00:00Z), then 03:00 CET (02:00Z), two
  real hours later; ``*/15 * * * *`` has a gap of 1 h 15 min there.
- ``0 * * * *`` America/New_York, 2026-11-01 (01:00-01:59 repeats): 01:00 EDT (05:00Z), then
  02:00 EST (07:00Z). A daily 02:30 there is not in the repeated hour and runs once, 07:30Z.

Spring-forward (a skipped hour): a wall time inside the gap runs once, at the instant it
would have had without the change, i.e. shifted forward by the length of the gap
(`first_instant_after`: fold=0 maps a gap time so):

- ``30 2 * * *`` runs at 01:30Z = 03:30 CEST in Europe/Berlin on 2026-03-29, and at
  07:30Z = 03:30 EDT in America/New_York on 2026-03-08; ``0 2 * * *`` runs at 03:00 local.
- A shifted time that falls on a later window of the same schedule is that window, one run:
  ``0 * * * *`` runs 01:00 CET, 03:00 CEST, 04:00 CEST; ``*/15`` runs 01:45 CET, 03:00 CEST,
  03:15 CEST; in Australia/Lord_Howe (a 30-minute gap, 02:00 -> 02:30 on 2026-10-04)
  ``0 * * * *`` runs 01:00, 02:30 (the 02:00 window) and 03:00.
- Only the first gap time of a schedule is shifted: ``15,45 2 * * *`` runs 03:15, not 03:45.
- A search that starts inside or after the gap (a daemon started at 03:10 that morning) does
  not go back for a gap time: ``30 2 * * *`` next runs the following day.
- Vixie cron and croniter differ: they run a fixed gap time at the first instant after the
  gap (03:00) and skip gap times of hourly and finer schedules.

Days keep their wall-clock length (`wall_clock_step`): the day after a 23-hour day starts at
its midnight, not an hour later (stock APScheduler 3.x adds wall-clock steps in UTC and so skips
a daily run there: jobsd.triggers says how).
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo

__all__ = ["Search", "TICK", "is_second_pass", "first_instant_after", "wall_clock_step", "first_passes",
           "fire_times", "require_aware"]

# Triggers look for fire times at or after an instant; fire times are whole seconds, so a search
# strictly after an instant starts one microsecond later.
TICK = timedelta(microseconds=1)

# The earliest fire time at or after an instant (None: the trigger has no more).
Search = Callable[[datetime], datetime | None]


def is_second_pass(instant: datetime, zone: tzinfo | None) -> bool:
    """True when `instant`'s wall time in `zone` already occurred earlier (fall-back).
    False for zone None (never fall back to the host's zone). Raises ValueError if naive."""
    require_aware(instant)
    if zone is None:
        return False
    local = instant.astimezone(zone)
    # zoneinfo sets fold=1 on the later of two instants with the same wall time; the offset
    # check keeps tzinfo implementations that set fold loosely from dropping real windows.
    return local.fold == 1 and local.replace(fold=0).utcoffset() != local.utcoffset()


def first_instant_after(wall: datetime, zone: tzinfo, after: datetime) -> datetime | None:
    """Naive local `wall` in `zone` at its first occurrence later than `after`, if any.

    A wall time inside a spring-forward gap maps (fold=0) to the instant shifted by the gap.
    """
    after_utc = after.astimezone(UTC)
    for fold in (0, 1):
        candidate = wall.replace(tzinfo=zone, fold=fold)
        if candidate.astimezone(UTC) > after_utc:
            return candidate
    return None


def wall_clock_step(before: datetime, moved: datetime, zone: tzinfo) -> datetime:
    """A step from `before` to `moved` that was computed in UTC, redone on the wall clock of `zone`.

    The step's length in UTC is added to `before`'s wall time; the result is that wall time's first
    instant after `before` (a gap time shifted by the gap), or `moved` when there is none.
    """
    wall = before.replace(tzinfo=None) + (moved.astimezone(UTC) - before.astimezone(UTC))
    return first_instant_after(wall, zone, before) or moved


def first_passes(fire_time: datetime | None, zone: tzinfo | None, search: Search) -> datetime | None:
    """`fire_time`, or when it is the second pass of a repeated wall time, the first later fire time
    (by `search`) that is not one. Each retry starts after the last candidate, so it ends after the
    repeated hour."""
    while fire_time is not None and is_second_pass(fire_time, zone):
        fire_time = search(fire_time.astimezone(UTC) + TICK)
    return fire_time


def fire_times(search: Search, after: datetime, count: int) -> list[datetime]:
    """The next `count` fire times strictly after `after`, as ascending aware UTC datetimes.

    Second occurrences of repeated wall times in each fire time's zone are left out (for searches
    that do not already skip them). Fewer than `count` come back only if the search has no more.
    Every step moves the search point forward, so this always ends: a search that does not
    advance raises RuntimeError. ValueError for a naive `after` or a negative `count`.
    """
    require_aware(after)
    if count < 0:
        raise ValueError(f"count must not be negative, got {count}")
    times: list[datetime] = []
    cursor = after.astimezone(UTC)
    while len(times) < count:
        candidate = search(cursor + TICK)
        if candidate is None:
            break
        cursor = _advance(cursor, candidate)
        if not is_second_pass(cursor, candidate.tzinfo):
            times.append(cursor)
    return times


def _advance(cursor: datetime, candidate: datetime) -> datetime:
    """The candidate as UTC, guaranteed later than the cursor (else the loop could spin)."""
    instant = candidate.astimezone(UTC)
    if instant <= cursor:
        raise RuntimeError(f"trigger did not advance: asked for a time after {cursor}, got {candidate}")
    return instant


def require_aware(instant: datetime) -> None:
    """Raise ValueError for a naive datetime: it would silently be read in the host's zone."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"fire times must be timezone-aware datetimes, got {instant!r}")
