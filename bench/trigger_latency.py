"""Cron trigger latency: a window's scheduled instant -> the job's child exec, vs bare APScheduler.

Every job has `cron = "* * * * * *"` (six fields: every second), timezone UTC, and its command
is a stamp program itself (no shell): the child prints its own wall-clock time (CLOCK_REALTIME,
ns) first thing in main(), and jobsd stores that line as the run's output (read back from
attempt-1.log in the run's artifacts folder). The stamp is a 3-line C program compiled here
with `cc -O2 -static` when a C compiler is present: no dynamic loader, so it reads the clock
~0.5 ms after its exec on this machine (page faults of a cold binary). Without a compiler the
command is `date +%s%N`, whose own start-up (loader, libc, locale) adds ~1 ms more; the script
says which it used. (Before 2026-11-23 the command was `sh -c 'date ... >> FILE'`, which added
a shell's start-up and a second fork+exec, ~2.5 ms, to every figure.) A run takes
a few ms, so it ends long before its job's next window (no overlap; any `skipped`/`missed` run
in the measured windows is counted and printed).

Cron has one-second resolution, so a window holds one firing unless several jobs share it.
Phases, one after the other (none overlaps another):

  (1) jobsd, --jobs jobs every second (same instants), --warmup s of windows dropped, then
      ceil(--same-instant-firings / --jobs) windows measured. APScheduler processes the due jobs
      one after the other and the daemon's event loop handles the firings one after the other,
      so the figures are also shown by rank inside the window (1 = the first of the window's runs
      to be queued, by queued_at). Afterwards every run of those windows is read with ListRuns
      (GetRun if a run comes without its attempts): scheduled_at, queued_at, attempt[0]
      started_at (the daemon's timestamp right after the spawn), finished_at; the child's own
      `date` from its output. All in ms after scheduled_at.
  (2) jobsd, one firing a window (the goal's figure): the other spec files are deleted and the
      Reload RPC called, so one job fires alone every second for --firings windows (same
      daemon). --firings 200 takes 200 s.
  (3) floor: a bare APScheduler BackgroundScheduler in this Python (default MemoryJobStore and
      ThreadPoolExecutor, timezone UTC), --jobs no-op jobs on CronTrigger(second="*"); the job
      function records time.time_ns(), scheduled = that time truncated to the whole second
      (every-second windows, so exact while latency < 1 s; a duplicate (job, second) would show
      it is not and is reported). --firings firings.
  (4) optional (--sql-floor-firings N, default 0): floor with a SQLAlchemyJobStore on a fresh
      SQLite file in the temp dir in SQLite's defaults (rollback journal, synchronous=FULL: how
      jobsd kept its job store before it switched to WAL) and jobsd's job defaults
      coalesce=False, max_instances=1, misfire_grace_time=None. APScheduler commits each fired
      job's new next_run_time to the store (update_job) before it submits the next due job.
      Adds ~N/--jobs seconds.
  (5) floor with the daemon's APScheduler configuration: (4) with the job store's SQLite file in
      journal_mode=WAL, synchronous=NORMAL (set on each connection of the engine handed to the
      SQLAlchemyJobStore, as jobsd.scheduler does). --wal-floor-firings firings.

All clocks are CLOCK_REALTIME on the same machine. Figures in ms. `uptime`'s load average is
printed before and after: on 2 cores another process (a test suite) shows in the figures.
Asserts no timing. Goal (issue 4): median < 5 ms, p99 < 20 ms from window to exec, over at least
200 firings; judged on phase (2), one firing a window, and phase (1) is printed beside it. With
the defaults the script takes ~6 minutes.

Usage: .venv/bin/python bench/trigger_latency.py [--firings 200] [--jobs 4] [--same-instant-firings 100]
                                                 [--warmup 3] [--sql-floor-firings 0]
                                                 [--wal-floor-firings 100] [--only jobsd|floor]
"""
from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import threading
import time

from _common import code_version, print_footer, print_reproduce, Daemon, Deadline, load_average, percentile, short_tmpdir, toml_str_list, write_jobs

