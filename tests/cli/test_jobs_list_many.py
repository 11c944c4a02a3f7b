"""`jobs list --json` with many jobs, on a real daemon: each job's last run, failures in a row and
state, as `jobs show` gives them one by one, and a change shows in the very next listing.

ListJobs reads every job's history in a few set-based statements and keeps its answer until the
store changes (issue 19 item 8); this is what a user sees of that: the same answers as before.
"""
from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.timeout(90)

OK, FAIL, IDLE = 8, 8, 6  # jobs that succeed, that exit 3, that never ran


def listed(daemon) -> dict[str, dict]:  # noqa: ANN001
    result = daemon.ctl("jobs", "list", "--json")
    assert result.returncode == 0, result.stderr
    return {j["id"]: j for j in json.loads(result.stdout)["jobs"]}


def run_and_wait(daemon, job: str) -> None:  # noqa: ANN001
    daemon.wait_finished(daemon.run(job).ref)


def test_jobs_list_json_shows_each_of_many_jobs_history_as_jobs_show_does(daemon):
    for k in range(OK):
        daemon.write_job(f"ok{k}", 'command = ["true"]\n')
    for k in range(FAIL):
        daemon.write_job(f"fail{k}", 'command = ["sh", "-c", "exit 3"]\n')
    for k in range(IDLE):
        daemon.write_job(f"idle{k}", 'command = ["true"]\n[schedule]\ncron = "0 0 1 1 *"\ntimezone = "UTC"\n')
    daemon.write_job("broken", 'command = ["true"]\ncolour = "red"\n')
    daemon.start()
    for k in range(OK):
        for _ in range(1 + k % 2):
            run_and_wait(daemon, f"ok{k}")
    for k in range(FAIL):
        for _ in range(1 + k % 3):
            run_and_wait(daemon, f"fail{k}")
    assert daemon.ctl("jobs", "pause", "ok1").returncode == 0
    assert daemon.ctl("jobs", "disable", "fail1").returncode == 0

    jobs = listed(daemon)
    assert len(jobs) == OK + FAIL + IDLE + 1
    for k in range(OK):
        job = jobs[f"ok{k}"]
        assert (job["last_run"]["run"], job["last_run"]["state"], job["last_run"]["exit_code"]) == \
            (f"ok{k}/{1 + k % 2}", "succeeded", 0)
        assert job["consecutive_failures"] == 0 and job["state"] == ("paused" if k == 1 else "active")
    for k in range(FAIL):
        job = jobs[f"fail{k}"]
        assert (job["last_run"]["run"], job["last_run"]["state"], job["last_run"]["exit_code"]) == \
            (f"fail{k}/{1 + k % 3}", "failed", 3)
        assert job["consecutive_failures"] == 1 + k % 3 and job["state"] == ("disabled" if k == 1 else "active")
        assert len(job["last_run"]["attempt_list"]) == 1
    for k in range(IDLE):
        job = jobs[f"idle{k}"]
        assert job["last_run"] is None and job["consecutive_failures"] == 0 and job["next_run_at"] is not None
    assert jobs["broken"]["state"] == "invalid" and jobs["broken"]["last_run"] is None
    for job_id, job in jobs.items():
        shown = daemon.ctl("jobs", "show", job_id, "--json")
        assert shown.returncode == 0 and json.loads(shown.stdout) == job, job_id

    run_and_wait(daemon, "fail0")  # a new failure, then a pause: the next listing shows both
    assert daemon.ctl("jobs", "pause", "idle0").returncode == 0
    jobs = listed(daemon)
    assert jobs["fail0"]["last_run"]["run"] == "fail0/2" and jobs["fail0"]["consecutive_failures"] == 2
    assert jobs["idle0"]["state"] == "paused" and jobs["idle0"]["next_run_at"] is None
