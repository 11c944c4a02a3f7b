"""Start-up's check of run folders (repair.py, issue 19): how long the worker thread takes per folder.

A store with RUNS finished runs (bench/history.py's bulk load, over JOBS jobs) and a real folder for
each: the final run_receipt.json, summary.md, events.jsonl and an attempt's .log/.idx, written with
the daemon's own Artifacts code from the stored rows. Then, in this process, `repair._find_stale`
(what the daemon runs in a worker thread once it serves) is timed over them, warm page cache, and
once more after damaging DAMAGED folders (a queued receipt, a temp file, unindexed log bytes) to
check it finds exactly those. The daemon's start-up itself is unchanged: the check runs after READY
(bench/startup.py).

Usage: .venv/bin/python bench/repair_scan.py [--runs 20000] [--jobs 100] [--damaged 100]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import repro_command, short_tmpdir  # noqa: E402
from history import create_schema, populate  # noqa: E402

from jobsd.artifacts import Artifacts  # noqa: E402
from jobsd.output import RECORD  # noqa: E402
from jobsd.repair import _find_stale  # noqa: E402 - the function the daemon runs in its worker thread
from jobsd.store import open_store  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20000)
    ap.add_argument("--jobs", type=int, default=100)
    ap.add_argument("--damaged", type=int, default=100)
    args = ap.parse_args()
    home = short_tmpdir()
    try:
        create_schema(home)
        populate(os.path.join(home, "db", "jobsd.sqlite3"), args.runs, args.jobs)
        store = open_store(os.path.join(home, "db", "jobsd.sqlite3"))
        artifacts = Artifacts(os.path.join(home, "runs"))
        t0 = time.perf_counter()
        refs = store._q("SELECT job_id, n FROM runs").all()  # noqa: SLF001 - bench set-up
        for job_id, n in refs:
            run = store.get_run(job_id, n)
            folder = artifacts.run_dir(job_id, n)
            os.makedirs(folder)
            artifacts.write_receipt(run, "", durable=False)
            # stamped as the daemon leaves it: written just after the run's end (so the check reads it)
            os.utime(os.path.join(folder, "run_receipt.json"), (run.finished_at, run.finished_at))
            artifacts.write_summary(run, "")
            with open(os.path.join(folder, "events.jsonl"), "w") as f:
                f.write('{"seq": 1}\n')
            with open(os.path.join(folder, "attempt-1.log"), "wb") as f:
                f.write(b"x" * 100)
            with open(os.path.join(folder, "attempt-1.idx"), "wb") as f:
                f.write(RECORD.pack(0, 0, 100, 1))
        made = time.perf_counter() - t0
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            checked, stale = _find_stale(store, artifacts)
            times.append(time.perf_counter() - t0)
        assert not stale, stale[:5]
        for job_id, n in refs[:args.damaged]:
            folder = artifacts.run_dir(job_id, n)
            receipt = json.load(open(os.path.join(folder, "run_receipt.json")))
            path = os.path.join(folder, "run_receipt.json")
            with open(path, "w") as f:
                json.dump({**receipt, "state": "queued", "finished_at": None}, f)
            queued = store.get_run(job_id, n).queued_at
            os.utime(path, (queued, queued))  # a queued receipt is written when the run is queued
        t0 = time.perf_counter()
        checked2, stale = _find_stale(store, artifacts)
        damaged_time = time.perf_counter() - t0
        print(f"run folders: {checked} ({made:.1f} s to make)")
        print(f"check of every folder, warm: best {min(times):.2f} s of 3 ({min(times) / checked * 1e6:.0f} us a folder)")
        print(f"with {args.damaged} damaged: {damaged_time:.2f} s, found {len(stale)} (expected {args.damaged})")
        print("reproduce:", repro_command("repair_scan.py", sys.argv[1:]))
        store.close()
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
