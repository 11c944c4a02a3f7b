"""jobsctl commands: parse -> call the RPC -> render. Business rules live in the daemon."""
import os
import sys
from collections.abc import Callable
from typing import Optional

import typer

from jobsctl import render
from jobsctl.connection import Connection, resolve_socket
from jobsd_lib.errors import EXIT_NOT_STARTED, EXIT_OK, EXIT_REFUSED, EXIT_RUN_FAILED, JobsdError, exit_code_for

app = typer.Typer(help="Control jobsd, the local job scheduler.", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False, rich_markup_mode=None)
jobs_app = typer.Typer(help="Jobs: list, inspect, run, follow.", no_args_is_help=True)
runs_app = typer.Typer(help="Runs: inspect, cancel.", no_args_is_help=True)
daemon_app = typer.Typer(help="The daemon itself.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")
app.add_typer(runs_app, name="runs")
app.add_typer(daemon_app, name="daemon")

JsonOpt = typer.Option(False, "--json", help="print stable JSON on stdout (docs/cli.md)")
_state: dict[str, Optional[str]] = {"socket": None}
RUN_EXIT = {"succeeded": EXIT_OK, "skipped": EXIT_NOT_STARTED, "missed": EXIT_NOT_STARTED}
LONG_TIMEOUT = 3600.0  # seconds: cancel waits out kill_grace, gc removes files; the daemon bounds both


@app.callback()
def _main(socket: Optional[str] = typer.Option(None, "--socket", help="jobsd's socket (else $JOBSD_SOCKET, "
                                               "else $JOBSD_HOME/jobsd.sock, else ~/.local/state/jobsd/jobsd.sock)")) -> None:
    _state["socket"] = socket


def _emit(data: dict, as_json: bool, human: Callable[[], str]) -> None:
    print(_dumps(data) if as_json else human())


def _dumps(data: dict) -> str:
    import json  # only --json needs it

    return json.dumps(data)


def _fail(error: JobsdError, as_json: bool) -> None:
    if as_json:
        print(_dumps({"error": {"code": error.code.value, "message": error.message}}))
    else:
        print(f"jobsctl: {error.message} [{error.code.value}]", file=sys.stderr)
    raise typer.Exit(exit_code_for(error.code))


def _fits(field: str, lowest: int | None = None) -> Callable[[Optional[int]], Optional[int]]:
    """A typer callback: the option's number must fit request field `field` ("TailRequest.run").

    The range is the daemon's own (jobsd_lib.limits, from the field's proto type), raised to
    `lowest` where the option means less than the field can say (the CLI sends 1..N, never the
    proto's "0: default"). Out of it is a usage error (exit 2) naming the option and the range,
    before any RPC: protobuf would otherwise raise ValueError (a traceback) while building the
    request, or the daemon would refuse it.
    """
    message, name = field.split(".")

    def check(value: Optional[int]) -> Optional[int]:
        if value is None:
            return value
        from jobsd_lib.limits import int_range

        proto_type = getattr(_pb(), message).DESCRIPTOR.fields_by_name[name].type
        low, high, _note = int_range(message, name, proto_type)
        low = low if lowest is None else max(low, lowest)
        if not low <= value <= high:
            raise typer.BadParameter(f"{value} is not between {low} and {high}")
        return value
    return check


def _connect() -> Connection:
    return Connection(resolve_socket(_state["socket"]))


def _pb():  # noqa: ANN202
    from jobsd_lib.rpc import jobsd_pb2

    return jobsd_pb2


def _guard(as_json: bool, action: Callable[[], None]) -> None:
    try:
        action()
    except JobsdError as error:
        _fail(error, as_json)


# ---------------------------------------------------------------------- jobs
@jobs_app.command("list")
def jobs_list(as_json: bool = JsonOpt) -> None:
    """Every job: state, schedule, next run, last result, consecutive failures."""
    def action() -> None:
        conn = _connect()
        jobs = [render.job_json(j) for j in conn.call(conn.jobs.ListJobs, _pb().ListJobsRequest()).jobs]
        _emit({"jobs": jobs}, as_json, lambda: _jobs_table(jobs))
    _guard(as_json, action)


