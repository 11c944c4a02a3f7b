"""Where things live and what files are called, computed from names and an environment mapping (no I/O).

Home: --home, else $JOBSD_HOME, else ~/.local/state/jobsd. Jobs in HOME/jobs, state in HOME
(HOME/db for SQLite and the lock, HOME/runs for artifacts), socket HOME/jobsd.sock unless
--socket or $JOBSD_SOCKET says otherwise. The client uses the same rules to find the socket and
the jobs folder. In a run's folder, attempt K's output is attempt-K.log and its index
attempt-K.idx (docs/runbook.md).
"""
from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["default_home", "default_socket", "jobs_dir", "check_socket_path", "SOCKET_PATH_MAX",
           "attempt_log_name", "attempt_index_name"]

SOCKET_PATH_MAX = 107  # bytes in sun_path, less the terminating NUL


def default_home(environ: Mapping[str, str], user_home: str) -> str:
    return environ.get("JOBSD_HOME") or os.path.join(user_home, ".local", "state", "jobsd")


def default_socket(environ: Mapping[str, str], user_home: str) -> str:
    return environ.get("JOBSD_SOCKET") or os.path.join(default_home(environ, user_home), "jobsd.sock")


def jobs_dir(home: str) -> str:
    """The jobs folder of a home (the daemon's --jobs-dir overrides it)."""
    return os.path.join(home, "jobs")


def attempt_log_name(attempt: int) -> str:
    """The file name of attempt `attempt`'s output (raw bytes) in its run's folder."""
    return f"attempt-{attempt}.log"


def attempt_index_name(attempt: int) -> str:
    """The file name of attempt `attempt`'s chunk index, beside its log."""
    return f"attempt-{attempt}.idx"


def check_socket_path(path: str) -> str | None:
    """None when `path` fits a Unix socket address, else the reason it does not."""
    size = len(os.fsencode(path))
    if size > SOCKET_PATH_MAX:
        return (f"socket path {path!r} is {size} bytes; Unix sockets allow at most {SOCKET_PATH_MAX}: "
                "choose a shorter --socket")
    return None
