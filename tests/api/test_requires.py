"""`[[requires]]` and `[gates] wait` on a real daemon (DESIGN 10): checked before every run whatever
its trigger; a waiting run is queued with wait_reason dependency, a detail naming the job and why,
and waiting_since, holding no slot; met later it runs; not met in time it ends skipped
(dependency_unmet); wait 0 skips at once."""
from __future__ import annotations

import json
import os

import pytest

from jobsd_lib.rpc import jobsd_pb2 as pb
from tests.conftest import wait_for

pytestmark = pytest.mark.timeout(60)


def gated(job: str = "backup", within: str = "26h", wait: str | None = None) -> str:
    text = f'command = "true"\n[[requires]]\njob = "{job}"\nsucceeded_within = "{within}"\n'
    return text + (f'[gates]\nwait = "{wait}"\n' if wait else "")


def test_an_unmet_gate_without_a_wait_skips_the_run_saying_why(daemon):
    daemon.write_job("backup", 'command = ["false"]\n')
    daemon.write_job("prune", gated())
    daemon.start()
    never = daemon.wait_finished(daemon.run("prune").ref)
    assert (never.state, never.reason) == (pb.RUN_STATE_SKIPPED, "dependency_unmet: backup: never ran, needs < 26h")
    assert never.attempts == 0
    failed = daemon.wait_finished(daemon.run("backup").ref)
    done = daemon.ctl("jobs", "run", "prune", "--wait", "--json")
    assert done.returncode == 5 and json.loads(done.stdout)["state"] == "skipped"  # exit 5: it did not start
    assert f"backup: last run {failed.ref} failed" in json.loads(done.stdout)["reason"]
    followed = daemon.ctl("jobs", "run", "prune", "--follow")
    assert followed.returncode == 5
    assert b": skipped (skipped): dependency_unmet: backup: last run" in followed.stdout + followed.stderr


def test_a_met_gate_runs_and_a_stale_success_does_not(daemon):
    daemon.write_job("backup", 'command = "true"\n')
    daemon.write_job("prune", gated())
    daemon.write_job("strict", gated(within="1s"))
    daemon.start()
    daemon.wait_finished(daemon.run("backup").ref)
    assert daemon.wait_finished(daemon.run("prune").ref).state == pb.RUN_STATE_SUCCEEDED
    wait_for(lambda: daemon.wait_finished(daemon.run("strict").ref).state == pb.RUN_STATE_SKIPPED, 15,
             "the 1 s old success to be too old")
    runs = daemon.jobs.ListRuns(pb.ListRunsRequest(job="strict", limit=100), timeout=10).runs
    assert "backup: last success" in runs[0].reason and "needs < 1s" in runs[0].reason


def test_a_waiting_run_holds_no_slot_names_what_it_waits_for_and_runs_once_met(daemon, home):
    go = os.path.join(home, "go")
    os.mkfifo(go)
    daemon.write_job("backup", f'command = ["sh", "-c", "cat {go} >/dev/null"]\n')
    daemon.write_job("prune", gated(wait="1h"))
    daemon.write_job("other", 'command = "true"\n')
    daemon.start("--max-concurrent-runs", "2")
    backup = daemon.run("backup")
    wait_for(lambda: daemon.get_run(backup.ref).state == pb.RUN_STATE_RUNNING, 10, "backup running")
    prune = daemon.run("prune")
    waiting = wait_for(lambda: (r := daemon.get_run(prune.ref)).wait_reason == pb.WAIT_REASON_DEPENDENCY and r, 10,
                       "prune waiting for backup")
    assert waiting.state == pb.RUN_STATE_QUEUED and waiting.wait_detail == f"backup: running now ({backup.ref})"
    assert waiting.waiting_since.ToNanoseconds() >= waiting.queued_at.ToNanoseconds()
    shown = json.loads(daemon.ctl("runs", "show", prune.ref, "--json").stdout)
    assert (shown["wait_reason"], shown["wait_detail"]) == ("dependency", f"backup: running now ({backup.ref})")
    listed = daemon.ctl("jobs", "list").stdout.decode()
    assert f"waiting: backup: running now ({backup.ref})" in listed, listed
    # the second slot is free: another job runs while prune waits
    assert daemon.wait_finished(daemon.run("other").ref, 10).state == pb.RUN_STATE_SUCCEEDED
    with open(go, "w") as f:
        f.write("done\n")
    assert daemon.wait_finished(backup.ref).state == pb.RUN_STATE_SUCCEEDED
    final = daemon.wait_finished(prune.ref)
    assert (final.state, final.wait_detail) == (pb.RUN_STATE_SUCCEEDED, "")
    events = [json.loads(line) for line in open(os.path.join(final.artifacts, "events.jsonl"))]
    waits = [e for e in events if e["type"] == "run.waiting"]
    assert waits and waits[0]["wait_reason"] == "dependency"
    assert waits[0]["detail"] == f"backup: running now ({backup.ref})"