def _jobs_table(jobs: list[dict]) -> str:
    rows = []
    for j in jobs:
        last = j["last_run"]
        schedule = f"{j['schedule']['cron']} {j['schedule']['timezone']}" if j["schedule"] else "manual"
        rows.append([j["id"], j["state"], schedule, render.when(j["next_run_at"]),
                     render.when(last["started_at"] or last["queued_at"]) if last else "-",
                     render.result_text(last), str(j["consecutive_failures"] or "-")])
    text = render.table(["ID", "STATE", "SCHEDULE", "NEXT RUN", "LAST RUN", "RESULT", "FAILS"], rows)
    problems = [f"  {j['id']}: {j['error']['message']}" for j in jobs if j["error"]]
    return text + ("\n\ninvalid specs:\n" + "\n".join(problems) if problems else "")


@jobs_app.command("show")
def jobs_show(job: str, as_json: bool = JsonOpt) -> None:
    """One job in full."""
    def action() -> None:
        conn = _connect()
        data = render.job_json(conn.call(conn.jobs.GetJob, _pb().GetJobRequest(job=job)))
        _emit(data, as_json, lambda: _job_text(data))
    _guard(as_json, action)


def _job_text(j: dict) -> str:
    lines = [f"job:          {j['id']}", f"state:        {j['state']}", f"description:  {j['description'] or '-'}",
             f"file:         {j['file']}", f"command:      {' '.join(j['command']) or '-'}"]
    if j["schedule"]:
        s = j["schedule"]
        lines.append(f"schedule:     {s['cron']} ({s['timezone']}), misfire grace {s['misfire_grace']:g}s, "
                     f"coalesce {str(s['coalesce']).lower()}, catch_up {str(s['catch_up']).lower()}")
        lines.append(f"next run:     {render.when(j['next_run_at'])}")
    else:
        lines.append("schedule:     manual only")
    last = j["last_run"]
    lines.append(f"last run:     {last['run'] + ' ' + render.result_text(last) if last else '-'}")
    lines.append(f"failures:     {j['consecutive_failures']} in a row")
    if j["error"]:
        where = f" ({j['error']['field']})" if j["error"]["field"] else ""
        lines.append(f"error:        {j['error']['code']}{where}: {j['error']['message']}")
    return "\n".join(lines)


@jobs_app.command("run")
def jobs_run(job: str, wait: bool = typer.Option(False, "--wait", help="wait for the run to end; exit with its outcome"),
             follow: bool = typer.Option(False, "--follow", "-f", help="also stream its output"),
             as_json: bool = JsonOpt) -> None:
    """Start a run now. Returns once accepted (or, with --wait/--follow, when it ends)."""
    def action() -> None:
        conn = _connect()
        run = render.run_json(conn.call(conn.jobs.RunJob, _pb().RunJobRequest(job=job)))
        if not (wait or follow):
            _emit(run, as_json, lambda: f"started {run['run']} ({run['state']}); artifacts in {run['artifacts']}")
            raise typer.Exit(RUN_EXIT.get(run["state"], EXIT_OK) if run["state"] == "skipped" else EXIT_OK)
        from jobsctl.follow import follow_run

        final = follow_run(conn, job, run["n"], print_output=follow, from_start=True)
        summary = f"{final['run']}: {final['state']} ({render.result_text(final)})"
        if follow and not as_json:  # stdout carries only the job's own stdout
            print(summary, file=sys.stderr)
        else:
            _emit(final, as_json, lambda: summary)
        raise typer.Exit(RUN_EXIT.get(final["state"], EXIT_RUN_FAILED))
    _guard(as_json, action)


@jobs_app.command("tail")
def jobs_tail(job: str, run: int = typer.Option(0, "--run", callback=_fits("TailRequest.run"),
                                               help="run number (default: active, else latest)"),
              follow: bool = typer.Option(False, "--follow", "-f", help="keep streaming until the run ends"),
              lines: Optional[int] = typer.Option(None, "--lines", "-n", callback=_fits("TailRequest.last_lines"),
                                                  help="start with the last N lines"),
              timestamps: bool = typer.Option(False, "--timestamps", "-t", help="prefix lines with read time")) -> None:
    """A run's output: stdout to stdout, stderr to stderr, raw bytes."""
    def action() -> None:
        from jobsctl.follow import follow_run

        conn = _connect()
        final = follow_run(conn, job, run, print_output=True, from_start=lines is None, last_lines=lines,
                           follow=follow, timestamps=timestamps)
        if follow:
            raise typer.Exit(RUN_EXIT.get(final["state"], EXIT_RUN_FAILED))
    _guard(False, action)


