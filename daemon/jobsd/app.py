"""The composition root: lock -> store -> parts (_wire) -> specs -> heartbeat -> reconcile ->
scheduler -> server; stop in reverse.

`run(options)` is the whole life of a daemon and returns its exit code.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.exc import DatabaseError

from jobsd import lock as store_lock
from jobsd.artifacts import Artifacts
from jobsd.bus import Bus
from jobsd.clock import SYSTEM, Clock
from jobsd.context import Context, Paths
from jobsd.folders import UnsafeFolder, check_folders, make_folder
from jobsd.handlers.fire import on_fire, record_dropped, record_held, record_missed
from jobsd.handlers import dependency, hosts, notifications, overdue
from jobsd.handlers.gc import keep_sweeping
from jobsd.metrics import serve_http, write_textfile
from jobsd.handlers.operator import auto_resume
from jobsd.handlers.reconcile import reconcile_active
from jobsd.handlers.reload import load_specs, reload, sync_schedule
from jobsd.heartbeat import Heartbeat
from jobsd.held import HeldWindows
from jobsd.job_files import JobFiles
from jobsd.journal import Journal
from jobsd.leadership import Leadership
from jobsd.notify import Notifier
from jobsd.output import Channel, Hub
from jobsd.repair import keep_repairing, repair_all
from jobsd.runner import Runner
from jobsd.scheduler import CronScheduler
from jobsd.server import SocketError, build_server, prepare_socket_path, set_serving
from jobsd.store import Store, StoreCorrupt, open_store
from jobsd.store_hosts import ThisHost
from jobsd_lib.errors import StoreLocked
from jobsd_lib.facts import Actor, JobOverdue, RunFact, RunFinished, RunStarted
from jobsd_lib.kernel.states import RunState
from jobsd_lib.paths import check_socket_path, default_home

__all__ = ["Options", "resolve_paths", "run", "build_context"]

log = logging.getLogger("jobsd")


@dataclass(frozen=True)
class Options:
    home: str | None = None
    jobs_dir: str | None = None
    state_dir: str | None = None
    socket: str | None = None
    socket_group: str | None = None
    max_concurrent_runs: int = 4
    retention: tuple[int | None, float | None] = (None, None)  # --retention-keep-last, --retention-older-than
    notify_command: tuple[str, ...] = ()  # --notify-command, split like a shell would (shlex)
    metrics_listen: tuple[str, int] | None = None  # --metrics-listen HOST:PORT
    metrics_textfile: str | None = None  # --metrics-textfile PATH
    store: str = ""  # --store / $JOBSD_STORE: a PostgreSQL URL; "" for the SQLite file in db/
    host_name: str = ""  # --host-name (default the hostname)
    labels: tuple[str, ...] = ()  # --labels


def _home(opts: Options, environ: dict[str, str]) -> str:
    return os.path.abspath(opts.home or default_home(environ, os.path.expanduser("~")))


def resolve_paths(opts: Options, environ: dict[str, str]) -> Paths:
    home = _home(opts, environ)
    state = os.path.abspath(opts.state_dir or home)
    socket = opts.socket or environ.get("JOBSD_SOCKET") if not opts.home else opts.socket
    socket = os.path.abspath(socket or os.path.join(home, "jobsd.sock"))
    db = os.path.join(state, "db")
    return Paths(jobs_dir=os.path.abspath(opts.jobs_dir or os.path.join(home, "jobs")), state_dir=state, db_dir=db,
                 runs_dir=os.path.join(state, "runs"), socket=socket, lock_file=os.path.join(db, "jobsd.lock"),
                 store_file=os.path.join(db, "jobsd.sqlite3"),
                 credentials_dir=os.path.join(os.path.dirname(socket), "credentials"))


def run(opts: Options) -> int:
    try:
        return asyncio.run(_serve(opts))
    except (StoreLocked, StoreCorrupt, SocketError, UnsafeFolder, OSError) as exc:
        log.error("cannot start: %s", exc)
        return 1


async def _serve(opts: Options) -> int:
    paths = resolve_paths(opts, dict(os.environ))
    problem = check_socket_path(paths.socket)
    if problem:
        raise SocketError(problem)
    for folder in (paths.db_dir, paths.runs_dir):
        make_folder(folder)
    warnings = check_folders(_state_folders(_home(opts, dict(os.environ)), paths))  # before the lock file in db/
    for warning in warnings:
        log.warning("%s", warning)
    lock = store_lock.acquire(paths.lock_file, paths.socket)  # before the store and the socket
    try:
        return await _serve_locked(opts, paths, tuple(warnings))
    finally:
        lock.release()


def _state_folders(home: str, paths: Paths) -> list[tuple[str, str, bool]]:
    """(label, folder, may its group write it) for the start-up check: the home only when something
    jobsd uses is directly in it (docs/operations.md, "Folder permissions")."""
    used = home in (paths.state_dir, *map(os.path.dirname, (paths.state_dir, paths.jobs_dir, paths.socket)))
    return [("home folder", home, True)] * used + [
        ("state folder", paths.state_dir, True), ("db folder", paths.db_dir, False),
        ("runs folder", paths.runs_dir, False)]


def build_context(paths: Paths, store: Store, clock: Clock = SYSTEM, max_concurrent: int = 4,
                  environ: dict[str, str] | None = None, warnings: tuple[str, ...] = (),
                  loop: asyncio.AbstractEventLoop | None = None, retention: tuple[int | None, float | None] = (None, None),
                  notify_command: tuple[str, ...] = (), host: ThisHost | None = None) -> Context:
    """The daemon's parts, each given what it needs; with `loop`, the cron timer too (its callbacks,
    the held windows' and the bus subscribers' reach the context they are built into when they are
    called, never before; the context makes its Metrics itself). `retention` and `notify_command`
    are the daemon's defaults (Options). Tests build in-process daemons with it (no timer, their own
    store and clock)."""
    hub, events, bus = Hub(), Channel(), Bus()
    bus.subscribe(lambda fact: events.bump())  # WatchEvents

    def wake_followers(fact: RunFact) -> None:  # Tail followers of the run
        channel = hub.get(fact.run_ref)
        if channel is not None:
            channel.bump()

    bus.subscribe(wake_followers, RunFact)
    def note_success(fact: RunFinished) -> None:  # before the subscribers below read it
        if fact.state is RunState.SUCCEEDED:
            ctx.last_success[fact.job_id] = fact.ts

    bus.subscribe(note_success, RunFinished)
    bus.subscribe(lambda fact: dependency.on_finished(ctx, fact), RunFinished)  # `after` chains
    bus.subscribe(lambda fact: overdue.on_finished(ctx, fact), RunFinished)  # `[expect] success_within`
    bus.subscribe(lambda fact: notifications.on_finished(ctx, fact), RunFinished)  # `[notify]`
    bus.subscribe(lambda fact: notifications.on_overdue(ctx, fact), JobOverdue)
    bus.subscribe(lambda fact: runner.gates_changed(), RunStarted, RunFinished)  # `[[requires]]` waits
    artifacts = Artifacts(paths.runs_dir)
    journal = Journal(store, artifacts, bus, clock, host.name if host else "")
    runner = Runner(journal, hub, clock, max_concurrent, dict(os.environ) if environ is None else environ,
                    JobFiles(paths.state_dir, paths.credentials_dir))
    timer = None if loop is None else CronScheduler(
        paths.db_dir, loop, lambda job_id, windows: on_fire(ctx, job_id, windows),
        on_drop=lambda job_id, windows: record_dropped(ctx, job_id, windows))
    held = HeldWindows(lambda job_id, window, reason: record_missed(ctx, job_id, window, reason))
    ctx = Context(paths, store, clock, journal, runner, artifacts, hub, events, held, timer=timer,
                  started_at=clock.now(), max_concurrent=max_concurrent, warnings=warnings, retention=retention,
                  notify_command=notify_command, host=host)
    bus.subscribe(ctx.metrics.on_finished, RunFinished)  # runs_total, last success, durations
    return ctx


def join_host(store: Store, host: ThisHost) -> None:
    """Hold this host's name in a shared store, or refuse the start (StoreLocked) naming its holder."""
    with store.write():
        holder = store.join_host(host)
    if holder is not None:
        raise StoreLocked(f"the host name {host.name} is taken by a live jobsd on another machine (pid "
                          f"{holder.pid}, machine id {holder.machine_id[:8]}, heartbeat {holder.age:.0f} s ago): "
                          "give this one another --host-name, or stop that one")


