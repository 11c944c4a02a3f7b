"""`jobsctl jobs list` and ListJobs under 200 concurrent clients, against idle; ListJobs vs GetRun calls/s.

A fresh daemon gets --jobs spec files j00..jNN (issue 19 item 8 used 21): every third job fails
(`false`), the others succeed (`true`); every fourth has a `[schedule]` that never fires during
the bench (once a year), so ListJobs reads next run times too; j01 is paused and j02 disabled by
the operator. Before measuring, every job is run --history times (one RunJob per job per round,
each round waited for), so each job has a last run, attempts and a failure count to show.

Phases, on that one daemon:
  idle      whole-process wall time of `jobsctl --socket S jobs list`, --cli-runs runs in a row; then
            one client on one warm channel calling ListJobs, then GetRun, for --alone seconds
            each: calls/s with no other client (one call at a time).
  ListJobs  --clients clients (threads, each on its own channel with its own connection, spread
            over --procs worker processes so the clients' GIL is not the limit) call ListJobs in
            a loop. Once every client has had an answer, `jobs list` is timed --cli-runs times in
            a row; meanwhile ListJobs calls/s (answers completed inside that window) and each
            call's latency as its client saw it.
  GetRun    the same with GetRun of one run: calls/s, latency, and `jobs list` meanwhile.
CPU (utime+stime, all threads) of the daemon and of the client processes is shown per window, as
% of one core (the machine has 2: what the clients take, jobsctl cannot have). Times in ms.

To compare with older code, run it with PYTHONPATH set to that code's source folders, e.g.
  git archive main | tar -x -C /tmp/jobsd-old
  PYTHONPATH=/tmp/jobsd-old/daemon:/tmp/jobsd-old/shared:/tmp/jobsd-old/client .venv/bin/python bench/listjobs_load.py
(the daemon, the clients and jobsctl inherit it; the first line printed says which jobsd runs).

Goal (issue 19 item 8): `jobs list` p99 under the ListJobs load within 3x of its idle p99 (the
ratio is printed). Asserts no timing. Takes ~1-1.5 minutes.

Usage: .venv/bin/python bench/listjobs_load.py [--jobs 21] [--history 10] [--clients 200] [--procs 4]
                                               [--cli-runs 30] [--alone 3]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time

from _common import (cpu_seconds, Daemon, Deadline, code_version, load_average, percentile, print_reproduce, short_tmpdir,
                     venv_tool, write_jobs)

BUDGET_SECONDS = 170




def job_specs(count: int) -> dict[str, str]:
    specs = {}
    for i in range(count):
        text = f'description = "listjobs bench job {i}"\ncommand = ["{"false" if i % 3 == 2 else "true"}"]\n'
        if i % 4 == 3:
            text += '[schedule]\ncron = "0 0 1 1 *"\ntimezone = "UTC"\n'  # once a year: never fires during the bench
        specs[f"j{i:02d}"] = text
    return specs


# ------------------------------------------------------------------ worker process

def worker(sock: str, rpc: str, ref: str, threads: int, ready_path: str, stop_path: str, out_path: str) -> int:
    """`threads` clients calling `rpc` in a loop until stop_path exists; one JSON file of
    (completed at, latency) pairs per call, epoch seconds."""
    import grpc
    from jobsd_lib.rpc import jobsd_pb2 as pb, jobsd_pb2_grpc as g

    calls: list[list[tuple[float, float]]] = [[] for _ in range(threads)]
    errors: list[str] = []
    answered = threading.Barrier(threads + 1)

    def client(k: int) -> None:
        with grpc.insecure_channel(f"unix:{sock}", options=[("grpc.use_local_subchannel_pool", 1)]) as ch:
            stub = g.JobsStub(ch)
            call = ((lambda: stub.ListJobs(pb.ListJobsRequest(), timeout=60)) if rpc == "ListJobs"
                    else (lambda: stub.GetRun(pb.GetRunRequest(run=ref), timeout=60)))
            first = True
            while True:
                t0 = time.time()
                try:
                    call()
                except grpc.RpcError as err:
                    errors.append(f"{err.code().name}: {err.details()}")
                t1 = time.time()
                calls[k].append((t1, t1 - t0))
                if first:
                    first = False
                    answered.wait()
                if os.path.exists(stop_path):
                    return

    ts = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(threads)]
    for t in ts:
        t.start()
    answered.wait()
    open(ready_path, "w").close()
    for t in ts:
        t.join(120)
    with open(out_path, "w") as f:
        json.dump({"calls": [c for per in calls for c in per], "errors": errors[:20], "error_count": len(errors)}, f)
    return 0


# ------------------------------------------------------------------ phases

def time_cli(jobsctl: str, sock: str, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        cp = subprocess.run([jobsctl, "--socket", sock, "jobs", "list"], capture_output=True, timeout=60)
        times.append((time.perf_counter() - t0) * 1000)
        if cp.returncode != 0:
            raise RuntimeError(f"jobs list failed: rc={cp.returncode} {cp.stderr[-300:]!r}")
    return times


def alone(sock: str, rpc: str, ref: str, seconds: float) -> float:
    """Calls/s of one client, one call at a time, on a warm channel."""
    import grpc
    from jobsd_lib.rpc import jobsd_pb2 as pb, jobsd_pb2_grpc as g

    with grpc.insecure_channel(f"unix:{sock}") as ch:
        stub = g.JobsStub(ch)
        call = ((lambda: stub.ListJobs(pb.ListJobsRequest(), timeout=10)) if rpc == "ListJobs"
                else (lambda: stub.GetRun(pb.GetRunRequest(run=ref), timeout=10)))
        call()
        count, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            call()
            count += 1
        return count / (time.perf_counter() - t0)


def under_load(daemon: Daemon, rpc: str, ref: str, args, jobsctl: str, home: str) -> dict:  # noqa: ANN001
    tag = rpc.lower()
    stop_path = os.path.join(home, f"{tag}.stop")
    workers = []
    try:
        for p in range(args.procs):
            share = args.clients // args.procs + (1 if p < args.clients % args.procs else 0)
            paths = [os.path.join(home, f"{tag}-{p}.{x}") for x in ("ready", "json", "err")]
            err = open(paths[2], "wb")
            w = subprocess.Popen([sys.executable, __file__, "--worker", daemon.sock, rpc, ref, str(share), paths[0],
                                  stop_path, paths[1]], stdin=subprocess.DEVNULL, stdout=err, stderr=err)
            err.close()
            w.paths = paths  # type: ignore[attr-defined]
            workers.append(w)
        end = time.monotonic() + 60
        while not all(os.path.exists(w.paths[0]) for w in workers):  # type: ignore[attr-defined]
            if time.monotonic() > end or any(w.poll() is not None for w in workers):
                raise RuntimeError(f"{rpc} clients did not all get an answer; see {home}/*.err")
            time.sleep(0.05)
        cpu0, w0 = cpu_seconds(daemon.pid), time.time()
        clients0 = sum(cpu_seconds(w.pid) for w in workers)
        cli = time_cli(jobsctl, daemon.sock, args.cli_runs)
        w1, cpu1 = time.time(), cpu_seconds(daemon.pid)
        clients1 = sum(cpu_seconds(w.pid) for w in workers)
        open(stop_path, "w").close()
        calls, errors, error_count = [], [], 0
        for w in workers:
            w.wait(timeout=120)
            with open(w.paths[1]) as f:  # type: ignore[attr-defined]
                data = json.load(f)
            calls += data["calls"]
            errors += data["errors"]
            error_count += data["error_count"]
        inside = [lat * 1000 for done, lat in calls if w0 <= done <= w1]
        return {"cli": cli, "rate": len(inside) / (w1 - w0), "latency": inside, "seconds": w1 - w0,
                "cpu": (cpu1 - cpu0) / (w1 - w0) * 100, "clients_cpu": (clients1 - clients0) / (w1 - w0) * 100,
                "errors": errors, "error_count": error_count}
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()


def make_history(daemon: Daemon, jobs: list[str], rounds: int) -> str:
    """Run every job `rounds` times (each round waited for); pause j01, disable j02. Returns one run's ref."""
    import grpc
    from jobsd_lib.rpc import jobsd_pb2 as pb, jobsd_pb2_grpc as g

    with grpc.insecure_channel(f"unix:{daemon.sock}") as ch:
        stub = g.JobsStub(ch)
        ref = ""
        for _ in range(rounds):
            refs = [stub.RunJob(pb.RunJobRequest(job=j), timeout=10).ref for j in jobs]
            for r in refs:
                end = time.monotonic() + 30
                while not stub.GetRun(pb.GetRunRequest(run=r), timeout=10).HasField("finished_at"):
                    if time.monotonic() > end:
                        raise RuntimeError(f"run {r} did not finish")
                    time.sleep(0.005)
            ref = refs[0]
        if len(jobs) > 2:
            stub.PauseJob(pb.JobRequest(job=jobs[1]), timeout=10)
            stub.DisableJob(pb.JobRequest(job=jobs[2]), timeout=10)
        return ref


