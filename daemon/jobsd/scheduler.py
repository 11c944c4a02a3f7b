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
  so APScheduler never drops or merges a window. Our executor (`LoopExecutor`) does not run
  anything: it hands (job id, due windows) to the asyncio loop and returns at once
  (PITFALLS 3). On the loop, the kernel (`jobsd_lib.kernel.fire`) decides what runs and what is
  recorded `missed`, and the service applies it.
- `last_tick` is set by every firing and by a heartbeat job (every HEARTBEAT seconds, in an
  in-memory job store) that goes through the same APScheduler thread and event loop, so it
  proves both are alive.
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
from datetime import UTC, datetime

from apscheduler.executors.base import BaseExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_PAUSED, STATE_RUNNING

from jobsd import clock
from jobsd.triggers import build_trigger
from jobsd_lib.spec import JobSpec

__all__ = ["CronScheduler", "SyncResult", "fire", "schedule_digest", "HEARTBEAT_ID"]

log = logging.getLogger("jobsd.scheduler")

HEARTBEAT_ID = "__jobsd_heartbeat__"
HEARTBEAT = 5.0  # seconds
_STORE, _INTERNAL, _EXECUTOR = "default", "internal", "loop"


def fire(job_id: str) -> None:
    """The stable entry point stored with every APScheduler job (its import path must never change).

    Never called: LoopExecutor hands firings to the event loop instead of calling job functions.
    """
    log.warning("fire(%s) called directly; firings go through LoopExecutor", job_id)


def schedule_digest(spec: JobSpec) -> str:
    """What the stored APScheduler job was built from; a change means re-register."""
    s = spec.schedule
    assert s is not None
    text = f"{s.cron}|{s.timezone}|{s.misfire_grace!r}|{s.coalesce}|{s.catch_up}"
    return "v1:" + hashlib.sha256(text.encode()).hexdigest()[:24]


class LoopExecutor(BaseExecutor):
    """Hands (job id, due windows) to the event loop and returns; never runs anything itself."""

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[str, list[datetime]], None]) -> None:
        super().__init__()
        self._loop, self._callback = loop, callback

    def _do_submit_job(self, job, run_times):  # noqa: ANN001
        try:
            self._loop.call_soon_threadsafe(self._callback, job.id, list(run_times))
        except RuntimeError as exc:  # the loop is closed: the daemon is stopping
            log.warning("firing of %s dropped: %s", job.id, exc)
        self._run_job_success(job.id, [])


@dataclass
class SyncResult:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


class CronScheduler:
    """Owns the BackgroundScheduler. Public methods are called from the event-loop thread."""

    def __init__(self, db_dir: str, loop: asyncio.AbstractEventLoop,
                 on_fire: Callable[[str, list[datetime]], None]) -> None:
        self.path = os.path.join(db_dir, "schedule.sqlite3")
        self._on_fire = on_fire
        self.last_tick: datetime | None = None
        self.accepting = True
        self._scheduler = BackgroundScheduler(
            timezone=UTC,
            jobstores={_STORE: SQLAlchemyJobStore(url=f"sqlite:///{self.path}"), _INTERNAL: MemoryJobStore()},
            executors={"default": LoopExecutor(loop, self._fired)},
            job_defaults={"coalesce": False, "max_instances": 1, "misfire_grace_time": None})

    # ------------------------------------------------------------------ lifecycle
    def start_paused(self) -> None:
        self._scheduler.start(paused=True)
        self._scheduler.add_job(fire, "interval", seconds=HEARTBEAT, id=HEARTBEAT_ID, args=[HEARTBEAT_ID],
                                jobstore=_INTERNAL, replace_existing=True)

    def resume(self) -> None:
        self._scheduler.resume()

    def pause(self) -> None:
        if self._scheduler.state == STATE_RUNNING:
            self._scheduler.pause()

    def shutdown(self) -> None:
        self.accepting = False
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)  # our executor holds no threads

    @property
    def state(self) -> str:
        return {STATE_RUNNING: "running", STATE_PAUSED: "paused"}.get(self._scheduler.state, "stopped")

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

    # ------------------------------------------------------------------ firing (event-loop thread)
    def _fired(self, job_id: str, run_times: list[datetime]) -> None:
        self.last_tick = clock.now()
        if job_id == HEARTBEAT_ID or not self.accepting:
            return
        try:
            self._on_fire(job_id, run_times)
        except Exception:  # noqa: BLE001 - one job's bookkeeping error must not stop the scheduler
            log.exception("firing of %s failed", job_id)
