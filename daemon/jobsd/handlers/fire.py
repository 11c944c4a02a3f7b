"""Cron windows handed over by the timer: run each or record it as the kernel decides.

Runs go through run_job (trigger cron, scheduled_at = the window), which records skipped runs
itself (overlap, paused, disabled); late or coalesced windows become `missed` records. With
catch_up, the job's first firing after start-up runs its latest window missed while jobsd was
down (trigger catch_up) when no window is on time.

A job's first firing since start-up drops the windows that already have a record: APScheduler's
job store can come back behind the runs table (a power cut rolls back its unsynced commits).
Windows that come while the store refuses writes are held (held.py) and recorded `missed` later.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from jobsd.context import Context
from jobsd.handlers.jobs import state_of
from jobsd.handlers.runs import run_job
from jobsd.store import RunRow, StoreUnwritable
from jobsd.store_rows import WindowTaken
from jobsd_lib.errors import JobsdError
from jobsd_lib.facts import SCHEDULER
from jobsd_lib.kernel.fire import AlreadyRecorded, CatchUp, FireDecision, Held, Miss, Unscheduled, plan_firing
from jobsd_lib.kernel.states import JobState, Trigger

__all__ = ["on_fire", "record_missed", "record_dropped", "record_held"]

log = logging.getLogger("jobsd.fire")


def on_fire(ctx: Context, job_id: str, run_times: list[datetime]) -> None:
    """The timer found windows of `job_id` due: do what the kernel's plan says for each."""
    first = job_id not in ctx.fired
    ctx.fired.add(job_id)
    spec = ctx.catalog.specs.get(job_id)
    state = state_of(ctx, job_id, ctx.store.operator_state(job_id))
    plan = plan_firing(run_times, ctx.clock.now(), spec.schedule if spec else None, first=first,
                       recorded=ctx.store.recent_windows(job_id) if first else frozenset(),
                       valid=job_id not in ctx.catalog.invalid, held=state in (JobState.PAUSED, JobState.DISABLED),
                       offset=_offset(ctx, job_id))
    _log_plan(job_id, plan)
    held = ctx.held
    if held.holds(job_id):
        held.flush()  # its history in order: the held windows first
    for action in plan.actions:
        if isinstance(action, (AlreadyRecorded, Unscheduled, Held)):
            continue
        try:
            if held.holds(job_id):
                held.hold(job_id, action.window, held.cause(job_id))
            elif isinstance(action, Miss):
                record_missed(ctx, job_id, action.window, action.reason)
            else:  # Run, CatchUp, SkipInvalid (recorded skipped, reason invalid_spec, by admission)
                trigger = Trigger.CATCH_UP if isinstance(action, CatchUp) else Trigger.CRON
                run_job(ctx, job_id, trigger, scheduled_at=action.window, actor=SCHEDULER)
        except StoreUnwritable as exc:  # recorded `missed` once the store works again (held.py)
            held.hold(job_id, action.window, exc.cause)
        except WindowTaken as exc:  # two leaders overlapped: the other one has it
            log.info("%s", exc)
        except JobsdError as exc:
            log.warning("cron window %s of %s: %s", action.window.isoformat(), job_id, exc)


def _log_plan(job_id: str, plan: FireDecision) -> None:
    again = [a.window for a in plan.actions if isinstance(a, AlreadyRecorded)]
    if again:
        log.warning("job %s: %d cron window(s) up to %s dropped: recorded before the restart", job_id, len(again),
                    again[-1].isoformat())
    if any(isinstance(a, Unscheduled) for a in plan.actions):
        log.warning("cron firing of %s ignored: no scheduled spec (removed before the scheduler synced)", job_id)
    if plan.missed_unrecorded:
        log.warning("job %s: %d older missed windows not recorded one by one", job_id, plan.missed_unrecorded)


def record_missed(ctx: Context, job_id: str, window: datetime, reason: str) -> RunRow:
    """A cron window that was not run: a `missed` run, terminal at birth, with its event."""
    return ctx.journal.missed(job_id, window, reason, ctx.catalog.specs.get(job_id))


def record_dropped(ctx: Context, job_id: str, windows: list[datetime]) -> None:
    """Cron windows the timer handed over (fire times, jitter included) while the daemon stops:
    `missed`, never silently lost (a paused or disabled job's windows are no runs: nothing to record)."""
    if state_of(ctx, job_id, ctx.store.operator_state(job_id)) in (JobState.PAUSED, JobState.DISABLED):
        return
    shift = _offset(ctx, job_id)
    for due in windows:
        record_missed(ctx, job_id, due - shift, f"missed: due {due.isoformat()}, jobsd was stopping")


def _offset(ctx: Context, job_id: str) -> timedelta:
    """The job's jitter offset: the timer fires each window this much later (kernel.jitter)."""
    spec = ctx.catalog.specs.get(job_id)
    return spec.jitter_offset if spec else timedelta(0)


def record_held(ctx: Context) -> None:
    """A last try at the windows held while the store refused writes (held.py)."""
    ctx.held.flush()
    ctx.held.cancel()  # no retry armed by that flush outlives the loop
    if held := len(ctx.held):
        log.error("%d cron window(s) could not be recorded missed (the store still refuses writes); the job "
                  "store had not moved past them either, so the next start hands them over again", held)
