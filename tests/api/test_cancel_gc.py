"""CancelRun in every active state, and retention gc, on a real daemon with real child processes."""
from __future__ import annotations

import json
import os
import subprocess

import grpc
import pytest

from jobsd_lib.rpc import jobsd_pb2 as pb
from tests.conftest import BIN, alive, error_code, wait_for

pytestmark = pytest.mark.timeout(60)


def cancel(daemon, ref: str) -> pb.Run:
    return daemon.jobs.CancelRun(pb.CancelRunRequest(run=ref), timeout=30)


def wait_state(daemon, ref: str, state: int) -> pb.Run:
    return wait_for(lambda: (r := daemon.get_run(ref)).state == state and r, 10, f"{ref} in state {state}")


def test_cancel_running_stops_the_group_and_ends_cancelled(daemon, home):
    # the child ignores SIGTERM: cancel must escalate to SIGKILL after kill_grace
    daemon.write_job("stubborn", 'command = ["sh", "-c", "trap \\"\\" TERM; echo $$ > pid; sleep 300 & wait"]\n'
                     'kill_grace = "0.5s"\ncwd = "."\n')
    daemon.start()
    ref = daemon.run("stubborn").ref
    pid_file = os.path.join(daemon.jobs_dir, "pid")
    wait_for(lambda: os.path.exists(pid_file) and open(pid_file).read().strip(), 10, "the job to start")
    pid = int(open(pid_file).read())

    final = cancel(daemon, ref)

    assert final.state == pb.RUN_STATE_CANCELLED
    assert final.reason.startswith("cancelled by ")
    assert not alive(pid)
    assert len(final.attempt_list) == 1 and final.attempt_list[0].signal == 9  # escalated to SIGKILL
    events = [json.loads(line)["type"] for line in open(os.path.join(final.artifacts, "events.jsonl"))]
    assert events[-1] == "run.finished"
    receipt = json.load(open(os.path.join(final.artifacts, "run_receipt.json")))
    assert receipt["state"] == "cancelled"


def test_cancel_queued_run_never_starts_it(daemon):
    daemon.write_job("hog", 'command = ["sleep", "300"]\n')
    daemon.write_job("waiter", 'command = ["true"]\n')
    daemon.start("--max-concurrent-runs", "1")
    hog = daemon.run("hog").ref
    wait_state(daemon, hog, pb.RUN_STATE_RUNNING)
    waiter = daemon.run("waiter").ref
    assert daemon.get_run(waiter).wait_reason == pb.WAIT_REASON_SLOT

    final = cancel(daemon, waiter)

    assert (final.state, final.attempts) == (pb.RUN_STATE_CANCELLED, 0)
    assert daemon.get_run(hog).state == pb.RUN_STATE_RUNNING  # the slot holder is untouched
    cancel(daemon, hog)
    # the slot the hog held is free again: a new run starts and finishes
    assert daemon.wait_finished(daemon.run("waiter").ref).state == pb.RUN_STATE_SUCCEEDED


def test_cancel_retrying_run_ends_the_backoff_without_another_attempt(daemon):
    daemon.write_job("flaky", 'command = ["false"]\n[retry]\nattempts = 5\nbackoff = "1h"\n')
    daemon.start()
    ref = daemon.run("flaky").ref
    waiting = wait_state(daemon, ref, pb.RUN_STATE_RETRYING)
    assert waiting.wait_reason == pb.WAIT_REASON_BACKOFF

    final = cancel(daemon, ref)

    assert (final.state, final.attempts) == (pb.RUN_STATE_CANCELLED, 1)
    assert not final.HasField("next_attempt_at")


def test_cancel_refusals_name_the_problem(daemon):
    daemon.write_job("quick", 'command = ["true"]\n')
    daemon.start()
    ref = daemon.wait_finished(daemon.run("quick").ref).ref
    for target, status, code in [(ref, grpc.StatusCode.FAILED_PRECONDITION, "run_not_active"),
                                 ("quick/99", grpc.StatusCode.NOT_FOUND, "run_not_found"),
                                 ("quick", grpc.StatusCode.INVALID_ARGUMENT, "invalid_argument")]:
        with pytest.raises(grpc.RpcError) as err:
            cancel(daemon, target)
        assert (err.value.code(), error_code(err.value)) == (status, code)
    assert daemon.get_run(ref).state == pb.RUN_STATE_SUCCEEDED  # nothing changed

    done = daemon.ctl("runs", "cancel", ref)
    assert done.returncode == 4
    assert b"already ended (succeeded)" in done.stderr and b"[run_not_active]" in done.stderr


