"""Pauses as operators use them (DESIGN 11), on a real daemon: `jobs pause --until --reason` ends by
itself (also when its end passed while jobsd was down), the reason shows in `jobs list`, `jobs
show` and the event, `jobs resume --catch-up` runs the latest window missed while paused once, and
bad input changes nothing."""
from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import grpc
import pytest

from jobsd_lib.rpc import jobsd_pb2 as pb
from tests.conftest import error_code, wait_for

pytestmark = pytest.mark.timeout(60)
EVERY_SECOND = '[schedule]\ncron = "* * * * * *"\ntimezone = "UTC"\n'
HOURLY = '[schedule]\ncron = "0 * * * *"\ntimezone = "UTC"\n'


def job(daemon, job_id: str) -> pb.Job:  # noqa: ANN001
    return daemon.jobs.GetJob(pb.GetJobRequest(job=job_id), timeout=10)


def job_events(daemon, job_id: str) -> list[pb.Event]:  # noqa: ANN001
    return [e for e in daemon.jobs.WatchEvents(pb.WatchEventsRequest(job=job_id), timeout=10)
            if e.type.startswith("job.")]


def test_a_pause_until_ends_by_itself_and_says_why_meanwhile(daemon):
    daemon.write_job("tick", 'command = ["true"]\n' + EVERY_SECOND)
    daemon.start()
    # long enough for the three looks below on a loaded machine (each jobsctl is a fresh interpreter)
    paused = daemon.ctl("jobs", "pause", "tick", "--until", "8s", "--reason", "db migration")
    assert paused.returncode == 0, paused.stderr
    assert paused.stdout.decode().startswith("tick: paused until ") and "state paused" in paused.stdout.decode()

    held = json.loads(daemon.ctl("jobs", "show", "tick", "--json").stdout)
    assert (held["state"], held["state_reason"], held["state_changed_by"].startswith("uid=")) == \
        ("paused", "db migration", True)
    until = datetime.fromisoformat(held["paused_until"])
    assert timedelta(seconds=1) < until - datetime.now(timezone.utc) <= timedelta(seconds=8)
    shown = daemon.ctl("jobs", "show", "tick").stdout.decode()
    assert "operator:     paused until " in shown and shown.rstrip().endswith(": db migration")
    listed = daemon.ctl("jobs", "list").stdout.decode()
    assert "needs attention:\n  tick: paused until " in listed and "db migration" in listed

    resumed = wait_for(lambda: (j := job(daemon, "tick")).state == pb.JOB_STATE_ACTIVE and j, 15, "the pause to end")
    assert not resumed.HasField("paused_until") and resumed.state_reason == ""
    assert time.time() >= until.timestamp()
    [pause, resume] = job_events(daemon, "tick")
    assert (pause.type, pause.attrs["reason"], pause.attrs["until"]) == ("job.paused", "db migration", held["paused_until"])
    assert (resume.type, resume.attrs["actor"]) == ("job.resumed", "scheduler")
    wait_for(lambda: [r for r in daemon.jobs.ListRuns(pb.ListRunsRequest(job="tick"), timeout=10).runs
                      if r.trigger == pb.TRIGGER_CRON and r.scheduled_at.seconds >= int(until.timestamp())],
             10, "cron runs again after the pause")


def test_a_pause_whose_end_passed_while_jobsd_was_down_ends_at_the_start(daemon):
    daemon.write_job("brief", 'command = ["true"]\n' + HOURLY)
    daemon.write_job("long", 'command = ["true"]\n' + HOURLY)
    daemon.start()
    paused = {}
    for job_id, until in (("brief", "3s"), ("long", "1d")):
        answer = daemon.ctl("jobs", "pause", job_id, "--until", until, "--json")  # the job as the pause left it
        assert answer.returncode == 0, answer.stderr
        paused[job_id] = json.loads(answer.stdout)
    ends = paused["brief"]["paused_until"]
    assert daemon.stop() == 0
    wait_for(lambda: time.time() > datetime.fromisoformat(ends).timestamp(), 10, "brief's pause to end while down")
    daemon.start()
    assert wait_for(lambda: job(daemon, "brief").state == pb.JOB_STATE_ACTIVE, 10, "brief resumed at the start")
    still = job(daemon, "long")
    assert still.state == pb.JOB_STATE_PAUSED and still.HasField("paused_until")


def test_resume_catch_up_runs_the_latest_window_missed_while_paused_once(daemon):
    daemon.write_job("tick", 'command = ["true"]\n' + EVERY_SECOND)
    daemon.write_job("manual", 'command = ["true"]\n')
    daemon.start()
    assert daemon.ctl("jobs", "pause", "tick").returncode == 0
    paused_at = time.time()
    wait_for(lambda: time.time() > paused_at + 2.2, 5, "windows to pass while paused")
    done = daemon.ctl("jobs", "resume", "tick", "--catch-up")
    resumed_at = time.time()
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode()
    assert "caught up the window " in out
    ref = out.rsplit(" as ", 1)[1].strip()
    run = daemon.wait_finished(ref)
    assert (run.trigger, run.state) == (pb.TRIGGER_CATCH_UP, pb.RUN_STATE_SUCCEEDED)
    assert paused_at - 1 < run.scheduled_at.seconds <= resumed_at  # a window of the pause, the latest one
    catch_ups = [r for r in daemon.jobs.ListRuns(pb.ListRunsRequest(job="tick", limit=1000), timeout=10).runs
                 if r.trigger == pb.TRIGGER_CATCH_UP]
    assert [r.ref for r in catch_ups] == [ref]

    nothing = daemon.ctl("jobs", "resume", "manual", "--catch-up").stdout.decode()
    assert nothing.strip() == "manual: resumed; state active; it was active: nothing to catch up"


def test_bad_pauses_are_refused_and_change_nothing(daemon):
    daemon.write_job("tick", 'command = ["true"]\n' + HOURLY)
    daemon.start()
    past = (datetime.now(timezone.utc) - timedelta(minutes=5)).isoformat()
    for args, code, words in [
        (["--until", past], 4, "is not in the future"),          # the daemon's invalid_argument
        (["--until", "400d"], 4, "more than 366 days ahead"),
        (["--until", "tomorrow"], 2, "neither a duration"),        # a usage error, before any RPC
        (["--until", "0s"], 2, "longer than 0s"),
        (["--reason", "two\nlines"], 4, "one line"),
        (["--reason", "x" * 501], 4, "at most 500"),
    ]:
        refused = daemon.ctl("jobs", "pause", "tick", *args)
        assert refused.returncode == code and words in refused.stderr.decode(), (args, refused.stderr)
    until = pb.PauseJobRequest(job="tick", reason="no")
    until.until.FromDatetime(datetime.now(timezone.utc) + timedelta(hours=1))
    for method, request, words in [
        (daemon.jobs.DisableJob, until, "--until is for `jobs pause` only"),
        (daemon.jobs.ResumeJob, pb.ResumeJobRequest(job="nope"), "nope"),
    ]:
        with pytest.raises(grpc.RpcError) as err:
            method(request, timeout=10)
        assert words in err.value.details()
    assert error_code(err.value) == "job_not_found"
    assert job(daemon, "tick").state == pb.JOB_STATE_ACTIVE and job_events(daemon, "tick") == []
    assert daemon.ctl("jobs", "pause", "nope").returncode == 4
