"""Cron scheduling with a real daemon: firings, overlap, pause/resume, disable, reload, missed windows,
next run times (DESIGN 3-6). Every wait is a condition with a deadline."""
from __future__ import annotations

import os
import signal
import sqlite3
import time
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import grpc
import pytest

from jobsd_lib.rpc import jobsd_pb2 as pb
from tests.conftest import error_code, wait_for

pytestmark = pytest.mark.timeout(60)

EVERY_SECOND = '[schedule]\ncron = "* * * * * *"\ntimezone = "UTC"\n'


def runs(daemon, job: str) -> list[pb.Run]:  # noqa: ANN001
    return list(daemon.jobs.ListRuns(pb.ListRunsRequest(job=job, limit=1000), timeout=10).runs)


def cron_runs(daemon, job: str, *states: int) -> list[pb.Run]:  # noqa: ANN001
    return [r for r in runs(daemon, job) if r.trigger == pb.TRIGGER_CRON and (not states or r.state in states)]


def stamp(run: pb.Run) -> float:
    return run.scheduled_at.seconds + run.scheduled_at.nanos / 1e9


def test_every_second_schedule_fires_cron_runs_on_whole_seconds(daemon):
    daemon.write_job("tick", 'command = ["true"]\n' + EVERY_SECOND)
    daemon.start()
    done = wait_for(lambda: len(r := cron_runs(daemon, "tick", pb.RUN_STATE_SUCCEEDED)) >= 2 and r, 10,
                    "two succeeded cron runs")
    for run in done:
        assert run.HasField("scheduled_at") and run.scheduled_at.nanos == 0
    assert len({stamp(r) for r in done}) == len(done)  # one run a window
    health = daemon.daemon.GetHealth(pb.GetHealthRequest(), timeout=10)
    assert health.scheduler_state == "running" and health.HasField("last_tick")
    job = daemon.jobs.GetJob(pb.GetJobRequest(job="tick"), timeout=10)
    assert job.HasField("next_run_at") and job.next_run_at.nanos == 0

    def listed_next() -> int:
        [listed] = [j for j in daemon.jobs.ListJobs(pb.ListJobsRequest(), timeout=10).jobs if j.id == "tick"]
        return listed.next_run_at.seconds

    first = listed_next()  # jobs list keeps next run times between firings: each firing moves them on
    wait_for(lambda: listed_next() > first, 5, "jobs list's next run time to move on after a firing")
    assert listed_next() > time.time() - 2


def test_every_second_schedule_of_a_three_second_job_records_overlap_skips(daemon):
    daemon.write_job("slow", 'command = ["sleep", "3"]\n' + EVERY_SECOND)
    daemon.start()
    skipped = wait_for(lambda: cron_runs(daemon, "slow", pb.RUN_STATE_SKIPPED), 10, "a skipped cron run")
    assert skipped[0].reason == "overlap" and skipped[0].HasField("scheduled_at")
    active = [r for r in cron_runs(daemon, "slow") if r.state in (pb.RUN_STATE_QUEUED, pb.RUN_STATE_RUNNING)]
    assert len(active) <= 1


def windows_pass(daemon, after: float, count: int = 3) -> None:  # noqa: ANN001
    """Wait until the every-second job `witness` has run `count` windows after `after`."""
    wait_for(lambda: len([r for r in cron_runs(daemon, "witness") if stamp(r) > after]) >= count, 15,
             f"{count} windows of the witness job")


