"""executor.as_user's exec wrappers (issue 18): jobsd's own `run-as` (native/run_as.c, built by `make
install`) and util-linux's setpriv, the fallback where no C compiler built it. Both are run for real
as root and must leave the child in the same place; the daemon tests (tests/api/test_run_as.py)
run whichever this checkout has, which under `make test` is run-as."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import pytest

from jobsd import executor
from jobsd_lib.identity import Identity

pytestmark = [pytest.mark.timeout(30),
              pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root (CI runs as root)")]

NOBODY = Identity(user="nobody", uid=65534, gid=65534, groups=(4, 5), home="/nonexistent", shell="/bin/sh")
PROBE = ["sh", "-c", 'id -u; id -g; id -G; grep -E "^(Uid|Gid|CapEff):" /proc/self/status']


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=10)


@pytest.fixture()
def helper() -> str:
    if not executor.run_as_helper():
        pytest.fail(f"{executor.RUN_AS} is not built: `make compile` builds it (a C compiler is on every "
                    "machine the suite runs on)") if shutil.which("cc") else pytest.skip("no C compiler here")
    return executor.RUN_AS


@pytest.fixture()
def shared_dir():
    """A folder nobody can write (pytest's tmp_path is root's own, 0700)."""
    folder = tempfile.mkdtemp(prefix="jrh")
    os.chmod(folder, 0o777)
    yield folder
    shutil.rmtree(folder)


def _setpriv_argv(identity: Identity, argv: list[str], monkeypatch) -> list[str]:  # noqa: ANN001
    monkeypatch.setattr(executor, "run_as_helper", lambda: None)
    return executor.as_user(identity, argv)


def test_run_as_and_setpriv_leave_the_child_with_the_same_ids_groups_and_no_capabilities(helper, monkeypatch):
    ours = executor.as_user(NOBODY, PROBE)
    assert ours[0] == helper
    theirs = _setpriv_argv(NOBODY, PROBE, monkeypatch)
    assert os.path.basename(theirs[0]) == "setpriv"
    a, b = _run(ours), _run(theirs)
    assert a.returncode == b.returncode == 0, (a.stderr, b.stderr)
    assert a.stdout == b.stdout
    lines = a.stdout.splitlines()
    assert lines[:3] == ["65534", "65534", "65534 4 5"]
    assert lines[3].split() == ["Uid:"] + ["65534"] * 4  # real, effective, saved, fs: no way back
    assert lines[4].split() == ["Gid:"] + ["65534"] * 4
    assert lines[5].split() == ["CapEff:", "0000000000000000"]


def test_no_supplementary_groups_clears_roots_own(helper, monkeypatch):
    alone = Identity(user="nobody", uid=65534, gid=65534, groups=(), home="/", shell="/bin/sh")
    for argv in (executor.as_user(alone, ["id", "-G"]), _setpriv_argv(alone, ["id", "-G"], monkeypatch)):
        done = _run(argv)
        assert (done.returncode, done.stdout) == (0, "65534\n"), (argv, done.stderr)


def test_the_job_finds_its_program_on_its_path_and_gets_its_arguments_untouched(helper):
    done = _run(executor.as_user(NOBODY, ["printf", "%s|", "a b", "", "--", "-x"]))
    assert (done.returncode, done.stdout) == (0, "a b||--|-x|")


@pytest.mark.parametrize("args, message", [
    (["65534"], "usage: run-as UID GID GROUPS -- PROGRAM [ARG...]"),
    (["65534", "65534", "-", "id"], "usage:"),  # no "--"
    (["x", "65534", "-", "--", "id"], "bad uid or gid: x"),
    (["65534", "-1", "-", "--", "id"], "bad uid or gid: -1"),
    (["4294967295", "1", "-", "--", "id"], "bad uid or gid: 4294967295"),  # (uid_t)-1 would change nothing
    (["65534", "65534", "1,,2", "--", "id"], "bad group list: 1,,2"),
    (["65534", "65534", "4,x", "--", "id"], "bad group list: 4,x"),
    (["+1", "65534", "-", "--", "id"], "bad uid or gid: +1"),
    ([" 1", "65534", "-", "--", "id"], "bad uid or gid:  1"),  # strtoul would skip the space
    (["65534", "65534", "4, 5", "--", "id"], "bad group list: 4, 5"),
])
def test_bad_arguments_exit_127_with_a_line_saying_why_and_run_nothing(helper, args, message, shared_dir):
    marker = os.path.join(shared_dir, "ran")
    touch = ["sh", "-c", f"touch {marker}"]
    done = _run([helper, *args[:-1], *(touch if args[-1] == "id" else [args[-1]])])
    assert done.returncode == 127
    assert done.stderr.startswith("jobsd run-as: ") and message in done.stderr, done.stderr
    assert not os.path.exists(marker)
    assert _run([helper, "65534", "65534", "-", "--", *touch]).returncode == 0 and os.path.exists(marker)


def test_a_program_that_cannot_run_is_127_when_missing_and_126_when_not_executable(helper, shared_dir):
    missing = _run(executor.as_user(NOBODY, ["/nonexistent/jobsd-test-program"]))
    assert missing.returncode == 127 and "cannot execute" in missing.stderr and "No such file" in missing.stderr
    plain = os.path.join(shared_dir, "plain")
    with open(plain, "w") as handle:
        handle.write("echo hi\n")
    refused = _run(executor.as_user(NOBODY, [plain]))
    assert refused.returncode == 126 and "Permission denied" in refused.stderr, refused.stderr


def test_a_helper_others_could_change_is_not_used(tmp_path):
    """jobsd execs it as root: owned by root (or jobsd's user) and writable by no one else, like a spec."""
    program = tmp_path / "run-as"
    program.write_bytes(b"")
    os.chmod(program, 0o755)
    assert executor._safe(str(program))
    for mode in (0o775, 0o757):
        os.chmod(program, mode)
        assert not executor._safe(str(program))
    os.chmod(program, 0o755)
    os.chown(program, 65534, 65534)
    assert not executor._safe(str(program))


def test_a_jobsd_that_is_not_root_runs_its_own_users_job_without_a_wrapper(monkeypatch):
    """The catalog lets a non-root jobsd name only its own user; a wrapper's setgroups would fail (EPERM)."""
    monkeypatch.setattr(executor.os, "geteuid", lambda: 1000)
    me = Identity(user="alice", uid=1000, gid=1000, groups=(1000,), home="/home/alice", shell="/bin/sh")
    assert executor.as_user(me, ["true"]) == ["true"]
