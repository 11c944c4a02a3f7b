"""The APScheduler job store (jobsd.apscheduler_private.JobStore) against APScheduler's own
SQLAlchemyJobStore, on real SQLite files.

Ours sends fixed SQL on APScheduler's per-firing calls (get_due_jobs, update_job,
get_next_run_time) and writes the adapter's batches itself; bench/README.md says why. It must
answer exactly as the stock store does: the same jobs in the same order, the same next run times,
JobLookupError / ConflictingIdError where it raises them, a job that cannot be restored logged
and removed, and rows either store can read. The two places where ours differs on purpose are
pinned too: a job far behind starts its listing near now (kernel.fire.catch_up_start), and a failed
update is kept, not raised.
"""
from __future__ import annotations

import os
import pickle
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.jobstores.base import ConflictingIdError, JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger

from jobsd.apscheduler_private import WRITE_RETRY, JobStore
from jobsd.scheduler import fire
from jobsd.triggers import build_trigger
from jobsd_lib.kernel.cron import parse_cron
from jobsd_lib.kernel.fire import catch_up_start

T0 = datetime(2036, 11, 23, 12, 0, tzinfo=UTC)  # far ahead: the paused schedulers never find a job due
JOBS = (("late", 30), ("early", 10), ("middle", 20))


def _open(kind: str, path: str) -> tuple[SQLAlchemyJobStore, BackgroundScheduler]:
    """A store of `kind` ("ours" or "stock") on `path`, under a paused scheduler (which restores jobs)."""
    store = JobStore(path) if kind == "ours" else SQLAlchemyJobStore(url=f"sqlite:///{path}")
    scheduler = BackgroundScheduler(timezone=UTC, jobstores={"default": store})
    scheduler.start(paused=True)
    return store, scheduler


@pytest.fixture
def opened():
    """Opens stores; shuts their schedulers down after the test."""
    schedulers = []

    def open_(kind: str, path: str) -> SQLAlchemyJobStore:
        store, scheduler = _open(kind, str(path))
        schedulers.append(scheduler)
        return store

    yield open_
    for scheduler in schedulers:
        scheduler.shutdown(wait=False)


def _add(store: SQLAlchemyJobStore, job_id: str, trigger, next_run_time: datetime | None) -> None:  # noqa: ANN001
    store._scheduler.add_job(fire, trigger, id=job_id, args=[job_id], name=f"v1:{job_id}", coalesce=False,
                             max_instances=1, misfire_grace_time=None, next_run_time=next_run_time)


@pytest.fixture
def stores(tmp_path, opened):
    """Ours and APScheduler's own, each on its own file, holding the same jobs: three date jobs, a
    cron job (our trigger class) and a paused job (no next run time)."""
    made = []
    for kind in ("ours", "stock"):
        path = os.path.join(tmp_path, f"{kind}.sqlite3")
        store = opened(kind, path)
        for job_id, minutes in JOBS:
            _add(store, job_id, DateTrigger(T0 + timedelta(minutes=minutes)), T0 + timedelta(minutes=minutes))
        _add(store, "cron", build_trigger(parse_cron("0 * * * *"), "Europe/Berlin"), T0 + timedelta(minutes=15))
        _add(store, "paused", DateTrigger(T0), None)
        made.append((store, path))
    return made


def view(job) -> tuple:  # noqa: ANN001
    """What a job is, comparable across stores."""
    if job is None:
        return ()
    return (job.id, job.name, job.func_ref, job.args, str(job.trigger), job.executor, job.coalesce,
            job.max_instances, job.misfire_grace_time, job.next_run_time and job.next_run_time.astimezone(UTC))


def views(jobs) -> list[tuple]:  # noqa: ANN001
    return [view(j) for j in jobs]


