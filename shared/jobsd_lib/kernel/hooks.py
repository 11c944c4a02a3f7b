"""Failure notifications (DESIGN 11, `[notify]`): which ended runs and overdue episodes a job's
notify command hears about, and the JSON document it reads on stdin (version NOTIFY_VERSION).

Kinds, as `on` names them:
- `failure`: a run ended failed, timed out or interrupted (kernel.states.FAILURES);
- `first_failure`: such a run that is the first of its job's failures in a row;
- `recovery`: a success after one or more failures in a row;
- `success`: any success;
- `overdue`: the job became overdue (`[expect] success_within`).
One ended run sends at most one notification: its `event` is the most specific kind `on` asks for
(first_failure before failure, recovery before success), `events` every kind it matched.
"""
from __future__ import annotations

from collections.abc import Sequence

from jobsd_lib.kernel.states import FAILURES, RunState

__all__ = ["KINDS", "DEFAULT_ON", "NOTIFY_VERSION", "NOTIFY_TIMEOUT", "OUTPUT_LINES", "run_kinds", "chosen"]

KINDS = ("failure", "first_failure", "recovery", "overdue", "success")
DEFAULT_ON = ("first_failure", "recovery", "overdue")
NOTIFY_VERSION = 1
NOTIFY_TIMEOUT = 30.0  # seconds a notify command may take; then its process group is killed
OUTPUT_LINES = 20      # lines of the run's last attempt's output in the document


def run_kinds(state: RunState, failures_in_a_row: int, failures_before: int) -> list[str]:
    """The kinds an ended run is, given the job's failures in a row counting it
    (`failures_in_a_row`) and before it (`failures_before`)."""
    if state in FAILURES:
        return ["first_failure", "failure"] if failures_in_a_row == 1 else ["failure"]
    if state is RunState.SUCCEEDED:
        return ["recovery", "success"] if failures_before > 0 else ["success"]
    return []  # skipped, missed, cancelled, rejected: nothing the job's command did


def chosen(kinds: Sequence[str], on: Sequence[str]) -> list[str]:
    """The kinds of `kinds` that `on` asks for, most specific first; empty: send nothing."""
    return [k for k in kinds if k in on]
