"""`[gates] condition` on a real daemon (DESIGN 10, systemd's ExecCondition=): run once before the
first attempt, holding the run's slot; 0 goes on, 1-254 skips (reason condition, exit code
recorded), 255 or a signal fails; one that cannot start fails; a stop kills it like an attempt."""
from __future__ import annotations

import json
import os

import pytest

from jobsd_lib.rpc import jobsd_pb2 as pb
from tests.conftest import wait_for

pytestmark = pytest.mark.timeout(60)


def conditioned(condition: str, command: str = '"true"') -> str:
    return f"command = {command}\n[gates]\ncondition = {condition}\n"


def test_exit_0_runs_1_to_254_skip_and_255_or_a_signal_fail(daemon, home):
    ran = os.path.join(home, "ran")
    daemon.write_job("go", conditioned(f'["sh", "-c", "echo checked; test $JOBSD_ATTEMPT = 0"]',
                                       f'["sh", "-c", "echo yes > {ran}"]'))
    daemon.write_job("skip", conditioned('["sh", "-c", "exit 3"]', f'["touch", "{ran}.skip"]'))
    daemon.write_job("fail", conditioned('["sh", "-c", "exit 255"]'))
    daemon.write_job("killed", conditioned('["sh", "-c", "kill -9 $$"]'))
    daemon.write_job("absent", conditioned('["/nonexistent/check"]'))
    daemon.start()

    go = daemon.wait_finished(daemon.run("go").ref)
    assert (go.state, go.attempts) == (pb.RUN_STATE_SUCCEEDED, 1) and open(ran).read() == "yes\n"
    assert open(os.path.join(go.artifacts, "attempt-0.log"), "rb").read() == b"checked\n"  # the condition's output

    done = daemon.ctl("jobs", "run", "skip", "--wait", "--json")
    skipped = json.loads(done.stdout)
    assert done.returncode == 5, done.stderr
    assert (skipped["state"], skipped["reason"], skipped["exit_code"], skipped["attempts"]) == \
        ("skipped", "condition: exited 3", 3, 0)
    assert not os.path.exists(ran + ".skip")

    failed = daemon.wait_finished(daemon.run("fail").ref)
    assert (failed.state, failed.reason, failed.exit_code, failed.attempts) == \
        (pb.RUN_STATE_FAILED, "condition exited 255", 255, 0)
    killed = daemon.wait_finished(daemon.run("killed").ref)
    assert (killed.state, killed.reason) == (pb.RUN_STATE_FAILED, "condition killed by signal 9")
    absent = daemon.wait_finished(daemon.run("absent").ref)
    assert absent.state == pb.RUN_STATE_FAILED and absent.reason.startswith("condition: ") and "/nonexistent/check" in absent.reason


def test_a_condition_holds_the_slot_and_a_cancel_kills_it(daemon, home):
    started = os.path.join(home, "started")
    daemon.write_job("slow", conditioned(f'["sh", "-c", "touch {started}; exec sleep 30"]'))
    daemon.write_job("other", 'command = "true"\n')
    daemon.start("--max-concurrent-runs", "1")
    slow = daemon.run("slow")
    wait_for(lambda: os.path.exists(started), 10, "the condition to start")
    other = daemon.run("other")
    wait_for(lambda: daemon.get_run(other.ref).wait_reason == pb.WAIT_REASON_SLOT, 10, "other waiting for the slot")
    cancelled = daemon.jobs.CancelRun(pb.CancelRunRequest(run=slow.ref), timeout=20)
    assert (cancelled.state, cancelled.attempts) == (pb.RUN_STATE_CANCELLED, 0)
    assert daemon.wait_finished(other.ref).state == pb.RUN_STATE_SUCCEEDED


def test_a_bad_condition_is_an_invalid_spec(daemon):
    daemon.write_job("empty", conditioned("[]"))
    daemon.write_job("blank", conditioned('""'))
    daemon.write_job("number", conditioned("5"))
    daemon.start()
    for job in ("empty", "blank", "number"):
        shown = daemon.ctl("jobs", "show", job, "--json")
        assert json.loads(shown.stdout)["state"] == "invalid" and "gates.condition" in shown.stdout.decode(), shown.stdout
