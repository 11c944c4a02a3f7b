"""The retention sweep at start-up (issue 16): how long `--retention-older-than 30d` takes to remove
100,000 old runs, and whether ListJobs stays quick meanwhile.

Set-up: --jobs job files j0000.. (`command = "true"`, manual); a daemon is started once on the
empty store (migrations) and stopped; then --runs + --recent finished runs (one attempt row each)
are bulk-inserted with sqlite3 (history.populate: round-robin over the jobs, a year of runs), and
the oldest --runs of them (runs, attempts) are moved back in time so that the newest of them
finished --age-days ago: --runs runs finished between --age-days and --age-days + 365 days ago,
which the sweep removes, and --recent runs of the last few days, which it keeps. Each run also
gets its folder HOME/runs/<job>/<n>/ as the daemon leaves it (run_receipt.json, summary.md,
events.jsonl, attempt-1.log and a matching attempt-1.idx, ~0.75 kB; the receipts are newer than
the runs' ends, so the start-up repair walk finds them final and rewrites nothing): the sweep
removes the rows in transactions of 2,000 (handlers/gc.py GC_BATCH), then the folders in a worker
thread. --no-folders: rows only. No `events` rows are made for these runs (the sweep reads none).

Then jobsd is started with `--retention-older-than 30d`; keep_sweeping sweeps right after
'jobsd ready' (and hourly). Measured:

  sweep             'jobsd ready' -> the 'gc by scheduler removed N runs' log line (its own
                    split: selection, "records" and "files"), the `daemon.gc` audit event, the
                    store's run count polled every 0.1 s on a read-only connection, and the run
                    folders left, counted every second
  ListJobs during   ListJobs on one open channel, one sent every --interval s whether the last
                    one answered or not (a stalled event loop shows as the wait of every call
                    sent meanwhile), from the moment the daemon is ready until the sweep's log
                    line; split at the end of the rows' deletion (the selection and the row
                    batches run on the event loop, the folders in a worker thread)
  ListJobs idle     the same sender over --idle-calls intervals once the sweep and the start-up
                    repair walk are over. Goal: during within 2x of idle (p50 and p99)

The folders are flushed (os.sync) before the daemon starts, as a host's old runs are. With the
folders this takes 3-6 minutes here (making 101,000 folders and sweeping them is disk-bound),
beyond the 3 minutes of the other scripts; --no-folders takes under a minute. Times in ms unless
marked. Asserts no timing.

Usage: .venv/bin/python bench/retention.py [--runs 100000] [--jobs 100] [--recent 1000] [--age-days 60]
                                           [--idle-calls 500] [--interval 0.05] [--no-folders]
                                           [--sweep-timeout 300]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import sqlite3
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import TimedDaemon, code_version, percentile, print_footer, short_tmpdir, summary, write_jobs  # noqa: E402
from history import create_schema, job_ids, populate  # noqa: E402

DAY = 86400.0
STAMP = r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})"
GC_LINE = re.compile(STAMP + r" \w+ jobsd\.gc: gc by (\S+) removed (\d+) runs, (\d+) bytes "
                     r"\(records ([\d.]+)s, files ([\d.]+)s\)", re.M)
READY_LINE = re.compile(STAMP + r" INFO jobsd: jobsd ready", re.M)
REPAIR_LINE = re.compile(STAMP + r" \w+ jobsd\.repair: checked (\d+) run folders in ([\d.]+) s: (\d+) repaired", re.M)


def stamp(text: str) -> float:
    """A log line's asctime (local time, ms) as an epoch."""
    return dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def age_runs(db_path: str, runs: int, age_days: float) -> tuple[float, float, float | None]:
    """Move runs 1..`runs` (the oldest: populate numbers ids in time order) back so that the newest
    of them finished `age_days` ago. Returns their oldest and newest finished_at, and the oldest
    finished_at of the runs left alone."""
    db = sqlite3.connect(db_path, isolation_level=None)
    try:
        newest = db.execute("SELECT max(finished_at) FROM runs WHERE id <= ?", (runs,)).fetchone()[0]
        shift = newest - (time.time() - age_days * DAY)
        db.execute("BEGIN IMMEDIATE")
        db.execute("UPDATE runs SET queued_at = queued_at - :s, started_at = started_at - :s, "
                   "finished_at = finished_at - :s, scheduled_at = scheduled_at - :s WHERE id <= :r",
                   {"s": shift, "r": runs})
        db.execute("UPDATE attempts SET started_at = started_at - :s, finished_at = finished_at - :s "
                   "WHERE run_id <= :r", {"s": shift, "r": runs})
        db.execute("COMMIT")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        old = db.execute("SELECT min(finished_at), max(finished_at) FROM runs WHERE id <= ?", (runs,)).fetchone()
        recent = db.execute("SELECT min(finished_at) FROM runs WHERE id > ?", (runs,)).fetchone()[0]
        return old[0], old[1], recent
    finally:
        db.close()