async def _serve_locked(opts: Options, paths: Paths, warnings: tuple[str, ...] = ()) -> int:
    notifier = Notifier.from_environ()
    store = open_store(opts.store or paths.store_file)
    ctx: Context | None = None
    try:
        host = ThisHost.make(opts.host_name or socket.gethostname(), opts.labels)
        ctx = build_context(paths, store, SYSTEM, opts.max_concurrent_runs, warnings=warnings,
                            loop=asyncio.get_running_loop(), retention=opts.retention,
                            notify_command=opts.notify_command, host=host)
        shared = store.dialect.shared
        lease = Leadership(store, ctx.timer, host, ctx.clock) if shared else None  # only its holder fires windows
        ctx.lease = lease
        heartbeat = Heartbeat(ctx.journal, ctx.clock, ctx.timer, host=host if shared else None, lease=lease)
        if shared:
            if why := heartbeat.claim():
                raise StoreLocked(why)
            join_host(store, host)
        prepare_socket_path(paths.socket)  # may refuse: before the heartbeat, or the next start says "unclean"
        load_specs(ctx)
        restart = heartbeat.start()  # daemon.started (down since the last heartbeat) before what reconciling records
        ctx.runs.files.clear_leftovers()  # credentials of runs a killed jobsd left (no run has started yet)
        reconcile_active(ctx)
        hosts.stop_taken_over(ctx, restart.down_since if restart else None)  # a shared store's leader closed them
        ctx.last_success = ctx.store.last_success_times()
        overdue.track(ctx)
        notifications.track(ctx)
        ctx.metrics.load()
        dependency.mark_new(ctx, None)
        if lease is None:
            dependency.check_all(ctx)  # an upstream that succeeded just before the last stop starts its downstream now
        else:
            lease.on_change.append(lambda leads: _took_the_lead(ctx) if leads else None)
        # The store lock is held: only now may the scheduler open its job store. Start it paused,
        # touch only changed jobs, then resume (PITFALLS 2).
        try:
            ctx.timer.start_paused()
            sync_schedule(ctx)
        except DatabaseError as exc:  # APScheduler's own SQLite file: refuse like for our store, never reset it
            raise StoreCorrupt(f"{ctx.timer.path}: {exc.orig or exc}") from None
        if lease is None:
            ctx.timer.resume()
        else:
            lease.tick()  # resumes the timer if this host leads (else at a later heartbeat)
        return await _serve_ready(ctx, heartbeat, notifier, opts)
    finally:
        if ctx is not None:
            ctx.timer.shutdown()
            ctx.artifacts.close()  # what runs' files are still queued
        store.close()