BUDGET_SECONDS = 420
EVERY_SECOND = "* * * * * *"
NS = 10**9
_FLOOR_CALLS: list[tuple[int, int]] = []  # (job k, time_ns) from floor_call, in the floors' worker threads
_FLOOR_LOCK = threading.Lock()


def row(name: str, v: list[float]) -> None:
    if not v:
        print(f"  {name:46} {0:4d}")
        return
    print(f"  {name:46} {len(v):4d} {min(v):7.2f} {percentile(v, 50):7.2f} {percentile(v, 90):7.2f} "
          f"{percentile(v, 99):7.2f} {max(v):7.2f}")


def header(title: str) -> None:
    print(f"  {title:46} {'n':>4} {'min':>7} {'median':>7} {'p90':>7} {'p99':>7} {'max':>7}")


def sleep_until(wall: float) -> None:
    while (left := wall - time.time()) > 0:
        time.sleep(min(left, 0.5))


# ---------------------------------------------------------------------------------------------- jobsd
def ts_ns(t) -> int | None:  # noqa: ANN001 - google.protobuf.Timestamp
    return t.ToNanoseconds() if (t.seconds or t.nanos) else None


STAMP_C = r"""#include <stdio.h>
#include <time.h>
int main(void) { struct timespec t; clock_gettime(CLOCK_REALTIME, &t);
                 printf("%lld%09ld\n", (long long)t.tv_sec, t.tv_nsec); return 0; }
"""


def stamp_command(folder: str) -> tuple[list[str], str]:
    """argv of a program printing the wall clock in ns as it starts, and its description."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc:
        src, exe = os.path.join(folder, "stamp.c"), os.path.join(folder, "stamp")
        with open(src, "w") as f:
            f.write(STAMP_C)
        for extra in (["-static"], []):
            if subprocess.run([cc, "-O2", *extra, "-o", exe, src], capture_output=True).returncode == 0:
                return [exe], f"stamp program ({os.path.basename(cc)} -O2 {' '.join(extra)})".replace(" )", ")")
    return ["date", "+%s%N"], "date +%s%N (no C compiler: adds date's own ~1 ms start-up)"


def child_stamp(run) -> int | None:  # noqa: ANN001
    """The child's `date +%s%N`: the first line of its stored output."""
    try:
        with open(os.path.join(run.artifacts, "attempt-1.log"), "rb") as f:
            return int(f.readline())
    except (OSError, ValueError):
        return None


def collect(stub, pb, jobs: list[str], first: int, last: int) -> list:  # noqa: ANN001
    """Every run of `jobs` whose scheduled_at (whole seconds) is in [first, last]."""
    runs = []
    for job in jobs:
        cursor = ""
        while True:
            page = stub.ListRuns(pb.ListRunsRequest(job=job, limit=1000, cursor=cursor), timeout=60)
            for run in page.runs:
                sched = ts_ns(run.scheduled_at)
                if sched is not None and first * NS <= sched <= last * NS:
                    if run.state == pb.RUN_STATE_SUCCEEDED and not run.attempt_list:
                        run = stub.GetRun(pb.GetRunRequest(run=run.ref), timeout=30)
                    runs.append(run)
            oldest = ts_ns(page.runs[-1].scheduled_at) if page.runs else None
            if not page.next_cursor or (oldest is not None and oldest < first * NS):
                break
            cursor = page.next_cursor
    return runs


