"""`[expect] success_within` and `jobsctl check` on a real daemon (DESIGN 11): a job with no success
within its bound is overdue (job JSON, jobs list, one job.overdue event an episode), a success ends
the episode (job.recovered), a deadline that passed while jobsd was down is caught at the start,
and `jobsctl check` exits 1 with one line a problem (failing, overdue, invalid), 0 when all is fine."""
from __future__ import annotations

import json
import time

import pytest

from jobsd_lib.rpc import jobsd_pb2 as pb
from tests.conftest import wait_for

pytestmark = pytest.mark.timeout(60)


def expecting(within: str, command: str = '["true"]') -> str:
    return f'command = {command}\n[expect]\nsuccess_within = "{within}"\n'


def job(daemon, job_id: str) -> pb.Job:  # noqa: ANN001
    return daemon.jobs.GetJob(pb.GetJobRequest(job=job_id), timeout=10)


def types(daemon, job_id: str) -> list[str]:  # noqa: ANN001
    return [e.type for e in daemon.jobs.WatchEvents(pb.WatchEventsRequest(job=job_id), timeout=10)
            if e.type in ("job.overdue", "job.recovered")]


def test_no_success_within_the_bound_is_overdue_once_an_episode_and_a_success_ends_it(daemon):
    daemon.write_job("backup", expecting("2s"))
    daemon.start()
    started = time.time()
    late = wait_for(lambda: (j := job(daemon, "backup")).overdue and j, 10, "backup to be overdue")
    assert time.time() - started >= 1.5 and late.HasField("overdue_since") and late.success_within_seconds == 2
    shown = json.loads(daemon.ctl("jobs", "show", "backup", "--json").stdout)
    assert (shown["overdue"], shown["success_within"]) == (True, 2)
    listed = daemon.ctl("jobs", "list").stdout.decode()
    assert "active, overdue" in listed and "backup: overdue since " in listed
    [overdue] = [e for e in daemon.jobs.WatchEvents(pb.WatchEventsRequest(job="backup"), timeout=10)
                 if e.type == "job.overdue"]
    assert overdue.attrs["message"].startswith("no success since jobsd first saw it")

    run = daemon.wait_finished(daemon.run("backup").ref)
    assert run.state == pb.RUN_STATE_SUCCEEDED
    wait_for(lambda: "job.recovered" in types(daemon, "backup"), 10, "the episode to end")
    recovered = [e for e in daemon.jobs.WatchEvents(pb.WatchEventsRequest(job="backup"), timeout=10)
                 if e.type == "job.recovered"][0]
    assert recovered.attrs["by_run"] == run.ref
    # 2 s after that success it is overdue again: a second episode, its own single event
    wait_for(lambda: types(daemon, "backup") == ["job.overdue", "job.recovered", "job.overdue"], 10,
             "the second episode")
    message = [e for e in daemon.jobs.WatchEvents(pb.WatchEventsRequest(job="backup"), timeout=10)
               if e.type == "job.overdue"][-1].attrs["message"]
    assert message.startswith("no success for ") and "expected within 2s" in message


def test_a_deadline_passed_while_jobsd_was_down_is_caught_at_the_start_and_not_again(daemon):
    daemon.write_job("nightly", expecting("3s"))
    daemon.start()
    seen = time.time()
    assert daemon.stop() == 0
    wait_for(lambda: time.time() > seen + 3.5, 10, "the deadline to pass while jobsd is down")
    daemon.start()
    wait_for(lambda: job(daemon, "nightly").overdue, 10, "nightly overdue at the start")
    assert daemon.stop() == 0
    daemon.start()
    assert job(daemon, "nightly").overdue
    assert types(daemon, "nightly") == ["job.overdue"]  # the episode goes on: no second event


def test_check_exits_1_with_one_line_a_problem_and_0_when_fine(daemon):
    daemon.write_job("fine", expecting("1h"))
    daemon.write_job("failing", 'command = ["false"]\n')
    daemon.write_job("late", expecting("1s", '["false"]'))
    daemon.write_job("broken", 'command = ["true"]\n[schedule]\ncron = "61 * * * *"\n')
    daemon.write_job("typo", 'command = ["true"]\n[schedule]\ncron = "* * * * *"\n')  # one problem: no timezone
    daemon.start()
    for job_id in ("fine", "failing"):
        daemon.wait_finished(daemon.run(job_id).ref)
    wait_for(lambda: job(daemon, "late").overdue, 10, "late to be overdue")

    fine = daemon.ctl("check", "fine")
    assert (fine.returncode, fine.stdout.decode().strip()) == (0, "ok: 1 job fine")
    every = daemon.ctl("check")
    lines = every.stdout.decode().splitlines()
    assert every.returncode == 1, every.stderr
    assert [line.split(":")[:2] for line in lines] == [["broken", " invalid"], ["failing", " failing"],
                                                       ["late", " overdue"], ["typo", " invalid"]]
    assert lines[3] == "typo: invalid: schedule.timezone: required key is missing"  # the field, as validate says
    listed = daemon.ctl("jobs", "list").stdout.decode()
    assert "  typo: schedule.timezone: required key is missing" in listed
    assert lines[1] == "failing: failing: failed once (latest run failing/1: exit 1)"
    assert lines[0].startswith("broken: invalid: schedule.cron: ")
    data = json.loads(daemon.ctl("check", "--json").stdout)
    assert (data["ok"], data["checked"], [p["problem"] for p in data["problems"]]) == \
        (False, 5, ["invalid", "failing", "overdue", "invalid"])
    unknown = daemon.ctl("check", "fine", "nope")
    assert unknown.returncode == 4 and b"nope" in unknown.stderr
