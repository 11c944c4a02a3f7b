"""SIGTERM in the middle of a retention sweep (issue 16): how soon jobsd exits, what its daemon.gc
event says, and whether the next start removes the folders left behind.

--runs finished runs (bulk-inserted, 90+ days old, over 20 jobs) with their folders
(retention.make_folders); jobsd starts with --retention-older-than 30d; once the store holds no
run (the records are gone, the folders are being removed) it gets SIGTERM: exit time, folders
left, folders the store still owes (gc_folders), the daemon.gc event. Then a plain start: time
until every folder is gone. Asserts nothing.

    .venv/bin/python bench/retention_stop.py [--runs 20000]
"""
import os, sys, time, subprocess, sqlite3, signal, json
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from history import create_schema, populate
from retention import make_folders, folder_count
import argparse
import tempfile
from _common import code_version, print_footer
ap = argparse.ArgumentParser(); ap.add_argument("--runs", type=int, default=20000); args = ap.parse_args()
version = code_version()
home = tempfile.mkdtemp(prefix="jsg", dir="/tmp")
create_schema(home)
db = os.path.join(home, "db", "jobsd.sqlite3")
populate(db, args.runs, 20)
con = sqlite3.connect(db); con.execute("UPDATE runs SET finished_at = finished_at - 90*86400, queued_at = queued_at - 90*86400"); con.commit(); con.close()
runs_dir = os.path.join(home, "runs")
print("folders", make_folders(db, runs_dir)); os.sync()
os.makedirs(os.path.join(home, "jobs"), exist_ok=True)
log = open(os.path.join(home, "log1"), "w")
p = subprocess.Popen([sys.executable, "-m", "jobsd", "--home", home, "--retention-older-than", "30d"], stdout=log, stderr=log)
while True:
    n = sqlite3.connect(db).execute("SELECT count(*) FROM runs").fetchone()[0]
    if n == 0: break
    time.sleep(0.05)
before = folder_count(runs_dir)
t = time.monotonic(); p.send_signal(signal.SIGTERM); code = p.wait(30); took = time.monotonic() - t
left = folder_count(runs_dir)
ev = sqlite3.connect(db).execute("SELECT attrs FROM events WHERE type='daemon.gc'").fetchall()
owed = sqlite3.connect(db).execute("SELECT count(*) FROM gc_folders").fetchone()[0]
print(f"SIGTERM with {before} folders left: exit {code} in {took:.2f} s; folders then {left}; owed {owed}; events {ev}")
log2 = open(os.path.join(home, "log2"), "w")
p = subprocess.Popen([sys.executable, "-m", "jobsd", "--home", home], stdout=log2, stderr=log2)
t = time.monotonic()
while folder_count(runs_dir) > 0 and time.monotonic() - t < 120: time.sleep(0.2)
print(f"restart: folders {folder_count(runs_dir)} after {time.monotonic()-t:.1f} s; owed", sqlite3.connect(db).execute("SELECT count(*) FROM gc_folders").fetchone()[0])
p.send_signal(signal.SIGTERM); p.wait(30)
print("first daemon's log:", *[l.strip() for l in open(os.path.join(home, "log1")) if "stopped with jobsd" in l])
print("second daemon's log:", *[l.strip() for l in open(os.path.join(home, "log2")) if "earlier gc" in l])
import shutil; shutil.rmtree(home)
print_footer("retention_stop.py", sys.argv[1:], version)
