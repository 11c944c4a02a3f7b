"""Fixtures that start a real jobsd process on a real Unix socket with a real SQLite file.

Sockets live in short temporary folders (/tmp/jt*): a Unix socket path has 107 bytes at most.
Every wait is a condition with a deadline, never a bare sleep.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import grpc
import pytest

from jobsd_lib.rpc import jobsd_pb2 as pb
from jobsd_lib.rpc import jobsd_pb2_grpc as pb_grpc

BIN = os.path.dirname(sys.executable)
# The channel is made before jobsd listens, so its first connect fails; gRPC's default backoff then
# waits 1 s (+-20 %) before it tries again. Retrying every 50 ms cuts ~0.5-1.5 s off every start.
FAST_RECONNECT = [("grpc.initial_reconnect_backoff_ms", 50), ("grpc.min_reconnect_backoff_ms", 50),
                  ("grpc.max_reconnect_backoff_ms", 250)]


def wait_for(condition: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> object:
    """Poll `condition` until truthy; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)  # polling interval of the wait loop, not a synchronisation


def alive(pid: int) -> bool:
    """Is `pid` a live process (not gone, not a zombie)?"""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@dataclass
class Daemon:
    home: str
    proc: subprocess.Popen | None = None
    channel: grpc.Channel | None = None
    args: list[str] = field(default_factory=list)

    @property
    def socket(self) -> str:
        return os.path.join(self.home, "jobsd.sock")

    @property
    def jobs_dir(self) -> str:
        return os.path.join(self.home, "jobs")

    def write_job(self, job_id: str, text: str) -> str:
        os.makedirs(self.jobs_dir, exist_ok=True)
        path = os.path.join(self.jobs_dir, f"{job_id}.toml")
        with open(path, "w") as f:
            f.write(text)
        return path

    def start(self, *extra: str) -> "Daemon":
        self.args = [sys.executable, "-m", "jobsd", "--home", self.home, *extra]
        self.log = open(os.path.join(self.home, "daemon.log"), "ab")
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=subprocess.STDOUT)
        return self.connect()

    def connect(self) -> "Daemon":
        """Open the test's channel to the daemon just spawned and wait until it serves."""
        self.channel = grpc.insecure_channel(f"unix:{self.socket}", options=FAST_RECONNECT)
        try:
            grpc.channel_ready_future(self.channel).result(timeout=15)
        except grpc.FutureTimeoutError:
            raise AssertionError(f"jobsd did not start; log:\n{self.read_log()}") from None
        return self

    @property
    def jobs(self) -> pb_grpc.JobsStub:
        return pb_grpc.JobsStub(self.channel)

    @property
    def daemon(self) -> pb_grpc.DaemonStub:
        return pb_grpc.DaemonStub(self.channel)

    def read_log(self) -> str:
        with open(os.path.join(self.home, "daemon.log"), "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.channel:
            self.channel.close()
            self.channel = None
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        self.proc = None
        self.log.close()
        return code

    def run(self, job: str) -> pb.Run:
        return self.jobs.RunJob(pb.RunJobRequest(job=job), timeout=10)

    def get_run(self, ref: str) -> pb.Run:
        return self.jobs.GetRun(pb.GetRunRequest(run=ref), timeout=10)

    def wait_finished(self, ref: str, timeout: float = 20) -> pb.Run:
        terminal = {pb.RUN_STATE_SUCCEEDED, pb.RUN_STATE_FAILED, pb.RUN_STATE_TIMED_OUT, pb.RUN_STATE_CANCELLED,
                    pb.RUN_STATE_INTERRUPTED, pb.RUN_STATE_SKIPPED, pb.RUN_STATE_MISSED, pb.RUN_STATE_REJECTED}
        return wait_for(lambda: (r := self.get_run(ref)).state in terminal and r, timeout, f"{ref} to finish")

    def ctl(self, *args: str, input: bytes | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
        """Run the real jobsctl against this daemon."""
        return subprocess.run([os.path.join(BIN, "jobsctl"), "--socket", self.socket, *args], capture_output=True,
                              input=input, timeout=timeout)


@pytest.fixture
def home() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="jt", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def daemon(home: str) -> Iterator[Daemon]:
    """A daemon object (not yet started: write jobs, then call .start())."""
    d = Daemon(home)
    yield d
    if d.proc is not None:
        code = d.stop()
        assert code == 0, f"jobsd exited {code}; log:\n{d.read_log()}"


def error_code(err: grpc.RpcError) -> str:
    """The stable jobsd code carried in the status details."""
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    status = rpc_status.from_call(err)
    assert status is not None, f"no rich status in {err}"
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            assert info.domain == "jobsd"
            return info.reason
    raise AssertionError("no ErrorInfo detail")


@pytest.fixture(scope="session")
def pg_server():  # noqa: ANN201
    """A private PostgreSQL server for this test process (tests/pg_server.py). Without the server's
    binaries the PostgreSQL tests skip on a developer's machine and fail under CI, so that a green
    CI cannot hide a missing install (.ci/run installs Debian's postgresql)."""
    from tests.pg_server import PgServer, pg_bindir
    bindir = pg_bindir()
    if bindir is None:
        message = "no PostgreSQL server binaries (initdb): apt-get install postgresql"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    server = PgServer(bindir)
    yield server
    server.stop()
