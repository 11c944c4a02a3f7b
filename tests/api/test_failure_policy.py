"""Retries, timeouts that take the whole process group, and resource limits, on a real daemon."""
from __future__ import annotations

import json
import os

import pytest

from jobsd_lib.rpc import jobsd_pb2 as pb
from tests.conftest import alive, wait_for

pytestmark = pytest.mark.timeout(60)


def test_attempts_are_counted_exactly_and_each_keeps_its_output(daemon):
    daemon.write_job("always", 'command = ["sh", "-c", "echo attempt $JOBSD_ATTEMPT; exit 2"]\n'
                     '[retry]\nattempts = 3\nbackoff = "0.1s"\nfactor = 2\n')
    daemon.start()
    final = daemon.wait_finished(daemon.run("always").ref)
    assert (final.state, final.attempts, final.exit_code) == (pb.RUN_STATE_FAILED, 3, 2)
    assert [a.number for a in final.attempt_list] == [1, 2, 3]
    for a in final.attempt_list:
        assert open(os.path.join(final.artifacts, f"attempt-{a.number}.log"), "rb").read() == b"attempt %d\n" % a.number
    gaps = [final.attempt_list[i + 1].started_at.ToNanoseconds() - final.attempt_list[i].finished_at.ToNanoseconds()
            for i in range(2)]
    assert gaps[0] >= 0.1e9 and gaps[1] >= 0.2e9  # backoff 0.1s, then 0.2s
    types = [json.loads(line)["type"] for line in open(os.path.join(final.artifacts, "events.jsonl"))]
    assert types.count("run.retrying") == 2 and types.count("run.started") == 3


def test_succeeds_on_second_attempt_and_shows_backoff_while_waiting(daemon, home):
    marker = os.path.join(home, "tried")
    daemon.write_job("second", f'command = ["sh", "-c", "if [ -e {marker} ]; then echo ok; else touch {marker}; exit 1; fi"]\n'
                     '[retry]\nattempts = 3\nbackoff = "1s"\n')
    daemon.start()
    ref = daemon.run("second").ref
    waiting = wait_for(lambda: (r := daemon.get_run(ref)).state == pb.RUN_STATE_RETRYING and r, what="retrying")
    assert waiting.wait_reason == pb.WAIT_REASON_BACKOFF and waiting.HasField("next_attempt_at")
    assert daemon.daemon.GetHealth(pb.GetHealthRequest()).runs_active == 1
    final = daemon.wait_finished(ref)
    assert (final.state, final.attempts, final.exit_code) == (pb.RUN_STATE_SUCCEEDED, 2, 0)


def test_timeout_kills_the_group_including_a_grandchild_that_ignores_sigterm(daemon, home):
    pidfile = os.path.join(home, "grandchild.pid")
    daemon.write_job("hang", f'command = ["sh", "-c", "sh -c \'trap \\"\\" TERM; echo $$ > {pidfile}; '
                     'while :; do sleep 0.1; done\' & wait"]\ntimeout = "1s"\nkill_grace = "0.5s"\n')
    daemon.start()
    final = daemon.wait_finished(daemon.run("hang").ref)
    assert final.state == pb.RUN_STATE_TIMED_OUT and final.attempt_list[0].timed_out
    grandchild = int(open(pidfile).read())
    wait_for(lambda: not alive(grandchild), timeout=5, what="the grandchild to be gone")


def test_memory_limit_makes_a_hog_fail_cleanly(daemon):
    daemon.write_job("hog", 'command = ["python3", "-c", "b = bytearray(600 * 1024 * 1024); print(len(b))"]\n'
                     '[limits]\nmemory = "256M"\n')
    daemon.write_job("ok", 'command = ["true"]\n')
    daemon.start()
    final = daemon.wait_finished(daemon.run("hog").ref)
    assert final.state == pb.RUN_STATE_FAILED and final.exit_code != 0
    assert b"MemoryError" in open(os.path.join(final.artifacts, "attempt-1.log"), "rb").read()
    assert daemon.wait_finished(daemon.run("ok").ref).state == pb.RUN_STATE_SUCCEEDED


def test_output_beyond_the_cap_is_drained_and_counted(daemon):
    daemon.write_job("chatty", 'command = ["sh", "-c", "head -c 300000 /dev/zero"]\n[limits]\noutput = "100K"\n')
    daemon.start()
    final = daemon.wait_finished(daemon.run("chatty").ref)
    assert final.state == pb.RUN_STATE_SUCCEEDED
    a = final.attempt_list[0]
    assert (a.output_bytes, a.dropped_bytes) == (102400, 300000 - 102400)
    assert os.path.getsize(os.path.join(final.artifacts, "attempt-1.log")) == 102400
