"""The environment of a job's process, built explicitly (never the daemon's whole environment).

Like cron and systemd, a job starts from a small, predictable base: PATH, HOME, USER, LOGNAME,
SHELL and the locale/zone variables the daemon itself has; then the spec's `env`; then the
JOBSD_* variables of the attempt. The daemon's NOTIFY_SOCKET, WATCHDOG_*, LISTEN_* and
anything else are not passed (PITFALLS 21).
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

__all__ = ["job_environment", "BASE_VARIABLES", "DEFAULT_PATH"]

BASE_VARIABLES = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR",
                  "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "LC_NUMERIC", "LC_TIME", "LC_COLLATE")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def job_environment(daemon_env: Mapping[str, str], spec_env: Mapping[str, str], *, job: str, run: str,
                    attempt: int, trigger: str, scheduled_at: datetime | None, upstream: str = "",
                    user: Mapping[str, str] | None = None, files: Mapping[str, str] | None = None) -> dict[str, str]:
    """`user`: HOME, USER, LOGNAME and SHELL of the job's user when it runs as another (they replace
    the daemon's; the spec's env still wins); `files`: JOBSD_STATE_DIR and JOBSD_CREDENTIALS_DIRECTORY."""
    env = {name: daemon_env[name] for name in BASE_VARIABLES if name in daemon_env}
    env.setdefault("PATH", DEFAULT_PATH)
    env["SHELL"] = "/bin/sh"
    env.update(user or {})
    env.update(spec_env)
    env.update(JOBSD_JOB=job, JOBSD_RUN=run, JOBSD_ATTEMPT=str(attempt), JOBSD_TRIGGER=trigger)
    if scheduled_at is not None:
        env["JOBSD_SCHEDULED_TIME"] = scheduled_at.isoformat()
    if upstream:
        env["JOBSD_UPSTREAM_RUN"] = upstream
    env.update(files or {})
    return env
