"""Gates (DESIGN 10): what a run checks before its first attempt, as decisions over what the daemon read.

- `[[requires]]`: the required job's latest finished run succeeded, and ended at most
  `succeeded_within` ago. Not met while that job runs now (its outcome is coming) or when its
  latest finished run did not succeed, never ran, or is too old. The detail is for people:
  `backup: last success 30h ago, needs < 26h`.
- `[gates] condition`: systemd's ExecCondition rule on the exit status of the condition command.
- `[gates] approval`: a run waits for a person's decision; `approvers` (user names, @groups) says
  who may give it (`may_decide`), empty: anyone who can reach the socket.
- `[gates] wait`: how long a run may wait for unmet gates before it ends skipped.
- Across a restart (`after_restart`): a run that was waiting for approval or for its gates, with
  nothing of it started, waits on under the daemon that starts next; every other active run ends
  `interrupted`.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from jobsd_lib.kernel.states import RunState, WaitReason

__all__ = ["Requirement", "Finished", "Met", "Unmet", "check_requires", "Go", "SkipRun", "FailRun",
           "condition_outcome", "wait_over", "short_duration", "may_decide", "approval_detail", "APPROVAL_TIMEOUT",
           "Resume", "Interrupt", "after_restart"]

APPROVAL_TIMEOUT = "approval_timeout"  # how the reason of a run skipped waiting for approval begins


@dataclass(frozen=True)
class Requirement:
    job: str
    succeeded_within: float  # seconds, > 0


@dataclass(frozen=True)
class Finished:
    """A required job's latest finished run (skipped and missed records are not runs that ended)."""
    ref: str
    state: RunState
    finished_at: float


@dataclass(frozen=True)
class Met:
    pass


@dataclass(frozen=True)
class Unmet:
    detail: str  # every unmet requirement, "; "-joined, for wait_detail and the skip reason


def check_requires(requires: Sequence[Requirement], latest: Mapping[str, Finished | None],
                   running: Mapping[str, str], now: float) -> Met | Unmet:
    """`latest[job]`: that job's newest finished run (None: never finished one); `running[job]`: the
    ref of its active run, if any."""
    unmet = [detail for req in requires if (detail := _unmet(req, latest.get(req.job), running.get(req.job), now))]
    return Unmet("; ".join(unmet)) if unmet else Met()


def _unmet(req: Requirement, last: Finished | None, active: str | None, now: float) -> str:
    needs = f"needs < {short_duration(req.succeeded_within)}"
    if active is not None:
        return f"{req.job}: running now ({active})"
    if last is None:
        return f"{req.job}: never ran, {needs}"
    age = max(now - last.finished_at, 0.0)
    if last.state is not RunState.SUCCEEDED:
        return f"{req.job}: last run {last.ref} {last.state.value} {short_duration(age)} ago, {needs}"
    if age > req.succeeded_within:
        return f"{req.job}: last success {short_duration(age)} ago, {needs}"
    return ""


@dataclass(frozen=True)
class Go:
    pass


@dataclass(frozen=True)
class SkipRun:
    reason: str  # "condition"


@dataclass(frozen=True)
class FailRun:
    reason: str


def condition_outcome(exit_code: int | None, signal: int | None) -> Go | SkipRun | FailRun:
    """systemd's ExecCondition=: 0 goes on, 1-254 skips the run, 255 or a signal fails it."""
    if signal is not None:
        return FailRun(f"condition killed by signal {signal}")
    if exit_code == 0:
        return Go()
    if exit_code is not None and 1 <= exit_code <= 254:
        return SkipRun("condition")
    return FailRun(f"condition exited {exit_code}")


def wait_over(waiting_since: float, wait: float, now: float) -> bool:
    """Has a run waited for its gates as long as `[gates] wait` allows? (wait 0: at once.)"""
    return now - waiting_since >= wait


def short_duration(seconds: float) -> str:
    """A duration as people read it in a status line: 45s, 12m, 30h, 3d (rounded down, one unit)."""
    seconds = max(seconds, 0.0)
    for unit, size, below in (("s", 1, 120), ("m", 60, 120 * 60), ("h", 3600, 72 * 3600)):
        if seconds < below:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds // 86400)}d"


def may_decide(approvers: Sequence[str], user: str | None, groups: Sequence[str]) -> bool:
    """May the caller (its user name on this host, None when the kernel gave no uid or it has no name;
    `groups`: the names of its groups) approve or reject a run of a job with these approvers?"""
    if not approvers:
        return True
    if user is None:
        return False
    return user in approvers or any(f"@{group}" in approvers for group in groups)


def approval_detail(approvers: Sequence[str]) -> str:
    """wait_detail of a run waiting for approval: `approval by alice or @ops`, `approval` for anyone."""
    if not approvers:
        return "approval"
    if len(approvers) <= 3:
        return "approval by " + " or ".join(approvers)
    return f"approval by {', '.join(approvers[:3])} or {len(approvers) - 3} more"


@dataclass(frozen=True)
class Resume:
    """The run waits on for its approval or gates; the time it waited counts (`waiting_since`)."""


@dataclass(frozen=True)
class Interrupt:
    reason: str


_RESUMABLE = (WaitReason.APPROVAL.value, WaitReason.DEPENDENCY.value)


def after_restart(state: RunState, attempts: int, wait_reason: str | None, recorded_digest: str,
                  current_digest: str | None) -> Resume | Interrupt:
    """What becomes of a run that a stopped (or dead) daemon left active. Only a wait for a person
    or for other jobs, long by nature and with nothing of the run begun, survives a restart, and only
    under the very spec it was queued with (`current_digest` None: the job is gone or invalid now):
    an approval given for one command must not start another."""
    reason = f"jobsd stopped while the run was {state.value}"
    if state is not RunState.QUEUED or attempts or wait_reason not in _RESUMABLE:
        return Interrupt(reason)
    if current_digest is None:
        return Interrupt(f"{reason}; its job is no longer valid")
    if current_digest != recorded_digest:
        return Interrupt(f"{reason}; its spec file changed meanwhile")
    return Resume()