RUN_STATES = ("queued", "running", "retrying", "succeeded", "failed", "timed_out", "cancelled", "interrupted",
              "skipped", "missed")


@jobs_app.command("history")
def jobs_history(job: str, limit: int = typer.Option(20, "--limit", callback=_fits("ListRunsRequest.limit", 1),
                                                    help="runs per page (1-1000)"),
                 cursor: str = typer.Option("", "--cursor", help="next_cursor of a previous page"),
                 state: list[str] = typer.Option([], "--state", help="only runs in this state (repeatable): "
                                                 + ", ".join(RUN_STATES)),
                 as_json: bool = JsonOpt) -> None:
    """A job's runs, newest first."""
    for name in state:
        if name not in RUN_STATES:
            raise typer.BadParameter(f"{name!r} is not a run state; one of: {', '.join(RUN_STATES)}",
                                     param_hint="--state")

    def action() -> None:
        conn = _connect()
        states = [_pb().RunState.Value(f"RUN_STATE_{name.upper()}") for name in state]
        answer = conn.call(conn.jobs.ListRuns, _pb().ListRunsRequest(job=job, limit=limit, cursor=cursor,
                                                                     states=states))
        runs = [render.run_json(r) for r in answer.runs]
        data = {"runs": runs, "next_cursor": answer.next_cursor or None}
        _emit(data, as_json, lambda: _runs_table(runs, answer.next_cursor))
    _guard(as_json, action)


def _runs_table(runs: list[dict], cursor: str) -> str:
    rows = [[r["run"], r["state"], r["trigger"] or "-", render.when(r["queued_at"]), render.when(r["finished_at"]),
             str(r["attempts"]), render.result_text(r)] for r in runs]
    text = render.table(["RUN", "STATE", "TRIGGER", "QUEUED", "FINISHED", "ATTEMPTS", "RESULT"], rows)
    return text + (f"\nmore: --cursor {cursor}" if cursor else "")


def _rfc3339(stamp) -> str:  # noqa: ANN001
    from datetime import datetime, timezone

    return datetime.fromtimestamp(stamp.seconds + stamp.nanos / 1e9, timezone.utc).isoformat()


@jobs_app.command("next")
def jobs_next(job: str, count: int = typer.Option(5, "--count", "-c", callback=_fits("NextRunTimesRequest.count", 1),
                                                 help="how many (1-1000)"),
              as_json: bool = JsonOpt) -> None:
    """The job's next scheduled fire times (UTC). A manual-only job has none."""
    def action() -> None:
        conn = _connect()
        answer = conn.call(conn.jobs.NextRunTimes, _pb().NextRunTimesRequest(job=job, count=count))
        times = [_rfc3339(t) for t in answer.times]
        data = {"job": job, "times": times}
        _emit(data, as_json, lambda: "\n".join(times) if times else f"{job}: no schedule (manual only)")
    _guard(as_json, action)


def _operator(job: str, method: str, verb: str, as_json: bool) -> None:
    def action() -> None:
        conn = _connect()
        data = render.job_json(conn.call(getattr(conn.jobs, method), _pb().JobRequest(job=job)))

        def human() -> str:
            text = f"{data['id']}: {verb}; state {data['state']}"
            if verb == "enabled" and data["state"] == "disabled":
                text += " (still disabled: the spec says enabled = false; edit it and `jobsctl daemon reload`)"
            return text
        _emit(data, as_json, human)
    _guard(as_json, action)


@jobs_app.command("pause")
def jobs_pause(job: str, as_json: bool = JsonOpt) -> None:
    """Stop scheduled runs (missed windows are recorded skipped); manual runs still allowed."""
    _operator(job, "PauseJob", "paused", as_json)


@jobs_app.command("resume")
def jobs_resume(job: str, as_json: bool = JsonOpt) -> None:
    """Undo pause: scheduled runs again."""
    _operator(job, "ResumeJob", "resumed", as_json)


@jobs_app.command("disable")
def jobs_disable(job: str, as_json: bool = JsonOpt) -> None:
    """No runs at all (RunJob answers job_disabled) until enabled; kept across restarts."""
    _operator(job, "DisableJob", "disabled", as_json)


@jobs_app.command("enable")
def jobs_enable(job: str, as_json: bool = JsonOpt) -> None:
    """Undo disable. A spec with enabled = false stays disabled."""
    _operator(job, "EnableJob", "enabled", as_json)


