"""Who is calling: the audit trail names the uid the kernel reports for the socket, never the claim.

The second-user tests switch to `nobody` (uid 65534) with subprocess `user=`, so they need root
and skip otherwise. `nobody` runs the real jobsctl code; when the test's own interpreter is out of
its reach (a venv built on a Python under /root), it runs on the system's Python of the same
version with the venv's site-packages added, which is the same jobsctl, grpcio and protobuf.
"""
from __future__ import annotations

import functools
import grp
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile

import grpc
import pytest

from jobsd_lib.rpc import jobsd_pb2 as pb
from jobsd_lib.rpc import jobsd_pb2_grpc as pb_grpc
from tests.conftest import BIN, Daemon, wait_for

CLAIM = "alice uid=1000 jobsctl"
NOBODY = 65534
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching to the user nobody needs root")


def me() -> str:
    uid = os.getuid()
    return f"uid={uid}({pwd.getpwuid(uid).pw_name})"


def audit(daemon, *types: str) -> list[dict]:  # noqa: ANN001
    """The daemon's events of these types, as the real `jobsctl events --json` prints them."""
    done = daemon.ctl("events", "--last", "0", "--json")
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    return [e for e in events if e["type"] in types]


def test_audit_names_the_kernel_uid_and_keeps_the_claim_as_information(daemon):
    daemon.write_job("hello", 'command = ["true"]\n')
    daemon.write_job("hold", 'command = ["sleep", "30"]\n')
    daemon.start()
    claim = (("jobsd-client", CLAIM),)
    run = daemon.jobs.RunJob(pb.RunJobRequest(job="hello"), metadata=claim, timeout=10)
    for rpc in (daemon.jobs.PauseJob, daemon.jobs.ResumeJob, daemon.jobs.DisableJob, daemon.jobs.EnableJob):
        rpc(pb.JobRequest(job="hello"), metadata=claim, timeout=10)
    daemon.wait_finished(run.ref)
    daemon.daemon.Reload(pb.ReloadRequest(), metadata=claim, timeout=10)
    daemon.daemon.CollectGarbage(pb.CollectGarbageRequest(keep_last=0), metadata=claim, timeout=10)
    held = daemon.jobs.RunJob(pb.RunJobRequest(job="hold"), metadata=claim, timeout=10)
    wait_for(lambda: daemon.get_run(held.ref).state == pb.RUN_STATE_RUNNING, what="hold running")
    daemon.jobs.CancelRun(pb.CancelRunRequest(run=held.ref), metadata=claim, timeout=20)

    events = audit(daemon, "run.queued", "job.paused", "job.resumed", "job.disabled", "job.enabled",
                   "daemon.reloaded", "daemon.gc")
    assert [e["type"] for e in events] == ["run.queued", "job.paused", "job.resumed", "job.disabled", "job.enabled",
                                           "daemon.reloaded", "daemon.gc", "run.queued"]
    for event in events:
        assert (event.get("actor"), event.get("actor_uid"), event.get("client")) == (me(), str(os.getuid()), CLAIM), event
    cancelled = daemon.wait_finished(held.ref)
    assert cancelled.state == pb.RUN_STATE_CANCELLED
    assert cancelled.reason == f"cancelled by {me()}"


def test_jobsctl_claiming_another_name_is_recorded_as_its_real_uid(daemon):
    daemon.write_job("hello", 'command = ["true"]\n')
    daemon.start()
    done = subprocess.run([os.path.join(BIN, "jobsctl"), "--socket", daemon.socket, "jobs", "pause", "hello"],
                          capture_output=True, env={**os.environ, "LOGNAME": "alice", "USER": "alice"}, timeout=30)
    assert done.returncode == 0, done.stderr
    [paused] = audit(daemon, "job.paused")
    assert paused["actor"] == me()
    assert paused.get("client") == f"alice uid={os.getuid()} jobsctl"


def test_a_call_that_skips_the_relay_is_unknown_not_its_claim(daemon, home):
    """Only jobsd's user and root can reach gRPC's private socket; even then the claim is no identity."""
    daemon.write_job("hello", 'command = ["true"]\n')
    daemon.start()
    private = os.path.join(home, ".jobsd.sock.grpc")
    assert os.stat(private).st_mode & 0o777 == 0o600
    with grpc.insecure_channel(f"unix:{private}") as direct:
        pb_grpc.JobsStub(direct).PauseJob(pb.JobRequest(job="hello"), metadata=(("jobsd-client", CLAIM),), timeout=10)
    [paused] = audit(daemon, "job.paused")
    assert (paused.get("actor"), paused.get("actor_uid"), paused.get("client")) == ("unknown", None, CLAIM)


# ---------------------------------------------------------------- another real user


# Through setpriv, not Popen(user=...): switching users in Popen's child makes it fork() (no vfork),
# and the child of a fork() runs gRPC's fork handlers, which crashed it now and then (SIGSEGV
# before the exec) while this test process's own gRPC threads were busy.
AS_NOBODY = ("setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--")


