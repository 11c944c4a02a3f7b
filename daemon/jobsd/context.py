"""The explicit context every verb's handler works on (handlers/), built once by the composition
root (app.py): what the daemon is made of, and nothing that decides anything."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from jobsd.artifacts import Artifacts
from jobsd.clock import Clock
from jobsd.expect import OverdueState
from jobsd.held import HeldWindows
from jobsd.journal import Journal
from jobsd.leadership import Leadership
from jobsd.output import Channel, Hub
from jobsd.runner import Runner
from jobsd.catalog import Catalog
from jobsd.store import Store
from jobsd.store_hosts import ThisHost
from jobsd.timer import Timer

if TYPE_CHECKING:
    from jobsd.metrics import Metrics

__all__ = ["Context", "Paths"]


@dataclass(frozen=True)
class Paths:
    jobs_dir: str
    state_dir: str
    db_dir: str
    runs_dir: str
    socket: str
    lock_file: str
    store_file: str
    credentials_dir: str = ""  # runs' credentials (job_files.py): beside the socket, on tmpfs under /run


@dataclass
class Context:
    """Reads go to `store`, `catalog` and `timer`; every record is written through `journal`; active
    runs are carried out by `runs`. `catalog` is replaced as a whole on reload."""
    paths: Paths
    store: Store
    clock: Clock
    journal: Journal
    runs: Runner
    artifacts: Artifacts
    hub: Hub                   # each active run's "more output or a new step" channel, and follower count
    events: Channel            # bumped after every recorded fact (WatchEvents)
    held: HeldWindows          # cron windows that came while the store refused writes
    timer: Timer | None = None  # the cron adapter; None in tests that need no cron
    catalog: Catalog = field(default_factory=Catalog)
    started_at: datetime | None = None
    max_concurrent: int = 4
    warnings: tuple[str, ...] = ()  # what the start-up checks found and let pass
    fired: set[str] = field(default_factory=set)  # jobs that fired since start-up (catch_up applies once)
    gc_lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one gc at a time
    pauses_changed: asyncio.Event = field(default_factory=asyncio.Event)  # wakes auto_resume (handlers/operator.py)
    overdue: OverdueState = field(default_factory=OverdueState)  # handlers/overdue.py
    # job -> ts of its newest success: read once at start-up (Store.last_success_times), then kept by
    # a RunFinished subscriber (app.build_context); the overdue watch and the metrics read it
    last_success: dict[str, float] = field(default_factory=dict)
    retention: tuple[int | None, float | None] = (None, None)  # the daemon's default (keep_last, older_than)
    retention_changed: asyncio.Event = field(default_factory=asyncio.Event)  # a reload: sweep again now
    notify_command: tuple[str, ...] = ()  # jobsd --notify-command: for jobs without [notify] command
    notify_failures: dict[str, int] = field(default_factory=dict)  # job -> failures in a row (handlers/notifications.py)
    notify_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(4))
    notify_tasks: set = field(default_factory=set)  # notify commands under way
    host: ThisHost | None = None  # --host-name and --labels
    lease: Leadership | None = None  # a shared store's scheduler lease; None: this jobsd is the store's only one
    metrics: Metrics = field(init=False)  # what the metrics read and keep: made with the context (__post_init__)

    def __post_init__(self) -> None:
        from jobsd.metrics import Metrics  # it reads the context it is made for: jobsd.metrics imports this module

        self.metrics = Metrics(self)

    def leads(self) -> bool:
        """Whether this jobsd does the store's cluster-wide duties now (DESIGN 12): cron windows, the
        overdue watch, auto-resume, and recording dead hosts' runs. Always, on a store of its own."""
        return self.lease is None or self.lease.holding

    def own_host(self) -> str | None:
        """The host whose runs this jobsd carries out and reconciles: its name on a shared store,
        None (every run) on a store of its own."""
        return None if self.lease is None or self.host is None else self.host.name

    def spec_file(self, job_id: str) -> str:
        spec = self.catalog.specs.get(job_id)
        return spec.file if spec else ""

    def run_dir(self, run) -> str:  # noqa: ANN001 - a RunRow
        return self.artifacts.run_dir(run.job_id, run.n)