async def _serve_ready(ctx: Context, heartbeat: Heartbeat, notifier: Notifier, opts: Options) -> int:
    paths = ctx.paths
    http = None
    if opts.metrics_listen is not None:  # first: a port that is taken refuses the start (exit 1)
        http = await serve_http(ctx.metrics, *opts.metrics_listen)
    server, health_servicer = build_server(ctx, paths.socket, opts.socket_group)
    await server.start()
    textfile = opts.metrics_textfile
    await set_serving(health_servicer, True)
    log.info("jobsd ready: %d jobs (%d invalid), socket %s, state %s", len(ctx.catalog.specs),
             len(ctx.catalog.invalid), paths.socket, paths.state_dir)
    notifier.ready(f"serving {len(ctx.catalog.specs)} jobs on {paths.socket}")
    repairing = asyncio.ensure_future(repair_all(ctx.store, ctx.artifacts, ctx.spec_file))
    background = [asyncio.ensure_future(heartbeat.run()),
                  *([asyncio.ensure_future(write_textfile(ctx.metrics, textfile))] if textfile else []),
                  repairing,
                  asyncio.ensure_future(keep_repairing(ctx.store, ctx.artifacts, ctx.spec_file)),
                  asyncio.ensure_future(auto_resume(ctx)),  # pauses with --until, also ones that ended while down
                  asyncio.ensure_future(overdue.watch(ctx)),  # at once: a deadline may have passed while down
                  asyncio.ensure_future(keep_sweeping(ctx, after=repairing)),  # retention, once the walk is done
                  *([asyncio.ensure_future(hosts.watch_hosts(ctx))] if ctx.lease is not None else [])]
    await _until_stopped(notifier, lambda: _reload(ctx, notifier), ctx.timer.healthy)
    for task in background:
        task.cancel()
    notifier.stopping("stopping: ending active runs")
    await set_serving(health_servicer, False)
    ctx.timer.pause()  # no new firings while runs are stopped; shut down after them (PITFALLS 8)
    ctx.timer.accepting = False
    await ctx.runs.shutdown(grace=max([s.kill_grace for s in ctx.catalog.specs.values()], default=10) + 5)
    record_held(ctx)
    await notifications.drain(ctx)  # the last notify commands (about the runs just stopped, too), bounded
    ctx.timer.shutdown()
    ctx.hub.close_all()
    ctx.events.close()
    if http is not None:
        http.close()
    await server.stop(grace=2)
    heartbeat.stop()  # the last record says "stopped cleanly": the next start reports it
    log.info("jobsd stopped")
    return 0


