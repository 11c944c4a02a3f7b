"""ListJobs, GetJob, NextRunTimes: what a job is and shows; ForgetJobState."""
from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from datetime import datetime

from jobsd.context import Context
from jobsd.store import OperatorRow, RunRow
from jobsd_lib.errors import InvalidArgument, JobBusy, JobNotFound, error_for_code
from jobsd_lib.facts import Actor, JobStateForgotten
from jobsd_lib.kernel.decisions import job_state
from jobsd_lib.kernel.graph import connected
from jobsd_lib.kernel.states import JobState
from jobsd_lib.limits import MAX_NEXT_COUNT
from jobsd_lib.refs import require_job_id
from jobsd_lib.spec import JobSpec, SpecProblem

__all__ = ["JobView", "list_jobs", "get_job", "get_graph", "next_run_times", "forget_state", "state_of", "require_known", "never_known",
           "DEFAULT_NEXT_COUNT"]

DEFAULT_NEXT_COUNT = 5


@dataclass(frozen=True)
class JobView:
    id: str
    state: JobState
    spec: JobSpec | None
    problems: tuple[SpecProblem, ...]
    last_run: RunRow | None
    consecutive_failures: int
    next_run_at: datetime | None = None
    operator: OperatorRow | None = None  # the operator's pause or disable, when, by whom, until, why
    overdue_since: float | None = None   # the open overdue episode's start ([expect] success_within)


def state_of(ctx: Context, job_id: str, operator_state: str | None) -> JobState:
    spec = ctx.catalog.specs.get(job_id)
    return job_state(spec is not None, spec.enabled if spec else True, operator_state)


def never_known(ctx: Context, job_id: str) -> bool:
    """No spec (valid or not) and no run recorded: a job of the past still has its history."""
    return job_id not in ctx.catalog.specs and job_id not in ctx.catalog.invalid \
        and ctx.store.latest_run(job_id) is None


def require_known(ctx: Context, job_id: str) -> None:
    if job_id in ctx.catalog.invalid:  # listed, so showable, even when its file name is no valid id
        return
    require_job_id(job_id)
    if job_id not in ctx.catalog.specs:
        from difflib import get_close_matches

        close = get_close_matches(job_id, ctx.catalog.ids(), n=3)
        hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
        raise JobNotFound(job_id, f"no job {job_id!r}: {hint}`jobsctl jobs list` shows the jobs this daemon knows")


def _view(ctx: Context, job_id: str, operator: dict[str, OperatorRow], summary: tuple[RunRow | None, int],
          next_runs: dict[str, datetime] | None = None) -> JobView:
    spec = ctx.catalog.specs.get(job_id)
    row = operator.get(job_id)
    state = state_of(ctx, job_id, row.state if row else None)
    next_run = None
    if ctx.timer and spec and spec.schedule and state is JobState.ACTIVE:
        next_run = next_runs.get(job_id) if next_runs is not None else ctx.timer.next_run_at(job_id)
    last_run, failures = summary
    return JobView(job_id, state, spec, tuple(ctx.catalog.invalid.get(job_id, ())), last_run, failures, next_run,
                   row if row is not None and row.state != JobState.ACTIVE.value else None,
                   ctx.overdue.since.get(job_id))


def list_jobs(ctx: Context) -> list[JobView]:
    """Every job, in a constant number of store queries (operator states, then every job's last
    run and failure count, then those runs' attempts) and one of the scheduler's job store:
    200 clients listing 21 jobs pinned the loop when it was ~3 queries a job (issue 19)."""
    ids = ctx.catalog.ids()
    operator = ctx.store.operator_rows()
    summaries = ctx.store.job_summaries(ids)
    next_runs = ctx.timer.all_next_run_times() if ctx.timer else {}  # one query, not one a job
    return [_view(ctx, job_id, operator, summaries[job_id], next_runs) for job_id in ids]


def get_job(ctx: Context, job_id: str) -> JobView:
    require_known(ctx, job_id)
    return _view(ctx, job_id, ctx.store.operator_rows(), ctx.store.job_summaries([job_id])[job_id])


def get_graph(ctx: Context, job_id: str = "") -> list[tuple[str, JobState, tuple[str, ...], tuple[str, ...]]]:
    """(id, state, after, requires) of every job, or of those connected to `job_id` by either kind of
    edge (kernel.graph.connected), sorted by id. An invalid job has no edges: its spec is not in force."""
    after = {j: spec.after for j, spec in ctx.catalog.specs.items()}
    requires = {j: tuple(dict.fromkeys(r.job for r in spec.requires)) for j, spec in ctx.catalog.specs.items()}
    ids = ctx.catalog.ids()
    if job_id:
        require_known(ctx, job_id)
        wanted = connected({j: (*after[j], *requires[j]) for j in after}, job_id)
        ids = [j for j in ids if j in wanted]
    operator = ctx.store.operator_states()
    return [(j, state_of(ctx, j, operator.get(j)), after.get(j, ()), requires.get(j, ())) for j in ids]


def next_run_times(ctx: Context, job_id: str, count: int = 0) -> list[datetime]:
    """The next `count` (0: DEFAULT_NEXT_COUNT; at most MAX_NEXT_COUNT, else invalid_argument) fire
    times of the job's schedule after now, as aware UTC datetimes.

    A job without a schedule (manual only) answers an empty list, not an error. The times are
    the schedule's, whatever the job's state: a paused or disabled job shows when it would fire
    (its `state` says it will not). An invalid spec answers job_invalid_spec.
    """
    view = get_job(ctx, job_id)
    if count < 0 or count > MAX_NEXT_COUNT:
        raise InvalidArgument(f"count must be between 1 and {MAX_NEXT_COUNT} (0 means {DEFAULT_NEXT_COUNT})")
    if view.spec is None:
        raise error_for_code("job_invalid_spec", f"job {job_id!r} has an invalid spec: `jobsctl jobs show "
                             f"{job_id}` says why", {"job": job_id})
    if view.spec.schedule is None:
        return []
    from jobsd.triggers import next_fire_times, spec_trigger

    return next_fire_times(spec_trigger(view.spec), ctx.clock.now(), count or DEFAULT_NEXT_COUNT)


async def forget_state(ctx: Context, job_id: str, actor: Actor) -> tuple[str, bool, int]:
    """Remove the job's JOBSD_STATE_DIR (job_files.py): (its path, whether there was one, bytes freed).
    Also for a job whose spec is gone but whose folder is left; job_busy while it has an active run."""
    require_job_id(job_id)
    files = ctx.runs.files
    path = files.state_dir(job_id)
    if job_id not in ctx.catalog.specs and job_id not in ctx.catalog.invalid and not os.path.lexists(path):
        require_known(ctx, job_id)  # job_not_found, with the close ids
    active = ctx.runs.active_ref(job_id)
    if active:
        raise JobBusy(f"job {job_id!r} has an active run ({active}) that may be using its state: wait for it or "
                      f"cancel it (`jobsctl runs cancel {active}`), then forget its state", {"job": job_id})
    if not os.path.lexists(path):
        return path, False, 0
    freed = await asyncio.get_running_loop().run_in_executor(None, files.forget_state, job_id)
    ctx.journal.record(JobStateForgotten(ts=ctx.clock.epoch(), job_id=job_id, actor=actor, path=path, bytes_freed=freed))
    return path, True, freed
