"""The APScheduler 3.x adapter: cron windows in, firings handed to the event loop out.

How it works
------------
- A BackgroundScheduler (timezone UTC) with a SQLAlchemyJobStore on `<db_dir>/schedule.sqlite3`,
  its own engine (PITFALLS 9). Created only once the store lock is held (app.py).
- One APScheduler job per scheduled spec: id = job id, func = the stable module-level `fire`
  (PITFALLS 4), name = a digest of cron, timezone, misfire_grace, coalesce and catch_up.
  `sync` adds or replaces a job only when it is missing or its digest differs, and removes jobs
  without a spec: re-adding an unchanged job would recompute its next run time and silently
  lose the windows missed while jobsd was down (PITFALLS 2).
- APScheduler jobs are registered with coalesce=False, max_instances=1, misfire_grace_time=None,
  so APScheduler never drops or merges a window. Our executor (`AckExecutor`) runs nothing and
  returns at once (PITFALLS 3). The windows are handed to the asyncio loop by a listener of
  EVENT_JOB_SUBMITTED, which APScheduler dispatches only after it has stored the job's next run
  time: whenever a window reaches our store, APScheduler has already moved past it, so a daemon
  killed at any moment never gets the same window again after a restart (at most once; a kill
  between the two commits loses that one window). On the loop, the kernel
  (`jobsd_lib.kernel.fire`) decides what runs and what is recorded `missed`, and the service
  applies it. Windows handed over while the daemon stops (`accepting` is False) go to `on_drop`
  (recorded `missed`), never silently away.
- `last_tick` is set by every firing and by a heartbeat job (every HEARTBEAT seconds, in an
  in-memory job store) that goes through the same APScheduler thread and event loop, so it
  proves both are alive. Its `Pulse` trigger never owes more than one firing, however far the
  wall clock jumps forward. `healthy()` (the systemd watchdog's gate) is true while the scheduler
  runs and has ticked within STALE_AFTER seconds, measured on the monotonic clock, or while it
  is paused on purpose. APScheduler keeps time by the wall clock: after the wall clock is set
  back, the heartbeat job would wait out the jump, so the daemon calls `kick_heartbeat()` when
  it sees one (health.Heartbeat).
- Invalid specs keep their stored schedule (fixing the file later does not lose windows); their
  firings are refused by admission and logged.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from apscheduler.events import EVENT_JOB_SUBMITTED, JobSubmissionEvent
from apscheduler.executors.base import BaseExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_PAUSED, STATE_RUNNING
from apscheduler.triggers.base import BaseTrigger

from jobsd import clock
from jobsd.triggers import build_trigger
from jobsd_lib.kernel.drift import next_pulse
from jobsd_lib.spec import JobSpec

__all__ = ["CronScheduler", "SyncResult", "fire", "schedule_digest", "HEARTBEAT_ID", "HEARTBEAT", "STALE_AFTER"]

log = logging.getLogger("jobsd.scheduler")

HEARTBEAT_ID = "__jobsd_heartbeat__"
HEARTBEAT = 5.0  # seconds
STALE_AFTER = 3 * HEARTBEAT  # seconds without a tick after which the scheduler is not healthy
_STORE, _INTERNAL, _EXECUTOR = "default", "internal", "loop"


def fire(job_id: str) -> None:
    """The stable entry point stored with every APScheduler job (its import path must never change).

    Never called: AckExecutor runs nothing; firings reach the event loop through a listener.
    """
    log.warning("fire(%s) called directly; firings go through the event loop", job_id)


def schedule_digest(spec: JobSpec) -> str:
    """What the stored APScheduler job was built from; a change means re-register."""
    s = spec.schedule
    assert s is not None
    text = f"{s.cron}|{s.timezone}|{s.misfire_grace!r}|{s.coalesce}|{s.catch_up}"
    return "v1:" + hashlib.sha256(text.encode()).hexdigest()[:24]


class AckExecutor(BaseExecutor):
    """Accepts every submission and returns at once; runs nothing (the hand-off is a listener)."""

    def _do_submit_job(self, job, run_times):  # noqa: ANN001
        self._run_job_success(job.id, [])


class Pulse(BaseTrigger):
    """The heartbeat's trigger: every `interval` seconds, but never more than one firing behind.

    After the wall clock jumps forward, an IntervalTrigger would hand APScheduler every missed
    interval (a year ahead: six million, minutes of CPU in the scheduler thread, which then misses
    its own heartbeat). This one fires once and carries on from now.
    """

    def __init__(self, interval: float) -> None:
        self.interval = timedelta(seconds=interval)

    def get_next_fire_time(self, previous_fire_time, now):  # noqa: ANN001, ANN201
        return next_pulse(previous_fire_time, now, self.interval)

    def __str__(self) -> str:
        return f"pulse[{self.interval}]"


@dataclass
class SyncResult:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


class CronScheduler:
    """Owns the BackgroundScheduler. Public methods are called from the event-loop thread."""

    def __init__(self, db_dir: str, loop: asyncio.AbstractEventLoop, on_fire: Callable[[str, list[datetime]], None],
                 on_drop: Callable[[str, list[datetime]], None] | None = None) -> None:
        """`on_fire(job_id, windows)` gets the due windows of each firing; `on_drop(job_id, windows)`
        those that arrive once the daemon has stopped accepting (shutdown). Both on the loop thread."""
        self.path = os.path.join(db_dir, "schedule.sqlite3")
        self._loop, self._on_fire, self._on_drop = loop, on_fire, on_drop
        self.last_tick: datetime | None = None
        self._alive_at = clock.monotonic()  # last sign of life of the APScheduler thread (monotonic)
        self._paused_on_purpose = False
        self.accepting = True
        self._scheduler = BackgroundScheduler(
            timezone=UTC,
            jobstores={_STORE: SQLAlchemyJobStore(url=f"sqlite:///{self.path}"), _INTERNAL: MemoryJobStore()},
            executors={"default": AckExecutor()},
            job_defaults={"coalesce": False, "max_instances": 1, "misfire_grace_time": None})
        self._scheduler.add_listener(self._submitted, EVENT_JOB_SUBMITTED)

    # ------------------------------------------------------------------ lifecycle
    def start_paused(self) -> None:
        self._paused_on_purpose = True
        self._scheduler.start(paused=True)
        self._scheduler.add_job(fire, Pulse(HEARTBEAT), id=HEARTBEAT_ID, args=[HEARTBEAT_ID],
                                jobstore=_INTERNAL, replace_existing=True)

    def resume(self) -> None:
        self._alive_at = clock.monotonic()  # the first heartbeat is HEARTBEAT seconds away
        self._paused_on_purpose = False
        self._scheduler.resume()

    def pause(self) -> None:
        if self._scheduler.state == STATE_RUNNING:
            self._paused_on_purpose = True
            self._scheduler.pause()

    def shutdown(self) -> None:
        self.accepting = False
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)  # our executor holds no threads

    @property
    def state(self) -> str:
        return {STATE_RUNNING: "running", STATE_PAUSED: "paused"}.get(self._scheduler.state, "stopped")

    def tick_age(self) -> float:
        """Seconds (monotonic) since the APScheduler thread last handed anything to the loop."""
        return clock.monotonic() - self._alive_at

    def healthy(self) -> bool:
        """Running and ticked within STALE_AFTER seconds, or paused on purpose (start-up, shutdown).

        A dead APScheduler thread (its state still says running: an exception in its loop, e.g.
        a job-store write that failed, ends the thread) or a stuck one stops the ticks.
        """
        state = self._scheduler.state
        if state == STATE_PAUSED:
            return self._paused_on_purpose
        return state == STATE_RUNNING and self.tick_age() <= STALE_AFTER

    def kick_heartbeat(self) -> None:
        """Fire the heartbeat job now. After the wall clock was set back its stored next run time
        lies in the future by the jump; the interval goes on from this firing."""
        if self._scheduler.state == STATE_RUNNING:
            self._scheduler.modify_job(HEARTBEAT_ID, jobstore=_INTERNAL, next_run_time=clock.now())

    # ------------------------------------------------------------------ jobs
    def sync(self, specs: Iterable[JobSpec], keep: Iterable[str] = ()) -> SyncResult:
        """Make the stored jobs match the scheduled specs; touch only what differs (PITFALLS 2).

        Stored jobs whose id is in `keep` (e.g. currently invalid specs) are left alone.
        """
        result = SyncResult()
        stored = {job.id: job for job in self._scheduler.get_jobs(jobstore=_STORE)}
        wanted = {spec.id: spec for spec in specs if spec.schedule is not None}
        for job_id, spec in sorted(wanted.items()):
            digest = schedule_digest(spec)
            current = stored.get(job_id)
            if current is not None and current.name == digest:
                continue
            trigger = build_trigger(spec.schedule.expr, spec.schedule.timezone)
            self._scheduler.add_job(fire, trigger=trigger, id=job_id, name=digest, args=[job_id],
                                    jobstore=_STORE, replace_existing=True, coalesce=False, max_instances=1,
                                    misfire_grace_time=None)
            (result.changed if current is not None else result.added).append(job_id)
        keep = set(keep)
        for job_id in sorted(set(stored) - set(wanted) - keep):
            self._scheduler.remove_job(job_id, jobstore=_STORE)
            result.removed.append(job_id)
        if result.added or result.changed or result.removed:
            log.info("schedule synced: added %s, changed %s, removed %s", result.added or "none",
                     result.changed or "none", result.removed or "none")
        return result

    def next_run_at(self, job_id: str) -> datetime | None:
        if self._scheduler.state != STATE_RUNNING:
            return None
        job = self._scheduler.get_job(job_id, jobstore=_STORE)
        return job.next_run_time.astimezone(UTC) if job is not None and job.next_run_time else None

    def all_next_run_times(self) -> dict[str, datetime]:
        """Every stored job's next run time (one job-store query); empty unless running."""
        if self._scheduler.state != STATE_RUNNING:
            return {}
        return {job.id: job.next_run_time.astimezone(UTC)
                for job in self._scheduler.get_jobs(jobstore=_STORE) if job.next_run_time}

    # ------------------------------------------------------------------ firing
    def _submitted(self, event: JobSubmissionEvent) -> None:
        """APScheduler thread, after the job's next run time is stored: hand the windows to the loop."""
        try:
            self._loop.call_soon_threadsafe(self._fired, event.job_id, list(event.scheduled_run_times))
        except RuntimeError as exc:  # the loop is closed: the daemon is stopping
            log.warning("firing of %s dropped: %s", event.job_id, exc)

    def _fired(self, job_id: str, run_times: list[datetime]) -> None:
        """Event-loop thread."""
        self.last_tick, self._alive_at = clock.now(), clock.monotonic()
        if job_id == HEARTBEAT_ID:
            return
        callback = self._on_fire if self.accepting else self._on_drop
        if callback is None:
            log.warning("cron windows %s of %s dropped: jobsd is stopping", [t.isoformat() for t in run_times], job_id)
            return
        try:
            callback(job_id, run_times)
        except Exception:  # noqa: BLE001 - one job's bookkeeping error must not stop the scheduler
            log.exception("firing of %s failed", job_id)
