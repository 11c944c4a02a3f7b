"""Shell completion of job ids and run references, asked of the daemon (typer's --install-completion).

A completion is a whole jobsctl process per Tab press, so each asks one small thing: job ids with
their states (GetGraph: no last runs, unlike ListJobs), or one job's latest runs (ListRuns). Each
call has a short deadline and any failure completes nothing: a shell must never print a traceback
or hang because the daemon is down.
"""
from __future__ import annotations

from typing import Optional

import typer

__all__ = ["job_ids", "run_refs", "TIMEOUT", "RUNS"]

TIMEOUT = 2.0  # seconds a completion waits for the daemon
RUNS = 20      # latest runs offered for a job
_MANY = 5      # more jobs than this match: offer "JOB/" to pick one first


def job_ids(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    """Job ids starting with `incomplete`, each with its state as help."""
    try:
        return [(job.id, _state(job.state)) for job in _graph(ctx) if job.id.startswith(incomplete)]
    except Exception:  # noqa: BLE001 - completion completes nothing rather than fail
        return []


def run_refs(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    """`JOB/N` references: a job's latest runs once its id is typed (up to the `/`); before that the
    latest runs of the few jobs that match, or `JOB/` of each when many do."""
    try:
        if "/" in incomplete:
            job = incomplete.split("/", 1)[0]
            return [ref for ref in _runs(ctx, job) if ref[0].startswith(incomplete)]
        jobs = [job.id for job in _graph(ctx) if job.id.startswith(incomplete)]
        if len(jobs) > _MANY:
            return [(f"{job}/", "") for job in jobs]
        return [ref for job in jobs for ref in _runs(ctx, job)]
    except Exception:  # noqa: BLE001
        return []


def _connection(ctx: typer.Context):  # noqa: ANN202
    from jobsctl.connection import Connection, resolve_socket

    socket: Optional[str] = ctx.find_root().params.get("socket")
    return Connection(resolve_socket(socket))


def _graph(ctx: typer.Context) -> list:
    from jobsd_lib.rpc import jobsd_pb2 as pb

    conn = _connection(ctx)
    return list(conn.call(conn.jobs.GetGraph, pb.GetGraphRequest(), timeout=TIMEOUT).jobs)


def _runs(ctx: typer.Context, job: str) -> list[tuple[str, str]]:
    from jobsd_lib.rpc import jobsd_pb2 as pb

    conn = _connection(ctx)
    runs = conn.call(conn.jobs.ListRuns, pb.ListRunsRequest(job=job, limit=RUNS), timeout=TIMEOUT).runs
    return [(run.ref, pb.RunState.Name(run.state).removeprefix("RUN_STATE_").lower()) for run in runs]


def _state(value: int) -> str:
    from jobsd_lib.rpc import jobsd_pb2 as pb

    return pb.JobState.Name(value).removeprefix("JOB_STATE_").lower()
