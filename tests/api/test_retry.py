"""RetryRun / `jobsctl runs retry` on a real daemon: a new run of a finished run, its window kept, the
job's current spec; and every refusal changes nothing."""
from __future__ import annotations

import json
import os

import grpc
import pytest

from jobsd_lib.rpc import jobsd_pb2 as pb
from tests.conftest import error_code, wait_for

pytestmark = pytest.mark.timeout(60)


def retry(daemon, ref: str) -> pb.Run:
    return daemon.jobs.RetryRun(pb.RetryRunRequest(run=ref), timeout=10)


def runs_of(daemon, job: str) -> list[str]:
    return [r.ref for r in daemon.jobs.ListRuns(pb.ListRunsRequest(job=job, limit=1000), timeout=10).runs]


def refused(daemon, ref: str) -> tuple[str, dict[str, str]]:
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    with pytest.raises(grpc.RpcError) as caught:
        retry(daemon, ref)
    info = error_details_pb2.ErrorInfo()
    next(d for d in rpc_status.from_call(caught.value).details if d.Unpack(info))
    return error_code(caught.value), dict(info.metadata)


def test_a_failed_cron_run_is_retried_with_its_window_and_the_fixed_spec(daemon, home):
    env_file = os.path.join(home, "env.txt")
    daemon.write_job("nightly", 'command = ["sh", "-c", "exit 3"]\n[schedule]\ncron = "* * * * * *"\ntimezone = "UTC"\n')
    daemon.start()
    failed = wait_for(lambda: next((r for r in daemon.jobs.ListRuns(pb.ListRunsRequest(job="nightly", limit=5),
                                                                     timeout=10).runs
                                    if r.state == pb.RUN_STATE_FAILED), None), 15, "a failed cron run")
    daemon.jobs.PauseJob(pb.JobRequest(job="nightly"), timeout=10)  # a paused job can still be retried by hand
    daemon.write_job("nightly", f'command = ["sh", "-c", "env > {env_file}"]\n[schedule]\ncron = "* * * * * *"\n'
                     'timezone = "UTC"\n')
    assert list(daemon.daemon.Reload(pb.ReloadRequest(), timeout=10).changed) == ["nightly"]
    before = runs_of(daemon, "nightly")

    done = daemon.ctl("runs", "retry", failed.ref, "--wait", "--json")

    assert done.returncode == 0, done.stderr
    final = json.loads(done.stdout)
    assert (final["state"], final["trigger"], final["retry_of"]) == ("succeeded", "retry", failed.ref)
    assert final["n"] > max(int(ref.split("/")[1]) for ref in before)  # the job's next number
    assert final["scheduled_at"] == failed.scheduled_at.ToDatetime().strftime("%Y-%m-%dT%H:%M:%S+00:00")
    env = dict(line.split("=", 1) for line in open(env_file).read().splitlines() if "=" in line)
    assert env["JOBSD_TRIGGER"] == "retry" and env["JOBSD_RUN"] == final["run"]
    assert env["JOBSD_SCHEDULED_TIME"] == final["scheduled_at"]  # the original's window, not now
    receipt = json.load(open(os.path.join(final["artifacts"], "run_receipt.json")))
    assert (receipt["trigger"], receipt["retry_of"], receipt["state"]) == ("retry", failed.ref, "succeeded")
    assert f"- trigger: retry of {failed.ref}" in open(os.path.join(final["artifacts"], "summary.md")).read()
    queued = json.loads(open(os.path.join(final["artifacts"], "events.jsonl")).readline())
    assert (queued["type"], queued["retry_of"], queued["actor_uid"]) == ("run.queued", failed.ref, str(os.getuid()))
    history = daemon.ctl("jobs", "history", "nightly", "--limit", "1000")  # the paused job records skips meanwhile
    row = next(line for line in history.stdout.decode().splitlines() if line.startswith(final["run"] + " "))
    assert f"retry of {failed.ref}" in row, history.stdout
    assert daemon.get_run(failed.ref).state == pb.RUN_STATE_FAILED  # the original is untouched


def test_refusals_name_the_reason_and_change_nothing(daemon, home):
    gate = os.path.join(home, "gate")
    os.mkfifo(gate)
    daemon.write_job("slow", f'command = ["cat", "{gate}"]\n')
    daemon.start()
    first = daemon.run("slow").ref
    with open(gate, "w"):
        pass  # the first run reads EOF and ends
    assert daemon.wait_finished(first).state == pb.RUN_STATE_SUCCEEDED
    active = daemon.run("slow").ref
    wait_for(lambda: daemon.get_run(active).state == pb.RUN_STATE_RUNNING, 10, "the second run to start")
    before = runs_of(daemon, "slow")

    assert refused(daemon, active) == ("run_not_finished", {"run": active, "state": "running"})
    assert refused(daemon, first)[0] == "job_busy"  # one active run per job, as for `jobs run`
    assert refused(daemon, "slow/99")[0] == "run_not_found"
    assert refused(daemon, "slow/01")[0] == "invalid_argument"
    assert refused(daemon, "nope/1")[0] == "run_not_found"
    cli = daemon.ctl("runs", "retry", active)
    assert cli.returncode == 4 and b"[run_not_finished]" in cli.stderr and b"runs cancel" in cli.stderr
    assert runs_of(daemon, "slow") == before
    with open(gate, "w"):
        pass
    daemon.wait_finished(active)

    daemon.write_job("slow", 'command = 42\n')
    daemon.daemon.Reload(pb.ReloadRequest(), timeout=10)
    assert refused(daemon, first)[0] == "job_invalid_spec"
    os.unlink(os.path.join(daemon.jobs_dir, "slow.toml"))
    daemon.daemon.Reload(pb.ReloadRequest(), timeout=10)
    code, _ = refused(daemon, first)
    assert code == "job_not_found"
    assert runs_of(daemon, "slow") == before  # nothing was recorded by any refusal
    assert daemon.ctl("daemon", "status").returncode == 0  # and the daemon keeps serving
