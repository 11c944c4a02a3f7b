"""APScheduler triggers for cron schedules (not the kernel's `Trigger` enum, which says what started a run).

`build_trigger` turns a validated `CronExpr` (jobsd_lib.kernel.cron) into an APScheduler 3.x
trigger in the job's zone; `next_fire_times` lists what any trigger will fire. The DST policy
itself (one run per wall-clock window) is pure maths in jobsd_lib.kernel.dst, which says what
runs when; this module only plugs it into APScheduler's CronTrigger.

What APScheduler 3.11.3 does, measured, and why we subclass its CronTrigger
--------------------------------------------------------------------------
- Fall-back: stock CronTrigger fires both passes (``30 2 * * *`` Berlin: 00:30Z and 01:30Z on
  2026-10-25; New York hourly: 05:00Z and 06:00Z for 01:00 on 2026-11-01).
- Spring-forward, gap times: as kernel.dst describes (02:30 -> 03:30 local) when searched from the
  day before; skipped when the search crosses the gap from earlier the same day
  (``30 1-3 * * *`` runs 01:30 CET then 03:30 CEST, no 02:30).
- Spring-forward, the day AFTER: stock CronTrigger skips a whole day for daily times before
  the change (``@daily`` Berlin: 2026-03-29 00:00, then 2026-03-31 00:00; same for New York
  2026-03-09 and Lord Howe 2026-10-05), because it adds wall-clock differences in UTC and a
  23-hour day then lands an hour late (APScheduler issues #529, #606).
`CronTrigger`'s subclass `WallClockCronTrigger` fixes the last one (it moves on the wall clock:
the private step it overrides is in jobsd.apscheduler_private) and skips second passes itself, so
APScheduler never fires them: the daemon needs no de-duplication.

Its import path, `jobsd.triggers.WallClockCronTrigger`, is pickled into every job APScheduler
stores in schedule.sqlite3: keep the class here under this name, or stored jobs no longer load.
"""

from __future__ import annotations

import functools
from dataclasses import asdict
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger

from jobsd.apscheduler_private import WallClockStep
from jobsd_lib.kernel import dst
from jobsd_lib.kernel.cron import CronExpr, CronFields, validate_timezone_name
from jobsd_lib.spec import JobSpec

__all__ = ["WallClockCronTrigger", "ShiftedTrigger", "build_trigger", "spec_trigger", "next_fire_times"]


class WallClockCronTrigger(WallClockStep, CronTrigger):
    """A CronTrigger that moves on the wall clock and fires each wall-clock window once.

    Same fields, arguments, pickled state and `from_crontab` as CronTrigger.
    """

    __slots__ = ()

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        """CronTrigger's answer, passing over second occurrences of repeated wall times."""
        search = functools.partial(super().get_next_fire_time, None)  # from an instant on, second passes too
        return dst.first_passes(super().get_next_fire_time(previous_fire_time, now), self.timezone, search)


class ShiftedTrigger(BaseTrigger):
    """Another trigger's fire times moved later by a fixed `offset` (a job's jitter, kernel.jitter):
    window W fires at W + offset. The DST policy is the inner trigger's, on the nominal windows.
    Pickled into schedule.sqlite3 under this import path: keep the name."""

    __slots__ = ("trigger", "offset")

    def __init__(self, trigger: BaseTrigger, offset: timedelta) -> None:
        self.trigger, self.offset = trigger, offset

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        previous = previous_fire_time - self.offset if previous_fire_time is not None else None
        window = self.trigger.get_next_fire_time(previous, now - self.offset)
        return window + self.offset if window is not None else None

    def __getstate__(self) -> dict:
        return {"version": 1, "trigger": self.trigger, "offset": self.offset}

    def __setstate__(self, state: dict) -> None:
        self.trigger, self.offset = state["trigger"], state["offset"]

    def __str__(self) -> str:
        return f"{self.trigger} + {self.offset}"


def build_trigger(expr: CronExpr, timezone: str, offset: timedelta = timedelta(0)) -> BaseTrigger:
    """The APScheduler trigger for `expr` in IANA zone `timezone` (CronError if unknown), its fire
    times `offset` after the windows.

    One alternative gives a WallClockCronTrigger; two (cron's day-of-month OR day-of-week
    rule) give an OrTrigger of both.
    """
    zone = ZoneInfo(validate_timezone_name(timezone))
    triggers = [_cron_trigger(fields, zone, expr.has_seconds) for fields in expr.alternatives]
    trigger = triggers[0] if len(triggers) == 1 else OrTrigger(triggers)
    return ShiftedTrigger(trigger, offset) if offset else trigger


def spec_trigger(spec: JobSpec) -> BaseTrigger:
    """The trigger of a scheduled job's spec, its jitter included: what the timer fires, `jobs next` lists."""
    schedule = spec.schedule
    assert schedule is not None
    return build_trigger(schedule.expr, schedule.timezone, spec.jitter_offset)


def _cron_trigger(fields: CronFields, zone: ZoneInfo, has_seconds: bool) -> CronTrigger:
    if has_seconds:
        return WallClockCronTrigger(**asdict(fields), timezone=zone)
    crontab = f"{fields.minute} {fields.hour} {fields.day} {fields.month} {fields.day_of_week}"
    return WallClockCronTrigger.from_crontab(crontab, timezone=zone)


def next_fire_times(trigger: BaseTrigger, after: datetime, count: int) -> list[datetime]:
    """The next `count` fire times of `trigger` strictly after `after`, as ascending aware UTC
    datetimes (kernel.dst.fire_times: second passes of repeated wall times left out, fewer only
    when the trigger ends, ValueError for a naive `after` or a negative count). About 15-25 us a
    fire time."""
    return dst.fire_times(lambda at: trigger.get_next_fire_time(None, at), after, count)