def test_pause_records_nothing_per_window_manual_still_works_resume_restarts(daemon):
    daemon.write_job("tick", 'command = ["true"]\n' + EVERY_SECOND)
    daemon.write_job("witness", 'command = ["true"]\n' + EVERY_SECOND)
    daemon.start()
    wait_for(lambda: cron_runs(daemon, "tick", pb.RUN_STATE_SUCCEEDED), 10, "a cron run")
    paused = daemon.jobs.PauseJob(pb.JobRequest(job="tick"), timeout=10)
    assert paused.state == pb.JOB_STATE_PAUSED and not paused.HasField("next_run_at")
    paused_at = time.time()
    windows_pass(daemon, paused_at)
    assert [r.ref for r in cron_runs(daemon, "tick") if stamp(r) > paused_at + 0.5] == []  # DESIGN 11: no history
    last_real = runs(daemon, "tick")[0]
    listed = daemon.jobs.GetJob(pb.GetJobRequest(job="tick"), timeout=10)
    assert listed.last_run.ref == last_real.ref and listed.last_run.state == pb.RUN_STATE_SUCCEEDED
    manual = daemon.run("tick")
    assert daemon.wait_finished(manual.ref).state == pb.RUN_STATE_SUCCEEDED
    resumed = daemon.jobs.ResumeJob(pb.JobRequest(job="tick"), timeout=10)
    assert resumed.state == pb.JOB_STATE_ACTIVE
    resumed_at = time.time()
    wait_for(lambda: [r for r in cron_runs(daemon, "tick", pb.RUN_STATE_SUCCEEDED) if stamp(r) >= resumed_at - 1],
             10, "a cron run after resume")


def test_disable_survives_a_restart_and_blocks_cron_and_manual_runs(daemon):
    daemon.write_job("tick", 'command = ["true"]\n' + EVERY_SECOND)
    daemon.write_job("witness", 'command = ["true"]\n' + EVERY_SECOND)
    daemon.start()
    assert daemon.jobs.DisableJob(pb.JobRequest(job="tick"), timeout=10).state == pb.JOB_STATE_DISABLED
    disabled_at = time.time()
    assert daemon.stop() == 0
    daemon.start()
    job = daemon.jobs.GetJob(pb.GetJobRequest(job="tick"), timeout=10)
    assert job.state == pb.JOB_STATE_DISABLED and not job.HasField("next_run_at")
    with pytest.raises(grpc.RpcError) as err:
        daemon.run("tick")
    assert error_code(err.value) == "job_disabled"
    windows_pass(daemon, time.time())
    assert [r.ref for r in cron_runs(daemon, "tick") if stamp(r) > disabled_at + 0.5] == []  # nothing per window
    assert daemon.jobs.EnableJob(pb.JobRequest(job="tick"), timeout=10).state == pb.JOB_STATE_ACTIVE


def _stored_schedule_ids(daemon) -> set[str]:  # noqa: ANN001
    with sqlite3.connect(os.path.join(daemon.home, "db", "schedule.sqlite3")) as db:
        return {row[0] for row in db.execute("SELECT id FROM apscheduler_jobs")}


def test_reload_rpc_adds_and_removes_a_scheduled_job(daemon):
    daemon.write_job("manual", 'command = ["true"]\n')
    daemon.start()
    path = daemon.write_job("tick", 'command = ["true"]\n' + EVERY_SECOND)
    answer = daemon.daemon.Reload(pb.ReloadRequest(), timeout=10)
    assert list(answer.added) == ["tick"] and not answer.removed and not answer.errors
    wait_for(lambda: cron_runs(daemon, "tick", pb.RUN_STATE_SUCCEEDED), 10, "a cron run of the added job")
    assert "tick" in _stored_schedule_ids(daemon)
    os.remove(path)
    daemon.write_job("broken", 'command = ["x"]\ncolour = 1\n')
    answer = daemon.daemon.Reload(pb.ReloadRequest(), timeout=10)
    assert list(answer.removed) == ["tick"] and list(answer.added) == ["broken"]
    assert [e.field for e in answer.errors] == ["colour"]
    assert "tick" not in _stored_schedule_ids(daemon)
    ctl = daemon.ctl("daemon", "reload", "--json")
    assert ctl.returncode == 0 and b'"added": []' in ctl.stdout
    human = daemon.ctl("daemon", "reload")
    assert human.returncode == 0 and b"reloaded: added none" in human.stdout and b"colour" in human.stdout


def test_sighup_reloads_the_schedule(daemon):
    daemon.start()
    daemon.write_job("tick", 'command = ["true"]\n' + EVERY_SECOND)
    daemon.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: cron_runs(daemon, "tick", pb.RUN_STATE_SUCCEEDED), 10, "a cron run after SIGHUP")


