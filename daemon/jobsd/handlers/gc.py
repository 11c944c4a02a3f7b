"""CollectGarbage: remove finished runs' records and folders by retention rules (kernel.retention)."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from datetime import timedelta

from jobsd.context import Context
from jobsd.handlers.jobs import never_known
from jobsd_lib.errors import JobNotFound
from jobsd_lib.facts import SCHEDULER, Actor, DaemonGc
from jobsd_lib.kernel.retention import retention_policy, rules_for
from jobsd_lib.refs import require_job_id

__all__ = ["GcResult", "collect_garbage", "sweep", "keep_sweeping", "GC_LISTED", "GC_BATCH", "GC_PAUSE", "GC_CHECKPOINT",
           "GC_FOLDERS", "GC_REPORT", "RETENTION_EVERY"]

log = logging.getLogger("jobsd.gc")
GC_LISTED = 10_000  # refs named in a gc answer
GC_BATCH, GC_PAUSE = 100, 0.002  # runs deleted per transaction (~6-8 ms here), the least pause after each
# Deleting rows grows the WAL faster than the heartbeat's checkpoints (every few seconds) copy it
# back: past wal_autocheckpoint, the loop's own commit ran the checkpoint, ~170 ms each 1 % of
# batches. A passive checkpoint in a worker thread every GC_CHECKPOINT batches keeps it short.
GC_CHECKPOINT = 20
GC_FOLDERS = 200  # folders removed per worker-thread call: what a stopping jobsd waits for at most
GC_REPORT = 5_000  # folders reported removed per store write
RETENTION_EVERY = 3600.0  # seconds between two retention sweeps
SHARED_EVERY = 60.0  # a shared store: seconds between two looks for folders owed here (retention: RETENTION_EVERY)


@dataclass(frozen=True)
class GcResult:
    removed: list[str]    # run refs, at most GC_LISTED of them
    removed_count: int
    bytes_freed: int
    dry_run: bool


async def collect_garbage(ctx: Context, keep_last: int | None, older_than: float | None, job_id: str = "",
                          dry_run: bool = False, actor: Actor = Actor()) -> GcResult:
    """Active runs are never candidates. Records go first (see `_remove`), then folders off the
    loop. Events stay (the audit log); run numbers are never reused. With dry_run nothing changes.
    """
    if job_id:
        require_job_id(job_id)
    policy = retention_policy(keep_last, older_than, ctx.clock.epoch())
    if job_id and never_known(ctx, job_id):
        raise JobNotFound(job_id)
    async with ctx.gc_lock:
        doomed = await asyncio.to_thread(ctx.store.removable_runs, job_id, policy.keep_last, policy.cutoff)
        refs = [f"{j}/{n}" for _id, j, n in doomed]
        if dry_run:
            keys = [(j, n) for _id, j, n in doomed]
            freed = await asyncio.to_thread(ctx.artifacts.sweep, keys, False)
            return GcResult(refs[:GC_LISTED], len(refs), freed, True)
        freed = await _remove(ctx, doomed, DaemonGc(ts=0, job_id=job_id, actor=actor, removed=len(refs), bytes_freed=0,
                                                    keep_last=keep_last, older_than=older_than))
        return GcResult(refs[:GC_LISTED], len(refs), freed, False)


async def _remove(ctx: Context, doomed: list[tuple[int, str, int]], audit: DaemonGc) -> int:
    """Delete these runs' records, then their folders; record `audit` with the bytes freed (also
    when jobsd stops meanwhile: then with folders_left). The bytes freed.

    Records go in transactions of GC_BATCH runs, each followed by a pause as long as it held the
    loop (at least GC_PAUSE), so that RPCs and runs keep at least half of the loop during a large
    sweep, and a checkpoint off the loop every GC_CHECKPOINT; only the last transaction is synced,
    and it makes the others durable before any folder is touched. A run's record and its folder
    cannot go in one transaction: the store owes the folder (owed_folders) until it is gone,
    GC_FOLDERS at a time in a worker thread, so a stop or a kill between the two leaves a list
    that the next sweep finishes (`_owed`)."""
    ids, keys = [run_id for run_id, _j, _n in doomed], [(j, n) for _id, j, n in doomed]
    clock = ctx.clock
    started = clock.monotonic()
    deleted, freed, records, stopped = 0, [0], 0.0, False
    try:
        for start in range(0, len(ids), GC_BATCH):
            held = clock.monotonic()
            deleted += ctx.journal.delete_runs(ids[start:start + GC_BATCH], durable=start + GC_BATCH >= len(ids))
            await asyncio.sleep(max(clock.monotonic() - held, GC_PAUSE))
            if start // GC_BATCH % GC_CHECKPOINT == GC_CHECKPOINT - 1:
                await asyncio.to_thread(ctx.store.checkpoint)
        records = clock.monotonic() - started
        if ctx.own_host() is not None:  # a shared store: other hosts' folders stay owed until they remove them
            mine = set(ctx.store.owed_folders(ctx.own_host()))
            keys = [key for key in keys if key in mine]
        await _remove_folders(ctx, keys, freed)
    except asyncio.CancelledError:
        log.warning("gc by %s stopped with jobsd after %d of %d runs: %d run folders are left for the next start",
                    audit.actor, deleted, len(ids), len(ctx.store.owed_folders()))
        stopped = True
        raise
    finally:
        if deleted or not stopped:  # an operator's gc is audited even when it removed nothing
            left = len(ctx.store.owed_folders())
            ctx.journal.record(replace(audit, ts=clock.epoch(), removed=deleted, bytes_freed=freed[0],
                                       folders_left=left or None))
    log.info("gc by %s removed %d runs, %d bytes (records %.2fs, files %.2fs)", audit.actor, deleted, freed[0],
             records, clock.monotonic() - started - records)
    return freed[0]


async def _remove_folders(ctx: Context, keys: list[tuple[str, int]], freed: list[int]) -> None:
    """These runs' folders, GC_FOLDERS at a time in a worker thread, their bytes added to freed[0]
    as they go (so that a caller stopped meanwhile knows what went). They are reported removed
    (store.folders_removed) GC_REPORT at a time and when stopped: every write makes the next
    jobs list read the store again (Store._memoized), and a folder reported late is only looked
    for again (a missing folder costs a failed scandir)."""
    # The artifact thread may still hold writes for these runs (a skipped or missed run's
    # first line and receipt): they land before the folders go, never after.
    await ctx.artifacts.flushed()
    removed = reported = 0  # keys[:removed] are gone, keys[:reported] are reported so
    try:
        while removed < len(keys):
            freed[0] += await asyncio.to_thread(ctx.artifacts.sweep, keys[removed:removed + GC_FOLDERS], True)
            removed = min(removed + GC_FOLDERS, len(keys))
            if removed - reported >= GC_REPORT:
                ctx.journal.folders_removed(keys[reported:removed])
                reported = removed
    finally:
        if removed > reported:
            ctx.journal.folders_removed(keys[reported:removed])


async def _owed(ctx: Context) -> None:
    """Folders of runs whose records an earlier gc deleted but which it did not get to (jobsd was
    stopped or killed meanwhile; that gc's daemon.gc event, when it got to write one, says
    folders_left), or, on a shared store, of this host's runs whose records another host's gc
    deleted: removed now. Logged; no new event, the runs' removal was that gc's."""
    owed = ctx.store.owed_folders(ctx.own_host())
    if owed:
        started, freed = ctx.clock.monotonic(), [0]
        await _remove_folders(ctx, owed, freed)
        log.info("gc: removed %d run folders an earlier gc left, %d bytes (%.2fs)", len(owed), freed[0],
                 ctx.clock.monotonic() - started)


async def sweep(ctx: Context, retention: bool = True) -> int:
    """Retention by policy (DESIGN 11): each job's `[retention]`, else the daemon's default
    (kernel.retention.rules_for), through the same code as `gc`; one daemon.gc event (actor
    scheduler, policy retention) when it removed anything. Returns how many runs went. Without
    `retention`, or on a shared store's host that does not lead, only the folders owed here."""
    default_keep, default_age = ctx.retention
    now, own = ctx.clock.epoch(), {}
    for job_id, spec in ctx.catalog.specs.items():
        r = spec.retention
        if r.keep_last is not None or r.older_than is not None:
            own[job_id] = rules_for(r.keep_last, r.older_than, default_keep, default_age)
    async with ctx.gc_lock:
        await _owed(ctx)
        if not retention or not ctx.leads():  # a shared store: the leader applies retention to every host's runs
            return 0
        doomed = []
        for job_id, (keep, age) in sorted(own.items()):
            policy = retention_policy(keep, age, now)
            doomed += await asyncio.to_thread(ctx.store.removable_runs, job_id, policy.keep_last, policy.cutoff)
        if rules_for(None, None, default_keep, default_age) is not None:  # every other job, gone ones too
            policy = retention_policy(default_keep, default_age, now)
            doomed += [d for d in await asyncio.to_thread(ctx.store.removable_runs, "", policy.keep_last, policy.cutoff)
                       if d[1] not in own]
        if not doomed:
            return 0
        await _remove(ctx, doomed, DaemonGc(ts=0, actor=SCHEDULER, removed=len(doomed), bytes_freed=0,
                                            keep_last=default_keep, older_than=default_age, policy=True))
        return len(doomed)


