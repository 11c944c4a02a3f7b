"""The one module of the daemon that reads the clock. Everything else asks it."""
from __future__ import annotations

import functools
import time
from datetime import datetime, timezone

from jobsd_lib.kernel.drift import ClockReading

__all__ = ["now", "now_ns", "monotonic", "to_epoch", "from_epoch", "since_boot", "boot_id", "reading"]

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


def to_epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def from_epoch(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, timezone.utc)
