"""The daemon's health: GetHealth's answer, and the heartbeat that records downtime and clock jumps.

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
from collections import Counter
from datetime import UTC, datetime

from sqlalchemy.exc import SQLAlchemyError

from jobsd import __version__, clock
from jobsd.api.convert import problem_pb, ts
from jobsd.output import Channel
from jobsd.scheduler import HEARTBEAT, CronScheduler
from jobsd.service import Service
from jobsd.store import Store
from jobsd_lib.errors import InternalError
from jobsd_lib.kernel.decisions import job_state
from jobsd_lib.kernel.drift import (ClockJump, ClockReading, HeartbeatRecord, Restart, assess_restart,
                                    decode_heartbeat, detect_jump, encode_heartbeat)
from jobsd_lib.kernel.states import JobState
from jobsd_lib.rpc import jobsd_pb2 as pb

__all__ = ["health", "degraded", "job_counts", "Heartbeat", "HEARTBEAT_KEY"]

log = logging.getLogger("jobsd.health")

HEARTBEAT_KEY = "heartbeat"  # daemon_meta key of the last HeartbeatRecord


def job_counts(service: Service) -> Counter[JobState]:
    """Jobs by state from the catalog and the operator states: one query, whatever the number of jobs."""
    operator = service.store.operator_states()
    specs = service.catalog.specs
    return Counter(job_state(job_id in specs, specs[job_id].enabled if job_id in specs else True,
                             operator.get(job_id)) for job_id in service.catalog.ids())


def health(service: Service, max_concurrent: int, startup_warnings: tuple[str, ...] = ()) -> pb.Health:
    """startup_warnings: what the start-up checks found and let pass (group-writable home or state)."""
    by_state = job_counts(service)
    counts = service.store.counts_by_state()
    scheduler = service.scheduler
    message = pb.Health(
        version=__version__, pid=os.getpid(), lock_file=service.paths.lock_file, socket=service.paths.socket,
        uptime_seconds=(clock.now() - service.started_at).total_seconds(),
        scheduler_state=_scheduler_state(scheduler),
        jobs_active=by_state[JobState.ACTIVE], jobs_paused=by_state[JobState.PAUSED],
        jobs_disabled=by_state[JobState.DISABLED], jobs_invalid=by_state[JobState.INVALID],
        invalid_specs=[problem_pb(j, p) for j, ps in sorted(service.catalog.invalid.items()) for p in ps],
        runs_active=counts.get("running", 0) + counts.get("retrying", 0), runs_queued=counts.get("queued", 0),
        followers=service.hub.followers, store_path=service.store.path, store_bytes=service.store.size_bytes(),
        max_concurrent_runs=max_concurrent, jobs_dir=service.paths.jobs_dir, state_dir=service.paths.state_dir,
        warnings=[*startup_warnings, *service.catalog.warnings])
    message.degraded.extend(degraded(service))
    message.started_at.CopyFrom(ts(service.started_at))
    last_tick = scheduler.last_tick if scheduler else None
    if last_tick is not None:
        message.last_tick.CopyFrom(ts(last_tick))
    return message


def degraded(service: Service) -> list[str]:
    """One sentence per reason the daemon is not fully working, for `daemon status`."""
    lines = []
    failures = (("store", service.store.write_failure),
                ("job store", service.scheduler.write_failure if service.scheduler else None))
    for name, failure in failures:
        if failure is not None:
            lines.append(f"the {name} cannot be written since {_iso(failure.since)} ({failure.cause}): free disk "
                         "space; runs cannot start meanwhile, and cron windows are recorded missed once it works")
    if held := len(service.held_windows):
        lines.append(f"{held} cron window(s) wait to be recorded missed (the store could not be written)")
    scheduler = service.scheduler
    if scheduler is not None and _scheduler_state(scheduler) == "stalled":
        lines.append(f"the scheduler has not ticked for {scheduler.tick_age():.0f} s: cron windows are not handed "
                     "over (see the daemon log; under systemd the watchdog restarts jobsd)")
    return lines


def _scheduler_state(scheduler) -> str:  # noqa: ANN001
    """running | paused | stopped, or `stalled`: APScheduler says running but has not ticked for
    STALE_AFTER seconds (its thread died or hangs; windows are not being handed over)."""
    if scheduler is None:
        return "stopped"
    state = scheduler.state
    return "stalled" if state == "running" and not scheduler.healthy() else state


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def _jump_attrs(jump: ClockJump, while_down: bool) -> dict[str, object]:
    return {"delta": f"{jump.delta:.1f}", "direction": jump.direction, "elapsed": f"{jump.elapsed:.1f}",
            "wall_before": _iso(jump.before), "wall_after": _iso(jump.after), "while_down": while_down or None}


def _started_attrs(restart: Restart | None, pid: int) -> dict[str, object]:
    attrs: dict[str, object] = {"pid": pid, "version": __version__}
    if restart is not None:
        attrs.update(down_since=_iso(restart.down_since), down_seconds=f"{restart.down_seconds:.1f}",
                     previous_stop="clean" if restart.clean else "unclean", previous_pid=restart.previous_pid or None,
                     rebooted=None if restart.rebooted is None else str(restart.rebooted).lower())
    return attrs


class Heartbeat:
    """Saves the daemon's heartbeat and watches the wall clock. Event-loop thread only."""

    def __init__(self, store: Store, events_changed: Channel, pid: int | None = None) -> None:
        self.store, self.events_changed = store, events_changed
        self.pid = os.getpid() if pid is None else pid
        self.scheduler: CronScheduler | None = None  # set once it exists: kicked after a jump back
        self.last: ClockReading | None = None        # the latest reading (saved or not)
        self._failing = False
        self._scheduler_healthy = True

    def start(self) -> Restart | None:
        """Start-up, before reconciliation: record `daemon.started` and save the first heartbeat.

        Returns the facts about the previous daemon (None on a first start)."""
        previous = decode_heartbeat(self.store.get_meta(HEARTBEAT_KEY))
        now = clock.reading()
        restart = assess_restart(previous, now)
        events = [("daemon.started", _started_attrs(restart, self.pid))]
        if restart is not None and restart.jump is not None:
            events.append(("daemon.clock_jump", _jump_attrs(restart.jump, while_down=True)))
        self._log_restart(restart)
        self._save(now, events)
        return restart

    def beat(self) -> ClockJump | None:
        """One heartbeat: detect a jump since the previous one, record it, save the reading."""
        now = clock.reading()
        jump = detect_jump(self.last, now) if self.last is not None else None
        events = []
        if jump is not None:
            log.warning("the wall clock jumped %s by %.1f s (it moved %.1f s while %.1f s passed): %s",
                        jump.direction, abs(jump.delta), jump.after - jump.before, jump.elapsed,
                        "cron windows in between are due now and run or are recorded missed per misfire_grace, "
                        "coalesce and catch_up" if jump.direction == "forward" else
                        "cron jobs wait until their next run time comes round again; no window runs twice")
            events.append(("daemon.clock_jump", _jump_attrs(jump, while_down=False)))
        self._save(now, events)
        if jump is not None and jump.direction == "back" and self.scheduler is not None:
            self.scheduler.kick_heartbeat()
        self._watch_scheduler()
        return jump

    def stop(self) -> None:
        """The last step of a clean stop: a record marked `stopped` (the next start says "clean")."""
        self._save(clock.reading(), [], stopped=True)

    async def run(self) -> None:
        """Beat every HEARTBEAT seconds until cancelled; after each beat, checkpoint the WAL of both
        SQLite files in a worker thread (store.py: SQLite's own checkpoint would run on the loop;
        scheduler.py: the job store commits without an fsync until then)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(HEARTBEAT)
            try:
                self.beat()
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
    def _save(self, reading: ClockReading, events: list[tuple[str, dict[str, object]]], stopped: bool = False) -> None:
        self.last = reading
        record = encode_heartbeat(HeartbeatRecord(reading, self.pid, stopped))
        try:
            # A plain beat needs no fsync (it survives a killed daemon, and a power cut only makes
            # down_since up to one beat older); events and the clean-stop record get one.
            with self.store.write(durable=bool(events) or stopped):
                for type_, attrs in events:
                    self.store.add_event(reading.wall, type_, "", None, attrs)
                self.store.set_meta(HEARTBEAT_KEY, record)
        except (InternalError, SQLAlchemyError, OSError) as exc:  # InternalError: store.write's refusal
            if not self._failing:
                log.error("cannot save the heartbeat%s in the store: %s",
                          f" and {', '.join(t for t, _ in events)}" if events else "", exc)
            self._failing = True
            return
        if self._failing:
            log.info("heartbeat saved in the store again")
            self._failing = False
        if events:
            self.events_changed.bump()

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
                restart.down_seconds, restart.previous_pid, _iso(restart.down_since), how,
                "; the host rebooted since" if restart.rebooted else "")
        if restart.jump is not None:
            log.warning("the wall clock was set %s by %.1f s while jobsd was down", restart.jump.direction,
                        abs(restart.jump.delta))
