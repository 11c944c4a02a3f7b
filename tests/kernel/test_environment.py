"""A job's environment is built from a short list, never the daemon's whole environment: systemd's
notify, watchdog and socket-activation variables never reach a job (PITFALLS 21, 24)."""
from __future__ import annotations

from datetime import datetime, timezone

from jobsd_lib.kernel.environment import DEFAULT_PATH, job_environment

SYSTEMD = {"NOTIFY_SOCKET": "/run/systemd/notify", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1",
           "LISTEN_FDS": "1", "LISTEN_PID": "1", "LISTEN_FDNAMES": "jobsd.socket"}


def test_systemds_variables_and_the_rest_of_the_daemons_environment_stay_behind():
    daemon = {"PATH": "/usr/bin:/bin", "HOME": "/var/lib/jobsd", "LANG": "C.UTF-8",
              "INVOCATION_ID": "0123", "SECRET_TOKEN": "x", **SYSTEMD}
    env = job_environment(daemon, {}, job="backup", run="backup/3", attempt=2, trigger="manual",
                          scheduled_at=None)
    assert env == {"PATH": "/usr/bin:/bin", "HOME": "/var/lib/jobsd", "LANG": "C.UTF-8", "SHELL": "/bin/sh",
                   "JOBSD_JOB": "backup", "JOBSD_RUN": "backup/3", "JOBSD_ATTEMPT": "2",
                   "JOBSD_TRIGGER": "manual"}


def test_the_spec_overrides_the_base_and_jobsd_variables_override_the_spec():
    when = datetime(2026, 12, 2, 3, 0, tzinfo=timezone.utc)
    env = job_environment({}, {"PATH": "/opt/bin", "JOBSD_JOB": "forged", "MODE": "full"}, job="backup",
                          run="backup/1", attempt=1, trigger="schedule", scheduled_at=when)
    assert env["PATH"] == "/opt/bin" and env["MODE"] == "full"
    assert env["JOBSD_JOB"] == "backup"
    assert env["JOBSD_SCHEDULED_TIME"] == "2026-12-02T03:00:00+00:00"


def test_without_a_path_a_job_gets_the_default_one():
    assert job_environment({}, {}, job="a", run="a/1", attempt=1, trigger="manual",
                           scheduled_at=None)["PATH"] == DEFAULT_PATH
