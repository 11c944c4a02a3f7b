"""Nothing of an attempt survives it: grandchildren and setsid'd (double-forked) daemons are
stopped after a timeout, a cancel, and a normal exit of the main process, on a real daemon.

Every job here carries a per-test token in its spec `env`, so the checks (and the clean-up after a
failed test) find exactly this test's processes even when another daemon on the machine runs jobs
with the same run references.
"""
from __future__ import annotations

import os
import signal
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from jobsd_lib.rpc import jobsd_pb2 as pb
from tests.conftest import Daemon, alive, wait_for

pytestmark = pytest.mark.timeout(60)

# The escapee leaves the job's session with setsid from a subshell that exits at once (a double
# fork), records "<pid> <session id>", then sleeps; with IGNORE_TERM only SIGKILL ends it.
ESCAPEE = """{ignore}
echo $$ $(cut -d' ' -f6 /proc/$$/stat) > "$TREE_DIR/escapee.tmp" && mv "$TREE_DIR/escapee.tmp" "$TREE_DIR/escapee"
exec sleep 300
"""
MAIN = """( setsid sh "$TREE_DIR/escapee.sh" {redirect} & )
sleep 300 &
while [ ! -s "$TREE_DIR/escapee" ]; do sleep 0.01; done
{then}
"""


def processes_with(*entries: str) -> list[int]:
    """Pids of live processes whose environment holds every NAME=value entry (zombies have none)."""
    wanted = [e.encode() + b"\0" for e in entries]
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                env = b"\0" + f.read()
        except OSError:
            continue
        if all(b"\0" + w in env for w in wanted):
            found.append(int(name))
    return found


@pytest.fixture
def token() -> Iterator[str]:
    """A value for TREE_TOKEN; whatever still carries it when the test ends is killed."""
    value = uuid.uuid4().hex
    yield value
    for pid in processes_with(f"TREE_TOKEN={value}"):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def tree_job(daemon: Daemon, job: str, token: str, *, then: str, ignore_term: bool = True, hold_pipe: bool = True,
             extra: str = "") -> str:
    """Write a job whose main shell starts a setsid'd escapee and an in-group `sleep 300`, waits until
    the escapee has recorded itself, then runs `then`. Returns the folder the escapee writes to."""
    folder = os.path.join(daemon.home, job)
    os.makedirs(folder)
    with open(os.path.join(folder, "escapee.sh"), "w") as f:
        f.write(ESCAPEE.format(ignore="trap '' TERM" if ignore_term else ""))
    with open(os.path.join(folder, "main.sh"), "w") as f:
        f.write(MAIN.format(redirect="" if hold_pipe else ">/dev/null 2>&1", then=then))
    daemon.write_job(job, f'command = ["sh", "{folder}/main.sh"]\nkill_grace = "0.3s"\n{extra}'
                     f'env = {{ TREE_TOKEN = "{token}", TREE_DIR = "{folder}" }}\n')
    return folder


def escapee(folder: str) -> tuple[int, int]:
    """(pid, session id) the escapee recorded."""
    pid, sid = open(os.path.join(folder, "escapee")).read().split()
    return int(pid), int(sid)


def assert_tree_gone(final: pb.Run, folder: str, token: str) -> None:
    """Checked the moment the run is recorded finished: the attempt's end waits for its whole tree."""
    pid, sid = escapee(folder)
    assert sid != final.attempt_list[-1].pid, "the escapee did not leave the job's session"
    assert not alive(pid)
    assert processes_with(f"JOBSD_RUN={final.ref}", f"TREE_TOKEN={token}") == []


def test_timeout_stops_a_double_forked_escapee_that_ignores_sigterm(daemon, token):
    folder = tree_job(daemon, "tree-timeout", token, then="wait", extra='timeout = "2s"\n')
    daemon.start()
    final = daemon.wait_finished(daemon.run("tree-timeout").ref)
    assert final.state == pb.RUN_STATE_TIMED_OUT and final.attempt_list[0].timed_out
    assert_tree_gone(final, folder, token)
    pid, _ = escapee(folder)
    assert f"{pid} sleep (left the group)" in daemon.read_log()  # the daemon names what it had to stop


def test_cancel_stops_a_double_forked_escapee(daemon, token):
    folder = tree_job(daemon, "tree-cancel", token, then="wait", ignore_term=False)
    daemon.start()
    ref = daemon.run("tree-cancel").ref
    wait_for(lambda: os.path.exists(os.path.join(folder, "escapee")), what="the escapee to start")
    daemon.jobs.CancelRun(pb.CancelRunRequest(run=ref), timeout=30)
    final = daemon.wait_finished(ref)
    assert final.state == pb.RUN_STATE_CANCELLED
    assert_tree_gone(final, folder, token)


