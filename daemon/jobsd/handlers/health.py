"""GetHealth: what the daemon is, how it is doing, and why it is degraded if it is."""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError

from jobsd import __version__
from jobsd.context import Context
from jobsd.handlers.jobs import state_of
from jobsd_lib.facts import iso
from jobsd_lib.kernel.states import JobState, RunState
from jobsd_lib.spec import SpecProblem

__all__ = ["HealthView", "HostView", "hosts", "get_health", "degraded", "job_counts", "scheduler_state"]


@dataclass(frozen=True)
class HealthView:
    version: str
    pid: int
    started_at: datetime
    uptime_seconds: float
    scheduler_state: str
    last_tick: datetime | None
    jobs: Counter                    # JobState -> count
    invalid_specs: list[tuple[str, SpecProblem]]
    runs_active: int
    runs_queued: int
    followers: int
    store_path: str
    store_bytes: int
    max_concurrent_runs: int
    warnings: list[str] = field(default_factory=list)
    degraded: list[str] = field(default_factory=list)
    host: str = ""
    labels: tuple[str, ...] = ()
    hosts: list[HostView] = field(default_factory=list)
    leader: str = ""


@dataclass(frozen=True)
class HostView:
    name: str
    labels: tuple[str, ...]
    pid: int
    started_at: float
    heartbeat_at: float
    heartbeat_age: float
    stopped: bool
    this_host: bool


def _dialect(ctx: Context, what: str, default: object) -> object:
    """What the SQL store's dialect says (`shared`, `hint`); `default` for a store without one (memory)."""
    return getattr(getattr(ctx.store, "dialect", None), what, default)


def leader_of(ctx: Context) -> str:
    """The host whose cron timer fires: a shared store's lease holder ("" while none holds it), else this one."""
    if _dialect(ctx, "shared", False):
        return ctx.store.lease_holder()
    return ctx.host.name if ctx.host else ""


def hosts(ctx: Context) -> list[HostView]:
    """Every host of a shared store (its rows), or this one alone (a SQLite or memory store)."""
    me = ctx.host
    if me is None:
        return []
    if not _dialect(ctx, "shared", False):
        now = ctx.clock.epoch()
        started = ctx.started_at.timestamp()
        return [HostView(me.name, me.labels, me.pid, started, now, 0.0, False, True)]
    return [HostView(r.name, r.labels, r.pid, r.started_at, r.heartbeat_at, r.age, r.stopped,
                     r.name == me.name and r.instance == me.instance) for r in ctx.store.hosts()]


def job_counts(ctx: Context) -> Counter[JobState]:
    """Jobs by state from the catalog and the operator states: one query, whatever the number of jobs."""
    operator = ctx.store.operator_states()
    return Counter(state_of(ctx, job_id, operator.get(job_id)) for job_id in ctx.catalog.ids())


def get_health(ctx: Context) -> HealthView:
    unreadable = ""
    try:
        counts, size, host_list, jobs = ctx.store.counts_by_state(), ctx.store.size_bytes(), hosts(ctx), job_counts(ctx)
        leader = leader_of(ctx)
    except SQLAlchemyError as exc:  # a PostgreSQL server gone: say so rather than fail the call
        counts, size, host_list, jobs, leader = {}, 0, [], Counter(), ""
        unreadable = f"the store cannot be read ({str(getattr(exc, 'orig', None) or exc).strip()})"
    timer = ctx.timer
    return HealthView(
        version=__version__, pid=os.getpid(), started_at=ctx.started_at,
        uptime_seconds=(ctx.clock.now() - ctx.started_at).total_seconds(), scheduler_state=scheduler_state(timer),
        last_tick=timer.last_tick if timer else None, jobs=jobs,
        invalid_specs=[(j, p) for j, ps in sorted(ctx.catalog.invalid.items()) for p in ps],
        runs_active=counts.get(RunState.RUNNING.value, 0) + counts.get(RunState.RETRYING.value, 0),
        runs_queued=counts.get(RunState.QUEUED.value, 0),
        followers=ctx.hub.followers, store_path=ctx.store.path, store_bytes=size,
        max_concurrent_runs=ctx.max_concurrent, warnings=[*ctx.warnings, *ctx.catalog.warnings],
        degraded=[*degraded(ctx), *filter(None, [unreadable])], host=ctx.host.name if ctx.host else "",
        labels=ctx.host.labels if ctx.host else (), hosts=host_list, leader=leader)


def degraded(ctx: Context) -> list[str]:
    """One sentence per reason the daemon is not fully working, for `daemon status`."""
    lines = []
    timer = ctx.timer
    for name, failure in (("store", ctx.store.write_failure), ("job store", timer.write_failure if timer else None)):
        if failure is not None:
            hint = _dialect(ctx, "hint", "free disk space") if name == "store" else "free disk space"
            lines.append(f"the {name} cannot be written since {iso(failure.since)} ({failure.cause}): {hint}; "
                         "runs cannot start meanwhile, and cron windows are recorded missed once it works")
    if held := len(ctx.held):
        lines.append(f"{held} cron window(s) wait to be recorded missed (the store could not be written)")
    if timer is not None and scheduler_state(timer) == "stalled":
        lines.append(f"the scheduler has not ticked for {timer.tick_age():.0f} s: cron windows are not handed "
                     "over (see the daemon log; under systemd the watchdog restarts jobsd)")
    return lines


def scheduler_state(timer) -> str:  # noqa: ANN001
    """running | paused | stopped, or `stalled`: APScheduler says running but has not ticked for
    STALE_AFTER seconds (its thread died or hangs; windows are not being handed over)."""
    if timer is None:
        return "stopped"
    state = timer.state
    return "stalled" if state == "running" and not timer.healthy() else state
