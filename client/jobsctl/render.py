"""Pure rendering, all of jobsctl's: protobuf messages -> the documented JSON shapes
(docs/cli.md), and those shapes -> the tables and texts people read. cli.py and follow.py print
what these functions return; nothing here prints, calls the daemon or reads the clock.

States, triggers and wait reasons are named by the kernel's enums (jobsd_lib.kernel.states), a
run's result by the kernel's describe_result, times by jobsd_lib.times.
"""
from __future__ import annotations

import functools
from enum import Enum

from jobsd_lib.errors import JobsdError
from jobsd_lib.kernel.results import describe_result
from jobsd_lib.kernel.gates import short_duration  # as the job.overdue event writes it
from jobsd_lib.kernel.states import JobState, RunState, Trigger, WaitReason
from jobsd_lib.times import iso

__all__ = ["run_json", "job_json", "jobs_json", "runs_json", "event_json", "health_json", "reload_json", "gc_json", "next_json",
           "validate_json", "error_json", "dumps", "jobs_table", "job_text", "runs_table", "health_text",
           "reload_text", "gc_text", "started_text", "outcome_text", "next_text",
           "event_line", "validate_text", "error_text", "detached_text", "timestamped", "result_text", "size", "when",
           "table"]


# ---------------------------------------------------------------------- protobuf -> JSON shapes
@functools.cache
def _names(kernel_enum: type[Enum]) -> dict[int, str | None]:
    """Proto enum number -> the kernel enum's value (None for *_UNSPECIFIED), built once per enum."""
    from jobsd_lib.rpc import jobsd_pb2 as pb

    proto, prefix = _PROTO_ENUMS[kernel_enum]
    proto_enum = getattr(pb, proto)
    return {number: None if name.endswith("_UNSPECIFIED") else kernel_enum(name.removeprefix(prefix).lower()).value
            for name, number in proto_enum.items()}


_PROTO_ENUMS: dict[type[Enum], tuple[str, str]] = {
    RunState: ("RunState", "RUN_STATE_"), JobState: ("JobState", "JOB_STATE_"), Trigger: ("Trigger", "TRIGGER_"),
    WaitReason: ("WaitReason", "WAIT_REASON_")}


def _enum(kernel_enum: type[Enum], number: int) -> str | None:
    return _names(kernel_enum)[number]


def _time(message, field: str) -> str | None:  # noqa: ANN001
    if not message.HasField(field):
        return None
    stamp = getattr(message, field)
    return iso(stamp.seconds + stamp.nanos / 1e9)


def run_json(run) -> dict:  # noqa: ANN001
    return {
        "run": run.ref, "job": run.job, "n": run.n, "state": _enum(RunState, run.state),
        "trigger": _enum(Trigger, run.trigger), "wait_reason": _enum(WaitReason, run.wait_reason),
        "attempts": run.attempts, "max_attempts": run.max_attempts,
        "exit_code": run.exit_code if run.HasField("exit_code") else None,
        "signal": run.signal if run.HasField("signal") else None,
        "scheduled_at": _time(run, "scheduled_at"), "queued_at": _time(run, "queued_at"),
        "started_at": _time(run, "started_at"), "finished_at": _time(run, "finished_at"),
        "next_attempt_at": _time(run, "next_attempt_at"), "reason": run.reason or None,
        "retry_of": run.retry_of or None, "upstream": run.upstream or None,
        "wait_detail": run.wait_detail or None, "waiting_since": _time(run, "waiting_since"), "artifacts": run.artifacts,
        "decision": {"approved": run.decision.approved, "by": run.decision.by, "at": _time(run.decision, "at"),
                     "comment": run.decision.comment or None, "client": run.decision.client or None}
        if run.HasField("decision") else None,
        "host": run.host or None,
        "attempt_list": [{
            "number": a.number, "started_at": _time(a, "started_at"), "finished_at": _time(a, "finished_at"),
            "exit_code": a.exit_code if a.HasField("exit_code") else None,
            "signal": a.signal if a.HasField("signal") else None, "pid": a.pid or None,
            "output_bytes": a.output_bytes, "dropped_bytes": a.dropped_bytes, "error": a.error or None,
            "timed_out": a.timed_out} for a in run.attempt_list],
    }


