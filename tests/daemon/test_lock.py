"""One owner per store: a second daemon refuses at once naming the owner; a crash never blocks a restart."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from jobsd_lib.rpc import jobsd_pb2 as pb

pytestmark = pytest.mark.timeout(60)


def test_second_daemon_on_the_same_store_exits_naming_the_owner(daemon):
    daemon.write_job("a", 'command = ["true"]\n')
    daemon.start()
    other = os.path.join(daemon.home, "other.sock")
    second = subprocess.run([sys.executable, "-m", "jobsd", "--home", daemon.home, "--socket", other],
                            capture_output=True, timeout=30)
    assert second.returncode != 0
    assert f"pid {daemon.proc.pid}" in second.stderr.decode() and "locked" in second.stderr.decode()
    assert not os.path.exists(other)  # it never bound a socket
    assert daemon.run("a").ref == "a/1"  # the first one still serves


def test_a_crashed_daemon_leaves_no_lock_that_blocks_a_restart(daemon):
    daemon.write_job("a", 'command = ["true"]\n')
    daemon.start()
    daemon.stop(signal.SIGKILL)
    assert os.path.exists(os.path.join(daemon.home, "db", "jobsd.lock"))  # the file stays, the lock does not
    daemon.start()
    assert daemon.daemon.GetHealth(pb.GetHealthRequest()).pid == daemon.proc.pid


def test_corrupt_store_is_refused_not_reset(home):
    os.makedirs(os.path.join(home, "db"))
    store = os.path.join(home, "db", "jobsd.sqlite3")
    with open(store, "wb") as f:
        f.write(b"this is not a database" * 100)
    result = subprocess.run([sys.executable, "-m", "jobsd", "--home", home], capture_output=True, timeout=30)
    assert result.returncode == 1 and store in result.stderr.decode()
    assert open(store, "rb").read() == b"this is not a database" * 100


def test_overlong_socket_path_is_a_clear_error(home):
    result = subprocess.run([sys.executable, "-m", "jobsd", "--home", home, "--socket", "/tmp/" + "s" * 120],
                            capture_output=True, timeout=30)
    assert result.returncode == 1 and "at most 107" in result.stderr.decode()