def make_folders(db_path: str, runs_dir: str) -> tuple[int, int]:
    """A folder per run, shaped like the daemon's (see the module docstring). Returns (folders, bytes)."""
    from jobsd.output import RECORD

    db = sqlite3.connect(db_path)
    rows = db.execute("SELECT job_id, n, state, exit_code, started_at, finished_at FROM runs ORDER BY id").fetchall()
    db.close()
    iso = lambda t: dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat()  # noqa: E731
    total = 0
    made_jobs: set[str] = set()
    for job_id, n, state, code, started, finished in rows:
        if job_id not in made_jobs:
            os.makedirs(os.path.join(runs_dir, job_id), exist_ok=True)
            made_jobs.add(job_id)
        folder = os.path.join(runs_dir, job_id, str(n))
        os.mkdir(folder)
        out = b"run output line\n"
        receipt = json.dumps({"ref": f"{job_id}/{n}", "state": state, "exit_code": code, "started_at": iso(started),
                              "finished_at": iso(finished), "attempts": 1, "command": ["true"],
                              "spec_digest": "sha256:" + "0" * 16, "output_bytes": len(out)}, indent=2).encode()
        summary_md = (f"# {job_id}/{n}: {state}\n\n- started {iso(started)}\n- finished {iso(finished)}\n"
                      f"- exit code {code}\n- attempts 1\n\n```\n{out.decode()}```\n").encode()
        events = b"".join(json.dumps({"ts": iso(t), "type": ty, "run": f"{job_id}/{n}"}).encode() + b"\n"
                          for t, ty in ((started, "run.queued"), (started, "run.started"), (finished, "run.finished")))
        for name, data in (("run_receipt.json", receipt), ("summary.md", summary_md), ("events.jsonl", events),
                           ("attempt-1.log", out), ("attempt-1.idx", RECORD.pack(0, int(started * 1e9), len(out), 1))):
            with open(os.path.join(folder, name), "wb") as f:
                f.write(data)
            total += len(data)
    return len(rows), total


def run_count(db_path: str) -> int:
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return db.execute("SELECT count(*) FROM runs").fetchone()[0]
    finally:
        db.close()


def store_bytes(db_path: str) -> int:
    return sum(os.path.getsize(p) for p in (db_path, db_path + "-wal") if os.path.exists(p))