def _took_the_lead(ctx: Context) -> None:
    """A shared store's new leader: the cluster's duties wake up here (DESIGN 12), and the chains
    whose upstream succeeded while no host led start now."""
    ctx.overdue.changed.set()
    ctx.pauses_changed.set()
    ctx.retention_changed.set()
    try:
        dependency.check_all(ctx)
    except Exception:  # noqa: BLE001 - the next success of an upstream checks again
        log.exception("the dependency check on taking the lead failed")


def _reload(ctx: Context, notifier: Notifier) -> None:
    """SIGHUP: re-read the jobs directory (systemctl reload). Invalid files are reported, never fatal."""
    notifier.reloading(int(SYSTEM.monotonic() * 1e6))  # systemd's CLOCK_MONOTONIC, whatever clock the context has
    try:
        catalog = reload(ctx, Actor("SIGHUP"))[3]
    except Exception:  # noqa: BLE001 - a failed reload must not kill the daemon
        log.exception("reload failed")
        catalog = ctx.catalog
    notifier.ready(f"serving {len(catalog.specs)} jobs")


async def _until_stopped(notifier: Notifier, on_reload, healthy: Callable[[], bool]) -> None:  # noqa: ANN001
    loop, stop = asyncio.get_running_loop(), asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, on_reload)
    watchdog = asyncio.ensure_future(_watchdog(notifier, healthy)) if notifier.watchdog_interval else None
    await stop.wait()
    log.info("stop requested")
    if watchdog:
        watchdog.cancel()


async def _watchdog(notifier: Notifier, healthy: Callable[[], bool]) -> None:
    """WATCHDOG=1 at half of WATCHDOG_USEC, only while `healthy()` (the scheduler runs and ticks, or
    is paused on purpose). A blocked event loop or a dead or stuck scheduler thread stops the pings,
    and systemd restarts the daemon, as it should. health.Heartbeat logs the change."""
    while True:
        if healthy():
            notifier.watchdog()
        await asyncio.sleep(notifier.watchdog_interval)
