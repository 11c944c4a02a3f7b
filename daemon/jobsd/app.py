"""The composition root: lock -> store -> specs -> heartbeat -> reconcile -> scheduler -> server;
stop in reverse.

`run(options)` is the whole life of a daemon and returns its exit code.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import DatabaseError

from jobsd import lock as store_lock
from jobsd.artifacts import Artifacts
from jobsd.folders import UnsafeFolder, check_folders, make_folder
from jobsd.health import Heartbeat, health
from jobsd.notify import Notifier
from jobsd.output import Channel, Hub
from jobsd.repair import keep_repairing, repair_all
from jobsd.runner import Runner
from jobsd.scheduler import CronScheduler
from jobsd.server import SocketError, build_server, prepare_socket_path, set_serving
from jobsd.service import Paths, Service
from jobsd.store import StoreCorrupt, open_store
from jobsd_lib.errors import StoreLocked
from jobsd_lib.paths import check_socket_path, default_home

__all__ = ["Options", "resolve_paths", "run"]

log = logging.getLogger("jobsd")


@dataclass(frozen=True)
class Options:
    home: str | None = None
    jobs_dir: str | None = None
    state_dir: str | None = None
    socket: str | None = None
    socket_group: str | None = None
    max_concurrent_runs: int = 4


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
                 store_file=os.path.join(db, "jobsd.sqlite3"))


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


async def _serve_locked(opts: Options, paths: Paths, warnings: tuple[str, ...] = ()) -> int:
    notifier = Notifier.from_environ()
    store = open_store(paths.store_file)
    hub, events_changed = Hub(), Channel()
    artifacts = Artifacts(paths.runs_dir)
    runner = Runner(store, artifacts, hub, events_changed, opts.max_concurrent_runs, dict(os.environ))
    service = Service(paths, store, runner, artifacts, hub, events_changed)
    heartbeat = Heartbeat(store, events_changed)
    scheduler: CronScheduler | None = None
    try:
        prepare_socket_path(paths.socket)  # may refuse: before the heartbeat, or the next start says "unclean"
        service.load_specs()
        heartbeat.start()  # daemon.started (down since the last heartbeat) before what reconciling records
        service.reconcile_interrupted()
        # The store lock is held: only now may the scheduler open its job store. Start it paused,
        # touch only changed jobs, then resume (PITFALLS 2).
        scheduler = CronScheduler(paths.db_dir, asyncio.get_running_loop(), service.on_fire,
                                  on_drop=lambda job_id, windows: _record_dropped(service, job_id, windows))
        heartbeat.scheduler = scheduler
        try:
            scheduler.start_paused()
            service.scheduler = scheduler
            service.sync_schedule()
        except DatabaseError as exc:  # APScheduler's own SQLite file: refuse like for our store, never reset it
            raise StoreCorrupt(f"{scheduler.path}: {exc.orig or exc}") from None
        scheduler.resume()
        server, health_servicer = build_server(service, paths.socket,
                                               lambda: health(service, opts.max_concurrent_runs, warnings),
                                               opts.socket_group)
        await server.start()
        await set_serving(health_servicer, True)
        log.info("jobsd ready: %d jobs (%d invalid), socket %s, state %s", len(service.catalog.specs),
                 len(service.catalog.invalid), paths.socket, paths.state_dir)
        notifier.ready(f"serving {len(service.catalog.specs)} jobs on {paths.socket}")
        beating = asyncio.ensure_future(heartbeat.run())
        repairing = [asyncio.ensure_future(repair_all(store, artifacts, service.spec_file)),
                     asyncio.ensure_future(keep_repairing(store, artifacts, service.spec_file))]
        await _until_stopped(notifier, lambda: _reload(service, notifier), scheduler.healthy)
        for task in (beating, *repairing):
            task.cancel()
        notifier.stopping("stopping: ending active runs")
        await set_serving(health_servicer, False)
        scheduler.pause()  # no new firings while runs are stopped; shut down after them (PITFALLS 8)
        scheduler.accepting = False
        await runner.shutdown(grace=max([s.kill_grace for s in service.catalog.specs.values()], default=10) + 5)
        _record_held(service)
        scheduler.shutdown()
        hub.close_all()
        events_changed.close()
        await server.stop(grace=2)
        heartbeat.stop()  # the last record says "stopped cleanly": the next start reports it
        log.info("jobsd stopped")
        return 0
    finally:
        if scheduler is not None:
            scheduler.shutdown()
        artifacts.close()  # what runs' files are still queued
        store.close()


def _reload(service: Service, notifier: Notifier) -> None:
    """SIGHUP: re-read the jobs directory (systemctl reload). Invalid files are reported, never fatal."""
    notifier.reloading(int(time.monotonic() * 1e6))
    try:
        _added, _changed, _removed, catalog = service.reload(actor="SIGHUP")
    except Exception:  # noqa: BLE001 - a failed reload must not kill the daemon
        log.exception("reload failed")
        catalog = service.catalog
    notifier.ready(f"serving {len(catalog.specs)} jobs")


def _record_dropped(service: Service, job_id: str, windows: list[datetime]) -> None:
    """Cron windows APScheduler handed over while the daemon stops: `missed`, never silently lost."""
    for window in windows:
        service.record_missed(job_id, window, f"missed: due {window.isoformat()}, jobsd was stopping")


def _record_held(service: Service) -> None:
    """A last try at the windows held while the store refused writes (held.py)."""
    service.held_windows.flush()
    service.held_windows.cancel()  # no retry armed by that flush outlives the loop
    if held := len(service.held_windows):
        log.error("%d cron window(s) could not be recorded missed (the store still refuses writes); the job "
                  "store had not moved past them either, so the next start hands them over again", held)


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
