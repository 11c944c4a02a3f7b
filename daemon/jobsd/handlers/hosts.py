"""What the hosts of a shared (PostgreSQL) store do about each other (DESIGN 12), at every heartbeat.

- The leader takes over the runs of a dead host: a host that has not renewed its heartbeat for
  HOST_LEASE seconds by the database's clock, and did not stop cleanly. Each of its active runs that
  a restart would interrupt (kernel.gates.after_restart) is recorded `interrupted` ("host B stopped
  renewing its heartbeat ..."), and one that had attempts left is retried here at once (trigger
  retry, retry_of the run), admitted like any run. A run waiting for approval or for its gates waits
  on for its own host. The leader judges only once it has itself renewed its lease without a gap
  for a whole lease: after the database was away, every live host has had the time to beat again.
- Every host gives up the runs it carries out that the store no longer has active (the leader took
  them over while this host could not reach the store): their processes are stopped and their ends
  are not recorded (Journal.end). At start-up, `stop_taken_over` stops what is left of the runs the
  leader closed while this host was down (their processes outlive a killed jobsd).
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

from jobsd.clock import from_epoch
from jobsd.context import Context
from jobsd.processes import kill_leftovers
from jobsd.scheduler import HEARTBEAT
from jobsd.store_hosts import HOST_LEASE
from jobsd_lib.facts import SCHEDULER
from jobsd_lib.kernel.gates import Interrupt, after_restart
from jobsd_lib.kernel.states import RunState, Trigger

__all__ = ["take_over_dead_hosts", "give_up_taken_runs", "stop_taken_over", "watch_hosts", "TAKEOVER_MARGIN"]

log = logging.getLogger("jobsd.hosts")
TAKEOVER_MARGIN = 60.0  # seconds before a host's last heartbeat that its runs' takeover may be dated (clock skew)


def take_over_dead_hosts(ctx: Context) -> list[str]:
    """On the leader: record the runs of dead hosts interrupted, retry what may be retried; the refs
    it recorded interrupted."""
    me = ctx.own_host()
    if me is None or not ctx.leads() or ctx.lease is None or ctx.lease.steady_for() < HOST_LEASE:
        return []
    dead = {h.name: h.age for h in ctx.store.hosts() if h.name != me and not h.stopped and h.age > HOST_LEASE}
    taken = []
    for name, age in sorted(dead.items()):
        for run in ctx.store.active_runs(name):
            spec = ctx.catalog.specs.get(run.job_id)
            verdict = after_restart(run.state, run.attempts, run.wait_reason, run.spec_digest,
                                    spec.digest if spec is not None else None)
            if not isinstance(verdict, Interrupt):
                continue  # a wait for a person or other jobs: it waits on for its host
            reason = (f"host {name} stopped renewing its heartbeat (last seen {age:.0f} s ago) while the run was "
                      f"{run.state.value}")
            updated = ctx.journal.interrupted(run, reason, lambda n: 0, ctx.spec_file(run.job_id), files=False)
            if updated.state is not RunState.INTERRUPTED or updated.reason != reason:
                continue  # its host came back and ended it first
            log.warning("run %s marked interrupted: %s", run.ref, reason)
            taken.append(run.ref)
            if spec is not None and run.attempts < run.max_attempts:
                _retry(ctx, run.job_id, run.scheduled_at, run.ref)
    return taken


def _retry(ctx: Context, job_id: str, scheduled_at: float | None, ref: str) -> None:
    from jobsd.handlers.runs import run_job  # handlers.runs imports the context's parts; this runs late

    try:
        retry = run_job(ctx, job_id, Trigger.RETRY, from_epoch(scheduled_at) if scheduled_at else None, SCHEDULER,
                        retry_of=ref)
    except Exception as exc:  # noqa: BLE001 - job_busy, job_disabled, a store that refuses: the run stays interrupted
        log.warning("run %s is not retried here: %s", ref, exc)
        return
    if retry is not None:
        log.info("run %s retries run %s of the host that stopped (%s)", retry.ref, ref, retry.state.value)


def give_up_taken_runs(ctx: Context) -> list[str]:
    """On every host of a shared store: stop the runs carried out here that the store says another
    host recorded interrupted; the refs stopped."""
    me = ctx.own_host()
    if me is None or not ctx.runs.active:
        return []
    still = {run.ref for run in ctx.store.active_runs(me)}
    stopped = []
    for ref, act in list(ctx.runs.active.items()):
        if ref in still or act.stop_reason:
            continue
        row = ctx.store.get_run(act.row.job_id, act.row.n)
        if row is None or row.state is not RunState.INTERRUPTED:
            continue  # it ended here a moment ago (or its end is being recorded)
        log.warning("run %s was recorded interrupted by another host while this host could not reach the store "
                    "(%s): its processes are stopped here", ref, row.reason)
        ctx.runs.stop(act, "interrupted", "the leader, for this host")
        stopped.append(ref)
    return stopped


def stop_taken_over(ctx: Context, down_since: float | None) -> list[str]:
    """At start-up on a shared store: the leftover processes of this host's runs that the leader
    closed since this host's last heartbeat (`down_since`, epoch; None on a first start)."""
    me = ctx.own_host()
    if me is None or down_since is None:
        return []
    stopped, since = [], down_since - TAKEOVER_MARGIN
    for run in ctx.store.taken_over(me, since):
        closed = [replace(a, finished_at=None) for a in run.attempt_list if (a.finished_at or 0) >= since]  # by the leader
        if kill_leftovers(run.ref, run.pgid, closed):
            log.warning("run %s: stopped its leftover processes (another host recorded it interrupted while this "
                        "host was down)", run.ref)
            stopped.append(run.ref)
    return stopped


async def watch_hosts(ctx: Context) -> None:
    """Every heartbeat, until cancelled: the two duties above."""
    while True:
        await asyncio.sleep(HEARTBEAT)
        for duty in (take_over_dead_hosts, give_up_taken_runs):
            try:
                duty(ctx)
            except Exception as exc:  # noqa: BLE001 - a store that is away: the next beat tries again
                log.warning("%s failed: %s", duty.__name__.replace("_", " "), exc)
