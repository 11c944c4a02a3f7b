"""jobsd start-up: time to ready with a big history and many specs, and restart after SIGKILL.

(a) Start-up with 1,000,000 runs in the store and 10,000 job spec files.
    10,000 specs j0000..j9999 (`command = ["true"]`; every 10th also has a `[schedule]`, a yearly
    cron, so 1,000 APScheduler jobs are synced and loaded). The daemon is started once on the
    empty store (migrations, first schedule sync: "first start"), stopped, then 1,000,000
    finished runs + one attempt row each are bulk-inserted with sqlite3 (history.populate:
    round-robin over all 10,000 jobs, 100 runs each, job_counters set), and the daemon is started
    --starts times on that store. Per start, from just before the process is spawned:
      socket      the socket file exists (created by server.start(), after load/reconcile/sync)
      ready       the first GetHealth answered OK (polled every 5 ms; one fresh channel per try)
    GetHealth itself builds every job's view (ListJobs' work: latest run + consecutive
    failures per job), so its warm latency is shown too, and the daemon's peak RSS. All starts
    run on a warm page cache (the store was just written / read). Phase costs measured in this
    process on the same files (the daemon stopped): importing jobsd.app (a fresh `python -c`),
    load_catalog() of the 10,000 files, open_store()'s `PRAGMA quick_check` of the store.

(b) Restart-to-ready after SIGKILL with 50 runs active.
    50 jobs `command = ["sleep", "300"]`, daemon with --max-concurrent-runs 64, RunJob each, wait
    until all 50 are `running` (their sleep pids from GetRun's attempt), SIGKILL the daemon
    (the sleeps live on in their own sessions), start it again and time spawn -> first GetHealth
    OK. Then check: all 50 runs are `interrupted`, and the 50 sleep processes are gone (the
    daemon SIGKILLs a leftover run's process group at start; a killed process that nobody has
    reaped yet, a zombie, counts as gone and is reported as such). Any sleep still alive at the
    end is SIGKILLed by pid in the finally (found by an env marker unique to this run).

Times in seconds unless marked ms. Asserts no timing.

Usage: .venv/bin/python bench/startup.py [--runs 1000000] [--jobs 10000] [--scheduled-every 10] [--starts 3]
                                         [--active 50] [--only a|b]
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time

from _common import Deadline, TimedDaemon, percentile, processes_with_env, repro_command, short_tmpdir, toml_str_list, write_jobs
from history import job_ids, populate

BUDGET_SECONDS = 230
MARKER = "JBENCH_STARTUP"


def _get_health(channel):  # noqa: ANN001, ANN202
    """Ready = GetHealth answers (its counts are what the restart rows print)."""
    from jobsd_lib.rpc import jobsd_pb2 as pb, jobsd_pb2_grpc as g

    return g.DaemonStub(channel).GetHealth(pb.GetHealthRequest(), timeout=30)


def warm_rpc_ms(sock: str, calls: int = 5) -> dict[str, list[float]]:
    import grpc
    from jobsd_lib.rpc import jobsd_pb2 as pb, jobsd_pb2_grpc as g

    out: dict[str, list[float]] = {"GetHealth": [], "ListJobs": []}
    with grpc.insecure_channel(f"unix:{sock}") as ch:
        daemon, jobs = g.DaemonStub(ch), g.JobsStub(ch)
        daemon.GetHealth(pb.GetHealthRequest(), timeout=60)
        for _ in range(calls):
            t = time.perf_counter()
            daemon.GetHealth(pb.GetHealthRequest(), timeout=60)
            out["GetHealth"].append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            jobs.ListJobs(pb.ListJobsRequest(), timeout=60)
            out["ListJobs"].append((time.perf_counter() - t) * 1000)
    return out


def med(values: list[float]) -> float:
    return percentile(values, 50)


# ---------------------------------------------------------------------------------------------- (a)
def part_a(args: argparse.Namespace, deadline: Deadline) -> None:
    home = short_tmpdir("jbs")
    daemon: TimedDaemon | None = None
    try:
        t = time.perf_counter()
        sched = '\n[schedule]\ncron = "30 4 1 1 *"\ntimezone = "UTC"\n'
        write_jobs(home, {j: 'command = ["true"]\n' + (sched if args.scheduled_every and i % args.scheduled_every == 0
                                                       else "")
                          for i, j in enumerate(job_ids(args.jobs))})
        n_sched = len(range(0, args.jobs, args.scheduled_every)) if args.scheduled_every else 0
        print(f"(a) {args.jobs:,} spec files ({n_sched:,} with a [schedule]) written in "
              f"{time.perf_counter() - t:.1f} s to {home}/jobs")

        daemon = TimedDaemon(home)
        daemon.start(timeout=120, ready=_get_health)
        first = (daemon.socket_seconds, daemon.ready_seconds, daemon.log_ready_seconds())
        first_stop = daemon.stop_timed()
        daemon = None
        print(f"  first start, empty store: socket {first[0]:.2f} s, GetHealth OK {first[1]:.2f} s "
              f"(log 'jobsd ready' {first[2]:.2f} s); SIGTERM stop {first_stop:.2f} s")

        db_path = os.path.join(home, "db", "jobsd.sqlite3")
        load = populate(db_path, args.runs, args.jobs)
        print(f"  store: {args.runs:,} runs over {args.jobs:,} jobs + 1 attempt row each inserted in "
              f"{load['seconds']:.1f} s; {load['bytes'] / 2**20:.0f} MiB")

        rows = []
        for _ in range(args.starts):
            daemon = TimedDaemon(home)
            daemon.start(timeout=120, ready=_get_health)
            h = daemon.ready_answer
            assert h.jobs_active == args.jobs and h.jobs_invalid == 0, (h.jobs_active, h.jobs_invalid)
            rpc = warm_rpc_ms(daemon.sock)
            rss = daemon.proc_status("VmHWM")["VmHWM"]
            row = {"socket": daemon.socket_seconds, "ready": daemon.ready_seconds, "log": daemon.log_ready_seconds(),
                   "rpc": rpc, "rss": rss}
            row["stop"] = daemon.stop_timed()
            daemon = None
            rows.append(row)
            if deadline.left() < 90:
                break
        print()
        print(f"  start-up with {args.runs:,} runs and {args.jobs:,} specs (goal: ready < 10 s), "
              f"{len(rows)} starts:")
        print(f"    {'start':>5} {'socket s':>9} {'GetHealth OK s':>15} {'log ready s':>12} "
              f"{'GetHealth ms':>13} {'ListJobs ms':>12} {'peak RSS':>11} {'stop s':>7}")
        for i, r in enumerate(rows, 1):
            print(f"    {i:5d} {r['socket']:9.2f} {r['ready']:15.2f} {r['log']:12.2f} {med(r['rpc']['GetHealth']):13.1f} "
                  f"{med(r['rpc']['ListJobs']):12.1f} {r['rss']:>11} {r['stop']:7.2f}")
        print(f"    median ready (spawn -> GetHealth OK): {med([r['ready'] for r in rows]):.2f} s")
        print("    (GetHealth/ListJobs ms: warm, median of 5, one channel)")

        phases(home, db_path)
    finally:
        if daemon is not None:
            daemon.stop()
        shutil.rmtree(home, ignore_errors=True)


def phases(home: str, db_path: str) -> None:
    """Costs of start-up steps, measured in this process with the daemon stopped."""
    import sqlite3

    from jobsd.catalog import load_catalog

    print()
    print("  start-up steps, measured here (daemon stopped, warm cache):")
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import grpc, jobsd.app"], check=True)
    print(f"    python -c 'import grpc, jobsd.app' (whole process)     {time.perf_counter() - t:7.2f} s")
    loads = []
    for _ in range(2):
        t = time.perf_counter()
        catalog = load_catalog(os.path.join(home, "jobs"))
        loads.append(time.perf_counter() - t)
    print(f"    load_catalog() of {len(catalog.specs):,} spec files (best of 2){'':7} {min(loads):7.2f} s")
    db = sqlite3.connect(db_path)
    try:
        checks = []
        for _ in range(3):
            t = time.perf_counter()
            check = db.execute("PRAGMA quick_check").fetchone()[0]
            checks.append(time.perf_counter() - t)
        print(f"    PRAGMA quick_check, {os.path.getsize(db_path) / 2**20:.0f} MiB store (best of 3) = {check!r}"
              f"{'':1} {min(checks):7.2f} s")
        t = time.perf_counter()
        n = db.execute("SELECT count(*) FROM runs WHERE state IN ('queued', 'running', 'retrying')").fetchone()[0]
        print(f"    active runs query ({n} active){'':25} {(time.perf_counter() - t) * 1000:7.2f} ms")
    finally:
        db.close()


# ---------------------------------------------------------------------------------------------- (b)
def proc_state(pid: int) -> str:
    """'alive', 'zombie' or 'gone'."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"
    return "zombie" if state in ("Z", "X") else "alive"


