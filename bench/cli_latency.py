"""Whole-process wall time of `jobsctl jobs list` (50 jobs) vs `supervisorctl status` (50 programs).

Both clients are Python programs from the same venv, talking to a local daemon over a Unix
socket, so the figures compare like with like: interpreter start, imports, one request, render.
The two commands are run interleaved (alternating which goes first) after a few unmeasured
warm-up runs. Three baselines are timed the same way: `python -c pass` (interpreter start-up alone),
`python -c "import grpc"`, and the floor of the fixed stack: importing typer, grpc and the generated
protobuf module with the collector off, without `ssl`, with the modules jobsctl defers left
unloaded and with no interpreter teardown (what jobsctl's entry point does),
before any channel, request or command code.

Then `python -X importtime` shows where the client's start-up time goes: for
`import jobsctl.cli` (what the brief asked) and for the real `jobsctl jobs list` command
(which also imports grpc and the generated stubs when it connects).

Usage: .venv/bin/python bench/cli_latency.py [--runs 30] [--jobs 50] [--warmup 3]
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time

from _common import Daemon, Deadline, percentile, repro_command, short_tmpdir, venv_tool, write_jobs

BUDGET_SECONDS = 150
FLOOR = ("import gc, os, sys; gc.disable(); sys.modules.setdefault('ssl', None); "
         "from jobsctl.__main__ import _DEFERRED, _defer; [_defer(name) for name in _DEFERRED]; "
         "import typer, grpc, jobsd_lib.rpc.jobsd_pb2; os._exit(0)")


def timed(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    cp = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, env=env)
    return (time.perf_counter() - t0) * 1000.0, cp


def editable_install(py: str) -> bool:
    """Is jobsctl imported from the source tree (pip install -e) rather than from site-packages?"""
    cp = subprocess.run([py, "-c", "import jobsctl; print(jobsctl.__file__)"], capture_output=True, text=True)
    return "site-packages" not in cp.stdout


def supervisor_conf(d: str, programs: int) -> str:
    lines = [
        "[unix_http_server]", f"file={d}/sv.sock", "",
        "[supervisord]", f"logfile={d}/supervisord.log", f"pidfile={d}/supervisord.pid", f"childlogdir={d}",
        "nodaemon=true", "user=root" if os.getuid() == 0 else "", "",
        "[rpcinterface:supervisor]", "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface", "",
        "[supervisorctl]", f"serverurl=unix://{d}/sv.sock", "",
    ]
    for i in range(programs):
        lines += [f"[program:p{i:02d}]", "command=sleep 3600", "autostart=true", "startsecs=0",
                  "stdout_logfile=NONE", "stderr_logfile=NONE", ""]
    return "\n".join(lines)


def importtime_top(argv: list[str], top: int) -> tuple[list[tuple[int, int, str]], int]:
    """Runs argv (a python -X importtime command) twice (the first warms caches); returns the top
    `top` entries by cumulative microseconds, and the sum of the top-level entries' cumulative times."""
    for _ in range(2):
        cp = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    rows, total = [], 0
    for line in cp.stderr.splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        body = line[len("import time:"):]
        try:
            self_us, cum_us, name = body.split("|", 2)
            self_i, cum_i = int(self_us), int(cum_us)
        except ValueError:
            continue
        if not name.startswith("  "):  # a top-level import (one leading space after the bar)
            total += cum_i
        rows.append((cum_i, self_i, name.rstrip()))
    rows.sort(key=lambda r: -r[0])
    return rows[:top], total


