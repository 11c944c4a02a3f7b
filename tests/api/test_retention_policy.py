"""Retention by policy (DESIGN 11) on a real daemon: each job's `[retention]`, else the daemon's
--retention-* default, applied by the daemon itself (at start-up, after a reload, hourly) through
the code of `gc`: active runs are never touched, one daemon.gc event a sweep, bad rules refused."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from jobsd_lib.rpc import jobsd_pb2 as pb
from tests.conftest import wait_for

pytestmark = pytest.mark.timeout(60)


def refs(daemon, job: str) -> list[str]:  # noqa: ANN001
    return [r.ref for r in daemon.jobs.ListRuns(pb.ListRunsRequest(job=job, limit=100), timeout=10).runs]


def gc_events(daemon) -> list[pb.Event]:  # noqa: ANN001
    return [e for e in daemon.jobs.WatchEvents(pb.WatchEventsRequest(), timeout=10) if e.type == "daemon.gc"]


def test_each_jobs_policy_or_the_default_is_applied_by_the_daemon_sparing_active_runs(daemon):
    daemon.write_job("keep2", 'command = ["true"]\n')
    daemon.write_job("other", 'command = ["true"]\n')
    daemon.write_job("busy", 'command = ["sleep", "30"]\nkill_grace = "1s"\n')
    daemon.start()
    for job, count in (("keep2", 4), ("other", 5)):
        for _ in range(count):
            daemon.wait_finished(daemon.run(job).ref)
    first = daemon.run("busy").ref
    daemon.jobs.CancelRun(pb.CancelRunRequest(run=first), timeout=20)
    active = daemon.run("busy").ref
    folder = daemon.get_run("keep2/1").artifacts

    daemon.write_job("keep2", 'command = ["true"]\n[retention]\nkeep_last = 2\n')
    daemon.write_job("busy", 'command = ["sleep", "30"]\nkill_grace = "1s"\n[retention]\nkeep_last = 0\n')
    daemon.daemon.Reload(pb.ReloadRequest(), timeout=10)  # a reload sweeps at once
    wait_for(lambda: gc_events(daemon), 10, "the retention sweep")
    assert refs(daemon, "keep2") == ["keep2/4", "keep2/3"]  # its own rule
    assert refs(daemon, "busy") == [active]                # keep_last = 0: the active run stays
    assert len(refs(daemon, "other")) == 5                 # no rule for it (no daemon default yet)
    assert not os.path.exists(folder)
    [event] = gc_events(daemon)
    assert (event.attrs["actor"], event.attrs["policy"], event.attrs["removed"]) == ("scheduler", "retention", "3")

    assert daemon.stop() == 0  # busy's active run ends interrupted
    daemon.start("--retention-keep-last", "3")  # the start sweeps with the daemon's default
    wait_for(lambda: len(gc_events(daemon)) == 2, 10, "the start-up sweep")
    assert refs(daemon, "other") == ["other/5", "other/4", "other/3"]  # the default
    assert refs(daemon, "keep2") == ["keep2/4", "keep2/3"]             # its own rule wins over the default
    assert refs(daemon, "busy") == []
    assert gc_events(daemon)[1].attrs["removed"] == "3"


def test_bad_retention_rules_are_refused(daemon, home):
    daemon.write_job("bad", 'command = ["true"]\n[retention]\nkeep_last = -1\nolder_than = "0s"\n')
    checked = daemon.ctl("jobs", "validate", os.path.join(home, "jobs"))
    out = checked.stdout.decode()
    assert checked.returncode == 4 and "retention.keep_last" in out and "retention.older_than" in out
    for args, words in ((["--retention-keep-last", "-1"], "must be between 0 and"),
                        (["--retention-older-than", "soon"], "is not a duration"),
                        (["--retention-older-than", "0"], "longer than 0s")):
        refused = subprocess.run([sys.executable, "-m", "jobsd", "--home", home, *args], capture_output=True,
                                 timeout=30)
        assert refused.returncode == 2 and words in refused.stderr.decode(), (args, refused.stderr)