def test_follower_of_a_cancelled_run_exits_1_and_cli_cancel_exits_0(daemon):
    daemon.write_job("long", 'command = ["sh", "-c", "echo started; exec sleep 300"]\n')
    daemon.start()
    ref = daemon.run("long").ref
    follower = subprocess.Popen([os.path.join(BIN, "jobsctl"), "--socket", daemon.socket, "jobs", "tail", "long", "-f"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert follower.stdout.readline() == b"started\n"
        done = daemon.ctl("runs", "cancel", ref, "--json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["state"] == "cancelled"
        assert follower.wait(timeout=15) == 1
    finally:
        follower.kill()
        follower.wait()


# ---------------------------------------------------------------------- gc
def make_runs(daemon, job: str, count: int) -> list[pb.Run]:
    return [daemon.wait_finished(daemon.run(job).ref) for _ in range(count)]


def folder_bytes(folder: str) -> int:
    return sum(os.path.getsize(os.path.join(root, f)) for root, _d, files in os.walk(folder) for f in files)


def gc(daemon, **fields) -> pb.CollectGarbageResponse:
    return daemon.daemon.CollectGarbage(pb.CollectGarbageRequest(**fields), timeout=30)


def test_gc_keep_last_dry_run_then_for_real(daemon):
    daemon.write_job("chatty", 'command = ["sh", "-c", "echo run $JOBSD_RUN"]\n')
    daemon.write_job("other", 'command = ["true"]\n')
    daemon.start()
    runs = make_runs(daemon, "chatty", 5)
    others = make_runs(daemon, "other", 2)
    expected_bytes = sum(folder_bytes(r.artifacts) for r in runs[:3])

    preview = gc(daemon, keep_last=2, dry_run=True)

    assert list(preview.removed) == ["chatty/1", "chatty/2", "chatty/3"]
    assert (preview.removed_count, preview.bytes_freed, preview.dry_run) == (3, expected_bytes, True)
    assert all(os.path.isdir(r.artifacts) for r in runs)
    assert daemon.get_run("chatty/1").state == pb.RUN_STATE_SUCCEEDED

    done = gc(daemon, keep_last=2)

    assert list(done.removed) == ["chatty/1", "chatty/2", "chatty/3"] and done.bytes_freed == expected_bytes
    for r in runs[:3]:
        assert not os.path.exists(r.artifacts)
        with pytest.raises(grpc.RpcError) as err:
            daemon.get_run(r.ref)
        assert error_code(err.value) == "run_not_found"
    assert all(os.path.isdir(r.artifacts) for r in runs[3:] + others)
    history = daemon.jobs.ListRuns(pb.ListRunsRequest(job="chatty"), timeout=10)
    assert [r.ref for r in history.runs] == ["chatty/5", "chatty/4"]
    assert daemon.run("chatty").ref == "chatty/6"  # numbers are never reused
    assert gc(daemon, keep_last=2, job="other").removed_count == 0
    events = daemon.ctl("events", "--json", "-n", "0")
    gc_events = [e for e in map(json.loads, events.stdout.splitlines()) if e["type"] == "daemon.gc"]
    assert len(gc_events) == 2 and gc_events[0]["removed"] == "3"  # the dry run is not an action


def test_gc_never_touches_an_active_run(daemon):
    daemon.write_job("busy", 'command = ["sh", "-c", "echo working; exec sleep 300"]\n')
    daemon.start()
    first = daemon.run("busy").ref
    cancel(daemon, first)
    active = daemon.run("busy")
    wait_state(daemon, active.ref, pb.RUN_STATE_RUNNING)

    done = gc(daemon, keep_last=0, older_than_seconds=0)

    assert list(done.removed) == [first]
    assert daemon.get_run(active.ref).state == pb.RUN_STATE_RUNNING
    assert os.path.isdir(active.artifacts)
    cancel(daemon, active.ref)
    final = daemon.get_run(active.ref)
    assert final.state == pb.RUN_STATE_CANCELLED
    assert open(os.path.join(final.artifacts, "attempt-1.log"), "rb").read() == b"working\n"


def test_gc_older_than_keeps_recent_runs(daemon):
    daemon.write_job("quick", 'command = ["true"]\n')
    daemon.start()
    make_runs(daemon, "quick", 3)
    assert gc(daemon, older_than_seconds=3600).removed_count == 0
    # both rules keep: keep_last 1 keeps quick/3 although it is older than 0 seconds
    assert list(gc(daemon, keep_last=1, older_than_seconds=0).removed) == ["quick/1", "quick/2"]


def test_gc_cli_and_bad_input_change_nothing(daemon):
    daemon.write_job("quick", 'command = ["true"]\n')
    daemon.start()
    runs = make_runs(daemon, "quick", 3)

    for args, exit_code, message in [
            ([], 4, b"say what to keep"),
            (["--keep-last", "-1"], 2, b"--keep-last"),
            (["--older-than", "soon"], 2, b"not a duration"),
            (["--keep-last", "1", "--job", "Bad_Name"], 4, b"[invalid_argument]"),
            (["--keep-last", "1", "--job", "nosuch"], 4, b"[job_not_found]")]:
        done = daemon.ctl("gc", *args)
        assert done.returncode == exit_code, (args, done.stderr)
        assert message in done.stderr, (args, done.stderr)
    assert all(os.path.isdir(r.artifacts) for r in runs)

    preview = daemon.ctl("gc", "--keep-last", "1", "--dry-run")
    assert preview.returncode == 0
    assert b"would remove quick/1\nwould remove quick/2\nwould remove 2 runs; would free " in preview.stdout
    done = daemon.ctl("gc", "--keep-last", "1", "--json")
    assert done.returncode == 0
    data = json.loads(done.stdout)
    assert (data["removed"], data["removed_count"], data["dry_run"]) == (["quick/1", "quick/2"], 2, False)
    assert data["bytes_freed"] > 0
    assert [os.path.isdir(r.artifacts) for r in runs] == [False, False, True]


def test_history_cursor_survives_gc_and_filters_by_state(daemon):
    daemon.write_job("mixed", 'command = ["sh", "-c", "exit $(( ${JOBSD_RUN#mixed/} % 2 ))"]\n')
    daemon.start()
    make_runs(daemon, "mixed", 6)  # odd numbers fail, even succeed
    page = daemon.jobs.ListRuns(pb.ListRunsRequest(job="mixed", limit=2), timeout=10)
    assert [r.ref for r in page.runs] == ["mixed/6", "mixed/5"]

    assert list(gc(daemon, keep_last=5).removed) == ["mixed/1"]
    rest = daemon.jobs.ListRuns(pb.ListRunsRequest(job="mixed", limit=10, cursor=page.next_cursor), timeout=10)
    assert [r.ref for r in rest.runs] == ["mixed/4", "mixed/3", "mixed/2"]

    failed = daemon.ctl("jobs", "history", "mixed", "--state", "failed", "--json")
    assert failed.returncode == 0, failed.stderr
    assert [r["run"] for r in json.loads(failed.stdout)["runs"]] == ["mixed/5", "mixed/3"]
    bad = daemon.ctl("jobs", "history", "mixed", "--state", "broken")
    assert bad.returncode == 2 and b"not a run state" in bad.stderr
    with pytest.raises(grpc.RpcError) as err:
        daemon.jobs.ListRuns(pb.ListRunsRequest(job="mixed", states=[99]), timeout=10)
    assert (err.value.code(), error_code(err.value)) == (grpc.StatusCode.INVALID_ARGUMENT, "invalid_argument")

    # the cursor's own run (mixed/5) removed: the next page is what is older than it, i.e. nothing
    gc(daemon, keep_last=1)
    rest = daemon.jobs.ListRuns(pb.ListRunsRequest(job="mixed", limit=10, cursor=page.next_cursor), timeout=10)
    assert list(rest.runs) == []
