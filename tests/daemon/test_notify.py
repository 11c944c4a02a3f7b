"""jobsd.notify against real AF_UNIX datagram sockets: a path in a short temp dir and an
abstract-namespace name; then a real daemon feeding (or not) a fake systemd's watchdog.
Receives use socket timeouts, never sleeps."""

from __future__ import annotations

import glob
import logging
import os
import shutil
import socket
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Iterator

import pytest

from jobsd.notify import SCRUBBED_VARIABLES, Notifier, scrub_environ
from jobsd.scheduler import STALE_AFTER
from jobsd_lib.rpc import jobsd_pb2 as pb
from tests.conftest import Daemon, wait_for

RECV_TIMEOUT = 5.0  # seconds; a datagram that does not arrive by then fails the test


class Receiver:
    """The systemd end of the protocol: a bound datagram socket and its NOTIFY_SOCKET value."""

    def __init__(self, sock: socket.socket, notify_socket: str) -> None:
        self.sock = sock
        self.notify_socket = notify_socket

    def recv(self) -> bytes:
        return self.sock.recv(65536)

    def assert_empty(self) -> None:
        """Nothing is queued (checked without waiting: the socket is briefly non-blocking)."""
        self.sock.setblocking(False)
        try:
            with pytest.raises(BlockingIOError):
                self.sock.recv(65536)
        finally:
            self.sock.settimeout(RECV_TIMEOUT)


def _datagram_socket() -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.settimeout(RECV_TIMEOUT)
    return sock


@pytest.fixture
def path_receiver() -> Iterator[Receiver]:
    # A short directory: sun_path holds at most 107 bytes, pytest's tmp_path can be longer.
    directory = tempfile.mkdtemp(prefix="jn", dir="/tmp")
    path = os.path.join(directory, "notify")
    sock = _datagram_socket()
    try:
        sock.bind(path)
        yield Receiver(sock, path)
    finally:
        sock.close()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def abstract_receiver() -> Iterator[Receiver]:
    name = f"jobsd-test-notify-{uuid.uuid4().hex}"
    sock = _datagram_socket()
    try:
        sock.bind("\0" + name)
        yield Receiver(sock, "@" + name)
    finally:
        sock.close()


@pytest.fixture(params=["path", "abstract"])
def receiver(request: pytest.FixtureRequest) -> Receiver:
    return request.getfixturevalue(f"{request.param}_receiver")


def _notifier(receiver: Receiver, pid: int = 4242, **extra: str) -> Notifier:
    return Notifier.from_environ({"NOTIFY_SOCKET": receiver.notify_socket, **extra}, pid=pid)


def test_ready_with_status_and_mainpid(receiver: Receiver) -> None:
    notifier = _notifier(receiver)
    assert notifier.enabled
    notifier.ready("serving on /run/jobsd/jobsd.sock")
    assert receiver.recv() == b"READY=1\nSTATUS=serving on /run/jobsd/jobsd.sock\nMAINPID=4242"


def test_ready_without_status(receiver: Receiver) -> None:
    _notifier(receiver, pid=77).ready()
    assert receiver.recv() == b"READY=1\nMAINPID=77"


def test_default_pid_is_ours(path_receiver: Receiver) -> None:
    Notifier.from_environ({"NOTIFY_SOCKET": path_receiver.notify_socket}).ready()
    assert path_receiver.recv() == f"READY=1\nMAINPID={os.getpid()}".encode()


def test_each_message_is_one_datagram_in_order(receiver: Receiver) -> None:
    notifier = _notifier(receiver)
    notifier.status("loading specs")
    notifier.watchdog()
    notifier.extend_timeout(30_000_000)
    notifier.reloading(123_456_789)
    notifier.stopping("stopping 2 running jobs")
    notifier.stopping()
    assert [receiver.recv() for _ in range(6)] == [
        b"STATUS=loading specs",
        b"WATCHDOG=1",
        b"EXTEND_TIMEOUT_USEC=30000000",
        b"RELOADING=1\nMONOTONIC_USEC=123456789",
        b"STOPPING=1\nSTATUS=stopping 2 running jobs",
        b"STOPPING=1",
    ]
    receiver.assert_empty()