@functools.cache
def _nobody_python() -> tuple[str, ...]:
    """A Python command `nobody` can run that imports this venv's jobsctl (see the module docstring)."""
    try:
        probe = subprocess.run([*AS_NOBODY, sys.executable, "-c", "import jobsctl"], cwd="/", capture_output=True,
                               timeout=30)
        if probe.returncode == 0:
            return (sys.executable,)
    except PermissionError:  # the interpreter is in a folder nobody may not enter
        pass
    system = shutil.which(f"python{sys.version_info.major}.{sys.version_info.minor}", path="/usr/bin:/bin")
    if system is None:
        pytest.skip("no Python of this version that the user nobody can run")
    site = next(p for p in sys.path if p.startswith(sys.prefix) and p.endswith("site-packages"))
    return (system, "-c", f"import site, sys; site.addsitedir({site!r}); from jobsctl.__main__ import main; main()")


def jobsctl_as_nobody(socket: str, *args: str) -> subprocess.CompletedProcess:
    python = _nobody_python()
    argv = [*python, "-m", "jobsctl"] if len(python) == 1 else python
    return subprocess.run([*AS_NOBODY, *argv, "--socket", socket, *args], cwd="/", env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"},
                          capture_output=True, text=True, timeout=30)


class SharedDaemon(Daemon):
    """A daemon whose socket is in a folder that the group `nogroup` (nobody's) may enter, as an
    operator sets one up for --socket-group: root-owned, 0750, group nogroup."""

    def __init__(self, home: str) -> None:
        super().__init__(home)
        self.folder = tempfile.mkdtemp(prefix="jts", dir="/tmp")
        os.chown(self.folder, 0, grp.getgrnam("nogroup").gr_gid)
        os.chmod(self.folder, 0o750)

    @property
    def socket(self) -> str:
        return os.path.join(self.folder, "jobsd.sock")


@pytest.fixture
def shared_daemon(home: str):  # noqa: ANN201
    d = SharedDaemon(home)
    yield d
    if d.proc is not None:
        assert d.stop() == 0, d.read_log()
    shutil.rmtree(d.folder, ignore_errors=True)


@needs_root
def test_another_users_call_is_recorded_as_that_uid(shared_daemon):
    daemon = shared_daemon
    daemon.write_job("hello", 'command = ["true"]\n')
    daemon.start("--socket", daemon.socket, "--socket-group", "nogroup")
    done = jobsctl_as_nobody(daemon.socket, "jobs", "run", "hello", "--wait")
    assert done.returncode == 0, done.stderr
    [queued] = audit(daemon, "run.queued")
    assert (queued.get("actor"), queued.get("actor_uid"), queued.get("actor_user")) == ("uid=65534(nobody)", "65534", "nobody")
    assert queued.get("client") == "nobody uid=65534 jobsctl"
    # gRPC's own socket beside the public one stays 0600 whatever the group: no way around the relay
    bypass = jobsctl_as_nobody(os.path.join(daemon.folder, ".jobsd.sock.grpc"), "jobs", "pause", "hello")
    assert bypass.returncode == 3, bypass
    assert audit(daemon, "job.paused") == []


@needs_root
@pytest.mark.parametrize("folder_mode", [0o700, 0o711], ids=["default-folder", "folder-others-may-enter"])
def test_second_user_cannot_use_the_default_socket(daemon, home, folder_mode):
    """Default socket mode 0600 in a 0700 folder; with the folder opened to others (0711) the socket's
    own mode (and that of gRPC's socket beside it) still refuses them."""
    daemon.write_job("hello", 'command = ["true"]\n')
    daemon.start()
    os.chmod(home, folder_mode)
    assert os.stat(daemon.socket).st_mode & 0o777 == 0o600
    for socket in (daemon.socket, os.path.join(home, ".jobsd.sock.grpc")):
        for args in (("jobs", "run", "hello"), ("jobs", "disable", "hello"), ("daemon", "reload")):
            done = jobsctl_as_nobody(socket, *args)
            assert done.returncode == 3, done
            assert socket in done.stderr and "Is the daemon running?" not in done.stderr  # it is: say who may connect
            if folder_mode == 0o700:
                assert "permission denied on a folder on the way to the socket" in done.stderr
            else:
                assert "permission denied. The socket is root:root, mode 0600" in done.stderr
                assert "--socket-group GROUP" in done.stderr
    assert list(daemon.jobs.ListRuns(pb.ListRunsRequest(job="hello"), timeout=10).runs) == []
    assert daemon.jobs.GetJob(pb.GetJobRequest(job="hello"), timeout=10).state == pb.JOB_STATE_ACTIVE
    assert audit(daemon, "run.queued", "job.disabled", "daemon.reloaded") == []


