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


def test_a_heartbeat_the_store_refuses_is_logged_once_and_the_daemon_beats_on(home, caplog):
    """A store that refuses writes (full disk, read-only) must not turn every 5 s heartbeat into a
    traceback: one error line, then one line when the heartbeat is saved again."""
    import logging

    from jobsd.app import build_context
    from jobsd.context import Paths
    from jobsd.heartbeat import Heartbeat

    caplog.set_level(logging.INFO, logger="jobsd.health")
    store = open_store(os.path.join(home, "jobsd.sqlite3"))
    try:
        ctx = build_context(Paths(home, home, home, os.path.join(home, "runs"), "", "", store.path), store)
        beat = Heartbeat(ctx.journal, ctx.clock, None)
        beat.start()
        store.conn.exec_driver_sql("PRAGMA query_only = ON")  # every write now fails, like a full disk
        beat.beat()
        beat.beat()
        assert caplog.text.count("cannot save the heartbeat in the store") == 1
        assert "Traceback" not in caplog.text
        store.conn.exec_driver_sql("PRAGMA query_only = OFF")
        beat.beat()
        assert "heartbeat saved in the store again" in caplog.text
    finally:
        store.close()


def test_a_queued_run_whose_start_cannot_be_recorded_ends_interrupted_and_frees_its_job(home, caplog):
    """A store write that fails while a queued run starts (here: recording its start, after the
    spawn) goes to the runner's internal-error path, which must end the run: `interrupted`, as a
    queued run cannot have failed (the state table refuses queued -> failed; recording that
    used to kill the task and leave the run queued, its job busy, until a restart).

    In process, the Runner with a real store, artifact folder, spec and child. A disk that
    refuses writes cannot be made here: SQLite's `query_only` stands in for it (SQLite answers
    "attempt to write a readonly database" the way a failing disk answers "disk I/O error"),
    and is lifted once the failure is logged, so the run's end can be recorded (it is retried
    every 5 s, as on a full disk)."""
    import asyncio

    from jobsd.app import build_context
    from jobsd.context import Paths
    from jobsd_lib.spec import parse_spec

    store = open_store(os.path.join(home, "jobsd.sqlite3"))
    spec = parse_spec("j", b'command = ["true"]\n', os.path.join(home, "j.toml"))
    ctx = build_context(Paths(home, home, home, os.path.join(home, "runs"), "", "", store.path), store)
    artifacts = ctx.artifacts
    try:
        async def run() -> None:
            runner = ctx.runs
            with store.write():
                row = store.create_run(job_id="j", state=RunState.QUEUED, trigger="manual", now=1.0)
            store.conn.exec_driver_sql("PRAGMA query_only = ON")
            act = runner.start(row, spec, artifacts.create(row))
            deadline = asyncio.get_running_loop().time() + 10
            while "cannot record its end" not in caplog.text:
                assert asyncio.get_running_loop().time() < deadline, "the failure was not logged"
                await asyncio.sleep(0.01)
            store.conn.exec_driver_sql("PRAGMA query_only = OFF")
            await asyncio.wait_for(act.task, 15)
            assert runner.active_ref("j") is None

        asyncio.run(run())
        final = store.get_run("j", 1)
        assert final.state is RunState.INTERRUPTED and final.reason == "internal error in jobsd (see the daemon log)"
        assert "run j/1: internal error" in caplog.text
    finally:
        artifacts.close()
        store.close()