def show(title: str, values: list[float]) -> str:
    return (f"{title}: n={len(values)} p50 {percentile(values, 50):.1f}, p90 {percentile(values, 90):.1f}, "
            f"p99 {percentile(values, 99):.1f}, max {max(values):.1f}")


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        sock, rpc, ref, threads, ready, stop, out = sys.argv[2:9]
        return worker(sock, rpc, ref, int(threads), ready, stop, out)

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=21)
    ap.add_argument("--history", type=int, default=10, help="runs of every job before measuring")
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--procs", type=int, default=4, help="worker processes the clients are spread over")
    ap.add_argument("--cli-runs", type=int, default=30)
    ap.add_argument("--alone", type=float, default=3.0, help="seconds of one-client calls per RPC")
    args = ap.parse_args()
    deadline = Deadline(BUDGET_SECONDS)
    version = code_version()
    print(version)
    print(f"{os.cpu_count()} CPUs, load average before: {load_average()}")
    jobsctl = venv_tool("jobsctl")
    home = short_tmpdir("jbl")
    specs = job_specs(args.jobs)
    write_jobs(home, specs)
    daemon = Daemon(home)
    try:
        daemon.start()
        ref = make_history(daemon, sorted(specs), args.history)
        print(f"{args.jobs} jobs, {args.history} runs each; GetRun asks for {ref}; {args.clients} clients over "
              f"{args.procs} processes")
        idle = time_cli(jobsctl, daemon.sock, args.cli_runs)
        rates = {rpc: alone(daemon.sock, rpc, ref, args.alone) for rpc in ("ListJobs", "GetRun")}
        print("\nidle")
        print("  " + show("jobs list (ms)", idle))
        print(f"  one client, one call at a time: ListJobs {rates['ListJobs']:.0f} calls/s, "
              f"GetRun {rates['GetRun']:.0f} calls/s")
        for rpc in ("ListJobs", "GetRun"):
            if deadline.left() < 40:
                print(f"\nskipped the {rpc} load: time budget")
                continue
            res = under_load(daemon, rpc, ref, args, jobsctl, home)
            print(f"\nunder {args.clients} clients calling {rpc} ({res['seconds']:.1f} s window; CPU, % of one core: "
                  f"daemon {res['cpu']:.0f}, client processes {res['clients_cpu']:.0f})")
            print(f"  {rpc}: {res['rate']:.0f} calls/s; " + show("latency per call (ms)", res["latency"]))
            print("  " + show("jobs list (ms)", res["cli"]))
            print(f"  jobs list p99 / idle p99 = {percentile(res['cli'], 99) / percentile(idle, 99):.2f}, "
                  f"p50 / idle p50 = {percentile(res['cli'], 50) / percentile(idle, 50):.2f}")
            if res["error_count"]:
                print(f"  {res['error_count']} client calls failed, e.g. {res['errors'][:3]}")
    finally:
        daemon.stop()
        shutil.rmtree(home, ignore_errors=True)
    print(f"\nload average after: {load_average()}")
    if code_version() != version:
        print(f"!! the code changed during the run: now {code_version()}")
    print_reproduce("listjobs_load.py", sys.argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
