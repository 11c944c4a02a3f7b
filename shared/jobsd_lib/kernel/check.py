"""`jobsctl check` (DESIGN 11): is a job fine? A job has a problem when its spec is invalid, when it
is failing (its latest finished run, skipped, missed and cancelled ones aside, was unsuccessful:
consecutive_failures > 0) or when it is overdue (`[expect] success_within`). Paused and disabled
jobs are fine unless one of those holds: a pause is a decision, and a forgotten one shows up as
overdue once the job expects successes."""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Problem", "job_problems"]


@dataclass(frozen=True)
class Problem:
    job: str
    kind: str     # invalid | failing | overdue
    message: str


def job_problems(job: str, invalid: str | None, consecutive_failures: int, last_result: str,
                 overdue: str | None) -> list[Problem]:
    """The job's problems, in that order. `invalid`: the spec's error, `last_result`: its latest
    run and what it ended with (`backup/7: exit 3`), `overdue`: why it is overdue; None when it is not."""
    problems = []
    if invalid is not None:
        problems.append(Problem(job, "invalid", invalid))
    if consecutive_failures:
        times = "once" if consecutive_failures == 1 else f"{consecutive_failures} times in a row"
        problems.append(Problem(job, "failing", f"failed {times} (latest run {last_result})"))
    if overdue is not None:
        problems.append(Problem(job, "overdue", overdue))
    return problems