def test_status_newlines_cannot_inject_assignments(path_receiver: Receiver) -> None:
    _notifier(path_receiver).status("bad spec\nREADY=1")
    assert path_receiver.recv() == b"STATUS=bad spec READY=1"


def test_status_is_utf8(path_receiver: Receiver) -> None:
    _notifier(path_receiver).status("job café: ok")
    assert path_receiver.recv() == "STATUS=job café: ok".encode()


def test_datagram_comes_from_this_process(path_receiver: Receiver) -> None:
    """systemd attributes messages by the kernel's sender credentials (NotifyAccess=main)."""
    path_receiver.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    _notifier(path_receiver).watchdog()
    _, ancillary, _, _ = path_receiver.sock.recvmsg(65536, socket.CMSG_SPACE(12))
    creds = [data for level, kind, data in ancillary if kind == socket.SCM_CREDENTIALS]
    assert creds and int.from_bytes(creds[0][:4], "little") == os.getpid()


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"}, 15.0),
        ({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": ""}, 0.5),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4243"}, None),
        ({}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "me"}, None),
    ],
)
def test_watchdog_interval(path_receiver: Receiver, extra: dict[str, str], expected: float | None) -> None:
    assert _notifier(path_receiver, pid=4242, **extra).watchdog_interval == expected


def test_watchdog_pid_defaults_to_ours(path_receiver: Receiver) -> None:
    env = {
        "NOTIFY_SOCKET": path_receiver.notify_socket,
        "WATCHDOG_USEC": "20000000",
        "WATCHDOG_PID": str(os.getpid()),
    }
    assert Notifier.from_environ(env).watchdog_interval == 10.0


@pytest.mark.parametrize("value", [None, ""])
def test_disabled_without_notify_socket(value: str | None) -> None:
    env = {"WATCHDOG_USEC": "30000000"}
    if value is not None:
        env["NOTIFY_SOCKET"] = value
    notifier = Notifier.from_environ(env, pid=1)
    assert not notifier.enabled
    assert notifier.watchdog_interval is None  # nobody to ping
    notifier.ready("x")
    notifier.stopping()
    notifier.reloading(1)
    notifier.status("x")
    notifier.watchdog()
    notifier.extend_timeout(1)
    assert notifier.send("READY=1") is False