def test_windows_missed_while_down_are_recorded_missed_after_restart(daemon):
    daemon.write_job("tick", 'command = ["true"]\n[schedule]\ncron = "* * * * * *"\ntimezone = "UTC"\n'
                     'misfire_grace = "0.5s"\ncoalesce = false\n')
    daemon.start()
    wait_for(lambda: cron_runs(daemon, "tick", pb.RUN_STATE_SUCCEEDED), 10, "a cron run")
    assert daemon.stop() == 0
    down = time.time()
    wait_for(lambda: time.time() > down + 3, 5, "three seconds of downtime")  # windows must pass while down
    daemon.start()
    missed = wait_for(lambda: cron_runs(daemon, "tick", pb.RUN_STATE_MISSED), 10, "missed records")
    assert all(r.reason.startswith("missed: ") and r.scheduled_at.nanos == 0 for r in missed)
    assert any(down <= stamp(r) for r in missed)


def test_next_run_times_weekdays_at_nine_in_berlin(daemon):
    daemon.write_job("report", 'command = ["true"]\n[schedule]\ncron = "0 9 * * 1-5"\ntimezone = "Europe/Berlin"\n')
    daemon.write_job("manual", 'command = ["true"]\n')
    daemon.start()
    answer = daemon.jobs.NextRunTimes(pb.NextRunTimesRequest(job="report", count=10), timeout=10)
    times = [datetime.fromtimestamp(t.seconds, timezone.utc) for t in answer.times]
    assert len(times) == 10 and times == sorted(times)
    local = [t.astimezone(ZoneInfo("Europe/Berlin")) for t in times]
    assert all(t.weekday() < 5 and (t.hour, t.minute, t.second) == (9, 0, 0) for t in local)
    default = daemon.jobs.NextRunTimes(pb.NextRunTimesRequest(job="report"), timeout=10)
    assert len(default.times) == 5
    assert list(daemon.jobs.NextRunTimes(pb.NextRunTimesRequest(job="manual"), timeout=10).times) == []
    with pytest.raises(grpc.RpcError) as err:
        daemon.jobs.NextRunTimes(pb.NextRunTimesRequest(job="report", count=1001), timeout=10)
    assert error_code(err.value) == "invalid_argument"
    with pytest.raises(grpc.RpcError) as err:
        daemon.jobs.NextRunTimes(pb.NextRunTimesRequest(job="nope"), timeout=10)
    assert error_code(err.value) == "job_not_found"
    import json

    ctl = daemon.ctl("jobs", "next", "report", "--count", "3", "--json")
    assert ctl.returncode == 0, ctl.stderr
    data = json.loads(ctl.stdout)
    assert data["job"] == "report" and len(data["times"]) == 3
    assert all(t.endswith("+00:00") for t in data["times"])
    assert datetime.fromisoformat(data["times"][0]) == times[0]
    human = daemon.ctl("jobs", "next", "manual")
    assert human.returncode == 0 and b"no schedule" in human.stdout
    too_many = daemon.ctl("jobs", "next", "report", "--count", "5000")
    assert too_many.returncode == 2  # usage error, caught by the client


def test_windows_of_a_job_whose_file_broke_are_recorded_skipped_not_dropped(daemon):
    path = daemon.write_job("tick", 'command = ["true"]\n' + EVERY_SECOND)
    daemon.start()
    wait_for(lambda: cron_runs(daemon, "tick", pb.RUN_STATE_SUCCEEDED), 10, "a cron run")
    with open(path, "a") as f:
        f.write("colour = 1\n")  # now invalid: the stored schedule is kept, its windows must show up
    daemon.daemon.Reload(pb.ReloadRequest(), timeout=10)
    skipped = wait_for(lambda: [r for r in cron_runs(daemon, "tick", pb.RUN_STATE_SKIPPED)
                                if r.reason == "invalid_spec"], 10, "a skipped window of the broken job")
    assert skipped[0].HasField("scheduled_at")


# ---------------------------------------------------------------------------- restarts and the stored schedule
def _daily_at(instant: int) -> str:
    """A spec whose one window a day is the UTC second `instant` (6-field cron), late runs allowed."""
    at = datetime.fromtimestamp(instant, timezone.utc)
    return (f'command = ["true"]\n[schedule]\ncron = "{at.second} {at.minute} {at.hour} * * *"\ntimezone = "UTC"\n'
            'misfire_grace = "1h"\n')


