"""Daemon memory and file descriptors before and after 10,000 runs of a trivial job.

20 jobs (`true`) are kept busy: the bench follows WatchEvents and, for every `run.finished`, submits
the next run of that job (the daemon refuses a second active run of a job with job_busy; a refusal
is counted and retried on the job's next event or after 50 ms). The daemon runs with its default
--max-concurrent-runs unless --slots is given. Every run is retained (no gc), so the store and the
run folders grow; what should not grow is the daemon's descriptors, and its memory only slowly.

  warm-up   one priming run when the event log is empty, --warmup runs (default 200), then "before"
  measured  --runs runs (default 10,000) in --checkpoints equal parts (default 4), a snapshot after
            each part once all its runs finished; "after" is the last one
Taken each time from /proc/<daemon pid>: VmRSS, VmHWM (peak RSS), RssAnon, threads, and the open
descriptors (`ls /proc/<pid>/fd`) by kind (socket, pipe, anon_inode, file).

Usage: .venv/bin/python bench/leaks.py [--runs 10000] [--warmup 200] [--jobs 20] [--slots N]
"""
from __future__ import annotations

import argparse
import collections
import os
import shutil
import sys
import time

from _common import Daemon, Deadline, repro_command, short_tmpdir, write_jobs

BUDGET_SECONDS = 165


def snapshot(daemon: Daemon) -> dict[str, object]:
    status = daemon.proc_status("VmRSS", "VmHWM", "RssAnon", "Threads")
    kinds: collections.Counter[str] = collections.Counter()
    fd_dir = f"/proc/{daemon.pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        kinds[target.split(":", 1)[0] if ":" in target and not target.startswith("/") else "file"] += 1
    kb = lambda k: int(str(status[k]).split()[0])  # noqa: E731 - "70300 kB"
    return {"rss": kb("VmRSS"), "hwm": kb("VmHWM"), "anon": kb("RssAnon"), "threads": int(status["Threads"]),
            "fds": sum(kinds.values()), "kinds": dict(sorted(kinds.items()))}


