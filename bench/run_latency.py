"""RunJob-to-child-exec latency of a trivial job, with the daemon's own timestamps as milestones.

The job is `sh -c 'date +%s%N >> STAMPS'`: the child writes its own wall-clock start time. Runs
are sequential on one job (each waits for the previous one to finish, so the "one active run per
job" rule never refuses one). For each run, with t0 = client wall clock just before RunJob is sent:

  RunJob RPC returned   the unary call came back (the run is durably recorded and started)
  run.queued_at         the daemon's timestamp when it admitted the run (before its DB commit)
  attempt started_at    the daemon's timestamp taken right after the child was spawned (exec'd)
  child `date`          the time printed by `date` in the child (sh has exec'd date by then: ~1 ms)
  run.finished_at       the daemon's timestamp when the run was recorded finished

While the child starts, the client only stat()s the STAMPS file every 1 ms (no RPC), so it does not
load the daemon; once the stamp is there it follows the run with Tail(follow=True) to its end.

Floors, timed the same way (t0 just before the call, same command, same pipes/new session):
  subprocess.Popen    returns after the child exec'd (Python waits on its exec-error pipe)
  asyncio subprocess_exec  what the daemon itself uses, in an otherwise idle event loop

All clocks are CLOCK_REALTIME on the same machine. Figures in milliseconds.

Usage: .venv/bin/python bench/run_latency.py [--runs 200] [--warmup 10]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import time

from _common import Daemon, Deadline, percentile, repro_command, short_tmpdir, toml_str_list, write_jobs

BUDGET_SECONDS = 150
TERMINAL = {"RUN_STATE_SUCCEEDED", "RUN_STATE_FAILED", "RUN_STATE_TIMED_OUT", "RUN_STATE_CANCELLED",
            "RUN_STATE_INTERRUPTED", "RUN_STATE_SKIPPED", "RUN_STATE_MISSED"}


def read_stamps(path: str) -> list[int]:
    try:
        with open(path) as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []


def wait_for_lines(path: str, count: int, timeout: float = 10.0) -> None:
    """Wait until `path` holds `count` complete lines, polling its size (no RPC)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with open(path, "rb") as f:
                if f.read().count(b"\n") >= count:
                    return
        except FileNotFoundError:
            pass
        time.sleep(0.001)
    raise TimeoutError(f"{path}: fewer than {count} lines after {timeout}s")


