"""Ops tests of a run's lifecycle in process: the real handlers, journal, driver and child processes,
the in-memory store (memstore.py, which passes the store contract suite) and a fake clock, so a
backoff of minutes costs no real seconds.

What these prove beyond the kernel's table (tests/kernel/test_run.py): that the driver performs
the machine's effects and the journal records them (store rows, events, run folder files, facts).
"""
from __future__ import annotations

import asyncio
import json
import os

import pytest

from jobsd.app import build_context
from jobsd.context import Paths
from jobsd.handlers.reload import load_specs
from jobsd.handlers.runs import cancel_run, run_job
from jobsd.memstore import MemoryStore
from jobsd_lib.facts import Actor, Fact, RunFinished
from jobsd_lib.kernel.states import RunState
from tests.fakes import FakeClock

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def ops(home):
    """(context, clock, facts seen on the bus) for specs written to HOME/jobs."""
    os.makedirs(os.path.join(home, "jobs"), mode=0o700)
    clock = FakeClock()
    store = MemoryStore(clock.epoch)
    ctx = build_context(Paths(os.path.join(home, "jobs"), home, home, os.path.join(home, "runs"), "", "", store.path),
                        store, clock, environ={"PATH": os.environ["PATH"]})
    seen: list[Fact] = []
    ctx.journal.bus.subscribe(seen.append)
    yield ctx, clock, seen
    ctx.artifacts.close()
    store.close()


def spec(ctx, job_id: str, text: str) -> None:  # noqa: ANN001
    path = os.path.join(ctx.paths.jobs_dir, f"{job_id}.toml")
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)
    load_specs(ctx)


async def until(condition, what: str, timeout: float = 10.0) -> None:  # noqa: ANN001
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


def test_a_ten_minute_backoff_is_waited_out_on_the_fake_clock(ops):
    ctx, clock, seen = ops
    spec(ctx, "flaky", 'command = ["false"]\n[retry]\nattempts = 3\nbackoff = "10m"\nfactor = 1\n')

    async def scenario() -> None:
        run = run_job(ctx, "flaky", actor=Actor("test"))
        for attempt in (1, 2):
            await until(lambda: clock.waiting == 1, f"the backoff after attempt {attempt}")
            assert ctx.store.get_run("flaky", run.n).state is RunState.RETRYING
            clock.advance(600)
        await asyncio.wait_for(ctx.runs.active[run.ref].task, 10)

    started = asyncio.run(_timed(scenario))
    final = ctx.store.get_run("flaky", 1)
    assert final.state is RunState.FAILED and final.attempts == 3 and final.exit_code == 1
    assert [a.exit_code for a in final.attempt_list] == [1, 1, 1]
    assert final.finished_at - final.queued_at >= 1200  # two backoffs of 10 minutes, on the fake clock
    assert started < 10  # ... and not in real time
    types = [f.TYPE for f in seen if f.run_n == 1]
    assert types == ["run.queued", "run.started", "run.attempt_finished", "run.retrying", "run.started",
                     "run.attempt_finished", "run.retrying", "run.started", "run.attempt_finished", "run.finished"]
    stored = [e.type for e in ctx.store.run_events("flaky", 1)]
    assert stored == types
    ctx.artifacts.close()
    folder = ctx.run_dir(final)
    with open(os.path.join(folder, "events.jsonl")) as f:
        assert [json.loads(line)["type"] for line in f] == types
    with open(os.path.join(folder, "run_receipt.json")) as f:
        assert json.load(f)["state"] == "failed"


def test_cancel_during_the_backoff_ends_the_run_at_once_without_another_attempt(ops):
    ctx, clock, seen = ops
    spec(ctx, "flaky", 'command = ["false"]\n[retry]\nattempts = 5\nbackoff = "1h"\n')

    async def scenario() -> None:
        run = run_job(ctx, "flaky", actor=Actor("test"))
        await until(lambda: clock.waiting == 1, "the backoff")
        cancelled = await cancel_run(ctx, run.ref, Actor("uid=0(root)"))
        assert cancelled.state is RunState.CANCELLED and cancelled.reason == "cancelled by uid=0(root)"

    asyncio.run(scenario())
    final = ctx.store.get_run("flaky", 1)
    assert final.attempts == 1 and ctx.runs.active_ref("flaky") is None
    ends = [f for f in seen if isinstance(f, RunFinished)]
    assert [(f.state, f.reason) for f in ends] == [(RunState.CANCELLED, "cancelled by uid=0(root)")]


async def _timed(scenario) -> float:  # noqa: ANN001
    loop = asyncio.get_running_loop()
    began = loop.time()
    await scenario()
    return loop.time() - began


def test_a_full_disk_at_the_end_gives_up_the_reserve_or_retries_until_the_store_takes_it(ops):
    """The end of a run the store refuses is retried every FINISH_RETRY seconds (on the fake clock);
    the job stays busy meanwhile, and nothing is lost once writes work again."""
    ctx, clock, seen = ops
    gate = os.path.join(ctx.paths.state_dir, "gate")
    os.mkfifo(gate)  # the child's `cat` blocks until the test opens the fifo: it ends when told
    spec(ctx, "fills", f'command = ["cat", "{gate}"]\n')

    async def scenario() -> None:
        run = run_job(ctx, "fills", actor=Actor("test"))
        task = ctx.runs.active[run.ref].task
        await until(lambda: ctx.store.get_run("fills", 1).state is RunState.RUNNING, "the start")
        ctx.store.fail_writes("database or disk is full")  # the reserve goes first, then it waits
        os.close(os.open(gate, os.O_WRONLY))  # cat reads EOF and exits 0
        await until(lambda: clock.waiting == 1, "the first retry's wait")
        assert ctx.runs.active_ref("fills") == run.ref  # still busy: a second run would be refused
        clock.advance(5)
        await until(lambda: clock.waiting == 1, "the second retry's wait")
        ctx.store.fail_writes(None)
        clock.advance(5)
        await asyncio.wait_for(task, 5)

    asyncio.run(scenario())
    final = ctx.store.get_run("fills", 1)
    assert final.state is RunState.SUCCEEDED and ctx.runs.active_ref("fills") is None
    assert [f.TYPE for f in seen if isinstance(f, RunFinished)] == ["run.finished"]
