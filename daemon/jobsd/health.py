"""GetHealth's answer, assembled from the daemon's parts."""
from __future__ import annotations

import os

from jobsd import __version__, clock
from jobsd.api.convert import problem_pb, ts
from jobsd.service import Service
from jobsd_lib.kernel.states import JobState
from jobsd_lib.rpc import jobsd_pb2 as pb

__all__ = ["health"]


def health(service: Service, max_concurrent: int) -> pb.Health:
    views = service.list_jobs()
    by_state = {state: sum(1 for v in views if v.state is state) for state in JobState}
    counts = service.store.counts_by_state()
    scheduler = service.scheduler
    message = pb.Health(
        version=__version__, pid=os.getpid(), lock_file=service.paths.lock_file, socket=service.paths.socket,
        uptime_seconds=(clock.now() - service.started_at).total_seconds(),
        scheduler_state=scheduler.state if scheduler else "absent",
        jobs_active=by_state[JobState.ACTIVE], jobs_paused=by_state[JobState.PAUSED],
        jobs_disabled=by_state[JobState.DISABLED], jobs_invalid=by_state[JobState.INVALID],
        invalid_specs=[problem_pb(j, p) for j, ps in sorted(service.catalog.invalid.items()) for p in ps],
        runs_active=counts.get("running", 0) + counts.get("retrying", 0), runs_queued=counts.get("queued", 0),
        followers=service.hub.followers, store_path=service.store.path, store_bytes=service.store.size_bytes(),
        max_concurrent_runs=max_concurrent, jobs_dir=service.paths.jobs_dir, state_dir=service.paths.state_dir)
    message.started_at.CopyFrom(ts(service.started_at))
    last_tick = scheduler.last_tick if scheduler else None
    if last_tick is not None:
        message.last_tick.CopyFrom(ts(last_tick))
    return message
