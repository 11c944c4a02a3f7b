"""What the overdue watch (handlers/overdue.py) keeps in memory between its checks, so that a check
of 10,000 expecting jobs reads no store: each job's `[expect] success_within` (kept while its spec
is invalid: a broken spec is what overdue must catch), its first sighting and the open episodes
(also in daemon_meta, for restarts). Last successes are the context's (Context.last_success)."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

__all__ = ["OverdueState", "overdue_key", "first_seen_key"]


def overdue_key(job_id: str) -> str:
    """daemon_meta: the start (epoch seconds) of the job's open overdue episode, "" when none."""
    return f"overdue:{job_id}"


def first_seen_key(job_id: str) -> str:
    """daemon_meta: when jobsd first saw the job with an expectation (epoch seconds)."""
    return f"first_seen:{job_id}"


@dataclass
class OverdueState:
    within: dict[str, float] = field(default_factory=dict)        # job -> success_within (s)
    first_seen: dict[str, float] = field(default_factory=dict)
    since: dict[str, float] = field(default_factory=dict)         # open episodes: job -> deadline passed
    changed: asyncio.Event = field(default_factory=asyncio.Event)  # wakes the watch
