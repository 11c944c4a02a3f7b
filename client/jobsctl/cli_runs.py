"""jobsctl runs ...: show, cancel, retry, approve, reject."""
import typer

from jobsctl import render, render_runs
from jobsctl.common import LONG_TIMEOUT, FollowOpt, JsonOpt, RawOpt, RunArg, WaitOpt, _connect, _emit, _guard, _pb, _started, runs_app


@runs_app.command("show")
def runs_show(ref: str = RunArg, as_json: bool = JsonOpt) -> None:
    """One run in full: JOB/N."""
    def action() -> None:
        from jobsd_lib.refs import parse_run_ref

        parse_run_ref(ref)  # the daemon's parser: a reference it would refuse is refused without a call
        conn = _connect()
        data = render.run_json(conn.call(conn.jobs.GetRun, _pb().GetRunRequest(run=ref)))
        _emit(data, as_json, render_runs.run_text)
    _guard(as_json, action)


@runs_app.command("cancel")
def runs_cancel(ref: str = RunArg, as_json: bool = JsonOpt) -> None:
    """Cancel a queued, running or retrying run. SIGTERM to its process group, SIGKILL after
    kill_grace; no retry follows. Waits for the run to end."""
    def action() -> None:
        from jobsd_lib.refs import parse_run_ref

        parse_run_ref(ref)
        conn = _connect()
        data = render.run_json(conn.call(conn.jobs.CancelRun, _pb().CancelRunRequest(run=ref), timeout=LONG_TIMEOUT))
        _emit(data, as_json, render_runs.cancel_text)
    _guard(as_json, action)


@runs_app.command("retry")
def runs_retry(ref: str = RunArg, wait: bool = WaitOpt, follow: bool = FollowOpt, raw: bool = RawOpt,
               as_json: bool = JsonOpt) -> None:
    """Run a finished run again. A new run with the job's current spec, trigger retry, the
    original's scheduled time kept. Refused (run_not_finished) while the run is active."""
    def action() -> None:
        from jobsd_lib.refs import parse_run_ref

        parse_run_ref(ref)
        conn = _connect()
        _started(conn, conn.call(conn.jobs.RetryRun, _pb().RetryRunRequest(run=ref)), wait, follow, as_json, raw)
    _guard(as_json, action)


def _decide(ref: str, approve: bool, comment: str, as_json: bool) -> None:
    def action() -> None:
        from jobsd_lib.refs import parse_run_ref

        parse_run_ref(ref)
        conn = _connect()
        rpc = conn.jobs.ApproveRun if approve else conn.jobs.RejectRun
        data = render.run_json(conn.call(rpc, _pb().DecideRunRequest(run=ref, comment=comment)))
        _emit(data, as_json, render_runs.decided_text)
    _guard(as_json, action)


CommentOpt = typer.Option("", "--comment", "-m", help="why, for the record (one line, at most 1000 characters)")


@runs_app.command("approve")
def runs_approve(ref: str = RunArg, comment: str = CommentOpt, as_json: bool = JsonOpt) -> None:
    """Let a run waiting for approval (JOB/N, [gates] approval) go on. Who you are is what the
    socket says (your uid); a job's [gates] approvers limits who may."""
    _decide(ref, True, comment, as_json)


@runs_app.command("reject")
def runs_reject(ref: str = RunArg, comment: str = CommentOpt, as_json: bool = JsonOpt) -> None:
    """End a run waiting for approval as rejected. No attempt runs."""
    _decide(ref, False, comment, as_json)
