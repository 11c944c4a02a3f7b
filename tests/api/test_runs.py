"""Manual runs through the real API: acknowledgement, execution, artifacts, output, limits."""
from __future__ import annotations

import json
import os
import signal

import grpc
import pytest

from jobsd_lib.rpc import jobsd_pb2 as pb
from tests.conftest import error_code, wait_for

pytestmark = pytest.mark.timeout(60)


def test_run_succeeds_with_artifacts_env_and_output(daemon):
    daemon.write_job("hello", 'description = "hi"\ncommand = ["sh", "-c", "echo out; echo err >&2; '
                     'echo $JOBSD_JOB $JOBSD_RUN $JOBSD_ATTEMPT $JOBSD_TRIGGER $GREETING"]\nenv = { GREETING = "hey" }\n')
    daemon.start()
    run = daemon.run("hello")
    assert (run.ref, run.n, run.state) == ("hello/1", 1, pb.RUN_STATE_QUEUED)
    final = daemon.wait_finished("hello/1")
    assert final.state == pb.RUN_STATE_SUCCEEDED and final.exit_code == 0 and final.attempts == 1
    folder = final.artifacts
    assert sorted(os.listdir(folder)) == ["attempt-1.idx", "attempt-1.log", "events.jsonl", "run_receipt.json", "summary.md"]
    receipt = json.load(open(os.path.join(folder, "run_receipt.json")))
    assert receipt["state"] == "succeeded" and receipt["attempt_list"][0]["exit_code"] == 0
    events = [json.loads(line) for line in open(os.path.join(folder, "events.jsonl"))]
    assert [e["type"] for e in events] == ["run.queued", "run.started", "run.attempt_finished", "run.finished"]
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    log = open(os.path.join(folder, "attempt-1.log"), "rb").read()
    assert b"out\n" in log and b"err\n" in log and b"hello hello/1 1 manual hey\n" in log


def test_second_run_numbers_and_job_busy(daemon):
    daemon.write_job("slow", 'command = ["cat"]\ntimeout = 30\n')  # stdin is /dev/null: cat ends at once
    daemon.write_job("sleepy", 'command = ["sleep", "30"]\n')
    daemon.start()
    daemon.run("sleepy")
    with pytest.raises(grpc.RpcError) as err:
        daemon.run("sleepy")
    assert err.value.code() == grpc.StatusCode.ABORTED and error_code(err.value) == "job_busy"
    assert "sleepy/1" in err.value.details()
    runs = daemon.jobs.ListRuns(pb.ListRunsRequest(job="sleepy")).runs
    assert [r.ref for r in runs] == ["sleepy/1"]  # the refusal recorded nothing
    daemon.run("slow")
    assert daemon.wait_finished("slow/1").state == pb.RUN_STATE_SUCCEEDED
    assert daemon.run("slow").ref == "slow/2"


def test_command_not_found_fails_with_message_and_daemon_keeps_serving(daemon):
    daemon.write_job("ghost", 'command = ["/nonexistent/tool", "--x"]\n')
    daemon.write_job("ok", 'command = ["true"]\n')
    daemon.start()
    final = daemon.wait_finished(daemon.run("ghost").ref)
    assert final.state == pb.RUN_STATE_FAILED
    assert "command not found: /nonexistent/tool" in final.reason
    assert "command not found" in final.attempt_list[0].error
    assert b"command not found" in open(os.path.join(final.artifacts, "attempt-1.log"), "rb").read()
    assert daemon.wait_finished(daemon.run("ok").ref).state == pb.RUN_STATE_SUCCEEDED


def test_failed_exit_code_and_signal(daemon):
    daemon.write_job("exit3", 'command = "sh -c \'exit 3\'"\n')
    daemon.write_job("killed", 'command = ["sh", "-c", "kill -KILL $$"]\n')
    daemon.start()
    a = daemon.wait_finished(daemon.run("exit3").ref)
    assert (a.state, a.exit_code) == (pb.RUN_STATE_FAILED, 3)
    b = daemon.wait_finished(daemon.run("killed").ref)
    assert b.state == pb.RUN_STATE_FAILED and b.signal == signal.SIGKILL and not b.HasField("exit_code")


def test_output_keeps_all_256_byte_values_and_stream_tags(daemon, home):
    blob = os.path.join(home, "all.bin")
    with open(blob, "wb") as f:
        f.write(bytes(range(256)))
    daemon.write_job("binary", f'command = ["sh", "-c", "cat {blob}; printf E >&2"]\n')
    daemon.start()
    daemon.wait_finished(daemon.run("binary").ref)
    messages = list(daemon.jobs.Tail(pb.TailRequest(job="binary", run=1), timeout=10))
    chunks = [m.chunk for m in messages if m.HasField("chunk")]
    stdout = b"".join(c.data for c in chunks if c.stream == pb.STREAM_STDOUT)
    stderr = b"".join(c.data for c in chunks if c.stream == pb.STREAM_STDERR)
    assert stdout == bytes(range(256)) and stderr == b"E"
    assert messages[0].HasField("start") and messages[-1].end.run.state == pb.RUN_STATE_SUCCEEDED


