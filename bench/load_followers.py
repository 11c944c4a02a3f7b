"""200 concurrent clients plus 50 followers of one run: every follower must get every byte.

The job is a one-line `python3 -c` program that waits for a "go" file, then writes a known binary
pattern to stdout: --blocks blocks of 65,536 bytes, block i being all 256 byte values repeated and
rotated by i (NUL, newlines, invalid UTF-8; lines of 256 bytes), then one 600,000-byte run of
`\\x00\\xff` with no newline at all, flushing after each block and sleeping --interval between
blocks. The client computes the same bytes and their SHA-256.

On one daemon with --jobs extra jobs that have a few runs each (so ListJobs has something to
read), in this order:
  1. RunJob the writer; start --followers followers, Tail(follow=True, from the start), and
     --clients clients, each on its own gRPC channel with its own connection, all spread over
     --procs worker processes (threads within each); a client loops over ListJobs, GetRun (of
     the followed run) and GetHealth, one call at a time;
  2. once GetHealth reports every follower attached and every client has had an answer, create
     the go file;
  3. wait for every follower's end message; then stop the clients.
Per follower: bytes received, contiguous offsets (each chunk's offset = bytes so far), SHA-256,
the end message's run state. Printed: how many got every byte (the goal: all of them), the last
end message's time after go, the clients' calls/s and latency per RPC, daemon CPU (% of one core)
and peak RSS (VmHWM). Asserts nothing about timings; exits 1 if a follower missed a byte.

Usage: .venv/bin/python bench/load_followers.py [--clients 200] [--followers 50] [--blocks 160]
                                                [--interval 0.02] [--procs 4] [--jobs 20]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time

from _common import (cpu_seconds, proc_kb, Daemon, Deadline, code_version, load_average, percentile, print_reproduce, short_tmpdir,
                     toml_str_list, write_jobs)

BUDGET_SECONDS = 170
JOB = "pattern"
BLOCK = 65_536
TAIL = b"\x00\xff" * 300_000  # 600,000 bytes without a newline
RPCS = ("ListJobs", "GetRun", "GetHealth")


def writer_program(blocks: int, interval: float) -> str:
    """Block i: bytes 0..255 repeated, rotated by i (the same as expected_bytes)."""
    return ("import os,sys,time; w=sys.stdout.buffer; b=bytes(range(256))*257; "
            "[time.sleep(0.001) for _ in iter(lambda: os.path.exists(sys.argv[1]), True)]; "
            f"[(w.write(b[i % 256:i % 256 + {BLOCK}]), w.flush(), time.sleep({interval!r})) for i in range({blocks})]; "
            f"w.write(b'\\x00\\xff' * {len(TAIL) // 2}); w.flush()")


def expected_bytes(blocks: int) -> bytes:
    pattern = bytes(range(256)) * 257
    return b"".join(pattern[i % 256:i % 256 + BLOCK] for i in range(blocks)) + TAIL






# ------------------------------------------------------------------ worker process

def worker(sock: str, run: int, ref: str, followers: int, clients: int, ready_path: str, stop_path: str,
           out_path: str) -> int:
    """`followers` Tail followers and `clients` RPC loops; one JSON result file."""
    import grpc
    from jobsd_lib.rpc import jobsd_pb2 as pb, jobsd_pb2_grpc as g

    options = [("grpc.use_local_subchannel_pool", 1), ("grpc.max_receive_message_length", 64 << 20)]
    follows: list[dict] = [{} for _ in range(followers)]
    calls: dict[str, list[float]] = {rpc: [] for rpc in RPCS}
    errors: list[str] = []
    answered = threading.Barrier(clients + 1)

    def follow(k: int) -> None:
        res = follows[k]
        res.update(bytes=0, contiguous=True, end=None, error=None)
        digest = hashlib.sha256()
        try:
            with grpc.insecure_channel(f"unix:{sock}", options=options) as ch:
                for m in g.JobsStub(ch).Tail(pb.TailRequest(job=JOB, run=run, follow=True), timeout=150):
                    kind = m.WhichOneof("kind")
                    if kind == "chunk":
                        if m.chunk.offset != res["bytes"]:
                            res["contiguous"] = False
                        res["bytes"] += len(m.chunk.data)
                        digest.update(m.chunk.data)
                    elif kind == "end":
                        res["end"], res["end_at"] = pb.RunState.Name(m.end.run.state), time.time()
                        break
        except grpc.RpcError as err:
            res["error"] = f"{err.code().name}: {err.details()}"
        res["sha256"] = digest.hexdigest()

    def client(k: int) -> None:
        with grpc.insecure_channel(f"unix:{sock}", options=options) as ch:
            jobs, health = g.JobsStub(ch), g.DaemonStub(ch)
            do = {"ListJobs": lambda: jobs.ListJobs(pb.ListJobsRequest(), timeout=60),
                  "GetRun": lambda: jobs.GetRun(pb.GetRunRequest(run=ref), timeout=60),
                  "GetHealth": lambda: health.GetHealth(pb.GetHealthRequest(), timeout=60)}
            i, first = k, True
            while True:
                rpc = RPCS[i % len(RPCS)]
                i += 1
                t0 = time.perf_counter()
                try:
                    do[rpc]()
                except grpc.RpcError as err:
                    errors.append(f"{rpc} {err.code().name}: {err.details()}")
                calls[rpc].append((time.perf_counter() - t0) * 1000)
                if first:
                    first = False
                    answered.wait()
                if os.path.exists(stop_path):
                    return

    threads = [threading.Thread(target=follow, args=(k,), daemon=True) for k in range(followers)]
    threads += [threading.Thread(target=client, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    answered.wait()
    open(ready_path, "w").close()
    for t in threads:
        t.join(160)
    with open(out_path, "w") as f:
        json.dump({"follows": follows, "calls": calls, "errors": errors[:20], "error_count": len(errors)}, f)
    return 0


# ------------------------------------------------------------------ the run

def spread(total: int, parts: int, p: int) -> int:
    return total // parts + (1 if p < total % parts else 0)


def history(daemon: Daemon, jobs: int) -> None:
    import grpc
    from jobsd_lib.rpc import jobsd_pb2 as pb, jobsd_pb2_grpc as g

    with grpc.insecure_channel(f"unix:{daemon.sock}") as ch:
        stub = g.JobsStub(ch)
        for _ in range(3):
            refs = [stub.RunJob(pb.RunJobRequest(job=f"j{k:02d}"), timeout=10).ref for k in range(jobs)]
            for ref in refs:
                while not stub.GetRun(pb.GetRunRequest(run=ref), timeout=10).HasField("finished_at"):
                    time.sleep(0.005)


def run_load(args, python3: str, deadline: Deadline) -> dict:  # noqa: ANN001
    import grpc
    from jobsd_lib.rpc import jobsd_pb2 as pb, jobsd_pb2_grpc as g

    home = short_tmpdir("jbw")
    go_file, stop_file = os.path.join(home, "go"), os.path.join(home, "stop")
    specs = {f"j{k:02d}": f'command = ["{"false" if k % 3 == 2 else "true"}"]\n' for k in range(args.jobs)}
    specs[JOB] = f"command = {toml_str_list([python3, '-c', writer_program(args.blocks, args.interval), go_file])}\n"
    write_jobs(home, specs)
    daemon = Daemon(home)
    workers: list[subprocess.Popen] = []
    out: dict = {}
    try:
        daemon.start()
        history(daemon, args.jobs)
        with grpc.insecure_channel(f"unix:{daemon.sock}") as ch:
            jobs, health = g.JobsStub(ch), g.DaemonStub(ch)
            run = jobs.RunJob(pb.RunJobRequest(job=JOB), timeout=10)
            for p in range(args.procs):
                paths = [os.path.join(home, f"w{p}.{x}") for x in ("ready", "json", "err")]
                err = open(paths[2], "wb")
                w = subprocess.Popen([sys.executable, __file__, "--worker", daemon.sock, str(run.n), run.ref,
                                      str(spread(args.followers, args.procs, p)),
                                      str(spread(args.clients, args.procs, p)), paths[0], stop_file, paths[1]],
                                     stdin=subprocess.DEVNULL, stdout=err, stderr=err)
                err.close()
                w.paths = paths  # type: ignore[attr-defined]
                workers.append(w)
            end = time.monotonic() + 60
            while True:
                attached = health.GetHealth(pb.GetHealthRequest(), timeout=30).followers
                ready = all(os.path.exists(w.paths[0]) for w in workers)  # type: ignore[attr-defined]
                if attached >= args.followers and ready:
                    break
                if time.monotonic() > end or any(w.poll() is not None for w in workers):
                    raise RuntimeError(f"followers or clients did not start ({attached} attached); see {home}/*.err")
                time.sleep(0.05)
            out["attached"] = attached
            cpu0, t0 = cpu_seconds(daemon.pid), time.time()
            open(go_file, "w").close()
            while not jobs.GetRun(pb.GetRunRequest(run=run.ref), timeout=30).HasField("finished_at"):
                if deadline.left() < 20:
                    out["timeout"] = True
                    break
                time.sleep(0.1)
            out["job_seconds"] = time.time() - t0
        # the followers end by themselves; the clients on the stop file, once the followers are done
        follow_end = time.monotonic() + max(10.0, deadline.left() - 15)
        while time.monotonic() < follow_end and not _followers_done(daemon):
            if any(w.poll() is not None for w in workers):
                break
            time.sleep(0.1)
        t1, cpu1 = time.time(), cpu_seconds(daemon.pid)
        open(stop_file, "w").close()
        out["cpu_pct"] = (cpu1 - cpu0) / (t1 - t0) * 100
        out["vmhwm_kb"] = proc_kb(daemon.pid, "VmHWM")
        follows, calls, errors, error_count = [], {rpc: [] for rpc in RPCS}, [], 0
        for w in workers:
            w.wait(timeout=60)
            with open(w.paths[1]) as f:  # type: ignore[attr-defined]
                data = json.load(f)
            follows += data["follows"]
            for rpc in RPCS:
                calls[rpc] += data["calls"][rpc]
            errors += data["errors"]
            error_count += data["error_count"]
        out.update(follows=follows, calls=calls, errors=errors, error_count=error_count, seconds=t1 - t0,
                   last_end=max((f["end_at"] for f in follows if f.get("end_at")), default=t1) - t0)
        return out
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
        daemon.stop()
        shutil.rmtree(home, ignore_errors=True)


def _followers_done(daemon: Daemon) -> bool:
    """Every follower's stream ended: the daemon counts no follower any more."""
    import grpc
    from jobsd_lib.rpc import jobsd_pb2 as pb, jobsd_pb2_grpc as g

    with grpc.insecure_channel(f"unix:{daemon.sock}") as ch:
        return g.DaemonStub(ch).GetHealth(pb.GetHealthRequest(), timeout=30).followers == 0


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        sock, run, ref, followers, clients, ready, stop, out = sys.argv[2:10]
        return worker(sock, int(run), ref, int(followers), int(clients), ready, stop, out)

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--followers", type=int, default=50)
    ap.add_argument("--blocks", type=int, default=160, help="65,536-byte blocks the job writes (then 600,000 bytes)")
    ap.add_argument("--interval", type=float, default=0.02, help="seconds between blocks")
    ap.add_argument("--procs", type=int, default=4, help="worker processes the followers and clients are spread over")
    ap.add_argument("--jobs", type=int, default=20, help="other jobs, with 3 runs each, for ListJobs to list")
    args = ap.parse_args()
    deadline = Deadline(BUDGET_SECONDS)
    version = code_version()
    print(version)
    print(f"{os.cpu_count()} CPUs, load average before: {load_average()}")
    which = shutil.which("python3")
    python3 = (subprocess.run([which, "-c", "import sys; print(sys.executable)"], capture_output=True, text=True)
               .stdout.strip() if which else "") or sys.executable
    data = expected_bytes(args.blocks)
    want = hashlib.sha256(data).hexdigest()
    print(f"job writes {len(data):,} bytes ({args.blocks} blocks of {BLOCK:,} every {args.interval:g} s, then "
          f"{len(TAIL):,} without a newline); SHA-256 {want[:16]}...")
    res = run_load(args, python3, deadline)
    follows = res["follows"]
    exact = [f for f in follows if f["bytes"] == len(data) and f["contiguous"] and f["sha256"] == want
             and f["end"] == "RUN_STATE_SUCCEEDED" and not f["error"]]
    print(f"\n{args.followers} followers ({res['attached']} attached before go) and {args.clients} clients, "
          f"{args.procs} processes")
    print(f"  followers with every byte (count, contiguous offsets, SHA-256, end message succeeded): "
          f"{len(exact)}/{len(follows)}")
    for f in [f for f in follows if f not in exact][:5]:
        print(f"    missing: bytes {f['bytes']:,}, contiguous {f['contiguous']}, sha ok {f['sha256'] == want}, "
              f"end {f['end']}, error {f['error']}")
    print(f"  job done {res['job_seconds']:.2f} s after go; last follower's end message {res['last_end']:.2f} s after go")
    for rpc in RPCS:
        lat = res["calls"][rpc]
        if lat:
            print(f"  {rpc:9s} {len(lat) / res['seconds']:6.0f} calls/s; latency ms p50 {percentile(lat, 50):.1f}, "
                  f"p99 {percentile(lat, 99):.1f}, max {max(lat):.1f}")
    print(f"  client calls failed: {res['error_count']}" + (f", e.g. {res['errors'][:3]}" if res["error_count"] else ""))
    print(f"  daemon CPU {res['cpu_pct']:.0f}% of one core (go -> all followers ended); peak RSS (VmHWM) "
          f"{res['vmhwm_kb']:,} kB")
    if res.get("timeout"):
        print("  STOPPED EARLY: time budget")
    print(f"\nload average after: {load_average()}")
    if code_version() != version:
        print(f"!! the code changed during the run: now {code_version()}")
    print_reproduce("load_followers.py", sys.argv[1:])
    return 0 if len(exact) == len(follows) == args.followers else 1


if __name__ == "__main__":
    sys.exit(main())
