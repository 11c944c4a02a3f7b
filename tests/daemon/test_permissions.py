"""Issue 19, items 4, 6 and 9: what other users can change is refused, files keep their modes under any
umask, `jobs validate` never hangs and applies the daemon's limits, a refused start is not an unclean stop.

A real daemon as root (CI runs as root): specs are chowned to `nobody` to play the other user.
"""
from __future__ import annotations

import json
import grp
import os
import signal
import stat
import subprocess
import sys

import grpc
import pytest

from jobsd_lib.rpc import jobsd_pb2 as pb
from tests.conftest import Daemon, error_code, wait_for

pytestmark = pytest.mark.timeout(60)

NOBODY = 65534
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user (nobody) needs root")


def jobs_json(daemon: Daemon) -> dict[str, dict]:
    result = daemon.ctl("jobs", "list", "--json")
    assert result.returncode == 0, result.stderr
    return {j["id"]: j for j in json.loads(result.stdout)["jobs"]}


def status_json(daemon: Daemon) -> dict:
    result = daemon.ctl("daemon", "status", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def refused_run(daemon: Daemon, job: str) -> str:
    with pytest.raises(grpc.RpcError) as err:
        daemon.run(job)
    return error_code(err.value)


def reload(daemon: Daemon) -> None:
    assert daemon.ctl("daemon", "reload").returncode == 0


SHARED_GID = grp.getgrnam("nogroup").gr_gid  # not anyone's private group


def mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@needs_root
def test_specs_another_user_owns_or_anyone_can_write_are_invalid_until_fixed(daemon):
    theirs = daemon.write_job("theirs", 'command = ["true"]\n')
    os.chown(theirs, NOBODY, NOBODY)
    open_to_all = daemon.write_job("open", 'command = ["true"]\n')
    os.chmod(open_to_all, 0o666)
    group = daemon.write_job("group", 'command = ["true"]\n')
    os.chown(group, 0, SHARED_GID)  # a group that is not root's own: its members could change the spec
    os.chmod(group, 0o664)
    os.symlink(open_to_all, os.path.join(daemon.jobs_dir, "link.toml"))  # judged by its target
    daemon.write_job("fine", 'command = ["true"]\n')
    daemon.start()

    jobs = jobs_json(daemon)
    assert {j: jobs[j]["state"] for j in jobs} == {"theirs": "invalid", "open": "invalid", "group": "invalid",
                                                  "link": "invalid", "fine": "active"}
    assert "owned by another user (owner nobody (uid 65534), mode 0644)" in jobs["theirs"]["error"]["message"]
    assert f"chown 0 {theirs}" in jobs["theirs"]["error"]["message"]
    assert "writable by other users (owner root (uid 0), mode 0666)" in jobs["open"]["error"]["message"]
    assert f"chmod go-w {open_to_all}" in jobs["open"]["error"]["message"]
    assert "writable by its group" in jobs["group"]["error"]["message"]
    assert "mode 0666" in jobs["link"]["error"]["message"]
    assert {jobs[j]["error"]["code"] for j in ("theirs", "open", "group", "link")} == {"job_invalid_spec"}
    shown = daemon.ctl("jobs", "show", "theirs").stdout.decode()
    assert "owned by another user" in shown
    assert refused_run(daemon, "theirs") == refused_run(daemon, "open") == "job_invalid_spec"

    status = status_json(daemon)
    assert len(status["warnings"]) == 4 and any(theirs in w and "uid 65534" in w for w in status["warnings"])
    assert "warning: " in daemon.ctl("daemon", "status").stdout.decode()

    os.chown(theirs, 0, 0)
    os.chmod(open_to_all, 0o644)
    os.chmod(group, 0o644)
    reload(daemon)
    assert {j["state"] for j in jobs_json(daemon).values()} == {"active"}
    assert status_json(daemon)["warnings"] == []
    assert daemon.wait_finished(daemon.run("theirs").ref).state == pb.RUN_STATE_SUCCEEDED


@needs_root
def test_a_jobs_folder_anyone_can_write_runs_nothing_of_it(daemon):
    evil = daemon.write_job("evil", 'shell = true\ncommand = "id"\n')
    os.chown(evil, NOBODY, NOBODY)
    daemon.write_job("mine", 'command = ["true"]\n')
    os.chmod(daemon.jobs_dir, 0o1777)  # sticky does not help: anyone can add a file
    daemon.start()

    jobs = jobs_json(daemon)
    assert {j["state"] for j in jobs.values()} == {"invalid"}
    message = jobs["mine"]["error"]["message"]
    assert f"unsafe jobs folder {daemon.jobs_dir}" in message and "mode 1777" in message
    assert f"chmod go-w {daemon.jobs_dir}" in message
    assert refused_run(daemon, "evil") == "job_invalid_spec"
    assert not os.path.exists(os.path.join(daemon.home, "runs", "evil"))
    assert any(daemon.jobs_dir in w for w in status_json(daemon)["warnings"])

    os.chmod(daemon.jobs_dir, 0o755)  # the folder is fixed; evil.toml is still nobody's
    reload(daemon)
    jobs = jobs_json(daemon)
    assert (jobs["mine"]["state"], jobs["evil"]["state"]) == ("active", "invalid")
    assert "owned by another user" in jobs["evil"]["error"]["message"]
    os.chown(evil, 0, 0)
    reload(daemon)
    assert jobs_json(daemon)["evil"]["state"] == "active"


def test_validate_says_not_a_regular_file_for_a_fifo_at_once_and_applies_the_size_limit(daemon):
    os.makedirs(daemon.jobs_dir)
    fifo = os.path.join(daemon.jobs_dir, "x.toml")
    os.mkfifo(fifo)
    big = daemon.write_job("big", 'command = ["true"]\n' + "#" * (5 << 20) + "\n")
    result = daemon.ctl("jobs", "validate", "--json", fifo, big, timeout=10)
    assert result.returncode == 4, result.stderr
    files = {f["job"]: f["problems"][0]["message"] for f in json.loads(result.stdout)["files"]}
    assert files["x"].startswith("not a regular file (a FIFO)")
    assert files["big"] == "file is larger than 1 MiB; a spec is a small TOML file"
    daemon.start()  # the daemon says the same of the big file
    assert jobs_json(daemon)["big"]["error"]["message"] == files["big"]


@needs_root
def test_validate_reports_what_the_daemon_refuses_for_owner_and_mode(daemon):
    theirs = daemon.write_job("theirs", 'command = ["true"]\n')
    os.chown(theirs, NOBODY, NOBODY)
    daemon.start()
    said = jobs_json(daemon)["theirs"]["error"]["message"]
    result = daemon.ctl("jobs", "validate", daemon.jobs_dir)
    assert result.returncode == 4
    assert result.stdout.decode() == f"invalid  {theirs}: {said}\n"
    os.chmod(daemon.jobs_dir, 0o777)
    folder = json.loads(daemon.ctl("jobs", "validate", "--json", daemon.jobs_dir).stdout)["files"][0]
    assert folder["problems"][0]["message"].startswith(f"unsafe jobs folder {daemon.jobs_dir}")


def start_refused(home: str, *extra: str) -> str:
    result = subprocess.run([sys.executable, "-m", "jobsd", "--home", home, *extra], capture_output=True, timeout=30)
    assert result.returncode == 1, result.stderr
    return result.stderr.decode()


@pytest.mark.parametrize("folder, label", [("", "home folder"), ("db", "db folder"), ("runs", "runs folder")])
def test_state_folders_other_users_can_write_refuse_the_start(home, folder, label):
    path = os.path.join(home, folder) if folder else home
    os.makedirs(path, exist_ok=True)
    os.chmod(path, 0o777)
    err = start_refused(home)
    assert f"{label} {path} is unsafe, writable by other users (owner root (uid 0), mode 0777)" in err
    assert f"chmod {'go' if folder else 'o'}-w {path}" in err  # the home may be shared with a group on purpose
    assert not os.path.exists(os.path.join(home, "jobsd.sock"))


def test_a_group_writable_runs_folder_refuses_but_a_group_writable_home_warns(daemon):
    runs = os.path.join(daemon.home, "runs")
    os.makedirs(runs)
    os.chown(runs, -1, SHARED_GID)
    os.chown(daemon.home, -1, SHARED_GID)
    os.chmod(runs, 0o770)
    assert f"runs folder {runs} is unsafe, writable by its group" in start_refused(daemon.home)
    os.chmod(runs, 0o750)
    os.chmod(daemon.home, 0o770)
    daemon.start()
    warnings = status_json(daemon)["warnings"]
    assert len(warnings) == 1 and warnings[0].startswith(f"home folder {daemon.home} is writable by its group")
    assert "writable by its group" in daemon.read_log()


def test_run_files_keep_their_modes_under_umask_000(daemon):
    daemon.write_job("hello", 'command = ["sh", "-c", "echo hi"]\n')
    daemon.args = [sys.executable, "-m", "jobsd", "--home", daemon.home, "--state-dir", f"{daemon.home}/st/ate"]
    daemon.log = open(os.path.join(daemon.home, "daemon.log"), "ab")
    daemon.proc = subprocess.Popen(daemon.args, stdout=daemon.log, stderr=subprocess.STDOUT, umask=0)
    daemon.connect()
    daemon.wait_finished(daemon.run("hello").ref)
    state = os.path.join(daemon.home, "st", "ate")
    run_dir = os.path.join(state, "runs", "hello", "1")
    wait_for(lambda: os.path.exists(os.path.join(run_dir, "summary.md")), 10, "the final summary")
    folders = {p: mode(os.path.join(daemon.home, p)) for p in ("st", "st/ate", "st/ate/db", "st/ate/runs",
                                                                 "st/ate/runs/hello", "st/ate/runs/hello/1")}
    assert folders == dict.fromkeys(folders, 0o750)
    files = {name: mode(os.path.join(run_dir, name)) for name in os.listdir(run_dir)}
    assert set(files) >= {"run_receipt.json", "summary.md", "events.jsonl", "attempt-1.log", "attempt-1.idx"}
    assert files == dict.fromkeys(files, 0o640)


def test_a_start_refused_for_the_socket_folder_is_not_an_unclean_stop(daemon):
    daemon.write_job("a", 'command = ["true"]\n')
    public = os.path.join(daemon.home, "public")
    os.mkdir(public)
    os.chmod(public, 0o777)
    assert "is writable by other users" in start_refused(daemon.home, "--socket", os.path.join(public, "s.sock"))
    daemon.start()
    assert "did not stop cleanly" not in daemon.read_log()
    daemon.stop(signal.SIGKILL)
    daemon.start()  # a killed daemon still is one
    assert "did not stop cleanly (killed, crashed or power lost)" in daemon.read_log()


@needs_root
def test_group_write_by_the_owners_own_group_is_no_risk(daemon):
    """Under umask 002 (systems with a private group per user) every file and folder is group-writable;
    when that group is the owner's own (root's here: no member, nobody else's primary group), nobody
    else can write, so the specs run and the folders pass, in the daemon and in `jobs validate`."""
    spec = daemon.write_job("mine", 'command = ["true"]\n')
    os.chown(spec, 0, 0)
    os.chmod(spec, 0o664)
    os.chmod(daemon.jobs_dir, 0o775)
    os.chown(daemon.home, -1, 0)
    os.chmod(daemon.home, 0o770)
    daemon.start()
    assert jobs_json(daemon)["mine"]["state"] == "active"
    assert status_json(daemon)["warnings"] == []
    assert daemon.wait_finished(daemon.run("mine").ref).state == pb.RUN_STATE_SUCCEEDED
    checked = daemon.ctl("jobs", "validate", daemon.jobs_dir)
    assert checked.returncode == 0, checked
