"""`[schedule] jitter`: a real daemon fires each window of a job one fixed offset late (derived from the
job id: 2.116 s of jitter = "3s" for job "fast"), shows the shifted times in `jobs next` and `jobs list`,
and still hands the job its nominal window (JOBSD_SCHEDULED_TIME, the run's scheduled_at)."""
from __future__ import annotations

import json
import os
from datetime import datetime

import pytest

from jobsd_lib.kernel.jitter import offset
from jobsd_lib.rpc import jobsd_pb2 as pb
from tests.conftest import wait_for

pytestmark = pytest.mark.timeout(60)


def test_windows_fire_one_stable_offset_late_and_keep_their_nominal_time(daemon):
    daemon.write_job("backup", 'command = ["true"]\n[schedule]\ncron = "0 3 * * *"\ntimezone = "UTC"\njitter = "5m"\n')
    script = 'echo \\"$JOBSD_SCHEDULED_TIME\\" >> \\"$0\\"'
    times = os.path.join(daemon.home, "fast")
    daemon.write_job("fast", f'command = ["sh", "-c", "{script}", "{times}"]\n'
                             '[schedule]\ncron = "*/4 * * * * *"\ntimezone = "UTC"\njitter = "3s"\n')
    daemon.start()
    shift = offset("fast", 3).total_seconds()
    assert shift == pytest.approx(2.116)

    nexts = json.loads(daemon.ctl("jobs", "next", "backup", "--count", "2", "--json").stdout)["times"]
    assert [t[11:] for t in nexts] == ["03:02:10.239000+00:00"] * 2  # 03:00 + the offset of "backup" in 5m
    listed = {j["id"]: j for j in json.loads(daemon.ctl("jobs", "list", "--json").stdout)["jobs"]}
    assert listed["backup"]["next_run_at"] == nexts[0]
    assert datetime.fromisoformat(listed["fast"]["next_run_at"]).timestamp() % 4 == pytest.approx(shift, abs=1e-3)

    def fired() -> list[pb.Run]:
        answer = daemon.jobs.ListRuns(pb.ListRunsRequest(job="fast", limit=10), timeout=10)
        return [r for r in answer.runs if r.state == pb.RUN_STATE_SUCCEEDED]
    done = wait_for(lambda: len(fired()) >= 2 and fired(), 20, "two jittered windows of fast")
    for run in done:
        window = run.scheduled_at.seconds + run.scheduled_at.nanos / 1e9
        started = run.started_at.seconds + run.started_at.nanos / 1e9
        assert window % 4 == 0 and run.trigger == pb.TRIGGER_CRON  # the nominal window
        assert shift <= started - window < shift + 1.5, (started - window, shift)  # fired at window + offset
    seen = open(times).read().split()
    assert {datetime.fromisoformat(t).timestamp() for t in seen} >= {r.scheduled_at.seconds for r in done}
