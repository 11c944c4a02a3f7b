"""The systemd end of the notify protocol for tests: a bound datagram socket (a path in a short
temp dir, or an abstract name) and its NOTIFY_SOCKET value. Fixtures: path_receiver,
abstract_receiver, receiver (both)."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import Iterator

import pytest

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
