"""Waits that outlive the daemon (DESIGN 10, kernel.gates.after_restart): a run waiting for approval
or for its `[[requires]]` gates stays `queued` through a stop or a crash of jobsd and waits on
under the next one, its wait counted from when it began; one whose bound ran out meanwhile, or
whose spec changed, ends at the start. What a killed jobsd left of a condition command is killed."""
from __future__ import annotations

import json
import os
import signal
import time

import pytest

from jobsd_lib.rpc import jobsd_pb2 as pb
from tests.conftest import alive, wait_for

pytestmark = pytest.mark.timeout(90)

APPROVAL = 'command = ["true"]\n[gates]\napproval = true\nwait = "1h"\n'
REQUIRES = 'command = ["true"]\n[[requires]]\njob = "backup"\nsucceeded_within = "1h"\n[gates]\nwait = "1h"\n'


def waiting(daemon, ref: str, reason: int) -> pb.Run:  # noqa: ANN001
    return wait_for(lambda: (r := daemon.get_run(ref)).wait_reason == reason and r, 10, f"{ref} to wait")


def event_types(run: pb.Run) -> list[str]:
    with open(os.path.join(run.artifacts, "events.jsonl")) as f:
        return [json.loads(line)["type"] for line in f]


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["stopped", "killed"])
def test_runs_waiting_for_approval_or_gates_wait_on_after_a_restart(daemon, stop):
    daemon.write_job("deploy", APPROVAL)
    daemon.write_job("report", REQUIRES)
    daemon.write_job("backup", 'command = ["true"]\n')
    daemon.start()
    deploy = waiting(daemon, daemon.run("deploy").ref, pb.WAIT_REASON_APPROVAL)
    report = waiting(daemon, daemon.run("report").ref, pb.WAIT_REASON_DEPENDENCY)
    assert report.wait_detail == "backup: never ran, needs < 60m"

    code = daemon.stop(stop)
    assert code == (0 if stop == signal.SIGTERM else -signal.SIGKILL)
    daemon.start()

    for before in (deploy, report):
        after = daemon.get_run(before.ref)
        assert (after.state, after.wait_reason, after.wait_detail, after.waiting_since) == \
            (pb.RUN_STATE_QUEUED, before.wait_reason, before.wait_detail, before.waiting_since)
        assert "run.finished" not in event_types(after)
    listed = daemon.ctl("jobs", "list").stdout.decode()
    assert "waiting: approval" in listed and "waiting: backup: never ran, needs < 60m" in listed

    approved = daemon.ctl("runs", "approve", deploy.ref, "-m", "after the restart")
    assert approved.returncode == 0, approved.stderr
    assert daemon.wait_finished(deploy.ref).state == pb.RUN_STATE_SUCCEEDED
    assert daemon.wait_finished(daemon.run("backup").ref).state == pb.RUN_STATE_SUCCEEDED
    done = daemon.wait_finished(report.ref)  # the gate is met now: the resumed run goes on
    assert (done.state, done.attempts) == (pb.RUN_STATE_SUCCEEDED, 1)
    assert event_types(done).count("run.queued") == 1
    # the same runs went on: no new run of either job was made
    history = daemon.jobs.ListRuns(pb.ListRunsRequest(job="deploy", limit=10), timeout=10).runs
    assert [r.ref for r in history] == [deploy.ref]


def test_a_wait_whose_bound_ran_out_or_whose_spec_changed_ends_at_the_start(daemon):
    daemon.write_job("brief", APPROVAL.replace('"1h"', '"3s"'))
    daemon.write_job("edited", APPROVAL)
    daemon.start()
    brief = waiting(daemon, daemon.run("brief").ref, pb.WAIT_REASON_APPROVAL)
    edited = waiting(daemon, daemon.run("edited").ref, pb.WAIT_REASON_APPROVAL)
    assert daemon.stop() == 0
    daemon.write_job("edited", APPROVAL.replace('["true"]', '["false"]'))  # what was to be approved changed
    deadline = brief.waiting_since.ToDatetime().timestamp() + 3
    wait_for(lambda: time.time() > deadline, 10, "brief's approval wait to run out while jobsd is down")
    daemon.start()

    timed_out = daemon.wait_finished(brief.ref)
    assert (timed_out.state, timed_out.reason) == (pb.RUN_STATE_SKIPPED, "approval_timeout: no decision within 3s")
    gone = daemon.get_run(edited.ref)
    assert (gone.state, gone.reason) == \
        (pb.RUN_STATE_INTERRUPTED, "jobsd stopped while the run was queued; its spec file changed meanwhile")
    refused = daemon.ctl("runs", "approve", edited.ref)
    assert refused.returncode != 0 and b"already ended (interrupted)" in refused.stderr


def test_a_condition_left_by_a_killed_jobsd_is_killed_at_the_next_start(daemon, home):
    pidfile = os.path.join(home, "condition.pid")
    daemon.write_job("checked", f'command = ["true"]\n[gates]\ncondition = ["sh", "-c", "echo $$ > {pidfile}; '
                                f'exec sleep 60"]\n')
    daemon.start()
    ref = daemon.run("checked").ref
    pid = int(wait_for(lambda: os.path.exists(pidfile) and open(pidfile).read().strip(), 10, "the condition"))
    daemon.stop(signal.SIGKILL)
    assert alive(pid)  # what jobsd left behind

    daemon.start()
    wait_for(lambda: not alive(pid), 10, "the leftover condition to be killed")
    run = daemon.get_run(ref)
    assert (run.state, run.attempts) == (pb.RUN_STATE_INTERRUPTED, 0)
    assert "killed 1 leftover condition process(es)" in daemon.read_log()
