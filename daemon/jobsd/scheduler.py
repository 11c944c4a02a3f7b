"""The APScheduler 3.x adapter: cron windows in, firings handed to the event loop out.

How it works
------------
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
  and RPCs. The kernel (`jobsd_lib.kernel.fire`) decides what runs and what is recorded `missed`,
  and the service applies it. Windows applied once the daemon stops accepting (`accepting` is
  False) go to `on_drop` (recorded `missed`), never silently away. The adapter also remembers the
  latest window it handed over per job and drops (and logs) any window not after it: inside one
  daemon's life no window reaches the service twice.
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
  firings are refused by admission and logged.
- APScheduler's own loggers are set to WARNING (unless jobsd logs at DEBUG): its INFO lines are
  one a job and a pass; `sync` logs one summary line with counts.
"""
from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import os
import pickle
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from apscheduler.events import EVENT_JOB_SUBMITTED, JobSubmissionEvent
from apscheduler.executors.base import BaseExecutor
from apscheduler.job import Job
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_PAUSED, STATE_RUNNING
from apscheduler.triggers.base import BaseTrigger
from apscheduler.util import datetime_to_utc_timestamp, utc_timestamp_to_datetime
from sqlalchemy import Column, Table, Unicode, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from jobsd import clock
from jobsd.store import WriteFailure
from jobsd.triggers import build_trigger
from jobsd_lib.kernel.drift import next_pulse
from jobsd_lib.kernel.fire import MAX_MISSED
from jobsd_lib.spec import JobSpec

__all__ = ["CronScheduler", "SyncResult", "fire", "schedule_digest", "HEARTBEAT_ID", "HEARTBEAT", "STALE_AFTER",
           "DIGESTS_TABLE"]

log = logging.getLogger("jobsd.scheduler")

HEARTBEAT_ID = "__jobsd_heartbeat__"
HEARTBEAT = 5.0  # seconds
STALE_AFTER = 3 * HEARTBEAT  # seconds without a tick after which the scheduler is not healthy
DIGESTS_TABLE = "jobsd_schedule_digests"  # ours, in schedule.sqlite3: job id -> schedule digest
_STORE, _INTERNAL, _EXECUTOR = "default", "internal", "loop"
_LISTED = 10  # job ids named per kind in the sync log line
_BATCH = 500  # jobs built, pickled and inserted at a time by sync
FAR_BEHIND = timedelta(hours=1)  # a job this far behind may owe too many windows to list one by one
WRITE_RETRY = 2.0  # seconds between passes that retry a failed job-store write (full disk)
BACKLOG = MAX_MISSED + 1         # windows enough for every decision the kernel makes on a late firing


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


def _catch_up_start(job: Job, now: datetime) -> datetime | None:
    """Where to start listing a job's due windows when it is far behind, else None.

    APScheduler lists every window between a job's stored next run time and now before it hands
    them over: after a month down (or a clock set a month ahead) an every-second job owes 2.6
    million windows, ~30 s of the scheduler thread and a list of hundreds of MB, and the kernel
    records only the latest MAX_MISSED anyway (catch-up runs the latest). So when the next run time
    is more than FAR_BEHIND ago, the listing starts at the first window of the shortest span
    before now (1 min, 4 min, 16 min, ...) that holds at least BACKLOG windows; None when even the
    span back to the next run time holds fewer (then nothing is skipped).
    """
    first = job.next_run_time
    if first is None or now - first <= FAR_BEHIND:
        return None
    span = timedelta(minutes=1)
    while now - span > first:
        start = job.trigger.get_next_fire_time(None, now - span)
        window, count = start, 0
        while window is not None and window <= now and count < BACKLOG:
            window, count = job.trigger.get_next_fire_time(window, now), count + 1
        if count >= BACKLOG:
            return start
        span *= 4
    return None


def _engine(path: str) -> Engine:
    """The job store's own engine; every connection in WAL with synchronous=NORMAL."""
    engine = create_engine(f"sqlite:///{path}")

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record) -> None:  # noqa: ANN001
        dbapi_connection.execute("PRAGMA journal_mode=WAL")
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")

    return engine


