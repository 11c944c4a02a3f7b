"""Start-up: what a stopped or dead daemon left active. A run that waited for approval or for its
gates waits on (kernel.gates.after_restart); every other one becomes `interrupted`. Leftover
processes of attempts and conditions are stopped first."""
from __future__ import annotations

import logging
import os

from jobsd.context import Context
from jobsd.output import log_path
from jobsd.processes import kill_condition_leftovers, kill_leftovers
from jobsd.store import RunRow
from jobsd_lib.kernel.gates import Interrupt, after_restart

__all__ = ["reconcile_active"]

log = logging.getLogger("jobsd.reconcile")


def reconcile_active(ctx: Context) -> list[RunRow]:
    """Returns the runs it recorded `interrupted`; the resumed ones are active in ctx.runs."""
    active = ctx.store.active_runs(ctx.own_host())  # on a shared store, another host's runs are its own
    kill_condition_leftovers(run.ref for run in active if not run.attempts)
    fixed = []
    for run in active:
        kill_leftovers(run.ref, run.pgid, run.attempt_list)
        spec = ctx.catalog.specs.get(run.job_id)
        verdict = after_restart(run.state, run.attempts, run.wait_reason, run.spec_digest,
                                spec.digest if spec is not None else None)
        if not isinstance(verdict, Interrupt):
            log.info("run %s waits on for %s (waiting since the last start)", run.ref, run.wait_detail or run.wait_reason)
            ctx.runs.start(run, spec, ctx.run_dir(run), resume=True)
            continue
        folder = ctx.run_dir(run)
        updated = ctx.journal.interrupted(run, verdict.reason,
                                          lambda n: _file_size(log_path(folder, n)),
                                          ctx.spec_file(run.job_id))
        log.warning("run %s marked interrupted: %s", run.ref, verdict.reason)
        fixed.append(updated)
    return fixed


def _file_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
