"""Pure rendering: protobuf messages -> the documented JSON shapes (docs/cli.md) and tables."""
from __future__ import annotations

from datetime import datetime, timezone

__all__ = ["run_json", "job_json", "event_json", "health_json", "table", "result_text", "when"]


def _enum(value: int, enum_type, prefix: str) -> str | None:  # noqa: ANN001
    name = enum_type.Name(value)
    return None if name.endswith("_UNSPECIFIED") else name.removeprefix(prefix).lower()


def _time(message, field: str) -> str | None:  # noqa: ANN001
    if not message.HasField(field):
        return None
    stamp = getattr(message, field)
    return datetime.fromtimestamp(stamp.seconds + stamp.nanos / 1e9, timezone.utc).isoformat()


def run_json(run) -> dict:  # noqa: ANN001
    from jobsd_lib.rpc import jobsd_pb2 as pb

    return {
        "run": run.ref, "job": run.job, "n": run.n, "state": _enum(run.state, pb.RunState, "RUN_STATE_"),
        "trigger": _enum(run.trigger, pb.Trigger, "TRIGGER_"),
        "wait_reason": _enum(run.wait_reason, pb.WaitReason, "WAIT_REASON_"),
        "attempts": run.attempts, "max_attempts": run.max_attempts,
        "exit_code": run.exit_code if run.HasField("exit_code") else None,
        "signal": run.signal if run.HasField("signal") else None,
        "scheduled_at": _time(run, "scheduled_at"), "queued_at": _time(run, "queued_at"),
        "started_at": _time(run, "started_at"), "finished_at": _time(run, "finished_at"),
        "next_attempt_at": _time(run, "next_attempt_at"), "reason": run.reason or None,
        "artifacts": run.artifacts,
        "attempt_list": [{
            "number": a.number, "started_at": _time(a, "started_at"), "finished_at": _time(a, "finished_at"),
            "exit_code": a.exit_code if a.HasField("exit_code") else None,
            "signal": a.signal if a.HasField("signal") else None, "pid": a.pid or None,
            "output_bytes": a.output_bytes, "dropped_bytes": a.dropped_bytes, "error": a.error or None,
            "timed_out": a.timed_out} for a in run.attempt_list],
    }


def job_json(job) -> dict:  # noqa: ANN001
    from jobsd_lib.rpc import jobsd_pb2 as pb

    schedule = None
    if job.HasField("schedule"):
        s = job.schedule
        schedule = {"cron": s.cron, "timezone": s.timezone, "misfire_grace": s.misfire_grace_seconds,
                    "coalesce": s.coalesce, "catch_up": s.catch_up}
    error = None
    if job.HasField("error"):
        error = {"code": job.error.code, "message": job.error.message, "file": job.error.file,
                 "field": job.error.field or None}
    return {
        "id": job.id, "state": _enum(job.state, pb.JobState, "JOB_STATE_"), "description": job.description,
        "schedule": schedule, "next_run_at": _time(job, "next_run_at"),
        "last_run": run_json(job.last_run) if job.HasField("last_run") else None, "error": error,
        "consecutive_failures": job.consecutive_failures, "file": job.file, "command": list(job.command),
    }


def event_json(event) -> dict:  # noqa: ANN001
    return {"seq": event.seq, "ts": _time(event, "ts"), "type": event.type, "job": event.job or None,
            "run": event.run or None, **dict(sorted(event.attrs.items()))}


def health_json(health) -> dict:  # noqa: ANN001
    return {
        "version": health.version, "pid": health.pid, "lock_file": health.lock_file, "socket": health.socket,
        "started_at": _time(health, "started_at"), "uptime_seconds": round(health.uptime_seconds, 3),
        "scheduler": {"state": health.scheduler_state, "last_tick": _time(health, "last_tick")},
        "jobs": {"active": health.jobs_active, "paused": health.jobs_paused, "disabled": health.jobs_disabled,
                 "invalid": health.jobs_invalid},
        "invalid_specs": [{"job": e.job, "file": e.file, "field": e.field or None, "message": e.message}
                          for e in health.invalid_specs],
        "runs": {"active": health.runs_active, "queued": health.runs_queued}, "followers": health.followers,
        "store": {"path": health.store_path, "bytes": health.store_bytes},
        "max_concurrent_runs": health.max_concurrent_runs, "jobs_dir": health.jobs_dir,
        "state_dir": health.state_dir, "degraded": list(health.degraded), "warnings": list(health.warnings),
    }


def result_text(run: dict | None) -> str:
    """ok / exit N / signal N / timed out / interrupted / running ... for a run dict."""
    if run is None:
        return "-"
    state = run["state"]
    if state == "succeeded":
        return "ok"
    if state == "failed":
        if run.get("signal"):
            return f"signal {run['signal']}"
        return f"exit {run['exit_code']}" if run.get("exit_code") is not None else "failed"
    return (state or "-").replace("_", " ")


def size(count: int) -> str:
    """Bytes for people: 512 B, 3.4 KiB, 12.0 MiB."""
    if count < 1024:
        return f"{count} B"
    value, units = count / 1024, ["KiB", "MiB", "GiB", "TiB"]
    while value >= 1024 and len(units) > 1:
        value, units = value / 1024, units[1:]
    return f"{value:.1f} {units[0]}"


def when(iso: str | None) -> str:
    """A compact local-free UTC time for tables: 2026-11-23 09:27:57Z."""
    return "-" if not iso else iso[:19].replace("T", " ") + "Z"


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *rows)]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(line, widths)).rstrip() for line in [headers, *rows]]
    return "\n".join(lines)
