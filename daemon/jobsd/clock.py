"""The one module of the daemon that reads the clock. Everything else asks it."""
from __future__ import annotations

import asyncio
import functools
import time
from datetime import datetime, timezone

from typing import Protocol

from jobsd_lib.kernel.drift import ClockReading
from jobsd_lib.times import from_epoch, to_epoch  # re-exported: the daemon's modules convert through clock

__all__ = ["Clock", "SystemClock", "SYSTEM", "now", "now_ns", "monotonic", "to_epoch", "from_epoch", "since_boot",
           "boot_id", "reading"]

_BOOT_ID = "/proc/sys/kernel/random/boot_id"


def now() -> datetime:
    """Aware UTC datetime."""
    return datetime.now(timezone.utc)


def now_ns() -> int:
    """UTC epoch nanoseconds (output chunks' read time)."""
    return time.time_ns()


def monotonic() -> float:
    return time.monotonic()


def since_boot() -> float:
    """Seconds since boot, suspend included (CLOCK_BOOTTIME): never set, so it shows when the
    wall clock was. CLOCK_MONOTONIC (which stops while suspended) where there is no BOOTTIME."""
    clock_id = getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC)
    return time.clock_gettime(clock_id)


@functools.cache
def boot_id() -> str:
    """The kernel's id of this boot ("" if unknown): says whether two since_boot() values compare."""
    try:
        with open(_BOOT_ID, encoding="ascii") as f:
            return f.read().strip()
    except (OSError, ValueError):
        return ""


def reading() -> ClockReading:
    """Wall clock, boot id and time since boot, read back to back (the drift kernel's input)."""
    return ClockReading(time.time(), boot_id(), since_boot())


class Clock(Protocol):
    """The clock port: what the daemon's core reads the time from (injected; tests pass a fake).

    Contract: `now()` is an aware UTC datetime and `epoch()` the same instant in epoch seconds;
    `now_ns()` in epoch nanoseconds (output chunks'
    read times); all follow the wall clock, which can jump either way (the heartbeat notices: health). `monotonic()`
    never goes back and is what durations and timeouts use. `reading()` is the wall clock, boot id
    and time since boot read back to back, for the clock-jump kernel (jobsd_lib.kernel.drift).
    """

    def now(self) -> datetime: ...

    def epoch(self) -> float: ...

    def now_ns(self) -> int: ...

    def monotonic(self) -> float: ...

    def reading(self) -> ClockReading: ...

    async def wait_until(self, at: datetime, wake: asyncio.Event) -> None:
        """Return once `now()` has reached `at` (at once if it has) or `wake` is set, whichever is
        first. Wall-clock jumps while waiting need not be followed (the system clock waits the
        monotonic time that was left when it began)."""


class SystemClock:
    """The host's clocks."""

    now = staticmethod(now)
    now_ns = staticmethod(now_ns)
    monotonic = staticmethod(monotonic)
    reading = staticmethod(reading)

    @staticmethod
    def epoch() -> float:
        return time.time()

    @staticmethod
    async def wait_until(at: datetime, wake: asyncio.Event) -> None:
        delay = (at - now()).total_seconds()
        if delay <= 0 or wake.is_set():
            return
        try:
            await asyncio.wait_for(wake.wait(), delay)
        except asyncio.TimeoutError:
            pass


SYSTEM = SystemClock()
