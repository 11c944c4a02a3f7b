"""Every use of APScheduler 3.x's private or undocumented API in jobsd, and why. Nothing else may.

Checked against APScheduler 3.11.3 (CHECKED_AGAINST; tests/daemon/test_apscheduler_private.py
fails on another version: re-read each item below against its source, then update the constant).
jobsd.scheduler and jobsd.triggers use APScheduler's documented API plus this module.

What is touched, and why
------------------------
- `SQLAlchemyJobStore` internals (`JobStore`, a subclass): its `jobs_t` table and `engine`,
  `pickle_protocol`, `_reconstitute_job`, `_logger`, the pickled state (`Job.__getstate__`) and the
  table's layout (id, next_run_time as UTC epoch seconds, job_state). Why:
  * APScheduler's per-firing calls (get_due_jobs, update_job, get_next_run_time) send fixed SQL
    (`exec_driver_sql`) instead of building and compiling a Core statement each time: a firing's
    hand-over went from 2.05 to 1.55 ms after the window (median, standalone scheduler), and
    `queued_at` from 2.30-2.40 to 1.71 ms (bench/README.md, trigger_latency.py); the goal, the
    child's clock median under 5 ms, is met by 4.81 ms (the latest figure), so half a millisecond
    more would miss it. tests/daemon/test_job_store.py checks every operation against the stock
    store on the same files.
  * update_job never raises a failed write (a full disk): APScheduler calls it outside any try in
    its scheduler thread, which would die of it. The failure is kept (`write_failure`, GetHealth)
    and the next pass is delayed by WRITE_RETRY seconds (get_next_run_time).
  * get_due_jobs moves a job far behind to where the kernel says its listing starts
    (`kernel.fire.catch_up_start`) through `Job._modify`: APScheduler would list millions of windows.
  * A table of ours in the same file (`jobsd_schedule_digests`: job id -> schedule digest), written
    in the same transactions, so `sync` compares schedules and ListJobs reads next run times
    without unpickling any job; a store written before the table existed has its digests read
    once from the pickled jobs' names.
- `Job(...)` built directly (`build_job`): the documented way, add_job, writes one job per
  transaction; a first start with 10,000 jobs writes them in batches, in one transaction.
- `BaseScheduler._jobstores_lock` (`jobstores_lock`): the lock add_job and every processing pass
  take; `sync` holds it so no pass sees half a sync or writes back the old version of a job.
- `BaseExecutor._do_submit_job` / `_run_job_success` (`AckExecutor`): an executor that runs nothing
  and acknowledges at once; the windows reach the event loop through the public EVENT_JOB_SUBMITTED
  listener instead (PITFALLS 3).
- `CronTrigger._increment_field_value` (`WallClockStep`): stock CronTrigger adds wall-clock steps
  in UTC and skips a daily run after a spring-forward (APScheduler issues #529, #606); the step is
  redone on the wall clock (`kernel.dst.wall_clock_step`).
- `apscheduler.util.datetime_to_utc_timestamp` / `utc_timestamp_to_datetime`: the job table's
  encoding of next run times, as the stock store writes it.
"""
from __future__ import annotations

import itertools
import logging
import pickle
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from apscheduler.executors.base import BaseExecutor
from apscheduler.job import Job
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.util import datetime_to_utc_timestamp, utc_timestamp_to_datetime
from sqlalchemy import Column, Table, Unicode
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from jobsd import clock
from jobsd.sqlite import sqlite_engine
from jobsd.store import WriteFailure
from jobsd_lib.kernel.dst import wall_clock_step
from jobsd_lib.kernel.fire import catch_up_start

__all__ = ["CHECKED_AGAINST", "JobStore", "AckExecutor", "WallClockStep", "build_job", "jobstores_lock",
           "DIGESTS_TABLE", "WRITE_RETRY"]

log = logging.getLogger("jobsd.scheduler")  # the adapter's log lines, wherever the code sits (runbook)

CHECKED_AGAINST = "3.11.3"
DIGESTS_TABLE = "jobsd_schedule_digests"  # ours, in schedule.sqlite3: job id -> schedule digest
WRITE_RETRY = 2.0  # seconds between passes that retry a failed job-store write (full disk)
_BATCH = 500  # jobs built, pickled and inserted at a time by JobStore.write