def print_importtime(title: str, argv: list[str], top: int) -> None:
    rows, total = importtime_top(argv, top)
    print(f"\n$ {' '.join(argv)}   (top {top} by cumulative time; sum of top-level imports {total / 1000:.1f} ms)")
    print(f"  {'cumul ms':>9} {'self ms':>8}  module (indent = nesting)")
    for cum, self_, name in rows:
        print(f"  {cum / 1000:9.1f} {self_ / 1000:8.2f} {name}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--jobs", type=int, default=50, help="jobs in jobsd and programs in supervisord")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args()
    deadline = Deadline(BUDGET_SECONDS)
    py, jobsctl, supervisord, supervisorctl = (venv_tool(n) for n in ("python", "jobsctl", "supervisord", "supervisorctl"))

    print(f"cli_latency: {args.runs} runs each, {args.jobs} jobs/programs, {os.cpu_count()} cpus")
    print("reproduce:", repro_command("cli_latency.py", sys.argv[1:]))
    if os.environ.get("PYTHONDONTWRITEBYTECODE") and editable_install(py):
        print("note: PYTHONDONTWRITEBYTECODE is set and jobsctl is an editable install, so jobsctl's and "
              "jobsd_lib's modules are compiled from source on every run (a wheel install ships them compiled)")

    home = short_tmpdir("jbc")
    svdir = short_tmpdir("jbs")
    daemon = Daemon(home)
    sv = None
    try:
        write_jobs(home, {f"j{i:02d}": 'command = ["true"]\n' for i in range(args.jobs)})
        daemon.start()
        conf = os.path.join(svdir, "supervisord.conf")
        with open(conf, "w") as f:
            f.write(supervisor_conf(svdir, args.jobs))
        sv = subprocess.Popen([supervisord, "-c", conf], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)

        cmds = {
            "jobsctl jobs list": [jobsctl, "--socket", daemon.sock, "jobs", "list"],
            "supervisorctl status": [supervisorctl, "-c", conf, "status"],
            "baseline: python -c pass": [py, "-c", "pass"],
            "baseline: python -c 'import grpc'": [py, "-c", "import grpc"],
            "floor: typer+grpc+pb2 imports only": [py, "-c", FLOOR],
        }
        # wait until supervisord serves all programs RUNNING
        while True:
            _, cp = timed(cmds["supervisorctl status"])
            if cp.stdout.count(b"RUNNING") >= args.jobs:
                break
            if deadline.left() < BUDGET_SECONDS - 30:
                raise RuntimeError(f"supervisord not ready: {cp.stdout[-500:]!r} {cp.stderr[-500:]!r}")
            time.sleep(0.2)
        # sanity: each command works and lists everything
        _, cp = timed(cmds["jobsctl jobs list"])
        if cp.returncode != 0 or len(cp.stdout.splitlines()) != args.jobs + 1:
            raise RuntimeError(f"jobsctl jobs list failed: rc={cp.returncode} {cp.stdout[-300:]!r} {cp.stderr[-300:]!r}")
        print(f"jobsd ready in {daemon.ready_seconds * 1000:.0f} ms (pid {daemon.pid}); supervisord pid {sv.pid}")

        names = list(cmds)
        for _ in range(args.warmup):
            for n in names:
                timed(cmds[n])
        times: dict[str, list[float]] = {n: [] for n in names}
        for i in range(args.runs):
            if deadline.left() < 40:
                print(f"!! time budget: stopping after {i} runs")
                break
            order = names if i % 2 == 0 else names[::-1]
            for n in order:
                ms, cp = timed(cmds[n])
                if cp.returncode not in (0,):
                    raise RuntimeError(f"{n} exited {cp.returncode}: {cp.stderr[-300:]!r}")
                times[n].append(ms)

        print(f"\nwhole-process wall time, ms (interleaved, after {args.warmup} warm-up runs each)")
        print(f"  {'command':36} {'n':>3} {'median':>8} {'p90':>8} {'min':>8} {'max':>8}")
        for n in names:
            v = times[n]
            print(f"  {n:36} {len(v):3d} {percentile(v, 50):8.1f} {percentile(v, 90):8.1f} {min(v):8.1f} {max(v):8.1f}")
        j, s = percentile(times["jobsctl jobs list"], 50), percentile(times["supervisorctl status"], 50)
        print(f"  median ratio jobsctl / supervisorctl = {j / s:.2f}")

        # the server's share: the same ListJobs request in-process on a warm channel
        import grpc
        from jobsd_lib.rpc import jobsd_pb2 as pb, jobsd_pb2_grpc as g
        with grpc.insecure_channel(f"unix:{daemon.sock}") as ch:
            stub = g.JobsStub(ch)
            stub.ListJobs(pb.ListJobsRequest())
            rpc = []
            for _ in range(args.runs):
                t0 = time.perf_counter()
                stub.ListJobs(pb.ListJobsRequest())
                rpc.append((time.perf_counter() - t0) * 1000.0)
        print(f"  (server share: ListJobs RPC alone, in-process on a warm channel: median {percentile(rpc, 50):.1f} ms, "
              f"p90 {percentile(rpc, 90):.1f} ms)")

        print_importtime("import jobsctl.cli", [py, "-X", "importtime", "-c", "import jobsctl.cli"], args.top)
        print_importtime("jobsctl jobs list", [py, "-X", "importtime", "-m", "jobsctl", "--socket", daemon.sock,
                                               "jobs", "list"], args.top)
        print("\nreproduce:", repro_command("cli_latency.py", sys.argv[1:]))
        return 0
    finally:
        if sv is not None and sv.poll() is None:
            sv.send_signal(signal.SIGTERM)
            try:
                sv.wait(timeout=15)
            except subprocess.TimeoutExpired:
                sv.kill()
                sv.wait()
        daemon.stop()
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(svdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
