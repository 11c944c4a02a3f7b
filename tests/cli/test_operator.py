"""Operator state: pause / resume / disable / enable through the real jobsctl and a real daemon (DESIGN 4)."""
from __future__ import annotations

import json
import os
import pwd

import grpc
import pytest

from jobsd_lib.rpc import jobsd_pb2 as pb
from tests.conftest import error_code

pytestmark = pytest.mark.timeout(60)


def out(result) -> dict:  # noqa: ANN001
    assert result.returncode == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def test_pause_resume_disable_enable_json_and_events(daemon):
    daemon.write_job("hello", 'command = ["true"]\n')
    daemon.start()
    assert out(daemon.ctl("jobs", "pause", "hello", "--json"))["state"] == "paused"
    # paused: manual runs still allowed
    assert daemon.wait_finished(daemon.run("hello").ref).state == pb.RUN_STATE_SUCCEEDED
    assert out(daemon.ctl("jobs", "resume", "hello", "--json"))["state"] == "active"
    assert out(daemon.ctl("jobs", "disable", "hello", "--json"))["state"] == "disabled"
    with pytest.raises(grpc.RpcError) as err:
        daemon.run("hello")
    assert error_code(err.value) == "job_disabled"
    refused = daemon.ctl("jobs", "run", "hello", "--json")
    assert refused.returncode == 4 and json.loads(refused.stdout)["error"]["code"] == "job_disabled"
    human = daemon.ctl("jobs", "enable", "hello")
    assert human.returncode == 0 and b"hello: enabled; state active" in human.stdout
    events = [json.loads(line) for line in daemon.ctl("events", "--job", "hello", "--json", "--last", "0")
              .stdout.decode().splitlines()]
    ops = [(e["type"], e.get("actor", ""), e.get("client", "")) for e in events if e["type"].startswith("job.")]
    assert [t for t, _, _ in ops] == ["job.paused", "job.resumed", "job.disabled", "job.enabled"]
    # the actor is the uid the socket reports; jobsctl's own claim is kept beside it as `client`
    me = f"uid={os.getuid()}({pwd.getpwuid(os.getuid()).pw_name})"
    assert all(actor == me and "jobsctl" in client for _, actor, client in ops), ops


def test_unknown_and_bad_ids_are_refused(daemon):
    daemon.write_job("hello", 'command = ["true"]\n')
    daemon.start()
    missing = daemon.ctl("jobs", "pause", "nope", "--json")
    assert missing.returncode == 4 and json.loads(missing.stdout)["error"]["code"] == "job_not_found"
    bad = daemon.ctl("jobs", "disable", "../x", "--json")
    assert bad.returncode == 4 and json.loads(bad.stdout)["error"]["code"] == "invalid_argument"


def test_enable_keeps_a_spec_disabled_job_disabled(daemon):
    daemon.write_job("off", 'command = ["true"]\nenabled = false\n')
    daemon.start()
    human = daemon.ctl("jobs", "enable", "off")
    assert human.returncode == 0 and b"still disabled" in human.stdout
    assert out(daemon.ctl("jobs", "show", "off", "--json"))["state"] == "disabled"
    refused = daemon.ctl("jobs", "run", "off")
    assert refused.returncode == 4 and b"set enabled = true in the file" in refused.stderr


def test_disabled_survives_a_restart(daemon):
    daemon.write_job("hello", 'command = ["true"]\n')
    daemon.write_job("other", 'command = ["true"]\n')
    daemon.start()
    out(daemon.ctl("jobs", "disable", "hello", "--json"))
    out(daemon.ctl("jobs", "pause", "other", "--json"))
    assert daemon.stop() == 0
    daemon.start()
    assert out(daemon.ctl("jobs", "show", "hello", "--json"))["state"] == "disabled"
    assert out(daemon.ctl("jobs", "show", "other", "--json"))["state"] == "paused"
    with pytest.raises(grpc.RpcError) as err:
        daemon.run("hello")
    assert error_code(err.value) == "job_disabled"
