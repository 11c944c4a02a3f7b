"""The operator's loop (issue 16): `jobsctl check` against `jobsctl jobs list`, and how soon an
overdue job is reported.

1. --jobs jobs (`true`, manual), a third of them expecting a success within 1h, one run each:
   wall time of `jobsctl check` and of `jobsctl jobs list` (the peer: the same one ListJobs call),
   --calls of each, interleaved. Goal: check within 1.1x of list.
2. --expecting jobs with `[expect] success_within = "3s"` that never run: for each, the time from
   its deadline (first seen + 3 s, as recorded) until a WatchEvents follower receives its
   `job.overdue` event, and until the daemon logged it (right after the commit). Goal: < 2 s.
   With the daemon's CPU over the 10 s after the last event (idle: goal < 2 %).
Asserts nothing.

    .venv/bin/python bench/operator_loop.py [--jobs 2000] [--calls 10] [--expecting 10000]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (Daemon, Deadline, code_version, cpu_seconds, print_footer, short_tmpdir, summary,  # noqa: E402
                     venv_tool, write_jobs)


def check_vs_list(jobs: int, calls: int) -> tuple[list[float], list[float]]:
    home = short_tmpdir("jbo")
    write_jobs(home, {f"j{i:05d}": 'command = "true"\n' + ('[expect]\nsuccess_within = "1h"\n' if i % 3 == 0 else "")
                      for i in range(jobs)})
    daemon = Daemon(home).start()
    ctl = venv_tool("jobsctl")
    try:
        import grpc

        from jobsd_lib.rpc import jobsd_pb2 as pb, jobsd_pb2_grpc as g

        with grpc.insecure_channel(f"unix:{daemon.sock}") as channel:
            stub = g.JobsStub(channel)
            refs = [stub.RunJob(pb.RunJobRequest(job=f"j{i:05d}"), timeout=10).ref for i in range(0, jobs, 10)]
            deadline = Deadline(120)
            while any(stub.GetRun(pb.GetRunRequest(run=r), timeout=10).state == pb.RUN_STATE_QUEUED for r in refs[-5:]):
                if deadline.passed():
                    raise RuntimeError("runs did not finish")
                time.sleep(0.05)
        timings: dict[str, list[float]] = {"check": [], "list": []}
        for _ in range(calls):
            for name, args in (("check", ["check"]), ("list", ["jobs", "list"])):
                started = time.perf_counter()
                subprocess.run([ctl, "--socket", daemon.sock, *args], capture_output=True, timeout=60)
                timings[name].append((time.perf_counter() - started) * 1000)
        return timings["check"], timings["list"]
    finally:
        daemon.stop()
        shutil.rmtree(home, ignore_errors=True)


def overdue_latency(expecting: int) -> tuple[list[float], float]:
    home = short_tmpdir("jbo")
    write_jobs(home, {f"e{i:05d}": 'command = "true"\n[expect]\nsuccess_within = "3s"\n' for i in range(expecting)})
    daemon = Daemon(home).start()
    try:
        import grpc

        from jobsd_lib.rpc import jobsd_pb2 as pb, jobsd_pb2_grpc as g

        with grpc.insecure_channel(f"unix:{daemon.sock}") as channel:
            stub = g.JobsStub(channel)

            from datetime import datetime

            late = []  # a follower's receive time minus the job's deadline: what a client sees
            for event in stub.WatchEvents(pb.WatchEventsRequest(follow=True, last=0), timeout=120):
                if event.type == "job.overdue":
                    late.append((time.time() - datetime.fromisoformat(event.attrs["since"]).timestamp()) * 1000)
                    if len(late) == expecting:
                        break
            before = cpu_seconds(daemon.pid)
            time.sleep(10)  # idle: no deadline left, nothing to do
            idle = (cpu_seconds(daemon.pid) - before) / 10 * 100
        since = datetime.fromisoformat(event.attrs["since"]).timestamp()  # every job has the same deadline here
        logged = []  # the daemon logs each job's line once its event is committed
        for line in open(daemon.log_path):
            if " is overdue: " in line:
                stamp = time.mktime(time.strptime(line[:19], "%Y-%m-%d %H:%M:%S")) + int(line[20:23]) / 1000
                logged.append((stamp - since) * 1000)
        return late, logged, idle
    finally:
        daemon.stop()
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--expecting", type=int, default=10000)
    opts = parser.parse_args()
    version = code_version()
    check, listed = check_vs_list(opts.jobs, opts.calls)
    med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    print(f"{opts.jobs} jobs, {opts.calls} calls each, interleaved (ms, wall, jobsctl process included)")
    print(f"  jobsctl check      {summary(check)}")
    print(f"  jobsctl jobs list  {summary(listed)}")
    print(f"median check / median list: {med(check) / med(listed):.2f} (goal: within 1.1x)")
    late, logged, idle = overdue_latency(opts.expecting)
    print(f"{opts.expecting} jobs expecting a success within 3s, none running, all with the same deadline")
    print(f"  deadline -> event committed (daemon log, ms)        {summary(logged)}")
    print(f"  deadline -> a WatchEvents follower has it (ms)      {summary(late)}")
    print(f"  daemon CPU over 10 s idle afterwards: {idle:.2f} % (goal < 2 %)")
    print_footer("operator_loop.py", sys.argv[1:], version)


if __name__ == "__main__":
    main()