def job_json(job) -> dict:  # noqa: ANN001
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
        "id": job.id, "state": _enum(JobState, job.state), "description": job.description,
        "schedule": schedule, "next_run_at": _time(job, "next_run_at"),
        "last_run": run_json(job.last_run) if job.HasField("last_run") else None, "error": error,
        "consecutive_failures": job.consecutive_failures, "file": job.file, "command": list(job.command),
        "state_changed_at": _time(job, "state_changed_at"), "state_changed_by": job.state_changed_by or None,
        "state_reason": job.state_reason or None, "paused_until": _time(job, "paused_until"),
        "success_within": job.success_within_seconds or None, "overdue": job.overdue,
        "overdue_since": _time(job, "overdue_since"),
    }


def jobs_json(answer) -> dict:  # noqa: ANN001 - a ListJobsResponse
    return {"jobs": [job_json(j) for j in answer.jobs]}


def runs_json(answer) -> dict:  # noqa: ANN001 - a ListRunsResponse
    return {"runs": [run_json(r) for r in answer.runs], "next_cursor": answer.next_cursor or None}


def event_json(event) -> dict:  # noqa: ANN001
    return {"seq": event.seq, "ts": _time(event, "ts"), "type": event.type, "job": event.job or None,
            "run": event.run or None, **dict(sorted(event.attrs.items()))}


def _spec_errors(errors) -> list[dict]:  # noqa: ANN001
    return [{"job": e.job, "file": e.file, "field": e.field or None, "message": e.message} for e in errors]


def health_json(health) -> dict:  # noqa: ANN001
    return {
        "version": health.version, "pid": health.pid, "lock_file": health.lock_file, "socket": health.socket,
        "started_at": _time(health, "started_at"), "uptime_seconds": round(health.uptime_seconds, 3),
        "scheduler": {"state": health.scheduler_state, "last_tick": _time(health, "last_tick")},
        "jobs": {"active": health.jobs_active, "paused": health.jobs_paused, "disabled": health.jobs_disabled,
                 "invalid": health.jobs_invalid},
        "invalid_specs": _spec_errors(health.invalid_specs),
        "runs": {"active": health.runs_active, "queued": health.runs_queued}, "followers": health.followers,
        "store": {"path": health.store_path, "bytes": health.store_bytes},
        "max_concurrent_runs": health.max_concurrent_runs, "jobs_dir": health.jobs_dir,
        "state_dir": health.state_dir, "degraded": list(health.degraded), "warnings": list(health.warnings),
        "host": health.host, "labels": list(health.labels), "leader": health.leader or None,
        "hosts": [{"name": h.name, "labels": list(h.labels), "pid": h.pid, "started_at": _time(h, "started_at"),
                   "heartbeat_at": _time(h, "heartbeat_at"), "heartbeat_age_seconds": round(h.heartbeat_age_seconds, 3),
                   "stopped": h.stopped, "this_host": h.this_host} for h in health.hosts],
    }


def reload_json(answer) -> dict:  # noqa: ANN001
    return {"added": list(answer.added), "changed": list(answer.changed), "removed": list(answer.removed),
            "errors": _spec_errors(answer.errors)}


def gc_json(answer) -> dict:  # noqa: ANN001
    return {"removed": list(answer.removed), "removed_count": answer.removed_count,
            "bytes_freed": answer.bytes_freed, "dry_run": answer.dry_run}


def next_json(job: str, answer) -> dict:  # noqa: ANN001
    return {"job": job, "times": [iso(t.seconds + t.nanos / 1e9) for t in answer.times]}


def validate_json(results: list[dict]) -> dict:
    return {"files": results, "valid": not any(r["problems"] for r in results)}


