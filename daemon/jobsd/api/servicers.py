"""gRPC servicers: convert the request, call the verb's handler (handlers/), convert the answer. Nothing else.

Every request reaches them parsed and within jobsd_lib.limits (every number in its field's
range, every string bounded): api/errors.py checks it first, for every RPC, so no method here
repeats those checks.

The two server streams (Tail, WatchEvents) are written by api/streaming.py, each send bounded.
"""
from __future__ import annotations

from datetime import timezone

from jobsd.api.convert import gc_request, gc_response_pb, graph_pb, health_pb, job_pb, problem_pb, run_pb, state_from_pb, ts
from jobsd.api.streaming import stream_events, stream_tail
from jobsd.context import Context
from jobsd.handlers import jobs, runs
from jobsd.handlers.gc import collect_garbage
from jobsd.handlers.health import get_health
from jobsd.handlers.operator import set_operator_state
from jobsd.handlers.reload import reload
from jobsd.peer import actor_for
from jobsd.store import RunRow
from jobsd_lib.errors import InvalidArgument
from jobsd_lib.facts import Actor
from jobsd_lib.kernel.states import Trigger
from jobsd_lib.rpc import jobsd_pb2 as pb
from jobsd_lib.rpc import jobsd_pb2_grpc as pb_grpc

__all__ = ["JobsServicer", "DaemonServicer", "actor_of"]


def actor_of(context) -> Actor:  # noqa: ANN001
    """Who asked: the uid the kernel reported for the call's connection (jobsd.peer), with the client's
    claimed name (metadata `jobsd-client`) beside it as information only."""
    return actor_for(context.peer(), dict(context.invocation_metadata() or ()).get("jobsd-client", ""))


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

    def _hold(self, verb: str, request, context) -> pb.Job:  # noqa: ANN001 - a PauseJobRequest
        try:
            until = request.until.ToDatetime(timezone.utc) if request.HasField("until") else None
        except (ValueError, OverflowError):
            raise InvalidArgument(f"until {request.until.seconds}s is not a time this daemon can hold") from None
        return self._job(set_operator_state(self.ctx, verb, request.job, actor_of(context), until=until,
                                            reason=request.reason))

    def _release(self, verb: str, request, context) -> pb.Job:  # noqa: ANN001 - a ResumeJobRequest
        return self._job(set_operator_state(self.ctx, verb, request.job, actor_of(context), catch_up=request.catch_up))

    async def PauseJob(self, request, context):  # noqa: ANN001, N802
        return self._hold("pause", request, context)

    async def ResumeJob(self, request, context):  # noqa: ANN001, N802
        return self._release("resume", request, context)

    async def DisableJob(self, request, context):  # noqa: ANN001, N802
        return self._hold("disable", request, context)

    async def EnableJob(self, request, context):  # noqa: ANN001, N802
        return self._release("enable", request, context)

    async def NextRunTimes(self, request, context):  # noqa: ANN001, N802
        times = jobs.next_run_times(self.ctx, request.job, request.count)
        return pb.NextRunTimesResponse(job=request.job, times=[ts(t) for t in times])

    async def GetRun(self, request, context):  # noqa: ANN001, N802
        return self._run(runs.get_run(self.ctx, request.run))

    async def CancelRun(self, request, context):  # noqa: ANN001, N802
        return self._run(await runs.cancel_run(self.ctx, request.run, actor=actor_of(context)))

    async def ApproveRun(self, request, context):  # noqa: ANN001, N802
        return self._run(await runs.decide_run(self.ctx, request.run, True, request.comment, actor_of(context)))

    async def RejectRun(self, request, context):  # noqa: ANN001, N802
        return self._run(await runs.decide_run(self.ctx, request.run, False, request.comment, actor_of(context)))

    async def GetGraph(self, request, context):  # noqa: ANN001, N802
        return graph_pb(jobs.get_graph(self.ctx, request.job))

    async def ForgetJobState(self, request, context):  # noqa: ANN001, N802
        path, removed, freed = await jobs.forget_state(self.ctx, request.job, actor_of(context))
        return pb.ForgetJobStateResponse(path=path, removed=removed, bytes_freed=freed)

    async def RetryRun(self, request, context):  # noqa: ANN001, N802
        return self._run(runs.retry_run(self.ctx, request.run, actor=actor_of(context)))

    async def ListRuns(self, request, context):  # noqa: ANN001, N802
        states = [state_from_pb(s) for s in request.states]
        found, cursor = runs.list_runs(self.ctx, request.job, request.limit, request.cursor, states)
        return pb.ListRunsResponse(runs=[self._run(r) for r in found], next_cursor=cursor)

    async def Tail(self, request, context):  # noqa: ANN001, N802
        await stream_tail(self.ctx, request, context, self._run)

    async def WatchEvents(self, request, context):  # noqa: ANN001, N802
        await stream_events(self.ctx, request, context)


class DaemonServicer(pb_grpc.DaemonServicer):
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def GetHealth(self, request, context):  # noqa: ANN001, N802
        return health_pb(get_health(self.ctx), self.ctx.paths)

    async def GetMetrics(self, request, context):  # noqa: ANN001, N802
        return pb.Metrics(text=self.ctx.metrics.text().decode())

    async def Reload(self, request, context):  # noqa: ANN001, N802
        added, changed, removed, catalog = reload(self.ctx, actor_of(context))
        return pb.ReloadResponse(added=added, changed=changed, removed=removed, errors=spec_errors_pb(catalog))

    async def CollectGarbage(self, request, context):  # noqa: ANN001, N802
        return gc_response_pb(await collect_garbage(self.ctx, **gc_request(request), actor=actor_of(context)))


def spec_errors_pb(catalog) -> list[pb.SpecError]:  # noqa: ANN001
    return [problem_pb(job_id, p) for job_id, problems in sorted(catalog.invalid.items()) for p in problems]
