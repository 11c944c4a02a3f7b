"""The heartbeat that records downtime and clock jumps, and keeps both SQLite files checkpointed.

How the heartbeat works
-----------------------
`Heartbeat.run` beats every HEARTBEAT seconds on the event loop. Its sleep is timed by the
monotonic clock, so it keeps beating whatever happens to the wall clock. Each beat reads the
clock (wall, boot id, time since boot: `clock.reading`), asks the kernel
(`jobsd_lib.kernel.drift.detect_jump`) whether the wall clock jumped since the previous beat, and
in one store transaction appends a `daemon.clock_jump` event if it did and saves the reading in
daemon_meta (key `heartbeat`). After a jump back it fires the scheduler's heartbeat job at once
(`CronScheduler.kick_heartbeat`): that job keeps APScheduler's wall-clock time, and would
otherwise wait out the jump and starve the watchdog.

At start-up, `Heartbeat.start` reads the previous daemon's last heartbeat, logs how long jobsd
was down and whether it stopped cleanly, and appends `daemon.started` (with `down_since`), plus
`daemon.clock_jump` if the wall clock was set while it was down. A clean stop ends with
`Heartbeat.stop`, which saves a last record marked `stopped`.

A store that cannot be written (disk full, locked by another process) costs only the record: the
failure is logged once, and the next successful beat says so.
"""
from __future__ import annotations

import asyncio
import logging
import os

from sqlalchemy.exc import SQLAlchemyError

from jobsd import __version__
from jobsd.clock import Clock
from jobsd.journal import Journal
from jobsd.leadership import Leadership
from jobsd.scheduler import HEARTBEAT
from jobsd.store_hosts import HOST_LEASE, ThisHost
from jobsd.timer import Timer
from jobsd_lib.errors import InternalError
from jobsd_lib.facts import ClockJumped, DaemonStarted, Fact, iso
from jobsd_lib.kernel.drift import (ClockJump, ClockReading, HeartbeatRecord, Restart, assess_restart,
                                    decode_heartbeat, detect_jump, encode_heartbeat, host_in_use)

__all__ = ["Heartbeat", "HEARTBEAT_KEY", "heartbeat_key"]

log = logging.getLogger("jobsd.health")

HEARTBEAT_KEY = "heartbeat"  # daemon_meta key of the last HeartbeatRecord (a shared store: one per host)


def heartbeat_key(host: ThisHost | None) -> str:
    """A shared store keeps one heartbeat per host name (`heartbeat@NAME`): each host's downtime and
    clean stops are its own."""
    return HEARTBEAT_KEY if host is None else f"{HEARTBEAT_KEY}@{host.name}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _started(wall: float, restart: Restart | None, pid: int) -> DaemonStarted:
    if restart is None:
        return DaemonStarted(ts=wall, pid=pid, version=__version__)
    return DaemonStarted(ts=wall, pid=pid, version=__version__, down_since=restart.down_since,
                         down_seconds=restart.down_seconds, previous_clean=restart.clean,
                         previous_pid=restart.previous_pid, rebooted=restart.rebooted)


def _jumped(wall: float, jump: ClockJump, while_down: bool) -> ClockJumped:
    return ClockJumped(ts=wall, delta=jump.delta, direction=jump.direction, elapsed=jump.elapsed,
                       wall_before=jump.before, wall_after=jump.after, while_down=while_down)


