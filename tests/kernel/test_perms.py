"""The pure owner/mode decisions behind refused specs and state folders (jobsd_lib.perms), and the
private-group rule as the spec and folder checks apply it."""
from __future__ import annotations

import stat

import pytest

from jobsd_lib.perms import is_private_group, state_folder_verdict, write_access_problem
from jobsd_lib.spec import jobs_folder_problem, spec_file_problem

REG, DIR = stat.S_IFREG, stat.S_IFDIR
JOBSD = 990  # jobsd's own user in these cases


@pytest.mark.parametrize("uid, mode, bad", [
    (JOBSD, 0o644, None), (0, 0o644, None), (0, 0o755, None), (JOBSD, 0o600, None),
    (65534, 0o644, "owned by another user (owner nobody (uid 65534), mode 0644)"),
    (0, 0o664, "writable by its group"), (0, 0o646, "writable by other users"),
    (0, 0o1777, "writable by other users (owner root (uid 0), mode 1777)"),
])
def test_only_jobsd_or_root_may_own_or_write(uid, mode, bad):
    names = {0: "root", 65534: "nobody"}
    problem = write_access_problem("/j/a.toml", uid, REG | mode, JOBSD, names.get(uid, ""))
    assert problem is None if bad is None else bad in problem


def test_the_fix_is_a_command_for_that_path():
    assert "`chmod go-w '/j/my jobs'`" in write_access_problem("/j/my jobs", 0, DIR | 0o777, 0)
    assert "`chown 0 /j/a.toml`" in write_access_problem("/j/a.toml", 1000, REG | 0o644, 0)


def test_state_folders_refuse_others_and_warn_or_refuse_the_group():
    refusal, warning = state_folder_verdict("state folder", "/s", 0, DIR | 0o777, 0, group_may_write=True)
    assert refusal.startswith("state folder /s is unsafe, writable by other users") and warning is None
    refusal, warning = state_folder_verdict("state folder", "/s", 0, DIR | 0o770, 0, group_may_write=True)
    assert refusal is None and warning.startswith("state folder /s is writable by its group")
    refusal, _ = state_folder_verdict("runs folder", "/s/runs", 0, DIR | 0o770, 0)
    assert refusal.startswith("runs folder /s/runs is unsafe, writable by its group")
    assert state_folder_verdict("db folder", "/s/db", 990, DIR | 0o750, 990) == (None, None)


def test_the_owners_private_group_may_write():
    assert spec_file_problem("/j/x.toml", REG | 0o664, 10, 1000, 1000, group_private=True) is None
    assert spec_file_problem("/j/x.toml", REG | 0o666, 10, 1000, 1000, group_private=True).startswith(
        "unsafe file, writable by other users")
    assert jobs_folder_problem("/j", 1000, DIR | 0o775, 1000, group_private=True) is None
    assert state_folder_verdict("runs folder", "/s/runs", 0, DIR | 0o770, 0, group_private=True) == (None, None)
    assert state_folder_verdict("state folder", "/s", 0, DIR | 0o770, 0, group_may_write=True,
                                group_private=True) == (None, None)


def test_a_private_group_is_named_after_its_user_and_nobody_elses():
    users = [(1000, 1000), (1001, 1001)]
    assert is_private_group("alice", 1000, "alice", 1000, [], users)
    assert is_private_group("alice", 1000, "alice", 1000, ["alice"], users)
    assert not is_private_group("alice", 1000, "alice", 1000, ["bob"], users)        # another member
    assert not is_private_group("alice", 1000, "staff", 50, [], users)               # a shared group
    assert not is_private_group("alice", 1000, "alice", 1000, [], [*users, (1002, 1000)])  # another user's primary group
