"""What knowing the caller costs: jobsd's peer relay (jobsd.peer) against a direct gRPC connection.

jobsd accepts on its public socket itself, reads each connection's SO_PEERCRED and relays the bytes
to the gRPC server's private socket beside it (`.<socket name>.grpc`). That private socket is the
gRPC server exactly as it served the public socket before the relay existed (same server, same
options), so one daemon measures both paths in the same run: `relayed` through jobsd.sock,
`direct` straight to the private socket (the bench runs as jobsd's user, which may).

Measured, alternating the two paths, on one daemon:
  unary call          GetJob on an open channel, N calls a pass (microseconds a call)
  new connection      a new channel, connect, one GetJob, close (what each jobsctl command pays)
  Tail replay         Tail(follow=True) of a finished run's BYTES of stored output to one
                      in-process follower (MB/s; MB = 10^6 bytes), with the daemon's CPU seconds
Ratios are relayed / direct (time) or direct / relayed (throughput): above 1 is the relay's cost.

Usage: .venv/bin/python bench/peer_cost.py [--calls 2000] [--connections 200] [--bytes 200000000] [--repeat 3]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from _common import Daemon, Deadline, percentile, repro_command, short_tmpdir, write_jobs
from tail_throughput import cpu_seconds

BUDGET_SECONDS = 170
JOB, FLOOD = "tiny", "flood"


def channel(path: str):  # noqa: ANN201
    import grpc

    return grpc.insecure_channel(f"unix:{path}", options=[("grpc.max_receive_message_length", 64 << 20)])


def stubs(ch):  # noqa: ANN001, ANN201
    from jobsd_lib.rpc import jobsd_pb2 as pb, jobsd_pb2_grpc as g

    return pb, g.JobsStub(ch)


def unary_us(path: str, calls: int) -> list[float]:
    """Per-call microseconds of GetJob on one open channel (one untimed warm-up call)."""
    with channel(path) as ch:
        pb, jobs = stubs(ch)
        request = pb.GetJobRequest(job=JOB)
        jobs.GetJob(request, timeout=10)
        out = []
        for _ in range(calls):
            t0 = time.perf_counter()
            jobs.GetJob(request, timeout=10)
            out.append((time.perf_counter() - t0) * 1e6)
    return out


def connection_ms(path: str, count: int) -> list[float]:
    """Milliseconds of: a new channel, its connection, one GetJob, close."""
    out = []
    for _ in range(count):
        t0 = time.perf_counter()
        with channel(path) as ch:
            pb, jobs = stubs(ch)
            jobs.GetJob(pb.GetJobRequest(job=JOB), timeout=10)
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def replay(path: str, pid: int, n: int) -> tuple[float, float, int]:
    """Seconds, daemon CPU seconds and bytes of Tail(follow=True) of finished run FLOOD/n."""
    with channel(path) as ch:
        pb, jobs = stubs(ch)
        jobs.GetJob(pb.GetJobRequest(job=JOB), timeout=10)  # connected before the clock starts
        cpu0 = cpu_seconds(pid)
        t0 = time.perf_counter()
        got = 0
        for m in jobs.Tail(pb.TailRequest(job=FLOOD, run=n, follow=True), timeout=120):
            if m.WhichOneof("kind") == "chunk":
                got += len(m.chunk.data)
        return time.perf_counter() - t0, cpu_seconds(pid) - cpu0, got


def flood_run(path: str, nbytes: int) -> int:
    with channel(path) as ch:
        pb, jobs = stubs(ch)
        n = jobs.RunJob(pb.RunJobRequest(job=FLOOD), timeout=10).n
        while not jobs.GetRun(pb.GetRunRequest(run=f"{FLOOD}/{n}"), timeout=10).HasField("finished_at"):
            time.sleep(0.05)
    return n


def line(name: str, relayed: list[float], direct: list[float], unit: str) -> str:
    r50, d50 = percentile(relayed, 50), percentile(direct, 50)
    r99, d99 = percentile(relayed, 99), percentile(direct, 99)
    return (f"{name:<16} relayed p50 {r50:9.1f} p99 {r99:9.1f} {unit} | direct p50 {d50:9.1f} p99 {d99:9.1f} {unit}"
            f" | ratio p50 {r50 / d50:.2f} p99 {r99 / d99:.2f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=2000, help="GetJob calls a pass and path")
    ap.add_argument("--connections", type=int, default=200, help="new connections a pass and path")
    ap.add_argument("--bytes", type=int, default=200_000_000, help="stored output replayed by Tail")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    deadline = Deadline(BUDGET_SECONDS)
    home = short_tmpdir()
    write_jobs(home, {JOB: 'command = ["true"]\n',
                      FLOOD: f'command = ["head", "-c", "{args.bytes}", "/dev/zero"]\n[limits]\noutput = "1G"\n'})
    daemon = Daemon(home).start()
    public = daemon.sock
    private = os.path.join(home, ".jobsd.sock.grpc")
    if not os.path.exists(private):
        sys.exit(f"{private} not found: this jobsd has no peer relay (nothing to compare)")
    paths = {"relayed": public, "direct": private}
    unary = {k: [] for k in paths}
    conn = {k: [] for k in paths}
    tail = {k: [] for k in paths}
    try:
        n = flood_run(public, args.bytes)
        for _ in range(args.repeat):
            for name, path in paths.items():
                if deadline.left() < 20:
                    break
                unary[name] += unary_us(path, args.calls)
                conn[name] += connection_ms(path, args.connections)
                seconds, cpu, got = replay(path, daemon.pid, n)
                assert got == args.bytes, f"{name}: {got} bytes of {args.bytes}"
                tail[name].append((seconds, cpu))
    finally:
        daemon.stop()
    print(repro_command("peer_cost.py", sys.argv[1:]))
    print(line("unary GetJob", unary["relayed"], unary["direct"], "us"))
    print(line("new connection", conn["relayed"], conn["direct"], "ms"))
    for name in paths:
        rates = [args.bytes / s / 1e6 for s, _ in tail[name]]
        cpus = [c for _, c in tail[name]]
        print(f"Tail replay {name:<8} {percentile(rates, 50):7.1f} MB/s (median of {len(rates)}: "
              f"{', '.join(f'{r:.0f}' for r in rates)}), daemon CPU {percentile(cpus, 50):.2f} s")
    r = percentile([args.bytes / s for s, _ in tail["relayed"]], 50)
    d = percentile([args.bytes / s for s, _ in tail["direct"]], 50)
    print(f"Tail replay ratio direct/relayed {d / r:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
