"""Many followers on one run: daemon CPU, daemon peak RSS, and whether every follower got every byte.

The job is a one-line `python3 -c` program that waits for a "go" file, then writes BLOCKS blocks
of 500,000 bytes (block i is the 10-byte line `%09d\\n` % i repeated 50,000 times), flushing each
and sleeping INTERVAL between blocks: 100 blocks, 0.1 s apart = 50 MB over ~10 s.

For each follower count in --counts (default 0,1,100), on a fresh daemon each time:
  1. RunJob; start the followers: Tail(follow=True, from the start), each on its own gRPC channel
     with a local subchannel pool (its own connection, as separate `jobsctl tail -f` would have),
     spread over --procs worker processes (threads within each), so the clients' GIL is not the
     limit on two cores;
  2. wait until GetHealth reports that many followers, then create the go file;
  3. wait for every follower's `end` message (for 0 followers: for the run to finish).
Daemon CPU = utime+stime from /proc/PID/stat, from step 2 (all attached) to step 3; peak RSS =
VmHWM from /proc/PID/status at the end (the daemon's lifetime peak: it served only this case),
with VmRSS just after start-up for reference. Each follower checks its bytes: total count,
contiguous offsets (each chunk's offset = bytes received so far) and a CRC-32 against the
expected 50 MB. Delivery lag = client clock at a chunk's arrival - the chunk's read_at stamp.

Usage: .venv/bin/python bench/followers.py [--followers 100] [--counts 0,1,100] [--blocks 100]
                                           [--interval 0.1] [--procs 4]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
import zlib

from _common import cpu_seconds, proc_kb, Daemon, Deadline, percentile, repro_command, short_tmpdir, toml_str_list, write_jobs

BUDGET_SECONDS = 160
JOB = "fan"
BLOCK_LINES = 50_000  # 10-byte lines -> 500,000-byte blocks


def writer_program(blocks: int, interval: float) -> str:
    return ("import os,sys,time; w=sys.stdout.buffer; "
            "[time.sleep(0.001) for _ in iter(lambda: os.path.exists(sys.argv[1]), True)]; "
            f"[(w.write(b'%09d\\n' % i * {BLOCK_LINES}), w.flush(), time.sleep({interval!r})) for i in range({blocks})]")


def expected(blocks: int) -> tuple[int, int]:
    crc, size = 0, 0
    for i in range(blocks):
        block = b"%09d\n" % i * BLOCK_LINES
        crc, size = zlib.crc32(block, crc), size + len(block)
    return size, crc






# ------------------------------------------------------------------ worker process

def worker(sock: str, job: str, run: int, threads: int, timeout: float, out_path: str) -> int:
    """Run `threads` followers; write one JSON object with each follower's result to out_path."""
    import grpc
    from jobsd_lib.rpc import jobsd_pb2 as pb, jobsd_pb2_grpc as g

    results: list[dict] = [{} for _ in range(threads)]

    def follow(k: int) -> None:
        res = results[k]
        res.update(bytes=0, chunks=0, contiguous=True, crc=0, end=None, error=None, lags=[])
        try:
            with grpc.insecure_channel(f"unix:{sock}", options=[("grpc.use_local_subchannel_pool", 1)]) as ch:
                stream = g.JobsStub(ch).Tail(pb.TailRequest(job=job, run=run, follow=True), timeout=timeout)
                for m in stream:
                    kind = m.WhichOneof("kind")
                    if kind == "chunk":
                        now = time.time_ns()
                        c = m.chunk
                        if c.offset != res["bytes"]:
                            res["contiguous"] = False
                        res["bytes"] += len(c.data)
                        res["chunks"] += 1
                        res["crc"] = zlib.crc32(c.data, res["crc"])
                        res["lags"].append((now - (c.read_at.seconds * 10**9 + c.read_at.nanos)) / 1e6)
                    elif kind == "end":
                        res["end"] = pb.RunState.Name(m.end.run.state)
                        res["end_at"] = time.time_ns()
                        break
        except grpc.RpcError as err:
            res["error"] = f"{err.code().name}: {err.details()}"
        except Exception as err:  # noqa: BLE001 - reported, not raised: one follower's failure is a result
            res["error"] = repr(err)

    r0 = resource.getrusage(resource.RUSAGE_SELF)
    ts = [threading.Thread(target=follow, args=(k,), daemon=True) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout + 10)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    with open(out_path, "w") as f:
        json.dump({"followers": results, "cpu": cpu}, f)
    return 0


