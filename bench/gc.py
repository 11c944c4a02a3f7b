"""`jobsctl gc` of 10,000 finished runs: time taken, bytes freed, and whether the daemon stays responsive.

Set-up: a daemon with 20 jobs (`sh -c 'echo run $JOBSD_RUN; echo done >&2'`) and
`--max-concurrent-runs 4`; 20 client threads (one a job) start runs and wait for each with a
following Tail until 10,000 runs have finished. Every run is real: a child process, its
artifact folder (run_receipt.json, summary.md, events.jsonl, attempt-1.log/.idx) and its rows.
Then, with the daemon idle:

  gc --dry-run       CollectGarbage(keep_last=0, older_than=0, dry_run) RPC time (selection + sizing)
  gc                 CollectGarbage(keep_last=0, older_than=0) RPC time: deletes 10,000 runs' rows
                     and folders
  responsiveness     while the real gc runs, another thread calls GetRun in a loop: its latency
                     (p50/p99/max) shows whether gc holds the event loop
  after              a new run still starts and succeeds; daemon RSS and store size before/after

Usage: .venv/bin/python bench/gc.py [--runs 10000] [--jobs 20]
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time

from _common import Daemon, percentile, repro_command, short_tmpdir, write_jobs


def dir_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(root, f)) for root, _d, files in os.walk(path) for f in files)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--jobs", type=int, default=20)
    args = ap.parse_args()

    import grpc
    from jobsd_lib.rpc import jobsd_pb2 as pb, jobsd_pb2_grpc as g

    home = short_tmpdir("jbg")
    daemon: Daemon | None = None
    jobs = [f"g{i:02d}" for i in range(args.jobs)]
    try:
        write_jobs(home, {j: """command = ["sh", "-c", "echo run $JOBSD_RUN; echo done >&2"]\n""" for j in jobs})
        daemon = Daemon(home, max_concurrent=4).start()
        channel = grpc.insecure_channel(f"unix:{daemon.sock}")
        jobs_stub, daemon_stub = g.JobsStub(channel), g.DaemonStub(channel)

        per_job = args.runs // args.jobs
        t0 = time.perf_counter()

        errors: list[BaseException] = []

        def worker(job: str) -> None:
            try:
                for _ in range(per_job):
                    run = jobs_stub.RunJob(pb.RunJobRequest(job=job), timeout=30)
                    for message in jobs_stub.Tail(pb.TailRequest(job=job, run=run.n, follow=True), timeout=60):
                        if message.HasField("end"):
                            assert message.end.run.state == pb.RUN_STATE_SUCCEEDED, message.end.run
            except BaseException as exc:  # noqa: BLE001 - reported below, after every thread ended
                errors.append(exc)
        threads = [threading.Thread(target=worker, args=(j,)) for j in jobs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        made = time.perf_counter() - t0
        if errors:
            raise errors[0]
        total = per_job * args.jobs
        runs_dir = os.path.join(home, "runs")
        artifacts = dir_bytes(runs_dir)
        store = os.path.join(home, "db", "jobsd.sqlite3")
        before = daemon.proc_status("VmRSS", "VmHWM")
        print(f"made {total:,} real runs in {made:.1f} s ({total / made:.0f} runs/s); artifacts {artifacts / 2**20:.1f} MiB "
              f"in {sum(len(os.listdir(os.path.join(runs_dir, j))) for j in jobs):,} folders; "
              f"store {os.path.getsize(store) / 2**20:.1f} MiB; daemon RSS {before['VmRSS']}")

        t = time.perf_counter()
        preview = daemon_stub.CollectGarbage(pb.CollectGarbageRequest(keep_last=0, older_than_seconds=0, dry_run=True),
                                             timeout=600)
        dry = time.perf_counter() - t
        assert preview.removed_count == total, preview.removed_count

        latencies: list[float] = []
        stop = threading.Event()
        probe_ref = f"{jobs[0]}/{per_job}"

        def probe() -> None:
            while not stop.is_set():
                s = time.perf_counter()
                jobs_stub.GetRun(pb.GetRunRequest(run=probe_ref), timeout=30)
                latencies.append((time.perf_counter() - s) * 1e3)
        prober = threading.Thread(target=probe)
        prober.start()
        t = time.perf_counter()
        done = daemon_stub.CollectGarbage(pb.CollectGarbageRequest(keep_last=1, older_than_seconds=0), timeout=600)
        real = time.perf_counter() - t
        stop.set()
        prober.join()

        kept = args.jobs  # keep_last=1: each job keeps its newest run
        assert done.removed_count == total - kept, done.removed_count
        left = sum(len(os.listdir(os.path.join(runs_dir, j))) for j in jobs)
        after_run = jobs_stub.RunJob(pb.RunJobRequest(job=jobs[1]), timeout=30)
        for message in jobs_stub.Tail(pb.TailRequest(job=jobs[1], run=after_run.n, follow=True), timeout=60):
            if message.HasField("end"):
                assert message.end.run.state == pb.RUN_STATE_SUCCEEDED
        after = daemon.proc_status("VmRSS", "VmHWM")

        print(f"\n{'step':34} {'time':>10}  detail")
        print(f"{'gc --dry-run (keep 0, older 0s)':34} {dry:9.2f}s  would remove {preview.removed_count:,} runs, "
              f"{preview.bytes_freed / 2**20:.1f} MiB")
        print(f"{'gc (keep-last 1, older 0s)':34} {real:9.2f}s  removed {done.removed_count:,} runs, "
              f"{done.bytes_freed / 2**20:.1f} MiB freed, {len(done.removed):,} refs listed; {left} folders left")
        print(f"{'GetRun during gc (ms)':34} {'':>10}  n={len(latencies)} p50={percentile(latencies, 50):.2f} "
              f"p99={percentile(latencies, 99):.2f} max={max(latencies):.2f}")
        print(f"{'after':34} {'':>10}  new run {after_run.ref} succeeded; RSS {before['VmRSS']} -> {after['VmRSS']} "
              f"(peak {after['VmHWM']}); store file {os.path.getsize(store) / 2**20:.1f} MiB (SQLite reuses freed pages)")
        for line in open(daemon.log_path, errors="replace"):
            if "gc by" in line:
                print(f"{'daemon log':34} {'':>10}  {line.strip()[-80:]}")
        print(f"\nload average: {os.getloadavg()[0]:.2f} (1 min); 2 cores")
        print("reproduce:", repro_command("gc.py", sys.argv[1:]))
        return 0
    finally:
        if daemon is not None:
            daemon.stop()
        import shutil
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
