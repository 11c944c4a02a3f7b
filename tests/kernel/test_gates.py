"""Gate decisions: [[requires]] with readable details, ExecCondition's exit rule, the wait bound."""
from __future__ import annotations

import pytest

from jobsd_lib.kernel.gates import (FailRun, Finished, Go, Interrupt, Met, Requirement, Resume, SkipRun, Unmet,
                                    after_restart, approval_detail, check_requires, condition_outcome, may_decide,
                                    short_duration, wait_over)
from jobsd_lib.kernel.states import RunState

NOW = 1_800_000_000.0
H = 3600.0
BACKUP = [Requirement("backup", 26 * H)]


def test_a_recent_success_meets_the_requirement():
    latest = {"backup": Finished("backup/7", RunState.SUCCEEDED, NOW - 2 * H)}
    assert check_requires(BACKUP, latest, {}, NOW) == Met()


@pytest.mark.parametrize("latest, running, detail", [
    (Finished("backup/7", RunState.SUCCEEDED, NOW - 30 * H), {}, "backup: last success 30h ago, needs < 26h"),
    (Finished("backup/8", RunState.FAILED, NOW - 2 * H), {}, "backup: last run backup/8 failed 2h ago, needs < 26h"),
    (None, {}, "backup: never ran, needs < 26h"),
    (Finished("backup/7", RunState.SUCCEEDED, NOW - 2 * H), {"backup": "backup/9"}, "backup: running now (backup/9)"),
])
def test_what_is_not_met_says_why(latest, running, detail):
    assert check_requires(BACKUP, {"backup": latest}, running, NOW) == Unmet(detail)


def test_every_unmet_requirement_is_listed():
    reqs = BACKUP + [Requirement("sync", 10 * 60)]
    assert check_requires(reqs, {}, {}, NOW) == Unmet("backup: never ran, needs < 26h; sync: never ran, needs < 10m")


@pytest.mark.parametrize("exit_code, signal, outcome", [
    (0, None, Go()), (1, None, SkipRun("condition")), (254, None, SkipRun("condition")),
    (255, None, FailRun("condition exited 255")), (None, 9, FailRun("condition killed by signal 9")),
])
def test_the_condition_follows_systemds_exec_condition(exit_code, signal, outcome):
    assert condition_outcome(exit_code, signal) == outcome


def test_the_wait_bound():
    assert wait_over(NOW, 0, NOW)  # wait 0: not met now -> skipped at once
    assert not wait_over(NOW, 2 * H, NOW + H) and wait_over(NOW, 2 * H, NOW + 2 * H)


@pytest.mark.parametrize("seconds, text", [(0, "0s"), (45, "45s"), (119, "119s"), (120, "2m"), (30 * 60, "30m"),
                                           (30 * H, "30h"), (71 * H, "71h"), (72 * H, "3d"), (-5, "0s")])
def test_short_duration(seconds, text):
    assert short_duration(seconds) == text


# ---------------------------------------------------------------------- approvers
@pytest.mark.parametrize("approvers, user, groups, allowed", [
    ((), "alice", [], True),                  # no approvers: anyone who reaches the socket
    ((), None, [], True),
    (("alice",), "alice", [], True),
    (("alice",), "bob", ["alice"], False),    # a group named like the user is not the user
    (("@ops",), "bob", ["bob", "ops"], True),
    (("@ops",), "ops", ["ops2"], False),      # a user named like the group is not in it
    (("alice", "@ops"), None, ["ops"], False),  # no user name from the kernel: never allowed by a list
])
def test_who_may_decide(approvers, user, groups, allowed):
    assert may_decide(approvers, user, groups) is allowed


def test_approval_detail_names_who_is_waited_for():
    assert approval_detail(()) == "approval"
    assert approval_detail(("@ops",)) == "approval by @ops"
    assert approval_detail(("alice", "@ops")) == "approval by alice or @ops"
    assert approval_detail(("a", "b", "c", "d", "e")) == "approval by a, b, c or 2 more"


STOPPED = "jobsd stopped while the run was"


@pytest.mark.parametrize("state, attempts, wait_reason, digest, verdict", [
    (RunState.QUEUED, 0, "approval", "d1", Resume()),
    (RunState.QUEUED, 0, "dependency", "d1", Resume()),
    (RunState.QUEUED, 0, "slot", "d1", Interrupt(f"{STOPPED} queued")),  # it may have been starting its condition
    (RunState.QUEUED, 0, None, "d1", Interrupt(f"{STOPPED} queued")),
    (RunState.RUNNING, 1, None, "d1", Interrupt(f"{STOPPED} running")),
    (RunState.RETRYING, 1, "backoff", "d1", Interrupt(f"{STOPPED} retrying")),
    (RunState.QUEUED, 0, "approval", None, Interrupt(f"{STOPPED} queued; its job is no longer valid")),
    (RunState.QUEUED, 0, "approval", "d2", Interrupt(f"{STOPPED} queued; its spec file changed meanwhile")),
])
def test_only_a_wait_for_approval_or_gates_under_the_same_spec_survives_a_restart(state, attempts, wait_reason,
                                                                                 digest, verdict):
    assert after_restart(state, attempts, wait_reason, "d1", digest) == verdict
