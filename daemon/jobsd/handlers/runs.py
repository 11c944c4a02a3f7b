"""RunJob, RetryRun, GetRun, ListRuns, CancelRun, ApproveRun, RejectRun."""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from jobsd.context import Context
from jobsd.handlers.jobs import never_known, require_known, state_of
from jobsd.store import RunRow
from jobsd.store_rows import JobActive
from jobsd.clock import from_epoch
from jobsd_lib.errors import (InternalError, InvalidArgument, JobNotFound, PermissionDenied, RunNotActive,
                              RunNotFinished, RunNotFound, RunNotWaiting, error_for_code)
from jobsd_lib.facts import Actor
from jobsd_lib.kernel.decisions import Admit, Drop, Refuse, Skip, admit_run
from jobsd_lib.kernel.gates import may_decide
from jobsd_lib.kernel.run import Decided
from jobsd.peer import group_names
from jobsd_lib.kernel.states import RunState, Trigger
from jobsd_lib.limits import MAX_LIST_LIMIT, one_line
from jobsd_lib.refs import decode_cursor, encode_cursor, parse_run_ref, require_job_id

__all__ = ["run_job", "retry_run", "get_run", "list_runs", "cancel_run", "decide_run", "CANCEL_SLACK", "MAX_COMMENT"]

log = logging.getLogger("jobsd.runs")
CANCEL_SLACK = 5.0  # seconds CancelRun waits beyond the job's kill_grace for the run to end
MAX_COMMENT = 1000  # characters of an approval's or rejection's comment
DECIDE_WAIT = 30.0  # seconds ApproveRun/RejectRun wait for the decision to be on disk


def run_job(ctx: Context, job_id: str, trigger: Trigger = Trigger.MANUAL, scheduled_at: datetime | None = None,
            actor: Actor = Actor(), retry_of: str = "", upstream: str = "") -> RunRow | None:
    """Admit and durably record a run (committed before this returns), then start it; what the kernel
    does not admit is refused (manual), recorded `skipped` (scheduled triggers), or, for a cron
    window of a paused or disabled job, dropped (None: nothing recorded)."""
    require_known(ctx, job_id)  # admission needs the state, not the job's history: no full view
    spec = ctx.catalog.specs.get(job_id)
    job_state = state_of(ctx, job_id, ctx.store.operator_state(job_id))
    active, host = ctx.runs.active_ref(job_id), ""
    while True:
        decision = admit_run(job_id, trigger, job_state, active, disabled_by_spec=spec is not None and not spec.enabled)
        if isinstance(decision, Refuse):
            raise error_for_code(decision.code, decision.message + (f" (it runs on host {host})" if host else ""),
                                 {"job": job_id})
        if isinstance(decision, Drop):
            log.debug("cron window %s of %s dropped: %s", scheduled_at, job_id, decision.reason)
            return None
        state = RunState.QUEUED if isinstance(decision, Admit) else RunState.SKIPPED
        try:
            run = ctx.journal.create_run(job_id, state, trigger, spec, actor, scheduled_at,
                                         decision.reason if isinstance(decision, Skip) else "", retry_of, upstream)
        except JobActive as exc:  # a shared store: another host's run of the job, seen under the job's lock
            active, host = exc.run.ref, exc.run.host
            continue
        break
    if state is RunState.QUEUED:
        ctx.runs.start(run, spec, ctx.run_dir(run))
    return run


def retry_run(ctx: Context, ref: str, actor: Actor = Actor()) -> RunRow:
    """A new run of a finished run's job with the job's current spec: trigger retry, retry_of = that
    run, its cron window kept (JOBSD_SCHEDULED_TIME), admitted and acknowledged like a manual run
    (job_busy, job_disabled, job_invalid_spec). A run still active answers run_not_finished."""
    original = get_run(ctx, ref)
    if original.active:
        raise RunNotFinished(f"run {original.ref} is still {original.state.value}: retry it once it has ended, or "
                             f"cancel it first (`jobsctl runs cancel {original.ref}`)",
                             run=original.ref, state=original.state.value)
    if original.job_id not in ctx.catalog.specs and original.job_id not in ctx.catalog.invalid:
        raise JobNotFound(original.job_id, f"run {original.ref} cannot be retried: its job {original.job_id!r} "
                          "no longer exists (its spec file was removed)")
    return run_job(ctx, original.job_id, Trigger.RETRY, from_epoch(original.scheduled_at), actor, original.ref)


def get_run(ctx: Context, ref: str) -> RunRow:
    job_id, n = parse_run_ref(ref)
    run = ctx.store.get_run(job_id, n)
    if run is None:
        raise RunNotFound(ref)
    return run