# ------------------------------------------------------------------ one case

def run_case(nfollowers: int, args, python3: str, deadline: Deadline) -> dict:  # noqa: ANN001
    import grpc
    from jobsd_lib.rpc import jobsd_pb2 as pb, jobsd_pb2_grpc as g

    home = short_tmpdir("jbf")
    go_file = os.path.join(home, "go")
    write_jobs(home, {JOB: f"command = {toml_str_list([python3, '-c', writer_program(args.blocks, args.interval), go_file])}\n"})
    daemon = Daemon(home)
    workers: list[subprocess.Popen] = []
    out: dict = {"n": nfollowers}
    try:
        daemon.start()
        pid = daemon.pid
        out["rss_start_kb"] = proc_kb(pid, "VmRSS")
        with grpc.insecure_channel(f"unix:{daemon.sock}") as ch:
            jobs, health = g.JobsStub(ch), g.DaemonStub(ch)
            run = jobs.RunJob(pb.RunJobRequest(job=JOB), timeout=10)
            timeout = max(20.0, deadline.left() - 20)
            procs = min(args.procs, nfollowers) or 0
            for p in range(procs):
                share = nfollowers // procs + (1 if p < nfollowers % procs else 0)
                out_path = os.path.join(home, f"worker-{p}.json")
                err = open(os.path.join(home, f"worker-{p}.err"), "wb")
                w = subprocess.Popen([sys.executable, __file__, "--worker", daemon.sock, JOB, str(run.n), str(share),
                                      str(timeout), out_path], stdin=subprocess.DEVNULL, stdout=err, stderr=err)
                err.close()
                w.out_path, w.err_path = out_path, err.name  # type: ignore[attr-defined]
                workers.append(w)
            end = time.monotonic() + 60
            seen = 0
            while time.monotonic() < end:
                seen = health.GetHealth(pb.GetHealthRequest(), timeout=10).followers
                if seen >= nfollowers:
                    break
                time.sleep(0.05)
            out["attached"] = seen

            cpu0, t0 = cpu_seconds(pid), time.time_ns()
            open(go_file, "w").close()
            peak_followers, done_run = seen, None
            while True:  # sample health while the run and its followers are going
                h = health.GetHealth(pb.GetHealthRequest(), timeout=10)
                peak_followers = max(peak_followers, h.followers)
                if done_run is None:
                    r = jobs.GetRun(pb.GetRunRequest(run=run.ref), timeout=10)
                    if r.HasField("finished_at"):
                        done_run = r
                if done_run is not None and all(w.poll() is not None for w in workers):
                    break
                if deadline.left() < 5:
                    out["timeout"] = True
                    break
                time.sleep(0.2)
            t1 = time.time_ns()
            out["cpu"] = cpu_seconds(pid) - cpu0
            out["vmhwm_kb"] = proc_kb(pid, "VmHWM")
            out["rss_end_kb"] = proc_kb(pid, "VmRSS")
            out["followers_after"] = health.GetHealth(pb.GetHealthRequest(), timeout=10).followers
            if done_run is not None:
                att = done_run.attempt_list[-1]
                out["job_seconds"] = (att.finished_at.seconds * 10**9 + att.finished_at.nanos - t0) / 1e9
                out["stored"] = att.output_bytes
                out["state"] = pb.RunState.Name(done_run.state)
        results, client_cpu = [], 0.0
        for w in workers:
            w.wait(timeout=30)
            try:
                with open(w.out_path) as f:
                    data = json.load(f)
            except (OSError, json.JSONDecodeError):
                with open(w.err_path, errors="replace") as f:
                    raise RuntimeError(f"worker failed (exit {w.returncode}): {f.read()[-2000:]}") from None
            results += data["followers"]
            client_cpu += data["cpu"]
        out["results"], out["client_cpu"] = results, client_cpu
        ends = [r["end_at"] for r in results if r.get("end_at")]
        out["wall"] = ((max(ends) if ends else t1) - t0) / 1e9
        return out
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
        daemon.stop()
        shutil.rmtree(home, ignore_errors=True)


