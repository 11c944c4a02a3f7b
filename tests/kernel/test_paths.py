"""Default locations and file names (jobsd_lib.paths)."""
from __future__ import annotations

from jobsd_lib.paths import (SOCKET_PATH_MAX, attempt_index_name, attempt_log_name, check_socket_path, default_home,
                             default_socket, jobs_dir)


def test_home_and_socket_follow_the_environment():
    assert default_home({}, "/home/a") == "/home/a/.local/state/jobsd"
    assert default_home({"JOBSD_HOME": "/srv/j"}, "/home/a") == "/srv/j"
    assert default_home({"JOBSD_HOME": ""}, "/home/a") == "/home/a/.local/state/jobsd"
    assert default_socket({"JOBSD_HOME": "/srv/j"}, "/home/a") == "/srv/j/jobsd.sock"
    assert default_socket({"JOBSD_HOME": "/srv/j", "JOBSD_SOCKET": "/run/j.sock"}, "/home/a") == "/run/j.sock"
    assert jobs_dir("/srv/j") == "/srv/j/jobs"


def test_attempt_files_are_named_by_number():
    assert (attempt_log_name(1), attempt_index_name(1)) == ("attempt-1.log", "attempt-1.idx")
    assert attempt_log_name(12) == "attempt-12.log"


def test_a_socket_path_must_fit_sun_path():
    assert check_socket_path("/" + "s" * (SOCKET_PATH_MAX - 1)) is None
    assert "108 bytes" in check_socket_path("/" + "s" * SOCKET_PATH_MAX)
    assert "108 bytes" in check_socket_path("/" + "é" * 53 + "s")  # bytes, not characters
