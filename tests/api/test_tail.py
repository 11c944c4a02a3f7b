"""Live output and events (DESIGN 8): no lost or duplicated output, slow followers slow nobody,
disconnects free resources, and a stopping daemon ends its streams instead of hanging them."""
from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import threading

import pytest

from jobsd_lib.rpc import jobsd_pb2 as pb
from tests.conftest import BIN, wait_for

pytestmark = pytest.mark.timeout(90)
CHUNK_LIMIT = 1 << 20  # the largest chunk docs/api.md promises (gRPC's default message limit is 4 MiB)


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
                     "seq -f 'line %g' 1 100000\"]\n")
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
        expected = lines(100000)
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
    assert max(len(m.chunk.data) for m in messages if m.HasField("chunk")) <= CHUNK_LIMIT


def test_a_pipe_the_job_fills_grows_to_one_mebibyte_and_a_quiet_one_does_not(daemon):
    """The job sees its own stdout pipe's size (F_GETPIPE_SZ) after writing: 1 MiB once it wrote 4 MiB in one
    go (the pipe was full when jobsd read it), Linux's 64 KiB when it printed one line. Every byte is stored."""
    probe = "import fcntl, os, sys; os.write(1, b'x' * int(sys.argv[1])); " \
            "os.write(2, b'pipe=%d' % fcntl.fcntl(1, fcntl.F_GETPIPE_SZ))"
    daemon.write_job("loud", f'command = ["python3", "-c", "{probe}", "4194304"]\n')
    daemon.write_job("quiet", f'command = ["python3", "-c", "{probe}", "10"]\n')
    daemon.start()
    for job, size, pipe in (("loud", 4 << 20, 1 << 20), ("quiet", 10, 64 << 10)):
        assert daemon.wait_finished(daemon.run(job).ref, timeout=60).state == pb.RUN_STATE_SUCCEEDED
        out, err, messages = collect(daemon, pb.TailRequest(job=job))
        assert (out, err) == (b"x" * size, b"pipe=%d" % pipe)
        assert max(len(m.chunk.data) for m in messages if m.HasField("chunk")) <= CHUNK_LIMIT


def test_at_most_sixteen_pipes_are_grown_at_once(daemon, home):
    """Pipe buffers count against the user's kernel quota, which the jobs share: with 17 loud jobs holding
    their pipes open at once, 16 pipes are grown to 1 MiB and the 17th keeps Linux's 64 KiB."""
    sizes = os.path.join(home, "sizes")
    os.makedirs(sizes)
    # Each job writes 1 MiB, reports its pipe's size, then holds the pipe until it is cancelled.
    probe = "import fcntl, os, signal, sys; os.write(1, b'x' * (1 << 20)); " \
            "open(sys.argv[1], 'w').write(str(fcntl.fcntl(1, fcntl.F_GETPIPE_SZ))); signal.pause()"
    jobs = [f"loud{i:02d}" for i in range(17)]
    for job in jobs:
        daemon.write_job(job, f'command = ["python3", "-c", "{probe}", "{sizes}/{job}"]\n')
    daemon.start("--max-concurrent-runs", "17")
    refs = [daemon.run(job).ref for job in jobs]
    wait_for(lambda: len(os.listdir(sizes)) == 17 and all(open(os.path.join(sizes, j)).read() for j in jobs),
             timeout=60, what="all 17 jobs to report their pipe size")
    got = sorted(int(open(os.path.join(sizes, j)).read()) for j in jobs)
    for ref in refs:
        assert daemon.jobs.CancelRun(pb.CancelRunRequest(run=ref), timeout=30).state == pb.RUN_STATE_CANCELLED
    assert got == [64 << 10] + [1 << 20] * 16


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


