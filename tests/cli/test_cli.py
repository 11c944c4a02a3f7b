"""The real jobsctl against a real daemon: JSON shapes, tables, exit codes (DESIGN 7)."""
from __future__ import annotations

import json
import os
import socket

import pytest

from tests.conftest import BIN

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def served(daemon):
    daemon.write_job("hello", 'description = "hi"\ncommand = ["sh", "-c", "echo out; echo err >&2"]\n')
    daemon.write_job("fails", 'command = ["sh", "-c", "echo no; exit 7"]\n')
    daemon.write_job("broken", 'command = ["x"]\ncolour = "red"\n')
    daemon.write_job("off", 'command = ["true"]\nenabled = false\n')
    return daemon.start()


def out(result) -> dict:  # noqa: ANN001
    return json.loads(result.stdout)


def test_jobs_list_json_shape_and_table(served):
    result = served.ctl("jobs", "list", "--json")
    assert result.returncode == 0, result.stderr
    jobs = {j["id"]: j for j in out(result)["jobs"]}
    assert set(jobs) == {"hello", "fails", "broken", "off"}
    assert {"id", "state", "description", "schedule", "next_run_at", "last_run", "error"} <= set(jobs["hello"])
    assert (jobs["hello"]["state"], jobs["off"]["state"], jobs["broken"]["state"]) == ("active", "disabled", "invalid")
    assert jobs["broken"]["error"]["code"] == "job_invalid_spec" and jobs["broken"]["error"]["field"] == "colour"
    table = served.ctl("jobs", "list").stdout.decode()
    assert table.splitlines()[0].split() == ["ID", "STATE", "SCHEDULE", "NEXT", "RUN", "LAST", "RUN", "RESULT", "FAILS"]
    assert "colour: unknown key" in table or "unknown key" in table


def test_run_wait_and_follow_exit_with_the_outcome(served):
    ok = served.ctl("jobs", "run", "hello", "--follow")
    assert ok.returncode == 0 and ok.stdout.startswith(b"out\n") and b"err\n" in ok.stderr
    bad = served.ctl("jobs", "run", "fails", "--wait", "--json")
    assert bad.returncode == 1
    run = out(bad)
    assert {"run", "job", "n", "state", "trigger", "wait_reason", "attempts", "exit_code", "scheduled_at",
            "started_at", "finished_at", "artifacts"} <= set(run)
    assert (run["run"], run["state"], run["exit_code"], run["trigger"]) == ("fails/1", "failed", 7, "manual")
    listed = {j["id"]: j for j in out(served.ctl("jobs", "list", "--json"))["jobs"]}
    assert listed["fails"]["consecutive_failures"] == 1 and listed["fails"]["last_run"]["exit_code"] == 7
    assert "exit 7" in served.ctl("jobs", "list").stdout.decode()


def test_run_returns_once_accepted(served):
    result = served.ctl("jobs", "run", "hello", "--json")
    assert result.returncode == 0 and out(result)["state"] in ("queued", "running", "succeeded")


@pytest.mark.parametrize("args, code, error", [
    (("jobs", "run", "off"), 4, "job_disabled"),
    (("jobs", "run", "nope"), 4, "job_not_found"),
    (("jobs", "run", "../x"), 4, "invalid_argument"),
    (("jobs", "show", "broken"), 0, None),
    (("runs", "show", "hello/99"), 4, "run_not_found"),
    (("runs", "show", "garbage"), 4, "invalid_argument"),
    (("jobs", "history", "nope"), 4, "job_not_found"),
    (("runs", "cancel", "hello/99"), 4, "run_not_found"),
])
def test_refusals_print_the_code_and_exit_4(served, args, code, error):
    result = served.ctl(*args, "--json")
    assert result.returncode == code, result.stderr
    if error:
        assert out(result)["error"]["code"] == error and out(result)["error"]["message"]
        human = served.ctl(*args)
        assert human.returncode == code and f"[{error}]" in human.stderr.decode()


def test_history_pages_with_cursor(served):
    for _ in range(3):
        assert served.ctl("jobs", "run", "hello", "--wait").returncode == 0
    first = out(served.ctl("jobs", "history", "hello", "--limit", "2", "--json"))
    assert [r["run"] for r in first["runs"]] == ["hello/3", "hello/2"] and first["next_cursor"]
    rest = out(served.ctl("jobs", "history", "hello", "--limit", "2", "--cursor", first["next_cursor"], "--json"))
    assert [r["run"] for r in rest["runs"]] == ["hello/1"] and rest["next_cursor"] is None


def test_tail_last_lines_and_streams(served):
    served.write_job("lines", 'command = ["sh", "-c", "for i in 1 2 3 4 5; do echo line$i; done; printf tail"]\n')
    # the daemon read its specs at start: restart to pick up the new file
    served.stop()
    served.start()
    assert served.ctl("jobs", "run", "lines", "--wait").returncode == 0
    result = served.ctl("jobs", "tail", "lines", "-n", "2")
    assert result.returncode == 0 and result.stdout == b"line5\ntail"
    assert served.ctl("jobs", "tail", "lines").stdout == b"line1\nline2\nline3\nline4\nline5\ntail"


