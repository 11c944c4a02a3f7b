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

    from jobsd.health import Heartbeat
    from jobsd.output import Channel

    caplog.set_level(logging.INFO, logger="jobsd.health")
    store = open_store(os.path.join(home, "jobsd.sqlite3"))
    try:
        beat = Heartbeat(store, Channel())
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


def test_commits_are_synced_by_one_fdatasync_of_the_wal_shared_by_the_callers_of_a_round(home):
    """The group commit: RunJob awaits Store.synced() instead of a FULL commit on the loop."""
    import asyncio

    path = os.path.join(home, "jobsd.sqlite3")
    store = open_store(path)
    rounds: list[int] = []
    sync = store.sync

    def counted() -> None:  # the real fdatasync, counted
        rounds.append(1)
        sync()

    store.sync = counted
    try:
        assert store.conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL: the sync is ours
        assert os.fstat(store._wal_fd).st_ino == os.stat(path + "-wal").st_ino

        async def many() -> None:
            waiters = []
            for i in range(10):  # the first starts a round; the nine made during it share the next
                with store.write(durable=False):
                    store.create_run(job_id="j", state=RunState.QUEUED, trigger="manual", now=float(i))
                waiters.append(store.synced())
            await asyncio.wait_for(asyncio.gather(*waiters), 10)
            assert all(w.done() and w.exception() is None for w in waiters)

        asyncio.run(many())
        assert len(rounds) == 2
        with store.write():  # durable=True syncs inline
            store.create_run(job_id="j", state=RunState.QUEUED, trigger="manual", now=11.0)
        assert len(rounds) == 3
    finally:
        store.close()


def test_a_sync_the_disk_refuses_fails_every_later_sync_until_a_restart(home, caplog):
    """A disk that fails fdatasync cannot be made here: the WAL's fd is swapped for /dev/null's,
    which refuses fdatasync (EINVAL) the way a failing disk answers EIO. After one failure no
    sync may claim success (the kernel may have dropped the failed pages), even once the fd
    works again; a restart (a new open_store) reads the WAL back and syncs again."""
    import asyncio

    path = os.path.join(home, "jobsd.sqlite3")
    store = open_store(path)
    wal_fd = store._wal_fd
    store._wal_fd = os.open(os.devnull, os.O_RDONLY)
    try:
        async def refused() -> None:
            with store.write(durable=False):
                store.create_run(job_id="j", state=RunState.QUEUED, trigger="manual", now=1.0)
            with pytest.raises(InternalError, match="cannot sync its store .* may not survive a power cut"):
                await asyncio.wait_for(store.synced(), 10)

        asyncio.run(refused())
        assert "store sync failed" in caplog.text
        os.close(store._wal_fd)
        store._wal_fd = wal_fd  # the disk answers again: still refused, the failed pages may be gone
        with pytest.raises(InternalError, match="an earlier sync failed .*restart jobsd once the disk is fixed"):
            with store.write():
                store.create_run(job_id="j", state=RunState.QUEUED, trigger="manual", now=2.0)
    finally:
        store.close()
    store = open_store(path)  # the restart
    try:
        with store.write():
            store.create_run(job_id="j", state=RunState.QUEUED, trigger="manual", now=3.0)
        assert [store.get_run("j", n) is not None for n in (1, 2, 3)] == [True, True, True]
    finally:
        store.close()


def test_a_manual_run_whose_record_cannot_be_synced_ends_interrupted_and_frees_its_job(home, caplog):
    """The run's task waits for its record's sync before anything else; when that fails the run
    must end (interrupted: a queued run cannot have failed), not stay queued with its job busy.
    In process: the Runner with a real store, artifact folder and spec; the failing disk is the
    /dev/null fd of the test above."""
    import asyncio

    from jobsd.artifacts import Artifacts
    from jobsd.output import Channel, Hub
    from jobsd.runner import Runner
    from jobsd_lib.spec import parse_spec

    store = open_store(os.path.join(home, "jobsd.sqlite3"))
    artifacts = Artifacts(os.path.join(home, "runs"))
    wal_fd, store._wal_fd = store._wal_fd, os.open(os.devnull, os.O_RDONLY)
    spec = parse_spec("j", b'command = ["true"]\n', os.path.join(home, "j.toml"))
    try:
        async def run() -> None:
            runner = Runner(store, artifacts, Hub(), Channel(), 4, dict(os.environ))
            with store.write(durable=False):
                row = store.create_run(job_id="j", state=RunState.QUEUED, trigger="manual", now=1.0)
            act = runner.start(row, spec, artifacts.create(row), durable=store.synced())
            await asyncio.wait_for(act.task, 10)
            assert runner.active_ref("j") is None

        asyncio.run(run())
        final = store.get_run("j", 1)
        assert final.state is RunState.INTERRUPTED and final.reason == "internal error in jobsd (see the daemon log)"
        assert final.attempt_list == ()  # nothing was started
        assert "run j/1: internal error" in caplog.text
    finally:
        artifacts.close()
        os.close(store._wal_fd)
        store._wal_fd = wal_fd
        store.close()
