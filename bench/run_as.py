"""RunJob -> exec of a job that runs as another user vs one that runs as jobsd itself (issue 18).

One daemon running as root, two jobs with the same command (`sh -c 'date +%s%N > FILE'`, the child
stamps its own start), one with `user = "nobody"`: runs alternate between them, each waiting for
the previous one's stamp. The time is client wall clock before RunJob -> the child's own `date`.
With a user the vfork'd child execs setpriv (util-linux), which switches uid, gid and groups and
execs the job (executor.as_user: Popen's own user=/group= would fork() the whole daemon instead,
as CPython's _posixsubprocess cannot vfork when it must call setuid/setgid/setgroups): the
difference is that one exec more. Goal: within 1.1x. Needs root. Asserts nothing.

    .venv/bin/python bench/run_as.py [--runs 200] [--warmup 10]
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import Daemon, Deadline, code_version, print_footer, short_tmpdir, summary, write_jobs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
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
        "asuser": f'command = ["sh", "-c", "date +%s%N > {stamps}/asuser"]\nuser = "nobody"\ncwd = "/"\n',
    })
    daemon = Daemon(home).start()
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
    finally:
        daemon.stop()
        shutil.rmtree(home, ignore_errors=True)
    med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    print(f"RunJob -> the child's own clock, {opts.runs} runs of each, alternating (ms)")
    print(f"  as jobsd (root)   {summary(timings['plain'])}")
    print(f"  user = \"nobody\"   {summary(timings['asuser'])}")
    print(f"median with a user / without: {med(timings['asuser']) / med(timings['plain']):.2f} (goal: within 1.1x)")
    print_footer("run_as.py", sys.argv[1:], version)


if __name__ == "__main__":
    main()