def same(ours: SQLAlchemyJobStore, stock: SQLAlchemyJobStore) -> None:
    """Every read answers the same on both stores."""
    assert views(ours.get_all_jobs()) == views(stock.get_all_jobs())
    assert ours.get_next_run_time() == stock.get_next_run_time()
    for now in (T0, T0 + timedelta(minutes=10), T0 + timedelta(minutes=15), T0 + timedelta(minutes=25),
                T0 + timedelta(minutes=59)):
        assert views(ours.get_due_jobs(now)) == views(stock.get_due_jobs(now)), now
    for job_id in ("early", "cron", "paused", "nope"):
        assert view(ours.lookup_job(job_id)) == view(stock.lookup_job(job_id)), job_id


def test_reads_match_apscheduler(stores):
    (ours, _), (stock, _) = stores
    same(ours, stock)
    assert [j.id for j in ours.get_due_jobs(T0 + timedelta(minutes=59))] == ["early", "cron", "middle", "late"]
    assert [j.id for j in ours.get_all_jobs()] == ["early", "cron", "middle", "late", "paused"]  # paused last
    assert ours.get_next_run_time() == T0 + timedelta(minutes=10)
    assert ours.get_due_jobs(T0 - timedelta(seconds=1)) == []


def test_updates_match_apscheduler(stores):
    (ours, _), (stock, _) = stores
    for store in (ours, stock):
        store._scheduler.modify_job("early", next_run_time=T0 + timedelta(hours=2))  # update_job
        store._scheduler.modify_job("paused", next_run_time=T0 + timedelta(minutes=5))
        store._scheduler.modify_job("late", name="renamed")
    same(ours, stock)
    assert ours.lookup_job("early").next_run_time == T0 + timedelta(hours=2)
    assert ours.get_next_run_time() == T0 + timedelta(minutes=5)


def test_removals_match_apscheduler(stores):
    (ours, _), (stock, _) = stores
    for store in (ours, stock):
        store.remove_job("middle")
        with pytest.raises(JobLookupError):
            store.remove_job("middle")
    same(ours, stock)
    for store in (ours, stock):
        store.remove_all_jobs()
    same(ours, stock)
    assert ours.get_next_run_time() is None and ours.get_all_jobs() == []
    assert ours.get_due_jobs(T0 + timedelta(days=1)) == []


def test_errors_match_apscheduler(stores):
    for store, _ in stores:
        job = store.lookup_job("early")
        with pytest.raises(ConflictingIdError):
            store.add_job(job)
        store.remove_job("early")
        with pytest.raises(JobLookupError):
            store.update_job(job)
        assert store.lookup_job("early") is None


def test_a_job_that_cannot_be_restored_is_logged_and_removed_by_both(stores, caplog):
    for store, path in stores:
        with sqlite3.connect(path) as db:
            db.execute("UPDATE apscheduler_jobs SET job_state = ? WHERE id = 'middle'", (b"not a pickle",))
        caplog.clear()
        assert [j.id for j in store.get_due_jobs(T0 + timedelta(hours=1))] == ["early", "cron", "late"]
        assert 'Unable to restore job "middle" -- removing it' in caplog.text
        with sqlite3.connect(path) as db:
            assert [r[0] for r in db.execute("SELECT id FROM apscheduler_jobs ORDER BY id")] == [
                "cron", "early", "late", "paused"]


def test_each_store_reads_what_the_other_wrote(stores, opened, tmp_path):
    """The stock store's file opened by ours, and ours opened by the stock store: same jobs."""
    (ours, ours_path), (stock, stock_path) = stores
    ours.update_job(_moved(ours.lookup_job("cron"), T0 + timedelta(minutes=40)))  # our fixed-SQL update
    stock.update_job(_moved(stock.lookup_job("cron"), T0 + timedelta(minutes=40)))
    same(ours, stock)
    ours_reading_stock = opened("ours", stock_path)
    stock_reading_ours = opened("stock", ours_path)
    same(ours_reading_stock, stock)
    same(stock_reading_ours, ours)
    same(ours_reading_stock, stock_reading_ours)


