"""The short result a person reads for a run: the one text, for `jobs list`, `runs show` and
summary.md alike."""
from __future__ import annotations

from jobsd_lib.kernel.states import RunState

__all__ = ["describe_result"]


def describe_result(state: RunState, exit_code: int | None, signal: int | None) -> str:
    """ok / exit N / signal N / failed (it never started) / timed out / interrupted / cancelled /
    skipped / missed; an active run's state (queued, running, retrying).

    A signal is its number, as `exit_code` is (docs/cli.md, docs/runbook.md: `signal 9` is
    SIGKILL): the daemon's and the reader's hosts may name signals differently."""
    if state is RunState.SUCCEEDED:
        return "ok"
    if state is RunState.FAILED:
        if signal:
            return f"signal {signal}"
        return f"exit {exit_code}" if exit_code is not None else "failed"
    return state.value.replace("_", " ")
