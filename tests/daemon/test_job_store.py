"""The APScheduler job store's hot path (jobsd.scheduler._JobStore): get_due_jobs, update_job and
get_next_run_time send fixed SQL instead of SQLAlchemy Core statements. They must answer exactly
as SQLAlchemyJobStore does, on a real SQLite file: the same jobs in the same order, the same
next run time, JobLookupError for a job that is gone, and a job that cannot be restored logged
and removed.
"""
from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger

from jobsd.scheduler import _JobStore

T0 = datetime(2036, 11, 23, 12, 0, tzinfo=UTC)  # far ahead: the paused schedulers never find a job due


@pytest.fixture
def stores(tmp_path):
    """Ours and APScheduler's own, each on its own file, holding the same three jobs."""
    made = []
    for name, cls in (("ours", _JobStore), ("stock", SQLAlchemyJobStore)):
        path = os.path.join(tmp_path, f"{name}.sqlite3")
        store = cls(path) if cls is _JobStore else cls(url=f"sqlite:///{path}")
        scheduler = BackgroundScheduler(timezone=UTC, jobstores={"default": store})
        scheduler.start(paused=True)
        for job_id, minutes in (("late", 30), ("early", 10), ("middle", 20)):
            scheduler.add_job(print, DateTrigger(T0 + timedelta(minutes=minutes)), id=job_id, args=[job_id])
        made.append((store, scheduler, path))
    yield made
    for _, scheduler, _ in made:
        scheduler.shutdown(wait=False)


def test_due_jobs_and_next_run_time_match_apscheduler(stores):
    (ours, _, _), (stock, _, _) = stores
    for now in (T0, T0 + timedelta(minutes=10), T0 + timedelta(minutes=25), T0 + timedelta(hours=1)):
        assert [j.id for j in ours.get_due_jobs(now)] == [j.id for j in stock.get_due_jobs(now)]
    assert [j.id for j in ours.get_due_jobs(T0 + timedelta(hours=1))] == ["early", "middle", "late"]
    assert ours.get_next_run_time() == stock.get_next_run_time() == T0 + timedelta(minutes=10)


def test_update_job_stores_the_new_next_run_time_and_refuses_a_missing_job(stores):
    (ours, _, _), _ = stores
    job = ours.get_due_jobs(T0 + timedelta(minutes=10))[0]
    job._modify(next_run_time=T0 + timedelta(hours=2))
    ours.update_job(job)
    assert ours.get_next_run_time() == T0 + timedelta(minutes=20)
    assert ours.lookup_job("early").next_run_time == T0 + timedelta(hours=2)
    ours.remove_job("early")
    with pytest.raises(JobLookupError):
        ours.update_job(job)


def test_no_jobs_means_no_next_run_time(stores):
    (ours, _, _), _ = stores
    ours.remove_all_jobs()
    assert ours.get_next_run_time() is None
    assert ours.get_due_jobs(T0 + timedelta(days=1)) == []


def test_a_job_that_cannot_be_restored_is_logged_and_removed(stores, caplog):
    (ours, _, path), _ = stores
    with sqlite3.connect(path) as db:
        db.execute("UPDATE apscheduler_jobs SET job_state = ? WHERE id = 'middle'", (b"not a pickle",))
    assert [j.id for j in ours.get_due_jobs(T0 + timedelta(hours=1))] == ["early", "late"]
    assert 'Unable to restore job "middle" -- removing it' in caplog.text
    with sqlite3.connect(path) as db:
        assert [r[0] for r in db.execute("SELECT id FROM apscheduler_jobs ORDER BY id")] == ["early", "late"]
