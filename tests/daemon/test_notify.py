"""jobsd.notify against real AF_UNIX datagram sockets: a path in a short temp dir and an
abstract-namespace name. Receives use socket timeouts, never sleeps."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import uuid

import pytest

from jobsd.notify import Notifier
from tests.daemon.notify_receiver import Receiver, abstract_receiver, path_receiver, receiver  # noqa: F401


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
    notifier.reloading(123_456_789)
    notifier.stopping("stopping 2 running jobs")
    notifier.stopping()
    assert [receiver.recv() for _ in range(5)] == [
        b"STATUS=loading specs",
        b"WATCHDOG=1",
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
