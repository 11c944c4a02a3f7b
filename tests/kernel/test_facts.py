"""Facts (jobsd_lib.facts): one type name each, and the attributes events have always carried."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from jobsd_lib import facts as f
from jobsd_lib.kernel.states import JobState, RunState, Trigger, WaitReason

W = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
ALICE = f.Actor("uid=1000(alice)", 1000, "alice", "jobsctl")


def all_fact_types() -> list[type[f.Fact]]:
    found, todo = [], [f.Fact]
    while todo:
        for sub in todo.pop().__subclasses__():
            todo.append(sub)
            if sub.TYPE:
                found.append(sub)
    return found


def test_every_fact_has_its_own_event_type():
    types = [t.TYPE for t in all_fact_types()]
    assert len(types) == len(set(types)) and len(types) >= 16
    assert all(t.split(".")[0] in {"run", "job", "daemon", "notify"} for t in types)  # notify.*: DESIGN 11


CASES = [
    (f.RunQueued(ts=1, job_id="j", run_n=2, trigger=Trigger.CRON, actor=f.SCHEDULER, scheduled_at=W),
     {"trigger": "cron", "actor": "scheduler", "scheduled_at": "2026-12-02T03:00:00+00:00"}),
    (f.RunSkipped(ts=1, job_id="j", run_n=2, trigger=Trigger.MANUAL, actor=ALICE, reason="paused"),
     {"trigger": "manual", "actor": "uid=1000(alice)", "actor_uid": 1000, "actor_user": "alice", "client": "jobsctl",
      "reason": "paused"}),
    (f.RunMissed(ts=1, job_id="j", run_n=2, window=W, reason="missed: late"),
     {"trigger": "cron", "actor": "scheduler", "reason": "missed: late", "scheduled_at": "2026-12-02T03:00:00+00:00"}),
    (f.RunWaiting(ts=1, wait_reason=WaitReason.SLOT), {"wait_reason": "slot"}),
    (f.JobOverdue(ts=1, job_id="j", since=0.0, within=3600.0, message="no success for 2h"),
     {"since": "1970-01-01T00:00:00+00:00", "success_within": "3600", "message": "no success for 2h"}),
    (f.NotifyFailed(ts=1, job_id="j", event="first_failure", run="j/2", exit_code=3, output="smtp refused"),
     {"event": "first_failure", "about_run": "j/2", "exit_code": 3, "output": "smtp refused"}),
    (f.RunStarted(ts=1, attempt=1, pid=None), {"attempt": 1}),
    (f.AttemptFinished(ts=1, attempt=2, exit_code=None, signal=9, timed_out=True), {"attempt": 2, "signal": 9,
                                                                                    "timed_out": True}),
    (f.RunRetrying(ts=1, next_attempt_at=W, delay=5.0), {"next_attempt_at": "2026-12-02T03:00:00+00:00", "delay": "5"}),
    (f.RunFinished(ts=1, state=RunState.FAILED, exit_code=3), {"state": "failed", "exit_code": 3}),
    (f.JobPaused(ts=1, job_id="j", state=JobState.PAUSED, actor=f.Actor("unknown")), {"actor": "unknown",
                                                                                      "state": "paused"}),
    (f.DaemonReloaded(ts=1, actor=f.Actor("SIGHUP"), added=("a", "b"), invalid=1),
     {"actor": "SIGHUP", "added": "a,b", "invalid": 1}),
    (f.DaemonGc(ts=1, actor=ALICE, removed=3, bytes_freed=10, keep_last=2),
     {"actor": "uid=1000(alice)", "actor_uid": 1000, "actor_user": "alice", "client": "jobsctl", "removed": 3,
      "bytes_freed": 10, "keep_last": 2}),
    (f.DaemonStarted(ts=1, pid=7, version="1.0"), {"pid": 7, "version": "1.0"}),
    (f.DaemonStarted(ts=1, pid=7, version="1.0", down_since=0.0, down_seconds=12.34, previous_clean=False,
                     previous_pid=6, rebooted=True),
     {"pid": 7, "version": "1.0", "down_since": "1970-01-01T00:00:00+00:00", "down_seconds": "12.3",
      "previous_stop": "unclean", "previous_pid": 6, "rebooted": "true"}),
    (f.ClockJumped(ts=1, delta=-3600.04, direction="back", elapsed=5, wall_before=0, wall_after=1),
     {"delta": "-3600.0", "direction": "back", "elapsed": "5.0", "wall_before": "1970-01-01T00:00:00+00:00",
      "wall_after": "1970-01-01T00:00:01+00:00"}),
]


@pytest.mark.parametrize("fact, attrs", CASES, ids=[type(c[0]).__name__ for c in CASES])
def test_attributes_are_those_events_have_always_stored(fact, attrs):
    """None means absent (the store drops it): the stored and shown events keep their old keys."""
    assert {k: v for k, v in fact.attrs().items() if v is not None} == attrs


def test_a_run_fact_names_its_run():
    assert f.RunStarted(ts=1, job_id="backup", run_n=12, attempt=1, pid=5).run_ref == "backup/12"
    assert f.DaemonGc(ts=1, actor=ALICE, removed=0, bytes_freed=0).run_ref == ""
