"""`[notify]` on a real daemon (DESIGN 11): the job's notify command reads one JSON document on
stdin for a first failure, a recovery or an overdue episode (the default `on`), never delays the
job, and its result is an event (notify.sent / notify.failed); `jobsd --notify-command` covers
every job without its own."""
from __future__ import annotations

import json
import os

import pytest

from jobsd_lib.rpc import jobsd_pb2 as pb
from tests.conftest import alive, wait_for

pytestmark = pytest.mark.timeout(60)


def notes(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def notify_events(daemon, job: str) -> list[pb.Event]:  # noqa: ANN001
    return [e for e in daemon.jobs.WatchEvents(pb.WatchEventsRequest(job=job), timeout=10)
            if e.type.startswith("notify.")]


def test_first_failure_and_recovery_reach_the_command_with_the_runs_context(daemon, home):
    inbox, ok = os.path.join(home, "inbox.jsonl"), os.path.join(home, "ok")
    daemon.write_job("flaky", f'command = ["sh", "-c", "echo working; echo oops >&2; test -e {ok}"]\n'
                     f'[notify]\ncommand = ["sh", "-c", "cat >> {inbox}"]\n')
    daemon.start()
    first = daemon.wait_finished(daemon.run("flaky").ref)
    wait_for(lambda: notes(inbox), 10, "the first failure's notification")
    second = daemon.wait_finished(daemon.run("flaky").ref)  # a second failure in a row: not by default
    open(ok, "w").close()
    fixed = daemon.wait_finished(daemon.run("flaky").ref)
    wait_for(lambda: len(notes(inbox)) == 2, 10, "the recovery's notification")
    failure, recovery = notes(inbox)
    assert (failure["version"], failure["event"], failure["events"], failure["job"]) == \
        (1, "first_failure", ["first_failure"], "flaky")
    run = failure["run"]
    assert (run["run"], run["state"], run["exit_code"], run["attempt"], run["max_attempts"]) == \
        (first.ref, "failed", 1, 1, 1)
    assert run["output_tail"] == ["working", "oops"] and failure["consecutive_failures"] == 1
    assert run["duration_seconds"] >= 0 and run["started_at"] and run["trigger"] == "manual"
    assert (recovery["event"], recovery["run"]["run"], recovery["consecutive_failures"]) == ("recovery", fixed.ref, 0)
    assert second.ref not in [n["run"]["run"] for n in notes(inbox)]
    sent = wait_for(lambda: len(e := notify_events(daemon, "flaky")) == 2 and e, 10, "both recorded")
    assert [(e.type, e.attrs["event"], e.attrs["about_run"]) for e in sent] == \
        [("notify.sent", "first_failure", first.ref), ("notify.sent", "recovery", fixed.ref)]


def test_the_daemon_default_covers_every_job_a_slow_command_delays_nothing_and_a_failing_one_is_recorded(daemon, home):
    inbox = os.path.join(home, "inbox.jsonl")
    hook = os.path.join(home, "hook.sh")
    with open(hook, "w") as f:  # slow for `slow`, failing for `loud`, else it files the document
        f.write(f'#!/bin/sh\ncase "$JOBSD_JOB" in slow) sleep 3;; loud) echo "smtp refused" >&2; exit 3;; esac\n'
                f'cat >> {inbox}\n')
    os.chmod(hook, 0o755)
    daemon.write_job("slow", 'command = "false"\n')
    daemon.write_job("loud", 'command = "false"\n')
    daemon.write_job("late", 'command = "true"\n[expect]\nsuccess_within = "1s"\n')
    daemon.start("--notify-command", f"{hook} --to ops")
    started = daemon.wait_finished(daemon.run("slow").ref)
    again = daemon.wait_finished(daemon.run("slow").ref)  # not held up by the 3 s notification of the first
    assert notes(inbox) == [] or all(n["job"] != "slow" for n in notes(inbox))
    assert again.state == pb.RUN_STATE_FAILED and started.state == pb.RUN_STATE_FAILED
    daemon.wait_finished(daemon.run("loud").ref)
    failed = wait_for(lambda: [e for e in notify_events(daemon, "loud") if e.type == "notify.failed"], 10,
                      "the failing command's event")[0]
    assert (failed.attrs["exit_code"], failed.attrs["output"]) == ("3", "smtp refused")
    wait_for(lambda: [n for n in notes(inbox) if n["event"] == "overdue" and n["job"] == "late"], 10,
             "the overdue notification")
    [overdue] = [n for n in notes(inbox) if n["event"] == "overdue"]
    assert overdue["run"] is None and overdue["message"].startswith("no success since jobsd first saw it")
    wait_for(lambda: [n for n in notes(inbox) if n["job"] == "slow"], 10, "slow's notification, 3 s later")


EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "examples")


def test_the_shipped_example_hooks_mail_and_post_the_document(daemon, home):
    import http.server
    import shutil
    import threading

    assert shutil.which("curl"), "the webhook example needs curl (.ci/run installs it)"
    posted: list[bytes] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            posted.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sent, sendmail = os.path.join(home, "sent.eml"), os.path.join(home, "sendmail")
    with open(sendmail, "w") as f:
        f.write(f"#!/bin/sh\ncat > {sent}\n")
    os.chmod(sendmail, 0o755)
    mailer = os.path.abspath(os.path.join(EXAMPLES, "notify-sendmail.py"))
    poster = os.path.abspath(os.path.join(EXAMPLES, "notify-webhook.sh"))
    daemon.write_job("mailed", f'command = "echo disk full >&2; exit 2"\nshell = true\n[notify]\n'
                     f'command = ["env", "SENDMAIL={sendmail}", "{mailer}", "ops@example.com"]\n')
    daemon.write_job("posted", f'command = "false"\n[notify]\n'
                     f'command = ["{poster}", "http://127.0.0.1:{server.server_address[1]}/jobsd"]\n')
    daemon.start()
    try:
        for job in ("mailed", "posted"):
            daemon.wait_finished(daemon.run(job).ref)
        wait_for(lambda: len(notify_events(daemon, "mailed")) == len(notify_events(daemon, "posted")) == 1, 15,
                 "both hooks to end")
        mail = open(sent).read()
        assert "Subject: [jobsd] mailed: first_failure on " in mail and "To: ops@example.com" in mail
        assert "state:     failed, exit 2" in mail and "  disk full" in mail
        assert json.loads(posted[0])["run"]["run"] == "posted/1"
        assert [e.type for e in notify_events(daemon, "mailed") + notify_events(daemon, "posted")] == \
            ["notify.sent", "notify.sent"]
    finally:
        server.shutdown()


def test_a_notify_command_still_running_when_jobsd_stops_is_given_5s_then_killed(daemon, home):
    pidfile = os.path.join(home, "hook.pid")
    hook = os.path.join(home, "stuck.sh")
    with open(hook, "w") as f:
        f.write(f'#!/bin/sh\necho $$ > {pidfile}.tmp && mv {pidfile}.tmp {pidfile}\nexec sleep 120\n')
    os.chmod(hook, 0o755)
    daemon.write_job("fails", 'command = "false"\n')
    daemon.start("--notify-command", hook)
    daemon.wait_finished(daemon.run("fails").ref)
    pid = int(wait_for(lambda: os.path.exists(pidfile) and open(pidfile).read().strip(), 20, "the hook to start"))
    assert alive(pid)
    assert daemon.stop() == 0
    assert not alive(pid), "the notify command outlived jobsd"
    assert "notify command(s) still running after 5s at shutdown: killed" in daemon.read_log()