def error_json(error: JobsdError) -> dict:
    return {"error": {"code": error.code.value, "message": error.message}}


def dumps(data: dict) -> str:
    import json  # only --json needs it

    return json.dumps(data)


# ---------------------------------------------------------------------- JSON shapes -> text
def jobs_table(data: dict) -> str:
    rows = []
    for j in data["jobs"]:
        last = j["last_run"]
        schedule = f"{j['schedule']['cron']} {j['schedule']['timezone']}" if j["schedule"] else "manual"
        rows.append([j["id"], j["state"] + (", overdue" if j.get("overdue") else ""), schedule, when(j["next_run_at"]),
                     when(last["started_at"] or last["queued_at"]) if last else "-",
                     status_text(last), str(j["consecutive_failures"] or "-")])
    text = table(["ID", "STATE", "SCHEDULE", "NEXT RUN", "LAST RUN", "RESULT", "FAILS"], rows)
    held = [f"  {j['id']}: {held_text(j)}" for j in data["jobs"] if j.get("state_changed_at")]
    held += [f"  {j['id']}: {overdue_text(j)}" for j in data["jobs"] if j.get("overdue")]
    problems = [f"  {j['id']}: {spec_error_text(j['error'])}" for j in data["jobs"] if j["error"]]
    return (text + ("\n\nneeds attention:\n" + "\n".join(held) if held else "")
            + ("\n\ninvalid specs:\n" + "\n".join(problems) if problems else ""))


def spec_error_text(error: dict) -> str:
    """An invalid spec's error with the field it is about (`schedule.timezone: required key is
    missing`); several problems come joined, each with its field already."""
    field, message = error["field"], error["message"]
    return f"{field}: {message}" if field and not message.startswith(f"{field}: ") else message


def overdue_text(j: dict) -> str:
    """`overdue since 2026-12-03 06:00:00Z: no success within 26h`."""
    return f"overdue since {when(j['overdue_since'])}: no success within {short_duration(j['success_within'])}"


def held_text(j: dict) -> str:
    """An operator's pause or disable: `paused until 2026-12-04 09:00:00Z by uid=0(root) at ...: db migration`."""
    until = f" until {when(j['paused_until'])}" if j.get("paused_until") else ""
    reason = f": {j['state_reason']}" if j.get("state_reason") else ""
    return f"{j['state']}{until} by {j['state_changed_by'] or 'unknown'} at {when(j['state_changed_at'])}{reason}"


def job_text(j: dict) -> str:
    lines = [f"job:          {j['id']}", f"state:        {j['state']}", f"description:  {j['description'] or '-'}",
             f"file:         {j['file']}", f"command:      {' '.join(j['command']) or '-'}"]
    if j["schedule"]:
        s = j["schedule"]
        lines.append(f"schedule:     {s['cron']} ({s['timezone']}), misfire grace {s['misfire_grace']:g}s, "
                     f"coalesce {str(s['coalesce']).lower()}, catch_up {str(s['catch_up']).lower()}")
        lines.append(f"next run:     {when(j['next_run_at'])}")
    else:
        lines.append("schedule:     manual only")
    last = j["last_run"]
    lines.append(f"last run:     {last['run'] + ' ' + status_text(last) if last else '-'}")
    lines.append(f"failures:     {j['consecutive_failures']} in a row")
    if j.get("state_changed_at"):
        lines.append(f"operator:     {held_text(j)}")
    if j.get("success_within"):
        lines.append(f"expect:       a success within {short_duration(j['success_within'])}"
                     + (f"; {overdue_text(j)}" if j.get("overdue") else ""))
    if j["error"]:
        where = f" ({j['error']['field']})" if j["error"]["field"] else ""
        lines.append(f"error:        {j['error']['code']}{where}: {j['error']['message']}")
    return "\n".join(lines)


