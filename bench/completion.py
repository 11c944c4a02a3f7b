"""Shell completion latency (issue 16 item 8): the whole jobsctl process a Tab press runs, against
`jobsctl --version` (interpreter start and imports, no RPC) and `jobsctl jobs show J` (one small RPC
and its rendering) as peers, measured interleaved in the same run.

--jobs jobs (`true`, manual), the first one with --runs runs. Timed: completing a job id (GetGraph
over every job, filtered by the prefix), a run reference `j00000/` (ListRuns, 20 newest), each
--calls times. A completion should not lag noticeably: it is one command's cost.
Asserts nothing.

    .venv/bin/python bench/completion.py [--jobs 10000] [--runs 50] [--calls 20]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import Daemon, Deadline, code_version, print_footer, short_tmpdir, summary, venv_tool, write_jobs  # noqa: E402


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"{argv} failed: {done.stderr.decode()}")
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--calls", type=int, default=20)
    opts = parser.parse_args()
    version = code_version()
    home = short_tmpdir("jbc")
    write_jobs(home, {f"j{i:05d}": 'command = "true"\n' for i in range(opts.jobs)})
    daemon = Daemon(home).start(timeout=300)
    ctl = venv_tool("jobsctl")
    try:
        import grpc

        from jobsd_lib.rpc import jobsd_pb2 as pb, jobsd_pb2_grpc as g

        with grpc.insecure_channel(f"unix:{daemon.sock}") as channel:
            stub = g.JobsStub(channel)
            last = None
            for _ in range(opts.runs):
                last = stub.RunJob(pb.RunJobRequest(job="j00000"), timeout=10)
                deadline = Deadline(30)
                while stub.GetRun(pb.GetRunRequest(run=last.ref), timeout=10).state in (pb.RUN_STATE_QUEUED, pb.RUN_STATE_RUNNING):
                    if deadline.passed():
                        raise RuntimeError("a run did not finish")
                    time.sleep(0.01)
        base = {**os.environ, "JOBSD_SOCKET": daemon.sock}

        def bash(words: str) -> dict[str, str]:
            return {**base, "_JOBSCTL_COMPLETE": "complete_bash", "COMP_WORDS": words,
                    "COMP_CWORD": str(len(words.split(" ")) - 1)}

        cases = {
            "jobsctl --version (no RPC)": ([ctl, "--version"], base),
            "jobsctl jobs show j00001": ([ctl, "jobs", "show", "j00001"], base),
            "complete `jobs show j0000`": ([ctl], bash("jobsctl jobs show j0000")),
            "complete `runs show j00000/`": ([ctl], bash("jobsctl runs show j00000/")),
        }
        timings: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(opts.calls):
            for name, (argv, env) in cases.items():
                timings[name].append(timed(argv, env))
    finally:
        daemon.stop()
        shutil.rmtree(home, ignore_errors=True)
    med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    show = med(timings["jobsctl jobs show j00001"])
    print(f"{opts.jobs} jobs, {opts.runs} runs of j00000, {opts.calls} calls each, interleaved (ms, wall, whole process)")
    for name, values in timings.items():
        print(f"  {name:32} {summary(values)}   median / jobs show: {med(values) / show:.2f}")
    print_footer("completion.py", sys.argv[1:], version)


if __name__ == "__main__":
    main()