def become_subreaper() -> bool:
    """PR_SET_CHILD_SUBREAPER: the killed daemon's orphaned sleeps are re-parented to us, so we can
    reap them (by pid) once killed instead of leaving zombies under a PID 1 that may not reap."""
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def reap(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass


def part_b(args: argparse.Namespace, deadline: Deadline) -> None:
    import grpc
    from jobsd_lib.rpc import jobsd_pb2 as pb, jobsd_pb2_grpc as g

    home = short_tmpdir("jbk")
    token = os.path.basename(home)
    daemons: list[TimedDaemon] = []
    pids: dict[str, int] = {}
    subreaper = become_subreaper()
    try:
        jobs = [f"s{i:03d}" for i in range(args.active)]
        write_jobs(home, {j: f'command = {toml_str_list(["sleep", "300"])}\nenv = {{ {MARKER} = "{token}" }}\n'
                          for j in jobs})
        first = TimedDaemon(home, max_concurrent=64)
        daemons.append(first)
        first.start(timeout=120, ready=_get_health)
        with grpc.insecure_channel(f"unix:{first.sock}") as ch:
            stub = g.JobsStub(ch)
            refs = [stub.RunJob(pb.RunJobRequest(job=j), timeout=30).ref for j in jobs]
            end = time.monotonic() + 60
            while len(pids) < len(refs) and time.monotonic() < end:
                for ref in refs:
                    if ref in pids:
                        continue
                    run = stub.GetRun(pb.GetRunRequest(run=ref), timeout=30)
                    if run.state == pb.RUN_STATE_RUNNING and run.attempt_list and run.attempt_list[-1].pid:
                        pids[ref] = run.attempt_list[-1].pid
                time.sleep(0.05)
        if len(pids) < len(refs):
            raise RuntimeError(f"only {len(pids)} of {len(refs)} runs reached running in 60 s")
        alive_before = sum(proc_state(p) == "alive" for p in pids.values())

        first.proc.kill()  # SIGKILL: no shutdown, runs left `running` in the store
        first.proc.wait(timeout=10)
        first.stop()
        time.sleep(0.2)
        alive_after_kill = sum(proc_state(p) == "alive" for p in pids.values())

        second = TimedDaemon(home, max_concurrent=64)
        daemons.append(second)
        second.start(timeout=120, ready=_get_health)
        ready, sock_s, log_ready = second.ready_seconds, second.socket_seconds, second.log_ready_seconds()
        with grpc.insecure_channel(f"unix:{second.sock}") as ch:
            stub = g.JobsStub(ch)
            states = [pb.RunState.Name(stub.GetRun(pb.GetRunRequest(run=ref), timeout=30).state) for ref in refs]
            health = g.DaemonStub(ch).GetHealth(pb.GetHealthRequest(), timeout=30)
        time.sleep(0.2)
        after = {p: proc_state(p) for p in pids.values()}  # before we reap: zombie = killed
        log_text = open(second.log_path, errors="replace").read()
        killed_logged = len(re.findall(r"killed \d+ leftover process\(es\)", log_text))
        interrupted = sum(s == "RUN_STATE_INTERRUPTED" for s in states)

        print()
        print(f"(b) restart after SIGKILL with {len(refs)} runs active (sleep 300, --max-concurrent-runs 64), {home}")
        print(f"  before SIGKILL: {len(pids)} runs running, {alive_before} sleep processes alive")
        print(f"  0.2 s after SIGKILL of the daemon: {alive_after_kill} sleep processes still alive (orphaned)")
        sock_text = "stale socket file present at spawn" if second.stale_socket else f"socket {sock_s:.2f} s"
        print(f"  restart: GetHealth OK {ready:.2f} s after spawn (log 'jobsd ready' {log_ready:.2f} s; {sock_text})")
        print(f"  runs interrupted: {interrupted}/{len(refs)}  (states: "
              f"{ {s: states.count(s) for s in sorted(set(states))} }); health: runs_active={health.runs_active} "
              f"runs_queued={health.runs_queued}")
        print(f"  sleep processes after restart: gone {sum(v == 'gone' for v in after.values())}, "
              f"zombie (killed, not yet reaped) {sum(v == 'zombie' for v in after.values())}, "
              f"alive {sum(v == 'alive' for v in after.values())}; "
              f"'killed N leftover process(es)' log lines: {killed_logged}")
        leftovers = processes_with_env(f"{MARKER}={token}")
        if leftovers:
            print(f"  LEFTOVER live processes with this run's marker: {leftovers}")
    finally:
        for d in reversed(daemons):
            d.stop()
        for pid in processes_with_env(f"{MARKER}={token}"):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.1)
        if subreaper:
            reap(list(pids.values()))
        shutil.rmtree(home, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1_000_000)
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--scheduled-every", type=int, default=10, help="every Nth spec has a [schedule] (0: none)")
    ap.add_argument("--starts", type=int, default=3)
    ap.add_argument("--active", type=int, default=50)
    ap.add_argument("--only", choices=["a", "b"])
    args = ap.parse_args()
    deadline = Deadline(BUDGET_SECONDS)
    if args.only != "b":
        part_a(args, deadline)
    if args.only != "a":
        part_b(args, deadline)
    print()
    print("reproduce:", repro_command("startup.py", sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