def test_from_environ_defaults_to_os_environ(
    monkeypatch: pytest.MonkeyPatch, path_receiver: Receiver
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", path_receiver.notify_socket)
    monkeypatch.setenv("WATCHDOG_USEC", "8000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    notifier = Notifier.from_environ()
    assert notifier.watchdog_interval == 4.0
    notifier.watchdog()
    assert path_receiver.recv() == b"WATCHDOG=1"
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert not Notifier.from_environ().enabled


def test_missing_socket_path_does_not_raise(caplog: pytest.LogCaptureFixture) -> None:
    directory = tempfile.mkdtemp(prefix="jn", dir="/tmp")
    try:
        notifier = Notifier.from_environ({"NOTIFY_SOCKET": os.path.join(directory, "gone")})
        assert notifier.enabled
        with caplog.at_level(logging.DEBUG, logger="jobsd.notify"):
            notifier.ready("up")
            notifier.watchdog()
            notifier.watchdog()
            assert notifier.send("WATCHDOG=1") is False
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    # The first failure warns, repeats (a watchdog loop) only go to debug.
    levels = [r.levelno for r in caplog.records if r.name == "jobsd.notify"]
    assert levels == [logging.WARNING, logging.DEBUG, logging.DEBUG, logging.DEBUG]


def test_unbound_abstract_name_does_not_raise() -> None:
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": f"@jobsd-test-nobody-{uuid.uuid4().hex}"})
    notifier.ready()
    notifier.stopping()


def test_overlong_path_does_not_raise() -> None:
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": "/tmp/" + "x" * 200})
    notifier.watchdog()
    assert notifier.send("WATCHDOG=1") is False


def test_unsupported_address_disables(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="jobsd.notify"):
        notifier = Notifier.from_environ({"NOTIFY_SOCKET": "vsock:2:1234"})
    assert not notifier.enabled
    notifier.ready()
    assert "NOTIFY_SOCKET" in caplog.text


def test_scrub_environ() -> None:
    environ = {
        "PATH": "/usr/bin:/bin",
        "HOME": "/var/lib/jobsd",
        "INVOCATION_ID": "0123456789abcdef",
        "JOURNAL_STREAM": "8:12345",
        "NOTIFY_SOCKET": "/run/systemd/notify",
        "WATCHDOG_USEC": "30000000",
        "WATCHDOG_PID": "1234",
        "LISTEN_FDS": "1",
        "LISTEN_PID": "1234",
        "LISTEN_FDNAMES": "jobsd.socket",
    }
    original = dict(environ)
    scrubbed = scrub_environ(environ)
    assert scrubbed == {
        "PATH": "/usr/bin:/bin",
        "HOME": "/var/lib/jobsd",
        "INVOCATION_ID": "0123456789abcdef",
        "JOURNAL_STREAM": "8:12345",
    }
    assert environ == original  # a copy, the input is untouched
    assert scrubbed is not environ
    assert set(original) - set(scrubbed) == SCRUBBED_VARIABLES


def test_scrub_environ_accepts_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/systemd/notify")
    monkeypatch.setenv("WATCHDOG_USEC", "1")
    scrubbed = scrub_environ(os.environ)
    assert isinstance(scrubbed, dict)
    assert "NOTIFY_SOCKET" not in scrubbed and "WATCHDOG_USEC" not in scrubbed
    assert os.environ["NOTIFY_SOCKET"] == "/run/systemd/notify"


# ---------------------------------------------------------------------------- a real daemon


@pytest.mark.timeout(90)
def test_a_job_store_that_refuses_writes_neither_kills_the_scheduler_nor_starves_the_watchdog(
    monkeypatch: pytest.MonkeyPatch, path_receiver: Receiver, daemon: Daemon
) -> None:
    """A real jobsd under a fake systemd: READY=1, then WATCHDOG=1 every half WATCHDOG_USEC while
    healthy. schedule.sqlite3 is locked by another process for longer than SQLite's 5 s busy
    timeout, so APScheduler's writes fail. That used to end APScheduler's thread (issue 19: no
    window ran again until a restart); now the scheduler keeps going: the pings never stop, the
    windows still run (the run store works), `daemon status` says why it is degraded, and once the
    lock is gone the job store is written again and no window ran twice."""
    monkeypatch.setenv("NOTIFY_SOCKET", path_receiver.notify_socket)
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")  # a ping every 0.5 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    daemon.write_job("tick", 'command = ["true"]\n[schedule]\ncron = "* * * * * *"\ntimezone = "UTC"\n')
    daemon.start()
    assert path_receiver.recv().startswith(b"READY=1\n")
    assert [path_receiver.recv() for _ in range(3)] == [b"WATCHDOG=1"] * 3

    def degraded() -> list[str]:
        return list(daemon.daemon.GetHealth(pb.GetHealthRequest(), timeout=10).degraded)

    schedule = sqlite3.connect(os.path.join(daemon.home, "db", "schedule.sqlite3"), isolation_level=None)
    schedule.execute("BEGIN IMMEDIATE")  # readers go on; APScheduler's next write times out
    path_receiver.sock.settimeout(3.0)  # 6 intervals without a ping fail the test
    try:
        wait_for(lambda: any("job store cannot be written" in line and "locked" in line for line in degraded()),
                 20, "daemon status to say the job store cannot be written")
        before = daemon.jobs.ListRuns(pb.ListRunsRequest(job="tick", limit=1), timeout=10).runs[0].n
        deadline = time.monotonic() + STALE_AFTER + 2  # longer than a dead thread would keep the pings going
        while time.monotonic() < deadline:
            assert path_receiver.recv() == b"WATCHDOG=1"
        after = daemon.jobs.ListRuns(pb.ListRunsRequest(job="tick", limit=1), timeout=10).runs[0].n
        assert after >= before + 5, "the windows stopped running while the job store was locked"
    finally:
        schedule.execute("ROLLBACK")
        schedule.close()
    assert "Exception in thread APScheduler" not in daemon.read_log()
    wait_for(lambda: not degraded(), 20, "daemon status no longer degraded")
    health = daemon.daemon.GetHealth(pb.GetHealthRequest(), timeout=10)
    assert health.scheduler_state == "running"
    runs = daemon.jobs.ListRuns(pb.ListRunsRequest(job="tick", limit=1000), timeout=10).runs
    windows = [r.scheduled_at.ToDatetime() for r in runs if r.HasField("scheduled_at")]
    assert len(windows) == len(set(windows)), "a cron window ran twice"


FAKETIME = next(iter(glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1")), "")  # Debian's libfaketime (.ci/run installs it)


@pytest.mark.timeout(120)
@pytest.mark.skipif(not FAKETIME, reason="needs libfaketime (apt-get install libfaketime)")
def test_clock_jumps_are_recorded_and_a_jump_back_does_not_starve_the_watchdog(
    monkeypatch: pytest.MonkeyPatch, path_receiver: Receiver, daemon: Daemon
) -> None:
    """The daemon's wall clock (only it: libfaketime, CLOCK_MONOTONIC/BOOTTIME untouched) jumps
    20 s forward, then 20 s back. Forward: the skipped windows are recorded missed. Back: the
    cron job waits ~20 s for its next window, no window runs twice, and the heartbeat job is
    fired at once so WATCHDOG=1 never pauses (without that kick the pings stop after 15 s)."""
    offset = os.path.join(daemon.home, "faketime")
    with open(offset, "w") as f:
        f.write("+0\n")
    monkeypatch.setenv("LD_PRELOAD", FAKETIME)
    monkeypatch.setenv("FAKETIME_TIMESTAMP_FILE", offset)
    monkeypatch.setenv("FAKETIME_NO_CACHE", "1")
    monkeypatch.setenv("DONT_FAKE_MONOTONIC", "1")
    monkeypatch.setenv("NOTIFY_SOCKET", path_receiver.notify_socket)
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    daemon.write_job("tick", 'command = ["true"]\n[schedule]\ncron = "* * * * * *"\ntimezone = "UTC"\n'
                     'misfire_grace = "0.5s"\n')
    daemon.start()

    def runs() -> list[pb.Run]:
        return list(daemon.jobs.ListRuns(pb.ListRunsRequest(job="tick", limit=1000), timeout=10).runs)

    def jumps() -> list[pb.Event]:
        events = daemon.jobs.WatchEvents(pb.WatchEventsRequest(), timeout=10)
        return [e for e in events if e.type == "daemon.clock_jump"]

    def set_offset(text: str) -> None:
        with open(offset + ".new", "w") as f:
            f.write(text)
        os.replace(offset + ".new", offset)

    assert path_receiver.recv().startswith(b"READY=1\n")
    wait_for(lambda: len(runs()) >= 2, 10, "cron runs")
    set_offset("+20\n")
    forward = wait_for(jumps, 15, "a forward jump event")[0]
    assert forward.attrs["direction"] == "forward" and abs(float(forward.attrs["delta"]) - 20) < 1
    wait_for(lambda: len([r for r in runs() if r.state == pb.RUN_STATE_MISSED]) >= 18, 10, "the skipped windows missed")
    latest = max(r.scheduled_at.seconds for r in runs())

    set_offset("+0\n")
    behind_since = time.monotonic()
    path_receiver.sock.settimeout(3.0)  # a ping is due every 0.5 s
    while not any(r.scheduled_at.seconds > latest + 1 for r in runs()):
        assert path_receiver.recv() == b"WATCHDOG=1"
        assert time.monotonic() - behind_since < 60, "cron runs did not resume"
    assert time.monotonic() - behind_since > 15  # the job really waited for the clock to come round
    back = jumps()[1]
    assert back.attrs["direction"] == "back" and abs(float(back.attrs["delta"]) + 20) < 1
    windows = [r.scheduled_at.seconds for r in runs()]
    assert len(windows) == len(set(windows)), "a window was handled twice"
    assert "not healthy" not in daemon.read_log()