class _JobStore(SQLAlchemyJobStore):
    """APScheduler's SQLAlchemyJobStore, plus what the adapter reads and writes without unpickling
    jobs. The adapter writes only under APScheduler's job-store lock.

    The three calls APScheduler makes on every firing (get_due_jobs, update_job,
    get_next_run_time) send fixed SQL through the engine (`exec_driver_sql`) instead of building
    and compiling a Core statement each time; same SQL, same results, same failure handling. On
    this machine that took a firing's hand-over from 2.05 to 1.55 ms after the window (median).
    """

    def __init__(self, path: str) -> None:
        super().__init__(engine=_engine(path))
        self.write_failure: WriteFailure | None = None  # set while writes fail (GetHealth says so)
        self._retry_at: datetime | None = None           # after a failed write in a pass: next try
        # Bumped after every write of the jobs table has ended (committed or not), from whichever
        # thread wrote: CronScheduler keeps its all-jobs read of next run times until it moves.
        self.changes = 0
        self.digests_t = Table(DIGESTS_TABLE, self.jobs_t.metadata, Column("id", Unicode(191), primary_key=True),
                               Column("digest", Unicode(64), nullable=False))

    def start(self, scheduler, alias):  # noqa: ANN001, ANN201
        super().start(scheduler, alias)
        self.digests_t.create(self.engine, checkfirst=True)

    # ------------------------------------------------------------------ APScheduler's hot path
    def get_due_jobs(self, now):  # noqa: ANN001, ANN201
        """As SQLAlchemyJobStore: due jobs by next run time; a job that cannot be restored is
        logged and removed (APScheduler's behaviour; `sync` registers it again from its spec)."""
        jobs_t, self._retry_at = self.jobs_t.name, None
        with self.engine.begin() as conn:
            rows = conn.exec_driver_sql(f"SELECT id, job_state FROM {jobs_t} WHERE next_run_time <= ? "
                                        "ORDER BY next_run_time", (datetime_to_utc_timestamp(now),)).all()
            jobs, failed = [], []
            for job_id, state in rows:
                try:
                    jobs.append(self._reconstitute_job(state))
                except BaseException:  # noqa: BLE001 - as APScheduler
                    self._logger.exception('Unable to restore job "%s" -- removing it', job_id)
                    failed.append((job_id,))
            if failed:
                conn.exec_driver_sql(f"DELETE FROM {jobs_t} WHERE id = ?", failed)
        self.changes += 1  # a job may have been removed
        for job in jobs:
            start = _catch_up_start(job, now)
            if start is not None:
                log.warning("job %s is far behind: its windows from %s until %s are not handed over one by one; "
                            "the later ones are (missed, or caught up)", job.id, job.next_run_time.isoformat(),
                            start.isoformat())
                job._modify(next_run_time=start)  # noqa: SLF001 - APScheduler then lists windows from here
        return jobs

    def update_job(self, job):  # noqa: ANN001, ANN201
        """Store a fired job's next run time. A write that fails (full disk) is logged, never raised:
        APScheduler's thread would die of it (it calls this outside any try) and no window would be
        handed over again until a restart. The job then keeps its old next run time, so the next pass
        (WRITE_RETRY seconds on: see get_next_run_time) lists its windows again and tries again; the
        adapter drops the windows it has already handed over."""
        state = pickle.dumps(job.__getstate__(), self.pickle_protocol)
        try:
            with self.engine.begin() as conn:
                updated = conn.exec_driver_sql(
                    f"UPDATE {self.jobs_t.name} SET next_run_time = ?, job_state = ? WHERE id = ?",
                    (datetime_to_utc_timestamp(job.next_run_time), state, job.id)).rowcount
        except SQLAlchemyError as exc:
            self._failed(exc)
            return
        finally:
            self.changes += 1
        self._written()
        if updated == 0:
            raise JobLookupError(job.id)

    # APScheduler's own writes besides update_job (a job without a next run time is removed)
    def add_job(self, job):  # noqa: ANN001, ANN201
        try:
            return super().add_job(job)
        finally:
            self.changes += 1

    def remove_job(self, job_id):  # noqa: ANN001, ANN201
        try:
            return super().remove_job(job_id)
        finally:
            self.changes += 1

    def remove_all_jobs(self):  # noqa: ANN201
        try:
            return super().remove_all_jobs()
        finally:
            self.changes += 1

    def get_next_run_time(self):  # noqa: ANN201
        """The earliest stored next run time; after a failed write in this pass, no earlier than
        WRITE_RETRY seconds from now (that job's stored time is in the past: no busy loop)."""
        try:
            with self.engine.connect() as conn:
                value = conn.exec_driver_sql(f"SELECT next_run_time FROM {self.jobs_t.name} WHERE next_run_time IS "
                                             "NOT NULL ORDER BY next_run_time LIMIT 1").scalar()
        except SQLAlchemyError as exc:
            self._failed(exc)
            value = None
        next_time = utc_timestamp_to_datetime(value)
        if self._retry_at is not None and (next_time is None or next_time < self._retry_at):
            next_time = self._retry_at
        return next_time

    def _failed(self, exc: SQLAlchemyError) -> None:
        cause = str(getattr(exc, "orig", None) or exc)
        if self.write_failure is None:
            log.error("the job store %s cannot be written (%s): cron windows are handed over and recorded "
                      "as far as the run store allows; trying again every %gs", self.engine.url.database, cause,
                      WRITE_RETRY)
            self.write_failure = WriteFailure(clock.to_epoch(clock.now()), cause)
        self._retry_at = clock.now() + timedelta(seconds=WRITE_RETRY)

    def _written(self) -> None:
        if self.write_failure is not None:
            log.warning("the job store can be written again (it failed from %s: %s)",
                        clock.from_epoch(self.write_failure.since).isoformat(), self.write_failure.cause)
            self.write_failure = None

    def digests(self) -> dict[str, str | None]:
        """Every stored job's id -> its recorded digest (None: none recorded)."""
        sql = f"SELECT j.id, d.digest FROM {self.jobs_t.name} j LEFT JOIN {DIGESTS_TABLE} d ON d.id = j.id"
        with self.engine.connect() as conn:
            return dict(conn.exec_driver_sql(sql).all())

    def digests_from_names(self, job_ids: list[str]) -> dict[str, str | None]:
        """Digests of jobs stored before the digest table existed: their pickled names (one job at a
        time). None for a job that cannot be read (APScheduler would drop it when due)."""
        out: dict[str, str | None] = {}
        sql = f"SELECT job_state FROM {self.jobs_t.name} WHERE id = ?"
        with self.engine.connect() as conn:
            for job_id in job_ids:
                blob = conn.exec_driver_sql(sql, (job_id,)).scalar()
                try:
                    out[job_id] = pickle.loads(blob)["name"] if blob is not None else None
                except Exception as exc:  # noqa: BLE001 - a broken job is re-registered, not fatal
                    log.warning("stored schedule of %s cannot be read (%s): registering it again", job_id, exc)
                    out[job_id] = None
        return out

    def write(self, jobs: Iterable[tuple[Job, str]], removed: list[str], digests: dict[str, str]) -> None:
        """One transaction: store `jobs` (with their digests; a stored job of the same id is
        replaced), delete `removed`, record `digests` of jobs left as they are, drop orphan digests.
        `jobs` is consumed _BATCH at a time, so a first start does not hold 10,000 jobs at once."""
        jobs_t, jobs = self.jobs_t.name, iter(jobs)
        try:
            self._write(jobs_t, jobs, removed, digests)
        finally:
            self.changes += 1

    def _write(self, jobs_t: str, jobs: Iterator[tuple[Job, str]], removed: list[str], digests: dict[str, str]) -> None:
        with self.engine.begin() as conn:
            if removed:
                conn.exec_driver_sql(f"DELETE FROM {jobs_t} WHERE id = ?", [(job_id,) for job_id in removed])
            while batch := list(itertools.islice(jobs, _BATCH)):
                conn.exec_driver_sql(f"INSERT OR REPLACE INTO {jobs_t} (id, next_run_time, job_state) VALUES (?, ?, ?)",
                                     [(job.id, _epoch(job.next_run_time),
                                       pickle.dumps(job.__getstate__(), self.pickle_protocol)) for job, _d in batch])
                conn.exec_driver_sql(f"INSERT OR REPLACE INTO {DIGESTS_TABLE} (id, digest) VALUES (?, ?)",
                                     [(job.id, digest) for job, digest in batch])
            if digests:
                conn.exec_driver_sql(f"INSERT OR REPLACE INTO {DIGESTS_TABLE} (id, digest) VALUES (?, ?)",
                                     list(digests.items()))
            conn.exec_driver_sql(f"DELETE FROM {DIGESTS_TABLE} WHERE id NOT IN (SELECT id FROM {jobs_t})")

    def next_run_times(self, job_id: str | None = None) -> dict[str, datetime]:
        """Stored next run times (epoch seconds in an indexed column), of one job or of all."""
        sql = f"SELECT id, next_run_time FROM {self.jobs_t.name} WHERE next_run_time IS NOT NULL"
        with self.engine.connect() as conn:
            rows = conn.exec_driver_sql(sql + " AND id = ?", (job_id,)) if job_id is not None \
                else conn.exec_driver_sql(sql)
            return {row[0]: datetime.fromtimestamp(row[1], UTC) for row in rows}

    def checkpoint(self) -> None:
        """A passive WAL checkpoint: fsyncs what synchronous=NORMAL committed without one."""
        with self.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").all()


