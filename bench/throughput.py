"""Throughput: 1,000 runs of `true` with 4 slots, jobsd vs task-spooler (tsp).

jobsd: 1,000 jobs j0000..j0999 (each `command = ["true"]`), daemon started with
--max-concurrent-runs 4. One client submits RunJob for every job back to back (sequential
blocking calls on one channel), then polls ListRuns(states=queued|running|retrying, limit=1)
every 20 ms until nothing is active. runs/s = 1000 / (first submit -> all finished seen).
The daemon's own timestamps (first queued_at -> last finished_at) are shown too, and its peak
RSS (VmHWM in /proc/<pid>/status) at the end.

tsp: a private server (TS_SOCKET and TMPDIR in a temp dir) with 4 slots (`tsp -S 4`), 1,000
`tsp true` client invocations back to back, then `tsp -w` on the last job and `tsp -l` polled
until all 1,000 are finished. Note the submissions differ in kind: each tsp submission is a
process (fork+exec of the small C client), each jobsd submission an in-process gRPC call; and a
tsp job is run by its own (forked) client process, whereas jobsd spawns every child itself
and records each run durably (SQLite synchronous=FULL, artifacts, receipt).

Usage: .venv/bin/python bench/throughput.py [--runs 1000] [--slots 4] [--inflight 1] [--only jobsd|tsp] [--keep]
       [--user NAME]   (every job with `user = NAME`: as root, each run through setpriv; issue 18)
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time

from _common import Daemon, Deadline, repro_command, short_tmpdir, write_jobs

BUDGET_SECONDS = 160
ACTIVE = ("RUN_STATE_QUEUED", "RUN_STATE_RUNNING", "RUN_STATE_RETRYING")


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (its own threads, not its reaped children)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_jobsd(runs: int, slots: int, inflight: int, deadline: Deadline, keep: bool = False, user: str = "") -> dict:
    import grpc
    from jobsd_lib.rpc import jobsd_pb2 as pb, jobsd_pb2_grpc as g

    home = short_tmpdir("jbt")
    daemon = Daemon(home, max_concurrent=slots)
    out: dict = {}
    try:
        jobs = [f"j{i:04d}" for i in range(runs)]
        as_user = f'user = "{user}"\ncwd = "/"\n' if user else ""  # --user: each run through setpriv
        if user:
            os.chmod(home, 0o711)
        write_jobs(home, {j: 'command = ["true"]\n' + as_user for j in jobs})
        daemon.start(timeout=60)
        out["ready_ms"] = daemon.ready_seconds * 1000
        out["rss_idle"] = daemon.proc_status("VmRSS")["VmRSS"]
        ch = grpc.insecure_channel(f"unix:{daemon.sock}")
        stub = g.JobsStub(ch)
        stub.ListJobs(pb.ListJobsRequest())
        active = [pb.RunState.Value(s) for s in ACTIVE]

        cpu0 = proc_cpu_seconds(daemon.pid)
        t0 = time.perf_counter()
        if inflight <= 1:
            for j in jobs:
                stub.RunJob(pb.RunJobRequest(job=j), timeout=30)
                if deadline.left() < 40:
                    raise RuntimeError("time budget exhausted while submitting to jobsd")
        else:  # keep `inflight` RunJob calls outstanding on the one channel
            pending = []
            for j in jobs:
                pending.append(stub.RunJob.future(pb.RunJobRequest(job=j), timeout=30))
                if len(pending) >= inflight:
                    pending.pop(0).result()
                if deadline.left() < 40:
                    raise RuntimeError("time budget exhausted while submitting to jobsd")
            for f in pending:
                f.result()
        t_sub = time.perf_counter()
        polls = 0
        while True:
            polls += 1
            if not stub.ListRuns(pb.ListRunsRequest(states=active, limit=1)).runs:
                break
            if deadline.left() < 30:
                raise RuntimeError("time budget exhausted waiting for jobsd runs")
            time.sleep(0.02)
        t_done = time.perf_counter()
        out["cpu_s"] = proc_cpu_seconds(daemon.pid) - cpu0

        out["rss_peak"] = daemon.proc_status("VmHWM")["VmHWM"]
        out["rss_end"] = daemon.proc_status("VmRSS")["VmRSS"]
        all_runs, cursor = [], ""
        while True:
            resp = stub.ListRuns(pb.ListRunsRequest(limit=1000, cursor=cursor))
            all_runs += resp.runs
            cursor = resp.next_cursor
            if not cursor:
                break
        ch.close()
        states: dict[str, int] = {}
        for r in all_runs:
            states[pb.RunState.Name(r.state)] = states.get(pb.RunState.Name(r.state), 0) + 1
        first_q = min(r.queued_at.ToNanoseconds() for r in all_runs)
        last_f = max(r.finished_at.ToNanoseconds() for r in all_runs)
        out.update(submit_s=t_sub - t0, total_s=t_done - t0, polls=polls, states=states,
                   daemon_span_s=(last_f - first_q) / 1e9, n=len(all_runs))
        return out
    finally:
        daemon.stop()
        if keep:
            print(f"  (--keep: left {home}; remove it when done)")
        else:
            shutil.rmtree(home, ignore_errors=True)


def bench_tsp(runs: int, slots: int, deadline: Deadline) -> dict:
    tsp = shutil.which("tsp") or shutil.which("ts")
    if tsp is None:
        raise RuntimeError("task-spooler not installed: apt-get update && apt-get install -y task-spooler")
    d = short_tmpdir("jbq")
    env = dict(os.environ, TS_SOCKET=os.path.join(d, "ts.sock"), TMPDIR=d, TS_MAXFINISHED=str(runs * 2),
               TS_MAXCONN=str(runs * 2), TS_SLOTS=str(slots))
    env.pop("TS_ONFINISH", None)
    env.pop("TS_ENV", None)

    def ts(*a: str, check: bool = True) -> str:
        cp = subprocess.run([tsp, *a], env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        if check and cp.returncode != 0:
            raise RuntimeError(f"tsp {' '.join(a)} exited {cp.returncode}: {cp.stderr}")
        return cp.stdout

    out: dict = {"binary": tsp, "version": subprocess.run([tsp, "-V"], capture_output=True, text=True).stdout.splitlines()[0]}
    try:
        ts("-S", str(slots))  # starts the private server and sets its slots
        out["slots"] = ts("-S").strip()
        t0 = time.perf_counter()
        last = ""
        for _ in range(runs):
            last = ts("true").strip()
            if deadline.left() < 30:
                raise RuntimeError("time budget exhausted while submitting to tsp")
        t_sub = time.perf_counter()
        subprocess.run([tsp, "-w", last], env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
        polls = 0
        while True:
            polls += 1
            listing = ts("-l").splitlines()[1:]
            finished = sum(1 for line in listing if line.split()[1:2] == ["finished"])
            if finished >= runs:
                break
            if deadline.left() < 10:
                raise RuntimeError(f"time budget exhausted waiting for tsp ({finished}/{runs} finished)")
            time.sleep(0.02)
        t_done = time.perf_counter()
        bad = sum(1 for line in listing if line.split()[1:2] == ["finished"] and line.split()[3:4] != ["0"])
        out.update(submit_s=t_sub - t0, total_s=t_done - t0, polls=polls, finished=finished, nonzero=bad)
        return out
    finally:
        subprocess.run([tsp, "-K"], env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        shutil.rmtree(d, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--slots", type=int, default=4)
    ap.add_argument("--only", choices=("jobsd", "tsp"), help="run one side only")
    ap.add_argument("--keep", action="store_true",
                    help="leave jobsd's home in /tmp: removing its ~8,000 files slows the file creation of "
                         "a run in the next minutes on ext4 without a journal (bench/README.md)")
    ap.add_argument("--user", default="",
                    help="jobsd: every job runs as this user (issue 18; needs root): compare with the same run without")
    ap.add_argument("--inflight", type=int, default=1,
                    help="jobsd: RunJob calls kept outstanding (1 = sequential, the default)")
    args = ap.parse_args()
    deadline = Deadline(BUDGET_SECONDS)
    print(f"throughput: {args.runs} runs of `true`, {args.slots} slots, {os.cpu_count()} cpus")
    print("reproduce:", repro_command("throughput.py", sys.argv[1:]))

    if args.only in (None, "jobsd"):
        j = bench_jobsd(args.runs, args.slots, args.inflight, deadline, args.keep, args.user)
        who = f", each as user {args.user}" if args.user else ""
        print(f"\njobsd (--max-concurrent-runs {args.slots}, {args.runs} jobs, one RunJob each{who})")
        print(f"  daemon ready with {args.runs} jobs in {j['ready_ms']:.0f} ms; RSS then {j['rss_idle']}")
        how = "back to back" if args.inflight <= 1 else f"with {args.inflight} calls in flight"
        print(f"  submit {args.runs} RunJob {how}: {j['submit_s']:.2f} s ({args.runs / j['submit_s']:.0f} calls/s)")
        print(f"  first submit -> all finished: {j['total_s']:.2f} s  => {args.runs / j['total_s']:.1f} runs/s")
        print(f"  daemon's own span (first queued_at -> last finished_at): {j['daemon_span_s']:.2f} s "
              f"=> {args.runs / j['daemon_span_s']:.1f} runs/s")
        print(f"  daemon CPU (utime+stime, its own threads) during the test: {j['cpu_s']:.2f} s "
              f"= {j['cpu_s'] / args.runs * 1000:.2f} ms per run")
        print(f"  runs recorded: {j['n']}, by state: {j['states']}")
        print(f"  daemon peak RSS (VmHWM): {j['rss_peak']}; RSS at end: {j['rss_end']}")

    if args.only in (None, "tsp"):
        t = bench_tsp(args.runs, args.slots, deadline)
        print(f"\ntask-spooler ({t['binary']}, {t['version']}; slots {t['slots']})")
        print(f"  submit {args.runs} `tsp true` back to back: {t['submit_s']:.2f} s ({args.runs / t['submit_s']:.0f} submits/s)")
        print(f"  first submit -> all finished: {t['total_s']:.2f} s  => {args.runs / t['total_s']:.1f} runs/s")
        print(f"  finished: {t['finished']}, with non-zero exit: {t['nonzero']}")

    if args.only is None:
        print(f"\nratio (runs/s, first submit -> all finished): jobsd / tsp = {t['total_s'] / j['total_s']:.2f}")
    print("\nreproduce:", repro_command("throughput.py", sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