def test_events_follow_says_when_jobsd_stops_and_exits_3(daemon):
    daemon.write_job("ok", 'command = ["true"]\n')
    daemon.start()
    daemon.wait_finished(daemon.run("ok").ref)
    follower = subprocess.Popen([os.path.join(BIN, "jobsctl"), "--socket", daemon.socket, "events", "-f"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for(lambda: daemon.daemon.GetHealth(pb.GetHealthRequest()).followers == 1, what="follower attached")
    assert daemon.stop() == 0
    out, err = follower.communicate(timeout=20)
    assert b"run.finished" in out and follower.returncode == 3
    assert b"jobsd stopped; the event stream ended (go on with --after " in err


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


def stored_index(home: str, job: str, n: int, attempt: int) -> list[tuple[int, int, int, int]]:
    """The attempt's index records as stored (docs/architecture.md): (offset, read ns, length, stream)."""
    with open(os.path.join(home, "runs", job, str(n), f"attempt-{attempt}.idx"), "rb") as f:
        return [(o, t, n_, s) for o, t, n_, s in struct.iter_unpack("<QqIB3x", f.read())]


def assert_chunks_keep_records(chunks: list, records: list) -> None:  # noqa: ANN001
    """Each chunk is one stored record, or consecutive records of one stream read in the same millisecond
    (stamped with the first one's read time), 1 MiB at most; together they cover every record in order."""
    i = 0
    for c in chunks:
        assert c.offset == records[i][0] and len(c.data) <= CHUNK_LIMIT
        ts_ns, end = c.read_at.seconds * 10**9 + c.read_at.nanos, c.offset + len(c.data)
        assert (ts_ns, c.stream) == records[i][1:4:2]
        while i < len(records) and records[i][0] < end:
            offset, rec_ns, length, stream = records[i]
            assert stream == c.stream and rec_ns // 10**6 == ts_ns // 10**6 and offset + length <= end
            i += 1
    assert i == len(records)


def test_chunks_keep_stored_streams_and_read_times_live_and_replayed(daemon, home):
    """DESIGN 3: a replay shows what the live tail showed: same bytes, order and stream tags, and each
    byte's read time to the millisecond; lines that trickle keep their own read time to the nanosecond."""
    gate = os.path.join(home, "gate")
    # A burst (lines on both streams, then 3 MB), then three lines, each printed 10 ms after the gate the
    # test opens once it has seen the one before: surely three records, read more than 1 ms apart.
    daemon.write_job("mixed", f'command = ["sh", "-c", "while [ ! -e {gate}-0 ]; do sleep 0.02; done; '
                     'i=0; while [ $i -lt 300 ]; do echo out $i; echo err $i >&2; i=$((i+1)); done; '
                     f'head -c 3000000 /dev/zero; for i in 1 2 3; do while [ ! -e {gate}-$i ]; do sleep 0.02; done; '
                     'sleep 0.01; echo slow $i; done"]\n')
    daemon.start()
    ref = daemon.run("mixed").ref
    live = daemon.jobs.Tail(pb.TailRequest(job="mixed", follow=True), timeout=60)
    assert next(live).start.run.ref == ref
    wait_for(lambda: daemon.daemon.GetHealth(pb.GetHealthRequest()).followers == 1, what="follower attached")
    open(f"{gate}-0", "w").close()
    burst = len(b"".join(b"out %d\n" % i for i in range(300))) + 3_000_000
    live_chunks, seen = [], 0
    for message in live:
        if message.HasField("chunk"):
            live_chunks.append(message.chunk)
            seen += len(message.chunk.data) if message.chunk.stream == pb.STREAM_STDOUT else 0
            for k, upto in enumerate([burst, burst + 7, burst + 14], start=1):
                if seen == upto:
                    open(f"{gate}-{k}", "w").close()
    _, _, messages = collect(daemon, pb.TailRequest(job="mixed"))
    replayed = [m.chunk for m in messages if m.HasField("chunk")]
    stored = stored_index(home, "mixed", 1, 1)
    assert_chunks_keep_records(live_chunks, stored)
    assert_chunks_keep_records(replayed, stored)
    assert b"".join(c.data for c in replayed) == b"".join(c.data for c in live_chunks)
    out = b"".join(c.data for c in replayed if c.stream == pb.STREAM_STDOUT)
    err = b"".join(c.data for c in replayed if c.stream == pb.STREAM_STDERR)
    assert out == b"".join(b"out %d\n" % i for i in range(300)) + b"\0" * 3_000_000 + b"slow 1\nslow 2\nslow 3\n"
    assert err == b"".join(b"err %d\n" % i for i in range(300))
    slow = [c for c in replayed if c.data.startswith(b"slow")]  # one chunk each, with its own read time
    assert [c.data for c in slow] == [b"slow 1\n", b"slow 2\n", b"slow 3\n"]
    assert [(c.offset, c.read_at.seconds * 10**9 + c.read_at.nanos) for c in slow] == [r[:2] for r in stored[-3:]]


def test_live_follower_moves_on_to_the_next_attempt(daemon, home):
    gate = os.path.join(home, "gate")
    daemon.write_job("flaky", f'command = ["sh", "-c", "echo attempt $JOBSD_ATTEMPT; if [ $JOBSD_ATTEMPT = 1 ]; '
                     f'then while [ ! -e {gate} ]; do sleep 0.02; done; fi; echo done $JOBSD_ATTEMPT; exit 1"]\n'
                     '[retry]\nattempts = 3\nbackoff = "0.1s"\n')
    daemon.start()
    ref = daemon.run("flaky").ref
    stream = daemon.jobs.Tail(pb.TailRequest(job="flaky", follow=True), timeout=60)
    assert next(stream).start.run.ref == ref
    chunks, end = [], None
    for message in stream:
        if message.HasField("chunk"):
            chunks.append(message.chunk)
            if message.chunk.data == b"attempt 1\n":
                open(gate, "w").close()
        elif message.HasField("end"):
            end = message.end.run
    assert end is not None and end.state == pb.RUN_STATE_FAILED and end.attempts == 3
    by_attempt = {k: b"".join(c.data for c in chunks if c.attempt == k) for k in (1, 2, 3)}
    assert by_attempt == {k: b"attempt %d\ndone %d\n" % (k, k) for k in (1, 2, 3)}
    assert [c.attempt for c in chunks] == sorted(c.attempt for c in chunks)


def start_with_write_timeout(daemon, seconds: float) -> None:  # noqa: ANN001
    """Start the real daemon with a shorter WRITE_TIMEOUT (the constant, set before it serves)."""
    code = ("import os; os.environ['GRPC_ENABLE_FORK_SUPPORT'] = '0'; import jobsd.api.streaming as s; "
            f"s.WRITE_TIMEOUT = {seconds!r}; from jobsd.__main__ import main; main()")
    daemon.args = [sys.executable, "-c", code, "--home", daemon.home]
    daemon.log = open(os.path.join(daemon.home, "daemon.log"), "ab")
    daemon.proc = subprocess.Popen(daemon.args, stdout=daemon.log, stderr=subprocess.STDOUT)
    daemon.connect()


def test_a_follower_that_stops_reading_is_ended_by_the_write_timeout(daemon, home):
    gate = os.path.join(home, "go")
    daemon.write_job("flood", f'command = ["sh", "-c", "while [ ! -e {gate} ]; do sleep 0.02; done; '
                     'head -c 50000000 /dev/zero; exec sleep 60"]\nkill_grace = "1s"\n[limits]\noutput = "100M"\n')
    start_with_write_timeout(daemon, 1.0)
    ref = daemon.run("flood").ref
    stuck = subprocess.Popen([os.path.join(BIN, "jobsctl"), "--socket", daemon.socket, "jobs", "tail", "flood", "-f"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: daemon.daemon.GetHealth(pb.GetHealthRequest()).followers == 1, what="follower attached")
        stuck.send_signal(signal.SIGSTOP)
        open(gate, "w").close()
        log = os.path.join(home, "runs", "flood", "1", "attempt-1.log")
        wait_for(lambda: os.path.exists(log) and os.path.getsize(log) == 50_000_000, timeout=30, what="output stored")
        # The run is still going and the client is still stopped: only the write timeout can end the stream.
        wait_for(lambda: daemon.daemon.GetHealth(pb.GetHealthRequest()).followers == 0, timeout=15,
                 what="the stopped follower's stream to be ended")
        assert daemon.get_run(ref).state == pb.RUN_STATE_RUNNING
        stuck.send_signal(signal.SIGCONT)
        _, err = stuck.communicate(timeout=20)
        assert stuck.returncode != 0 and b"did not read for 1s" in err, err
    finally:
        stuck.kill()
        stuck.wait(timeout=10)
    daemon.jobs.CancelRun(pb.CancelRunRequest(run=ref), timeout=10)
    daemon.wait_finished(ref)


def test_stored_records_join_only_within_one_stream_and_millisecond(tmp_path):
    """The rule behind every chunk a follower gets (jobsd.output): consecutive records of one stream read in
    the same millisecond become one chunk of at most 1 MiB, stamped with the first record's read time."""
    from jobsd.output import STDERR, STDOUT, OutputReader, OutputWriter

    t0 = 1_700_000_000_000_000_000  # on a millisecond boundary
    writer = OutputWriter(str(tmp_path), 1, cap=10**9)
    for stream, data, at in [(STDOUT, b"a1", t0), (STDOUT, b"b2", t0 + 100_000), (STDERR, b"c3", t0 + 200_000),
                             (STDOUT, b"d4", t0 + 300_000), (STDOUT, b"e5", t0 + 999_999), (STDOUT, b"f6", t0 + 10**6),
                             *[(STDOUT, b"%d" % i * 400_000, t0 + 3 * 10**6 + i) for i in range(3)]]:
        writer.write(stream, data, at)
    writer.close()
    reader = OutputReader(str(tmp_path), 1)
    try:
        got = [(c.offset, c.ts_ns, c.stream, len(c.data)) for c in reader.chunks(reader.records(0, 100), skip_before=1)]
        assert got == [(1, t0, STDOUT, 3), (4, t0 + 200_000, STDERR, 2), (6, t0 + 300_000, STDOUT, 4),
                       (10, t0 + 10**6, STDOUT, 2), (12, t0 + 3 * 10**6, STDOUT, 800_000),
                       (800_012, t0 + 3 * 10**6 + 2, STDOUT, 400_000)]
        assert b"".join(c.data for c in reader.chunks(reader.records(0, 100))) == \
            b"a1b2c3d4e5f6" + b"0" * 400_000 + b"1" * 400_000 + b"2" * 400_000
        # With a smaller limit (many followers), a bigger record goes out in pieces, each with its read time.
        got = [(c.offset, c.ts_ns, len(c.data)) for c in reader.chunks(reader.records(6, 8), limit=150_000)]
        assert got == [(12, t0 + 3 * 10**6, 150_000), (150_012, t0 + 3 * 10**6, 150_000),
                       (300_012, t0 + 3 * 10**6, 100_000), (400_012, t0 + 3 * 10**6 + 1, 150_000),
                       (550_012, t0 + 3 * 10**6 + 1, 150_000), (700_012, t0 + 3 * 10**6 + 1, 100_000)]
    finally:
        reader.close()
