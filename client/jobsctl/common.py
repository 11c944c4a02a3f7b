"""What every jobsctl command shares: the typer apps, the connection, output and error handling,
and how a new run is printed or waited for (jobs run, runs retry)."""
import sys
from collections.abc import Callable
from typing import Optional

import typer

from jobsctl import render
from jobsctl.complete import job_ids, run_refs
from jobsctl.connection import Connection, resolve_socket
from jobsd_lib.errors import EXIT_NOT_STARTED, EXIT_OK, EXIT_RUN_FAILED, JobsdError, exit_code_for
from jobsd_lib.kernel.states import RunState

# click suggests close command names itself; typer's own suggestion printed the hint twice.
_APP = {"no_args_is_help": True, "suggest_commands": False, "context_settings": {"help_option_names": ["-h", "--help"]}}
app = typer.Typer(help="Control jobsd, the local job scheduler.", add_completion=True,
                  pretty_exceptions_enable=False, rich_markup_mode=None, **_APP)
jobs_app = typer.Typer(help="Jobs: list, inspect, run, follow.", **_APP)
runs_app = typer.Typer(help="Runs: inspect, cancel, retry, approve, reject.", **_APP)
daemon_app = typer.Typer(help="The daemon itself.", **_APP)
app.add_typer(jobs_app, name="jobs")
app.add_typer(runs_app, name="runs")
app.add_typer(daemon_app, name="daemon")

JobArg = typer.Argument(..., autocompletion=job_ids, show_default=False)
RunArg = typer.Argument(..., metavar="JOB/N", autocompletion=run_refs, show_default=False)
def _json_anywhere(value: bool) -> bool:
    """--json on the command, or before it (`jobsctl --json jobs list`, `jobsctl jobs --json list`)."""
    return value or bool(_state["json"])


def _set_json(value: bool) -> None:
    if value:
        _state["json"] = True


JsonOpt = typer.Option(False, "--json", callback=_json_anywhere, help="print stable JSON on stdout (docs/cli.md)")
_GroupJson = typer.Option(False, "--json", callback=_set_json, expose_value=False,
                          help="print stable JSON on stdout, as --json after the command does")
WaitOpt = typer.Option(False, "--wait", help="wait for the run to end; exit with its outcome")
FollowOpt = typer.Option(False, "--follow", "-f", help="also stream its output")
RawOpt = typer.Option(False, "--raw", help="only the job's bytes: no marker line where a retried run's next attempt begins")
_state: dict[str, object] = {"socket": None, "json": False}
RUN_EXIT = {RunState.SUCCEEDED.value: EXIT_OK, RunState.SKIPPED.value: EXIT_NOT_STARTED,
            RunState.MISSED.value: EXIT_NOT_STARTED, RunState.REJECTED.value: EXIT_NOT_STARTED}  # any other end of a run: EXIT_RUN_FAILED
RUN_STATES = tuple(state.value for state in RunState)
LONG_TIMEOUT = 3600.0  # seconds: cancel waits out kill_grace, gc removes files; the daemon bounds both


def _version(value: bool) -> None:
    if value:
        from jobsd_lib import __version__

        print(f"jobsctl {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _main(socket: Optional[str] = typer.Option(None, "--socket", help="jobsd's socket (else $JOBSD_SOCKET, "
                                               "else $JOBSD_HOME/jobsd.sock, else ~/.local/state/jobsd/jobsd.sock)"),
          version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="print the version and exit"),
          as_json: bool = _GroupJson) -> None:
    _state["socket"] = socket


@jobs_app.callback()
def _jobs(as_json: bool = _GroupJson) -> None:
    """Jobs: list, inspect, run, follow."""


@runs_app.callback()
def _runs(as_json: bool = _GroupJson) -> None:
    """Runs: inspect, cancel, retry, approve, reject."""


@daemon_app.callback()
def _daemon(as_json: bool = _GroupJson) -> None:
    """The daemon itself."""


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


def _started(conn, answer, wait: bool, follow: bool, as_json: bool, raw: bool = False) -> None:  # noqa: ANN001
    """A new run (RunJob, RetryRun): print it, or wait for its end and exit with its outcome."""
    run = render.run_json(answer)
    if not (wait or follow):
        _emit(run, as_json, render.started_text)
        raise typer.Exit(EXIT_NOT_STARTED if run["state"] == RunState.SKIPPED.value else EXIT_OK)
    from jobsctl.follow import follow_run

    final = follow_run(conn, run["job"], run["n"], print_output=follow, from_start=True, markers=not raw)
    if follow and not as_json:  # stdout carries only the job's own stdout
        print(render.outcome_text(final), file=sys.stderr)
    else:
        _emit(final, as_json, render.outcome_text)
    raise typer.Exit(RUN_EXIT.get(final["state"], EXIT_RUN_FAILED))
