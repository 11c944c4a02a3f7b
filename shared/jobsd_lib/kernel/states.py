"""Run states and the one table of legal transitions (DESIGN 3).

    queued -> running -> (retrying -> running)* -> terminal
    skipped and missed are born terminal (audit records of runs that did not happen); a queued run
    whose gates are not met in time ends skipped too, one an approver rejects ends rejected.

`advance(current, target)` returns `target` or raises IllegalTransition; it changes nothing.
"""
from __future__ import annotations

from enum import Enum

__all__ = ["RunState", "Trigger", "WaitReason", "JobState", "IllegalTransition", "advance",
           "TERMINAL", "ACTIVE", "INITIAL", "TRANSITIONS", "FAILURES", "OUTCOMES", "sql_list"]


class RunState(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"
    SKIPPED = "skipped"
    MISSED = "missed"
    REJECTED = "rejected"  # [gates] approval: `runs reject` said no before any attempt


class Trigger(str, Enum):
    MANUAL = "manual"
    CRON = "cron"
    CATCH_UP = "catch_up"
    DEPENDENCY = "dependency"
    RETRY = "retry"  # `runs retry JOB/N`: a new run of a finished one (retry_of names it)

    @property
    def requested(self) -> bool:
        """Asked for by someone who waits for the answer (a refusal is an error, the record is synced),
        not fired by the scheduler (what cannot run is recorded skipped)."""
        return self in (Trigger.MANUAL, Trigger.RETRY)


class WaitReason(str, Enum):
    SLOT = "slot"
    BACKOFF = "backoff"
    DEPENDENCY = "dependency"
    APPROVAL = "approval"


class JobState(str, Enum):
    ACTIVE = "active"
    PAUSED = "paused"
    DISABLED = "disabled"
    INVALID = "invalid"


S = RunState
INITIAL = frozenset({S.QUEUED, S.SKIPPED, S.MISSED})
TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    # skipped: its gates were not met or its condition said so; failed: its condition failed;
    # rejected: an approver said no
    S.QUEUED: frozenset({S.RUNNING, S.CANCELLED, S.INTERRUPTED, S.SKIPPED, S.FAILED, S.REJECTED}),
    S.RUNNING: frozenset({S.SUCCEEDED, S.FAILED, S.TIMED_OUT, S.CANCELLED, S.INTERRUPTED, S.RETRYING}),
    S.RETRYING: frozenset({S.RUNNING, S.CANCELLED, S.INTERRUPTED}),
    **{terminal: frozenset() for terminal in (S.SUCCEEDED, S.FAILED, S.TIMED_OUT, S.CANCELLED,
                                              S.INTERRUPTED, S.SKIPPED, S.MISSED, S.REJECTED)},
}
TERMINAL = frozenset(state for state, targets in TRANSITIONS.items() if not targets)
ACTIVE = frozenset({S.QUEUED, S.RUNNING, S.RETRYING})
# What counts as a failure of the job's command, and what as one of its outcomes at all: a job's
# "failures in a row" count FAILURES back to its latest success, ignoring the runs that never ran its
# command to an end of its own (skipped, missed, cancelled).
FAILURES = frozenset({S.FAILED, S.TIMED_OUT, S.INTERRUPTED})
OUTCOMES = FAILURES | {S.SUCCEEDED}


class IllegalTransition(ValueError):
    def __init__(self, current: RunState, target: RunState) -> None:
        allowed = ", ".join(sorted(t.value for t in TRANSITIONS[current])) or "nothing (it is final)"
        super().__init__(f"a run cannot go from {current.value} to {target.value}; from {current.value} it may go to {allowed}")
        self.current, self.target = current, target


def advance(current: RunState, target: RunState) -> RunState:
    """The new state, or IllegalTransition when the table does not allow the step."""
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(current, target)
    return target


def sql_list(states: frozenset[RunState]) -> str:
    """`('a', 'b')`: a set of states as an SQL list, in a stable order (store queries)."""
    return "(" + ", ".join(f"'{state.value}'" for state in sorted(states, key=lambda st: st.value)) + ")"
