"""Retention: which finished runs `jobsctl gc` may remove (pure; the daemon applies it).

Rules keep runs, like restic's `--keep-last`/`--keep-within`: a finished run is removed only
when no rule given keeps it.
- keep_last N: keeps each job's N newest finished runs (by run number).
- older_than D: keeps every run that finished less than D seconds ago.
At least one rule is required: `gc` with no rule would remove the whole history, which no
operator means by accident. Active runs (queued, running, retrying) are never candidates.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from jobsd_lib.errors import InvalidArgument

__all__ = ["Retention", "retention_policy", "MAX_KEEP_LAST", "rules_for"]

MAX_KEEP_LAST = 1_000_000


@dataclass(frozen=True)
class Retention:
    """Normalised rules: remove a finished run when rank > keep_last and finished_at < cutoff.

    rank is 1 for a job's newest finished run. keep_last 0 keeps none by count; cutoff
    +inf keeps none by age.
    """
    keep_last: int
    cutoff: float


def retention_policy(keep_last: int | None, older_than: float | None, now: float) -> Retention:
    """Check the rules a caller gave and turn them into a Retention at epoch `now`.

    Raises InvalidArgument (nothing removed) for no rule, a negative count or a bad age.
    """
    if keep_last is None and older_than is None:
        raise InvalidArgument("say what to keep: keep_last (jobsctl gc --keep-last N: each job's newest runs) "
                              "and/or older_than (--older-than D: remove only runs that finished more than D ago, "
                              "like 30d); dry_run (--dry-run) previews")
    if keep_last is not None and not 0 <= keep_last <= MAX_KEEP_LAST:
        raise InvalidArgument(f"keep_last must be between 0 and {MAX_KEEP_LAST}, got {keep_last}")
    if older_than is not None and (not math.isfinite(older_than) or older_than < 0):
        raise InvalidArgument(f"older_than must be a finite number of seconds >= 0, got {older_than}")
    return Retention(keep_last=keep_last or 0, cutoff=now - older_than if older_than is not None else math.inf)


def rules_for(job_keep_last: int | None, job_older_than: float | None, default_keep_last: int | None,
              default_older_than: float | None) -> tuple[int | None, float | None] | None:
    """The rules the daemon's sweep applies to one job: its `[retention]` when it sets any (as a
    whole: a job that says keep_last = 5 is not also cut by the default's age), else the daemon's
    default; None: no rule, keep everything."""
    if job_keep_last is not None or job_older_than is not None:
        return job_keep_last, job_older_than
    if default_keep_last is not None or default_older_than is not None:
        return default_keep_last, default_older_than
    return None
