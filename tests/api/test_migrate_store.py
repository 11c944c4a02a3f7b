"""`jobsd migrate-store --from PATH --to URL` (issue 17 item 7): one host moves from its SQLite store to
PostgreSQL and finds its jobs' operator states, history, run numbers and events as they were. Real
daemons, a real SQLite file, a private PostgreSQL server, the real jobsctl."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from jobsd_lib.rpc import jobsd_pb2 as pb

pytestmark = pytest.mark.timeout(90)


def _migrate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jobsd", "migrate-store", *args], capture_output=True, text=True,
                          timeout=60)


def _seen(daemon) -> tuple:  # noqa: ANN001
    """What a user looks at: every job's history and state, and the event log."""
    history = {job: json.loads(daemon.ctl("--json", "jobs", "history", job).stdout)["runs"] for job in ("ok", "bad")}
    jobs = {j["id"]: (j["state"], j["consecutive_failures"]) for j in json.loads(daemon.ctl("--json", "jobs", "list").stdout)["jobs"]}
    events = [(e["seq"], e["type"], e.get("run")) for e in
              map(json.loads, daemon.ctl("--json", "events", "--last", "1000").stdout.splitlines())]
    return history, jobs, events


def test_a_host_moves_to_postgresql_and_keeps_its_history_states_numbers_and_events(daemon, pg_server):  # noqa: ANN001
    daemon.write_job("ok", 'command = ["echo", "fine"]\n')
    daemon.write_job("bad", 'command = ["sh", "-c", "echo broken >&2; exit 3"]\n')
    daemon.start()
    for job in ("ok", "ok", "bad"):
        daemon.ctl("jobs", "run", job, "--wait")
    assert daemon.ctl("jobs", "pause", "bad").returncode == 0
    before = _seen(daemon)
    assert daemon.stop() == 0

    url = pg_server.new_database()
    done = _migrate("--from", os.path.join(daemon.home, "db", "jobsd.sqlite3"), "--to", url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("copied 3 runs, 3 attempts, ")

    daemon.start("--store", url)
    after = _seen(daemon)
    assert after[0] == before[0] and after[1] == before[1]
    assert after[2][:len(before[2])] == before[2]  # the same events, then this start's own
    assert after[1]["bad"] == ("paused", 1)
    assert daemon.run("ok").ref == "ok/3"  # numbers go on
    assert daemon.ctl("jobs", "tail", "ok", "--run", "1", "--raw").stdout == b"fine\n"  # the run folders stay


def test_refusals_change_nothing(daemon, pg_server, home):  # noqa: ANN001
    daemon.write_job("ok", 'command = ["true"]\n')
    daemon.start()
    assert daemon.ctl("jobs", "run", "ok", "--wait").returncode == 0
    store = os.path.join(daemon.home, "db", "jobsd.sqlite3")
    url = pg_server.new_database()
    running = _migrate("--from", store, "--to", url)  # the daemon still runs on it
    assert running.returncode == 1 and "locked by another jobsd" in running.stderr, running.stderr
    assert daemon.stop() == 0

    assert _migrate("--from", store, "--to", url).returncode == 0
    again = _migrate("--from", store, "--to", url)  # into a database that is no longer empty
    assert again.returncode == 1 and "is not empty (1 in job_counters, 1 in runs" in again.stderr, again.stderr
    db = url.split("@/", 1)[1].split("?")[0]
    assert pg_server.psql("SELECT count(*) FROM runs", db=db) == [(1,)]

    missing = _migrate("--from", os.path.join(home, "nope.sqlite3"), "--to", url)
    assert missing.returncode == 1 and "no SQLite store at" in missing.stderr
    assert not os.path.exists(os.path.join(home, "nope.sqlite3"))
    bad_url = _migrate("--from", store, "--to", "sqlite:///x.db")
    assert bad_url.returncode == 2 and "is not a PostgreSQL URL" in bad_url.stderr
    assert _migrate("--from", store).returncode == 2  # --to is required
    # the SQLite store itself is untouched and still serves
    daemon.start()
    assert daemon.get_run("ok/1").state == pb.RUN_STATE_SUCCEEDED


def test_a_row_postgresql_refuses_stops_the_copy_with_the_table_and_copies_nothing(daemon, pg_server):  # noqa: ANN001
    import sqlite3
    daemon.write_job("ok", 'command = ["true"]\n')
    daemon.start()
    assert daemon.ctl("jobs", "run", "ok", "--wait").returncode == 0
    assert daemon.stop() == 0
    store = os.path.join(daemon.home, "db", "jobsd.sqlite3")
    with sqlite3.connect(store) as db:  # SQLite keeps a NUL in text; PostgreSQL refuses it
        db.execute("INSERT INTO daemon_meta (key, value) VALUES ('odd', 'a' || char(0) || 'b')")
    url = pg_server.new_database()
    done = _migrate("--from", store, "--to", url)
    assert done.returncode == 1 and "refused a row of daemon_meta (nothing was copied)" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    db_name = url.split("@/", 1)[1].split("?")[0]
    assert pg_server.psql("SELECT count(*) FROM runs", db=db_name) == [(0,)]