def test_daemon_status_and_events(served):
    status = out(served.ctl("daemon", "status", "--json"))
    assert status["pid"] > 0 and status["jobs"] == {"active": 2, "paused": 0, "disabled": 1, "invalid": 1}
    assert status["invalid_specs"][0]["job"] == "broken" and status["socket"] == served.socket
    served.ctl("jobs", "run", "hello", "--wait")
    lines = served.ctl("events", "--json", "-n", "0").stdout.decode().splitlines()
    types = [json.loads(line)["type"] for line in lines]
    assert types == ["daemon.started", "run.queued", "run.started", "run.attempt_finished", "run.finished"]


def test_unreachable_daemon_exits_3_naming_the_socket(home):
    missing = os.path.join(home, "none.sock")
    plain = os.path.join(home, "plain.sock")
    open(plain, "w").close()
    dead = os.path.join(home, "dead.sock")
    s = socket.socket(socket.AF_UNIX)
    s.bind(dead)
    s.close()  # a socket file nobody listens on
    for path, words in ((missing, "no such socket"), (plain, "not a socket"), (dead, "")):
        import subprocess
        result = subprocess.run([os.path.join(BIN, "jobsctl"), "--socket", path, "jobs", "list"], capture_output=True,
                                timeout=30)
        assert result.returncode == 3, result.stderr
        assert path in result.stderr.decode() and words in result.stderr.decode()


def test_validate_without_a_daemon(home):
    import subprocess
    jobs = os.path.join(home, "jobs")
    os.makedirs(jobs)
    open(os.path.join(jobs, "good.toml"), "w").write('command = ["true"]\n')
    open(os.path.join(jobs, "bad.toml"), "w").write('command = ["true"]\n[retry]\nattempts = 0\n')
    open(os.path.join(jobs, "Bad-Name.toml"), "w").write('command = ["true"]\n')
    result = subprocess.run([os.path.join(BIN, "jobsctl"), "jobs", "validate", jobs, "--json"], capture_output=True,
                            timeout=30)
    assert result.returncode == 4
    files = {os.path.basename(f["file"]): f["problems"] for f in json.loads(result.stdout)["files"]}
    assert files["good.toml"] == [] and files["bad.toml"][0]["field"] == "retry.attempts"
    assert "not a valid job id" in files["Bad-Name.toml"][0]["message"]
    ok = subprocess.run([os.path.join(BIN, "jobsctl"), "jobs", "validate", os.path.join(jobs, "good.toml")],
                        capture_output=True, timeout=30)
    assert ok.returncode == 0 and b"ok" in ok.stdout


# jobsctl's entry point defers modules that grpcio and protobuf import but a command never uses
# (jobsctl/__main__.py). These run it the way the console script does, in a fresh interpreter,
# and report what was imported when the command ended (its atexit handlers run before os._exit).
_REPORT = """
import atexit, sys, types
from jobsctl.__main__ import _DEFERRED, main
def report():
    loaded = [name for name in _DEFERRED + ("ssl",) if type(sys.modules.get(name)) is types.ModuleType]
    print("LOADED", ",".join(loaded), file=sys.stderr)
atexit.register(report)
sys.argv = ["jobsctl", *sys.argv[1:]]
main()
"""


def test_commands_import_neither_asyncio_nor_grpc_aio_nor_tls(served):
    python = os.path.join(BIN, "python")
    import subprocess
    for args, code, shown in ((["jobs", "list"], 0, b"hello"), (["jobs", "run", "nope"], 4, b"job_not_found"),
                              (["jobs", "run", "hello", "--follow"], 0, b"out")):
        result = subprocess.run([python, "-c", _REPORT, "--socket", served.socket, *args], capture_output=True,
                                timeout=30)
        assert result.returncode == code, result.stderr
        assert shown in result.stdout + result.stderr
        assert result.stderr.decode().splitlines()[-1] == "LOADED ", (args, result.stderr)


def test_a_deferred_module_is_the_real_one_once_used():
    import subprocess
    script = """
import sys, types
from jobsctl.__main__ import _DEFERRED, _defer
for name in _DEFERRED:
    _defer(name)
import asyncio, grpc
from google.protobuf.internal import python_message
assert type(sys.modules["asyncio"]) is not types.ModuleType  # still the stand-in: nothing read it yet
async def answer():
    proc = await asyncio.create_subprocess_exec("echo", "hi", stdout=asyncio.subprocess.PIPE)
    channel = grpc.aio.insecure_channel("unix:/nonexistent")
    await channel.close()
    return (await proc.communicate())[0], type(channel).__module__
print(*asyncio.run(answer()), python_message.GeneratedProtocolMessageType.__name__)
from asyncio import events
import asyncio.queues
print(type(sys.modules["asyncio"]) is types.ModuleType, sys.modules["asyncio"].events is events,
      asyncio.Queue is asyncio.queues.Queue)
"""
    result = subprocess.run([os.path.join(BIN, "python"), "-c", script], capture_output=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().splitlines() == [
        "b'hi\\n' grpc.aio._channel GeneratedProtocolMessageType", "True True True"]
