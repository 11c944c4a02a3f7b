"""Two jobsd (hosts a and b, each with its own home and socket) on one database of a private
PostgreSQL server (DESIGN 12): both serve the whole store, one leads, a job has one active run
across both, and a host that dies has its runs recorded interrupted and retried by the leader;
when it comes back, it stops what was left of them."""
from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile

import pytest

from jobsd_lib.rpc import jobsd_pb2 as pb
from tests.conftest import Daemon, wait_for

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def pair(pg_server):  # noqa: ANN001
    url = pg_server.new_database()
    daemons = [Daemon(tempfile.mkdtemp(prefix=f"j2{name}", dir="/tmp")) for name in "ab"]
    for d in daemons:
        d.write_job("slow", 'command = ["sleep", "77.5"]\n[retry]\nattempts = 2\n')
        d.write_job("quick", 'command = ["true"]\n')
    a = daemons[0].start("--store", url, "--host-name", "a")
    wait_for(lambda: json.loads(a.ctl("--json", "daemon", "status").stdout)["leader"] == "a", 20, "a to lead")
    daemons[1].start("--store", url, "--host-name", "b")
    yield daemons
    for d in daemons:
        if d.proc is not None and d.proc.poll() is None:
            d.stop()
        shutil.rmtree(d.home, ignore_errors=True)


def _status(d: Daemon) -> dict:
    return json.loads(d.ctl("--json", "daemon", "status").stdout)


def _sleepers() -> list[int]:
    """The pids of `sleep 77.5` processes (the slow job's attempts), wherever they came from."""
    found = []
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                if f.read() == b"sleep\x0077.5\x00":
                    found.append(int(name))
        except (OSError, ValueError):
            continue
    return found


def test_two_hosts_serve_one_store_and_a_job_has_one_active_run_across_them(pair):  # noqa: ANN001
    a, b = pair
    for d in (a, b):
        status = _status(d)
        assert [h["name"] for h in status["hosts"]] == ["a", "b"] and status["leader"] == "a"
    slow = a.run("slow")
    wait_for(lambda: b.get_run(slow.ref).state == pb.RUN_STATE_RUNNING, 15, "b to see a's run running")
    busy = b.ctl("jobs", "run", "slow")
    assert busy.returncode != 0 and b"job_busy" in busy.stderr and b"on host a" in busy.stderr, busy.stderr
    assert json.loads(b.ctl("--json", "runs", "show", slow.ref).stdout)["host"] == "a"
    done = b.ctl("jobs", "run", "quick", "--wait")
    assert done.returncode == 0, done.stderr
    assert json.loads(a.ctl("--json", "runs", "show", "quick/1").stdout)["host"] == "b"
    elsewhere = b.ctl("runs", "cancel", slow.ref)
    assert elsewhere.returncode == 4 and b"run_elsewhere" in elsewhere.stderr and b"on host a" in elsewhere.stderr
    assert b.get_run(slow.ref).state == pb.RUN_STATE_RUNNING  # the refusal changed nothing
    tail = b.ctl("jobs", "tail", "slow")  # its output is on a
    assert tail.returncode == 4 and b"run_elsewhere" in tail.stderr and b"ran on host a" in tail.stderr, tail.stderr
    a.jobs.CancelRun(pb.CancelRunRequest(run=slow.ref), timeout=30)
    assert a.wait_finished(slow.ref).state == pb.RUN_STATE_CANCELLED
    again = b.run("slow")  # free again: b may run it now
    assert again.ref == "slow/2"
    b.jobs.CancelRun(pb.CancelRunRequest(run=again.ref), timeout=30)
    b.wait_finished(again.ref)


def test_a_killed_hosts_run_is_interrupted_and_retried_by_the_leader_and_its_leftovers_stopped_on_return(pair):  # noqa: ANN001
    a, b = pair
    before = set(_sleepers())
    slow = b.run("slow")
    wait_for(lambda: b.get_run(slow.ref).state == pb.RUN_STATE_RUNNING, 15, "b's run to start")
    left = wait_for(lambda: set(_sleepers()) - before, 10, "b's sleep to show")
    b.stop(signal.SIGKILL)  # its sleep lives on (its own process group)
    run = a.wait_finished(slow.ref, timeout=60)  # a lease without b's heartbeat, then a's next beat
    assert run.state == pb.RUN_STATE_INTERRUPTED and "host b stopped renewing its heartbeat" in run.reason
    retry = wait_for(lambda: [r for r in a.jobs.ListRuns(pb.ListRunsRequest(job="slow"), timeout=10).runs
                              if r.retry_of == slow.ref], 15, "the leader's retry")[0]
    assert json.loads(a.ctl("--json", "runs", "show", retry.ref).stdout)["host"] == "a"
    assert left <= set(_sleepers())  # b is down: nothing stopped its process yet
    b.start(*b.args[b.args.index("--store"):])
    wait_for(lambda: not (left & set(_sleepers())), 30, "b to stop its leftover on return")
    assert "stopped its leftover processes" in b.read_log()
    a.jobs.CancelRun(pb.CancelRunRequest(run=retry.ref), timeout=30)
    a.wait_finished(retry.ref)
