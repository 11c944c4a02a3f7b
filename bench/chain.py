"""A linear `after` chain of `true` jobs (DESIGN 10): what one link costs, against a manual run.

Per link: the downstream's attempt `started_at` minus its upstream's `finished_at` (the daemon's own
clock, so no client in the figure), over a chain of --links jobs started by one RunJob of the first.
Peer, measured in the same daemon and run: a manual RunJob of a `true` job, from the client's send
to the attempt's `started_at` (the figure a dependency link replaces), --manual sequential runs.
Also how long the whole chain took, and admission with gates: RunJob -> started_at of a job whose
`[[requires]]` gate is met (one store read of the required job's latest outcome) against the
ungated job, interleaved in tens. Asserts nothing.

    .venv/bin/python bench/chain.py [--links 100] [--manual 100] [--rounds 3]
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import Daemon, Deadline, code_version, print_footer, short_tmpdir, summary, write_jobs  # noqa: E402


def _ms(stamp) -> float:  # noqa: ANN001 - a protobuf Timestamp
    return stamp.ToNanoseconds() / 1e6


def _wait(what: str, done) -> object:  # noqa: ANN001
    deadline = Deadline(120)
    while not (answer := done()):
        if deadline.passed():
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.005)
    return answer


def chain_links(jobs, pb, links: int, round_: int) -> tuple[list[float], float]:  # noqa: ANN001
    """Start the chain (its `round_`-th time) and wait for its last job's `round_`-th success."""
    first = jobs.RunJob(pb.RunJobRequest(job="c000"), timeout=10)
    last_id = f"c{links - 1:03d}"
    _wait(f"{last_id} to succeed", lambda: sum(r.state == pb.RUN_STATE_SUCCEEDED for r in jobs.ListRuns(
        pb.ListRunsRequest(job=last_id, limit=1000), timeout=10).runs) >= round_)
    newest = {f"c{i:03d}": jobs.ListRuns(pb.ListRunsRequest(job=f"c{i:03d}", limit=1), timeout=10).runs[0]
              for i in range(links)}
    gaps = [_ms(newest[f"c{i:03d}"].started_at) - _ms(newest[f"c{i - 1:03d}"].finished_at) for i in range(1, links)]
    whole = _ms(newest[last_id].finished_at) - _ms(jobs.GetRun(pb.GetRunRequest(run=first.ref), timeout=10).started_at)
    return gaps, whole


def manual_runs(jobs, pb, count: int, job: str = "manual") -> list[float]:  # noqa: ANN001
    out = []
    for _ in range(count):
        sent = time.time_ns() / 1e6
        run = jobs.RunJob(pb.RunJobRequest(job=job), timeout=10)
        got = _wait(f"{run.ref} to finish", lambda: (r := jobs.GetRun(pb.GetRunRequest(run=run.ref), timeout=10))
                    .state == pb.RUN_STATE_SUCCEEDED and r)
        out.append(_ms(got.started_at) - sent)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--links", type=int, default=100)
    parser.add_argument("--manual", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    opts = parser.parse_args()
    version = code_version()
    import grpc

    from jobsd_lib.rpc import jobsd_pb2 as pb, jobsd_pb2_grpc as g

    home = short_tmpdir("jbc")
    specs = {"c000": 'command = "true"\n', "manual": 'command = "true"\n',
             "gated": 'command = "true"\n[[requires]]\njob = "manual"\nsucceeded_within = "1h"\n'}
    specs.update({f"c{i:03d}": f'command = "true"\nafter = ["c{i - 1:03d}"]\n' for i in range(1, opts.links)})
    write_jobs(home, specs)
    daemon = Daemon(home).start()
    try:
        with grpc.insecure_channel(f"unix:{daemon.sock}") as channel:
            jobs = g.JobsStub(channel)
            manual_runs(jobs, pb, 10)  # warm-up
            gaps, manual, wholes, gated = [], [], [], []
            for round_ in range(1, opts.rounds + 1):  # alternate, so that a slow minute falls on both
                link, whole = chain_links(jobs, pb, opts.links, round_)
                gaps += link
                wholes.append(whole)
                for _ in range(opts.manual // 10):  # interleaved in tens: gated (its gate met), ungated
                    gated += manual_runs(jobs, pb, 10, "gated")
                    manual += manual_runs(jobs, pb, 10)
        print(f"{opts.links}-job chain of `true`, {opts.rounds} rounds; {opts.manual} manual runs a round")
        print(f"  link: upstream finished_at -> downstream started_at (ms)  {summary(gaps)}")
        print(f"  peer: manual RunJob send -> attempt started_at (ms)       {summary(manual)}")
        print(f"  gated: RunJob send -> started_at, its gate met (ms) {summary(gated)}")
        print(f"  whole chain (first started_at -> last finished_at): {', '.join(f'{w:.0f}' for w in wholes)} ms")
        med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
        print(f"median link / median manual RunJob -> exec: {med(gaps) / med(manual):.2f} "
              "(goal in the issue: < 5 ms a link, within 2x)")
        print(f"median gated / ungated RunJob -> exec: {med(gated) / med(manual):.2f} (goal: within 1.2x)")
    finally:
        daemon.stop()
        shutil.rmtree(home, ignore_errors=True)
    print_footer("chain.py", sys.argv[1:], version)


if __name__ == "__main__":
    main()
