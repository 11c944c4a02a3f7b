"""Start-up: runs a dead daemon left active become `interrupted`; their leftover processes are stopped."""
from __future__ import annotations

import logging
import os

from jobsd.context import Context
from jobsd.output import log_path
from jobsd.processes import kill_leftovers
from jobsd.store import RunRow

__all__ = ["reconcile_interrupted"]

log = logging.getLogger("jobsd.reconcile")


def reconcile_interrupted(ctx: Context) -> list[RunRow]:
    fixed = []
    for run in ctx.store.active_runs():
        kill_leftovers(run.ref, run.pgid, run.attempt_list)
        reason = f"jobsd stopped while the run was {run.state.value}"
        folder = ctx.run_dir(run)
        updated = ctx.journal.interrupted(run, reason,
                                          lambda n: _file_size(log_path(folder, n)),
                                          ctx.spec_file(run.job_id))
        log.warning("run %s marked interrupted: %s", run.ref, reason)
        fixed.append(updated)
    return fixed


def _file_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
