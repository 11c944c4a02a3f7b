"""gRPC servicers: convert the request, call the verb's handler (handlers/), convert the answer. Nothing else.

Every request reaches them parsed and within jobsd_lib.limits (every number in its field's
range, every string bounded): api/errors.py checks it first, for every RPC, so no method here
repeats those checks.

Streams write with a timeout: a client that stops reading (SIGSTOPped, stuck) has its stream
ended after WRITE_TIMEOUT seconds instead of pinning anything (PITFALLS 12).
"""
from __future__ import annotations

import asyncio

import grpc

from jobsd.api.convert import event_pb, health_pb, job_pb, problem_pb, run_pb, state_from_pb, ts
from jobsd.context import Context
from jobsd.handlers import jobs, runs
from jobsd.handlers.gc import collect_garbage
from jobsd.handlers.health import get_health
from jobsd.handlers.operator import set_operator_state
from jobsd.handlers.reload import reload
from jobsd.output import Chunk
from jobsd.peer import actor_for
from jobsd.store import RunRow
from jobsd.streams import TailRequest, tail, watch_events
from jobsd_lib.facts import Actor
from jobsd_lib.kernel.states import Trigger
from jobsd_lib.rpc import jobsd_pb2 as pb
from jobsd_lib.rpc import jobsd_pb2_grpc as pb_grpc

__all__ = ["JobsServicer", "DaemonServicer", "WRITE_TIMEOUT", "actor_of"]

WRITE_TIMEOUT = 30.0


def actor_of(context) -> Actor:  # noqa: ANN001
    """Who asked: the uid the kernel reported for the call's connection (jobsd.peer), with the client's
    claimed name (metadata `jobsd-client`) beside it as information only."""
    return actor_for(context.peer(), dict(context.invocation_metadata() or ()).get("jobsd-client", ""))


async def _write(context, message) -> None:  # noqa: ANN001
    """Send one message of a stream; a client that reads nothing for WRITE_TIMEOUT seconds ends it.

    asyncio.timeout, not asyncio.wait_for: no extra task per message. (Tail's output bounds its
    sends itself, with one timer per stream: streams.WriteGuard.)
    """
    try:
        async with asyncio.timeout(WRITE_TIMEOUT):
            await context.write(message)
    except TimeoutError:
        await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED,
                            f"the client did not read for {WRITE_TIMEOUT:g}s; stream ended")


class JobsServicer(pb_grpc.JobsServicer):
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def _run(self, run: RunRow) -> pb.Run:
        return run_pb(run, self.ctx.run_dir(run))

    def _job(self, view) -> pb.Job:  # noqa: ANN001
        return job_pb(view, self.ctx.run_dir)

    async def ListJobs(self, request, context):  # noqa: ANN001, N802
        return pb.ListJobsResponse(jobs=[self._job(v) for v in jobs.list_jobs(self.ctx)])

    async def GetJob(self, request, context):  # noqa: ANN001, N802
        return self._job(jobs.get_job(self.ctx, request.job))

    async def RunJob(self, request, context):  # noqa: ANN001, N802
        return self._run(runs.run_job(self.ctx, request.job, Trigger.MANUAL, actor=actor_of(context)))

    async def PauseJob(self, request, context):  # noqa: ANN001, N802
        return self._job(set_operator_state(self.ctx, "pause", request.job, actor_of(context)))

    async def ResumeJob(self, request, context):  # noqa: ANN001, N802
        return self._job(set_operator_state(self.ctx, "resume", request.job, actor_of(context)))

    async def DisableJob(self, request, context):  # noqa: ANN001, N802
        return self._job(set_operator_state(self.ctx, "disable", request.job, actor_of(context)))

    async def EnableJob(self, request, context):  # noqa: ANN001, N802
        return self._job(set_operator_state(self.ctx, "enable", request.job, actor_of(context)))

    async def NextRunTimes(self, request, context):  # noqa: ANN001, N802
        times = jobs.next_run_times(self.ctx, request.job, request.count)
        return pb.NextRunTimesResponse(job=request.job, times=[ts(t) for t in times])

    async def GetRun(self, request, context):  # noqa: ANN001, N802
        return self._run(runs.get_run(self.ctx, request.run))

    async def CancelRun(self, request, context):  # noqa: ANN001, N802
        return self._run(await runs.cancel_run(self.ctx, request.run, actor=actor_of(context)))

    async def ListRuns(self, request, context):  # noqa: ANN001, N802
        states = [state_from_pb(s) for s in request.states]
        found, cursor = runs.list_runs(self.ctx, request.job, request.limit, request.cursor, states)
        return pb.ListRunsResponse(runs=[self._run(r) for r in found], next_cursor=cursor)

    async def Tail(self, request, context):  # noqa: ANN001, N802
        start = request.WhichOneof("start")
        req = TailRequest(job=request.job, run=request.run, follow=request.follow,
                          last_lines=request.last_lines if start == "last_lines" else None,
                          offset=request.offset if start == "offset" else None)

        async def send_start(run: RunRow) -> None:
            await context.write(pb.TailMessage(start=pb.TailStart(run=self._run(run))))

        async def send_chunk(chunk: Chunk) -> None:
            message = pb.TailMessage()  # filled in place: a nested constructor copies the data once more
            out = message.chunk
            out.data, out.stream, out.offset, out.attempt = chunk.data, chunk.stream, chunk.offset, chunk.attempt
            out.read_at.seconds, out.read_at.nanos = divmod(chunk.ts_ns, 1_000_000_000)  # exact, unlike a float
            await context.write(message)

        async def send_end(run: RunRow) -> None:
            await context.write(pb.TailMessage(end=pb.TailEnd(run=self._run(run))))

        try:  # tail bounds each send by WRITE_TIMEOUT (one timer per stream, streams.WriteGuard)
            await tail(self.ctx, req, send_start, send_chunk, send_end, WRITE_TIMEOUT)
        except TimeoutError as exc:  # streams.WriteTimeout: the client stopped reading
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, f"{exc}; stream ended")

    async def WatchEvents(self, request, context):  # noqa: ANN001, N802
        async def send(event) -> None:  # noqa: ANN001
            await _write(context, event_pb(event))

        await watch_events(self.ctx, request.job, request.after_seq, request.follow, request.last, send)


class DaemonServicer(pb_grpc.DaemonServicer):
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def GetHealth(self, request, context):  # noqa: ANN001, N802
        return health_pb(get_health(self.ctx), self.ctx.paths)

    async def Reload(self, request, context):  # noqa: ANN001, N802
        added, changed, removed, catalog = reload(self.ctx, actor_of(context))
        return pb.ReloadResponse(added=added, changed=changed, removed=removed, errors=spec_errors_pb(catalog))

    async def CollectGarbage(self, request, context):  # noqa: ANN001, N802
        result = await collect_garbage(
            self.ctx, request.keep_last if request.HasField("keep_last") else None,
            request.older_than_seconds if request.HasField("older_than_seconds") else None,
            request.job, request.dry_run, actor=actor_of(context))
        return pb.CollectGarbageResponse(removed=result.removed, removed_count=result.removed_count,
                                         bytes_freed=result.bytes_freed, dry_run=result.dry_run)


def spec_errors_pb(catalog) -> list[pb.SpecError]:  # noqa: ANN001
    return [problem_pb(job_id, p) for job_id, problems in sorted(catalog.invalid.items()) for p in problems]
