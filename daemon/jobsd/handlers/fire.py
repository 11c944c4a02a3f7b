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
from datetime import datetime

from jobsd.context import Context
from jobsd.handlers.runs import run_job
from jobsd.store import RunRow, StoreUnwritable
from jobsd_lib.errors import JobsdError
from jobsd_lib.facts import SCHEDULER
from jobsd_lib.kernel.fire import MAX_MISSED, CatchUp, Miss, decide_firing, unrecorded
from jobsd_lib.kernel.states import Trigger

__all__ = ["on_fire", "record_missed", "record_dropped", "record_held"]

log = logging.getLogger("jobsd.fire")


def on_fire(ctx: Context, job_id: str, run_times: list[datetime]) -> None:
    """The timer found windows of `job_id` due."""
    first = job_id not in ctx.fired
    if first:
        ctx.fired.add(job_id)
        run_times, again = unrecorded(run_times, ctx.store.recent_windows(job_id))
        if again:
            log.warning("job %s: %d cron window(s) up to %s dropped: recorded before the restart", job_id,
                        len(again), again[-1].isoformat())
        if not run_times:
            return
    spec = ctx.catalog.specs.get(job_id)
    if spec is None and job_id in ctx.catalog.invalid:
        # the file broke after the job was scheduled: its windows are recorded, never dropped
        for window in sorted(run_times)[-MAX_MISSED:]:
            run_job(ctx, job_id, Trigger.CRON, scheduled_at=window, actor=SCHEDULER)  # skipped, invalid_spec
        return
    if spec is None or spec.schedule is None:
        log.warning("cron firing of %s ignored: no scheduled spec (removed before the scheduler synced)", job_id)
        return
    decision = decide_firing(run_times, ctx.clock.now(), spec.schedule.misfire_grace, spec.schedule.coalesce,
                             catch_up=spec.schedule.catch_up and first)
    if decision.missed_unrecorded:
        log.warning("job %s: %d older missed windows not recorded one by one", job_id, decision.missed_unrecorded)
    held = ctx.held
    if held.holds(job_id):
        held.flush()  # its history in order: the held windows first
    for action in decision.actions:
        try:
            if held.holds(job_id):
                held.hold(job_id, action.window, held.cause(job_id))
            elif isinstance(action, Miss):
                record_missed(ctx, job_id, action.window, action.reason)
            else:
                trigger = Trigger.CATCH_UP if isinstance(action, CatchUp) else Trigger.CRON
                run_job(ctx, job_id, trigger, scheduled_at=action.window, actor=SCHEDULER)
        except StoreUnwritable as exc:  # recorded `missed` once the store works again (held.py)
            held.hold(job_id, action.window, exc.cause)
        except JobsdError as exc:
            log.warning("cron window %s of %s: %s", action.window.isoformat(), job_id, exc)


def record_missed(ctx: Context, job_id: str, window: datetime, reason: str) -> RunRow:
    """A cron window that was not run: a `missed` run, terminal at birth, with its event."""
    return ctx.journal.missed(job_id, window, reason, ctx.catalog.specs.get(job_id))


def record_dropped(ctx: Context, job_id: str, windows: list[datetime]) -> None:
    """Cron windows the timer handed over while the daemon stops: `missed`, never silently lost."""
    for window in windows:
        record_missed(ctx, job_id, window, f"missed: due {window.isoformat()}, jobsd was stopping")


def record_held(ctx: Context) -> None:
    """A last try at the windows held while the store refused writes (held.py)."""
    ctx.held.flush()
    ctx.held.cancel()  # no retry armed by that flush outlives the loop
    if held := len(ctx.held):
        log.error("%d cron window(s) could not be recorded missed (the store still refuses writes); the job "
                  "store had not moved past them either, so the next start hands them over again", held)