class Driver:
    """Keeps every job busy until `total` runs are submitted; counts finished runs from WatchEvents."""

    def __init__(self, stub, pb, jobs: list[str]) -> None:  # noqa: ANN001
        self.stub, self.pb, self.jobs = stub, pb, jobs
        self.submitted = self.finished = self.busy = 0
        self.total = 0
        self.seq = self._last_seq()  # WatchEvents resumes after it: no finished run is missed
        if not self.seq:  # an empty log: after_seq=0 would mean "from when the stream opens", a race
            ref = stub.RunJob(pb.RunJobRequest(job=jobs[0]), timeout=30).ref
            while not stub.GetRun(pb.GetRunRequest(run=ref)).HasField("finished_at"):
                time.sleep(0.01)
            self.seq = self._last_seq()

    def _last_seq(self) -> int:
        last = list(self.stub.WatchEvents(self.pb.WatchEventsRequest(last=1), timeout=10))
        return last[-1].seq if last else 0

    def submit(self, job: str) -> None:
        import grpc
        if self.submitted >= self.total:
            return
        for _ in range(100):
            try:
                self.stub.RunJob(self.pb.RunJobRequest(job=job), timeout=30)
                self.submitted += 1
                return
            except grpc.RpcError as err:
                if err.code() != grpc.StatusCode.ABORTED:
                    raise
                self.busy += 1
                time.sleep(0.05)
        raise RuntimeError(f"{job}: job_busy 100 times in a row")

    def batch(self, count: int, deadline: Deadline) -> float:
        """Submit `count` runs and wait for all of them to finish; returns the seconds it took."""
        t0 = time.perf_counter()
        if deadline.left() < 15:
            print(f"!! time budget: skipping {count} runs")
            return 0.0
        self.total += count
        events = self.stub.WatchEvents(self.pb.WatchEventsRequest(after_seq=self.seq, follow=True),
                                       timeout=deadline.left() + 10)
        for job in self.jobs:
            self.submit(job)
        try:
            for ev in events:
                self.seq = ev.seq
                if ev.type != "run.finished":
                    continue
                self.finished += 1
                if self.finished >= self.total:
                    break
                self.submit(ev.job)
                if self.submitted < self.total and deadline.left() < 15:
                    print(f"!! time budget: no more submissions after {self.submitted} runs")
                    self.total = self.submitted
        finally:
            events.cancel()
        return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--jobs", type=int, default=20)
    ap.add_argument("--slots", type=int, default=None, help="--max-concurrent-runs of the daemon")
    ap.add_argument("--checkpoints", type=int, default=4, help="snapshots taken during the measured runs")
    args = ap.parse_args()
    deadline = Deadline(BUDGET_SECONDS)

    import grpc
    from jobsd_lib.rpc import jobsd_pb2 as pb, jobsd_pb2_grpc as g

    print(f"leaks: {args.runs} runs (+{args.warmup} warm-up) of `true` over {args.jobs} jobs, {os.cpu_count()} cpus; "
          f"uptime: {os.popen('uptime').read().strip()}")
    print("reproduce:", repro_command("leaks.py", sys.argv[1:]))
    home = short_tmpdir("jbm")
    daemon = Daemon(home, max_concurrent=args.slots)
    try:
        jobs = [f"l{i:03d}" for i in range(args.jobs)]
        write_jobs(home, {j: 'command = ["true"]\n' for j in jobs})
        daemon.start()
        ch = grpc.insecure_channel(f"unix:{daemon.sock}")
        stub, dstub = g.JobsStub(ch), g.DaemonStub(ch)
        start = snapshot(daemon)
        driver = Driver(stub, pb, jobs)
        warm_s = driver.batch(args.warmup, deadline)
        warmed = driver.finished
        before = snapshot(daemon)
        points, run_s = [], 0.0
        for k in range(args.checkpoints):  # the measured runs in equal parts, a snapshot after each
            part = args.runs * (k + 1) // args.checkpoints - args.runs * k // args.checkpoints
            run_s += driver.batch(part, deadline)
            points.append((f"after {driver.finished - warmed:,}", snapshot(daemon)))
        health = dstub.GetHealth(pb.GetHealthRequest())
        after = points[-1][1]
        ch.close()
        measured = driver.finished - warmed
        states = collections.Counter()
        ch = grpc.insecure_channel(f"unix:{daemon.sock}")
        cursor = ""
        while True:  # every run's outcome (newest first, 1000 a page)
            page = g.JobsStub(ch).ListRuns(pb.ListRunsRequest(limit=1000, cursor=cursor))
            states.update(pb.RunState.Name(r.state) for r in page.runs)
            if not page.next_cursor:
                break
            cursor = page.next_cursor
        ch.close()

        print(f"\njobsd pid {daemon.pid}; warm-up {args.warmup} runs in {warm_s:.1f} s; measured {measured} runs in "
              f"{run_s:.1f} s ({measured / run_s:.0f} runs/s); job_busy refusals retried: {driver.busy}")
        print(f"after: runs_active={health.runs_active} runs_queued={health.runs_queued}; all runs by state: "
              f"{dict(states)}; store {health.store_bytes / 1e6:.1f} MB")
        print(f"\n  {'':12} {'VmRSS kB':>10} {'VmHWM kB':>10} {'RssAnon kB':>11} {'threads':>8} {'fds':>5}  fds by kind")
        for name, s in (("started", start), ("before", before), *points):
            print(f"  {name:12} {s['rss']:10,} {s['hwm']:10,} {s['anon']:11,} {s['threads']:8} {s['fds']:5}  {s['kinds']}")
        grow = after["rss"] - before["rss"]
        print(f"\nRSS growth over the measured runs: {grow:+,} kB ({grow * 1024 / max(measured, 1):+.0f} bytes a run); "
              f"VmHWM {after['hwm'] - before['hwm']:+,} kB; fds {after['fds'] - before['fds']:+d} "
              f"({'back to the baseline' if after['fds'] == before['fds'] else 'NOT back to the baseline'})")
        print("\nreproduce:", repro_command("leaks.py", sys.argv[1:]))
        return 0
    finally:
        daemon.stop()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
