"""Numbers a request field cannot hold are usage errors in jobsctl: exit 2, one line naming the
option and its range, no traceback, and no RPC (they are refused with no daemon running)."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.conftest import BIN, Daemon

pytestmark = pytest.mark.timeout(60)

HUGE = "99999999999999999999999"
INT63 = str(2**63 - 1)

# (arguments, option named, lowest, highest)
OUT_OF_RANGE = [
    (["jobs", "tail", "ok", "--run", "-1"], "--run", "0", INT63),
    (["jobs", "tail", "ok", "--run", HUGE], "--run", "0", INT63),
    (["jobs", "tail", "ok", "--run", str(2**63)], "--run", "0", INT63),
    (["jobs", "tail", "ok", "--lines", "-1"], "--lines", "0", str(2**32 - 1)),
    (["jobs", "tail", "ok", "-n", str(2**32)], "--lines", "0", str(2**32 - 1)),
    (["events", "--after", "-1"], "--after", "0", INT63),
    (["events", "--after", HUGE], "--after", "0", INT63),
    (["events", "--last", "-1"], "--last", "0", str(2**32 - 1)),
    (["events", "-n", HUGE], "--last", "0", str(2**32 - 1)),
    (["jobs", "history", "ok", "--limit", HUGE], "--limit", "1", "1000"),
    (["jobs", "history", "ok", "--limit", "0"], "--limit", "1", "1000"),
    (["jobs", "next", "ok", "--count", HUGE], "--count", "1", "1000"),
    (["jobs", "next", "ok", "--count", "-5"], "--count", "1", "1000"),
    (["gc", "--keep-last", HUGE], "--keep-last", "0", "1000000"),
    (["gc", "--keep-last", "1000001"], "--keep-last", "0", "1000000"),
    (["gc", "--keep-last", "-1"], "--keep-last", "0", "1000000"),
]


def test_out_of_range_numbers_are_usage_errors_before_any_rpc(home):
    absent = Daemon(home)  # never started: a command that called jobsd would exit 3
    problems = []
    for args, option, low, high in OUT_OF_RANGE:
        result = absent.ctl(*args)
        err = result.stderr.decode()
        lines = [line for line in err.splitlines() if option in line]
        if result.returncode != 2 or "Traceback" in err or not lines or low not in lines[0] or high not in lines[0]:
            problems.append(f"{' '.join(args)}: exit {result.returncode}: {err[-300:]!r}")
    assert not problems, "\n".join(problems)


def test_the_edges_of_each_range_reach_the_daemon_and_one_past_them_does_not(daemon):
    daemon.write_job("ok", 'command = ["true"]\n')
    daemon.start()
    daemon.wait_finished(daemon.run("ok").ref)
    for args in (["events", "--after", str(2**63)], ["jobs", "tail", "ok", "--run", str(2**63)],
                 ["jobs", "tail", "ok", "-n", str(2**32)], ["gc", "--keep-last", "1000001", "--dry-run"]):
        past = daemon.ctl(*args)
        assert past.returncode == 2 and b"Traceback" not in past.stderr, (args, past.stderr)
    after = daemon.ctl("events", "--after", INT63, "--json")
    assert after.returncode == 0 and after.stdout == b"", after.stderr
    tail = daemon.ctl("jobs", "tail", "ok", "--run", INT63)
    assert tail.returncode == 4 and b"[run_not_found]" in tail.stderr, tail.stderr
    assert daemon.ctl("jobs", "tail", "ok", "--run", "0", "-n", str(2**32 - 1)).returncode == 0
    assert daemon.ctl("gc", "--keep-last", "1000000", "--dry-run").returncode == 0
    assert daemon.ctl("jobs", "history", "ok", "--limit", "1000").returncode == 0


def test_a_run_reference_is_checked_by_the_client_with_the_daemons_parser(home):
    """`ok/01` would name ok/1 if anything normalised it; both sides refuse it the same way."""
    absent = Daemon(home)
    for args in (["runs", "show", "ok/01"], ["runs", "cancel", "ok/\u0661"], ["runs", "show", "ok/+1"]):
        result = absent.ctl(*args)
        assert result.returncode == 4 and b"[invalid_argument]" in result.stderr, (args, result.stderr)
        assert b"JOB/N" in result.stderr and b"Traceback" not in result.stderr


def test_typos_help_and_version_read_as_a_person_expects(home):
    """Issue 16's papercuts: one suggestion for a mistyped command, -h as --help, --version."""
    absent = Daemon(home)
    typo = absent.ctl("jobs", "lst")
    err = typo.stderr.decode()
    assert typo.returncode == 2 and err.count("Did you mean 'list'?") == 1
    for args in (("-h",), ("jobs", "-h"), ("runs", "approve", "-h")):
        shown = absent.ctl(*args)
        assert shown.returncode == 0 and shown.stdout.decode().startswith("Usage: jobsctl"), args
    from jobsd_lib import __version__

    version = absent.ctl("--version")
    assert (version.returncode, version.stdout.decode().strip()) == (0, f"jobsctl {__version__}")


def test_json_before_the_command_and_help_lines_that_are_not_cut(home):
    """`jobsctl --json jobs list` and `jobsctl jobs --json list` mean `jobs list --json`; the command lists of
    --help show each command's first sentence whole at 80 columns (click cut them with "...")."""
    absent = Daemon(home)
    for args in (("--json", "jobs", "list"), ("jobs", "--json", "list"), ("jobs", "list", "--json")):
        result = absent.ctl(*args)
        assert result.returncode == 3 and json.loads(result.stdout)["error"]["code"] == "unavailable", args
    env = {**os.environ, "COLUMNS": "80"}
    for group in ((), ("jobs",), ("runs",), ("daemon",)):
        shown = subprocess.run([os.path.join(BIN, "jobsctl"), *group, "--help"], capture_output=True, env=env,
                               timeout=20)
        commands = shown.stdout.decode().split("Commands:")[1].splitlines()
        assert commands and not [line for line in commands if line.endswith("...")], (group, commands)
