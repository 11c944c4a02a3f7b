"""10,000 jobs with 10,000 `after` edges (DESIGN 10): daemon start, Reload and ListJobs, against the
same 10,000 jobs without edges, each in its own daemon, alternating. Edges: job i names job i-1
(i % 100 != 0: chains of 100) and job i-50 (i % 100 >= 50), 10,000 in all... close to it; the
count is printed. Asserts nothing.

    .venv/bin/python bench/graph_reload.py [--jobs 10000] [--rounds 5]
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import Daemon, code_version, print_footer, short_tmpdir, summary, write_jobs  # noqa: E402


def specs(count: int, edges: bool) -> tuple[dict[str, str], int]:
    out, total = {}, 0
    for i in range(count):
        after = []
        if edges and i % 100:
            after.append(f"j{i - 1:05d}")
        if edges and i % 100 >= 50:
            after.append(f"j{i - 50:05d}")
        if edges and i % 100 == 0 and i:
            after.append(f"j{i - 100:05d}")
        total += len(after)
        line = f"after = [{', '.join(repr(a).replace(chr(39), chr(34)) for a in after)}]\n" if after else ""
        out[f"j{i:05d}"] = 'command = "true"\n' + line
    return out, total


def measure(home: str, rounds: int) -> dict[str, list[float]]:
    import grpc

    from jobsd_lib.rpc import jobsd_pb2 as pb, jobsd_pb2_grpc as g

    daemon = Daemon(home).start(timeout=120)
    got = {"start": [daemon.ready_seconds * 1000], "reload": [], "list": []}
    try:
        with grpc.insecure_channel(f"unix:{daemon.sock}") as channel:
            jobs, admin = g.JobsStub(channel), g.DaemonStub(channel)
            for _ in range(rounds):
                t0 = time.perf_counter()
                admin.Reload(pb.ReloadRequest(), timeout=120)
                got["reload"].append((time.perf_counter() - t0) * 1000)
                t0 = time.perf_counter()
                answer = jobs.ListJobs(pb.ListJobsRequest(), timeout=60)
                got["list"].append((time.perf_counter() - t0) * 1000)
                assert len(answer.jobs) > 0
    finally:
        daemon.stop()
    return got


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=5)
    opts = parser.parse_args()
    version = code_version()
    homes, figures = {}, {}
    try:
        for kind in ("edges", "none"):
            homes[kind] = short_tmpdir("jbg")
            files, total = specs(opts.jobs, kind == "edges")
            write_jobs(homes[kind], files)
            print(f"{kind}: {opts.jobs} jobs, {total} edges")
        for kind in ("none", "edges", "none", "edges"):  # alternate: a slow minute falls on both
            for name, values in measure(homes[kind], opts.rounds).items():
                figures.setdefault(kind, {}).setdefault(name, []).extend(values)
        for kind in ("none", "edges"):
            for name in ("start", "reload", "list"):
                print(f"  {kind:5} {name:7} (ms) {summary(figures[kind][name])}")
        med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
        for name in ("start", "reload", "list"):
            print(f"median {name} with edges / without: {med(figures['edges'][name]) / med(figures['none'][name]):.2f}")
    finally:
        for home in homes.values():
            shutil.rmtree(home, ignore_errors=True)
    print_footer("graph_reload.py", sys.argv[1:], version)


if __name__ == "__main__":
    main()