def report(case: dict, size: int, crc: int, baseline: float | None) -> None:
    n = case["n"]
    print(f"\n{n} follower(s):")
    print(f"  attached before go: {case['attached']} (GetHealth.followers); "
          f"job {case.get('state', '?')}, wrote its {case.get('stored', 0):,} bytes in {case.get('job_seconds', float('nan')):.2f} s after go")
    if n:
        print(f"  last follower's end message {case['wall']:.2f} s after go")
    extra = ""
    if n and baseline is not None:
        more = case["cpu"] - baseline
        extra = (f"; {more:.2f} s more than with 0 followers = {more / n * 1000:.1f} ms per follower, "
                 f"{more / (n * size / 1e6) * 1000:.2f} ms per follower-MB")
    print(f"  daemon CPU (all attached -> all ended): {case['cpu']:.2f} s{extra}")
    print(f"  daemon RSS: {case['rss_start_kb']:,} kB after start-up, peak (VmHWM) {case['vmhwm_kb']:,} kB, "
          f"{case['rss_end_kb']:,} kB at the end; GetHealth.followers afterwards {case['followers_after']}")
    if not n:
        return
    res = case["results"]
    full = [r for r in res if r["bytes"] == size and r["contiguous"] and r["crc"] == crc and r["end"] and not r["error"]]
    print(f"  followers that received every byte (count {size:,}, contiguous offsets, CRC-32 match, end message): "
          f"{len(full)}/{n}")
    bad = [r for r in res if r not in full]
    for r in bad[:5]:
        print(f"    incomplete: bytes {r['bytes']:,}, contiguous {r['contiguous']}, crc ok {r['crc'] == crc}, "
              f"end {r['end']}, error {r['error']}")
    lags = [x for r in res for x in r["lags"]]
    chunks = [r["chunks"] for r in res]
    if lags:
        print(f"  chunks per follower {min(chunks)}..{max(chunks)}; delivery lag (arrival - read_at, ms) over "
              f"{len(lags):,} chunks: p50 {percentile(lags, 50):.1f}, p90 {percentile(lags, 90):.1f}, "
              f"p99 {percentile(lags, 99):.1f}, max {max(lags):.1f}")
    print(f"  client CPU (all follower processes): {case['client_cpu']:.2f} s")
    if case.get("timeout"):
        print("  STOPPED EARLY: time budget")


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        sock, job, run, threads, timeout, out_path = sys.argv[2:8]
        return worker(sock, job, int(run), int(threads), float(timeout), out_path)

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--followers", type=int, default=100, help="the big case (shorthand for the last of --counts)")
    ap.add_argument("--counts", default=None, help="comma-separated follower counts, one fresh daemon each (default 0,1,N)")
    ap.add_argument("--blocks", type=int, default=100, help="500,000-byte blocks the job writes")
    ap.add_argument("--interval", type=float, default=0.1, help="seconds between blocks")
    ap.add_argument("--procs", type=int, default=4, help="worker processes the followers are spread over")
    args = ap.parse_args()
    counts = [int(x) for x in args.counts.split(",")] if args.counts else [0, 1, args.followers]
    deadline = Deadline(BUDGET_SECONDS)

    which = shutil.which("python3")
    python3 = (subprocess.run([which, "-c", "import sys; print(sys.executable)"], capture_output=True, text=True)
               .stdout.strip() if which else "") or sys.executable
    size, crc = expected(args.blocks)
    baseline = None
    print(f"job: {python3} -c {writer_program(args.blocks, args.interval)!r} GOFILE")
    print(f"     {size:,} bytes in {args.blocks} blocks, {args.interval:g} s apart; CRC-32 {crc:#010x}; "
          f"{os.cpu_count()} CPUs")
    for n in counts:
        if deadline.left() < 30:
            print(f"\nskipped {n} followers: time budget")
            continue
        case = run_case(n, args, python3, deadline)
        report(case, size, crc, baseline)
        if n == 0:
            baseline = case["cpu"]
    print()
    print("reproduce:", repro_command("followers.py", sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
