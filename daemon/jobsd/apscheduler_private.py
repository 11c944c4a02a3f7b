"""Every use of APScheduler 3.x's private or undocumented API in jobsd, and why. Nothing else may.

Checked against APScheduler 3.11.3.

- `CronTrigger._increment_field_value` (`WallClockStep`): stock CronTrigger adds wall-clock steps
  in UTC and skips a daily run after a spring-forward (APScheduler issues #529, #606); the step is
  redone on the wall clock (`kernel.dst.wall_clock_step`).
"""
from __future__ import annotations

from datetime import datetime, tzinfo

from jobsd_lib.kernel.dst import wall_clock_step

__all__ = ["WallClockStep"]


class WallClockStep:
    """Mixin for a CronTrigger subclass: its field steps move on the wall clock of its zone."""

    __slots__ = ()
    timezone: tzinfo

    def _increment_field_value(self, dateval: datetime, fieldnum: int) -> tuple[datetime, int]:
        moved, fieldnum = super()._increment_field_value(dateval, fieldnum)  # type: ignore[misc]
        return wall_clock_step(dateval, moved, self.timezone), fieldnum
