"""Dependency runs (DESIGN 10): a job with `after = [...]` starts a run (trigger dependency,
`upstream` = the run that completed the set) once every listed job has a run that succeeded since
the job's last dependency run. A failed upstream starts nothing.

"Since" is judged by positions in the store's one order of events (kernel.graph.upstream_ready),
never by clocks: an upstream's latest success is its newest `run.finished` event with state
succeeded (Store.last_success), and each downstream has a mark, the event seq up to which
successes are used up (daemon_meta, journal.dependency_mark). The journal moves the mark to the
dependency run's own event in the transaction that records the run, so a success starts its
downstream exactly once, also across a crash:
  - on a success (a subscriber to RunFinished), the upstream's downstreams are checked on the next
    loop turn (the bus forbids recording from inside a publish);
  - at start-up, after reconciling, every job with `after` is checked: an upstream that succeeded
    just before jobsd died starts its downstream now;
  - a job with `after` and no mark (a new file, or one that just gained `after`) is marked at the
    current position: successes from before it named its upstreams do not start it. A job that
    loses `after` loses its mark. A job that was invalid for a while keeps its mark: successes of
    its upstreams meanwhile start it once it is valid again (at the reload or start that finds it so).
What admission does not let run (the downstream paused, disabled, invalid or still running) is
recorded skipped with its reason, like a cron window, and uses the successes up.
"""
from __future__ import annotations

import asyncio
import logging

from jobsd.context import Context
from jobsd.catalog import Catalog
from jobsd.handlers.runs import run_job
from jobsd.journal import dependency_mark
from jobsd.store import StoreUnwritable
from jobsd_lib.errors import JobsdError
from jobsd_lib.facts import SCHEDULER, RunFinished
from jobsd_lib.kernel.graph import upstream_ready
from jobsd_lib.kernel.states import RunState, Trigger

__all__ = ["on_finished", "check", "check_all", "mark_new"]

log = logging.getLogger("jobsd.dependency")


def on_finished(ctx: Context, fact: RunFinished) -> None:
    """Bus subscriber: a success checks its job's downstreams, on the next turn of the loop."""
    if fact.state is not RunState.SUCCEEDED:
        return
    downstreams = ctx.catalog.downstreams.get(fact.job_id, ())
    if downstreams:
        loop = asyncio.get_running_loop()
        for job_id in downstreams:
            loop.call_soon(check, ctx, job_id)


def check(ctx: Context, job_id: str) -> None:
    """Start a dependency run of `job_id` if every upstream succeeded since its mark."""
    spec = ctx.catalog.specs.get(job_id)
    if spec is None or not spec.after:
        return
    try:
        mark = _mark(ctx, job_id)
        if mark is None:
            return
        successes = {}
        for upstream in spec.after:
            found = ctx.store.last_success(upstream)
            if found is not None:
                successes[upstream] = (found[0], f"{upstream}/{found[1]}")
        ready = upstream_ready(spec.after, successes, mark)
        if ready is not None:
            run = run_job(ctx, job_id, Trigger.DEPENDENCY, actor=SCHEDULER, upstream=ready)
            log.info("run %s: after %s (%s)", run.ref, ready, run.state.value)
    except StoreUnwritable as exc:  # the success is still there: the next success or start tries again
        log.error("dependency run of %s not recorded: %s", job_id, exc)
    except JobsdError as exc:
        log.warning("dependency run of %s: %s", job_id, exc)


def check_all(ctx: Context, before: Catalog | None = None) -> None:
    """Check every job with `after` (start-up), or, after a reload (`before` the catalog it
    replaced), those whose `after` changed or that were not valid before: for the others nothing
    can have changed but a success, and a success checks its downstreams itself."""
    for job_id in _changed(ctx, before):
        check(ctx, job_id)


def _changed(ctx: Context, before: Catalog | None) -> list[str]:
    """The valid jobs with `after`, less (after a reload) those valid before with the same `after`."""
    def same(job_id: str, after: tuple[str, ...]) -> bool:
        old = before.specs.get(job_id) if before is not None else None
        return old is not None and old.after == after

    return sorted(j for j, spec in ctx.catalog.specs.items() if spec.after and not same(j, spec.after))


def mark_new(ctx: Context, before: Catalog | None) -> None:
    """Mark the jobs with `after` that have no mark yet at the current position (after a reload,
    only those whose `after` changed can lack one); unmark those that lost `after` since `before`
    (the catalog a reload replaced; None at start-up)."""
    gained = [j for j in _changed(ctx, before) if _mark(ctx, j) is None]  # the others are marked already
    lost = [] if before is None else sorted(j for j, s in before.specs.items() if s.after and j in ctx.catalog.specs
                                            and not ctx.catalog.specs[j].after)
    if not gained and not lost:
        return

    def change(store) -> None:  # noqa: ANN001 - the store, inside the journal's transaction
        position = str(store.last_event_seq())
        for job_id in gained:
            store.set_meta(dependency_mark(job_id), position)
        for job_id in lost:
            store.set_meta(dependency_mark(job_id), "")

    ctx.journal.record(change=change)


def _mark(ctx: Context, job_id: str) -> int | None:
    value = ctx.store.get_meta(dependency_mark(job_id))
    return int(value) if value else None
