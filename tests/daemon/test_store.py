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
