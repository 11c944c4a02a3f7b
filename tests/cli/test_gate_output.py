"""What a user sees of the job graph and its gates (DESIGN 10, docs/cli.md), on a real daemon with the
real jobsctl: `runs show` names a dependency run's upstream and a retry's original, `jobs history
--json` carries `upstream`, `retry_of` and `decision`, and `jobs run --follow` of a run an approver
rejects exits 5 with the reason."""
from __future__ import annotations

import json
import os
import pwd
import subprocess

import grpc
import pytest

from jobsd_lib.rpc import jobsd_pb2 as pb
from tests.conftest import BIN, wait_for

pytestmark = pytest.mark.timeout(60)

ME_USER = pwd.getpwuid(os.getuid()).pw_name
ME = f"uid={os.getuid()}({ME_USER})"  # how jobsd names the caller: the socket's uid (the tests run as root)
TERMINAL = {pb.RUN_STATE_SUCCEEDED, pb.RUN_STATE_FAILED, pb.RUN_STATE_TIMED_OUT, pb.RUN_STATE_CANCELLED,
            pb.RUN_STATE_INTERRUPTED, pb.RUN_STATE_SKIPPED, pb.RUN_STATE_MISSED, pb.RUN_STATE_REJECTED}
CHAIN = {"extract": 'command = "true"\n', "load": 'command = "true"\nafter = ["extract"]\n'}
# approvers names the user the tests run as: root is not special, it decides only when listed
APPROVAL = f'command = ["true"]\n[gates]\napproval = true\napprovers = ["{ME_USER}"]\n'


def lookup(daemon, ref: str) -> pb.Run | None:  # noqa: ANN001
    """The run, or None while it does not exist yet (a dependency run is made after its upstream ends)."""
    try:
        return daemon.get_run(ref)
    except grpc.RpcError as err:
        if err.code() is grpc.StatusCode.NOT_FOUND:
            return None
        raise


def finished(daemon, ref: str) -> pb.Run:  # noqa: ANN001
    return wait_for(lambda: (r := lookup(daemon, ref)) is not None and r.state in TERMINAL and r, 20,
                    f"{ref} to exist and finish")


def waiting_for_approval(daemon, ref: str) -> pb.Run:  # noqa: ANN001
    return wait_for(lambda: (r := lookup(daemon, ref)) is not None and r.wait_reason == pb.WAIT_REASON_APPROVAL
                    and r, 10, f"{ref} to wait for approval")


def shown(daemon, ref: str) -> tuple[list[str], dict]:  # noqa: ANN001
    """`runs show REF` as text lines and as --json."""
    text = daemon.ctl("runs", "show", ref)
    assert text.returncode == 0, text.stderr
    as_json = daemon.ctl("runs", "show", ref, "--json")
    assert as_json.returncode == 0, as_json.stderr
    return text.stdout.decode().splitlines(), json.loads(as_json.stdout)


def test_runs_show_names_the_upstream_of_a_dependency_run_and_the_original_of_a_retry(daemon):
    for job, spec in CHAIN.items():
        daemon.write_job(job, spec)
    daemon.start()
    assert daemon.wait_finished(daemon.run("extract").ref).state == pb.RUN_STATE_SUCCEEDED
    assert finished(daemon, "load/1").state == pb.RUN_STATE_SUCCEEDED

    lines, data = shown(daemon, "load/1")
    assert "trigger:         dependency" in lines and "upstream:        extract/1" in lines, lines
    assert not any(line.startswith("retry_of:") for line in lines), lines
    assert (data["trigger"], data["upstream"], data["retry_of"], data["decision"]) == \
        ("dependency", "extract/1", None, None)

    retried = daemon.ctl("runs", "retry", "load/1", "--wait")
    assert retried.returncode == 0, retried.stderr
    assert retried.stdout.decode().strip() == "load/2: succeeded (ok)"
    lines, data = shown(daemon, "load/2")
    assert "trigger:         retry" in lines and "retry_of:        load/1" in lines, lines
    assert not any(line.startswith("upstream:") for line in lines), lines  # a retry has no upstream of its own
    assert (data["state"], data["trigger"], data["retry_of"], data["upstream"], data["decision"]) == \
        ("succeeded", "retry", "load/1", None, None)


