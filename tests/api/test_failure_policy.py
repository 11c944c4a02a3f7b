"""Retries, timeouts that take the whole process group, and resource limits, on a real daemon."""
from __future__ import annotations

import json
import os
import signal

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


def test_output_beyond_the_cap_keeps_its_first_and_last_half_around_a_marker(daemon):
    """limits.output = 100K: the log keeps the first and the last 50K around a marker line, the error at the
    end survives, and the receipt counts what was kept and dropped."""
    script = "seq -f 'line %06g' 1 30000; echo 'ERROR: disk on fire' >&2"  # 12 bytes a line: 360,000 + 20
    daemon.write_job("chatty", f'command = ["sh", "-c", "{script}"]\n[limits]\noutput = "100K"\n')
    daemon.start()
    final = daemon.wait_finished(daemon.run("chatty").ref)
    assert final.state == pb.RUN_STATE_SUCCEEDED
    a = final.attempt_list[0]
    assert (a.output_bytes, a.dropped_bytes) == (102400, 360020 - 102400)
    tail = daemon.ctl("jobs", "tail", "chatty")
    assert tail.returncode == 0, tail.stderr
    head_text = b"".join(b"line %06d\n" % i for i in range(1, 30001))
    assert tail.stdout.startswith(head_text[:51200 - 51200 % 12])
    assert tail.stderr.endswith(b"ERROR: disk on fire\n")
    marker = (b"--- jobsd: 257620 bytes of output dropped here (limits.output = 102400 keeps the first 51200 "
              b"and the last 51200) ---\n")
    assert marker in tail.stderr
    log = open(os.path.join(final.artifacts, "attempt-1.log"), "rb").read()
    assert log.startswith(head_text[:51200]) and log.endswith(b"line 030000\nERROR: disk on fire\n")
    assert len(log) == 102400 + len(marker) + 1  # the head ends mid-line: the marker starts a line of its own
    receipt = json.load(open(os.path.join(final.artifacts, "run_receipt.json")))
    assert (receipt["attempt_list"][0]["output_bytes"], receipt["attempt_list"][0]["dropped_bytes"]) == (102400, 257620)

def test_the_spill_file_of_a_run_over_its_limit_left_by_a_killed_jobsd_is_removed_at_the_start(daemon):
    """The end of the output past the head waits in .attempt-1.tail.tmp until the attempt ends; a jobsd killed
    meanwhile leaves it behind, and the next start's repair of run folders removes it (the head stays)."""
    daemon.write_job("spew", 'command = ["sh", "-c", "head -c 300000 /dev/zero; exec sleep 60"]\n'
                             '[limits]\noutput = "100K"\n')
    daemon.start()
    run = daemon.run("spew")
    folder = daemon.get_run(run.ref).artifacts
    spill = os.path.join(folder, ".attempt-1.tail.tmp")
    wait_for(lambda: os.path.exists(spill) and os.path.getsize(spill) == 51200, 20, "the ring to fill")
    daemon.stop(signal.SIGKILL)
    daemon.start()
    assert daemon.wait_finished(run.ref).state == pb.RUN_STATE_INTERRUPTED
    wait_for(lambda: not os.path.exists(spill), 20, "the start-up repair to remove the spill file")
    assert open(os.path.join(folder, "attempt-1.log"), "rb").read() == b"\0" * 51200
