"""A real jobsd under a fake systemd (tests/daemon/notify_receiver.py): READY=1, then WATCHDOG=1
while the daemon is healthy, through a job store that refuses writes and through clock jumps.
Receives use socket timeouts, never sleeps."""

from __future__ import annotations

import glob
import os
import sqlite3
import time

import pytest

from jobsd.scheduler import STALE_AFTER
from jobsd_lib.rpc import jobsd_pb2 as pb
from tests.conftest import Daemon, wait_for
from tests.daemon.notify_receiver import Receiver, path_receiver  # noqa: F401


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
    # The offset file is re-read once a second. FAKETIME_NO_CACHE would read it at every clock call
    # (thousands a second, each an open/read/close under a lock), which starved the daemon on a
    # slow machine: jobsd took 6 s to get ready and its RPCs timed out.
    monkeypatch.setenv("FAKETIME_CACHE_DURATION", "1")
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
    # libfaketime re-reads the offset once a second (FAKETIME_CACHE_DURATION), so windows of the
    # +20 s clock may still fire for up to a second after the set: `latest + 3` is past those
    # and still ~20 s ahead of the clock that comes back
    while not any(r.scheduled_at.seconds > latest + 3 for r in runs()):
        assert path_receiver.recv() == b"WATCHDOG=1"
        assert time.monotonic() - behind_since < 60, "cron runs did not resume"
    assert time.monotonic() - behind_since > 15  # the job really waited for the clock to come round
    back = jumps()[1]
    assert back.attrs["direction"] == "back" and abs(float(back.attrs["delta"]) + 20) < 1
    windows = [r.scheduled_at.seconds for r in runs()]
    assert len(windows) == len(set(windows)), "a window was handled twice"
    assert "not healthy" not in daemon.read_log()
