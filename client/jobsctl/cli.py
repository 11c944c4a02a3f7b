"""jobsctl commands: parse -> call the RPC -> render. Business rules live in the daemon, every
text and JSON shape in jobsctl.render; a command here only parses, calls and prints."""
import os
import sys
from typing import Optional

import typer

from jobsctl import render, render_ops
from jobsctl.common import (LONG_TIMEOUT, RUN_EXIT, RUN_STATES, FollowOpt, JobArg, JsonOpt, RawOpt, WaitOpt, _connect, _emit, _fits,
                            _guard, _pb, _started, app, daemon_app, jobs_app)
from jobsctl.complete import job_ids
from jobsd_lib.errors import EXIT_OK, EXIT_REFUSED, EXIT_RUN_FAILED, EXIT_UNREACHABLE

EXIT_PROBLEMS = 1  # jobsctl check: some job is failing, overdue or invalid

# ---------------------------------------------------------------------- jobs
@jobs_app.command("list")
def jobs_list(as_json: bool = JsonOpt) -> None:
    """Every job and how it is doing. State, schedule, next run, last result, consecutive failures."""
    def action() -> None:
        conn = _connect()
        answer = conn.call(conn.jobs.ListJobs, _pb().ListJobsRequest())
        _emit(render.jobs_json(answer), as_json, render.jobs_table)
    _guard(as_json, action)


@jobs_app.command("show")
def jobs_show(job: str = JobArg, as_json: bool = JsonOpt) -> None:
    """One job in full."""
    def action() -> None:
        conn = _connect()
        data = render.job_json(conn.call(conn.jobs.GetJob, _pb().GetJobRequest(job=job)))
        _emit(data, as_json, render.job_text)
    _guard(as_json, action)


@jobs_app.command("run")
def jobs_run(job: str = JobArg, wait: bool = WaitOpt, follow: bool = FollowOpt, raw: bool = RawOpt, as_json: bool = JsonOpt) -> None:
    """Start a run now. Returns once accepted (or, with --wait/--follow, when it ends)."""
    def action() -> None:
        conn = _connect()
        _started(conn, conn.call(conn.jobs.RunJob, _pb().RunJobRequest(job=job)), wait, follow, as_json, raw)
    _guard(as_json, action)


@jobs_app.command("tail")
def jobs_tail(job: str = JobArg, run: int = typer.Option(0, "--run", callback=_fits("TailRequest.run"),
                                               help="run number (default: active, else latest)"),
              follow: bool = typer.Option(False, "--follow", "-f", help="keep streaming until the run ends"),
              lines: Optional[int] = typer.Option(None, "--lines", "-n", callback=_fits("TailRequest.last_lines"),
                                                  help="start with the last N lines"),
              timestamps: bool = typer.Option(False, "--timestamps", "-t", help="prefix lines with read time"),
              raw: bool = RawOpt) -> None:
    """A run's output. Its stdout to stdout, its stderr to stderr, as raw bytes."""
    def action() -> None:
        from jobsctl.follow import follow_run

        conn = _connect()
        final = follow_run(conn, job, run, print_output=True, from_start=lines is None, last_lines=lines,
                           follow=follow, timestamps=timestamps, markers=not raw)
        if follow:
            raise typer.Exit(RUN_EXIT.get(final["state"], EXIT_RUN_FAILED))
    _guard(False, action)


