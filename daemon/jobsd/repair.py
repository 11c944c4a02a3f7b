"""Bringing run folders back in line with the store after writes failed (a full disk, a crash).

The store is the record; a run's folder (receipt, summary, events.jsonl, output index) is its
copy for people and tools. When a write of those files fails, the run is marked dirty
(Artifacts.failed); `repair_dirty` rewrites the dirty runs' folders once the store takes writes
again (checked every RETRY seconds by `keep_repairing`). At start-up `repair_all` checks every
finished run's folder that exists (Artifacts.stale: a directory listing, a stat and a small read
each, in a worker thread, after the daemon serves) and rewrites those that need it: dirty marks do not survive a
restart, and a daemon killed while the disk was full leaves such folders behind.

Active runs are left alone (their task writes their files); they are repaired once finished.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterable

from jobsd import clock
from jobsd.artifacts import Artifacts
from jobsd.store import Store

__all__ = ["repair_all", "repair_dirty", "keep_repairing", "RETRY"]

log = logging.getLogger("jobsd.repair")
RETRY = 5.0  # seconds between looks at the dirty runs


async def repair_all(store: Store, artifacts: Artifacts, spec_file: Callable[[str], str]) -> int:
    """Check the folder of every finished run that has one; rewrite those that disagree with the store."""
    started = clock.monotonic()
    checked, stale = await asyncio.get_running_loop().run_in_executor(None, _find_stale, store, artifacts)
    fixed = await _rewrite(store, artifacts, spec_file, stale)
    log.info("checked %d run folders in %.2f s: %d repaired", checked, clock.monotonic() - started, fixed)
    return fixed


def _find_stale(store: Store, artifacts: Artifacts) -> tuple[int, list[tuple[str, int]]]:
    """Worker thread: walk runs/<job>/<n>/ (the folders that exist, one job's ends in memory at a time)."""
    checked, stale = 0, []
    for job_id in _names(artifacts.runs_dir):
        folders = [int(name) for name in _names(os.path.join(artifacts.runs_dir, job_id)) if name.isdigit()]
        if not folders:
            continue
        ends = store.finished_ends(job_id)
        for n in folders:
            time.sleep(0)  # the GIL back to the event loop between folders (see Artifacts.sweep)
            if n in ends:
                checked += 1
                if artifacts.stale(job_id, n, ends[n]):
                    stale.append((job_id, n))
    return checked, stale


def _names(folder: str) -> list[str]:
    try:
        return sorted(entry.name for entry in os.scandir(folder) if entry.is_dir(follow_symlinks=False))
    except OSError:
        return []


async def repair_dirty(store: Store, artifacts: Artifacts, spec_file: Callable[[str], str]) -> int:
    """Rewrite the folders of dirty runs that have finished (and keep the others dirty)."""
    dirty = sorted(artifacts.dirty)
    artifacts.dirty.difference_update(dirty)
    return await _rewrite(store, artifacts, spec_file, dirty)


async def keep_repairing(store: Store, artifacts: Artifacts, spec_file: Callable[[str], str]) -> None:
    """Until cancelled: every RETRY seconds, repair the dirty runs if the store takes writes (and make
    the store's reserve again if it was given up)."""
    while True:
        await asyncio.sleep(RETRY)
        if artifacts.dirty and store.write_failure is None:
            try:
                await repair_dirty(store, artifacts, spec_file)
            except Exception:  # noqa: BLE001 - the next round tries again
                log.exception("repair of run folders failed")
        if store.write_failure is None:
            store.keep_reserve()


async def _rewrite(store: Store, artifacts: Artifacts, spec_file: Callable[[str], str],
                   refs: Iterable[tuple[str, int]]) -> int:
    fixed = 0
    for job_id, n in refs:
        run = store.get_run(job_id, n)
        if run is None:  # gc'd meanwhile
            continue
        if run.active:
            artifacts.dirty.add((job_id, n))
            continue
        try:
            await artifacts.done(f"run {run.ref}: repair", artifacts.rewrite, run, store.run_events(job_id, n),
                                 spec_file(job_id))
        except OSError as exc:
            log.error("run %s: cannot repair its folder yet: %s", run.ref, exc)
            artifacts.dirty.add((job_id, n))
            continue
        log.warning("run %s: folder brought in line with the store (receipt, summary, events, output index)", run.ref)
        fixed += 1
    return fixed
