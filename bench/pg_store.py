"""The PostgreSQL store beside SQLite, in one run (issue 17): RunJob -> exec and cron window -> spawn.

A private PostgreSQL server (tests/pg_server.py: Debian's binaries, Unix socket only, fsync off as
in the tests; a production server with fsync on adds its WAL flush to every durable commit) and two
daemons on the same machine, one per store, each with the same two jobs:
  stamp   `sh -c 'date +%s%N > FILE'`: RunJob from this client, alternating between the daemons,
          each waiting for its stamp and its run's end; the time is client wall clock before
          RunJob -> the child's own `date` (as run_as.py).
  tick    `cron = "* * * * * *"` (every second), added by a reload after the RunJob phase: each
          window's scheduled instant -> the attempt's started_at (jobsd's timestamp right after
          the spawn), from GetRun.
Goals (issue 17): on PostgreSQL, RunJob -> exec p50 < 10 ms; trigger latency p50 < 10 ms, p99 <
30 ms. Asserts nothing. Needs the PostgreSQL server binaries; as root, runs initdb as `postgres`.

    .venv/bin/python bench/pg_store.py [--runs 200] [--windows 60]
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
from _common import Daemon, Deadline, code_version, print_footer, short_tmpdir, summary, write_jobs  # noqa: E402
from tests.pg_server import PgServer, pg_bindir  # noqa: E402

STORES = ("sqlite", "postgresql")
TICK = 'command = ["true"]\n[schedule]\ncron = "* * * * * *"\ntimezone = "UTC"\n'


def _reload(daemon: Daemon) -> None:
    import grpc

    from jobsd_lib.rpc import jobsd_pb2 as pb, jobsd_pb2_grpc as g

    with grpc.insecure_channel(f"unix:{daemon.sock}") as channel:
        g.DaemonStub(channel).Reload(pb.ReloadRequest(), timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200, help="RunJob calls per store")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--windows", type=int, default=60, help="cron windows measured (one a second)")
    opts = parser.parse_args()
    if pg_bindir() is None:
        sys.exit("pg_store.py needs PostgreSQL's server binaries (apt-get install postgresql)")
    version = code_version()
    server = PgServer(pg_bindir())
    daemons: dict[str, Daemon] = {}
    homes = []
    try:
        for store in STORES:
            home = short_tmpdir("jbp")
            homes.append(home)
            write_jobs(home, {"stamp": f'command = ["sh", "-c", "date +%s%N > {home}/stamp"]\n'})
            extra = ["--store", server.new_database()] if store == "postgresql" else []
            daemons[store] = Daemon(home, extra=extra).start()
        runjob = _run_jobs(daemons, opts.runs, opts.warmup)
        for daemon in daemons.values():  # then the cron phase alone: the tick job comes by a reload
            write_jobs(daemon.home, {"tick": TICK})
            _reload(daemon)
        started = time.time()
        time.sleep(opts.windows + 4)
        ticks = {store: _windows(daemon, started + 2, opts.windows) for store, daemon in daemons.items()}
    finally:
        for daemon in daemons.values():
            daemon.stop()
        for home in homes:
            shutil.rmtree(home, ignore_errors=True)
        server.stop()
    med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    print(f"RunJob -> the child's own clock, {opts.runs} runs per store, alternating (ms)")
    for store in STORES:
        print(f"  {store:<11} {summary(runjob[store])}")
    print(f"  postgresql / sqlite p50: {med(runjob['postgresql']) / med(runjob['sqlite']):.2f} (goal: p50 < 10 ms)")
    print(f"\ncron window -> spawn, every-second job, {opts.windows} windows per store (ms)")
    for store in STORES:
        print(f"  {store:<11} {summary(ticks[store])}")
    print(f"  postgresql / sqlite p50: {med(ticks['postgresql']) / med(ticks['sqlite']):.2f} "
          "(goal: p50 < 10 ms, p99 < 30 ms)")
    print_footer("pg_store.py", sys.argv[1:], version)


def _run_jobs(daemons: dict[str, Daemon], runs: int, warmup: int) -> dict[str, list[float]]:
    import grpc

    from jobsd_lib.rpc import jobsd_pb2 as pb, jobsd_pb2_grpc as g

    timings: dict[str, list[float]] = {store: [] for store in daemons}
    channels = {store: grpc.insecure_channel(f"unix:{d.sock}") for store, d in daemons.items()}
    try:
        for i in range(warmup + runs):
            for store in STORES if i % 2 else STORES[::-1]:
                stub, stamp = g.JobsStub(channels[store]), os.path.join(daemons[store].home, "stamp")
                if os.path.exists(stamp):
                    os.unlink(stamp)
                t0 = time.time_ns()
                run = stub.RunJob(pb.RunJobRequest(job="stamp"), timeout=10)
                deadline = Deadline(10)
                while not (os.path.exists(stamp) and os.path.getsize(stamp) > 0):
                    if deadline.passed():
                        raise RuntimeError(f"{store}: no stamp; log:\n{daemons[store].log_tail()}")
                    time.sleep(0.0005)
                child = int(open(stamp).read())
                while stub.GetRun(pb.GetRunRequest(run=run.ref), timeout=10).state in (
                        pb.RUN_STATE_QUEUED, pb.RUN_STATE_RUNNING):
                    if deadline.passed():
                        raise RuntimeError(f"{store}: {run.ref} did not end")
                    time.sleep(0.001)
                if i >= warmup:
                    timings[store].append((child - t0) / 1e6)
    finally:
        for channel in channels.values():
            channel.close()
    return timings


def _windows(daemon: Daemon, after: float, count: int) -> list[float]:
    """scheduled_at -> first attempt's started_at of the `count` tick windows from `after` on (ms)."""
    import grpc

    from jobsd_lib.rpc import jobsd_pb2 as pb, jobsd_pb2_grpc as g

    with grpc.insecure_channel(f"unix:{daemon.sock}") as channel:
        stub = g.JobsStub(channel)
        runs = stub.ListRuns(pb.ListRunsRequest(job="tick", limit=1000), timeout=30).runs
        windows = sorted((r.scheduled_at.ToNanoseconds(), r.ref) for r in runs
                         if r.scheduled_at.ToNanoseconds() / 1e9 >= after)[:count]
        full = [(at, stub.GetRun(pb.GetRunRequest(run=ref), timeout=10)) for at, ref in windows]  # with attempts
    skipped = [r.ref for _, r in full if not r.attempt_list]
    if skipped:
        print(f"  ({len(skipped)} tick windows did not run: {pb.RunState.Name(full[0][1].state)} ...)")
    return [(r.attempt_list[0].started_at.ToNanoseconds() - at) / 1e6 for at, r in full if r.attempt_list]


if __name__ == "__main__":
    main()