def test_concurrency_cap_makes_runs_wait_for_a_slot(daemon):
    for i in range(3):
        daemon.write_job(f"hold{i}", 'command = ["sleep", "30"]\nkill_grace = "1s"\n')
    daemon.start("--max-concurrent-runs", "2")
    refs = [daemon.run(f"hold{i}").ref for i in range(3)]
    wait_for(lambda: daemon.get_run(refs[1]).state == pb.RUN_STATE_RUNNING, what="two runs running")
    third = wait_for(lambda: (r := daemon.get_run(refs[2])).wait_detail and r, what="the third run's wait recorded")
    assert third.state == pb.RUN_STATE_QUEUED and third.wait_reason == pb.WAIT_REASON_SLOT
    assert (third.wait_detail, third.HasField("waiting_since")) == ("slot: 2 of 2 busy", True)
    health = daemon.daemon.GetHealth(pb.GetHealthRequest())
    assert (health.runs_active, health.runs_queued) == (2, 1)
    listed = daemon.ctl("jobs", "list").stdout.decode()
    assert "waiting: slot: 2 of 2 busy" in next(line for line in listed.splitlines() if line.startswith("hold2"))


def test_sigterm_interrupts_active_runs_and_exits_zero(daemon):
    daemon.write_job("stubborn", 'command = ["sh", "-c", "trap \\"\\" TERM; while :; do sleep 0.1; done"]\n'
                     'kill_grace = "0.5s"\n')
    daemon.start()
    ref = daemon.run("stubborn").ref
    wait_for(lambda: daemon.get_run(ref).state == pb.RUN_STATE_RUNNING, what="running")
    pid = daemon.get_run(ref).attempt_list[0].pid
    assert daemon.stop() == 0
    daemon.start()
    run = daemon.get_run(ref)
    assert run.state == pb.RUN_STATE_INTERRUPTED and run.reason == "jobsd stopped"
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"


def test_acknowledged_run_survives_sigkill_and_becomes_interrupted(daemon):
    daemon.write_job("long", 'command = ["sh", "-c", "echo before the crash; exec sleep 60"]\n')
    daemon.start()
    ref = daemon.run("long").ref
    wait_for(lambda: daemon.get_run(ref).attempt_list, what="attempt recorded")
    pid = daemon.get_run(ref).attempt_list[0].pid
    log = os.path.join(daemon.get_run(ref).artifacts, "attempt-1.log")
    wait_for(lambda: os.path.exists(log) and os.path.getsize(log) > 0, what="output on disk")
    daemon.stop(signal.SIGKILL)
    daemon.start()
    run = daemon.get_run(ref)
    assert run.state == pb.RUN_STATE_INTERRUPTED and "jobsd stopped while the run was running" in run.reason
    attempt = run.attempt_list[0]  # the cut-short attempt is closed with what its log holds
    assert attempt.HasField("finished_at") and attempt.output_bytes == len(b"before the crash\n")
    assert "jobsd stopped" in attempt.error
    wait_for(lambda: not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z",
             what="the orphaned job process to be killed")
    receipt = json.load(open(os.path.join(run.artifacts, "run_receipt.json")))
    assert receipt["state"] == "interrupted"


def test_run_acknowledged_then_sigkill_at_once_still_exists(daemon):
    daemon.write_job("quick", 'command = ["true"]\n')
    daemon.start()
    ref = daemon.run("quick").ref
    daemon.stop(signal.SIGKILL)  # the next instant after the answer
    daemon.start()
    assert daemon.get_run(ref).ref == "quick/1"


def test_a_run_seen_finished_leaves_its_job_free_for_the_next_run_at_once(daemon):
    """`jobs run J --wait && jobs run J` must not meet job_busy: a run's end is synced before
    anyone can see it, with no await between its commit and the job's release (the end used to
    be visible to GetRun while its task still awaited the sync)."""
    import time

    daemon.write_job("quick", 'command = ["true"]\n')
    daemon.start()
    for n in range(1, 41):
        run = daemon.run("quick")  # job_busy here would raise
        assert run.ref == f"quick/{n}"
        deadline = time.monotonic() + 10
        while (state := daemon.get_run(run.ref).state) in (pb.RUN_STATE_QUEUED, pb.RUN_STATE_RUNNING):
            assert time.monotonic() < deadline, f"{run.ref} did not finish"  # no pause: see the first instant
        assert state == pb.RUN_STATE_SUCCEEDED