def test_a_gate_wait_runs_out_and_a_waiting_run_can_be_cancelled(daemon):
    daemon.write_job("backup", 'command = ["false"]\n')
    daemon.write_job("prune", gated(wait="1s"))
    daemon.write_job("patient", gated(wait="1h"))
    daemon.start()
    ended = daemon.wait_finished(daemon.run("prune").ref, 15)
    assert (ended.state, ended.reason) == (pb.RUN_STATE_SKIPPED, "dependency_unmet: backup: never ran, needs < 26h")
    assert ended.finished_at.ToNanoseconds() - ended.queued_at.ToNanoseconds() >= 1_000_000_000
    patient = daemon.run("patient")
    wait_for(lambda: daemon.get_run(patient.ref).wait_reason == pb.WAIT_REASON_DEPENDENCY, 10, "patient waiting")
    cancelled = daemon.jobs.CancelRun(pb.CancelRunRequest(run=patient.ref), timeout=20)
    assert cancelled.state == pb.RUN_STATE_CANCELLED


def test_bad_requires_are_invalid_specs(daemon):
    daemon.write_job("backup", 'command = "true"\n')
    daemon.write_job("zero", gated(within="0"))
    daemon.write_job("minus", 'command = "true"\n[[requires]]\njob = "backup"\nsucceeded_within = -5\n')
    daemon.write_job("nobody", gated(job="ghost"))
    daemon.write_job("nowait", 'command = "true"\n[gates]\nwait = "soon"\n')
    daemon.start()
    for job, needle in (("zero", "requires.0.succeeded_within"), ("minus", "requires.0.succeeded_within"),
                        ("nobody", "no job 'ghost'"), ("nowait", "gates.wait")):
        shown = daemon.ctl("jobs", "show", job, "--json")
        assert json.loads(shown.stdout)["state"] == "invalid" and needle in shown.stdout.decode(), (job, shown.stdout)


def test_jobs_graph_shows_requires_beside_after(daemon):
    daemon.write_job("backup", 'command = "true"\n')
    daemon.write_job("load", 'command = "true"\nafter = ["backup"]\n')
    daemon.write_job("report", 'command = "true"\n[[requires]]\njob = "backup"\nsucceeded_within = "1h"\n'
                               '[[requires]]\njob = "load"\nsucceeded_within = "2h"\n')
    daemon.write_job("alone", 'command = "true"\n')
    daemon.start()
    graph = json.loads(daemon.ctl("jobs", "graph", "--json").stdout)["jobs"]
    assert [(j["id"], j["after"], j["requires"]) for j in graph] == [
        ("alone", [], []), ("backup", [], []), ("load", ["backup"], []), ("report", [], ["backup", "load"])]
    linked = json.loads(daemon.ctl("jobs", "graph", "backup", "--json").stdout)["jobs"]
    assert [j["id"] for j in linked] == ["backup", "load", "report"]  # a gate links jobs too
    text = daemon.ctl("jobs", "graph").stdout.decode().splitlines()
    assert text[0].split() == ["JOB", "STATE", "AFTER", "REQUIRES"]
    assert text[4].split() == ["report", "active", "-", "backup,", "load"]
    dot = daemon.ctl("jobs", "graph", "--dot").stdout.decode()
    assert '"backup" -> "report" [style=dotted, label="requires"];' in dot and '"backup" -> "load";' in dot
