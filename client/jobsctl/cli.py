"""jobsctl commands: parse -> call the RPC -> render. Business rules live in the daemon, every
text and JSON shape in jobsctl.render; a command here only parses, calls and prints."""
import os
import sys
from collections.abc import Callable
from typing import Optional

import typer

from jobsctl import render
from jobsctl.connection import Connection, resolve_socket
from jobsd_lib.errors import EXIT_NOT_STARTED, EXIT_OK, EXIT_REFUSED, EXIT_RUN_FAILED, JobsdError, exit_code_for
from jobsd_lib.kernel.states import RunState

app = typer.Typer(help="Control jobsd, the local job scheduler.", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False, rich_markup_mode=None)
jobs_app = typer.Typer(help="Jobs: list, inspect, run, follow.", no_args_is_help=True)
runs_app = typer.Typer(help="Runs: inspect, cancel, retry, approve, reject.", no_args_is_help=True)
daemon_app = typer.Typer(help="The daemon itself.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")
app.add_typer(runs_app, name="runs")
app.add_typer(daemon_app, name="daemon")

JsonOpt = typer.Option(False, "--json", help="print stable JSON on stdout (docs/cli.md)")
_state: dict[str, Optional[str]] = {"socket": None}
RUN_EXIT = {RunState.SUCCEEDED.value: EXIT_OK, RunState.SKIPPED.value: EXIT_NOT_STARTED,
            RunState.MISSED.value: EXIT_NOT_STARTED, RunState.REJECTED.value: EXIT_NOT_STARTED}  # any other end of a run: EXIT_RUN_FAILED
RUN_STATES = tuple(state.value for state in RunState)
LONG_TIMEOUT = 3600.0  # seconds: cancel waits out kill_grace, gc removes files; the daemon bounds both


@app.callback()
def _main(socket: Optional[str] = typer.Option(None, "--socket", help="jobsd's socket (else $JOBSD_SOCKET, "
                                               "else $JOBSD_HOME/jobsd.sock, else ~/.local/state/jobsd/jobsd.sock)")) -> None:
    _state["socket"] = socket


def _emit(data: dict, as_json: bool, human: Callable[[dict], str]) -> None:
    print(render.dumps(data) if as_json else human(data))


def _fail(error: JobsdError, as_json: bool) -> None:
    if as_json:
        print(render.dumps(render.error_json(error)))
    else:
        print(render.error_text(error), file=sys.stderr)
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
        answer = conn.call(conn.jobs.ListJobs, _pb().ListJobsRequest())
        _emit(render.jobs_json(answer), as_json, render.jobs_table)
    _guard(as_json, action)


@jobs_app.command("show")
def jobs_show(job: str, as_json: bool = JsonOpt) -> None:
    """One job in full."""
    def action() -> None:
        conn = _connect()
        data = render.job_json(conn.call(conn.jobs.GetJob, _pb().GetJobRequest(job=job)))
        _emit(data, as_json, render.job_text)
    _guard(as_json, action)


@jobs_app.command("run")
def jobs_run(job: str, wait: bool = typer.Option(False, "--wait", help="wait for the run to end; exit with its outcome"),
             follow: bool = typer.Option(False, "--follow", "-f", help="also stream its output"),
             as_json: bool = JsonOpt) -> None:
    """Start a run now. Returns once accepted (or, with --wait/--follow, when it ends)."""
    def action() -> None:
        conn = _connect()
        _started(conn, conn.call(conn.jobs.RunJob, _pb().RunJobRequest(job=job)), wait, follow, as_json)
    _guard(as_json, action)


def _started(conn, answer, wait: bool, follow: bool, as_json: bool) -> None:  # noqa: ANN001
    """A new run (RunJob, RetryRun): print it, or wait for its end and exit with its outcome."""
    run = render.run_json(answer)
    if not (wait or follow):
        _emit(run, as_json, render.started_text)
        raise typer.Exit(EXIT_NOT_STARTED if run["state"] == RunState.SKIPPED.value else EXIT_OK)
    from jobsctl.follow import follow_run

    final = follow_run(conn, run["job"], run["n"], print_output=follow, from_start=True)
    if follow and not as_json:  # stdout carries only the job's own stdout
        print(render.outcome_text(final), file=sys.stderr)
    else:
        _emit(final, as_json, render.outcome_text)
    raise typer.Exit(RUN_EXIT.get(final["state"], EXIT_RUN_FAILED))


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
        _emit(render.runs_json(answer), as_json, render.runs_table)
    _guard(as_json, action)


@jobs_app.command("next")
def jobs_next(job: str, count: int = typer.Option(5, "--count", "-c", callback=_fits("NextRunTimesRequest.count", 1),
                                                 help="how many (1-1000)"),
              as_json: bool = JsonOpt) -> None:
    """The job's next scheduled fire times (UTC). A manual-only job has none."""
    def action() -> None:
        conn = _connect()
        answer = conn.call(conn.jobs.NextRunTimes, _pb().NextRunTimesRequest(job=job, count=count))
        _emit(render.next_json(job, answer), as_json, render.next_text)
    _guard(as_json, action)


def _operator(job: str, method: str, verb: str, as_json: bool) -> None:
    def action() -> None:
        conn = _connect()
        data = render.job_json(conn.call(getattr(conn.jobs, method), _pb().JobRequest(job=job)))
        _emit(data, as_json, lambda d: render.operator_text(d, verb))
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


