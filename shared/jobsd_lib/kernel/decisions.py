"""Pure decisions about runs: may a trigger start one, what an attempt's end means, when to retry.

Every function takes facts (and `now` where time matters) and returns a frozen value; the
daemon carries the decision out.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from jobsd_lib.kernel.results import describe_result  # re-exported: its home is kernel.results
from jobsd_lib.kernel.states import JobState, RunState, Trigger

__all__ = ["job_state", "Admit", "Refuse", "Skip", "Drop", "admit_run", "AttemptResult", "Finish", "Retry",
           "after_attempt", "backoff_delay", "describe_result"]


def job_state(valid: bool, enabled_in_spec: bool, operator_state: str | None) -> JobState:
    """The state a job shows: invalid beats disabled (by spec or operator) beats paused beats active."""
    if not valid:
        return JobState.INVALID
    if not enabled_in_spec or operator_state == JobState.DISABLED.value:
        return JobState.DISABLED
    if operator_state == JobState.PAUSED.value:
        return JobState.PAUSED
    return JobState.ACTIVE


@dataclass(frozen=True)
class Admit:
    """Queue a new run."""


@dataclass(frozen=True)
class Refuse:
    """Answer the caller with an error; record nothing."""
    code: str
    message: str


@dataclass(frozen=True)
class Skip:
    """Record a `skipped` run with this reason; start nothing."""
    reason: str


@dataclass(frozen=True)
class Drop:
    """Record nothing: a cron window of a paused or disabled job is not a run (DESIGN 11). The
    job.paused / job.disabled event is the audit trail; an every-second job paused for a week must
    not write 604,800 records."""
    reason: str


_WINDOWS = (Trigger.CRON, Trigger.CATCH_UP)


def admit_run(job_id: str, trigger: Trigger, job_state: JobState, active_run: str | None,
              disabled_by_spec: bool = False) -> Admit | Refuse | Skip | Drop:
    """May `trigger` start a run of `job_id` now? `active_run` is the ref of its active run, if any;
    `disabled_by_spec` says a disabled job has `enabled = false` in its file (the way out differs).

    Manual requests get an answer (refusals name the way out). A cron window of a paused or
    disabled job is dropped (Drop); else what cannot run is recorded as skipped: an invalid spec,
    an overlap, and a dependency run of a paused or disabled job (one per upstream success, which
    it uses up).
    """
    manual = trigger.requested
    if job_state is JobState.INVALID:
        if manual:
            return Refuse("job_invalid_spec", f"job {job_id!r} has an invalid spec: `jobsctl jobs show {job_id}` says why")
        return Skip("invalid_spec")
    if job_state is JobState.DISABLED:
        if manual and disabled_by_spec:
            return Refuse("job_disabled", f"job {job_id!r} is disabled by its spec (enabled = false): set "
                          "enabled = true in the file, then `jobsctl daemon reload`")
        if manual:
            return Refuse("job_disabled", f"job {job_id!r} is disabled: `jobsctl jobs enable {job_id}` first")
        return Drop("disabled") if trigger in _WINDOWS else Skip("disabled")
    if job_state is JobState.PAUSED and not manual:
        return Drop("paused") if trigger in _WINDOWS else Skip("paused")
    if active_run is not None:
        if manual:
            return Refuse("job_busy", f"job {job_id!r} already has an active run, {active_run}: wait for it "
                          f"(`jobsctl jobs tail {job_id} -f`) or cancel it (`jobsctl runs cancel {active_run}`)")
        return Skip("overlap")
    return Admit()


@dataclass(frozen=True)
class AttemptResult:
    """How one attempt ended. exit_code and signal come from the OS; flags from the daemon."""
    exit_code: int | None = None
    signal: int | None = None
    timed_out: bool = False
    cancelled: bool = False
    interrupted: bool = False
    start_error: str = ""   # the process could not be started at all


@dataclass(frozen=True)
class Finish:
    state: RunState


@dataclass(frozen=True)
class Retry:
    at: datetime
    delay: float


def backoff_delay(backoff: float, factor: float, cap: float, attempt: int) -> float:
    """Seconds to wait after attempt `attempt` (1-based) before the next: backoff * factor^(attempt-1), capped."""
    delay = backoff * (factor ** (attempt - 1)) if attempt < 200 else cap
    return min(delay, cap)


def after_attempt(result: AttemptResult, attempt: int, max_attempts: int, now: datetime,
                  backoff: float, factor: float, cap: float) -> Finish | Retry:
    """What follows an attempt: the run's final state, or a retry and its time.

    Cancelled and interrupted runs never retry. Failures and timeouts retry while
    attempts remain.
    """
    if result.cancelled:
        return Finish(RunState.CANCELLED)
    if result.interrupted:
        return Finish(RunState.INTERRUPTED)
    if not result.timed_out and not result.start_error and result.exit_code == 0:
        return Finish(RunState.SUCCEEDED)
    if attempt < max_attempts:
        delay = backoff_delay(backoff, factor, cap, attempt)
        return Retry(now + timedelta(seconds=delay), delay)
    return Finish(RunState.TIMED_OUT if result.timed_out else RunState.FAILED)