@jobs_app.command("validate")
def jobs_validate(paths: Optional[list[str]] = typer.Argument(None, help="spec files or folders (default: the jobs dir)"),
                  as_json: bool = JsonOpt) -> None:
    """Check spec files without a daemon, with the daemon's messages."""
    from jobsctl.validate import validate_paths

    results = validate_paths(paths or [os.path.join(os.environ.get("JOBSD_HOME") or
                                                    os.path.expanduser("~/.local/state/jobsd"), "jobs")])
    bad = [r for r in results if r["problems"]]
    if as_json:
        print(_dumps({"files": results, "valid": not bad}))
    else:
        for r in results:
            if not r["problems"]:
                print(f"ok       {r['file']}")
            for p in r["problems"]:
                print(f"invalid  {r['file']}: {p['field'] + ': ' if p['field'] else ''}{p['message']}")
    raise typer.Exit(EXIT_REFUSED if bad else EXIT_OK)


# ---------------------------------------------------------------------- runs, events, daemon
@runs_app.command("show")
def runs_show(ref: str, as_json: bool = JsonOpt) -> None:
    """One run in full: JOB/N."""
    def action() -> None:
        from jobsd_lib.refs import parse_run_ref

        parse_run_ref(ref)  # the daemon's parser: a reference it would refuse is refused without a call
        conn = _connect()
        data = render.run_json(conn.call(conn.jobs.GetRun, _pb().GetRunRequest(run=ref)))
        _emit(data, as_json, lambda: _run_text(data))
    _guard(as_json, action)


def _run_text(r: dict) -> str:
    keys = ["state", "trigger", "wait_reason", "reason", "attempts", "max_attempts", "exit_code", "signal",
            "scheduled_at", "queued_at", "started_at", "finished_at", "next_attempt_at", "artifacts"]
    lines = [f"run:             {r['run']} ({render.result_text(r)})"]
    lines += [f"{k + ':':16} {r[k]}" for k in keys if r[k] not in (None, "")]
    for a in r["attempt_list"]:
        lines.append(f"attempt {a['number']}:       exit {a['exit_code']} signal {a['signal']} pid {a['pid']} "
                     f"output {a['output_bytes']}B dropped {a['dropped_bytes']}B{' ' + a['error'] if a['error'] else ''}")
    return "\n".join(lines)


@runs_app.command("cancel")
def runs_cancel(ref: str, as_json: bool = JsonOpt) -> None:
    """Cancel a queued, running or retrying run (JOB/N): SIGTERM to its process group, SIGKILL after
    kill_grace; no retry follows. Waits for the run to end."""
    def action() -> None:
        from jobsd_lib.refs import parse_run_ref

        parse_run_ref(ref)
        conn = _connect()
        data = render.run_json(conn.call(conn.jobs.CancelRun, _pb().CancelRunRequest(run=ref), timeout=LONG_TIMEOUT))

        def human() -> str:
            if data["state"] == "cancelled":
                return f"cancelled {data['run']}"
            return f"cancel of {data['run']} requested; it is still {data['state']} (see `jobsctl runs show {data['run']}`)"
        _emit(data, as_json, human)
    _guard(as_json, action)


@app.command("gc")
def gc(keep_last: Optional[int] = typer.Option(None, "--keep-last", callback=_fits("CollectGarbageRequest.keep_last"),
                                               help="keep each job's N newest finished runs (0-1000000)"),
       older_than: Optional[str] = typer.Option(None, "--older-than",
                                                help="keep runs that finished less than this long ago (90m, 12h, 30d)"),
       job: str = typer.Option("", "--job", help="only this job's runs"),
       dry_run: bool = typer.Option(False, "--dry-run", help="show what would be removed; change nothing"),
       as_json: bool = JsonOpt) -> None:
    """Remove finished runs (records and artifact folders) that no rule keeps. Active runs are never touched."""
    from jobsd_lib.units import parse_duration

    seconds = None
    if older_than is not None:
        try:
            seconds = parse_duration(older_than)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--older-than") from None

    def action() -> None:
        conn = _connect()
        request = _pb().CollectGarbageRequest(job=job, dry_run=dry_run, keep_last=keep_last,
                                              older_than_seconds=seconds)
        answer = conn.call(conn.daemon.CollectGarbage, request, timeout=LONG_TIMEOUT)
        data = {"removed": list(answer.removed), "removed_count": answer.removed_count,
                "bytes_freed": answer.bytes_freed, "dry_run": answer.dry_run}

        def human() -> str:
            verb = "would remove" if data["dry_run"] else "removed"
            lines = [f"{verb} {ref}" for ref in data["removed"]]
            if data["removed_count"] > len(data["removed"]):
                lines.append(f"... and {data['removed_count'] - len(data['removed'])} more")
            freed = "would free" if data["dry_run"] else "freed"
            lines.append(f"{verb} {data['removed_count']} runs; {freed} {render.size(data['bytes_freed'])}")
            return "\n".join(lines)
        _emit(data, as_json, human)
    _guard(as_json, action)


