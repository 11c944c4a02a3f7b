"""A job's jitter: one fixed offset per job id that every window of its schedule is shifted by.

Many jobs sharing a schedule (`0 * * * *` on every host) would all start at the same second.
`[schedule] jitter = "5m"` moves each window of a job by the same offset in [0, jitter), derived
from the job id alone (a hash, like systemd's RandomizedOffsetSec, but without the machine id): the
same on every restart and on every host, so a job's runs stay evenly spaced and two hosts running
the same job id agree on when it fires. The window itself (JOBSD_SCHEDULED_TIME, the run's
scheduled_at) stays the nominal one; the timer fires at window + offset.
"""
from __future__ import annotations

import hashlib
from datetime import timedelta

__all__ = ["offset", "MAX_JITTER"]

MAX_JITTER = 86400.0  # seconds: a day; a spread wider than that reorders a daily job's windows
_RESOLUTION = 1000    # offsets are whole milliseconds


def offset(job_id: str, jitter: float) -> timedelta:
    """The job's offset in [0, jitter) seconds, in whole milliseconds (0 when jitter is 0)."""
    steps = int(jitter * _RESOLUTION)
    if steps <= 0:
        return timedelta(0)
    digest = hashlib.sha256(b"jobsd-jitter\0" + job_id.encode()).digest()
    return timedelta(milliseconds=int.from_bytes(digest[:8], "big") % steps)
