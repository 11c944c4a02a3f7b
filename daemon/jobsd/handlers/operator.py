"""PauseJob, ResumeJob, DisableJob, EnableJob: the operator's state of a job (DESIGN 11).

pause: no scheduled runs, and nothing recorded per cron window (kernel.decisions.Drop); manual
runs still allowed. `until` ends the pause by itself (auto_resume, also across restarts: event
job.resumed, actor scheduler); `reason` is shown with the state and kept in the event. resume: back
to active (also clears an operator disable); with `catch_up` the latest window that passed while
the job was paused or disabled runs once (trigger catch_up). disable: no runs at all (RunJob
answers job_disabled). enable: clear the operator's disable (or pause); a spec with `enabled =
false` stays disabled: the answer's state says so (edit the file and reload to enable it).
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from jobsd.clock import from_epoch
from jobsd.context import Context
from jobsd.handlers.jobs import JobView, get_job
from jobsd.handlers.runs import run_job
from jobsd_lib.errors import InvalidArgument
from jobsd_lib.facts import OPERATOR_FACTS, SCHEDULER, Actor
from jobsd_lib.kernel.fire import latest_window
from jobsd_lib.kernel.states import JobState, Trigger
from jobsd_lib.limits import one_line

__all__ = ["set_operator_state", "auto_resume", "MAX_REASON", "MAX_PAUSE"]

log = logging.getLogger("jobsd.operator")
MAX_REASON = 500                 # characters of an operator's --reason
MAX_PAUSE = timedelta(days=366)  # the furthest --until
RETRY_RESUME = 60.0              # seconds before an auto-resume that failed is tried again
SHARED_EVERY = 5.0               # a shared store's leader reads the pauses again at least this often


def set_operator_state(ctx: Context, verb: str, job_id: str, actor: Actor, *, until: datetime | None = None,
                       reason: str = "", catch_up: bool = False) -> JobView:
    """`verb` is pause, resume, disable or enable. Bad input (invalid_argument) changes nothing."""
    fact_type, state = OPERATOR_FACTS[verb]
    before = get_job(ctx, job_id)  # validates the id; job_not_found
    reason = one_line(reason, "reason", MAX_REASON)
    now = ctx.clock.now()
    if until is not None:
        if verb != "pause":
            raise InvalidArgument(f"--until is for `jobs pause` only: a {verb} lasts until it is undone")
        if until <= now:
            raise InvalidArgument(f"--until {until.isoformat()} is not in the future (now {now.isoformat()})")
        if until - now > MAX_PAUSE:
            raise InvalidArgument(f"--until {until.isoformat()} is more than {MAX_PAUSE.days} days ahead; "
                                  "pause without --until for an open-ended pause")
    if reason and state is JobState.ACTIVE:
        raise InvalidArgument(f"--reason is for `jobs pause` and `jobs disable`; a {verb} records who and when")
    if catch_up and state is not JobState.ACTIVE:
        raise InvalidArgument(f"--catch-up is for `jobs resume` and `jobs enable`, not for `jobs {verb}`")
    fact = fact_type(ts=ctx.clock.epoch(), job_id=job_id, state=state, actor=actor, reason=reason,
                     until=until.timestamp() if until is not None else None)
    ctx.journal.operator_state(fact)
    ctx.pauses_changed.set()
    log.info("%s %s by %s%s", fact.TYPE, job_id, actor or "unknown", f" ({reason})" if reason else "")
    if catch_up:
        _catch_up(ctx, job_id, before, actor)
    return get_job(ctx, job_id)


def _catch_up(ctx: Context, job_id: str, before: JobView, actor: Actor) -> None:
    """Run once the latest window that passed while the job was paused or disabled (none: nothing)."""
    spec, held = before.spec, before.operator
    if spec is None or spec.schedule is None or held is None or held.state == JobState.ACTIVE.value:
        return
    from jobsd.triggers import build_trigger  # APScheduler's cron maths, as for `jobs next`

    shift = spec.jitter_offset  # windows fire this much later
    trigger = build_trigger(spec.schedule.expr, spec.schedule.timezone)
    window = latest_window(lambda at: trigger.get_next_fire_time(None, at), from_epoch(held.changed_at) - shift,
                           ctx.clock.now() - shift)
    if window is not None:
        run = run_job(ctx, job_id, Trigger.CATCH_UP, scheduled_at=window, actor=actor)
        log.info("run %s: catch-up of %s, missed while %s", run.ref if run else "-", window.isoformat(), held.state)


async def auto_resume(ctx: Context) -> None:
    """Resume each paused job at its `until` (actor scheduler), also one whose `until` passed while
    jobsd was down (at once at start-up). Waits for the earliest `until`, or a change of any pause."""
    while True:
        ctx.pauses_changed.clear()
        if not ctx.leads():  # a shared store: the leader resumes (this host, once it takes the lead)
            await ctx.pauses_changed.wait()
            continue
        now = ctx.clock.epoch()
        due, next_at, failed = [], None, False
        known = ctx.catalog.specs.keys() | ctx.catalog.invalid.keys()  # a removed job waits for its file
        try:
            rows = ctx.store.operator_rows()
        except Exception:  # noqa: BLE001 - the store failing must not end auto-resume for good
            log.exception("cannot read the operator states; auto-resume tries again in %gs", RETRY_RESUME)
            rows, failed = {}, True
        for job_id, row in rows.items():
            if row.state == JobState.PAUSED.value and row.until is not None and job_id in known:
                if row.until <= now:
                    due.append(job_id)
                else:
                    next_at = row.until if next_at is None else min(next_at, row.until)
        for job_id in due:
            try:
                set_operator_state(ctx, "resume", job_id, SCHEDULER)
            except Exception:  # noqa: BLE001 - a full disk, a bug: try again in a minute, keep serving
                log.exception("could not resume %s at the end of its pause", job_id)
                failed = True
        if due and not failed:
            continue
        if failed:
            next_at = min(next_at or now + RETRY_RESUME, now + RETRY_RESUME)
        if ctx.lease is not None:  # other hosts pause jobs too: read their pauses again soon
            next_at = min(next_at or now + SHARED_EVERY, now + SHARED_EVERY)
        await ctx.clock.wait_until(from_epoch(next_at) if next_at else ctx.clock.now() + timedelta(days=1),
                                   ctx.pauses_changed)