def list_runs(ctx: Context, job_id: str, limit: int, cursor: str, states: list[str]) -> tuple[list[RunRow], str]:
    if job_id:
        require_job_id(job_id)
    if limit < 0 or limit > MAX_LIST_LIMIT:
        raise InvalidArgument(f"limit must be between 1 and {MAX_LIST_LIMIT}")
    limit = limit or 20
    for state in states:
        if state not in {s.value for s in RunState}:
            raise InvalidArgument(f"{state!r} is not a run state")
    rows = ctx.store.list_runs(job_id, limit + 1, decode_cursor(cursor), states)
    if job_id and not rows and never_known(ctx, job_id):
        raise JobNotFound(job_id)
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, encode_cursor(rows[-1].id) if more else ""


async def cancel_run(ctx: Context, ref: str, actor: Actor = Actor()) -> RunRow:
    """Cancel a queued, running or retrying run and wait (up to kill_grace + CANCEL_SLACK) for its end.

    A queued or retrying run stops waiting at once; a running attempt's process group gets
    SIGTERM, then SIGKILL after kill_grace. The run ends `cancelled` (no retry follows) with
    reason "cancelled by <actor>". A finished run answers run_not_active.
    """
    run = get_run(ctx, ref)
    if not run.active:
        raise RunNotActive(f"run {run.ref} already ended ({run.state.value}); only queued, running or retrying "
                           "runs can be cancelled", run=run.ref, state=run.state.value)
    act = ctx.runs.active.get(run.ref)
    _not_elsewhere(ctx, run, act, "cancel")
    if act is None:  # recorded active but not carried out: only a bug gets here
        raise InternalError(f"run {run.ref} is recorded {run.state.value} but jobsd is not carrying it out; "
                            "restart jobsd to reconcile it")
    log.info("run %s: cancel requested by %s while %s", run.ref, actor, run.state.value)
    ctx.runs.stop(act, "cancelled", str(actor))
    if act.task is not None:
        await asyncio.wait({act.task}, timeout=act.spec.kill_grace + CANCEL_SLACK)
    return get_run(ctx, run.ref)


async def decide_run(ctx: Context, ref: str, approved: bool, comment: str, actor: Actor = Actor()) -> RunRow:
    """Approve or reject a run that waits for approval ([gates] approval). Answers once the decision
    is durably recorded (a rejection: the run has ended `rejected`). Refusals change nothing:
    run_not_waiting (the run is not waiting for approval, or another decision was taken first),
    permission_denied (the caller is not among the job's approvers), invalid_argument (the comment)."""
    verb = "approve" if approved else "reject"
    one_line(comment, "comment", MAX_COMMENT)
    run = get_run(ctx, ref)
    act = ctx.runs.active.get(run.ref)
    _not_elsewhere(ctx, run, act, verb)
    if act is None or not ctx.runs.awaits_decision(act):
        raise RunNotWaiting(_not_waiting(run, act), run=run.ref, state=run.state.value)
    approvers = act.spec.gates.approvers
    if not may_decide(approvers, actor.user, group_names(actor.user) if actor.user else []):
        who = actor.label or "an unidentified caller"
        raise PermissionDenied(f"{who} may not {verb} runs of {run.job_id}: its approvers are "
                               f"{', '.join(approvers)} ([gates] approvers in its spec)", run=run.ref)
    decided = ctx.runs.decide(act, Decided(ctx.clock.now(), approved, actor, comment))
    log.info("run %s: %s by %s%s", run.ref, "approved" if approved else "rejected", actor, f" ({comment})" if comment else "")
    await asyncio.wait({decided} if approved else {decided, act.task}, timeout=DECIDE_WAIT)
    return get_run(ctx, run.ref)


def _not_elsewhere(ctx: Context, run: RunRow, act, verb: str) -> None:  # noqa: ANN001
    """A shared store: another host's active run is carried out there (run_elsewhere, naming it)."""
    if act is None and ctx.own_host() is not None and run.host != ctx.own_host():
        raise error_for_code("run_elsewhere", f"run {run.ref} runs on host {run.host}: {verb} it through that host's "
                             f"socket (this is host {ctx.own_host()})", {"run": run.ref, "host": run.host})


def _not_waiting(run: RunRow, act) -> str:  # noqa: ANN001
    if act is not None and act.decision is not None:
        return f"run {run.ref} was just {'approved' if act.decision.approved else 'rejected'} by {act.decision.actor}"
    if act is not None and act.suspended:
        return f"jobsd is stopping; run {run.ref} stays queued and waits for a decision again once jobsd is back"
    if act is not None and act.stop_reason:
        return f"run {run.ref} is being stopped ({act.stop_reason}); it can no longer be approved or rejected"
    if run.decision:
        return f"run {run.ref} was already {run.decision} by {run.decided_by}; it is {run.state.value} now"
    if not run.active:
        return f"run {run.ref} already ended ({run.state.value}); only a run waiting for approval can be approved or rejected"
    return (f"run {run.ref} is {run.state.value} and not waiting for approval (its job has no [gates] approval, or "
            "it was approved)")