def folder_count(runs_dir: str) -> int:
    if not os.path.isdir(runs_dir):
        return 0
    return sum(len(os.listdir(os.path.join(runs_dir, j))) for j in os.listdir(runs_dir))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=100_000, help="old runs, removed by the sweep")
    ap.add_argument("--jobs", type=int, default=100)
    ap.add_argument("--recent", type=int, default=1_000, help="runs of the last days, kept")
    ap.add_argument("--age-days", type=float, default=60.0, help="the newest old run finished this long ago")
    ap.add_argument("--idle-calls", type=int, default=500)
    ap.add_argument("--interval", type=float, default=0.05, help="seconds between two ListJobs calls sent")
    ap.add_argument("--no-folders", action="store_true", help="rows only, no run folders")
    ap.add_argument("--sweep-timeout", type=float, default=300.0,
                    help="seconds after the daemon is ready to wait for the sweep's log line")
    args = ap.parse_args()
    version = code_version()

    import grpc
    from jobsd_lib.rpc import jobsd_pb2 as pb, jobsd_pb2_grpc as g

    home = short_tmpdir("jbr")
    daemon: TimedDaemon | None = None
    stop, sending = threading.Event(), threading.Event()  # stop: the pollers; sending: the ListJobs sender
    threads: list[threading.Thread] = []
    try:
        write_jobs(home, {j: 'command = "true"\n' for j in job_ids(args.jobs)})
        create_schema(home)
        db_path, runs_dir = os.path.join(home, "db", "jobsd.sqlite3"), os.path.join(home, "runs")
        load = populate(db_path, args.runs + args.recent, args.jobs)
        oldest, newest, recent = age_runs(db_path, args.runs, args.age_days)
        now = time.time()
        print(f"store: {args.runs + args.recent:,} runs over {args.jobs} jobs + 1 attempt row each, inserted in "
              f"{load['seconds']:.1f} s; {args.runs:,} of them finished {(now - newest) / DAY:.1f}-"
              f"{(now - oldest) / DAY:.1f} days ago, {args.recent:,} in the last {(now - (recent or now)) / DAY:.1f} days")
        if args.no_folders:
            print("run folders: none (rows only)")
        else:
            t = time.perf_counter()
            folders, nbytes = make_folders(db_path, runs_dir)
            print(f"run folders: {folders:,} made in {time.perf_counter() - t:.1f} s, 5 files each, "
                  f"{nbytes / 2**20:.0f} MiB of content")
            t = time.perf_counter()
            os.sync()  # written out, as a host's old runs are: the daemon's synced commits wait for none of them
            print(f"  os.sync() after: {time.perf_counter() - t:.1f} s")
        before = run_count(db_path)
        folders_before = folder_count(runs_dir)
        size_before = store_bytes(db_path)

        counts: list[tuple[float, int]] = []  # (wall time, runs in the store)
        left: list[tuple[float, int]] = []  # (wall time, run folders left), every second

        def poll_count() -> None:
            db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
            try:
                i = 0
                while not stop.is_set():
                    counts.append((time.time(), db.execute("SELECT count(*) FROM runs").fetchone()[0]))
                    if not args.no_folders and i % 10 == 0:
                        left.append((time.time(), folder_count(runs_dir)))
                    i += 1
                    stop.wait(0.1)
            finally:
                db.close()

        threads.append(threading.Thread(target=poll_count, daemon=True))
        threads[-1].start()
        daemon = TimedDaemon(home, extra=["--retention-older-than", "30d"]).start(timeout=120)
        ready_s, log_ready_s = daemon.ready_seconds, daemon.log_ready_seconds()
        channel = grpc.insecure_channel(f"unix:{daemon.sock}")
        stub = g.JobsStub(channel)
        calls: list[tuple[float, float, bool]] = []  # (wall time the call was sent, ms, answered)
        pending: list = []

        def sender() -> None:
            """Open loop: a ListJobs every --interval s whether the last one answered or not, so a
            stalled event loop shows as the wait of every call sent meanwhile."""
            start, k = time.perf_counter(), 0
            while not sending.is_set():
                w, t0 = time.time(), time.perf_counter()
                future = stub.ListJobs.future(pb.ListJobsRequest(), timeout=60)
                future.add_done_callback(lambda f, w=w, t0=t0: calls.append(
                    (w, (time.perf_counter() - t0) * 1000, f.exception() is None)))
                pending.append(future)
                k += 1
                sending.wait(max(0.0, start + k * args.interval - time.perf_counter()))

        threads.append(threading.Thread(target=sender, daemon=True))
        threads[-1].start()

        idle_seconds = args.idle_calls * args.interval
        gc_match = repair_match = None
        waited = time.monotonic()
        while time.monotonic() - waited < args.sweep_timeout and (gc_match is None or repair_match is None):
            if daemon.proc.poll() is not None:
                raise RuntimeError(f"jobsd exited with {daemon.proc.returncode} during the sweep; log:\n"
                                   f"{daemon.log_tail()}")
            text = open(daemon.log_path, errors="replace").read()
            since = list(READY_LINE.finditer(text))[-1].end()  # this start's lines, not create_schema's
            gc_match, repair_match = GC_LINE.search(text, since), REPAIR_LINE.search(text, since)
            time.sleep(0.05)
        ready = stamp(list(READY_LINE.finditer(text))[-1].group(1))
        if gc_match is None:
            sending.set()
            print(f"!! no gc log line {time.time() - ready:.0f} s after 'jobsd ready'; run count now "
                  f"{run_count(db_path):,} (was {before:,}), run folders left {folder_count(runs_dir):,} (was "
                  f"{folders_before:,}); daemon {'alive' if daemon.proc.poll() is None else 'gone'}; log tail:\n"
                  f"{daemon.log_tail()}")
            print(f"stop (SIGTERM, SIGKILL after 15 s) took {daemon.stop_timed():.1f} s; daemon log after:")
            print(daemon.log_tail(5))
            return 1
        time.sleep(1)  # the sweep and the repair walk are over: idle from here
        idle_start = time.time()
        time.sleep(idle_seconds)
        idle_end = time.time()
        sending.set()
        stop.set()
        for thread in threads:
            thread.join(timeout=70)
        for future in pending:
            future.exception(timeout=60)
        channel.close()

        gc_end = stamp(gc_match.group(1))
        removed, freed = int(gc_match.group(3)), int(gc_match.group(4))
        records, files = float(gc_match.group(5)), float(gc_match.group(6))
        answered = [(w, ms) for w, ms, ok in calls if ok]
        failed = len(calls) - len(answered)
        during = [ms for w, ms in answered if ready <= w <= gc_end]
        in_records = [ms for w, ms in answered if ready <= w <= gc_end - files]
        in_files = [ms for w, ms in answered if gc_end - files < w <= gc_end]
        idle = [ms for w, ms in answered if idle_start <= w <= idle_end]
        first_drop = next((w for w, c in counts if c < before), float("nan"))
        all_gone = next((w for w, c in counts if c <= before - removed), float("nan"))
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        gc_events = db.execute("SELECT seq, ts, attrs FROM events WHERE type = 'daemon.gc' ORDER BY seq").fetchall()
        db.close()
        after = run_count(db_path)
        alive = daemon.proc.poll() is None
        stop_s = daemon.stop_timed()
        daemon = None

        print()
        print(f"runs in the store: {before:,} before, {after:,} after (expected {args.recent:,}); run folders "
              f"{folders_before:,} before, {folder_count(runs_dir):,} after; store file + WAL "
              f"{size_before / 2**20:.0f} -> {store_bytes(db_path) / 2**20:.0f} MiB (no VACUUM)")
        print(f"daemon start: spawn -> health SERVING {ready_s:.2f} s, -> 'jobsd ready' {log_ready_s:.2f} s")
        print(f"sweep: 'jobsd ready' -> gc log line {gc_end - ready:.2f} s "
              f"(selection {gc_end - ready - records - files:.2f} s, records {records:.2f} s, files {files:.2f} s; "
              f"{removed:,} runs, {freed / 2**20:.0f} MiB freed, by {gc_match.group(2)})")
        print(f"  store count polled every 0.1 s: first drop {first_drop - ready:.2f} s, all {removed:,} gone "
              f"{all_gone - ready:.2f} s after 'jobsd ready'")
        marks = [(w, c) for w, c in left if w >= ready]
        if marks and files:
            shown = marks[::max(1, len(marks) // 6)] + marks[-1:]
            print("  run folders left (counted every 1 s): " + ", ".join(f"{c:,} at {w - ready:+.0f} s" for w, c in shown)
                  + f"; {removed / files:.0f} folders/s in the files phase")
        for seq, ts, attrs in gc_events:
            print(f"  daemon.gc event seq {seq}: {ts - ready:+.2f} s after ready, {attrs}")
        if repair_match is not None:
            print(f"  start-up repair walk (a worker thread, alongside): {int(repair_match.group(2)):,} folders "
                  f"checked in {repair_match.group(3)} s, {repair_match.group(4)} repaired, logged "
                  f"{stamp(repair_match.group(1)) - ready:+.2f} s after ready")
        print()
        print(f"ListJobs ({args.jobs} jobs) on one open channel, one sent every {args.interval * 1000:g} ms whether "
              f"the last one answered or not (ms, by when it was sent){f'; {failed} failed' if failed else ''}:")
        print(f"  during the sweep       {summary(during)}")
        print(f"    selection + records  {summary(in_records)}" if in_records else "    selection + records  (none)")
        print(f"    files                {summary(in_files)}" if in_files else "    files                (none)")
        print(f"  idle afterwards        {summary(idle)}")
        for label, part in (("whole sweep", during), ("selection + records", in_records), ("files", in_files)):
            if part:
                print(f"{label} / idle: p50 {percentile(part, 50) / percentile(idle, 50):.2f}x, "
                      f"p99 {percentile(part, 99) / percentile(idle, 99):.2f}x (goal: within 2x)")
        print(f"daemon stop (SIGTERM) afterwards: {stop_s:.2f} s")
        if not alive:
            print("!! the daemon was gone before the stop")
        print_footer("retention.py", sys.argv[1:], version)
        return 0
    finally:
        stop.set()
        sending.set()
        if daemon is not None:
            daemon.stop()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
