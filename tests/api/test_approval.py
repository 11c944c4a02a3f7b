"""`[gates] approval` on a real daemon (DESIGN 10): a run waits, holding no slot, until someone who
may decide approves or rejects it with `jobsctl runs approve|reject`; who (the socket's uid), when
and the comment are in the run record, the receipt, the summary and the audit events; refusals
(run_not_waiting, permission_denied, bad input) change nothing; no decision in time is skipped."""
from __future__ import annotations

import concurrent.futures
import json
import os
import pwd
import subprocess

import grpc
import pytest

from jobsd_lib.rpc import jobsd_pb2 as pb
from tests.api.test_peer import jobsctl_as_nobody, needs_root, shared_daemon  # noqa: F401 - a fixture
from tests.conftest import BIN, error_code, wait_for

pytestmark = pytest.mark.timeout(60)
ME = f"uid={os.getuid()}({pwd.getpwuid(os.getuid()).pw_name})"


def gated(command: str, gates: str = "") -> str:
    return f'command = {command}\n[gates]\napproval = true\n{gates}'


def events(daemon, ref: str) -> list[dict]:  # noqa: ANN001
    folder = daemon.get_run(ref).artifacts
    with open(os.path.join(folder, "events.jsonl")) as f:
        return [json.loads(line) for line in f]


def waiting_for_approval(daemon, ref: str) -> pb.Run:  # noqa: ANN001
    """The run once it waits for approval (it may not exist yet: a jobsctl started beside the test asks for it)."""
    def waiting() -> pb.Run | None:
        try:
            run = daemon.get_run(ref)
        except grpc.RpcError as err:
            if err.code() is grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return run if run.wait_reason == pb.WAIT_REASON_APPROVAL else None
    return wait_for(waiting, 10, f"{ref} to wait for approval")