@pytest.mark.parametrize("hold_pipe", [True, False], ids=["escapee-holds-the-pipe", "escapee-closed-the-pipe"])
def test_main_exiting_zero_takes_its_leftovers_with_it(daemon, token, hold_pipe):
    # like systemd's KillMode=control-group: when the main process ends, the attempt ends, all of it.
    # With the pipe closed (a well-behaved daemon) nothing but the environment points at the escapee.
    folder = tree_job(daemon, "tree-exit", token, then="exit 0", hold_pipe=hold_pipe)
    daemon.start()
    final = daemon.wait_finished(daemon.run("tree-exit").ref)
    assert (final.state, final.exit_code) == (pb.RUN_STATE_SUCCEEDED, 0)
    assert_tree_gone(final, folder, token)


def test_sweeping_one_daemons_run_leaves_another_daemons_same_ref_alone(daemon, token, home):
    # run references repeat across daemons (every store has its "twin/1"): the sweep must not match on them
    other = Daemon(os.path.join(home, "other"))
    os.makedirs(other.home)
    other.write_job("twin", f'command = ["sleep", "300"]\nenv = {{ TREE_TOKEN = "{token}" }}\n')
    daemon.write_job("twin", 'command = ["sh", "-c", "exit 0"]\n')
    try:
        other.start()
        busy = other.run("twin").ref
        wait_for(lambda: processes_with("JOBSD_RUN=twin/1", f"TREE_TOKEN={token}"), what="the other daemon's run")
        daemon.start()
        assert daemon.wait_finished(daemon.run("twin").ref).state == pb.RUN_STATE_SUCCEEDED
        assert other.get_run(busy).state == pb.RUN_STATE_RUNNING
        assert len(processes_with("JOBSD_RUN=twin/1", f"TREE_TOKEN={token}")) == 1
    finally:
        if other.proc is not None:
            assert other.stop() == 0, other.read_log()


def test_each_attempt_gets_its_own_invocation_id(daemon):
    daemon.write_job("ids", 'command = ["sh", "-c", "echo $JOBSD_INVOCATION_ID; exit 1"]\n'
                     '[retry]\nattempts = 2\nbackoff = "0.1s"\n')
    daemon.start()
    final = daemon.wait_finished(daemon.run("ids").ref)
    ids = [open(os.path.join(final.artifacts, f"attempt-{n}.log")).read().strip() for n in (1, 2)]
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids) and ids[0] != ids[1]


def test_the_pid_window_finds_what_reading_every_process_finds(token):
    # The daemon reads only pids handed out since the attempt started; check that against reading all,
    # and against a window that wrapped round pid_max (executor.ProcessTree, real processes, no daemon).
    from jobsd.executor import ProcessTree, _forks

    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TREE_TOKEN": token, "JOBSD_INVOCATION_ID": token}
    main = subprocess.Popen(["sh", "-c", "( setsid sleep 300 & ); sleep 300 & wait"], env=env, start_new_session=True)
    try:
        marker = f"JOBSD_INVOCATION_ID={token}".encode()
        window = ProcessTree(marker, main.pid, _forks())
        every = ProcessTree(marker, main.pid, -1)
        expected = sorted(wait_for(lambda: len(found := every.members()) == 3 and found, what="three processes"))
        assert sorted(window.members()) == expected
        pid_max = int(open("/proc/sys/kernel/pid_max").read())
        wrapped = ProcessTree(marker, pid_max - 1, _forks())  # as if pids came round: [pid_max-1] + [1, last pid]
        assert sorted(wrapped.members()) == expected
        assert window._window() is not None and len(wrapped._window()) == 2  # noqa: SLF001 - the branch under test
    finally:
        main.kill()
        main.wait()


def test_a_restart_after_sigkill_stops_what_the_dead_daemon_left_escapee_included(daemon, token):
    folder = tree_job(daemon, "tree-crash", token, then="wait")
    daemon.start()
    ref = daemon.run("tree-crash").ref
    wait_for(lambda: os.path.exists(os.path.join(folder, "escapee")), what="the escapee to start")
    pid, _ = escapee(folder)
    daemon.stop(signal.SIGKILL)  # nobody is left to stop the tree
    assert alive(pid)
    daemon.start()
    final = daemon.get_run(ref)
    assert final.state == pb.RUN_STATE_INTERRUPTED
    wait_for(lambda: not alive(pid), 10, "the escapee to be killed by the restarted daemon")
    wait_for(lambda: processes_with(f"TREE_TOKEN={token}") == [], 10, "every process of the old attempt to be gone")
    assert "leftover process(es) of attempt 1" in daemon.read_log()
