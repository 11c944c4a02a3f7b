"""Where things live by default, computed from an environment mapping (no I/O).

Home: --home, else $JOBSD_HOME, else ~/.local/state/jobsd. Jobs in HOME/jobs, state in HOME
(HOME/db for SQLite and the lock, HOME/runs for artifacts), socket HOME/jobsd.sock unless
--socket or $JOBSD_SOCKET says otherwise. The client uses the same rules to find the socket.
"""
from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["default_home", "default_socket", "check_socket_path", "SOCKET_PATH_MAX"]

SOCKET_PATH_MAX = 107  # bytes in sun_path, less the terminating NUL


def default_home(environ: Mapping[str, str], user_home: str) -> str:
    return environ.get("JOBSD_HOME") or os.path.join(user_home, ".local", "state", "jobsd")


def default_socket(environ: Mapping[str, str], user_home: str) -> str:
    return environ.get("JOBSD_SOCKET") or os.path.join(default_home(environ, user_home), "jobsd.sock")


def check_socket_path(path: str) -> str | None:
    """None when `path` fits a Unix socket address, else the reason it does not."""
    size = len(os.fsencode(path))
    if size > SOCKET_PATH_MAX:
        return (f"socket path {path!r} is {size} bytes; Unix sockets allow at most {SOCKET_PATH_MAX}: "
                "choose a shorter --socket")
    return None