async def keep_sweeping(ctx: Context, after: asyncio.Future | None = None) -> None:
    """`sweep` at start-up, after every reload (ctx.retention_changed) and every RETENTION_EVERY seconds
    (on a shared store every SHARED_EVERY seconds: the folders other hosts' sweeps left this one).

    The first sweep waits for `after` (the start-up repair walk) to end, however it ends: the two
    would contend for the disk and the GIL (jobs list answered up to 7x slower than idle with both),
    and the walk could rewrite the folder of a run the sweep had just removed, leaving a folder no
    record names."""
    if after is not None:
        await asyncio.wait([after])
    last = None  # monotonic time of the last sweep that applied retention
    while True:
        due = (last is None or ctx.retention_changed.is_set()
               or ctx.clock.monotonic() - last >= RETENTION_EVERY - 1)
        ctx.retention_changed.clear()
        if due:
            last = ctx.clock.monotonic()
        try:
            await sweep(ctx, retention=due)
        except Exception:  # noqa: BLE001 - a full disk, a bug: the next sweep tries again; keep serving
            log.exception("retention sweep failed")
        every = RETENTION_EVERY if ctx.lease is None else SHARED_EVERY
        await ctx.clock.wait_until(ctx.clock.now() + timedelta(seconds=every), ctx.retention_changed)
