"""jobsd_lib.identity and the spec keys built on it: resolution at load, and why a jobsd that is not
root refuses a job that names another user (checked as another uid would read the spec)."""
from __future__ import annotations

import os
import pwd

import pytest

from jobsd_lib.identity import Identity, parse_umask, resolve, run_as_problem, user_environment
from jobsd_lib.spec import SpecInvalid, parse_spec
from jobsd_lib.spec_file import read_spec_file

NOBODY = pwd.getpwnam("nobody")


def test_a_user_resolves_to_its_ids_groups_home_and_shell_by_name_or_uid():
    by_name, by_uid = resolve("nobody"), resolve(NOBODY.pw_uid)
    assert by_name == by_uid and (by_name.uid, by_name.gid, by_name.home) == (NOBODY.pw_uid, NOBODY.pw_gid, NOBODY.pw_dir)
    assert resolve("nobody", group="root", supplementary=()).gid == 0 and resolve("nobody", "root", ()).groups == ()
    assert user_environment(by_name) == {"HOME": NOBODY.pw_dir, "USER": "nobody", "LOGNAME": "nobody",
                                         "SHELL": NOBODY.pw_shell}
    with pytest.raises(ValueError, match="no user 'no-such-user-x'"):
        resolve("no-such-user-x")
    with pytest.raises(ValueError, match="no group 'no-such-group-x'"):
        resolve("nobody", group="no-such-group-x")


@pytest.mark.parametrize("text, bits", [("0027", 0o027), ("077", 0o077), ("0000", 0)])
def test_umask_is_three_or_four_octal_digits(text, bits):
    assert parse_umask(text) == bits


@pytest.mark.parametrize("text", ["27", "0o27", "0999", "00277", ""])
def test_other_umasks_are_refused(text):
    with pytest.raises(ValueError, match="octal digits"):
        parse_umask(text)


def test_a_jobsd_that_is_not_root_runs_jobs_only_as_itself():
    other = Identity("nobody", NOBODY.pw_uid, NOBODY.pw_gid, (), "/", "/bin/sh")
    assert run_as_problem(other, 0, 0, ()) is None
    refused = run_as_problem(other, 4242, 4242, ())
    assert refused.startswith("jobsd runs as uid 4242, not root, so it can run jobs only as itself") and "as root" in refused
    me = Identity("me", 4242, 4242, (), "/", "/bin/sh")
    assert run_as_problem(me, 4242, 4242, ()) is None
    assert "cannot switch groups" in run_as_problem(Identity("me", 4242, 0, (), "/", "/bin/sh"), 4242, 4242, ())


def test_spec_keys_name_the_field_and_the_loader_refuses_another_user_for_a_non_root_reader(tmp_path):
    spec = parse_spec("j", b'command = ["id"]\nuser = "nobody"\numask = "0027"\n', "j.toml")
    assert spec.identity.user == "nobody" and spec.umask_bits == 0o027
    assert parse_spec("j", b'command = ["id"]\n', "j.toml").identity is None
    for text, field, words in [(b'command = ["id"]\ngroup = "root"\n', "group", "set user too"),
                               (b'command = ["id"]\nuser = "nobody"\n[credentials]\n"a b" = "/x"\n', "credentials",
                                "not a credential name"),
                               (b'command = ["id"]\nuser = "nobody"\n[credentials]\npw = "rel/path"\n', "credentials",
                                "absolute path"),
                               (b'command = ["id"]\nenv = { JOBSD_STATE_DIR = "/x" }\n', "env", "set by jobsd")]:
        with pytest.raises(SpecInvalid) as bad:
            parse_spec("j", text, "j.toml")
        assert any(p.field == field and words in p.message for p in bad.value.problems), bad.value.problems
    path = tmp_path / "j.toml"
    path.write_bytes(b'command = ["id"]\nuser = "nobody"\n')
    with pytest.raises(SpecInvalid) as bad:
        read_spec_file(str(path), own_uid=4242)
    problem = bad.value.problems[0]
    if os.geteuid() == 0:  # a file of root's: any reader may read it, and uid 4242 may not switch users
        assert problem.field == "user" and problem.message.startswith("jobsd runs as uid 4242, not root")
    else:  # the file is this user's, so uid 4242 refuses it before reading it
        assert problem.field == "" and "unsafe file" in problem.message
