"""SIGTERM in the middle of a retention sweep (issue 16): how soon jobsd exits, what its daemon.gc
event says, and whether the next start removes the folders left behind.

--runs finished runs (bulk-inserted, 90+ days old, over 20 jobs) with their folders
(retention.make_folders); jobsd starts with --retention-older-than 30d; once the store holds no
run (the records are gone, the folders are being removed) it gets SIGTERM: exit time, folders
left, folders the store still owes (gc_folders), the daemon.gc event. Then a plain start: time
until every folder is gone. Asserts nothing.

    .venv/bin/python bench/retention_stop.py [--runs 20000]
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import Deadline, code_version, print_footer, short_tmpdir  # noqa: E402
from history import create_schema, populate  # noqa: E402
from retention import folder_count, make_folders  # noqa: E402


def query(db: str, sql: str) -> list[tuple]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def spawn(home: str, log_name: str, *extra: str) -> subprocess.Popen:
    log = open(os.path.join(home, log_name), "w")
    return subprocess.Popen([sys.executable, "-m", "jobsd", "--home", home, *extra], stdout=log, stderr=log)


def wait(condition, seconds: float, what: str) -> None:  # noqa: ANN001
    deadline = Deadline(seconds)
    while not condition():
        if deadline.passed():
            raise RuntimeError(f"timed out after {seconds:.0f} s waiting for {what}")
        time.sleep(0.05)


def log_lines(home: str, log_name: str, needle: str) -> list[str]:
    with open(os.path.join(home, log_name)) as f:
        return [line.strip() for line in f if needle in line]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20000)
    args = parser.parse_args()
    version = code_version()
    home = short_tmpdir("jsg")
    procs: list[subprocess.Popen] = []
    try:
        create_schema(home)
        db = os.path.join(home, "db", "jobsd.sqlite3")
        populate(db, args.runs, 20)
        con = sqlite3.connect(db)
        con.execute("UPDATE runs SET finished_at = finished_at - 90*86400, queued_at = queued_at - 90*86400")
        con.commit()
        con.close()
        runs_dir = os.path.join(home, "runs")
        folders, size = make_folders(db, runs_dir)
        os.sync()
        os.makedirs(os.path.join(home, "jobs"), exist_ok=True)
        print(f"{args.runs:,} runs, {folders:,} folders ({size:,} bytes), all 90+ days old")

        procs.append(spawn(home, "first.log", "--retention-older-than", "30d"))
        wait(lambda: query(db, "SELECT count(*) FROM runs")[0][0] == 0, 300, "the sweep to delete every record")
        before = folder_count(runs_dir)
        started = time.monotonic()
        procs[0].send_signal(signal.SIGTERM)
        code = procs[0].wait(60)
        took = time.monotonic() - started
        owed = query(db, "SELECT count(*) FROM gc_folders")[0][0]
        events = [attrs for (attrs,) in query(db, "SELECT attrs FROM events WHERE type = 'daemon.gc'")]
        print(f"SIGTERM with {before:,} folders left: exit {code} in {took:.2f} s; folders then "
              f"{folder_count(runs_dir):,}; owed {owed:,}")
        print("daemon.gc events:", *events)
        print("first daemon's log:", *log_lines(home, "first.log", "stopped with jobsd"))

        procs.append(spawn(home, "second.log"))
        started = time.monotonic()
        wait(lambda: folder_count(runs_dir) == 0, 300, "the next start to remove the owed folders")
        gone = time.monotonic() - started
        wait(lambda: log_lines(home, "second.log", "earlier gc"), 60, "its log line (the list is updated first)")
        print(f"restart: every folder gone after {gone:.1f} s; owed "
              f"{query(db, 'SELECT count(*) FROM gc_folders')[0][0]}")
        print("second daemon's log:", *log_lines(home, "second.log", "earlier gc"))
        print_footer("retention_stop.py", sys.argv[1:], version)
        return 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(60)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
