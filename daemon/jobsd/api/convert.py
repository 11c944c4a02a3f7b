"""Daemon records <-> protobuf messages. Only api/ (this module, the servicers, the streams'
writers) and server.py (which registers the servicers) import the generated code."""
from __future__ import annotations

from datetime import datetime, timezone

from google.protobuf.timestamp_pb2 import Timestamp

from jobsd.store import EventRow, RunRow
from jobsd_lib.errors import InvalidArgument
from jobsd_lib.rpc import jobsd_pb2 as pb
from jobsd_lib.spec import SpecProblem

__all__ = ["ts", "run_pb", "job_pb", "graph_pb", "event_pb", "problem_pb", "enum_value", "state_from_pb", "gc_request",
           "gc_response_pb"]


def ts(value: float | datetime | None) -> Timestamp | None:
    if value is None:
        return None
    stamp = Timestamp()
    if isinstance(value, datetime):
        stamp.FromDatetime(value.astimezone(timezone.utc))
    else:
        stamp.FromNanoseconds(int(round(value * 1e9)))
    return stamp


def enum_value(enum_type, prefix: str, name: str | None) -> int:  # noqa: ANN001
    if not name:
        return 0
    key = (prefix, name)
    value = _ENUM_VALUES.get(key)
    if value is None:  # a few dozen names in all: each looked up once
        value = _ENUM_VALUES[key] = enum_type.Value(f"{prefix}_{name.upper()}")
    return value


_ENUM_VALUES: dict[tuple[str, str], int] = {}


def state_from_pb(value: int) -> str:
    """The store's name of a RunState enum value; a number this proto does not define is invalid_argument."""
    try:
        return pb.RunState.Name(value).removeprefix("RUN_STATE_").lower()
    except ValueError:
        raise InvalidArgument(f"run state {value} is not one this daemon knows (see RunState in jobsd.proto)") from None


def _set_times(message, **values) -> None:  # noqa: ANN001
    """Set Timestamp fields in place: what ts() gives, without a message made and copied a field."""
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, datetime):
            getattr(message, name).FromDatetime(value.astimezone(timezone.utc))
        else:
            stamp = getattr(message, name)
            stamp.seconds, stamp.nanos = divmod(int(round(value * 1e9)), 1_000_000_000)


def run_pb(run: RunRow, artifacts_dir: str) -> pb.Run:
    message = pb.Run(
        ref=run.ref, job=run.job_id, n=run.n, state=enum_value(pb.RunState, "RUN_STATE", run.state.value),
        trigger=enum_value(pb.Trigger, "TRIGGER", run.trigger),
        wait_reason=enum_value(pb.WaitReason, "WAIT_REASON", run.wait_reason),
        attempts=run.attempts, max_attempts=run.max_attempts, artifacts=artifacts_dir, reason=run.reason,
        spec_digest=run.spec_digest, exit_code=run.exit_code, signal=run.signal, retry_of=run.retry_of,
        upstream=run.upstream, wait_detail=run.wait_detail, host=run.host)
    _set_times(message, scheduled_at=run.scheduled_at, queued_at=run.queued_at, started_at=run.started_at,
               finished_at=run.finished_at, next_attempt_at=run.next_attempt_at,
               waiting_since=run.waiting_since)
    if run.decision:
        message.decision.approved = run.decision == "approved"
        message.decision.by, message.decision.comment = run.decided_by, run.decision_comment
        message.decision.client = run.decision_client
        if run.decided_at is not None:
            _set_times(message.decision, at=run.decided_at)
    for a in run.attempt_list:
        attempt = message.attempt_list.add(number=a.number, exit_code=a.exit_code, signal=a.signal, pid=a.pid or 0,
                                           output_bytes=a.output_bytes, dropped_bytes=a.dropped_bytes, error=a.error,
                                           timed_out=a.timed_out)
        _set_times(attempt, started_at=a.started_at, finished_at=a.finished_at)
    return message


def problem_pb(job_id: str, problem: SpecProblem) -> pb.SpecError:
    return pb.SpecError(code="job_invalid_spec", job=job_id, file=problem.file, field=problem.field,
                        message=problem.message)


def job_pb(view, run_dir_of) -> pb.Job:  # noqa: ANN001  (JobView, callable RunRow -> folder)
    """The Job message of a view: a copy of the one built for this job last time when everything it
    is made of is the same (ListJobs answers the same 21 jobs to 200 clients; only a job whose
    run, state, count or next time changed is built again)."""
    last_run = view.last_run
    spec = (view.spec.file, view.spec.digest) if view.spec is not None else None
    key = (spec, view.problems, view.state, view.consecutive_failures, last_run,
           run_dir_of(last_run) if last_run is not None else "", view.next_run_at, view.operator,
           view.overdue_since)
    cached = _JOBS.get(view.id)
    if cached is None or cached[0] != key:
        if cached is None and len(_JOBS) >= _JOBS_MAX:  # removed jobs: drop the oldest entry
            del _JOBS[next(iter(_JOBS))]
        cached = _JOBS[view.id] = (key, _build_job(view, key[5]))
    else:  # equal: keep the newest key; the next view holds the same (memoized) rows, compared by identity
        _JOBS[view.id] = (key, cached[1])
    message = pb.Job()
    message.CopyFrom(cached[1])  # callers may change their answer; the cached one stays as built
    return message