class AckExecutor(BaseExecutor):
    """Accepts every submission and returns at once; runs nothing (the hand-off is a listener)."""

    def _do_submit_job(self, job, run_times):  # noqa: ANN001
        self._run_job_success(job.id, [])


class WallClockStep:
    """Mixin for a CronTrigger subclass: its field steps move on the wall clock of its zone."""

    __slots__ = ()
    timezone: tzinfo

    def _increment_field_value(self, dateval: datetime, fieldnum: int) -> tuple[datetime, int]:
        moved, fieldnum = super()._increment_field_value(dateval, fieldnum)  # type: ignore[misc]
        return wall_clock_step(dateval, moved, self.timezone), fieldnum


def build_job(scheduler: BaseScheduler, job_id: str, func: Callable[..., Any], trigger: BaseTrigger, name: str,
              next_run_time: datetime | None, executor: str = "default") -> Job:
    """An APScheduler job as add_job builds it (coalesce=False, max_instances=1, no misfire grace:
    the kernel decides about late windows), args (job_id,), not stored anywhere yet."""
    return Job(scheduler, id=job_id, func=func, trigger=trigger, executor=executor, args=(job_id,), kwargs={},
               name=name, misfire_grace_time=None, coalesce=False, max_instances=1, next_run_time=next_run_time)


def jobstores_lock(scheduler: BaseScheduler) -> threading.RLock:
    """The lock APScheduler's add_job and every processing pass hold while they use job stores."""
    return scheduler._jobstores_lock  # noqa: SLF001 - see the module docstring


def _engine(path: str) -> Engine:
    """The job store's own engine; every connection in WAL with synchronous=NORMAL."""
    return sqlite_engine(path, ("journal_mode=WAL", "synchronous=NORMAL"))


class JobStore(SQLAlchemyJobStore):
    """APScheduler's SQLAlchemyJobStore on a SQLite file, answering as it does (same jobs, order and
    errors), plus what the adapter reads and writes without unpickling jobs. The adapter writes only
    under APScheduler's job-store lock. See the module docstring for why each part exists."""

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
        logged and removed (APScheduler's behaviour; `sync` registers it again from its spec).
        A job far behind starts its listing where the kernel says (catch_up_start)."""
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
            self._start_near(job, now)
        return jobs

    @staticmethod
    def _start_near(job: Job, now: datetime) -> None:
        start = catch_up_start(job.next_run_time, now, job.trigger.get_next_fire_time)
        if start is not None:
            log.warning("job %s is far behind: its windows from %s until %s are not handed over one by one; "
                        "the later ones are (missed, or caught up)", job.id, job.next_run_time.isoformat(),
                        start.isoformat())
            job._modify(next_run_time=start)  # noqa: SLF001 - APScheduler then lists windows from here

    def update_job(self, job):  # noqa: ANN001, ANN201
        """Store a fired job's next run time. A write that fails (full disk) is logged, never raised:
        APScheduler's thread would die of it (it calls this outside any try) and no window would be
        handed over again until a restart. The job then keeps its old next run time, so the next pass
        (WRITE_RETRY seconds on: see get_next_run_time) lists its windows again and tries again; the
        adapter drops the windows it has already handed over. JobLookupError for a job not stored."""
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

    # ------------------------------------------------------------------ the adapter's own reads and writes
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
        try:
            self._write(iter(jobs), removed, digests)
        finally:
            self.changes += 1

    def _write(self, jobs: Iterator[tuple[Job, str]], removed: list[str], digests: dict[str, str]) -> None:
        jobs_t = self.jobs_t.name
        with self.engine.begin() as conn:
            if removed:
                conn.exec_driver_sql(f"DELETE FROM {jobs_t} WHERE id = ?", [(job_id,) for job_id in removed])
            while batch := list(itertools.islice(jobs, _BATCH)):
                conn.exec_driver_sql(f"INSERT OR REPLACE INTO {jobs_t} (id, next_run_time, job_state) VALUES (?, ?, ?)",
                                     [(job.id, datetime_to_utc_timestamp(job.next_run_time),
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
