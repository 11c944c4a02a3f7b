"""runner.py: the driver of runs, in process, with a real store, artifact folder, spec and child."""

from __future__ import annotations

import os


from jobsd.store import open_store
from jobsd_lib.kernel.states import RunState


def test_a_queued_run_whose_start_cannot_be_recorded_ends_interrupted_and_frees_its_job(home, caplog):
    """A store write that fails while a queued run starts (here: recording its start, after the
    spawn) goes to the runner's crash path, which must end the run: `interrupted`, as a
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
        # the record says what went wrong: the store's own word, not "internal error"
        assert final.state is RunState.INTERRUPTED
        assert final.reason == "jobsd could not record the run's progress: attempt to write a readonly database"
        assert "run j/1: internal error" in caplog.text
    finally:
        artifacts.close()
        store.close()