@jobs_app.command("graph")
def jobs_graph(job: Optional[str] = typer.Argument(None, help="only the jobs connected to this one"),
               dot: bool = typer.Option(False, "--dot", help="Graphviz DOT (pipe it to `dot -Tsvg`)"),
               as_json: bool = JsonOpt) -> None:
    """The `after` graph: every job and its upstreams (or those connected to JOB)."""
    def action() -> None:
        conn = _connect()
        data = render.graph_json(conn.call(conn.jobs.GetGraph, _pb().GetGraphRequest(job=job or "")))
        _emit(data, as_json, render.graph_dot if dot else render.graph_text)
    _guard(as_json, action)


@jobs_app.command("validate")
def jobs_validate(paths: Optional[list[str]] = typer.Argument(None, help="spec files or folders (default: the jobs dir)"),
                  as_json: bool = JsonOpt) -> None:
    """Check spec files without a daemon, with the daemon's messages."""
    from jobsctl.validate import validate_paths
    from jobsd_lib.paths import default_home, jobs_dir

    results = validate_paths(paths or [jobs_dir(default_home(os.environ, os.path.expanduser("~")))])
    data = render.validate_json(results)
    _emit(data, as_json, lambda d: render.validate_text(d["files"]))
    raise typer.Exit(EXIT_OK if data["valid"] else EXIT_REFUSED)


# ---------------------------------------------------------------------- runs, events, daemon
@runs_app.command("show")
def runs_show(ref: str, as_json: bool = JsonOpt) -> None:
    """One run in full: JOB/N."""
    def action() -> None:
        from jobsd_lib.refs import parse_run_ref

        parse_run_ref(ref)  # the daemon's parser: a reference it would refuse is refused without a call
        conn = _connect()
        data = render.run_json(conn.call(conn.jobs.GetRun, _pb().GetRunRequest(run=ref)))
        _emit(data, as_json, render.run_text)
    _guard(as_json, action)


@runs_app.command("cancel")
def runs_cancel(ref: str, as_json: bool = JsonOpt) -> None:
    """Cancel a queued, running or retrying run (JOB/N): SIGTERM to its process group, SIGKILL after
    kill_grace; no retry follows. Waits for the run to end."""
    def action() -> None:
        from jobsd_lib.refs import parse_run_ref

        parse_run_ref(ref)
        conn = _connect()
        data = render.run_json(conn.call(conn.jobs.CancelRun, _pb().CancelRunRequest(run=ref), timeout=LONG_TIMEOUT))
        _emit(data, as_json, render.cancel_text)
    _guard(as_json, action)


@runs_app.command("retry")
def runs_retry(ref: str, wait: bool = typer.Option(False, "--wait", help="wait for the new run to end; exit with its outcome"),
               follow: bool = typer.Option(False, "--follow", "-f", help="also stream its output"),
               as_json: bool = JsonOpt) -> None:
    """Run a finished run (JOB/N) again: a new run with the job's current spec, trigger retry, the
    original's scheduled time kept. Refused (run_not_finished) while the run is active."""
    def action() -> None:
        from jobsd_lib.refs import parse_run_ref

        parse_run_ref(ref)
        conn = _connect()
        _started(conn, conn.call(conn.jobs.RetryRun, _pb().RetryRunRequest(run=ref)), wait, follow, as_json)
    _guard(as_json, action)


def _decide(ref: str, approve: bool, comment: str, as_json: bool) -> None:
    def action() -> None:
        from jobsd_lib.refs import parse_run_ref

        parse_run_ref(ref)
        conn = _connect()
        rpc = conn.jobs.ApproveRun if approve else conn.jobs.RejectRun
        data = render.run_json(conn.call(rpc, _pb().DecideRunRequest(run=ref, comment=comment)))
        _emit(data, as_json, render.decided_text)
    _guard(as_json, action)


CommentOpt = typer.Option("", "--comment", "-m", help="why, for the record (one line, at most 1000 characters)")


@runs_app.command("approve")
def runs_approve(ref: str, comment: str = CommentOpt, as_json: bool = JsonOpt) -> None:
    """Let a run waiting for approval (JOB/N, [gates] approval) go on. Who you are is what the
    socket says (your uid); a job's [gates] approvers limits who may."""
    _decide(ref, True, comment, as_json)


@runs_app.command("reject")
def runs_reject(ref: str, comment: str = CommentOpt, as_json: bool = JsonOpt) -> None:
    """End a run waiting for approval (JOB/N) as rejected: no attempt runs."""
    _decide(ref, False, comment, as_json)


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
        _emit(render.gc_json(answer), as_json, render.gc_text)
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
        line = render.dumps if as_json else render.event_line
        try:
            for event in stream:
                print(line(render.event_json(event)), flush=True)
        except KeyboardInterrupt:
            stream.cancel()
    _guard(as_json, action)


@daemon_app.command("status")
def daemon_status(as_json: bool = JsonOpt) -> None:
    """Is the daemon healthy? Version, pid, uptime, jobs by state, runs, followers, store."""
    def action() -> None:
        conn = _connect()
        data = render.health_json(conn.call(conn.daemon.GetHealth, _pb().GetHealthRequest()))
        _emit(data, as_json, render.health_text)
    _guard(as_json, action)


@daemon_app.command("reload")
def daemon_reload(as_json: bool = JsonOpt) -> None:
    """Re-read the jobs directory and apply the difference (like SIGHUP)."""
    def action() -> None:
        conn = _connect()
        answer = conn.call(conn.daemon.Reload, _pb().ReloadRequest())
        _emit(render.reload_json(answer), as_json, render.reload_text)
    _guard(as_json, action)
