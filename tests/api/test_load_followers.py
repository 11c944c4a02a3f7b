"""Under load, every follower still gets every byte of a run's output, binary included (issue 19,
"keep what held": 200 clients and 50 followers; bench/load_followers.py is the full size).

20 clients call ListJobs, GetRun and GetHealth in a loop while 10 followers Tail(follow) a job
that writes a known binary pattern (every byte value, 256-byte lines, then 200,000 bytes with no
newline) once they are all attached. Each follower compares its bytes' count, offsets and
SHA-256 with the pattern; every client call must be answered.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import threading

import grpc
import pytest

from jobsd_lib.rpc import jobsd_pb2 as pb
from jobsd_lib.rpc import jobsd_pb2_grpc as pb_grpc
from tests.conftest import wait_for

pytestmark = pytest.mark.timeout(60)
CLIENTS, FOLLOWERS, BLOCKS, BLOCK = 20, 10, 24, 65_536
WRITER = ("import os,sys,time; w=sys.stdout.buffer; b=bytes(range(256))*257\n"
          "while not os.path.exists(sys.argv[1]): time.sleep(0.005)\n"
          f"for i in range({BLOCKS}): w.write(b[i % 256:i % 256 + {BLOCK}]); w.flush(); time.sleep(0.01)\n"
          "w.write(b'\\x00\\xff' * 100000); w.flush()\n")


def pattern() -> bytes:
    b = bytes(range(256)) * 257
    return b"".join(b[i % 256:i % 256 + BLOCK] for i in range(BLOCKS)) + b"\x00\xff" * 100_000


def own_channel(daemon) -> grpc.Channel:  # noqa: ANN001
    """Its own connection, as a separate jobsctl process would have."""
    return grpc.insecure_channel(f"unix:{daemon.socket}", options=[("grpc.use_local_subchannel_pool", 1)])


def test_every_follower_gets_every_byte_while_20_clients_call_the_daemon(daemon, home):
    go = os.path.join(home, "go")
    daemon.write_job("pattern", f"command = {json.dumps([sys.executable, '-c', WRITER, go])}\n")
    for k in range(5):
        daemon.write_job(f"other{k}", 'command = ["true"]\n')
    daemon.start()
    for k in range(5):
        daemon.wait_finished(daemon.run(f"other{k}").ref)
    run = daemon.run("pattern")

    follows = [{"bytes": 0, "offsets_ok": True, "sha": hashlib.sha256(), "end": None, "error": None}
               for _ in range(FOLLOWERS)]
    calls, errors, stop = [0] * CLIENTS, [], threading.Event()

    def follow(res: dict) -> None:
        try:
            with own_channel(daemon) as ch:
                for m in pb_grpc.JobsStub(ch).Tail(pb.TailRequest(job="pattern", run=run.n, follow=True), timeout=50):
                    if m.HasField("chunk"):
                        res["offsets_ok"] &= m.chunk.offset == res["bytes"]
                        res["bytes"] += len(m.chunk.data)
                        res["sha"].update(m.chunk.data)
                    elif m.HasField("end"):
                        res["end"] = m.end.run.state
        except grpc.RpcError as err:
            res["error"] = f"{err.code().name}: {err.details()}"

    def client(k: int) -> None:
        with own_channel(daemon) as ch:
            jobs, health = pb_grpc.JobsStub(ch), pb_grpc.DaemonStub(ch)
            rpcs = (lambda: jobs.ListJobs(pb.ListJobsRequest(), timeout=30),
                    lambda: jobs.GetRun(pb.GetRunRequest(run=run.ref), timeout=30),
                    lambda: health.GetHealth(pb.GetHealthRequest(), timeout=30))
            while not stop.is_set():
                try:
                    rpcs[calls[k] % 3]()
                except grpc.RpcError as err:
                    errors.append(f"{err.code().name}: {err.details()}")
                calls[k] += 1

    followers = [threading.Thread(target=follow, args=(res,)) for res in follows]
    clients = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
    for t in followers + clients:
        t.start()
    try:
        wait_for(lambda: daemon.daemon.GetHealth(pb.GetHealthRequest(), timeout=10).followers == FOLLOWERS, 20,
                 "every follower attached")
        wait_for(lambda: all(calls), 20, "every client answered once")
        open(go, "w").close()
        for t in followers:
            t.join(45)
    finally:
        stop.set()
        for t in clients:
            t.join(30)

    want = pattern()
    for res in follows:
        assert res["error"] is None and res["end"] == pb.RUN_STATE_SUCCEEDED, res
        assert res["bytes"] == len(want) and res["offsets_ok"], res
        assert res["sha"].hexdigest() == hashlib.sha256(want).hexdigest()
    assert errors == [] and min(calls) >= 2
    assert daemon.get_run(run.ref).attempt_list[0].output_bytes == len(want)
