"""`jobs history ID --limit 20` (ListRuns) latency with 1,000,000 runs in the store.

Set-up: a daemon is started once on an empty home (so the migrations create the schema) and
stopped; then 1,000,000 finished runs are bulk-inserted straight into DIR/db/jobsd.sqlite3 with
the sqlite3 module (executemany, one transaction), spread round-robin over 100 jobs
(j0000..j0099, so 10,000 runs each and `id` grows with `n` inside a job, as the daemon writes
them), with one `attempts` row per run and `job_counters.last_n` set so the next RunJob numbers
on. States: ~94% succeeded, ~5% failed (exit 1), ~1% timed_out; queued/started/finished times
spread over the past year. No `events` rows and no run folders are made for these runs
(ListRuns reads neither). Then the daemon is started again on that store and measured:

  ListRuns first page     ListRuns(job, limit=20), no cursor, N calls on one warm channel
  ListRuns page ~50       ListRuns(job, limit=20, cursor) with the cursor reached by following
                          next_cursor ~50 pages from the top (~1,000 runs deep)
  ListRuns last page      ListRuns(job, limit=20, cursor) with the cursor just above the job's
                          oldest runs (~10,000 runs deep: the worst case of a job's history)
  GetRun (one run)        GetRun(job/n): a near-empty RPC on the same path (parse, one run + its
                          attempts, convert). "server-side est." = median ListRuns - median GetRun
                          + the in-process cost of a one-run lookup (see below), i.e. roughly
                          what ListRuns costs beyond the gRPC/Unix-socket round trip.
  in-process store        Store.list_runs(...) + run_pb(...) timed in this process on its own
                          read connection to the same SQLite file (the daemon's SQL and
                          conversion code, no gRPC): a direct estimate of the server-side work.
  jobsctl whole process   `jobsctl jobs history j0042 --limit 20` wall time, M runs (start-up
                          included: Python, grpc, typer).

All calls are sequential and interleaved (first page, page ~50, last page, GetRun, ... in
rotation) so drift hits them all alike. Client-observed times in ms. Asserts no timing.

`--jobs 1` puts all 1,000,000 runs in one job: the worst case for the last page. A per-job page
seeks the runs_by_job (job_id, n DESC) index at the cursor's run number (the cursor's id is
turned into its n first), so a deep page costs what the first page costs.

Usage: .venv/bin/python bench/history.py [--runs 1000000] [--jobs 100] [--calls 500] [--cli-runs 20]
                                         [--deep-pages 50] [--no-attempts]
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import time

from _common import Daemon, Deadline, percentile, repro_command, short_tmpdir, venv_tool, write_jobs

BUDGET_SECONDS = 220
YEAR = 365 * 86400.0
JOB_FMT = "j{:04d}"


def job_ids(jobs: int) -> list[str]:
    return [JOB_FMT.format(i) for i in range(jobs)]


def create_schema(home: str) -> None:
    """Start a daemon once on `home` so it creates and migrates its store, then stop it."""
    daemon = Daemon(home)
    try:
        daemon.start(timeout=60)
    finally:
        daemon.stop()


def populate(db_path: str, runs: int, jobs: int, attempts: bool = True, seed: int = 1) -> dict:
    """Bulk-insert `runs` finished runs (round-robin over `jobs` jobs) into an existing, migrated store.

    Returns figures about the load (seconds, file size). The daemon must not be running.
    """
    rng = random.Random(seed)
    ids = job_ids(jobs)
    now = time.time()
    start = now - YEAR
    step = YEAR / runs
    digest = "sha256:" + "0" * 16
    t0 = time.perf_counter()
    db = sqlite3.connect(db_path, isolation_level=None)
    try:
        db.execute("PRAGMA synchronous=OFF")
        db.execute("PRAGMA cache_size=-1048576")  # 1 GiB page cache for the load only
        base_id = db.execute("SELECT coalesce(max(id), 0) FROM runs").fetchone()[0]
        if db.execute("SELECT count(*) FROM runs").fetchone()[0]:
            raise RuntimeError(f"{db_path}: runs is not empty")

        def run_rows():
            for i in range(runs):
                job = ids[i % jobs]
                n = i // jobs + 1
                r = rng.random()
                queued = start + i * step
                started = queued + 0.002
                finished = started + 0.5 + r
                if r < 0.94:
                    state, code = "succeeded", 0
                elif r < 0.99:
                    state, code = "failed", 1
                else:
                    state, code = "timed_out", None
                yield (base_id + i + 1, job, n, state, "cron" if i % 3 else "manual", None, "", 1, 1, code,
                       9 if code is None else None, queued if i % 3 else None, queued, started, finished, None,
                       digest, None)

        def attempt_rows():
            r2 = random.Random(seed)
            for i in range(runs):
                r = r2.random()
                queued = start + i * step
                started = queued + 0.002
                finished = started + 0.5 + r
                code = 0 if r < 0.94 else (1 if r < 0.99 else None)
                yield (base_id + i + 1, 1, started, finished, code, 9 if code is None else None, 10000 + i % 30000,
                       100 + i % 4000, 0, "", 1 if code is None else 0)

        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT INTO runs (id, job_id, n, state, trigger, wait_reason, reason, attempts, max_attempts, "
                       "exit_code, signal, scheduled_at, queued_at, started_at, finished_at, next_attempt_at, "
                       "spec_digest, pgid) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", run_rows())
        if attempts:
            db.executemany("INSERT INTO attempts (run_id, number, started_at, finished_at, exit_code, signal, pid, "
                           "output_bytes, dropped_bytes, error, timed_out) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                           attempt_rows())
        last_n = {job: 0 for job in ids}
        for i in range(runs):
            last_n[ids[i % jobs]] = i // jobs + 1
        db.executemany("INSERT INTO job_counters (job_id, last_n) VALUES (?, ?) "
                       "ON CONFLICT (job_id) DO UPDATE SET last_n = excluded.last_n",
                       [(j, n) for j, n in last_n.items() if n])
        db.execute("COMMIT")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    size = sum(os.path.getsize(p) for p in (db_path, db_path + "-wal") if os.path.exists(p))
    return {"seconds": time.perf_counter() - t0, "bytes": size, "last_n": last_n}


def fmt_row(name: str, v: list[float]) -> str:
    return (f"  {name:42} {len(v):5d} {min(v):8.2f} {percentile(v, 50):8.2f} {percentile(v, 90):8.2f} "
            f"{percentile(v, 99):8.2f} {max(v):8.2f}")


def header() -> str:
    return f"  {'(ms)':42} {'n':>5} {'min':>8} {'median':>8} {'p90':>8} {'p99':>8} {'max':>8}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1_000_000)
    ap.add_argument("--jobs", type=int, default=100)
    ap.add_argument("--calls", type=int, default=500, help="RPC calls per measured kind")
    ap.add_argument("--cli-runs", type=int, default=20)
    ap.add_argument("--deep-pages", type=int, default=50)
    ap.add_argument("--no-attempts", action="store_true", help="insert runs only, no attempts rows")
    args = ap.parse_args()
    deadline = Deadline(BUDGET_SECONDS)

    import grpc
    from jobsd_lib.refs import decode_cursor, encode_cursor
    from jobsd_lib.rpc import jobsd_pb2 as pb, jobsd_pb2_grpc as g

    home = short_tmpdir("jbh")
    daemon: Daemon | None = None
    job = JOB_FMT.format(min(42, args.jobs - 1))
    try:
        write_jobs(home, {j: 'command = ["true"]\n' for j in job_ids(args.jobs)})
        create_schema(home)
        db_path = os.path.join(home, "db", "jobsd.sqlite3")
        load = populate(db_path, args.runs, args.jobs, attempts=not args.no_attempts)
        print(f"store: {args.runs:,} runs over {args.jobs} jobs"
              f"{'' if args.no_attempts else ' + 1 attempt row each'} inserted in {load['seconds']:.1f} s; "
              f"{db_path} = {load['bytes'] / 2**20:.0f} MiB")

        daemon = Daemon(home)
        daemon.start(timeout=120)
        print(f"daemon ready (ListJobs answered) {daemon.ready_seconds:.2f} s after spawn")

        ch = grpc.insecure_channel(f"unix:{daemon.sock}")
        jobs_stub = g.JobsStub(ch)
        first = jobs_stub.ListRuns(pb.ListRunsRequest(job=job, limit=20), timeout=30)
        last_n = load["last_n"][job]
        assert len(first.runs) == 20 and first.runs[0].n == last_n, (len(first.runs), first.runs[0].n, last_n)
        assert [r.n for r in first.runs] == list(range(last_n, last_n - 20, -1))

        # follow next_cursor down the history
        cursor, pages = first.next_cursor, 1  # cursor: the start of page `pages` (0-based)
        while pages < args.deep_pages:
            page = jobs_stub.ListRuns(pb.ListRunsRequest(job=job, limit=20, cursor=cursor), timeout=30)
            assert page.runs[0].n == last_n - 20 * pages, (page.runs[0].n, last_n - 20 * pages)
            if not page.next_cursor:
                break
            cursor, pages = page.next_cursor, pages + 1
        deep_cursor = cursor
        deep_first_n = last_n - 20 * pages
        # the oldest page of the job: a cursor just above its 20 oldest runs (run 21's id)
        row21 = jobs_stub.GetRun(pb.GetRunRequest(run=f"{job}/21"), timeout=30)
        # ids grow by `jobs` per n inside a job (round-robin load); next_cursor holds the id of run last_n-19
        oldest_id = decode_cursor(first.next_cursor) - (last_n - 19 - 21) * args.jobs
        last_cursor = encode_cursor(oldest_id)
        last_page = jobs_stub.ListRuns(pb.ListRunsRequest(job=job, limit=20, cursor=last_cursor), timeout=30)
        assert [r.n for r in last_page.runs] == list(range(20, 0, -1)), [r.n for r in last_page.runs][:3]
        assert not last_page.next_cursor and row21.n == 21
        one_ref = f"{job}/{last_n // 2}"

        kinds = {
            "ListRuns first page": lambda: jobs_stub.ListRuns(pb.ListRunsRequest(job=job, limit=20), timeout=30),
            f"ListRuns page {pages + 1} (runs {deep_first_n}..)": lambda: jobs_stub.ListRuns(
                pb.ListRunsRequest(job=job, limit=20, cursor=deep_cursor), timeout=30),
            "ListRuns last page (runs 20..1)": lambda: jobs_stub.ListRuns(
                pb.ListRunsRequest(job=job, limit=20, cursor=last_cursor), timeout=30),
            "GetRun (one run)": lambda: jobs_stub.GetRun(pb.GetRunRequest(run=one_ref), timeout=30),
        }
        times: dict[str, list[float]] = {k: [] for k in kinds}
        for _ in range(20):  # warm-up
            for call in kinds.values():
                call()
        for _ in range(args.calls):
            for name, call in kinds.items():
                t = time.perf_counter()
                call()
                times[name].append((time.perf_counter() - t) * 1000)
            if deadline.left() < 100:
                print(f"  (stopped the RPC loop early: time budget; {len(times[name])} calls each)")
                break

        # in-process: the daemon's own SQL + conversion on a separate read connection to the same file
        inproc = in_process(db_path, home, job, deep_cursor, last_cursor, one_ref, args.calls)

        # the CLI, whole process
        jobsctl = venv_tool("jobsctl")
        env = {**os.environ, "JOBSD_SOCKET": daemon.sock}
        cli_argv = [jobsctl, "jobs", "history", job, "--limit", "20"]  # socket from $JOBSD_SOCKET
        probe = subprocess.run(cli_argv, env=env, capture_output=True, text=True, timeout=60)
        if probe.returncode != 0:
            raise RuntimeError(f"jobsctl failed ({probe.returncode}): {probe.stderr}")
        assert f"{job}/{last_n}" in probe.stdout, probe.stdout[:500]
        cli: list[float] = []
        for _ in range(args.cli_runs):
            t = time.perf_counter()
            subprocess.run(cli_argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                           timeout=60)
            cli.append((time.perf_counter() - t) * 1000)
            if deadline.left() < 20:
                break
        base: list[float] = []
        for _ in range(min(10, args.cli_runs)):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], check=True)
            base.append((time.perf_counter() - t) * 1000)

        print()
        print(f"ListRuns of {job} ({last_n:,} runs of {args.runs:,}), limit 20, {len(times['GetRun (one run)'])} "
              f"calls each, interleaved, one warm channel (client-observed):")
        print(header())
        for name, v in times.items():
            print(fmt_row(name, v))
        print()
        print("in-process, the daemon's SQL + run_pb on its own connection (no gRPC):")
        print(header())
        for name, v in inproc.items():
            print(fmt_row(name, v))
        g_med = percentile(times["GetRun (one run)"], 50)
        g_in = percentile(inproc["get_run (one run)"], 50)
        print()
        print("server-side estimate (median ListRuns - median GetRun + in-process get_run):")
        for name in list(kinds)[:3]:
            est = percentile(times[name], 50) - g_med + g_in
            print(f"  {name:42} {est:8.2f} ms   (goal < 20 ms)")
        print()
        print(f"`{' '.join(['jobsctl'] + cli_argv[1:])}` whole process, {len(cli)} runs:")
        print(header())
        print(fmt_row("jobsctl jobs history --limit 20", cli))
        print(fmt_row("baseline python -c pass", base))
        print()
        print("query plans (EXPLAIN QUERY PLAN of the daemon's list_runs SQL):")
        for line in query_plans(db_path, job):
            print("  " + line)
        print()
        print("reproduce:", repro_command("history.py", sys.argv[1:]))
        return 0
    finally:
        if daemon is not None:
            daemon.stop()
        shutil.rmtree(home, ignore_errors=True)


def _reader(db_path: str):
    """A Store on its own read connection (same pragmas as the daemon), without open_store's
    quick_check and migrate (the daemon holds the store; we only read)."""
    from jobsd.store import Store, _engine

    engine = _engine(db_path)
    conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    return Store(engine, conn, db_path)


def in_process(db_path: str, home: str, job: str, deep_cursor: str, last_cursor: str, one_ref: str,
               calls: int) -> dict[str, list[float]]:
    from jobsd.api.convert import run_pb
    from jobsd_lib.refs import decode_cursor, parse_run_ref

    store = _reader(db_path)
    runs_dir = os.path.join(home, "runs")
    deep, last = decode_cursor(deep_cursor), decode_cursor(last_cursor)
    jid, n = parse_run_ref(one_ref)

    def page(before):
        rows = store.list_runs(job, 21, before, [])
        return [run_pb(r, os.path.join(runs_dir, r.job_id, str(r.n))) for r in rows[:20]]

    kinds = {
        "list_runs first page": lambda: page(None),
        "list_runs deep page": lambda: page(deep),
        "list_runs last page": lambda: page(last),
        "get_run (one run)": lambda: run_pb(store.get_run(jid, n), runs_dir),
    }
    out: dict[str, list[float]] = {k: [] for k in kinds}
    try:
        for _ in range(10):
            for call in kinds.values():
                call()
        for _ in range(calls):
            for name, call in kinds.items():
                t = time.perf_counter()
                call()
                out[name].append((time.perf_counter() - t) * 1000)
    finally:
        store.close()
    return out


def query_plans(db_path: str, job: str) -> list[str]:
    from jobsd.store import _RUN_COLUMNS

    db = sqlite3.connect(db_path)
    lines = []
    try:
        for label, sql, params in (
                ("first page", f"SELECT {_RUN_COLUMNS} FROM runs WHERE job_id = ? ORDER BY job_id DESC, n DESC "
                               "LIMIT 21", (job,)),
                ("cursor page", f"SELECT {_RUN_COLUMNS} FROM runs WHERE job_id = ? AND id < ? "
                                "ORDER BY job_id DESC, n DESC LIMIT 21", (job, 1000)),
                ("attempts", "SELECT number FROM attempts WHERE run_id = ? ORDER BY number", (1,))):
            plan = db.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
            lines.append(f"{label}: " + "; ".join(row[-1] for row in plan))
    finally:
        db.close()
    return lines


if __name__ == "__main__":
    sys.exit(main())
