"""APScheduler triggers for cron schedules, and jobsd's daylight-saving-time (DST) policy.

`build_trigger` turns a validated `CronExpr` (jobsd_lib.kernel.cron) into an APScheduler 3.x
trigger in the job's zone; `next_fire_times` lists what it will fire.

DST policy: one run per wall-clock window
=========================================
A *window* is a local date and wall-clock time in the job's zone (`same_window`). Fire times
are handled and compared as UTC instants everywhere.

Fall-back (a repeated hour): a window whose wall time occurs twice runs ONCE, at its first
occurrence (the earlier UTC instant), for every schedule, sub-daily ones included:

- ``30 2 * * *`` Europe/Berlin, 2026-10-25: runs 00:30Z (02:30 CEST), not 01:30Z (02:30 CET).
- ``0 * * * *`` Europe/Berlin, 2026-10-25: 02:00 CEST (00:00Z), then 03:00 CET (02:00Z), two
  real hours later; ``*/15 * * * *`` has a gap of 1 h 15 min there.
- ``0 * * * *`` America/New_York, 2026-11-01 (01:00-01:59 repeats): 01:00 EDT (05:00Z), then
  02:00 EST (07:00Z). A daily 02:30 there is not in the repeated hour and runs once, 07:30Z.

Spring-forward (a skipped hour): a wall time inside the gap runs once, at the instant it
would have had without the change, i.e. shifted forward by the length of the gap:

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

What APScheduler 3.11.3 does, measured, and why we subclass its CronTrigger
--------------------------------------------------------------------------
- Fall-back: stock CronTrigger fires both passes (``30 2 * * *`` Berlin: 00:30Z and 01:30Z on
  2026-10-25; New York hourly: 05:00Z and 06:00Z for 01:00 on 2026-11-01).
- Spring-forward, gap times: as described above (02:30 -> 03:30 local) when searched from the
  day before; skipped when the search crosses the gap from earlier the same day
  (``30 1-3 * * *`` runs 01:30 CET then 03:30 CEST, no 02:30).
- Spring-forward, the day AFTER: stock CronTrigger skips a whole day for daily times before
  the change (``@daily`` Berlin: 2026-03-29 00:00, then 2026-03-31 00:00; same for New York
  2026-03-09 and Lord Howe 2026-10-05), because it adds wall-clock differences in UTC and a
  23-hour day then lands an hour late (APScheduler issues #529, #606).
`CronTrigger`'s subclass `WallClockCronTrigger` fixes the last one (it moves on the wall
clock) and skips second passes itself, so APScheduler never fires them: the daemon needs no
de-duplication. Its import path is stored in APScheduler's job store: keep it stable.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger

from jobsd_lib.kernel.cron import CronExpr, CronFields, validate_timezone_name

__all__ = ["WallClockCronTrigger", "build_trigger", "next_fire_times", "same_window"]

# APScheduler's triggers look for fire times at or after `now`; fire times are whole seconds.
_TICK = timedelta(microseconds=1)


class WallClockCronTrigger(CronTrigger):
    """A CronTrigger that moves on the wall clock and fires each wall-clock window once.

    Same fields, arguments, pickled state and `from_crontab` as CronTrigger.
    """

    __slots__ = ()

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        """CronTrigger's answer, passing over second occurrences of repeated wall times."""
        fire_time = super().get_next_fire_time(previous_fire_time, now)
        while fire_time is not None and _is_second_pass(fire_time, self.timezone):
            # Each retry starts after the last candidate: it ends after the repeated hour.
            fire_time = super().get_next_fire_time(None, fire_time.astimezone(UTC) + _TICK)
        return fire_time

    def _increment_field_value(self, dateval: datetime, fieldnum: int) -> tuple[datetime, int]:
        # APScheduler adds the wall-clock step in UTC: across a spring-forward a day is 23 h,
        # the result lands an hour late and a daily run is skipped. Redo the step on the wall.
        moved, fieldnum = super()._increment_field_value(dateval, fieldnum)
        wall = dateval.replace(tzinfo=None) + (moved.astimezone(UTC) - dateval.astimezone(UTC))
        return _first_instant_after(wall, self.timezone, dateval) or moved, fieldnum