@jobs_app.command("history")
def jobs_history(job: str = JobArg, limit: int = typer.Option(20, "--limit", callback=_fits("ListRunsRequest.limit", 1),
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
def jobs_next(job: str = JobArg, count: int = typer.Option(5, "--count", "-c", callback=_fits("NextRunTimesRequest.count", 1),
                                                 help="how many (1-1000)"),
              as_json: bool = JsonOpt) -> None:
    """The job's next scheduled fire times (UTC). A manual-only job has none."""
    def action() -> None:
        conn = _connect()
        answer = conn.call(conn.jobs.NextRunTimes, _pb().NextRunTimesRequest(job=job, count=count))
        _emit(render.next_json(job, answer), as_json, render.next_text)
    _guard(as_json, action)


def _operator(job: str, method: str, verb: str, as_json: bool, request) -> None:  # noqa: ANN001
    def action() -> None:
        conn = _connect()
        before = (render.job_json(conn.call(conn.jobs.GetJob, _pb().GetJobRequest(job=job)))
                  if getattr(request, "catch_up", False) else None)
        data = render.job_json(conn.call(getattr(conn.jobs, method), request))
        _emit(data, as_json, lambda d: render_ops.operator_text(d, verb, before))
    _guard(as_json, action)


ReasonOpt = typer.Option("", "--reason", help="why, one line (shown by jobs list/show, kept in the event)")
CatchUpOpt = typer.Option(False, "--catch-up", help="run once the latest cron window that passed meanwhile")


@jobs_app.command("pause")
def jobs_pause(job: str = JobArg, until: Optional[str] = typer.Option(
                   None, "--until", help="resume by itself then: a duration (90m, 2h, 1d, 2w) or a time "
                   "(2026-12-04T09:00, local unless it has an offset or Z)"),
               reason: str = ReasonOpt, as_json: bool = JsonOpt) -> None:
    """Stop scheduled runs until resumed. Cron windows pass without a record; manual runs are still allowed."""
    from datetime import datetime, timezone

    from jobsd_lib.times import parse_until

    request = _pb().PauseJobRequest(job=job, reason=reason)
    if until is not None:
        try:
            request.until.FromDatetime(parse_until(until, datetime.now(timezone.utc)).astimezone(timezone.utc))
        except (ValueError, OverflowError) as exc:
            raise typer.BadParameter(str(exc), param_hint="--until") from None
    _operator(job, "PauseJob", "paused", as_json, request)


@jobs_app.command("resume")
def jobs_resume(job: str = JobArg, catch_up: bool = CatchUpOpt, as_json: bool = JsonOpt) -> None:
    """Undo pause (or disable): scheduled runs again."""
    _operator(job, "ResumeJob", "resumed", as_json, _pb().ResumeJobRequest(job=job, catch_up=catch_up))


@jobs_app.command("disable")
def jobs_disable(job: str = JobArg, reason: str = ReasonOpt, as_json: bool = JsonOpt) -> None:
    """No runs at all until enabled. RunJob answers job_disabled; kept across restarts."""
    _operator(job, "DisableJob", "disabled", as_json, _pb().PauseJobRequest(job=job, reason=reason))


@jobs_app.command("enable")
def jobs_enable(job: str = JobArg, catch_up: bool = CatchUpOpt, as_json: bool = JsonOpt) -> None:
    """Undo disable. A spec with enabled = false stays disabled."""
    _operator(job, "EnableJob", "enabled", as_json, _pb().ResumeJobRequest(job=job, catch_up=catch_up))


@jobs_app.command("forget-state")
def jobs_forget_state(job: str = JobArg, as_json: bool = JsonOpt) -> None:
    """Remove the job's JOBSD_STATE_DIR. What its runs kept between runs is gone; audited (job.state_forgotten)."""
    def action() -> None:
        conn = _connect()
        answer = conn.call(conn.jobs.ForgetJobState, _pb().JobRequest(job=job))
        data = {"job": job, "path": answer.path, "removed": answer.removed, "bytes_freed": answer.bytes_freed}
        _emit(data, as_json, render_ops.forgot_text)
    _guard(as_json, action)


@jobs_app.command("graph")
def jobs_graph(job: Optional[str] = typer.Argument(None, help="only the jobs connected to this one", autocompletion=job_ids),
               dot: bool = typer.Option(False, "--dot", help="Graphviz DOT (pipe it to `dot -Tsvg`)"),
               as_json: bool = JsonOpt) -> None:
    """The `after` graph of jobs. Every job and its upstreams, or those connected to JOB."""
    def action() -> None:
        conn = _connect()
        from jobsctl import render_graph

        data = render_graph.graph_json(conn.call(conn.jobs.GetGraph, _pb().GetGraphRequest(job=job or "")))
        _emit(data, as_json, render_graph.graph_dot if dot else render_graph.graph_text)
    _guard(as_json, action)


@jobs_app.command("validate")
def jobs_validate(paths: Optional[list[str]] = typer.Argument(None, help="spec files or folders (default: the jobs dir)"),
                  as_json: bool = JsonOpt) -> None:
    """Check spec files without a daemon. The messages are the daemon's."""
    from jobsctl.validate import validate_paths
    from jobsd_lib.paths import default_home, jobs_dir

    results = validate_paths(paths or [jobs_dir(default_home(os.environ, os.path.expanduser("~")))])
    data = render.validate_json(results)
    _emit(data, as_json, lambda d: render.validate_text(d["files"]))
    raise typer.Exit(EXIT_OK if data["valid"] else EXIT_REFUSED)


@app.command("gc")
def gc(keep_last: Optional[int] = typer.Option(None, "--keep-last", callback=_fits("CollectGarbageRequest.keep_last"),
                                               help="keep each job's N newest finished runs (0-1000000)"),
       older_than: Optional[str] = typer.Option(None, "--older-than",
                                                help="keep runs that finished less than this long ago (90m, 12h, 30d)"),
       job: str = typer.Option("", "--job", help="only this job's runs", autocompletion=job_ids),
       dry_run: bool = typer.Option(False, "--dry-run", help="show what would be removed; change nothing"),
       as_json: bool = JsonOpt) -> None:
    """Remove finished runs that no rule keeps. Records and artifact folders go together; active runs are never touched."""
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


@app.command("check")
def check(jobs: Optional[list[str]] = typer.Argument(None, help="only these jobs (default: every job)", autocompletion=job_ids),
          as_json: bool = JsonOpt) -> None:
    """Exit 0 if every job is fine, else 1. With JOB..., only those; one line a problem: failing, overdue or invalid."""
    def action() -> None:
        conn = _connect()
        listed = render.jobs_json(conn.call(conn.jobs.ListJobs, _pb().ListJobsRequest()))
        known = {j["id"] for j in listed["jobs"]}
        for job in jobs or []:
            if job not in known:
                from jobsd_lib.errors import JobNotFound

                raise JobNotFound(job)
        data = render_ops.check_json(listed, jobs or [])
        _emit(data, as_json, render_ops.check_text)
        raise typer.Exit(EXIT_OK if data["ok"] else EXIT_PROBLEMS)
    _guard(as_json, action)


@app.command("events")
def events(job: str = typer.Option("", "--job", help="only this job's events", autocompletion=job_ids),
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
        seq = after
        try:
            for event in stream:
                seq = event.seq
                print(line(render.event_json(event)), flush=True)
        except KeyboardInterrupt:
            stream.cancel()
            return
        if follow:  # a followed stream ends only when jobsd stops: say so, like a lost connection
            print(f"jobsctl: jobsd stopped; the event stream ended (go on with --after {seq})", file=sys.stderr)
            raise typer.Exit(EXIT_UNREACHABLE)
    _guard(as_json, action)


@app.command("metrics")
def metrics() -> None:
    """The daemon's Prometheus metrics. In the text exposition format (docs/operations.md)."""
    def action() -> None:
        conn = _connect()
        print(conn.call(conn.daemon.GetMetrics, _pb().GetMetricsRequest()).text, end="")
    _guard(False, action)


@daemon_app.command("status")
def daemon_status(as_json: bool = JsonOpt) -> None:
    """The daemon's health. Version, pid, uptime, jobs by state, runs, followers, store."""
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


import jobsctl.cli_runs  # noqa: E402, F401 - registers the `runs` commands on runs_app
