"""CollectGarbage: remove finished runs' records and folders by retention rules (kernel.retention)."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta

from jobsd.context import Context
from jobsd.handlers.jobs import never_known
from jobsd_lib.errors import JobNotFound
from jobsd_lib.facts import SCHEDULER, Actor, DaemonGc
from jobsd_lib.kernel.retention import retention_policy, rules_for
from jobsd_lib.refs import require_job_id

__all__ = ["GcResult", "collect_garbage", "sweep", "keep_sweeping", "GC_LISTED", "GC_BATCH", "RETENTION_EVERY"]

log = logging.getLogger("jobsd.gc")
GC_LISTED, GC_BATCH = 10_000, 2_000  # refs named in a gc answer; runs deleted per transaction
RETENTION_EVERY = 3600.0  # seconds between two retention sweeps


@dataclass(frozen=True)
class GcResult:
    removed: list[str]    # run refs, at most GC_LISTED of them
    removed_count: int
    bytes_freed: int
    dry_run: bool


async def collect_garbage(ctx: Context, keep_last: int | None, older_than: float | None, job_id: str = "",
                          dry_run: bool = False, actor: Actor = Actor()) -> GcResult:
    """Active runs are never candidates. Records go first, in transactions of GC_BATCH runs with
    the loop free in between; folders are then removed off the loop. Events stay (the audit
    log); run numbers are never reused. With dry_run nothing changes.
    """
    if job_id:
        require_job_id(job_id)
    policy = retention_policy(keep_last, older_than, ctx.clock.epoch())
    if job_id and never_known(ctx, job_id):
        raise JobNotFound(job_id)
    async with ctx.gc_lock:
        doomed = ctx.store.removable_runs(job_id, policy.keep_last, policy.cutoff)
        refs = [f"{j}/{n}" for _id, j, n in doomed]
        if dry_run:
            keys = [(j, n) for _id, j, n in doomed]
            freed = await asyncio.to_thread(ctx.artifacts.sweep, keys, False)
            return GcResult(refs[:GC_LISTED], len(refs), freed, True)
        freed = await _remove(ctx, doomed, actor)
        ctx.journal.record(DaemonGc(ts=ctx.clock.epoch(), job_id=job_id, actor=actor, removed=len(refs),
                                    bytes_freed=freed, keep_last=keep_last, older_than=older_than))
        return GcResult(refs[:GC_LISTED], len(refs), freed, False)


async def _remove(ctx: Context, doomed: list[tuple[int, str, int]], actor: Actor) -> int:
    """Delete these runs' records (batches, the loop free in between), then their folders; the bytes freed."""
    ids, keys = [run_id for run_id, _j, _n in doomed], [(j, n) for _id, j, n in doomed]
    started = ctx.clock.monotonic()
    for start in range(0, len(ids), GC_BATCH):
        ctx.journal.delete_runs(ids[start:start + GC_BATCH])
        await asyncio.sleep(0)  # let RPCs and runs through between batches
    records = ctx.clock.monotonic() - started
    # The artifact thread may still hold writes for these runs (a skipped or missed run's
    # first line and receipt): they land before the folders go, never after.
    await ctx.artifacts.flushed()
    freed = await asyncio.to_thread(ctx.artifacts.sweep, keys, True)
    log.info("gc by %s removed %d runs, %d bytes (records %.2fs, files %.2fs)", actor, len(ids), freed,
             records, ctx.clock.monotonic() - started - records)
    return freed


async def sweep(ctx: Context) -> int:
    """Retention by policy (DESIGN 11): each job's `[retention]`, else the daemon's default
    (kernel.retention.rules_for), through the same code as `gc`; one daemon.gc event (actor
    scheduler, policy retention) when it removed anything. Returns how many runs went."""
    default_keep, default_age = ctx.retention
    now, own = ctx.clock.epoch(), {}
    for job_id, spec in ctx.catalog.specs.items():
        r = spec.retention
        if r.keep_last is not None or r.older_than is not None:
            own[job_id] = rules_for(r.keep_last, r.older_than, default_keep, default_age)
    async with ctx.gc_lock:
        doomed = []
        for job_id, (keep, age) in sorted(own.items()):
            policy = retention_policy(keep, age, now)
            doomed += ctx.store.removable_runs(job_id, policy.keep_last, policy.cutoff)
        if rules_for(None, None, default_keep, default_age) is not None:  # every other job, gone ones too
            policy = retention_policy(default_keep, default_age, now)
            doomed += [d for d in ctx.store.removable_runs("", policy.keep_last, policy.cutoff) if d[1] not in own]
        if not doomed:
            return 0
        freed = await _remove(ctx, doomed, SCHEDULER)
        ctx.journal.record(DaemonGc(ts=ctx.clock.epoch(), actor=SCHEDULER, removed=len(doomed), bytes_freed=freed,
                                    keep_last=default_keep, older_than=default_age, policy=True))
        return len(doomed)


async def keep_sweeping(ctx: Context) -> None:
    """`sweep` at start-up, after every reload (ctx.retention_changed) and every RETENTION_EVERY seconds."""
    while True:
        ctx.retention_changed.clear()
        try:
            await sweep(ctx)
        except Exception:  # noqa: BLE001 - a full disk, a bug: the next sweep tries again; keep serving
            log.exception("retention sweep failed")
        await ctx.clock.wait_until(ctx.clock.now() + timedelta(seconds=RETENTION_EVERY), ctx.retention_changed)