def _restart_across_a_window(daemon, jobs: list[str], while_down) -> int:  # noqa: ANN001
    """Schedule `jobs` (Reload) for one window a few seconds ahead, stop jobsd, let the window pass,
    call `while_down()`, start jobsd again. Returns the window (epoch seconds)."""
    for job in jobs:
        daemon.write_job(job, 'command = ["true"]\n[schedule]\ncron = "0 0 0 1 1 *"\ntimezone = "UTC"\n')
    daemon.start()
    due = int(time.time()) + 4
    for job in jobs:
        daemon.write_job(job, _daily_at(due))
    assert sorted(daemon.daemon.Reload(pb.ReloadRequest(), timeout=10).changed) == sorted(jobs)
    assert daemon.stop() == 0
    assert time.time() < due, "jobsd took too long to stop: the window was not missed while down"
    wait_for(lambda: time.time() > due + 1, 10, "the window to pass while jobsd is down")
    while_down()
    daemon.start()
    return due


def _cron_windows(daemon) -> dict[str, set[int]]:  # noqa: ANN001
    out: dict[str, set[int]] = {}
    for run in daemon.jobs.ListRuns(pb.ListRunsRequest(limit=1000), timeout=10).runs:
        if run.trigger == pb.TRIGGER_CRON:
            out.setdefault(run.job, set()).add(run.scheduled_at.seconds)
    return out


def test_a_restart_keeps_unchanged_stored_jobs_and_replaces_changed_ones(daemon):
    """50 scheduled jobs; while jobsd is down their window passes, one spec changes and one is
    deleted. The 48 unchanged jobs keep their stored schedule, so their missed window runs late;
    the changed one is registered again (new next run time, the old window gone with it)."""
    jobs = [f"j{k:02d}" for k in range(50)]
    later = int(time.time()) + 7200

    def edit() -> None:
        daemon.write_job("j07", _daily_at(later))
        os.remove(os.path.join(daemon.jobs_dir, "j49.toml"))

    due = _restart_across_a_window(daemon, jobs, edit)
    unchanged = set(jobs) - {"j07", "j49"}
    def ran_due() -> set[str]:
        return {job for job, seen in _cron_windows(daemon).items() if due in seen}

    wait_for(lambda: ran_due() >= unchanged, 20, "the missed window of every unchanged job")
    assert _cron_windows(daemon).keys() == unchanged  # j07's old window went with its old schedule; j49 is gone
    assert _stored_schedule_ids(daemon) == set(jobs) - {"j49"}
    listed = {j.id: j for j in daemon.jobs.ListJobs(pb.ListJobsRequest(), timeout=10).jobs}
    assert listed["j07"].next_run_at.seconds == later
    assert all(listed[j].next_run_at.seconds == due + 86400 for j in unchanged)
    assert daemon.jobs.GetJob(pb.GetJobRequest(job="j07"), timeout=10).next_run_at.seconds == later
    assert "1 changed (j07)" in daemon.read_log() and "1 removed (j49)" in daemon.read_log()


def test_a_store_from_before_the_digest_table_keeps_its_unchanged_jobs(daemon):
    """schedule.sqlite3 as an earlier jobsd left it (no jobsd_schedule_digests table): the stored
    jobs' digests are read from their pickled names once, so unchanged jobs are not registered
    again and keep their missed window."""
    jobs = [f"old{k}" for k in range(5)]

    def downgrade() -> None:
        with sqlite3.connect(os.path.join(daemon.home, "db", "schedule.sqlite3")) as db:
            db.execute("DROP TABLE jobsd_schedule_digests")

    due = _restart_across_a_window(daemon, jobs, downgrade)
    wait_for(lambda: {job for job, seen in _cron_windows(daemon).items() if due in seen} == set(jobs), 20,
             "the missed window of every job")
    with sqlite3.connect(os.path.join(daemon.home, "db", "schedule.sqlite3")) as db:
        assert db.execute("SELECT count(*) FROM jobsd_schedule_digests").fetchone()[0] == 5
    assert "recorded the schedule digests of 5 jobs" in daemon.read_log()