def table(rows: list[tuple[str, list[float]]]) -> None:
    print(f"  {'milestone (ms after t0)':44} {'n':>4} {'min':>7} {'median':>7} {'p90':>7} {'p99':>7} {'max':>7}")
    for name, v in rows:
        if not v:
            continue
        print(f"  {name:44} {len(v):4d} {min(v):7.2f} {percentile(v, 50):7.2f} {percentile(v, 90):7.2f} "
              f"{percentile(v, 99):7.2f} {max(v):7.2f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=10)
    args = ap.parse_args()
    deadline = Deadline(BUDGET_SECONDS)

    import grpc
    from jobsd_lib.rpc import jobsd_pb2 as pb, jobsd_pb2_grpc as g

    print(f"run_latency: {args.runs} runs (+{args.warmup} warm-up) of sh -c 'date +%s%N >> FILE', {os.cpu_count()} cpus")
    print("reproduce:", repro_command("run_latency.py", sys.argv[1:]))
    home = short_tmpdir("jbl")
    daemon = Daemon(home)
    try:
        stamps = os.path.join(home, "stamps")
        argv = ["sh", "-c", f"date +%s%N >> {stamps}"]
        write_jobs(home, {"lat": f"command = {toml_str_list(argv)}\n"})
        daemon.start()
        print(f"jobsd ready in {daemon.ready_seconds * 1000:.0f} ms (pid {daemon.pid})")
        ch = grpc.insecure_channel(f"unix:{daemon.sock}")
        stub = g.JobsStub(ch)
        stub.ListJobs(pb.ListJobsRequest())  # connect the channel before timing

        res: dict[str, list[float]] = {k: [] for k in ("rpc", "queued", "started", "child", "finished", "end")}
        total = args.warmup + args.runs
        lines = 0
        for i in range(total):
            if deadline.left() < 60:
                print(f"!! time budget: stopping after {i} runs")
                break
            t0 = time.time_ns()
            run = stub.RunJob(pb.RunJobRequest(job="lat"), timeout=30)
            t_rpc = time.time_ns()
            lines += 1
            wait_for_lines(stamps, lines)
            end = None
            for msg in stub.Tail(pb.TailRequest(job="lat", run=run.n, follow=True), timeout=30):
                if msg.HasField("end"):
                    end = msg.end.run
            t_end = time.time_ns()
            if end is None or pb.RunState.Name(end.state) not in TERMINAL:
                end = stub.GetRun(pb.GetRunRequest(run=run.ref))
            state = pb.RunState.Name(end.state)
            if state != "RUN_STATE_SUCCEEDED":
                raise RuntimeError(f"run {run.ref} ended {state}: {end}")
            child = read_stamps(stamps)[lines - 1]
            if i < args.warmup:
                continue
            ms = lambda ns: (ns - t0) / 1e6  # noqa: E731
            res["rpc"].append(ms(t_rpc))
            res["queued"].append(ms(end.queued_at.ToNanoseconds()))
            res["started"].append(ms(end.attempt_list[0].started_at.ToNanoseconds()))
            res["child"].append(ms(child))
            res["finished"].append(ms(end.finished_at.ToNanoseconds()))
            res["end"].append(ms(t_end))
        ch.close()

        # ---- floors
        floor_file = os.path.join(home, "floor")
        fargv = ["sh", "-c", f"date +%s%N >> {floor_file}"]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        popen_ret, popen_child = [], []
        for i in range(total):
            t0 = time.time_ns()
            p = subprocess.Popen(fargv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 env=env, start_new_session=True, close_fds=True)
            t_ret = time.time_ns()
            p.communicate()
            if i >= args.warmup:
                popen_ret.append((t_ret - t0) / 1e6)
                popen_child.append((read_stamps(floor_file)[i] - t0) / 1e6)

        afile = os.path.join(home, "afloor")
        aargv = ["sh", "-c", f"date +%s%N >> {afile}"]
        aio_ret, aio_child = [], []

        async def aio_floor() -> None:
            loop = asyncio.get_running_loop()
            for i in range(total):
                t0 = time.time_ns()
                transport, protocol = await loop.subprocess_exec(
                    asyncio.SubprocessProtocol, *aargv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, env=env, start_new_session=True, close_fds=True)
                t_ret = time.time_ns()
                while transport.get_returncode() is None:
                    await asyncio.sleep(0.001)
                transport.close()
                if i >= args.warmup:
                    aio_ret.append((t_ret - t0) / 1e6)
                    aio_child.append((read_stamps(afile)[i] - t0) / 1e6)

        asyncio.run(aio_floor())

        print(f"\njobsd: RunJob -> child, sequential runs of one job (t0 = client clock just before RunJob)")
        table([
            ("RunJob RPC returned to client", res["rpc"]),
            ("run.queued_at (daemon admitted it)", res["queued"]),
            ("attempt started_at (daemon, after spawn)", res["started"]),
            ("child `date` ran", res["child"]),
            ("run.finished_at (daemon recorded the end)", res["finished"]),
            ("Tail(follow) delivered the end to client", res["end"]),
        ])
        print("\nfloor: the same command spawned directly from Python (t0 = just before the call)")
        table([
            ("subprocess.Popen returned (child exec'd)", popen_ret),
            ("  child `date` ran", popen_child),
            ("asyncio subprocess_exec returned", aio_ret),
            ("  child `date` ran", aio_child),
        ])
        d = percentile(res["child"], 50) - percentile(popen_child, 50)
        print(f"\nmedian overhead of jobsd over a bare Popen, to the child's `date`: {d:.2f} ms "
              f"(p99: jobsd {percentile(res['child'], 99):.2f} ms vs Popen {percentile(popen_child, 99):.2f} ms)")
        print("\nreproduce:", repro_command("run_latency.py", sys.argv[1:]))
        return 0
    finally:
        daemon.stop()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
