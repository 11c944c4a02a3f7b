"""The overdue watch (DESIGN 11, `[expect] success_within`; decisions in kernel.overdue).

- `track(ctx)` after every load of the specs (start-up, reload): which jobs expect a success, and,
  for a job seen for the first time, since when (daemon_meta first_seen:JOB) and its open episode
  (meta overdue:JOB). Last successes are Context.last_success (from the events, which outlive gc).
- `on_finished`, a bus subscriber: a success moves the job's deadline and ends its episode.
- `watch(ctx)`, a task: at start-up at once (jobsd may have been down past a deadline), then at the
  earliest next deadline or when something changed, records `job.overdue` for each job whose
  deadline passed and `job.recovered` when an episode ends. Each check is in memory.

On a shared (PostgreSQL) store only the leader watches (Context.leads), and before each check it
reads the last successes and open episodes from the store, since other hosts' runs succeed on
their own buses; it looks again at least every SHARED_EVERY seconds.
"""
from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from jobsd.clock import from_epoch
from jobsd.context import Context
from jobsd.expect import first_seen_key, overdue_key
from jobsd_lib.facts import JobOverdue, JobRecovered, RunFinished
from jobsd_lib.kernel.overdue import BecameOverdue, Recovered, deadline, episode_change, overdue_message
from jobsd_lib.kernel.states import RunState

__all__ = ["track", "on_finished", "watch", "check"]

log = logging.getLogger("jobsd.overdue")
IDLE = timedelta(hours=1)  # the longest wait between two checks when no deadline is nearer
RETRY = 60.0               # seconds before a check that failed (a full disk) is tried again
SHARED_EVERY = timedelta(seconds=30)  # a shared store's leader: the longest wait between two checks


def track(ctx: Context) -> None:
    """Take the expectations of the catalog just loaded; a job watched for the first time since
    start-up gets its first sighting and open episode from the store."""
    state, store, now = ctx.overdue, ctx.store, ctx.clock.epoch()
    expecting = {j: s.expect.success_within for j, s in ctx.catalog.specs.items() if s.expect.success_within}
    kept = {j: state.within[j] for j in ctx.catalog.invalid if j in state.within}  # a broken spec stays watched
    state.within = {**kept, **expecting}
    new = []
    for job_id in state.within:
        if job_id not in state.first_seen:
            seen = store.get_meta(first_seen_key(job_id))
            if seen:
                state.first_seen[job_id] = float(seen)
            else:
                state.first_seen[job_id] = now
                new.append(job_id)
            since = store.get_meta(overdue_key(job_id))
            if since:
                state.since[job_id] = float(since)
    if new:
        ctx.journal.record(change=lambda s: s.set_metas({first_seen_key(j): repr(now) for j in new}), durable=False)
    state.changed.set()


def on_finished(ctx: Context, fact: RunFinished) -> None:
    """Bus subscriber: a success of an expecting job moves its deadline (recorded on the next turn)."""
    state = ctx.overdue  # ctx.last_success has the success already (app.build_context subscribed it first)
    if fact.state is RunState.SUCCEEDED and fact.job_id in state.within:
        if fact.job_id in state.since and ctx.leads():  # (a shared store: the leader records episodes)
            asyncio.get_running_loop().call_soon(check, ctx, fact.run_ref)
        state.changed.set()


def check(ctx: Context, run_ref: str = "") -> float | None:
    """Record every episode that starts or ends now, all in one transaction (10,000 jobs whose
    deadline passed together are one commit, not 10,000); the next deadline (epoch), or None."""
    state, now = ctx.overdue, ctx.clock.epoch()
    nearest, facts, metas = None, [], {}
    for job_id in sorted(set(state.within) | set(state.since)):
        within = state.within.get(job_id)
        if within is None:  # the expectation is gone (spec edited or removed): the episode ends
            change: BecameOverdue | Recovered | None = Recovered()
        else:
            due_at = deadline(within, ctx.last_success.get(job_id), state.first_seen.get(job_id, now))
            change = episode_change(due_at, now, state.since.get(job_id))
            if due_at > now:
                nearest = due_at if nearest is None else min(nearest, due_at)
        if isinstance(change, BecameOverdue):
            message = overdue_message(within, ctx.last_success.get(job_id), state.first_seen.get(job_id, now), now)
            facts.append(JobOverdue(ts=now, job_id=job_id, since=change.since, within=within, message=message))
            metas[job_id] = repr(change.since)
        elif isinstance(change, Recovered):
            run = run_ref if within is not None and job_id == run_ref.split("/")[0] else ""
            facts.append(JobRecovered(ts=now, job_id=job_id, overdue_since=state.since[job_id], run=run))
            metas[job_id] = ""
    if facts:
        ctx.journal.record(*facts, change=lambda s: s.set_metas({overdue_key(j): v for j, v in metas.items()}))
        for fact in facts:
            if isinstance(fact, JobOverdue):
                state.since[fact.job_id] = fact.since
                log.warning("job %s is overdue: %s", fact.job_id, fact.message)
            else:
                del state.since[fact.job_id]
                log.info("job %s recovered%s", fact.job_id, f" ({fact.run})" if fact.run else "")
    return nearest


def _reread(ctx: Context) -> None:
    """A shared store: every host's successes and the episodes an earlier leader opened or closed."""
    state = ctx.overdue
    ctx.last_success.update(ctx.store.last_success_times())
    for job_id in set(state.within) | set(state.since):
        since = ctx.store.get_meta(overdue_key(job_id))
        if since:
            state.since[job_id] = float(since)
        else:
            state.since.pop(job_id, None)


async def watch(ctx: Context) -> None:
    """Check at once, then at each next deadline or change, until cancelled."""
    state = ctx.overdue
    while True:
        state.changed.clear()
        if not ctx.leads():  # another host watches; this one starts when it takes the lead (a change)
            await state.changed.wait()
            continue
        try:
            if ctx.lease is not None and state.within:
                _reread(ctx)
            nearest = check(ctx)
        except Exception:  # noqa: BLE001 - a store that refuses writes must not end the watch
            log.exception("overdue check failed; trying again in %gs", RETRY)
            nearest = ctx.clock.epoch() + RETRY
        until = ctx.clock.now() + (IDLE if ctx.lease is None else SHARED_EVERY)
        if nearest is not None:
            until = min(until, from_epoch(nearest))
        await ctx.clock.wait_until(until, state.changed)