def runs_table(data: dict) -> str:
    """TRIGGER names the upstream or the retried run; a DECISION column appears when a run listed
    was approved or rejected (`approved by uid=1000(alice)`), a HOST column when the runs listed
    were recorded by more than one host (a shared store)."""
    rows = [[r["run"], r["state"], _trigger_text(r), when(r["queued_at"]), when(r["finished_at"]),
             str(r["attempts"]), status_text(r)] for r in data["runs"]]
    headers = ["RUN", "STATE", "TRIGGER", "QUEUED", "FINISHED", "ATTEMPTS", "RESULT"]
    if any(r.get("decision") for r in data["runs"]):
        headers.append("DECISION")
        for row, r in zip(rows, data["runs"]):
            d = r.get("decision")
            row.append(f"{'approved' if d['approved'] else 'rejected'} by {d['by']}" if d else "-")
    if len({r.get("host") for r in data["runs"]}) > 1:
        headers.append("HOST")
        for row, r in zip(rows, data["runs"]):
            row.append(r.get("host") or "-")
    text = table(headers, rows)
    return text + (f"\nmore: --cursor {data['next_cursor']}" if data["next_cursor"] else "")


def _trigger_text(r: dict) -> str:
    if r.get("retry_of"):
        return f"retry of {r['retry_of']}"
    return f"after {r['upstream']}" if r.get("upstream") else (r["trigger"] or "-")


def _invalid_lines(errors: list[dict]) -> list[str]:
    return [f"invalid: {e['file']}: {e['field'] + ': ' if e['field'] else ''}{e['message']}" for e in errors]


def health_text(h: dict) -> str:
    jobs = h["jobs"]
    lines = [f"jobsd {h['version']} pid {h['pid']}, up {h['uptime_seconds']:.0f}s, socket {h['socket']}",
             f"scheduler: {h['scheduler']['state']} (last tick {when(h['scheduler']['last_tick'])})",
             f"jobs: {jobs['active']} active, {jobs['paused']} paused, {jobs['disabled']} disabled, {jobs['invalid']} invalid",
             f"runs: {h['runs']['active']} active, {h['runs']['queued']} queued (slots {h['max_concurrent_runs']}); "
             f"followers {h['followers']}",
             f"store: {h['store']['path']} ({h['store']['bytes']} bytes); lock {h['lock_file']}"]
    lines += [_host_line(host, h["leader"]) for host in h["hosts"] if len(h["hosts"]) > 1 or host["labels"]]
    lines += [f"warning: {w}" for w in h["warnings"]]
    lines += _invalid_lines(h["invalid_specs"])
    lines += [f"degraded: {line}" for line in h["degraded"]]
    return "\n".join(lines)


def _host_line(host: dict, leader: str | None) -> str:
    labels = f" [{', '.join(host['labels'])}]" if host["labels"] else ""
    seen = "stopped" if host["stopped"] else f"heartbeat {host['heartbeat_age_seconds']:.0f}s ago"
    marks = [m for m, on in (("leader", host["name"] == leader and not host["stopped"]), ("this one", host["this_host"])) if on]
    return f"host: {host['name']}{labels} pid {host['pid']}, {seen}" + (f" ({', '.join(marks)})" if marks else "")


def reload_text(data: dict) -> str:
    lines = [f"reloaded: added {', '.join(data['added']) or 'none'}; changed {', '.join(data['changed']) or 'none'}; "
             f"removed {', '.join(data['removed']) or 'none'}"]
    return "\n".join(lines + _invalid_lines(data["errors"]))


def gc_text(data: dict) -> str:
    verb = "would remove" if data["dry_run"] else "removed"
    lines = [f"{verb} {ref}" for ref in data["removed"]]
    if data["removed_count"] > len(data["removed"]):
        lines.append(f"... and {data['removed_count'] - len(data['removed'])} more")
    freed = "would free" if data["dry_run"] else "freed"
    lines.append(f"{verb} {data['removed_count']} runs; {freed} {size(data['bytes_freed'])}")
    return "\n".join(lines)