def test_an_approved_run_runs_and_says_who_approved_when_and_why(daemon, home):
    ran = os.path.join(home, "ran")
    daemon.write_job("deploy", gated(f'["touch", "{ran}"]'))
    daemon.write_job("other", 'command = "true"\n')
    daemon.start("--max-concurrent-runs", "1")
    waiter = subprocess.Popen([os.path.join(BIN, "jobsctl"), "--socket", daemon.socket, "jobs", "run", "deploy",
                               "--wait", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        run = waiting_for_approval(daemon, "deploy/1")
        assert (run.state, run.wait_detail, run.HasField("waiting_since")) == (pb.RUN_STATE_QUEUED, "approval", True)
        assert "waiting: approval" in daemon.ctl("jobs", "list").stdout.decode()
        # it holds no slot: with one slot, another job runs while it waits
        assert daemon.wait_finished(daemon.run("other").ref).state == pb.RUN_STATE_SUCCEEDED
        assert not os.path.exists(ran)

        done = daemon.ctl("runs", "approve", "deploy/1", "--comment", "ship it", "--json")
        assert done.returncode == 0, done.stderr
        decision = json.loads(done.stdout)["decision"]
        assert (decision["approved"], decision["by"], decision["comment"]) == (True, ME, "ship it")
        out, err = waiter.communicate(timeout=20)
    finally:
        waiter.kill()
        waiter.wait()
    assert waiter.returncode == 0, err
    final = json.loads(out)
    assert final["state"] == "succeeded" and final["decision"]["by"] == ME and os.path.exists(ran)
    shown = daemon.ctl("runs", "show", "deploy/1").stdout.decode()
    assert f"decision:        approved by {ME} at {decision['at']}: ship it" in shown

    folder = daemon.get_run("deploy/1").artifacts
    with open(os.path.join(folder, "run_receipt.json")) as f:
        receipt = json.load(f)
    assert receipt["decision"] == {"approved": True, "by": ME, "at": decision["at"], "comment": "ship it",
                                   "client": decision["client"]}
    with open(os.path.join(folder, "summary.md")) as f:
        assert f"- approved by {ME} at {decision['at']}: ship it" in f.read()
    types = [e["type"] for e in events(daemon, "deploy/1")]
    assert types[:3] == ["run.queued", "run.waiting", "run.approved"] and types[-1] == "run.finished"
    [approved] = [e for e in events(daemon, "deploy/1") if e["type"] == "run.approved"]
    assert (approved["actor"], approved["actor_uid"], approved["comment"]) == (ME, str(os.getuid()), "ship it")

    again = daemon.ctl("runs", "approve", "deploy/1")
    assert again.returncode == 4 and b"[run_not_waiting]" in again.stderr
    assert b"already approved by " + ME.encode() in again.stderr
    assert [e["type"] for e in events(daemon, "deploy/1")] == types  # the refusal changed nothing


def test_a_rejected_run_ends_rejected_without_an_attempt_and_run_wait_exits_5(daemon, home):
    ran = os.path.join(home, "ran")
    daemon.write_job("deploy", gated(f'["touch", "{ran}"]'))
    daemon.start()
    waiter = subprocess.Popen([os.path.join(BIN, "jobsctl"), "--socket", daemon.socket, "jobs", "run", "deploy",
                               "--wait"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        waiting_for_approval(daemon, "deploy/1")
        done = daemon.ctl("runs", "reject", "deploy/1", "-m", "not on a friday")
        assert done.returncode == 0, done.stderr
        assert done.stdout.decode().strip() == "rejected deploy/1; it is rejected now"
        out, _err = waiter.communicate(timeout=20)
    finally:
        waiter.kill()
        waiter.wait()
    assert waiter.returncode == 5
    assert f"deploy/1: rejected (rejected): rejected by {ME}: not on a friday" in out.decode()
    run = daemon.get_run("deploy/1")
    assert (run.state, run.attempts, run.decision.approved, run.decision.by, run.decision.comment) == \
        (pb.RUN_STATE_REJECTED, 0, False, ME, "not on a friday")
    assert not os.path.exists(ran) and not os.path.exists(os.path.join(run.artifacts, "attempt-1.log"))
    types = [e["type"] for e in events(daemon, "deploy/1")]
    assert types == ["run.queued", "run.waiting", "run.rejected", "run.finished"]
    with open(os.path.join(run.artifacts, "run_receipt.json")) as f:
        receipt = json.load(f)
    assert receipt["state"] == "rejected" and receipt["decision"]["approved"] is False
    history = daemon.ctl("jobs", "history", "deploy").stdout.decode().splitlines()
    assert history[0].split()[-1] == "DECISION" and history[1].split()[-3:] == ["rejected", "by", ME]
    # a rejection is not a failure of the job
    [job] = [j for j in json.loads(daemon.ctl("jobs", "list", "--json").stdout)["jobs"] if j["id"] == "deploy"]
    assert job["consecutive_failures"] == 0


def test_no_decision_within_the_wait_skips_the_run_and_a_cancel_ends_the_wait(daemon):
    daemon.write_job("deploy", gated('"true"', 'wait = "1s"\n'))
    daemon.write_job("held", gated('"true"'))
    daemon.start()
    done = daemon.ctl("jobs", "run", "deploy", "--wait", "--json")
    assert done.returncode == 5, done.stderr
    run = json.loads(done.stdout)
    assert (run["state"], run["reason"], run["decision"]) == ("skipped", "approval_timeout: no decision within 1s", None)

    held = daemon.run("held")
    waiting_for_approval(daemon, held.ref)
    cancelled = daemon.jobs.CancelRun(pb.CancelRunRequest(run=held.ref), timeout=20)
    assert cancelled.state == pb.RUN_STATE_CANCELLED and not cancelled.HasField("decision")


def test_of_two_concurrent_approvals_exactly_one_wins(daemon):
    daemon.write_job("deploy", gated('"true"'))
    daemon.start()
    for n in range(1, 6):
        ref = daemon.run("deploy").ref
        waiting_for_approval(daemon, ref)

        def approve(comment: str) -> str:
            try:
                daemon.jobs.ApproveRun(pb.DecideRunRequest(run=ref, comment=comment), timeout=20)
                return "ok"
            except grpc.RpcError as err:
                return error_code(err)

        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(approve, ["first", "second"]))
        assert sorted(answers) == ["ok", "run_not_waiting"], answers
        run = daemon.wait_finished(ref)
        assert run.state == pb.RUN_STATE_SUCCEEDED and run.attempts == 1
        assert run.decision.comment == ["first", "second"][answers.index("ok")]
        assert [e["type"] for e in events(daemon, ref)].count("run.approved") == 1


def test_refusals_name_the_reason_and_change_nothing(daemon):
    daemon.write_job("deploy", gated('"true"'))
    daemon.write_job("plain", 'command = ["sleep", "30"]\n')
    daemon.start()
    ref = daemon.run("deploy").ref
    waiting_for_approval(daemon, ref)
    plain = daemon.run("plain").ref
    wait_for(lambda: daemon.get_run(plain).state == pb.RUN_STATE_RUNNING, 10, "plain to run")

    def refused(rpc, run: str, comment: str = "") -> tuple[grpc.StatusCode, str, str]:  # noqa: ANN001
        with pytest.raises(grpc.RpcError) as err:
            rpc(pb.DecideRunRequest(run=run, comment=comment), timeout=10)
        return err.value.code(), error_code(err.value), err.value.details()

    for rpc in (daemon.jobs.ApproveRun, daemon.jobs.RejectRun):
        assert refused(rpc, "deploy/99")[:2] == (grpc.StatusCode.NOT_FOUND, "run_not_found")
        assert refused(rpc, "nope/1")[:2] == (grpc.StatusCode.NOT_FOUND, "run_not_found")
        assert refused(rpc, "deploy/x")[:2] == (grpc.StatusCode.INVALID_ARGUMENT, "invalid_argument")
        assert refused(rpc, "../1")[:2] == (grpc.StatusCode.INVALID_ARGUMENT, "invalid_argument")
        code, name, text = refused(rpc, plain)
        assert (code, name) == (grpc.StatusCode.FAILED_PRECONDITION, "run_not_waiting") and "not waiting for approval" in text
        assert refused(rpc, ref, "x" * 1001)[1:] == ("invalid_argument", "comment has 1001 characters; at most 1000")
        assert refused(rpc, ref, "two\nlines")[1] == "invalid_argument"
    cli = daemon.ctl("runs", "approve", "deploy/x")
    assert cli.returncode == 4 and b"[invalid_argument]" in cli.stderr  # refused by the client as the daemon would

    run = daemon.get_run(ref)
    assert (run.state, run.wait_reason, run.HasField("decision")) == (pb.RUN_STATE_QUEUED, pb.WAIT_REASON_APPROVAL, False)
    assert [e["type"] for e in events(daemon, ref)] == ["run.queued", "run.waiting"]
    daemon.jobs.CancelRun(pb.CancelRunRequest(run=plain), timeout=20)
    finished = daemon.wait_finished(daemon.jobs.RejectRun(pb.DecideRunRequest(run=ref), timeout=10).ref)
    assert finished.state == pb.RUN_STATE_REJECTED and finished.reason == f"rejected by {ME}"
    code, name, text = refused(daemon.jobs.ApproveRun, ref)
    assert name == "run_not_waiting" and f"already rejected by {ME}" in text


@needs_root
def test_only_the_listed_approvers_may_decide_by_their_real_uid(shared_daemon):  # noqa: F811
    daemon = shared_daemon
    daemon.write_job("users", gated('"true"', 'approvers = ["nobody"]\n'))
    daemon.write_job("group", gated('"true"', 'approvers = ["@nogroup"]\n'))
    daemon.start("--socket", daemon.socket, "--socket-group", "nogroup")
    for job in ("users", "group"):
        ref = daemon.run(job).ref
        run = waiting_for_approval(daemon, ref)
        assert run.wait_detail == ("approval by nobody" if job == "users" else "approval by @nogroup")
        mine = daemon.ctl("runs", "approve", ref, "-m", "I am root")
        assert mine.returncode == 4 and b"[permission_denied]" in mine.stderr, mine.stderr
        assert f"{ME} may not approve runs of {job}".encode() in mine.stderr
        # a claimed name decides nothing: jobsd's client name metadata says who the client thinks it is
        assert daemon.get_run(ref).wait_reason == pb.WAIT_REASON_APPROVAL
        theirs = jobsctl_as_nobody(daemon.socket, "runs", "approve", ref, "--comment", "ok from nobody", "--json")
        assert theirs.returncode == 0, theirs.stderr
        finished = daemon.wait_finished(ref)
        assert (finished.state, finished.decision.by, finished.decision.comment) == \
            (pb.RUN_STATE_SUCCEEDED, "uid=65534(nobody)", "ok from nobody")