def _first_instant_after(wall: datetime, zone: tzinfo, after: datetime) -> datetime | None:
    """Naive local `wall` in `zone` at its first occurrence later than `after`, if any.

    A wall time inside a spring-forward gap maps (fold=0) to the instant shifted by the gap.
    """
    after_utc = after.astimezone(UTC)
    for fold in (0, 1):
        candidate = wall.replace(tzinfo=zone, fold=fold)
        if candidate.astimezone(UTC) > after_utc:
            return candidate
    return None


def build_trigger(expr: CronExpr, timezone: str) -> BaseTrigger:
    """The APScheduler trigger for `expr` in IANA zone `timezone` (CronError if unknown).

    One alternative gives a WallClockCronTrigger; two (cron's day-of-month OR day-of-week
    rule) give an OrTrigger of both.
    """
    zone = ZoneInfo(validate_timezone_name(timezone))
    triggers = [_cron_trigger(fields, zone, expr.has_seconds) for fields in expr.alternatives]
    return triggers[0] if len(triggers) == 1 else OrTrigger(triggers)


def _cron_trigger(fields: CronFields, zone: ZoneInfo, has_seconds: bool) -> CronTrigger:
    if has_seconds:
        return WallClockCronTrigger(**asdict(fields), timezone=zone)
    crontab = f"{fields.minute} {fields.hour} {fields.day} {fields.month} {fields.day_of_week}"
    return WallClockCronTrigger.from_crontab(crontab, timezone=zone)


def next_fire_times(trigger: BaseTrigger, after: datetime, count: int) -> list[datetime]:
    """The next `count` fire times strictly after `after`, as ascending aware UTC datetimes.

    Works for any trigger; second occurrences of repeated wall times in the trigger's zone
    are left out (for triggers that do not already skip them). Fewer than `count` come back
    only if the trigger has no more fire times. Every step moves the search point forward,
    so this always ends; cost is about 15-25 us a fire time.
    """
    _require_aware(after)
    if count < 0:
        raise ValueError(f"count must not be negative, got {count}")
    times: list[datetime] = []
    cursor = after.astimezone(UTC)
    while len(times) < count:
        candidate = trigger.get_next_fire_time(None, cursor + _TICK)
        if candidate is None:
            break
        cursor = _advance(cursor, candidate)
        if not _is_second_pass(cursor, candidate.tzinfo):
            times.append(cursor)
    return times


def _advance(cursor: datetime, candidate: datetime) -> datetime:
    """The candidate as UTC, guaranteed later than the cursor (else the loop could spin)."""
    instant = candidate.astimezone(UTC)
    if instant <= cursor:
        raise RuntimeError(f"trigger did not advance: asked for a time after {cursor}, got {candidate}")
    return instant


def same_window(a: datetime, b: datetime, timezone: str) -> bool:
    """True when instants `a` and `b` show the same local date and wall time in `timezone`.

    The fold is ignored: 02:30 CEST and 02:30 CET on a fall-back day are one window.
    """
    zone = ZoneInfo(validate_timezone_name(timezone))
    return _wall(a, zone) == _wall(b, zone)


def _is_second_pass(instant: datetime, zone: tzinfo | None) -> bool:
    """True when `instant`'s wall time in `zone` already occurred earlier (fall-back)."""
    _require_aware(instant)
    if zone is None:  # never fall back to the host's zone
        return False
    local = instant.astimezone(zone)
    # zoneinfo sets fold=1 on the later of two instants with the same wall time; the offset
    # check keeps tzinfo implementations that set fold loosely from dropping real windows.
    return local.fold == 1 and local.replace(fold=0).utcoffset() != local.utcoffset()


def _wall(instant: datetime, zone: ZoneInfo) -> datetime:
    _require_aware(instant)
    return instant.astimezone(zone).replace(tzinfo=None, fold=0)


def _require_aware(instant: datetime) -> None:
    # A naive datetime would silently be read in the host's zone.
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"fire times must be timezone-aware datetimes, got {instant!r}")