class Heartbeat:
    """Saves the daemon's heartbeat and watches the wall clock. Event-loop thread only."""

    def __init__(self, journal: Journal, clock: Clock, timer: Timer | None, pid: int | None = None,
                 host: ThisHost | None = None, lease: Leadership | None = None) -> None:
        self.journal, self.store, self.clock = journal, journal.store, clock
        self.pid = os.getpid() if pid is None else pid
        self.scheduler = timer  # kicked after a jump back; checkpointed after each beat
        self.last: ClockReading | None = None        # the latest reading (saved or not)
        self._failing = False
        self._scheduler_healthy = True
        self.host = host  # a shared store's row of this host, beaten with each heartbeat
        self.lease = lease  # a shared store's scheduler lease, renewed with each heartbeat
        self.key = heartbeat_key(host)
        self._claimed: tuple[str | None] | None = None  # (the earlier jobsd's record,) once claim() read it

    def claim(self) -> str:
        """On a shared store: why another jobsd is this host (kernel.drift.host_in_use), or "" after
        taking its name. The look and this jobsd's first record are one transaction under the store's
        exclusive lock, so of two jobsd starting together under one name one sees the other's record."""
        with self.store.write():
            self.store.dialect.lock_exclusive(self.store.conn)
            self._claimed = (self.store.get_meta(self.key),)
            previous = decode_heartbeat(self._claimed[0])
            now = self.clock.reading()
            alive = (previous is not None and previous.reading.boot_id == now.boot_id and previous.pid != self.pid
                     and _alive(previous.pid))  # (our own pid: a container's jobsd as pid 1, restarted)
            why = host_in_use(previous, now, alive, self.host.name if self.host else "")
            if not why:
                self.store.set_meta(self.key, encode_heartbeat(HeartbeatRecord(now, self.pid)))
        return why

    def start(self) -> Restart | None:
        """Start-up, before reconciliation: record `daemon.started` and save the first heartbeat.

        Returns the facts about the previous daemon (None on a first start)."""
        text = self._claimed[0] if self._claimed is not None else self.store.get_meta(self.key)
        previous = decode_heartbeat(text)
        now = self.clock.reading()
        restart = assess_restart(previous, now)
        events: list[Fact] = [_started(now.wall, restart, self.pid)]
        if restart is not None and restart.jump is not None:
            events.append(_jumped(now.wall, restart.jump, while_down=True))
        self._log_restart(restart)
        self._save(now, events)
        return restart

    def beat(self) -> ClockJump | None:
        """One heartbeat: detect a jump since the previous one, record it, save the reading."""
        now = self.clock.reading()
        jump = detect_jump(self.last, now) if self.last is not None else None
        events = []
        if jump is not None:
            log.warning("the wall clock jumped %s by %.1f s (it moved %.1f s while %.1f s passed): %s",
                        jump.direction, abs(jump.delta), jump.after - jump.before, jump.elapsed,
                        "cron windows in between are due now and run or are recorded missed per misfire_grace, "
                        "coalesce and catch_up" if jump.direction == "forward" else
                        "cron jobs wait until their next run time comes round again; no window runs twice")
            events.append(_jumped(now.wall, jump, while_down=False))
        self._save(now, events)
        if jump is not None and jump.direction == "back" and self.scheduler is not None:
            self.scheduler.kick_heartbeat()
        self._watch_scheduler()
        return jump

    def stop(self) -> None:
        """The last step of a clean stop: the lease dropped, and a record marked `stopped` (the next
        start says "clean")."""
        if self.lease is not None:
            self.lease.release()
        self._save(self.clock.reading(), [], stopped=True)

    async def run(self) -> None:
        """Beat every HEARTBEAT seconds until cancelled; after each beat, checkpoint the WAL of both
        SQLite files in a worker thread (store.py: SQLite's own checkpoint would run on the loop;
        scheduler.py: the job store commits without an fsync until then)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(HEARTBEAT)
            try:
                self.beat()
                if self.lease is not None:
                    self.lease.tick()
            except Exception:  # noqa: BLE001 - the heartbeat must outlive one bad beat
                log.exception("heartbeat failed")
            for name, checkpoint in (("store", self.store.checkpoint),
                                     ("job store", self.scheduler and self.scheduler.checkpoint)):
                if checkpoint is None:
                    continue
                try:
                    await loop.run_in_executor(None, checkpoint)
                except Exception as exc:  # noqa: BLE001 - SQLite's automatic checkpoint is the backstop
                    log.warning("%s checkpoint failed: %s", name, exc)

    # ------------------------------------------------------------------ internals
    def _save(self, reading: ClockReading, events: list[Fact], stopped: bool = False) -> None:
        self.last = reading
        record = encode_heartbeat(HeartbeatRecord(reading, self.pid, stopped))
        try:
            # A plain beat needs no fsync (it survives a killed daemon, and a power cut only makes
            # down_since up to one beat older); events and the clean-stop record get one.
            self.journal.record(*events, durable=bool(events) or stopped,
                                change=lambda store: self._change(store, record, stopped))
        except (InternalError, SQLAlchemyError, OSError) as exc:  # InternalError: store.write's refusal
            if not self._failing:
                log.error("cannot save the heartbeat%s in the store: %s",
                          f" and {', '.join(f.TYPE for f in events)}" if events else "", exc)
            self._failing = True
            return
        if self._failing:
            log.info("heartbeat saved in the store again")
            self._failing = False

    def _change(self, store, record: str, stopped: bool) -> None:  # noqa: ANN001
        store.set_meta(self.key, record)
        if self.host is not None and not store.beat_host(self.host, stopped):
            log.error("another start of jobsd took the host name %s in the store (this one was taken for dead: "
                      "no heartbeat for %.0f s); stop one of them", self.host.name, HOST_LEASE)

    def _watch_scheduler(self) -> None:
        """Log when the scheduler stops (or starts again) being healthy: the watchdog's gate."""
        if self.scheduler is None:
            return
        healthy = self.scheduler.healthy()
        if healthy == self._scheduler_healthy:
            return
        self._scheduler_healthy = healthy
        if healthy:
            log.warning("the scheduler is healthy again")
        else:
            log.error("the scheduler is not healthy: state %s, no tick for %.0f s; the systemd watchdog is no "
                      "longer fed (under systemd, jobsd is restarted)", self.scheduler.state,
                      self.scheduler.tick_age())

    def _log_restart(self, restart: Restart | None) -> None:
        if restart is None:
            log.info("no heartbeat of an earlier jobsd in the store: first start")
            return
        how = "stopped cleanly" if restart.clean else "did not stop cleanly (killed, crashed or power lost)"
        level = logging.INFO if restart.clean else logging.WARNING
        log.log(level, "jobsd was down for %.1f s: the previous daemon (pid %d) was last seen at %s and %s%s",
                restart.down_seconds, restart.previous_pid, iso(restart.down_since), how,
                "; the host rebooted since" if restart.rebooted else "")
        if restart.jump is not None:
            log.warning("the wall clock was set %s by %.1f s while jobsd was down", restart.jump.direction,
                        abs(restart.jump.delta))
