"""CollectGarbage: remove finished runs' records and folders by retention rules (kernel.retention)."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from jobsd.context import Context
from jobsd.handlers.jobs import never_known
from jobsd_lib.errors import JobNotFound
from jobsd_lib.facts import Actor, DaemonGc
from jobsd_lib.kernel.retention import retention_policy
from jobsd_lib.refs import require_job_id

__all__ = ["GcResult", "collect_garbage", "GC_LISTED", "GC_BATCH"]

log = logging.getLogger("jobsd.gc")
GC_LISTED, GC_BATCH = 10_000, 2_000  # refs named in a gc answer; runs deleted per transaction


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
        keys = [(j, n) for _id, j, n in doomed]
        if dry_run:
            freed = await asyncio.to_thread(ctx.artifacts.sweep, keys, False)
            return GcResult(refs[:GC_LISTED], len(refs), freed, True)
        ids = [run_id for run_id, _j, _n in doomed]
        started = ctx.clock.monotonic()
        for start in range(0, len(ids), GC_BATCH):
            ctx.journal.delete_runs(ids[start:start + GC_BATCH])
            await asyncio.sleep(0)  # let RPCs and runs through between batches
        records = ctx.clock.monotonic() - started
        # The artifact thread may still hold writes for these runs (a skipped or missed run's
        # first line and receipt): they land before the folders go, never after.
        await ctx.artifacts.flushed()
        freed = await asyncio.to_thread(ctx.artifacts.sweep, keys, True)
        files = ctx.clock.monotonic() - started - records
        ctx.journal.record(DaemonGc(ts=ctx.clock.epoch(), job_id=job_id, actor=actor, removed=len(refs),
                                    bytes_freed=freed, keep_last=keep_last, older_than=older_than))
        log.info("gc by %s removed %d runs, %d bytes (records %.2fs, files %.2fs)", actor, len(refs), freed,
                 records, files)
        return GcResult(refs[:GC_LISTED], len(refs), freed, False)
