"""Ops tests of gc (handlers/gc.py) in process: the real handler, journal, artifacts and child
processes with the in-memory store. Folder removal is held in its worker thread (standing for a
slow disk) so that jobsd's stop lands between a run's record and its folder every time, which a
real daemon only hits by chance."""
from __future__ import annotations

import asyncio
import os
import threading

from jobsd.handlers.gc import collect_garbage, sweep
from jobsd.handlers.runs import run_job
from jobsd_lib.facts import Actor, DaemonGc
from tests.daemon.test_ops_runs import ops, spec  # noqa: F401 - the fixture


def test_a_gc_stopped_between_records_and_folders_says_so_and_the_next_sweep_removes_the_folders(ops):  # noqa: F811
    ctx, _clock, seen = ops
    spec(ctx, "old", 'command = ["true"]\n')
    entered, release = threading.Event(), threading.Event()
    real_sweep = ctx.artifacts.sweep

    def stuck_sweep(runs, remove):  # noqa: ANN001 - the disk is slow, and jobsd dies before it is done
        entered.set()
        release.wait(10)
        return 0

    async def scenario() -> list[str]:
        folders = []
        for _ in range(3):
            run = run_job(ctx, "old", actor=Actor("test"))
            await asyncio.wait_for(ctx.runs.active[run.ref].task, 10)
            folders.append(ctx.artifacts.run_dir("old", run.n))
        await ctx.artifacts.flushed()
        assert all(os.path.isdir(f) for f in folders)
        ctx.artifacts.sweep = stuck_sweep
        gc = asyncio.ensure_future(collect_garbage(ctx, keep_last=1, older_than=None, actor=Actor("alice")))
        await asyncio.to_thread(entered.wait, 10)
        gc.cancel()  # what jobsd's stop does to a running sweep
        try:
            await gc
        except asyncio.CancelledError:
            pass
        else:
            raise AssertionError("the gc was not stopped")
        release.set()
        return folders

    folders = asyncio.run(scenario())
    [audit] = [f for f in seen if isinstance(f, DaemonGc)]
    assert (audit.actor, audit.removed, audit.bytes_freed, audit.folders_left) == (Actor("alice"), 2, 0, 2)
    assert audit.attrs()["folders_left"] == 2
    assert ctx.store.get_run("old", 1) is None and ctx.store.get_run("old", 2) is None
    assert ctx.store.owed_folders() == [("old", 1), ("old", 2)]
    assert os.path.isdir(folders[0]) and os.path.isdir(folders[1])  # no row names them any more

    ctx.artifacts.sweep = real_sweep
    assert asyncio.run(sweep(ctx)) == 0  # no retention policy: the sweep only pays what is owed
    assert not os.path.exists(folders[0]) and not os.path.exists(folders[1]) and os.path.isdir(folders[2])
    assert ctx.store.owed_folders() == []
    assert len([f for f in seen if isinstance(f, DaemonGc)]) == 1  # the removal was audited once, by alice's gc