def measure_window(stub, pb, jobs: list[str], first: int, windows: int) -> dict:  # noqa: ANN001
    """Wait for `windows` windows from `first` (unix seconds), then read their runs."""
    last = first + windows - 1
    sleep_until(last + 1.5)  # the last window's runs are long finished by then
    runs = collect(stub, pb, jobs, first, last)
    child = {run.ref: stamp for run in runs if (stamp := child_stamp(run)) is not None}
    res: dict = {k: [] for k in ("queued", "started", "child", "finished")}
    res["states"], res["ranks"], res["expected"] = {}, {}, windows * len(jobs)
    by_window: dict[int, list] = {}
    for run in runs:
        state = pb.RunState.Name(run.state).removeprefix("RUN_STATE_").lower()
        res["states"][state] = res["states"].get(state, 0) + 1
        if run.state != pb.RUN_STATE_SUCCEEDED:
            continue
        sched = ts_ns(run.scheduled_at)
        ms = lambda ns: (ns - sched) / 1e6  # noqa: E731, B023
        res["queued"].append(ms(ts_ns(run.queued_at)))
        res["started"].append(ms(ts_ns(run.attempt_list[0].started_at)))
        res["finished"].append(ms(ts_ns(run.finished_at)))
        if run.ref in child:
            res["child"].append(ms(child[run.ref]))
            by_window.setdefault(sched, []).append((ts_ns(run.queued_at), ms(child[run.ref])))
    for entries in by_window.values():
        for rank, (_q, lat) in enumerate(sorted(entries), 1):
            res["ranks"].setdefault(rank, []).append(lat)
    res["no_stamp"] = sum(1 for r in runs if r.state == pb.RUN_STATE_SUCCEEDED and r.ref not in child)
    return res


def report_jobsd(title: str, res: dict) -> None:
    states = ", ".join(f"{k} {v}" for k, v in sorted(res["states"].items()))
    found = sum(res["states"].values())
    print(f"\n{title}")
    print(f"  runs in the measured windows: {found} of {res['expected']} expected ({states})"
          + (f"; {res['no_stamp']} succeeded without a stamp line" if res["no_stamp"] else ""))
    header("milestone (ms after scheduled_at)")
    row("run.queued_at (daemon admitted the firing)", res["queued"])
    row("attempt started_at (daemon, after spawn)", res["started"])
    row("child's own clock (stamp) <- trigger latency", res["child"])
    row("run.finished_at", res["finished"])
    if len(res["ranks"]) > 1:
        print("  child's stamp, by rank of the run inside its window (order of queued_at):")
        for rank, v in sorted(res["ranks"].items()):
            row(f"  rank {rank}", v)