@dataclass
class SyncResult:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0


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
        self._last_window: dict[str, datetime] = {}  # loop thread: latest window handed over (UTC), per job
        self._firings: deque[tuple[str, list[datetime]]] = deque()  # loop thread: arrived, not applied yet
        self._next_times: tuple[int, dict[str, datetime]] | None = None  # (job store changes, all next run times)
        if not log.isEnabledFor(logging.DEBUG):
            logging.getLogger("apscheduler").setLevel(logging.WARNING)  # INFO: a line per job and pass
        self._store = _JobStore(self.path)
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
        result = SyncResult()
        wanted = {spec.id: spec for spec in specs if spec.schedule is not None}
        keep = set(keep)
        with self._scheduler._jobstores_lock:  # noqa: SLF001 - see the docstring
            stored = self._store.digests()
            learned = self._store.digests_from_names(sorted(j for j, d in stored.items() if d is None and j in wanted))
            stored.update(learned)
            todo = []
            for job_id, spec in sorted(wanted.items()):
                digest = schedule_digest(spec)
                if job_id in stored and stored[job_id] == digest:
                    result.unchanged += 1
                    continue
                todo.append((spec, digest))
                (result.changed if job_id in stored else result.added).append(job_id)
            result.removed = sorted(set(stored) - set(wanted) - keep)
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
        time from `now`. One trigger (and first fire time) per distinct cron and timezone."""
        triggers: dict[tuple[str, str], tuple[BaseTrigger, datetime | None]] = {}
        for spec, digest in todo:
            schedule = spec.schedule
            assert schedule is not None
            key = (schedule.cron, schedule.timezone)
            if key not in triggers:
                trigger = build_trigger(schedule.expr, schedule.timezone)
                triggers[key] = trigger, trigger.get_next_fire_time(None, now)
            trigger, next_run_time = triggers[key]
            yield Job(self._scheduler, id=spec.id, func=fire, trigger=trigger, executor="default", args=(spec.id,),
                      kwargs={}, name=digest, misfire_grace_time=None, coalesce=False, max_instances=1,
                      next_run_time=next_run_time), digest

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
        windows = sorted(run_times, key=_utc)
        last = self._last_window.get(job_id)
        stale = 0 if last is None else sum(1 for t in windows if _utc(t) <= last)
        if stale:
            log.warning("%d cron windows of %s dropped (%s .. %s): already handed over", stale, job_id,
                        windows[0].isoformat(), windows[stale - 1].isoformat())
            windows = windows[stale:]
        if windows:
            self._last_window[job_id] = _utc(windows[-1])
        return windows


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _count(kind: str, job_ids: list[str]) -> str:
    """'3 added (a, b, c)'; at most _LISTED ids named."""
    if not job_ids:
        return f"0 {kind}"
    named = ", ".join(job_ids[:_LISTED]) + (f", ... {len(job_ids) - _LISTED} more" if len(job_ids) > _LISTED else "")
    return f"{len(job_ids)} {kind} ({named})"
