"""Overdue (DESIGN 11, `[expect] success_within`): has a job gone too long without a success?

A job is overdue once `success_within` has passed since its last success, or, if it never
succeeded, since jobsd first saw the job. That catches a job that silently stopped running
whatever the cause: paused and forgotten, a broken spec, jobsd down, every run failing or skipped.
An episode starts when the job becomes overdue and ends at its next success: one `job.overdue`
and one `job.recovered` event each, also across restarts (the daemon keeps the episode's start).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from jobsd_lib.kernel.gates import short_duration

__all__ = ["deadline", "BecameOverdue", "Recovered", "episode_change", "overdue_message"]


def deadline(within: float, last_success: float | None, first_seen: float) -> float:
    """When the job becomes overdue without a new success (epoch seconds)."""
    return (last_success if last_success is not None else first_seen) + within


@dataclass(frozen=True)
class BecameOverdue:
    since: float  # the deadline that passed


@dataclass(frozen=True)
class Recovered:
    pass


def episode_change(due_at: float, now: float, overdue_since: float | None) -> BecameOverdue | Recovered | None:
    """What to record now: the start of an episode, its end, or nothing (`overdue_since`: the open
    episode's start, None when the job is not overdue)."""
    if now >= due_at and overdue_since is None:
        return BecameOverdue(due_at)
    if now < due_at and overdue_since is not None:
        return Recovered()
    return None


def overdue_message(within: float, last_success: float | None, first_seen: float, now: float) -> str:
    """For people: `no success for 30h (last 2026-12-02T06:00:00+00:00), expected within 26h`."""
    expected = f"expected within {short_duration(within)}"
    if last_success is None:
        return f"no success since jobsd first saw it {short_duration(now - first_seen)} ago, {expected}"
    return f"no success for {short_duration(now - last_success)} (last {datetime.fromtimestamp(last_success, UTC).isoformat(timespec='seconds')}), {expected}"
