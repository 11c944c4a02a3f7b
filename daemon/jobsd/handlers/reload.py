"""Reload (and SIGHUP): re-read the jobs directory and re-sync the timer."""
from __future__ import annotations

import logging

from jobsd.context import Context
from jobsd.handlers import dependency, notifications, overdue
from jobsd.catalog import Catalog, load_catalog
from jobsd_lib.facts import Actor, DaemonReloaded
from jobsd_lib.kernel.catalog import diff_catalogs

__all__ = ["load_specs", "sync_schedule", "reload"]

log = logging.getLogger("jobsd.reload")


def load_specs(ctx: Context) -> Catalog:
    ctx.catalog = load_catalog(ctx.paths.jobs_dir)
    for problems in ctx.catalog.invalid.values():
        for problem in problems:
            log.warning("invalid spec %s", problem)
    return ctx.catalog


def sync_schedule(ctx: Context) -> None:
    """Make the timer match the loaded specs (invalid specs keep their stored schedule)."""
    if ctx.timer is not None:
        ctx.timer.sync(ctx.catalog.specs.values(), keep=ctx.catalog.invalid)


def reload(ctx: Context, actor: Actor) -> tuple[list[str], list[str], list[str], Catalog]:
    """Returns (added, changed, removed, catalog): job ids whose file appeared, changed (content or
    validity) or disappeared."""
    before = ctx.catalog
    catalog = load_specs(ctx)
    ctx.pauses_changed.set()  # a paused job whose file came back may be due to resume
    diff = diff_catalogs(_digests(before), _digests(catalog))
    sync_schedule(ctx)
    dependency.mark_new(ctx, before)
    overdue.track(ctx)
    notifications.track(ctx)
    ctx.retention_changed.set()  # a [retention] may have changed: sweep now
    ctx.journal.record(DaemonReloaded(ts=ctx.clock.epoch(), actor=actor, added=tuple(diff.added),
                                      changed=tuple(diff.changed), removed=tuple(diff.removed),
                                      invalid=len(catalog.invalid)))
    log.info("reloaded specs: %d jobs (%d invalid); added %s, changed %s, removed %s", len(catalog.specs),
             len(catalog.invalid), diff.added or "none", diff.changed or "none", diff.removed or "none")
    dependency.check_all(ctx, before)  # a changed `after` may be complete already
    return diff.added, diff.changed, diff.removed, catalog


def _digests(catalog: Catalog) -> dict[str, str]:
    return {**{j: "invalid:" + repr(p) for j, p in catalog.invalid.items()},
            **{j: s.digest for j, s in catalog.specs.items()}}