@app.command("events")
def events(job: str = typer.Option("", "--job", help="only this job's events"),
           follow: bool = typer.Option(False, "--follow", "-f", help="keep printing new events"),
           after: int = typer.Option(0, "--after", callback=_fits("WatchEventsRequest.after_seq"),
                                     help="resume after this seq"),
           last: int = typer.Option(20, "--last", "-n", callback=_fits("WatchEventsRequest.last"),
                                    help="start with the last N events (0: all)"),
           as_json: bool = JsonOpt) -> None:
    """Lifecycle events of all jobs (or one), in order."""
    def action() -> None:
        conn = _connect()
        request = _pb().WatchEventsRequest(job=job, after_seq=after, follow=follow, last=last)
        stream = conn.stream(conn.jobs.WatchEvents, request)
        try:
            for event in stream:
                data = render.event_json(event)
                extra = " ".join(f"{k}={v}" for k, v in data.items() if k not in ("seq", "ts", "type", "job", "run"))
                print(_dumps(data) if as_json else
                      f"{data['seq']:>6} {render.when(data['ts'])} {data['type']:<22} {data['run'] or data['job'] or '-'} {extra}",
                      flush=True)
        except KeyboardInterrupt:
            stream.cancel()
        except conn._grpc.RpcError as err:  # noqa: SLF001
            raise conn.translate(err) from None
    _guard(as_json, action)


@daemon_app.command("status")
def daemon_status(as_json: bool = JsonOpt) -> None:
    """Is the daemon healthy? Version, pid, uptime, jobs by state, runs, followers, store."""
    def action() -> None:
        conn = _connect()
        data = render.health_json(conn.call(conn.daemon.GetHealth, _pb().GetHealthRequest()))
        _emit(data, as_json, lambda: _health_text(data))
    _guard(as_json, action)


@daemon_app.command("reload")
def daemon_reload(as_json: bool = JsonOpt) -> None:
    """Re-read the jobs directory and apply the difference (like SIGHUP)."""
    def action() -> None:
        conn = _connect()
        answer = conn.call(conn.daemon.Reload, _pb().ReloadRequest())
        data = {"added": list(answer.added), "changed": list(answer.changed), "removed": list(answer.removed),
                "errors": [{"job": e.job, "file": e.file, "field": e.field or None, "message": e.message}
                           for e in answer.errors]}

        def human() -> str:
            lines = [f"reloaded: added {', '.join(data['added']) or 'none'}; changed {', '.join(data['changed']) or 'none'}; "
                     f"removed {', '.join(data['removed']) or 'none'}"]
            lines += [f"invalid: {e['file']}: {e['field'] + ': ' if e['field'] else ''}{e['message']}" for e in data["errors"]]
            return "\n".join(lines)
        _emit(data, as_json, human)
    _guard(as_json, action)


def _health_text(h: dict) -> str:
    jobs = h["jobs"]
    lines = [f"jobsd {h['version']} pid {h['pid']}, up {h['uptime_seconds']:.0f}s, socket {h['socket']}",
             f"scheduler: {h['scheduler']['state']} (last tick {render.when(h['scheduler']['last_tick'])})",
             f"jobs: {jobs['active']} active, {jobs['paused']} paused, {jobs['disabled']} disabled, {jobs['invalid']} invalid",
             f"runs: {h['runs']['active']} active, {h['runs']['queued']} queued (slots {h['max_concurrent_runs']}); "
             f"followers {h['followers']}",
             f"store: {h['store']['path']} ({h['store']['bytes']} bytes); lock {h['lock_file']}"]
    lines += [f"warning: {w}" for w in h["warnings"]]
    lines += [f"invalid: {e['file']}: {e['field'] + ': ' if e['field'] else ''}{e['message']}" for e in h["invalid_specs"]]
    lines += [f"degraded: {line}" for line in h["degraded"]]
    return "\n".join(lines)
