"""Who a job runs as (issue 18): `user`, `group`, `supplementary_groups`, `umask`, JOBSD_STATE_DIR and
[credentials], on a real daemon running as root, with throwaway users and groups made by the fixture
(useradd/groupadd) and checked from inside the job."""
from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import uuid

import pytest

from jobsd_lib.rpc import jobsd_pb2 as pb
from tests.conftest import wait_for

pytestmark = [pytest.mark.timeout(90),
              pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root (CI runs as root)")]


def _admin(*argv: str) -> None:
    """useradd & co. take a lock on /etc/passwd that a parallel worker may hold: wait for it, within 20 s."""
    def attempt() -> bool:
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode != 0 and "lock" not in done.stderr and "try again" not in done.stderr:
            raise RuntimeError(f"{argv}: {done.stderr}")
        return done.returncode == 0
    wait_for(attempt, 20, f"{argv[0]} to get the lock on /etc/passwd")


@pytest.fixture(scope="module")
def users():
    """Two users (a and b, homes in /tmp) and an extra group that a is a member of."""
    tag = uuid.uuid4().hex[:6]
    names = {"a": f"jda{tag}", "b": f"jdb{tag}", "group": f"jdg{tag}"}
    _admin("groupadd", names["group"])
    for key in ("a", "b"):
        home = f"/tmp/{names[key]}"
        extra = ["-G", names["group"]] if key == "a" else []
        _admin("useradd", "-m", "-d", home, "-s", "/bin/bash", *extra, names[key])
    yield names
    for key in ("a", "b"):
        _admin("userdel", "-r", names[key])
    _admin("groupdel", names["group"])


def _job(command: str, **keys: str) -> str:
    text = f"command = {json.dumps(['sh', '-c', command])}\n"
    for key, value in keys.items():
        text += f"{key} = {value}\n" if not key.startswith("[") else f"{key}\n{value}\n"
    return text


def _output(daemon, job: str) -> tuple[pb.Run, str, str]:  # noqa: ANN001
    final = daemon.wait_finished(daemon.run(job).ref)
    tail = daemon.ctl("jobs", "tail", job, "--run", str(final.n), "--raw")
    return final, tail.stdout.decode(), tail.stderr.decode()


def test_a_job_runs_as_its_user_with_its_groups_umask_environment_and_home(daemon, users):
    a = pwd.getpwnam(users["a"])
    os.chmod(daemon.home, 0o711)  # the job's user reaches its state folder by name
    probe = ('id -u; id -g; id -G; umask; echo "$HOME $USER $LOGNAME $SHELL"; pwd; echo "$JOBSD_STATE_DIR"; '
             'grep -E "^(Uid|CapEff):" /proc/self/status')
    daemon.write_job("who", _job(probe, user=f'"{users["a"]}"', umask='"0027"'))
    daemon.write_job("home", _job('echo "$HOME"; pwd', user=f'"{users["a"]}"', env='{ HOME = "/srv" }'))
    daemon.start()
    final, out, err = _output(daemon, "who")
    assert final.state == pb.RUN_STATE_SUCCEEDED, err
    lines = out.splitlines()
    extra = __import__("grp").getgrnam(users["group"]).gr_gid
    assert lines[:3] == [str(a.pw_uid), str(a.pw_gid), f"{a.pw_gid} {extra}"]
    assert lines[3] == "0027" and lines[4] == f"{a.pw_dir} {users['a']} {users['a']} /bin/bash"
    assert lines[5] == a.pw_dir  # no cwd: the user's home
    state = lines[6]
    assert lines[7].split() == ["Uid:"] + [str(a.pw_uid)] * 4  # real, effective, saved and fs uid: no way back
    assert lines[8].split() == ["CapEff:", "0000000000000000"]
    assert state == os.path.join(daemon.home, "job-state", "who")
    info = os.stat(state)
    assert (info.st_uid, info.st_mode & 0o777) == (a.pw_uid, 0o700)
    _, out, _ = _output(daemon, "home")
    assert out.splitlines()[0] == "/srv"  # the spec's env wins


def test_a_group_and_supplementary_groups_replace_the_users_own(daemon, users):
    os.chmod(daemon.home, 0o711)
    daemon.write_job("grouped", _job("id -g; id -G", user=f'"{users["b"]}"', group=f'"{users["group"]}"',
                                     supplementary_groups="[]"))
    daemon.start()
    _, out, err = _output(daemon, "grouped")
    gid = str(__import__("grp").getgrnam(users["group"]).gr_gid)
    assert out.splitlines() == [gid, gid], err


def test_the_job_cannot_touch_its_run_folder_nor_another_jobs_state(daemon, users):
    os.chmod(daemon.home, 0o711)
    runs = os.path.join(daemon.home, "runs")
    mine = _job(f'echo keep > "$JOBSD_STATE_DIR/secret"; touch {runs}/mine/1/x && echo WROTE-RUN; '
                f'cat {runs}/mine/1/attempt-1.log && echo READ-LOG; echo done', user=f'"{users["a"]}"')
    daemon.write_job("mine", mine)
    theirs = os.path.join(daemon.home, "job-state", "mine")
    daemon.write_job("nosy", _job(f'cat {theirs}/secret && echo READ-STATE; ls {theirs} && echo LISTED; echo done',
                                  user=f'"{users["b"]}"'))
    daemon.start()
    final, out, err = _output(daemon, "mine")
    assert final.state == pb.RUN_STATE_SUCCEEDED and out.strip() == "done", (out, err)
    assert "Permission denied" in err
    final, out, err = _output(daemon, "nosy")
    assert out.strip() == "done" and "Permission denied" in err, (out, err)
    # the state is kept across runs and a restart, and only forget-state removes it
    daemon.stop()
    daemon.start()
    assert open(os.path.join(theirs, "secret")).read() == "keep\n"
    forgot = daemon.ctl("jobs", "forget-state", "mine", "--json")
    assert forgot.returncode == 0 and json.loads(forgot.stdout)["removed"] and not os.path.exists(theirs)
    events = [json.loads(line) for line in daemon.ctl("events", "--json", "--job", "mine").stdout.splitlines()]
    forgotten = [e for e in events if e["type"] == "job.state_forgotten"][-1]
    assert (forgotten["actor_uid"], forgotten["path"]) == ("0", theirs)


def test_credentials_reach_only_the_job_and_are_gone_after_the_run_a_cancel_and_a_killed_jobsd(daemon, users):
    os.chmod(daemon.home, 0o711)
    secret = os.path.join(daemon.home, "db-password")
    with open(os.open(secret, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
        f.write("s3cret-value\n")
    creds = os.path.join(daemon.home, "credentials")
    probe = ('cat "$JOBSD_CREDENTIALS_DIRECTORY/db"; stat -c "%a %U" "$JOBSD_CREDENTIALS_DIRECTORY" '
             '"$JOBSD_CREDENTIALS_DIRECTORY/db"; echo "$JOBSD_CREDENTIALS_DIRECTORY"')
    daemon.write_job("creds", _job(probe, user=f'"{users["a"]}"') + f'[credentials]\ndb = "{secret}"\n')
    daemon.write_job("hold", _job('echo "$JOBSD_CREDENTIALS_DIRECTORY"; exec sleep 60', user=f'"{users["a"]}"')
                     + f'kill_grace = "1s"\n[credentials]\ndb = "{secret}"\n')
    daemon.write_job("missing", _job("true", user=f'"{users["a"]}"') + '[credentials]\ndb = "/nonexistent/secret"\n')
    daemon.start()
    final, out, err = _output(daemon, "creds")
    assert final.state == pb.RUN_STATE_SUCCEEDED, err
    lines = out.splitlines()
    assert lines[:3] == ["s3cret-value", f"500 {users['a']}", f"400 {users['a']}"]
    assert lines[3].startswith(creds + "/") and not os.path.exists(lines[3])  # removed when the run ended
    shown = daemon.ctl("jobs", "show", "creds", "--json").stdout + daemon.ctl("runs", "show", "creds/1", "--json").stdout
    everything = shown + open(os.path.join(final.artifacts, "run_receipt.json"), "rb").read() + daemon.read_log().encode()
    assert b"s3cret-value" not in everything

    held = daemon.run("hold")
    folder = wait_for(lambda: (lines := _live(daemon, "hold")) and lines[0], 20, "hold's credentials folder")
    assert os.path.isdir(folder)
    daemon.jobs.CancelRun(pb.CancelRunRequest(run=held.ref), timeout=30)
    assert daemon.wait_finished(held.ref).state == pb.RUN_STATE_CANCELLED and not os.path.exists(folder)

    again = daemon.run("hold")
    folder = wait_for(lambda: (lines := _live(daemon, "hold", again.n)) and lines[0], 20, "hold/2's credentials")
    daemon.stop(signal.SIGKILL)
    assert os.path.isdir(folder)
    daemon.start()
    assert daemon.wait_finished(again.ref).state == pb.RUN_STATE_INTERRUPTED
    assert not os.path.exists(folder) and os.listdir(creds) == []

    final, _, err = _output(daemon, "missing")
    assert final.state == pb.RUN_STATE_FAILED and final.reason.startswith("credentials: db: cannot read"), final.reason
    assert "No such file or directory" in err


def _live(daemon, job: str, n: int = 0) -> list[str]:  # noqa: ANN001
    tail = daemon.ctl("jobs", "tail", job, *(["--run", str(n)] if n else []), "--raw")
    return tail.stdout.decode().split()


def test_a_home_others_cannot_search_says_so_and_credentials_then_fail_the_run(daemon, users):
    os.chmod(daemon.home, 0o700)
    secret = os.path.join(daemon.home, "pw")
    with open(secret, "w") as f:
        f.write("x")
    daemon.write_job("stuck", _job("true", user=f'"{users["a"]}"'))
    daemon.write_job("sealed", _job("true", user=f'"{users["a"]}"') + f'[credentials]\npw = "{secret}"\n')
    daemon.start()
    final, _, err = _output(daemon, "stuck")
    assert final.state == pb.RUN_STATE_SUCCEEDED  # a warning, not a failure: the job may not need its state
    assert f"jobsd: warning: user {users['a']} cannot reach" in err and f"{daemon.home} is mode 0700" in err
    final, _, _ = _output(daemon, "sealed")
    assert final.state == pb.RUN_STATE_FAILED and "cannot reach" in final.reason


def test_unknown_users_and_groups_are_invalid_at_load_and_reload(daemon, users):
    daemon.write_job("ghost", _job("true", user='"no-such-user-here"'))
    daemon.start()
    shown = json.loads(daemon.ctl("jobs", "show", "ghost", "--json").stdout)
    assert shown["state"] == "invalid" and "no user 'no-such-user-here'" in shown["error"]["message"]
    daemon.write_job("ghost", _job("true", user=f'"{users["a"]}"', group='"no-such-group-here"'))
    daemon.ctl("daemon", "reload")
    shown = json.loads(daemon.ctl("jobs", "show", "ghost", "--json").stdout)
    assert shown["error"]["field"] == "group" and "no group 'no-such-group-here'" in shown["error"]["message"]
    refused = daemon.ctl("jobs", "run", "ghost", "--json")
    assert refused.returncode == 4 and json.loads(refused.stdout)["error"]["code"] == "job_invalid_spec"


def test_a_specs_own_notify_command_runs_as_the_jobs_user(daemon, users):
    a = pwd.getpwnam(users["a"])
    os.chmod(daemon.home, 0o711)
    mark = os.path.join(a.pw_dir, "notified")
    daemon.write_job("told", _job("true", user=f'"{users["a"]}"')
                     + f'[notify]\ncommand = ["sh", "-c", "id -u > {mark}"]\non = ["success"]\n')
    daemon.start()
    assert daemon.wait_finished(daemon.run("told").ref).state == pb.RUN_STATE_SUCCEEDED
    wait_for(lambda: any(e.type == "notify.sent" for e in daemon.jobs.WatchEvents(
        pb.WatchEventsRequest(job="told"), timeout=10)), 20, "notify.sent")
    assert open(mark).read().strip() == str(a.pw_uid) and os.stat(mark).st_uid == a.pw_uid