def phase_jobsd(args: argparse.Namespace, deadline: Deadline) -> tuple[dict, dict | None]:
    import grpc
    from jobsd_lib.rpc import jobsd_pb2 as pb, jobsd_pb2_grpc as g

    home = short_tmpdir("jbc")
    daemon = Daemon(home, max_concurrent=max(4, args.jobs))
    try:
        argv, what = stamp_command(home)
        jobs = [f"t{k}" for k in range(args.jobs)]
        spec = (f"command = {toml_str_list(argv)}\n\n[schedule]\ncron = \"{EVERY_SECOND}\"\ntimezone = \"UTC\"\n")
        write_jobs(home, {j: spec for j in jobs})
        daemon.start()
        print(f"\n(1) jobsd: {args.jobs} jobs, cron '{EVERY_SECOND}' UTC, ready in {daemon.ready_seconds * 1000:.0f} ms "
              f"(pid {daemon.pid}, {home}); the child: {what}")
        ch = grpc.insecure_channel(f"unix:{daemon.sock}")
        stub = g.JobsStub(ch)
        windows = math.ceil(args.same_instant_firings / args.jobs)
        first = int(time.time()) + 1 + args.warmup
        print(f"  measuring windows {first} .. {first + windows - 1} ({windows} s) after {args.warmup} s of warm-up; "
              f"load average {load_average()}")
        res = measure_window(stub, pb, jobs, first, windows)
        report_jobsd(f"(1) jobsd, {args.jobs} jobs firing every second (same instants)", res)

        solo = None
        if args.firings > 0 and deadline.left() > args.firings + 60:
            for j in jobs[1:]:
                os.remove(os.path.join(home, "jobs", f"{j}.toml"))
            g.DaemonStub(ch).Reload(pb.ReloadRequest(), timeout=30)
            first = int(time.time()) + 2
            print(f"\n(2) jobsd, one firing a window: other specs deleted + Reload; one job, windows {first} .. "
                  f"{first + args.firings - 1}; load average {load_average()}")
            solo = measure_window(stub, pb, jobs[:1], first, args.firings)
            report_jobsd("(2) jobsd, one job firing alone every second", solo)
        elif args.firings > 0:
            print("!! time budget: the one-firing-a-window phase left out")
        ch.close()
        return res, solo
    finally:
        daemon.stop()
        shutil.rmtree(home, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- floors
def floor_call(k: int) -> None:
    """The floors' no-op job (module level: a SQLAlchemyJobStore stores a reference to it)."""
    t = time.time_ns()
    with _FLOOR_LOCK:
        _FLOOR_CALLS.append((k, t))


def phase_floor(jobs: int, firings: int, sql_path: str | None, wal: bool = False) -> dict:
    """A bare BackgroundScheduler with `jobs` no-op every-second jobs; ms from window to call.

    sql_path: keep the jobs in a SQLAlchemyJobStore on that SQLite file (WAL + synchronous=NORMAL
    if `wal`), with jobsd's job defaults; None: the default MemoryJobStore."""
    from datetime import UTC

    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.cron import CronTrigger

    with _FLOOR_LOCK:
        _FLOOR_CALLS.clear()
    if sql_path is None:
        sched = BackgroundScheduler(timezone=UTC)
    else:
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
        from sqlalchemy import create_engine, event

        engine = create_engine(f"sqlite:///{sql_path}")
        if wal:
            @event.listens_for(engine, "connect")
            def _pragmas(dbapi_connection, _record) -> None:  # noqa: ANN001
                dbapi_connection.execute("PRAGMA journal_mode=WAL")
                dbapi_connection.execute("PRAGMA synchronous=NORMAL")
        sched = BackgroundScheduler(timezone=UTC, jobstores={"default": SQLAlchemyJobStore(engine=engine)},
                                    job_defaults={"coalesce": False, "max_instances": 1, "misfire_grace_time": None})
    windows = math.ceil(firings / jobs)
    sched.start()
    try:
        for k in range(jobs):
            sched.add_job(floor_call, CronTrigger(second="*", timezone=UTC), args=[k], id=f"f{k}")
        first = int(time.time()) + 2  # one window of warm-up
        sleep_until(first + windows + 0.5)
    finally:
        sched.shutdown(wait=True)
    with _FLOOR_LOCK:
        calls = list(_FLOOR_CALLS)
    res: dict = {"all": [], "ranks": {}, "dup": 0, "expected": windows * jobs}
    seen, by_window = set(), {}
    for k, t in calls:
        sec = t // NS
        if not first <= sec < first + windows:
            continue
        if (k, sec) in seen:
            res["dup"] += 1
        seen.add((k, sec))
        lat = (t - sec * NS) / 1e6
        res["all"].append(lat)
        by_window.setdefault(sec, []).append(lat)
    for lats in by_window.values():
        for rank, lat in enumerate(sorted(lats), 1):
            res["ranks"].setdefault(rank, []).append(lat)
    return res


def report_floor(title: str, res: dict) -> None:
    print(f"\n{title}")
    print(f"  calls in the measured windows: {len(res['all'])} of {res['expected']} expected"
          + (f"; {res['dup']} duplicate (job, second): latency over 1 s, figures wrong" if res["dup"] else ""))
    header("ms after the scheduled whole second")
    row("job function called", res["all"])
    if len(res["ranks"]) > 1:
        for rank, v in sorted(res["ranks"].items()):
            row(f"  rank {rank} (order of the calls in the window)", v)


# ---------------------------------------------------------------------------------------------- main
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=4, help="jobs firing every second (same instants)")
    ap.add_argument("--firings", type=int, default=200,
                    help="windows of the one-firing-a-window jobsd phase (the goal's figure; one a second)")
    ap.add_argument("--same-instant-firings", type=int, default=100,
                    help="firings of the --jobs-at-the-same-instant jobsd phase and of the bare floor")
    ap.add_argument("--warmup", type=int, default=3, help="seconds of windows dropped at the start (jobsd)")
    ap.add_argument("--sql-floor-firings", type=int, default=0,
                    help="firings of the SQLAlchemyJobStore floor in SQLite's default journal (0: none)")
    ap.add_argument("--wal-floor-firings", type=int, default=100,
                    help="firings of the SQLAlchemyJobStore floor in WAL + synchronous=NORMAL (0: none)")
    ap.add_argument("--only", choices=["jobsd", "floor"])
    args = ap.parse_args()
    deadline = Deadline(BUDGET_SECONDS)
    import apscheduler

    version = code_version()
    print(f"trigger_latency: cron '{EVERY_SECOND}' -> child exec; {args.firings} lone firings, {args.jobs} jobs x "
          f"{args.same_instant_firings // args.jobs} shared windows; "
          f"{os.cpu_count()} cpus, Python {sys.version.split()[0]}, APScheduler {apscheduler.__version__}, "
          f"code {version}")
    print(f"load average before: {load_average()}")
    print_reproduce("trigger_latency.py", sys.argv[1:])

    res = solo = floor = sqlf = walf = None
    if args.only != "floor":
        res, solo = phase_jobsd(args, deadline)
    if args.only != "jobsd":
        print(f"\n(3) floor: bare BackgroundScheduler (MemoryJobStore, ThreadPoolExecutor), {args.jobs} no-op jobs; "
              f"load average {load_average()}")
        floor = phase_floor(args.jobs, args.same_instant_firings, None)
        report_floor("(3) floor: bare APScheduler, memory job store", floor)
        if args.sql_floor_firings > 0 and deadline.left() > args.sql_floor_firings / args.jobs + 10:
            tmp = short_tmpdir("jbq")
            try:
                print(f"\n(4) floor: BackgroundScheduler + SQLAlchemyJobStore (SQLite file, default journal), "
                      f"{args.jobs} no-op jobs; load average {load_average()}")
                sqlf = phase_floor(args.jobs, args.sql_floor_firings, os.path.join(tmp, "s.sqlite3"))
                report_floor("(4) floor: SQLAlchemyJobStore on SQLite, rollback journal, synchronous=FULL", sqlf)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        elif args.sql_floor_firings > 0:
            print("!! time budget: SQLAlchemyJobStore floor left out")
        if args.wal_floor_firings > 0 and deadline.left() > args.wal_floor_firings / args.jobs + 10:
            tmp = short_tmpdir("jbw")
            try:
                print(f"\n(5) floor: BackgroundScheduler + SQLAlchemyJobStore (SQLite file in WAL, synchronous=NORMAL, "
                      f"jobsd's job defaults), {args.jobs} no-op jobs; load average {load_average()}")
                walf = phase_floor(args.jobs, args.wal_floor_firings, os.path.join(tmp, "s.sqlite3"), wal=True)
                report_floor("(5) floor: jobsd's job store (SQLAlchemyJobStore, WAL, synchronous=NORMAL)", walf)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        elif args.wal_floor_firings > 0:
            print("!! time budget: WAL floor left out")

    print("\nsummary, ms from the window's scheduled instant (goal: median < 5, p99 < 20, one firing a window):")
    for name, v in (("jobsd, one firing a window, child exec  <- goal", solo and solo["child"]),
                    ("jobsd, one firing a window, queued_at", solo and solo["queued"]),
                    (f"jobsd, {args.jobs} jobs a window, child exec, all", res and res["child"]),
                    (f"jobsd, {args.jobs} jobs a window, child exec, rank 1", res and res["ranks"].get(1)),
                    (f"jobsd, {args.jobs} jobs a window, child exec, rank {args.jobs}", res and res["ranks"].get(args.jobs)),
                    (f"jobsd, {args.jobs} jobs a window, queued_at, all", res and res["queued"]),
                    ("floor: bare APScheduler, call, rank 1", floor and floor["ranks"].get(1, floor["all"])),
                    ("floor: + SQLAlchemyJobStore, journal, rank 1", sqlf and sqlf["ranks"].get(1, sqlf["all"])),
                    ("floor: + SQLAlchemyJobStore in WAL, rank 1", walf and walf["ranks"].get(1, walf["all"])),
                    ("floor: + SQLAlchemyJobStore in WAL, all", walf and walf["all"])):
        if v:
            print(f"  {name:50} median {percentile(v, 50):7.2f}  p99 {percentile(v, 99):7.2f}  (n={len(v)})")
    print_footer("trigger_latency.py", sys.argv[1:], version)
    return 0


if __name__ == "__main__":
    sys.exit(main())
