"""`jobsd --store postgresql+psycopg://...` on one host (DESIGN 12, issue 17 step 2): a real jobsd on a
database of a private PostgreSQL server (tests/pg_server.py), driven with the real jobsctl. The
same product as on SQLite: runs, history, a SIGKILL that loses nothing acknowledged; and a second
jobsd on the same database under the same host name is refused (two hosts: test_pg_two_hosts.py)."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from jobsd_lib.rpc import jobsd_pb2 as pb
from tests.conftest import Daemon, wait_for

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def url(pg_server) -> str:  # noqa: ANN001
    return pg_server.new_database()


def _secret(url: str) -> str:
    return url.replace("postgres@", "postgres:hunter2@")  # trust authentication: carried, never checked


def test_jobs_run_and_their_history_is_kept_in_postgresql(daemon, url, pg_server):  # noqa: ANN001
    daemon.write_job("hello", 'command = ["echo", "hi"]\n')
    daemon.start("--store", _secret(url))
    done = daemon.ctl("jobs", "run", "hello", "--wait")
    assert done.returncode == 0, done.stderr
    history = json.loads(daemon.ctl("--json", "jobs", "history", "hello").stdout)
    assert [(r["run"], r["state"]) for r in history["runs"]] == [("hello/1", "succeeded")]
    assert daemon.ctl("jobs", "tail", "hello", "--raw").stdout == b"hi\n"
    db = url.split("@/", 1)[1].split("?")[0]
    assert pg_server.psql("SELECT job_id, n, state FROM runs", db=db) == [("hello", 1, "succeeded")]
    status = json.loads(daemon.ctl("--json", "daemon", "status").stdout)
    assert status["store"]["path"].startswith("postgresql+psycopg://postgres:***@/")
    assert "hunter2" not in json.dumps(status) and "hunter2" not in daemon.read_log()
    assert not os.path.exists(os.path.join(daemon.home, "db", "jobsd.sqlite3"))


def test_a_sigkill_loses_no_acknowledged_run_and_the_restart_interrupts_the_running_one(daemon, url):  # noqa: ANN001
    daemon.write_job("slow", 'command = ["sleep", "60"]\n')
    daemon.write_job("quick", 'command = ["true"]\n')
    env_store = {"JOBSD_STORE": url}
    os.environ.update(env_store)  # the environment variable instead of --store
    try:
        daemon.start()
        slow = daemon.run("slow")
        wait_for(lambda: daemon.get_run(slow.ref).state == pb.RUN_STATE_RUNNING, 15, "slow to run")
        quick = daemon.run("quick")
        daemon.stop(signal.SIGKILL)
        daemon.start()
    finally:
        os.environ.pop("JOBSD_STORE")
    assert daemon.wait_finished(slow.ref).state == pb.RUN_STATE_INTERRUPTED
    assert daemon.wait_finished(quick.ref).state in (pb.RUN_STATE_SUCCEEDED, pb.RUN_STATE_INTERRUPTED)
    again = daemon.run("slow")
    assert again.ref == "slow/2"  # numbers are never reused
    daemon.jobs.CancelRun(pb.CancelRunRequest(run=again.ref), timeout=10)
    daemon.wait_finished(again.ref)


def test_a_second_jobsd_under_the_same_host_name_is_refused_and_changes_nothing(daemon, url, pg_server, home):  # noqa: ANN001
    daemon.write_job("hello", 'command = ["true"]\n')
    daemon.start("--store", url)
    other = Daemon(home + "-2")
    os.makedirs(other.home)
    try:
        refused = subprocess.run([sys.executable, "-m", "jobsd", "--home", other.home, "--store", url],
                                 capture_output=True, text=True, timeout=30)
    finally:
        subprocess.run(["rm", "-rf", other.home])
    assert refused.returncode == 1
    assert "another jobsd (pid" in refused.stderr and "on this machine" in refused.stderr, refused.stderr
    assert daemon.ctl("jobs", "run", "hello", "--wait").returncode == 0  # the first one serves on


@pytest.mark.parametrize("value, says", [
    ("mysql://root:pw@db/jobs", "'mysql://db/jobs' is not a PostgreSQL URL: use postgresql+psycopg://USER@HOST/DB"),
    ("/var/lib/jobsd.sqlite3", "is not a PostgreSQL URL"),
])
def test_a_store_that_is_not_a_postgresql_url_is_a_usage_error(value, says, home):  # noqa: ANN001
    done = subprocess.run([sys.executable, "-m", "jobsd", "--home", home, "--store", value],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and says in done.stderr, done.stderr
    assert "pw" not in done.stderr.replace("postgresql", "")
    env = {**os.environ, "JOBSD_STORE": value}
    done = subprocess.run([sys.executable, "-m", "jobsd", "--home", home], capture_output=True, text=True,
                          timeout=30, env=env)
    assert done.returncode == 1 and "JOBSD_STORE: " in done.stderr and says in done.stderr, done.stderr
    assert not os.path.exists(os.path.join(home, "jobsd.sock"))


def test_a_database_that_is_not_there_stops_the_start_with_the_reason(home, pg_server):  # noqa: ANN001
    done = subprocess.run([sys.executable, "-m", "jobsd", "--home", home, "--store",
                           pg_server.url("nosuchdb").replace("postgres@", "postgres:hunter2@")],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert 'cannot start: postgresql+psycopg://postgres:***@/nosuchdb' in done.stderr, done.stderr
    assert 'database "nosuchdb" does not exist' in done.stderr and "hunter2" not in done.stderr


def test_the_database_restarting_under_jobsd_loses_nothing_acknowledged(daemon, url, pg_server):  # noqa: ANN001
    daemon.write_job("slow", 'command = ["sleep", "1"]\n')
    daemon.write_job("quick", 'command = ["true"]\n')
    daemon.start("--store", url)
    slow = daemon.run("slow")
    pg_server.restart("immediate")  # the server crashes and recovers under the running job
    listed = daemon.ctl("jobs", "list")  # a read on the dropped connection reconnects
    assert listed.returncode == 0, listed.stderr
    ended = daemon.wait_finished(slow.ref, timeout=30)  # its end is retried until the store takes it
    if ended.state == pb.RUN_STATE_INTERRUPTED:  # the restart came while its start was being recorded
        assert ended.reason.startswith("jobsd could not record the run's progress: "), ended.reason
    else:
        assert ended.state == pb.RUN_STATE_SUCCEEDED, ended.reason
    assert daemon.ctl("jobs", "run", "quick", "--wait").returncode == 0
    history = json.loads(daemon.ctl("--json", "jobs", "history", "slow").stdout)["runs"]
    assert [r["run"] for r in history] == ["slow/1"]
    wait_for(lambda: not json.loads(daemon.ctl("--json", "daemon", "status").stdout).get("degraded"), 20,
             "daemon status to clear its store warning")


def test_daemon_status_names_this_host_its_labels_and_every_host_of_the_store(daemon, url):  # noqa: ANN001
    daemon.write_job("hello", 'command = ["true"]\n')
    daemon.start("--store", url, "--host-name", "web1", "--labels", "gpu, eu,gpu")
    status = json.loads(daemon.ctl("--json", "daemon", "status").stdout)
    assert (status["host"], status["labels"]) == ("web1", ["eu", "gpu"])
    (host,) = status["hosts"]
    assert (host["name"], host["labels"], host["pid"], host["stopped"], host["this_host"]) == \
        ("web1", ["eu", "gpu"], daemon.proc.pid, False, True)
    assert 0 <= host["heartbeat_age_seconds"] < 15
    text = daemon.ctl("daemon", "status").stdout.decode()
    assert f"host: web1 [eu, gpu] pid {daemon.proc.pid}, heartbeat " in text and "(leader, this one)" in text
    assert status["leader"] == "web1"  # the only host holds the scheduler's lease
    assert daemon.ctl("jobs", "run", "hello", "--wait").returncode == 0
    assert json.loads(daemon.ctl("--json", "runs", "show", "hello/1").stdout)["host"] == "web1"  # who ran it
    assert "host:            web1" in daemon.ctl("runs", "show", "hello/1").stdout.decode()
    assert daemon.stop() == 0
    daemon.start("--store", url, "--host-name", "web2")  # the same machine under another name: both rows
    hosts = json.loads(daemon.ctl("--json", "daemon", "status").stdout)["hosts"]
    assert [(h["name"], h["stopped"], h["this_host"]) for h in hosts] == [("web1", True, False), ("web2", False, True)]
    assert daemon.ctl("jobs", "run", "hello", "--wait").returncode == 0
    table = daemon.ctl("jobs", "history", "hello").stdout.decode().splitlines()
    assert table[0].split()[-1] == "HOST"  # runs of two hosts listed: which ran which
    assert [line.split()[0] + " " + line.split()[-1] for line in table[1:]] == ["hello/2 web2", "hello/1 web1"]
    assert "host: web1 [eu, gpu] pid " in daemon.ctl("daemon", "status").stdout.decode()


def test_a_sqlite_host_is_its_own_only_host(daemon):  # noqa: ANN001
    daemon.start("--labels", "ssd")
    status = json.loads(daemon.ctl("--json", "daemon", "status").stdout)
    assert status["host"] == status["leader"] == socket.gethostname() and status["labels"] == ["ssd"]
    assert [(h["name"], h["this_host"]) for h in status["hosts"]] == [(socket.gethostname(), True)]
    daemon.write_job("hello", 'command = ["true"]\n')
    daemon.ctl("daemon", "reload")
    assert daemon.ctl("jobs", "run", "hello", "--wait").returncode == 0
    assert json.loads(daemon.ctl("--json", "runs", "show", "hello/1").stdout)["host"] == socket.gethostname()


@pytest.mark.parametrize("args, says", [
    (["--host-name", "bad name"], "a host name is 1-63 letters"),
    (["--host-name=-x"], "a host name is 1-63 letters"),
    (["--labels", "gpu,no way"], "'no way': a label is 1-63 letters"),
])
def test_a_bad_host_name_or_label_is_a_usage_error(args, says, home):  # noqa: ANN001
    done = subprocess.run([sys.executable, "-m", "jobsd", "--home", home, *args], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 2 and says in done.stderr, done.stderr


def test_of_two_jobsd_starting_together_under_one_host_name_exactly_one_serves(url, home):  # noqa: ANN001
    procs, homes = [], [home + "-a", home + "-b"]
    try:
        for path in homes:
            os.makedirs(os.path.join(path, "jobs"))
            for i in range(100):  # specs to load: a wider window between the look and the first record
                with open(os.path.join(path, "jobs", f"j{i}.toml"), "w") as f:
                    f.write('command = ["true"]\n')
        for path in homes:
            procs.append(subprocess.Popen([sys.executable, "-m", "jobsd", "--home", path, "--store", url],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
        refused = wait_for(lambda: [p for p in procs if p.poll() is not None], 30, "one of the two to be refused")
        assert len(refused) == 1 and refused[0].returncode == 1
        assert "another jobsd (pid" in refused[0].stderr.read()
        (serving,) = [p for p in procs if p.poll() is None]
        sock = os.path.join(homes[procs.index(serving)], "jobsd.sock")
        wait_for(lambda: subprocess.run([os.path.join(os.path.dirname(sys.executable), "jobsctl"), "--socket", sock,
                                         "jobs", "list"], capture_output=True).returncode == 0, 30, "the other to serve")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(20)
        for path in homes:
            subprocess.run(["rm", "-rf", path])


def test_a_malformed_postgresql_url_is_a_usage_error(home):  # noqa: ANN001
    done = subprocess.run([sys.executable, "-m", "jobsd", "--home", home, "--store",
                           "postgresql+psycopg://u:secret@host:abc/db"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "not a valid URL" in done.stderr and "secret" not in done.stderr, done.stderr


def test_daemon_status_says_the_store_cannot_be_read_while_the_server_is_down(daemon, url, pg_server):  # noqa: ANN001
    daemon.start("--store", url)
    pg_server.halt()
    try:
        down = daemon.ctl("--json", "daemon", "status")
        assert down.returncode == 0, down.stderr
        assert any(line.startswith("the store cannot be read (") for line in json.loads(down.stdout)["degraded"])
    finally:
        pg_server.start()
    wait_for(lambda: not json.loads(daemon.ctl("--json", "daemon", "status").stdout)["degraded"], 20,
             "daemon status to be clean once the server is back")


def test_cron_windows_fire_on_postgresql_once_this_host_leads(daemon, url):  # noqa: ANN001
    daemon.write_job("tick", 'command = ["true"]\n[schedule]\ncron = "* * * * * *"\ntimezone = "UTC"\n')
    daemon.start("--store", url)

    def fired() -> bool:
        runs = json.loads(daemon.ctl("--json", "jobs", "history", "tick").stdout)["runs"]
        return len([r for r in runs if r["trigger"] == "cron" and r["state"] == "succeeded"]) >= 2
    wait_for(fired, 20, "two cron windows to run")
    assert "this host (" in daemon.read_log() and "leads: its cron timer fires the windows" in daemon.read_log()
