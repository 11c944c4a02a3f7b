"""RunJob -> exec of a job that runs as another user vs one that runs as jobsd itself (issue 18).

One daemon running as root, two jobs with the same command (`sh -c 'date +%s%N > FILE'`, the child
stamps its own start), one with `user = "nobody"`: runs alternate between them, each waiting for
the previous one's stamp. The time is client wall clock before RunJob -> the child's own `date`.
With a user the vfork'd child execs jobsd's own run-as helper (daemon/jobsd/native/run_as.c, built
by `make install`; util-linux's setpriv where it is not built), which switches uid, gid and groups
and execs the job (executor.as_user: Popen's own user=/group= would fork() the whole daemon
instead, as CPython's _posixsubprocess cannot vfork when it must call setuid/setgid/setgroups):
the difference is that one exec more. Goal: within 1.1x.

Then throughput in the same daemon (4 slots): blocks of --block RunJob calls of `true`, 50 jobs of
each kind, alternating kind per block, each block timed from the first RunJob to the last run's
end, with the daemon's own CPU over the block. Side by side in one daemon, so the machine's drift
(on this VM two runs of throughput.py differ by up to 1.5x) falls on both alike. Goal: unchanged.
Needs root. Asserts nothing.

    .venv/bin/python bench/run_as.py [--runs 200] [--warmup 10] [--blocks 20] [--block 100]
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (Daemon, Deadline, code_version, cpu_seconds, print_footer, short_tmpdir, summary,  # noqa: E402
                     write_jobs)

KINDS = ("plain", "asuser")
AS_USER = 'user = "nobody"\ncwd = "/"\n'
POOL = 50  # jobs of each kind in the throughput phase (a job has one active run at a time)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--blocks", type=int, default=20, help="throughput blocks (half of each kind)")
    parser.add_argument("--block", type=int, default=100, help="RunJob calls per throughput block")
    opts = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run_as.py needs root: only root can run jobs as another user")
    version = code_version()
    home = short_tmpdir("jbu")
    os.chmod(home, 0o711)
    stamps = os.path.join(home, "stamps")
    os.mkdir(stamps)
    os.chmod(stamps, 0o1777)
    write_jobs(home, {
        "plain": f'command = ["sh", "-c", "date +%s%N > {stamps}/plain"]\n',
        "asuser": f'command = ["sh", "-c", "date +%s%N > {stamps}/asuser"]\n' + AS_USER,
        **{f"t{kind}{i:02d}": 'command = ["true"]\n' + (AS_USER if kind == "asuser" else "")
           for kind in KINDS for i in range(POOL)},
    })
    daemon = Daemon(home, max_concurrent=4).start()
    blocks: dict[str, list[tuple[float, float]]] = {"plain": [], "asuser": []}
    timings: dict[str, list[float]] = {"plain": [], "asuser": []}
    try:
        import grpc

        from jobsd_lib.rpc import jobsd_pb2 as pb, jobsd_pb2_grpc as g

        with grpc.insecure_channel(f"unix:{daemon.sock}") as channel:
            stub = g.JobsStub(channel)
            for i in range(opts.warmup + opts.runs):
                for job in ("plain", "asuser") if i % 2 else ("asuser", "plain"):
                    stamp = os.path.join(stamps, job)
                    if os.path.exists(stamp):
                        os.unlink(stamp)
                    t0 = time.time_ns()
                    run = stub.RunJob(pb.RunJobRequest(job=job), timeout=10)
                    deadline = Deadline(10)
                    while not (os.path.exists(stamp) and os.path.getsize(stamp) > 0):
                        if deadline.passed():
                            raise RuntimeError(f"{job} left no stamp; log:\n{daemon.log_tail()}")
                        time.sleep(0.0005)
                    child = int(open(stamp).read())
                    while stub.GetRun(pb.GetRunRequest(run=run.ref), timeout=10).state in (pb.RUN_STATE_QUEUED, pb.RUN_STATE_RUNNING):
                        time.sleep(0.001)
                    if i >= opts.warmup:
                        timings[job].append((child - t0) / 1e6)
            for b in range(opts.blocks + 2):  # the first two warm up
                kind = KINDS[b % 2]
                seconds, cpu = _block(stub, pb, daemon.pid, kind, opts.block)
                if b >= 2:
                    blocks[kind].append((seconds, cpu))
    finally:
        daemon.stop()
        shutil.rmtree(home, ignore_errors=True)
    med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    print(f"RunJob -> the child's own clock, {opts.runs} runs of each, alternating (ms)")
    print(f"  as jobsd (root)   {summary(timings['plain'])}")
    print(f"  user = \"nobody\"   {summary(timings['asuser'])}")
    print(f"median with a user / without: {med(timings['asuser']) / med(timings['plain']):.2f} (goal: within 1.1x)")
    print(f"\nthroughput, {opts.blocks // 2} blocks of {opts.block} runs of `true` per kind, alternating, 4 slots")
    rate = {kind: [opts.block / s for s, _ in blocks[kind]] for kind in KINDS}
    cpu = {kind: [c / opts.block * 1000 for _, c in blocks[kind]] for kind in KINDS}
    for kind, label in zip(KINDS, ("as jobsd (root)", 'user = "nobody"')):
        print(f"  {label:<17} runs/s median {med(rate[kind]):6.1f} (min {min(rate[kind]):.1f}, max {max(rate[kind]):.1f})"
              f"   daemon CPU per run median {med(cpu[kind]):.2f} ms")
    print(f"runs/s with a user / without: {med(rate['asuser']) / med(rate['plain']):.2f}; daemon CPU per run "
          f"{med(cpu['asuser']) / med(cpu['plain']):.2f}x (goal: unchanged)")
    print_footer("run_as.py", sys.argv[1:], version)


def _block(stub, pb, pid: int, kind: str, count: int) -> tuple[float, float]:  # noqa: ANN001
    """`count` RunJob calls over the kind's pool of jobs, each waiting for a free job; (seconds from the
    first RunJob to the last run's end, the daemon's CPU seconds meanwhile)."""
    jobs = [f"t{kind}{i:02d}" for i in range(POOL)]
    pending: dict[str, str] = {}  # job -> its active run
    deadline = Deadline(120)
    cpu0, t0, sent = cpu_seconds(pid), time.perf_counter(), 0
    while sent < count or pending:
        for job in [j for j in jobs if j not in pending][: count - sent]:
            pending[job] = stub.RunJob(pb.RunJobRequest(job=job), timeout=10).ref
            sent += 1
        active = {r.ref for r in stub.ListRuns(pb.ListRunsRequest(
            states=[pb.RUN_STATE_QUEUED, pb.RUN_STATE_RUNNING], limit=1000), timeout=10).runs}
        pending = {j: ref for j, ref in pending.items() if ref in active}
        if deadline.passed():
            raise RuntimeError(f"a throughput block of {kind} did not finish in 120 s")
        time.sleep(0.005)
    return time.perf_counter() - t0, cpu_seconds(pid) - cpu0


if __name__ == "__main__":
    main()
