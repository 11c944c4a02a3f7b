"""Pure decisions about the daemon's clock: did the wall clock jump, and what did a restart miss.

How it works
------------
The daemon takes a `ClockReading` at every heartbeat: the wall clock (UTC epoch seconds,
CLOCK_REALTIME), the kernel's boot id, and the seconds since boot (CLOCK_BOOTTIME). The kernel
slews both clocks alike, and CLOCK_BOOTTIME also counts time spent suspended, so between two
readings of one boot the wall clock moves by the elapsed boot time unless someone *set* it
(`date -s`, an NTP step, a VM restored from a snapshot, a leap second). `detect_jump` compares
the two deltas: a difference beyond `JUMP_THRESHOLD` seconds plus `JUMP_RATE` of the elapsed
time is a jump, forward (the wall clock gained) or back. Readings from different boots, or with
an unknown boot id, cannot be compared and never report a jump.

The last reading is saved as a `HeartbeatRecord` (text, `encode_heartbeat`). At start-up,
`assess_restart` turns the previous daemon's last record and a fresh reading into the facts an
operator wants: down since when, for how long, whether it stopped cleanly, whether the host
rebooted, and whether the wall clock was set while jobsd was down.

Nothing here reads a clock or a file: readings are passed in.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["ClockReading", "ClockJump", "HeartbeatRecord", "Restart", "JUMP_THRESHOLD", "JUMP_RATE",
           "detect_jump", "encode_heartbeat", "decode_heartbeat", "assess_restart", "next_pulse",
           "SHARED_STORE_LEASE", "host_in_use"]

JUMP_THRESHOLD = 2.0   # seconds: above a leap second and the jitter of two back-to-back clock reads
JUMP_RATE = 1e-4       # plus 0.01 % of the elapsed time: slack for clocks that drift apart slowly
_FORMAT = 1            # HeartbeatRecord text version


@dataclass(frozen=True)
class ClockReading:
    wall: float      # UTC epoch seconds (CLOCK_REALTIME)
    boot_id: str     # the kernel's boot id (/proc/sys/kernel/random/boot_id); "" when unknown
    uptime: float    # seconds since boot (CLOCK_BOOTTIME: never set, counts suspend)


@dataclass(frozen=True)
class ClockJump:
    """The wall clock moved by `after - before` while `elapsed` seconds really passed."""
    before: float    # wall clock at the earlier reading (UTC epoch seconds)
    after: float     # wall clock at the later reading
    elapsed: float   # real seconds between the readings

    @property
    def delta(self) -> float:
        """Seconds the wall clock was set by: > 0 forward, < 0 back."""
        return (self.after - self.before) - self.elapsed

    @property
    def direction(self) -> str:
        return "forward" if self.delta > 0 else "back"


def detect_jump(before: ClockReading, after: ClockReading, threshold: float = JUMP_THRESHOLD,
                rate: float = JUMP_RATE) -> ClockJump | None:
    """The jump between two readings, or None: no jump, or the readings cannot be compared
    (different or unknown boots, time since boot going backwards, non-finite values)."""
    if not before.boot_id or before.boot_id != after.boot_id:
        return None
    elapsed = after.uptime - before.uptime
    values = (before.wall, after.wall, elapsed)
    if elapsed < 0 or not all(math.isfinite(v) for v in values):
        return None
    jump = ClockJump(before.wall, after.wall, elapsed)
    return jump if abs(jump.delta) > threshold + rate * elapsed else None


@dataclass(frozen=True)
class HeartbeatRecord:
    """What the daemon saves at every heartbeat (daemon_meta key `heartbeat`)."""
    reading: ClockReading
    pid: int
    stopped: bool = False   # True only in the record a daemon writes as the last step of a clean stop


def encode_heartbeat(record: HeartbeatRecord) -> str:
    r = record.reading
    return json.dumps({"v": _FORMAT, "wall": r.wall, "boot_id": r.boot_id, "uptime": r.uptime, "pid": record.pid,
                       "stopped": record.stopped}, sort_keys=True)


def decode_heartbeat(text: str | None) -> HeartbeatRecord | None:
    """The record in `text`; None when there is none or it cannot be read (never raises)."""
    if not text:
        return None
    try:
        data = json.loads(text)
        reading = ClockReading(float(data["wall"]), str(data.get("boot_id") or ""), float(data.get("uptime", 0.0)))
        if not math.isfinite(reading.wall):
            return None
        return HeartbeatRecord(reading, int(data.get("pid", 0)), data.get("stopped") is True)
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


@dataclass(frozen=True)
class Restart:
    """What happened between the previous daemon's last heartbeat and this start."""
    down_since: float       # wall time of the previous daemon's last heartbeat (UTC epoch seconds)
    down_seconds: float     # wall seconds from then to now (negative if the clock was set back past it)
    clean: bool             # the previous daemon recorded a clean stop
    rebooted: bool | None   # the host rebooted in between; None: unknown (no boot id on one side)
    jump: ClockJump | None  # the wall clock was set while jobsd was down (same boot only)
    previous_pid: int


def assess_restart(previous: HeartbeatRecord | None, now: ClockReading) -> Restart | None:
    """The facts of this start; None on a first start (no previous heartbeat)."""
    if previous is None:
        return None
    before = previous.reading
    rebooted = None if not before.boot_id or not now.boot_id else before.boot_id != now.boot_id
    return Restart(down_since=before.wall, down_seconds=now.wall - before.wall, clean=previous.stopped,
                   rebooted=rebooted, jump=detect_jump(before, now), previous_pid=previous.pid)


SHARED_STORE_LEASE = 15.0  # seconds: three heartbeats (scheduler.HEARTBEAT = 5 s) missed


def host_in_use(previous: HeartbeatRecord | None, now: ClockReading, previous_alive_here: bool, host: str) -> str:
    """Why this jobsd must not be host `host` of a shared (PostgreSQL) store, or "".

    Each jobsd of a shared store is one host: its runs, its heartbeat and what a restart
    reconciles are its host name's (DESIGN 12). Another jobsd is that host when the name's last
    heartbeat (`previous`) is not a clean stop's, is at most SHARED_STORE_LEASE old, and is not this
    machine's own dead predecessor (same boot, its pid gone: `previous_alive_here` is False; the
    caller checks the pid only on the same boot)."""
    if previous is None or previous.stopped:
        return ""
    age = now.wall - previous.reading.wall
    if not math.isfinite(age) or abs(age) > SHARED_STORE_LEASE:
        return ""
    same_machine = bool(previous.reading.boot_id) and previous.reading.boot_id == now.boot_id
    if same_machine and not previous_alive_here:
        return ""
    where = f"pid {previous.pid}" + (" on this machine" if same_machine else
                                     f" on another machine (boot id {previous.reading.boot_id[:8] or 'unknown'})")
    return (f"another jobsd ({where}) is host {host} of this store (its heartbeat {max(age, 0):.0f} s ago): give "
            "this one another --host-name (each jobsd sharing a database is a host of its own), or stop that "
            f"one (a stopped jobsd's name is free at once, a killed one's after {SHARED_STORE_LEASE:.0f} s)")


def next_pulse(previous: datetime | None, now: datetime, interval: timedelta) -> datetime:
    """When a periodic heartbeat fires next: `interval` after the previous firing, or after `now`
    when that is already past (the wall clock jumped forward, or the firing was late). A heartbeat
    owes at most one firing, however far the clock jumped."""
    if previous is None or previous + interval <= now:
        return now + interval
    return previous + interval
