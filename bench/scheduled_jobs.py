"""10,000 scheduled jobs: start-up time, memory, idle CPU, and list/status latency.

--jobs spec files j00000..j09999, each `command = ["true"]` with a `[schedule]`: a daily cron
`M H * * *`, timezone "UTC", the jobs spread round-robin over the minutes of the day except the
--quiet-minutes minutes from now on (~7 jobs a minute otherwise), so nothing fires while the
bench runs and every job has its own next run time. Phases, one daemon at a time:

  (0) baseline: the same --jobs files WITHOUT the [schedule] table (manual-only jobs), in their own
      home: what start-up, memory and listing cost with no scheduling at all.
  (1) first start, scheduled: empty store, so the daemon registers --jobs APScheduler jobs in its
      SQLAlchemyJobStore (DIR/db/schedule.sqlite3, one transaction), with their digests.
  (2) second start, scheduled: the same files and store (nothing to register: every stored job's
      digest matches its spec; no stored job is unpickled).
The daemon's own "schedule synced" log line (what sync did, and how long it took) is printed too.

Per start, from just before the process is spawned (polled every 5 ms, one fresh channel a try):
  socket       the socket file exists (the server binds after load, reconcile and schedule sync)
  ready        the standard grpc.health.v1 Check answers SERVING (a cheap RPC: jobsd sets it
               right after server.start())
  log ready    the daemon's own 'jobsd ready' log line (asctime, ms resolution)
Then, in this order: VmRSS and VmHWM from /proc/<pid>/status; the daemon's CPU (utime+stime from
/proc/<pid>/stat, all its threads) over --idle-seconds with no client (idle CPU % = CPU seconds /
wall seconds, of one core); ListJobs and GetHealth latency on one warm channel (median of --rpcs,
after one unmeasured call each); whole-process wall time of `jobsctl --socket S jobs list` and
`jobsctl --socket S daemon status` (median of --cli-runs); VmRSS/VmHWM again; SIGTERM stop time.
The idle CPU is measured in phase (2) only, the daemon's steady state after a restart (--idle-seconds
0 skips it).

Goals (issue 4): start-up < 5 s and not grown by scheduling; idle CPU < 2%. `uptime`'s load
average is printed with the figures: on 2 cores another process (a test suite) shows in them.
Times in seconds unless marked ms. Asserts no timing. Takes ~1.5-2 minutes (mostly the idle CPU
measurement and the ListJobs/jobsctl calls).

Usage: .venv/bin/python bench/scheduled_jobs.py [--jobs 10000] [--idle-seconds 30] [--rpcs 3]
                                                [--cli-runs 3] [--quiet-minutes 20] [--no-baseline]
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sqlite3
import subprocess
import sys
import time

from _common import cpu_seconds, code_version, print_footer, print_reproduce, Deadline, TimedDaemon, load_average, percentile, short_tmpdir, venv_tool, write_jobs

BUDGET_SECONDS = 175




def med(values: list[float]) -> float:
    return percentile(values, 50)


def spec_texts(n: int, scheduled: bool, quiet_minutes: int) -> dict[str, str]:
    """Job id -> TOML. Daily crons spread over the minutes of the day, skipping the quiet ones."""
    now = dt.datetime.now(dt.UTC)
    now_min = now.hour * 60 + now.minute
    slots = [m for m in range(1440) if not -2 <= (m - now_min + 720) % 1440 - 720 < quiet_minutes]
    out = {}
    for i in range(n):
        text = 'command = ["true"]\n'
        if scheduled:
            m = slots[i % len(slots)]
            text += f'\n[schedule]\ncron = "{m % 60} {m // 60} * * *"\ntimezone = "UTC"\n'
        out[f"j{i:05d}"] = text
    return out


def rpc_latencies(sock: str, calls: int) -> dict:
    import grpc
    from jobsd_lib.rpc import jobsd_pb2 as pb, jobsd_pb2_grpc as g

    out: dict = {"ListJobs": [], "GetHealth": []}
    with grpc.insecure_channel(f"unix:{sock}") as ch:
        daemon, jobs = g.DaemonStub(ch), g.JobsStub(ch)
        listed = jobs.ListJobs(pb.ListJobsRequest(), timeout=120)  # unmeasured: connects the channel
        health = daemon.GetHealth(pb.GetHealthRequest(), timeout=120)
        for _ in range(calls):
            t = time.perf_counter()
            jobs.ListJobs(pb.ListJobsRequest(), timeout=120)
            out["ListJobs"].append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            daemon.GetHealth(pb.GetHealthRequest(), timeout=120)
            out["GetHealth"].append((time.perf_counter() - t) * 1000)
    out["jobs"] = len(listed.jobs)
    out["with_next_run"] = sum(1 for j in listed.jobs if j.HasField("next_run_at"))
    out["bytes"] = listed.ByteSize()
    out["health"] = health
    return out


def cli_times(sock: str, runs: int) -> dict[str, list[float]]:
    jobsctl = venv_tool("jobsctl")
    cmds = {"jobs list": [jobsctl, "--socket", sock, "jobs", "list"],
            "daemon status": [jobsctl, "--socket", sock, "daemon", "status"]}
    out: dict[str, list[float]] = {k: [] for k in cmds}
    for _ in range(runs):
        for name, argv in cmds.items():
            t = time.perf_counter()
            cp = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
            out[name].append((time.perf_counter() - t) * 1000)
            if cp.returncode != 0:
                raise RuntimeError(f"jobsctl {name} failed: rc={cp.returncode} {cp.stderr[-400:]!r}")
    return out


def one_start(title: str, home: str, args: argparse.Namespace, idle: bool) -> dict:
    """Start, measure, stop one daemon on `home`; print and return the figures."""
    daemon = TimedDaemon(home)
    r: dict = {"title": title}
    log_from = os.path.getsize(daemon.log_path) if os.path.exists(daemon.log_path) else 0
    try:
        daemon.start()
        with open(daemon.log_path, errors="replace") as f:
            f.seek(log_from)
            r["synced"] = [line.split(": ", 1)[-1].strip() for line in f if "schedule synced" in line]
        r.update(socket=daemon.socket_seconds, ready=daemon.ready_seconds, log=daemon.log_ready_seconds(),
                 rss=daemon.kb("VmRSS"), hwm=daemon.kb("VmHWM"), pid=daemon.pid, load_start=load_average())
        if idle and args.idle_seconds > 0:
            time.sleep(1.0)  # let the start-up's last work (first heartbeat, GC) settle
            c0, t0 = cpu_seconds(daemon.pid), time.perf_counter()
            time.sleep(args.idle_seconds)
            c1, t1 = cpu_seconds(daemon.pid), time.perf_counter()
            r.update(idle_cpu_s=c1 - c0, idle_wall=t1 - t0, load_idle=load_average())
        r["rpc"] = rpc_latencies(daemon.sock, args.rpcs)
        r["cli"] = cli_times(daemon.sock, args.cli_runs)
        r.update(rss_after=daemon.kb("VmRSS"), hwm_after=daemon.kb("VmHWM"), load_end=load_average())
        t = time.perf_counter()
        daemon.stop()
        r["stop"] = time.perf_counter() - t
    finally:
        daemon.stop()
    report(r)
    return r


def report(r: dict) -> None:
    h, rpc, cli = r["rpc"]["health"], r["rpc"], r["cli"]
    print(f"\n{r['title']} (pid {r['pid']})")
    print(f"  start-up: socket {r['socket']:.2f} s, health SERVING {r['ready']:.2f} s, "
          f"log 'jobsd ready' {r['log']:.2f} s (load average {r['load_start']})")
    for line in r.get("synced", []):
        print(f"  daemon log: {line}")
    print(f"  GetHealth: jobs_active {h.jobs_active}, jobs_invalid {h.jobs_invalid}, scheduler {h.scheduler_state}; "
          f"ListJobs: {rpc['jobs']} jobs, {rpc['with_next_run']} with next_run_at, {rpc['bytes'] / 1024:.0f} KiB")
    print(f"  memory after start: VmRSS {r['rss']:,} kB, VmHWM {r['hwm']:,} kB; after the RPCs and CLI runs: "
          f"VmRSS {r['rss_after']:,} kB, VmHWM {r['hwm_after']:,} kB")
    if "idle_cpu_s" in r:
        pct = 100 * r["idle_cpu_s"] / r["idle_wall"]
        print(f"  idle CPU: {r['idle_cpu_s']:.2f} s over {r['idle_wall']:.1f} s = {pct:.2f} % of one core "
              f"(load average after {r['load_idle']})")
    print(f"  {'ms':32} {'n':>3} {'min':>8} {'median':>8} {'max':>8}")
    for name, v in (("ListJobs RPC (warm channel)", rpc["ListJobs"]), ("GetHealth RPC (warm channel)", rpc["GetHealth"]),
                    ("jobsctl jobs list (process)", cli["jobs list"]),
                    ("jobsctl daemon status (process)", cli["daemon status"])):
        print(f"  {name:32} {len(v):3d} {min(v):8.1f} {med(v):8.1f} {max(v):8.1f}")
    print(f"  SIGTERM stop: {r['stop']:.2f} s; load average at the end {r['load_end']}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--idle-seconds", type=float, default=30.0)
    ap.add_argument("--rpcs", type=int, default=3, help="ListJobs/GetHealth calls measured per start")
    ap.add_argument("--cli-runs", type=int, default=3, help="jobsctl runs of each command per start")
    ap.add_argument("--quiet-minutes", type=int, default=20, help="no cron window in this many minutes from now")
    ap.add_argument("--no-baseline", action="store_true", help="skip (0), the unscheduled baseline")
    args = ap.parse_args()
    deadline = Deadline(BUDGET_SECONDS)

    version = code_version()
    print(f"scheduled_jobs: {args.jobs:,} jobs; {os.cpu_count()} cpus, Python {sys.version.split()[0]}, "
          f"code {version}")
    print(f"load average before: {load_average()}")
    print_reproduce("scheduled_jobs.py", sys.argv[1:])
    homes: list[str] = []
    results = []
    try:
        if not args.no_baseline:
            home = short_tmpdir("jbu")
            homes.append(home)
            write_jobs(home, spec_texts(args.jobs, False, args.quiet_minutes))
            results.append(one_start(f"(0) baseline: {args.jobs:,} manual-only specs (no [schedule])", home, args,
                                     idle=False))
            shutil.rmtree(home, ignore_errors=True)

        home = short_tmpdir("jbj")
        homes.append(home)
        t = time.perf_counter()
        write_jobs(home, spec_texts(args.jobs, True, args.quiet_minutes))
        print(f"\n{args.jobs:,} scheduled spec files (daily crons, none in the next {args.quiet_minutes} min) written "
              f"in {time.perf_counter() - t:.1f} s to {home}/jobs")
        results.append(one_start(f"(1) first start: {args.jobs:,} scheduled specs, empty store", home, args, idle=False))
        path = os.path.join(home, "db", "schedule.sqlite3")
        db = sqlite3.connect(path)
        try:
            stored = db.execute("SELECT count(*) FROM apscheduler_jobs").fetchone()[0]
            digests = f'{db.execute("SELECT count(*) FROM jobsd_schedule_digests").fetchone()[0]:,}'
        except sqlite3.Error:
            digests = "no"  # a jobsd from before the digest table
        finally:
            db.close()
        wal = os.path.getsize(path + "-wal") if os.path.exists(path + "-wal") else 0
        print(f"  APScheduler job store after the first start: {stored:,} jobs, {digests} digests, "
              f"{os.path.getsize(path) / 2**20:.1f} MiB + {wal / 2**20:.1f} MiB -wal")
        if deadline.left() < args.idle_seconds + 40:
            print("!! time budget: idle CPU left out of the second start")
        results.append(one_start(f"(2) second start: same {args.jobs:,} specs and store", home, args,
                                 idle=deadline.left() >= args.idle_seconds + 40))

        print(f"\nsummary ({args.jobs:,} jobs; goals: start-up < 5 s and not grown by scheduling, idle CPU < 2 %):")
        print(f"  {'':44} {'ready s':>8} {'VmRSS kB':>10} {'VmHWM kB':>10} {'idle CPU %':>10} {'ListJobs ms':>11} "
              f"{'GetHealth ms':>12} {'jobs list ms':>12} {'status ms':>10}")
        for r in results:
            idle = f"{100 * r['idle_cpu_s'] / r['idle_wall']:10.2f}" if "idle_cpu_s" in r else f"{'-':>10}"
            print(f"  {r['title'].split(':')[0]:44} {r['ready']:8.2f} {r['rss']:10,} {r['hwm_after']:10,} {idle} "
                  f"{med(r['rpc']['ListJobs']):11.1f} {med(r['rpc']['GetHealth']):12.1f} "
                  f"{med(r['cli']['jobs list']):12.1f} {med(r['cli']['daemon status']):10.1f}")
        print("  (VmRSS right after start; VmHWM at the end of the phase; medians)")
    finally:
        for home in homes:
            shutil.rmtree(home, ignore_errors=True)
    print_footer("scheduled_jobs.py", sys.argv[1:], version)
    return 0


if __name__ == "__main__":
    sys.exit(main())
