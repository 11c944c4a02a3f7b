"""Live output and events (DESIGN 8): no lost or duplicated output, slow followers slow nobody,
disconnects free resources, and a stopping daemon ends its streams instead of hanging them."""
from __future__ import annotations

import os
import signal
import subprocess
import threading

import grpc
import pytest

from jobsd_lib.rpc import jobsd_pb2 as pb
from tests.conftest import BIN, wait_for

pytestmark = pytest.mark.timeout(90)


def collect(daemon, request: pb.TailRequest) -> tuple[bytes, bytes, list]:  # noqa: ANN001
    messages = list(daemon.jobs.Tail(request, timeout=60))
    chunks = [m.chunk for m in messages if m.HasField("chunk")]
    out = b"".join(c.data for c in chunks if c.stream == pb.STREAM_STDOUT)
    err = b"".join(c.data for c in chunks if c.stream == pb.STREAM_STDERR)
    return out, err, messages


def lines(n: int) -> bytes:
    return b"".join(b"line %d\n" % i for i in range(1, n + 1))


def test_late_follower_gets_everything_once_in_order(daemon, home):
    gate = os.path.join(home, "gate")
    # 100 lines, then wait for the gate file, then 100 more: the follower joins in the middle.
    daemon.write_job("slow", f'command = ["sh", "-c", "i=1; while [ $i -le 100 ]; do echo line $i; i=$((i+1)); done; '
                     f'while [ ! -e {gate} ]; do sleep 0.02; done; while [ $i -le 200 ]; do echo line $i; i=$((i+1)); done"]\n')
    daemon.start()
    ref = daemon.run("slow").ref
    wait_for(lambda: daemon.get_run(ref).attempt_list and daemon.get_run(ref).attempt_list[0].pid, what="started")
    stream = daemon.jobs.Tail(pb.TailRequest(job="slow", follow=True), timeout=60)
    first = next(stream)
    assert first.start.run.ref == ref
    got = []
    for message in stream:
        if message.HasField("chunk"):
            got.append(message.chunk)
            if b"line 100\n" in b"".join(c.data for c in got):
                open(gate, "w").close()
        if message.HasField("end"):
            assert message.end.run.state == pb.RUN_STATE_SUCCEEDED
    assert b"".join(c.data for c in got) == lines(200)
    offsets = [c.offset for c in got]
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)


def test_burst_with_ten_followers_and_one_stuck_follower(daemon, home):
    gate = os.path.join(home, "go")
    daemon.write_job("burst", f'command = ["sh", "-c", "while [ ! -e {gate} ]; do sleep 0.02; done; '
                     "seq -f 'line %g' 1 20000\"]\n")
    daemon.start()
    ref = daemon.run("burst").ref
    wait_for(lambda: daemon.get_run(ref).state == pb.RUN_STATE_RUNNING, what="running")
    # The stuck follower: a real jobsctl, stopped with SIGSTOP so it reads nothing.
    stuck = subprocess.Popen([os.path.join(BIN, "jobsctl"), "--socket", daemon.socket, "jobs", "tail", "burst", "-f"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    results: list[bytes] = [b""] * 10
    def follow(i: int) -> None:
        results[i] = collect(daemon, pb.TailRequest(job="burst", follow=True))[0]
    threads = [threading.Thread(target=follow, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    wait_for(lambda: daemon.daemon.GetHealth(pb.GetHealthRequest()).followers >= 11, what="11 followers attached")
    stuck.send_signal(signal.SIGSTOP)
    open(gate, "w").close()
    try:
        final = daemon.wait_finished(ref, timeout=30)  # the job is not held back by the stuck reader
        assert final.state == pb.RUN_STATE_SUCCEEDED
        for t in threads:
            t.join(timeout=30)
        expected = lines(20000)
        assert all(r == expected for r in results), [len(r) for r in results]
        assert daemon.daemon.GetHealth(pb.GetHealthRequest(), timeout=5).followers >= 1  # other RPCs still answer
    finally:
        stuck.kill()
        stuck.wait(timeout=10)
    wait_for(lambda: daemon.daemon.GetHealth(pb.GetHealthRequest()).followers == 0, timeout=20,
             what="the killed follower's stream to be freed")


def test_single_ten_megabyte_line(daemon):
    daemon.write_job("big", 'command = ["sh", "-c", "head -c 10000000 /dev/zero | tr \'\\\\0\' x; echo"]\n')
    daemon.start()
    daemon.wait_finished(daemon.run("big").ref, timeout=60)
    out, _, messages = collect(daemon, pb.TailRequest(job="big"))
    assert out == b"x" * 10_000_000 + b"\n"
    assert max(len(m.chunk.data) for m in messages if m.HasField("chunk")) <= 64 * 1024


def test_tail_from_offset_and_of_a_run_with_no_output(daemon):
    daemon.write_job("abc", 'command = ["printf", "abcdef"]\n')
    daemon.write_job("quiet", 'command = ["true"]\n')
    daemon.start()
    daemon.wait_finished(daemon.run("abc").ref)
    daemon.wait_finished(daemon.run("quiet").ref)
    assert collect(daemon, pb.TailRequest(job="abc", offset=2))[0] == b"cdef"
    out, err, messages = collect(daemon, pb.TailRequest(job="quiet", follow=True))
    assert (out, err) == (b"", b"") and messages[-1].end.run.state == pb.RUN_STATE_SUCCEEDED


def test_daemon_stopping_ends_attached_followers(daemon):
    daemon.write_job("forever", 'command = ["sh", "-c", "echo started; exec sleep 300"]\nkill_grace = "1s"\n')
    daemon.start()
    ref = daemon.run("forever").ref
    follower = subprocess.Popen([os.path.join(BIN, "jobsctl"), "--socket", daemon.socket, "jobs", "tail", "forever",
                                 "-f"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for(lambda: daemon.daemon.GetHealth(pb.GetHealthRequest()).followers == 1, what="follower attached")
    assert daemon.stop() == 0
    out, err = follower.communicate(timeout=20)  # it ends, it does not hang
    assert out == b"started\n" and follower.returncode == 1  # the run ended interrupted
    daemon.start()
    assert daemon.get_run(ref).state == pb.RUN_STATE_INTERRUPTED


def test_watch_events_in_order_once_and_resumable(daemon):
    daemon.write_job("ok", 'command = ["true"]\n')
    daemon.start()
    daemon.wait_finished(daemon.run("ok").ref)
    events = list(daemon.jobs.WatchEvents(pb.WatchEventsRequest(job="ok"), timeout=10))
    assert [e.type for e in events] == ["run.queued", "run.started", "run.attempt_finished", "run.finished"]
    assert all(e.run == "ok/1" for e in events)
    follow = daemon.jobs.WatchEvents(pb.WatchEventsRequest(after_seq=events[1].seq, follow=True), timeout=30)
    seen = [next(follow).seq for _ in range(2)]
    assert seen == [events[2].seq, events[3].seq]
    daemon.run("ok")
    new = [next(follow) for _ in range(4)]
    follow.cancel()
    assert [e.type for e in new] == ["run.queued", "run.started", "run.attempt_finished", "run.finished"]
    assert [e.seq for e in new] == sorted(e.seq for e in new) and new[0].seq > events[3].seq