def started_text(run: dict) -> str:
    retry = f", a retry of {run['retry_of']}" if run.get("retry_of") else ""
    return f"started {run['run']} ({run['state']}){retry}; artifacts in {run['artifacts']}"


def outcome_text(run: dict) -> str:
    """The one line `jobs run --wait/--follow` ends with; the reason of a run that did not succeed
    ("p/3: skipped (skipped): dependency_unmet: backup: never ran, needs < 26h")."""
    attempts = run.get("attempt_list") or []
    reason = None
    if run["state"] != RunState.SUCCEEDED.value:  # a start that failed has its reason on the attempt
        reason = run.get("reason") or (attempts[-1]["error"] if attempts and attempts[-1]["error"] else None)
    return f"{run['run']}: {run['state']} ({result_text(run)})" + (f": {reason}" if reason else "")


def next_text(data: dict) -> str:
    return "\n".join(data["times"]) if data["times"] else f"{data['job']}: no schedule (manual only)"


_EVENT_KEYS = frozenset({"seq", "ts", "type", "job", "run"})


def event_line(data: dict) -> str:
    extra = " ".join(f"{k}={v}" for k, v in data.items() if k not in _EVENT_KEYS)
    return f"{data['seq']:>6} {when(data['ts'])} {data['type']:<22} {data['run'] or data['job'] or '-'} {extra}"


def validate_text(results: list[dict]) -> str:
    lines = []
    for r in results:
        if not r["problems"]:
            lines.append(f"ok       {r['file']}")
        for p in r["problems"]:
            lines.append(f"invalid  {r['file']}: {p['field'] + ': ' if p['field'] else ''}{p['message']}")
    return "\n".join(lines)


def error_text(error: JobsdError) -> str:
    return f"jobsctl: {error.message} [{error.code.value}]"


def detached_text(ref: str) -> str:
    """What Ctrl-C on a follower says: the run goes on, and how to get back to it."""
    job_id, _, n = ref.partition("/")
    return f"\ndetached from {ref}; it goes on. Re-attach: jobsctl jobs tail {job_id}{' --run ' + n if n else ''} -f"


def timestamped(data: bytes, read_at: float) -> bytes:
    """`jobs tail --timestamps`: each line of a chunk prefixed with the chunk's read time."""
    prefix = iso(read_at, timespec="microseconds").encode() + b" "
    return b"".join(prefix + line for line in data.splitlines(keepends=True))


# ---------------------------------------------------------------------- small pieces
def status_text(run: dict | None) -> str:
    """The RESULT column: result_text, or for a run waiting for its gates what it waits for
    ("waiting: backup: running now (backup/7)", "waiting: approval by @ops", "waiting: slot: 4 of 4 busy")."""
    if run is not None and run.get("state") == RunState.QUEUED.value and (
            run.get("wait_detail") or run.get("wait_reason") in (WaitReason.DEPENDENCY.value, WaitReason.APPROVAL.value)):
        return f"waiting: {run.get('wait_detail') or run['wait_reason']}"
    return result_text(run)


def result_text(run: dict | None) -> str:
    """describe_result for a run's JSON shape: "-" for no run (or a state this client cannot name)."""
    if run is None or run["state"] is None:
        return "-"
    return describe_result(RunState(run["state"]), run["exit_code"], run["signal"])


def size(count: int) -> str:
    """Bytes for people: 512 B, 3.4 KiB, 12.0 MiB."""
    if count < 1024:
        return f"{count} B"
    value, units = count / 1024, ["KiB", "MiB", "GiB", "TiB"]
    while value >= 1024 and len(units) > 1:
        value, units = value / 1024, units[1:]
    return f"{value:.1f} {units[0]}"


def when(iso_time: str | None) -> str:
    """A compact local-free UTC time for tables: 2026-11-23 09:27:57Z."""
    return "-" if not iso_time else iso_time[:19].replace("T", " ") + "Z"


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *rows)]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(line, widths)).rstrip() for line in [headers, *rows]]
    return "\n".join(lines)
