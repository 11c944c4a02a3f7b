"""The APScheduler 3.x adapter: cron windows in, firings handed to the event loop out.

How it works
------------
- `CronScheduler` is the timer port (jobsd.timer.Timer: its docstrings are the contract). It uses
  APScheduler's documented API; what it needs of APScheduler's private API (the job store's hot path
  as fixed SQL, our digest table, the acknowledging executor, the job-store lock) is all in
  jobsd.apscheduler_private, which says what it touches and why.
- A BackgroundScheduler (timezone UTC) with a SQLAlchemyJobStore on `<db_dir>/schedule.sqlite3`,
  its own engine (PITFALLS 9), created only once the store lock is held (app.py). Every
  connection of that engine runs in WAL with synchronous=NORMAL: APScheduler commits each fired
  job's next run time before it hands the window over, and a commit then costs a write, not an
  fsync (see "Durability" below).
- One APScheduler job per scheduled spec: id = job id, func = the stable module-level `fire`
  (PITFALLS 4), name = a digest of cron, timezone, misfire_grace, coalesce and catch_up. The
  digests are also kept in a small table of ours in the same file (`jobsd_schedule_digests`, id ->
  digest, written in the same transaction as the jobs), so `sync` compares them without unpickling
  any stored job. `sync` writes only jobs that are missing or whose digest differs, and removes jobs
  without a spec, all in one transaction under APScheduler's job-store lock: re-adding an unchanged
  job would recompute its next run time and silently lose the windows missed while jobsd was down
  (PITFALLS 2). A store written before the digest table existed has its jobs' digests read once
  from their pickled names, then recorded. ListJobs and GetJob read next run times from the
  table's `next_run_time` column, never through APScheduler (which unpickles every job under its
  lock).
- APScheduler jobs are registered with coalesce=False, max_instances=1, misfire_grace_time=None,
  so APScheduler never drops or merges a window. Our executor (`AckExecutor`) runs nothing and
  returns at once (PITFALLS 3). The windows are handed to the asyncio loop by a listener of
  EVENT_JOB_SUBMITTED, which APScheduler dispatches only after it has stored the job's next run
  time: whenever a window reaches our store, APScheduler has already moved past it, so a daemon
  killed at any moment never gets the same window again after a restart (at most once; a kill
  between the two commits loses that one window). On the loop, firings are applied one per loop
  iteration, in the order they arrived, so a burst of same-instant firings takes turns with runs
  and RPCs. The kernel (`jobsd_lib.kernel.fire`) decides everything about the windows: where a job
  far behind starts its listing (`catch_up_start`, asked by the job store), which windows were
  already handed over (`new_windows`: the adapter remembers the latest one per job and drops, and
  logs, any window not after it, so inside one daemon's life no window reaches the service twice),
  and what runs and what is recorded `missed` (`plan_firing` for a whole firing, asked by the service). Windows applied
  once the daemon stops accepting (`accepting` is False) go to `on_drop` (recorded `missed`), never
  silently away.
- Durability: synchronous=NORMAL survives a crash of jobsd, not a power cut: commits since the
  last checkpoint (they sit in the -wal file, not yet fsynced) can roll back, and their windows
  are then handed over again after the reboot. The daemon's heartbeat (health.Heartbeat, every
  HEARTBEAT seconds) runs a passive checkpoint in a worker thread, which fsyncs them; and the
  service checks a job's first firing after a start against the runs table
  (`kernel.fire.unrecorded`), so a window our store kept is not handled again whatever this
  store lost.
- `last_tick` is set by every firing and by a heartbeat job (every HEARTBEAT seconds, in an
  in-memory job store) that goes through the same APScheduler thread and event loop, so it
  proves both are alive. Its `Pulse` trigger never owes more than one firing, however far the
  wall clock jumps forward. `healthy()` (the systemd watchdog's gate) is true while the scheduler
  runs and has ticked within STALE_AFTER seconds, measured on the monotonic clock, or while it
  is paused on purpose. APScheduler keeps time by the wall clock: after the wall clock is set
  back, the heartbeat job would wait out the jump, so the daemon calls `kick_heartbeat()` when
  it sees one (health.Heartbeat).
- Invalid specs keep their stored schedule (fixing the file later does not lose windows); their
  windows are recorded `skipped` (reason invalid_spec) by admission.
- APScheduler's own loggers are set to WARNING (unless jobsd logs at DEBUG): its INFO lines are
  one a job and a pass; `sync` logs one summary line with counts.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections import deque
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta

from apscheduler.events import EVENT_JOB_SUBMITTED, JobSubmissionEvent
from apscheduler.job import Job
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_PAUSED, STATE_RUNNING
from apscheduler.triggers.base import BaseTrigger

from jobsd import clock
from jobsd.apscheduler_private import DIGESTS_TABLE, WRITE_RETRY, AckExecutor, JobStore, build_job, jobstores_lock
from jobsd.store import WriteFailure
from jobsd.timer import FireCallback, SyncResult
from jobsd.triggers import build_trigger
from jobsd_lib.kernel.drift import next_pulse
from jobsd_lib.kernel.fire import BACKLOG, FAR_BEHIND, new_windows
from jobsd_lib.spec import JobSpec

__all__ = ["CronScheduler", "SyncResult", "fire", "schedule_digest", "HEARTBEAT_ID", "HEARTBEAT", "STALE_AFTER",
           "DIGESTS_TABLE", "BACKLOG", "FAR_BEHIND", "WRITE_RETRY"]

log = logging.getLogger("jobsd.scheduler")

HEARTBEAT_ID = "__jobsd_heartbeat__"
HEARTBEAT = 5.0  # seconds
STALE_AFTER = 3 * HEARTBEAT  # seconds without a tick after which the scheduler is not healthy
_STORE, _INTERNAL, _EXECUTOR = "default", "internal", "loop"
_LISTED = 10  # job ids named per kind in the sync log line


def fire(job_id: str) -> None:
    """The stable entry point stored with every APScheduler job (its import path must never change).

    Never called: AckExecutor runs nothing; firings reach the event loop through the adapter.
    """
    log.warning("fire(%s) called directly; firings go through the event loop", job_id)


def schedule_digest(spec: JobSpec) -> str:
    """What the stored APScheduler job was built from; a change means re-register."""
    s = spec.schedule
    assert s is not None
    text = f"{s.cron}|{s.timezone}|{s.misfire_grace!r}|{s.coalesce}|{s.catch_up}"
    if s.jitter:  # absent from the digests stored before jitter existed: those jobs stay as they are
        text += f"|jitter={s.jitter!r}"
    return "v1:" + hashlib.sha256(text.encode()).hexdigest()[:24]


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


class CronScheduler:
    """The timer port (jobsd.timer.Timer) over APScheduler 3.x; owns the BackgroundScheduler. Public
    methods are called from the event-loop thread (checkpoint excepted); the contract is Timer's."""

    def __init__(self, db_dir: str, loop: asyncio.AbstractEventLoop, on_fire: FireCallback,
                 on_drop: FireCallback | None = None) -> None:
        """`on_fire(job_id, windows)` gets the due windows of each firing; `on_drop(job_id, windows)`
        those that arrive once the daemon has stopped accepting (shutdown). Both on the loop thread."""
        self.path = os.path.join(db_dir, "schedule.sqlite3")
        self._loop, self._on_fire, self._on_drop = loop, on_fire, on_drop
        self.last_tick: datetime | None = None
        self._alive_at = clock.monotonic()  # last sign of life of the APScheduler thread (monotonic)
        self._paused_on_purpose = False
        self.accepting = True
        self._last_window: dict[str, datetime] = {}  # loop thread: latest window handed over (UTC), per job
        self._firings: deque[tuple[str, list[datetime]]] = deque()  # loop thread: arrived, not applied yet
        self._next_times: tuple[int, dict[str, datetime]] | None = None  # (job store changes, all next run times)
        if not log.isEnabledFor(logging.DEBUG):
            logging.getLogger("apscheduler").setLevel(logging.WARNING)  # INFO: a line per job and pass
        self._store = JobStore(self.path)
        self._scheduler = BackgroundScheduler(
            timezone=UTC,
            jobstores={_STORE: self._store, _INTERNAL: MemoryJobStore()},
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

    @property
    def write_failure(self) -> WriteFailure | None:
        """Since when and why the job store's writes fail (None: they work)."""
        return self._store.write_failure

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

        Stored jobs whose id is in `keep` (e.g. currently invalid specs) are left alone. One
        transaction, under APScheduler's job-store lock (the one its add_job and every processing
        pass take): no pass sees half a sync or writes back the old version of a job replaced here.
        Call it after start_paused().
        """
        started = clock.monotonic()
        wanted = {spec.id: spec for spec in specs if spec.schedule is not None}
        with jobstores_lock(self._scheduler):  # see the docstring
            stored = self._store.digests()
            learned = self._store.digests_from_names(sorted(j for j, d in stored.items() if d is None and j in wanted))
            stored.update(learned)
            todo, result = _diff(wanted, stored, set(keep))
            if todo or result.removed or learned:
                self._store.write(self._jobs(todo, clock.now()), result.removed,
                                  {j: d for j, d in learned.items() if d is not None})
        for job_id in (*result.added, *result.changed, *result.removed):
            self._last_window.pop(job_id, None)  # a new schedule starts a new sequence of windows
        if todo:
            self._scheduler.wakeup()  # a running scheduler recomputes when to wake up
        if learned:
            log.info("recorded the schedule digests of %d jobs stored by an earlier jobsd", len(learned))
        if todo or result.removed:
            log.info("schedule synced in %.2f s: %s, %s, %s; %d unchanged", clock.monotonic() - started,
                     _count("added", result.added), _count("changed", result.changed),
                     _count("removed", result.removed), result.unchanged)
        return result

    def _jobs(self, todo: list[tuple[JobSpec, str]], now: datetime) -> Iterator[tuple[Job, str]]:
        """(APScheduler job, digest) for each (spec, digest), as add_job would build the job: next run
        time from `now`. One trigger (and first fire time) per distinct cron, timezone and jitter offset."""
        triggers: dict[tuple[str, str, timedelta], tuple[BaseTrigger, datetime | None]] = {}
        for spec, digest in todo:
            schedule = spec.schedule
            assert schedule is not None
            shift = spec.jitter_offset
            key = (schedule.cron, schedule.timezone, shift)
            if key not in triggers:
                trigger = build_trigger(schedule.expr, schedule.timezone, shift)
                triggers[key] = trigger, trigger.get_next_fire_time(None, now)
            trigger, next_run_time = triggers[key]
            yield build_job(self._scheduler, spec.id, fire, trigger, digest, next_run_time), digest

    def checkpoint(self) -> None:
        """A passive checkpoint of the job store's WAL (blocking: call it off the loop)."""
        self._store.checkpoint()

    def next_run_at(self, job_id: str) -> datetime | None:
        """The job's stored next run time (None: no such job, or the scheduler is not running)."""
        if self._scheduler.state != STATE_RUNNING:
            return None
        return self._store.next_run_times(job_id).get(job_id)

    def all_next_run_times(self) -> dict[str, datetime]:
        """Every stored job's next run time (one indexed query, no job unpickled); empty unless running."""
        if self._scheduler.state != STATE_RUNNING:
            return {}
        # Kept until the job store is written again (ListJobs under load asked for it on every call;
        # it changes at each firing and sync). The count is read before the query: a write during
        # it moves the count, and the next call reads again.
        changes = self._store.changes
        if self._next_times is None or self._next_times[0] != changes:
            self._next_times = changes, self._store.next_run_times()
        return dict(self._next_times[1])

    # ------------------------------------------------------------------ firing
    def _submitted(self, event: JobSubmissionEvent) -> None:
        """APScheduler thread, after the job's next run time is stored: hand the windows to the loop."""
        try:
            self._loop.call_soon_threadsafe(self._arrived, event.job_id, list(event.scheduled_run_times))
        except RuntimeError as exc:  # the loop is closed: the daemon is stopping
            log.warning("firing of %s dropped: %s", event.job_id, exc)

    def _arrived(self, job_id: str, run_times: list[datetime]) -> None:
        """Event-loop thread: a firing arrived; queue it (one is applied per loop iteration)."""
        self.last_tick, self._alive_at = clock.now(), clock.monotonic()
        if job_id == HEARTBEAT_ID:
            return
        self._firings.append((job_id, run_times))
        if len(self._firings) == 1:
            self._loop.call_soon(self._next_firing)

    def _next_firing(self) -> None:
        """Apply the oldest queued firing. The next one waits for a later loop iteration, after
        what this one started (its run's task): same-instant firings of many jobs take turns with
        their runs and with RPCs instead of holding the loop until all are booked."""
        job_id, run_times = self._firings.popleft()
        try:
            self._fired(job_id, run_times)
        finally:
            if self._firings:
                self._loop.call_soon(self._next_firing)

    def _fired(self, job_id: str, run_times: list[datetime]) -> None:
        """Event-loop thread."""
        run_times = self._new_windows(job_id, run_times)
        if not run_times:
            return
        callback = self._on_fire if self.accepting else self._on_drop
        if callback is None:
            log.warning("cron windows %s of %s dropped: jobsd is stopping", [t.isoformat() for t in run_times], job_id)
            return
        try:
            callback(job_id, run_times)
        except Exception:  # noqa: BLE001 - one job's bookkeeping error must not stop the scheduler
            log.exception("firing of %s failed", job_id)

    def _new_windows(self, job_id: str, run_times: list[datetime]) -> list[datetime]:
        """The windows after the latest one already handed over, ascending; the others are dropped.

        Compared as UTC instants: aware datetimes of one zone compare by wall time (PITFALLS 6).
        """
        windows, stale = new_windows(run_times, self._last_window.get(job_id))
        if stale:
            log.warning("%d cron windows of %s dropped (%s .. %s): already handed over", len(stale), job_id,
                        stale[0].isoformat(), stale[-1].isoformat())
        if windows:
            self._last_window[job_id] = _utc(windows[-1])
        return windows


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _diff(wanted: dict[str, JobSpec], stored: dict[str, str | None],
          keep: set[str]) -> tuple[list[tuple[JobSpec, str]], SyncResult]:
    """What sync must write: (spec, digest) of each job missing or with another digest, by id, and
    the SyncResult (stored jobs without a wanted spec are removed, unless kept)."""
    todo, result = [], SyncResult()
    for job_id, spec in sorted(wanted.items()):
        digest = schedule_digest(spec)
        if stored.get(job_id) == digest:
            result.unchanged += 1
            continue
        todo.append((spec, digest))
        (result.changed if job_id in stored else result.added).append(job_id)
    result.removed = sorted(set(stored) - set(wanted) - keep)
    return todo, result


def _count(kind: str, job_ids: list[str]) -> str:
    """'3 added (a, b, c)'; at most _LISTED ids named."""
    if not job_ids:
        return f"0 {kind}"
    named = ", ".join(job_ids[:_LISTED]) + (f", ... {len(job_ids) - _LISTED} more" if len(job_ids) > _LISTED else "")
    return f"{len(job_ids)} {kind} ({named})"