# job id -> (what its message is made of, the message): one entry a job. The file's path and
# digest stand for what the spec puts in the message (the digest is the file's SHA-256).
_JOBS: dict[str, tuple[tuple, pb.Job]] = {}
_JOBS_MAX = 20_000  # more jobs than that (bench: 10,000) are built anew for every answer, as before


def _build_job(view, last_run_dir: str) -> pb.Job:  # noqa: ANN001
    message = pb.Job(id=view.id, state=enum_value(pb.JobState, "JOB_STATE", view.state.value),
                     consecutive_failures=view.consecutive_failures)
    spec = view.spec
    if spec is not None:
        message.description, message.file, message.shell = spec.description, spec.file, spec.shell
        message.command.extend(spec.command)
        message.spec_digest, message.enabled_in_spec = spec.digest, spec.enabled
        if spec.schedule:
            s = spec.schedule
            message.schedule.CopyFrom(pb.Schedule(cron=s.cron, timezone=s.timezone, misfire_grace_seconds=s.misfire_grace,
                                                  coalesce=s.coalesce, catch_up=s.catch_up))
    if view.problems:
        first = view.problems[0]
        message.error.CopyFrom(problem_pb(view.id, first))
        if len(view.problems) > 1:
            message.error.message = "; ".join(f"{p.field}: {p.message}" if p.field else p.message for p in view.problems)
            message.error.field = first.field
        message.file = first.file
    if view.last_run is not None:
        message.last_run.CopyFrom(run_pb(view.last_run, last_run_dir))
    _set_times(message, next_run_at=view.next_run_at)
    if view.overdue_since is not None:
        message.overdue = True
        _set_times(message, overdue_since=view.overdue_since)
    if view.spec is not None and view.spec.expect.success_within:
        message.success_within_seconds = view.spec.expect.success_within
    held = view.operator
    if held is not None:
        message.state_changed_by, message.state_reason = held.changed_by, held.reason
        _set_times(message, state_changed_at=held.changed_at, paused_until=held.until)
    return message


def graph_pb(nodes) -> pb.Graph:  # noqa: ANN001  (handlers.jobs.get_graph's (id, JobState, after, requires))
    return pb.Graph(jobs=[pb.GraphJob(id=job_id, state=enum_value(pb.JobState, "JOB_STATE", state.value), after=after,
                                      requires=requires) for job_id, state, after, requires in nodes])


def event_pb(event: EventRow) -> pb.Event:
    message = pb.Event(seq=event.seq, type=event.type, job=event.job_id, run=event.run_ref, attrs=event.attrs)
    _set_times(message, ts=event.ts)
    return message


def health_pb(view, paths) -> pb.Health:  # noqa: ANN001  (handlers.health.HealthView, context.Paths)
    from jobsd_lib.kernel.states import JobState

    message = pb.Health(
        version=view.version, pid=view.pid, lock_file=paths.lock_file, socket=paths.socket,
        uptime_seconds=view.uptime_seconds, scheduler_state=view.scheduler_state,
        jobs_active=view.jobs[JobState.ACTIVE], jobs_paused=view.jobs[JobState.PAUSED],
        jobs_disabled=view.jobs[JobState.DISABLED], jobs_invalid=view.jobs[JobState.INVALID],
        invalid_specs=[problem_pb(j, p) for j, p in view.invalid_specs],
        runs_active=view.runs_active, runs_queued=view.runs_queued, followers=view.followers,
        store_path=view.store_path, store_bytes=view.store_bytes, max_concurrent_runs=view.max_concurrent_runs,
        jobs_dir=paths.jobs_dir, state_dir=paths.state_dir, warnings=view.warnings, host=view.host,
        labels=view.labels, leader=view.leader)
    message.degraded.extend(view.degraded)
    for host in view.hosts:
        row = message.hosts.add(name=host.name, labels=host.labels, pid=host.pid, stopped=host.stopped,
                                this_host=host.this_host, heartbeat_age_seconds=host.heartbeat_age)
        row.started_at.FromNanoseconds(int(host.started_at * 1e9))
        row.heartbeat_at.FromNanoseconds(int(host.heartbeat_at * 1e9))
    _set_times(message, started_at=view.started_at, last_tick=view.last_tick)
    return message


def gc_request(request: pb.CollectGarbageRequest) -> dict:
    """CollectGarbage's fields as handlers.gc.collect_garbage's arguments (unset limits: None)."""
    return dict(keep_last=request.keep_last if request.HasField("keep_last") else None,
                older_than=request.older_than_seconds if request.HasField("older_than_seconds") else None,
                job_id=request.job, dry_run=request.dry_run)


def gc_response_pb(result) -> pb.CollectGarbageResponse:  # noqa: ANN001
    return pb.CollectGarbageResponse(removed=result.removed, removed_count=result.removed_count,
                                     bytes_freed=result.bytes_freed, dry_run=result.dry_run)