def test_the_adapters_batch_write_stores_rows_as_add_job_does(tmp_path, opened):
    """JobStore.write (sync's one-transaction batches) and the stock add_job: the same row, which the
    stock store then reads; plus the digest of each job in our table."""
    ours, stock = opened("ours", tmp_path / "ours.sqlite3"), opened("stock", tmp_path / "stock.sqlite3")
    trigger = build_trigger(parse_cron("*/5 * * * *"), "America/New_York")
    for job_id in ("a", "b"):
        _add(stock, job_id, trigger, T0 + timedelta(minutes=5))
    jobs = [(stock.lookup_job(job_id), f"v1:{job_id}") for job_id in ("a", "b")]
    ours.write(iter(jobs), removed=[], digests={})
    assert _rows(tmp_path / "ours.sqlite3") == _rows(tmp_path / "stock.sqlite3")
    assert ours.digests() == {"a": "v1:a", "b": "v1:b"}
    same(opened("stock", tmp_path / "ours.sqlite3"), stock)
    ours.write(iter([]), removed=["a"], digests={})
    assert [j.id for j in ours.get_all_jobs()] == ["b"] and ours.digests() == {"b": "v1:b"}


def _moved(job, next_run_time: datetime):  # noqa: ANN001, ANN202
    job._modify(next_run_time=next_run_time)
    return job


def _rows(path) -> list[tuple]:  # noqa: ANN001
    """(id, next_run_time, the unpickled state with the trigger as its own state), by id."""
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT id, next_run_time, job_state FROM apscheduler_jobs ORDER BY id").fetchall()
    out = []
    for job_id, next_run_time, blob in rows:
        state = pickle.loads(blob)
        state["trigger"] = (type(state["trigger"]), state["trigger"].__getstate__())
        out.append((job_id, next_run_time, state))
    return out


# --- where ours differs on purpose --------------------------------------------------------------

def test_a_job_far_behind_is_listed_from_where_the_kernel_says(tmp_path, opened):
    """An every-second job two days behind: ours hands APScheduler the job with its listing moved
    near now (catch_up_start), the stock store as stored; nothing else differs."""
    now = T0 + timedelta(days=2)
    ours, stock = opened("ours", tmp_path / "ours.sqlite3"), opened("stock", tmp_path / "stock.sqlite3")
    trigger = build_trigger(parse_cron("* * * * * *"), "UTC")
    for store in (ours, stock):
        _add(store, "busy", trigger, T0)
    [moved], [kept] = ours.get_due_jobs(now), stock.get_due_jobs(now)
    assert kept.next_run_time == T0
    assert moved.next_run_time == catch_up_start(T0, now, trigger.get_next_fire_time) == now - timedelta(minutes=4)
    assert view(moved)[:-1] == view(kept)[:-1]


def test_a_failed_update_is_kept_not_raised(stores, caplog):
    """The stock store raises (APScheduler's thread would die of it); ours logs, says so in
    write_failure, and retries no sooner than WRITE_RETRY seconds on."""
    (ours, path), _ = stores
    past = datetime.now(UTC) - timedelta(hours=1)
    ours.update_job(_moved(ours.lookup_job("early"), past))
    job = _moved(ours.lookup_job("early"), T0 + timedelta(hours=3))
    with sqlite3.connect(path) as db:  # a file that refuses writes: a trigger, as a full disk would
        db.execute("CREATE TRIGGER refuse BEFORE UPDATE ON apscheduler_jobs BEGIN SELECT RAISE(ABORT, 'full'); END")
    ours.update_job(job)
    assert ours.write_failure is not None and "full" in ours.write_failure.cause
    assert "cannot be written" in caplog.text
    failed_at = datetime.now(UTC)
    assert ours.lookup_job("early").next_run_time == past  # kept its old time: its windows are listed again
    retry = ours.get_next_run_time()  # the next pass: WRITE_RETRY seconds on, not at once (`past`)
    assert failed_at - timedelta(seconds=1) < retry - timedelta(seconds=WRITE_RETRY) <= datetime.now(UTC)
    with sqlite3.connect(path) as db:
        db.execute("DROP TRIGGER refuse")
    ours.update_job(job)
    assert ours.write_failure is None and ours.lookup_job("early").next_run_time == T0 + timedelta(hours=3)
