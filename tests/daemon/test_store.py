"""The store refuses a write it cannot make (full database) with a clear error and stays usable.

SQLite's own `max_page_count` limit stands in for a full disk: SQLite answers SQLITE_FULL
("database or disk is full") the same way for both.
"""
from __future__ import annotations

import os

import pytest

from jobsd.store import open_store
from jobsd_lib.errors import InternalError
from jobsd_lib.kernel.states import RunState


def test_a_full_store_refuses_the_write_changes_nothing_and_recovers(home):
    store = open_store(os.path.join(home, "jobsd.sqlite3"))
    try:
        with store.write():
            store.create_run(job_id="j", state=RunState.QUEUED, trigger="manual", now=1.0)
        pages = store.conn.exec_driver_sql("PRAGMA page_count").scalar()
        store.conn.exec_driver_sql(f"PRAGMA max_page_count = {pages}")
        with pytest.raises(InternalError, match="database or disk is full; nothing was changed"):
            with store.write():
                for _ in range(2000):  # more than the free pages hold
                    store.add_event(2.0, "filler", "j", 1, {"pad": "x" * 500})
        assert store.conn.exec_driver_sql("SELECT count(*) FROM events").scalar() == 0
        store.conn.exec_driver_sql(f"PRAGMA max_page_count = {pages * 100}")  # space again
        with store.write():
            run = store.create_run(job_id="j", state=RunState.QUEUED, trigger="manual", now=3.0)
        assert run.n == 2 and store.get_run("j", 2) is not None
    finally:
        store.close()


def test_checkpoint_empties_the_wal_from_another_thread_while_the_store_is_open(home):
    """The heartbeat checkpoints off the loop; SQLite's automatic checkpoint is only a backstop."""
    import threading

    store = open_store(os.path.join(home, "jobsd.sqlite3"))
    try:
        assert store.conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 10_000
        with store.write():
            for i in range(50):
                store.create_run(job_id="j", state=RunState.QUEUED, trigger="manual", now=float(i))
        result: list[tuple[int, int, int]] = []
        worker = threading.Thread(target=lambda: result.append(store.checkpoint()))
        worker.start()
        worker.join(10)
        busy, frames, done = result[0]
        assert busy == 0 and frames > 0 and done == frames
        with store.write():  # the loop's connection writes on after it
            store.create_run(job_id="j", state=RunState.QUEUED, trigger="manual", now=99.0)
        assert store.get_run("j", 51) is not None
    finally:
        store.close()


def test_queries_of_the_active_runs_use_the_partial_index(home):
    """runs_active is a partial index: SQLite uses it only when the query repeats its WHERE term as
    written. Without it, GetHealth counted 1,000,000 runs by a table scan (bench/startup.py)."""
    store = open_store(os.path.join(home, "jobsd.sqlite3"))
    try:
        with store.write():
            for i in range(50):
                store.create_run(job_id=f"j{i % 5}", state=RunState.SUCCEEDED, trigger="manual", now=1.0, finished=True)
        issued: list[str] = []
        raw = store.conn.connection.dbapi_connection
        raw.set_trace_callback(issued.append)
        store.counts_by_state(), store.active_runs()  # (one job's active run: its index runs_by_job)
        raw.set_trace_callback(None)
        queries = [q for q in issued if q.lstrip().upper().startswith("SELECT") and "FROM runs" in q]
        assert len(queries) == 2, issued
        for query in queries:
            plan = " ".join(str(row[-1]) for row in raw.execute("EXPLAIN QUERY PLAN " + query).fetchall())
            assert "runs_active" in plan, (query, plan)
    finally:
        store.close()