def test_jobs_history_json_carries_upstream_retry_of_and_decision_where_set(daemon):
    for job, spec in CHAIN.items():
        daemon.write_job(job, spec)
    daemon.write_job("deploy", APPROVAL)
    daemon.start()
    daemon.wait_finished(daemon.run("extract").ref)
    finished(daemon, "load/1")
    assert daemon.ctl("runs", "retry", "load/1", "--wait").returncode == 0

    history = daemon.ctl("jobs", "history", "load", "--json")
    assert history.returncode == 0, history.stderr
    runs = {r["run"]: r for r in json.loads(history.stdout)["runs"]}
    assert list(runs) == ["load/2", "load/1"]  # newest first
    assert {ref: (r["trigger"], r["upstream"], r["retry_of"], r["decision"]) for ref, r in runs.items()} == {
        "load/2": ("retry", None, "load/1", None), "load/1": ("dependency", "extract/1", None, None)}
    table = daemon.ctl("jobs", "history", "load").stdout.decode()
    assert "after extract/1" in table and "retry of load/1" in table, table

    daemon.run("deploy")
    waiting_for_approval(daemon, "deploy/1")
    approved = daemon.ctl("runs", "approve", "deploy/1", "--comment", "ship it")
    assert approved.returncode == 0, approved.stderr
    assert finished(daemon, "deploy/1").state == pb.RUN_STATE_SUCCEEDED
    daemon.run("deploy")
    waiting_for_approval(daemon, "deploy/2")
    rejected = daemon.ctl("runs", "reject", "deploy/2")
    assert rejected.returncode == 0, rejected.stderr
    assert finished(daemon, "deploy/2").state == pb.RUN_STATE_REJECTED

    history = daemon.ctl("jobs", "history", "deploy", "--json")
    assert history.returncode == 0, history.stderr
    runs = {r["run"]: r for r in json.loads(history.stdout)["runs"]}
    assert list(runs) == ["deploy/2", "deploy/1"]
    for r in runs.values():
        assert (r["upstream"], r["retry_of"]) == (None, None)
        assert set(r["decision"]) == {"approved", "by", "at", "comment", "client"}
        assert r["decision"]["at"] is not None
    assert (runs["deploy/1"]["state"], runs["deploy/1"]["decision"]["approved"], runs["deploy/1"]["decision"]["by"],
            runs["deploy/1"]["decision"]["comment"]) == ("succeeded", True, ME, "ship it")
    assert (runs["deploy/2"]["state"], runs["deploy/2"]["reason"], runs["deploy/2"]["decision"]["approved"],
            runs["deploy/2"]["decision"]["by"], runs["deploy/2"]["decision"]["comment"]) == \
        ("rejected", f"rejected by {ME}", False, ME, None)
    table = daemon.ctl("jobs", "history", "deploy").stdout.decode().splitlines()
    assert table[0].split()[-1] == "DECISION", table
    assert table[1].endswith(f"rejected by {ME}") and table[2].endswith(f"approved by {ME}"), table


def test_jobs_run_follow_of_a_run_an_approver_rejects_exits_5_with_the_reason(daemon, home):
    ran = os.path.join(home, "ran")
    daemon.write_job("deploy", APPROVAL.replace('["true"]', f'["touch", "{ran}"]'))
    daemon.start()
    follower = subprocess.Popen([os.path.join(BIN, "jobsctl"), "--socket", daemon.socket, "jobs", "run", "deploy",
                                 "--follow"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        run = waiting_for_approval(daemon, "deploy/1")
        assert run.wait_detail == f"approval by {ME_USER}"
        assert follower.poll() is None  # still following the waiting run
        rejected = daemon.ctl("runs", "reject", "deploy/1", "--comment", "not on a friday")
        assert rejected.returncode == 0, rejected.stderr
        assert rejected.stdout.decode().strip() == "rejected deploy/1; it is rejected now"
        out, err = follower.communicate(timeout=20)
    finally:
        follower.kill()
        follower.wait()
    assert follower.returncode == 5, (out, err)
    assert out == b""  # the job never ran: no output of its own
    assert err.decode().strip().splitlines()[-1] == f"deploy/1: rejected (rejected): rejected by {ME}: not on a friday"
    assert not os.path.exists(ran)
    final = daemon.get_run("deploy/1")
    assert (final.state, final.attempts, final.decision.approved, final.decision.by) == \
        (pb.RUN_STATE_REJECTED, 0, False, ME)
