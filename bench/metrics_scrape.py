"""Prometheus metrics with 10,000 jobs and 1,000,000 runs (issue 16): what a scrape costs, and what
the textfile writer costs an idle daemon.

Set-up: --jobs job files j0000.. (`command = "true"`, manual); a daemon is started once on the
empty store (migrations) and stopped; then --runs finished runs (one attempt row each) are
bulk-inserted with sqlite3 (history.populate: round-robin over the same job ids, so every job has
a `jobsd_runs_total` series per state). Then jobsd is started on that store with
`--metrics-listen 127.0.0.1:PORT` (a free port) and `--metrics-textfile HOME/metrics.prom`:

  start-up          spawn -> health SERVING, and spawn -> the daemon's 'jobsd ready' log line
                    (Metrics.load reads the run totals, a GROUP BY over every run, at start); the
                    same GROUP BY timed in this process on its own read connection
  (a) jobsctl       `jobsctl --socket S metrics` whole-process wall time (Python, grpc, typer
                    start-up included), --calls runs
  (b) GetMetrics    the RPC alone on one open channel
  (c) HTTP          GET http://127.0.0.1:PORT/metrics with urllib (a new connection each time)
  (d) daemon CPU    utime+stime of the daemon (/proc/PID/stat) before and after each scrape,
                    averaged per kind. Goal: < 200 ms per scrape
  sizes             the exposition text (bytes, lines, samples) and the textfile
  (e) idle CPU      the daemon's CPU % over --idle seconds with nothing to do but the textfile
                    writer (one write every 15 s: a window of 30 s holds exactly 2), then the same
                    store in a daemon started WITHOUT --metrics-textfile over the same length:
                    the difference is the writer's own cost. Goal: < 1 % with the writer

(a), (b) and (c) are interleaved, one of each per round, after 3 warm-up rounds. Times in ms
unless marked. Asserts no timing.

Usage: .venv/bin/python bench/metrics_scrape.py [--jobs 10000] [--runs 1000000] [--calls 20] [--idle 30]
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (Deadline, TimedDaemon, code_version, cpu_seconds, print_footer, short_tmpdir,  # noqa: E402
                     summary, venv_tool, write_jobs)
from history import create_schema, job_ids, populate  # noqa: E402

BUDGET_SECONDS = 180


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def idle_cpu(daemon: TimedDaemon, seconds: float, textfile: str | None) -> tuple[float, int]:
    """The daemon's CPU % over `seconds`, and how many times the textfile was replaced meanwhile
    (its inode changes on every atomic rename; polled every 0.25 s, a stat, nothing the daemon sees)."""
    def inode() -> int:
        try:
            return os.stat(textfile).st_ino if textfile else 0
        except FileNotFoundError:
            return 0
    writes, last = 0, inode()
    before, t0 = cpu_seconds(daemon.pid), time.monotonic()
    while time.monotonic() - t0 < seconds:
        time.sleep(0.25)
        now = inode()
        if now != last:
            writes, last = writes + 1, now
    used, took = cpu_seconds(daemon.pid) - before, time.monotonic() - t0
    return used / took * 100, writes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=1_000_000)
    ap.add_argument("--calls", type=int, default=20, help="scrapes of each kind (a), (b), (c)")
    ap.add_argument("--idle", type=float, default=30.0, help="seconds of each idle window (e); a multiple of 15")
    args = ap.parse_args()
    version = code_version()
    deadline = Deadline(BUDGET_SECONDS)

    import grpc
    from jobsd_lib.rpc import jobsd_pb2 as pb, jobsd_pb2_grpc as g

    home = short_tmpdir("jbm")
    daemon: TimedDaemon | None = None
    ctl = venv_tool("jobsctl")
    ids = job_ids(args.jobs)
    probe_job = ids[min(42, len(ids) - 1)]
    try:
        write_jobs(home, {j: 'command = "true"\n' for j in ids})
        create_schema(home)
        db_path = os.path.join(home, "db", "jobsd.sqlite3")
        load = populate(db_path, args.runs, args.jobs)
        print(f"store: {args.runs:,} runs over {args.jobs:,} jobs + 1 attempt row each, inserted in "
              f"{load['seconds']:.1f} s; {load['bytes'] / 2**20:.0f} MiB")

        port, textfile = free_port(), os.path.join(home, "metrics.prom")
        listen = ["--metrics-listen", f"127.0.0.1:{port}"]
        daemon = TimedDaemon(home, extra=[*listen, "--metrics-textfile", textfile]).start()
        start_a = (daemon.ready_seconds, daemon.log_ready_seconds())

        reader = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        t = time.perf_counter()
        totals = reader.execute("SELECT job_id, state, count(*) FROM runs GROUP BY job_id, state").fetchall()
        group_by = time.perf_counter() - t
        reader.close()

        channel = grpc.insecure_channel(f"unix:{daemon.sock}")
        stub = g.DaemonStub(channel)
        text = stub.GetMetrics(pb.GetMetricsRequest(), timeout=60).text
        series = f'jobsd_runs_total{{job="{probe_job}",state="succeeded"}}'
        if series not in text:
            raise RuntimeError(f"no {series} in the metrics:\n{text[:2000]}")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through $http_proxy
        url = f"http://127.0.0.1:{port}/metrics"
        cli_argv = [ctl, "--socket", daemon.sock, "metrics"]
        probe = subprocess.run(cli_argv, capture_output=True, timeout=60)
        if probe.returncode != 0 or series.encode() not in probe.stdout:
            raise RuntimeError(f"jobsctl metrics failed ({probe.returncode}): {probe.stderr.decode()[-2000:]}")

        http_body = b""

        def cli() -> None:
            subprocess.run(cli_argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, timeout=60)

        def rpc() -> None:
            stub.GetMetrics(pb.GetMetricsRequest(), timeout=60)

        def http() -> None:
            nonlocal http_body
            with opener.open(url, timeout=60) as answer:
                http_body = answer.read()

        kinds = {"(a) jobsctl metrics (whole process)": cli, "(b) GetMetrics RPC, open channel": rpc,
                 "(c) HTTP GET /metrics (urllib)": http}
        times: dict[str, list[float]] = {k: [] for k in kinds}
        cpu: dict[str, float] = {k: 0.0 for k in kinds}
        for _ in range(3):
            for call in kinds.values():
                call()
        for rounds in range(1, args.calls + 1):
            for name, call in kinds.items():
                c0, t0 = cpu_seconds(daemon.pid), time.perf_counter()
                call()
                times[name].append((time.perf_counter() - t0) * 1000)
                cpu[name] += cpu_seconds(daemon.pid) - c0
            if rounds < args.calls and deadline.left() < 2 * args.idle + 20:
                print(f"  (stopped scraping early: time budget; {rounds} rounds)")
                break
        textfile_bytes = os.path.getsize(textfile)
        rss = daemon.kb("VmHWM")

        time.sleep(2)  # the last scrape's work is over
        idle_with, writes_with = idle_cpu(daemon, args.idle, textfile)
        channel.close()
        daemon.stop()

        daemon = TimedDaemon(home, extra=listen).start()  # the same store, no textfile writer
        start_b = (daemon.ready_seconds, daemon.log_ready_seconds())
        time.sleep(5)  # start-up's background work (repair walk, overdue watch) is over
        idle_without, _ = idle_cpu(daemon, args.idle, None)
        daemon.stop()
        daemon = None

        body = text.encode()
        lines = text.count("\n")
        samples = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
        print()
        print(f"start-up with {args.runs:,} runs and {args.jobs:,} jobs (page cache warm: the store was just written):")
        print(f"  with the textfile writer: {start_a[0]:.2f} s to health SERVING, {start_a[1]:.2f} s to 'jobsd ready'")
        print(f"  without it (2nd start):   {start_b[0]:.2f} s to health SERVING, {start_b[1]:.2f} s to 'jobsd ready'")
        print(f"  the run totals' GROUP BY in this process: {group_by * 1000:.0f} ms ({len(totals):,} rows)")
        print()
        print(f"exposition: {len(body):,} bytes, {lines:,} lines, {samples:,} samples; HTTP body {len(http_body):,} "
              f"bytes; textfile {textfile_bytes:,} bytes")
        print(f"daemon peak RSS (VmHWM) after the scrapes: {rss / 1024:.0f} MiB")
        print()
        print(f"scrapes, {len(times[name])} rounds interleaved after 3 warm-up rounds (ms):")
        for name, v in times.items():
            print(f"  {name:38} {summary(v)}")
        print("daemon CPU per scrape (utime+stime delta around each call, mean; goal < 200 ms):")
        for name, v in times.items():
            print(f"  {name:38} {cpu[name] / len(v) * 1000:8.1f} ms")
        print()
        print(f"idle daemon CPU over {args.idle:g} s (goal < 1 % with the writer):")
        print(f"  with --metrics-textfile    {idle_with:6.2f} %  ({writes_with} textfile writes seen)")
        print(f"  without                    {idle_without:6.2f} %")
        print(f"  the writer's own cost      {idle_with - idle_without:6.2f} % "
              f"(~{(idle_with - idle_without) / 100 * args.idle / max(writes_with, 1) * 1000:.0f} ms CPU a write)")
        print_footer("metrics_scrape.py", sys.argv[1:], version)
        return 0
    finally:
        if daemon is not None:
            daemon.stop()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
