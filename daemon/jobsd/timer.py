"""The timer port: what the daemon needs from the adapter that turns cron schedules into firings.

`jobsd.scheduler.CronScheduler` (APScheduler 3.x) is the implementation; anything that keeps the
contract below can take its place (a fake in ops tests, APScheduler 4 later). Like APScheduler's own
base classes, the docstrings are the contract.

Firings: the timer is built with two callbacks, both called on the event-loop thread, one firing at
a time, in the order the firings arrived (`FireCallback`):
- `on_fire(job_id, windows)`: due windows of one scheduled job, ascending as UTC instants, never
  empty, each after every window this timer handed over for that job before (since the job's
  schedule last changed in `sync`): at most once in one daemon's life. A window is handed over after
  the timer has stored that it moved past it, so a restart hands it over again only when that write
  was lost or could not be made (a power cut, a full disk); the service then drops the windows it
  has records of. The kernel (`jobsd_lib.kernel.fire`) decides what each window becomes.
- `on_drop(job_id, windows)`: the same, for firings that arrive once `accepting` is False
  (shutdown): recorded `missed`, never silently lost.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from jobsd.store import WriteFailure
    from jobsd_lib.spec import JobSpec

__all__ = ["Timer", "SyncResult", "FireCallback"]

FireCallback = Callable[[str, list[datetime]], None]  # (job id, due windows): see the module docstring


@dataclass
class SyncResult:
    """What `Timer.sync` changed: job ids, each list sorted."""
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0


class Timer(Protocol):
    """The cron timer, as the daemon uses it. Called from the event-loop thread, except `checkpoint`."""

    path: str
    """Where the timer keeps its schedule (named in errors: a corrupt store is refused, never reset)."""

    accepting: bool
    """True until the daemon stops taking firings; after it is set False, firings go to `on_drop`."""

    @property
    def last_tick(self) -> datetime | None:
        """When (aware UTC) the timer last showed it is alive: a firing or its own heartbeat; None
        before the first."""

    @property
    def state(self) -> str:
        """"running", "paused" or "stopped"."""

    @property
    def write_failure(self) -> WriteFailure | None:
        """Since when and why the timer's store cannot be written (None: it can). While it fails the
        timer keeps handing windows over and retries; a window is never handed over twice."""

    def start_paused(self) -> None:
        """Open the store and start, paused: no firing until `resume`. Call once, before `sync`.
        Raises sqlalchemy.exc.DatabaseError when the store is not a valid database."""

    def resume(self) -> None:
        """Start handing over firings, the windows that came due while paused or down included.
        Call after `start_paused`."""

    def pause(self) -> None:
        """Stop handing over firings (no-op unless running); due windows wait, none is lost."""

    def shutdown(self) -> None:
        """Stop for good, without waiting: `accepting` becomes False. Safe to call more than once and
        before `start_paused`."""

    def healthy(self) -> bool:
        """True while running and it ticked within its stall limit, or while paused on purpose
        (start-up, shutdown). False when its thread died or hangs (the systemd watchdog's gate)."""

    def tick_age(self) -> float:
        """Seconds on the monotonic clock since the timer last showed it is alive."""

    def kick_heartbeat(self) -> None:
        """The wall clock was set back: tick now rather than wait out the jump (no-op unless running)."""

    def checkpoint(self) -> None:
        """Make the store's committed writes durable (fsync). Blocking: call it off the event loop."""

    def sync(self, specs: Iterable[JobSpec], keep: Iterable[str] = ()) -> SyncResult:
        """Make the stored schedules match the specs that have a [schedule]: add missing ones, replace
        changed ones, remove those without a spec, except ids in `keep` (e.g. invalid specs, whose
        windows keep firing). An unchanged schedule is left as it is: its pending windows (those
        missed while down) are still handed over. All or nothing. Call after `start_paused`."""

    def next_run_at(self, job_id: str) -> datetime | None:
        """The job's next stored window (aware UTC); None for no such job, or when not running."""

    def all_next_run_times(self) -> dict[str, datetime]:
        """Every stored job's next window (aware UTC), by job id; empty when not running."""
