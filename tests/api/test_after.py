"""`after = [...]` on a real daemon (DESIGN 10): a downstream starts (trigger dependency, upstream =
the run that completed the set, JOBSD_UPSTREAM_RUN) once every listed job succeeded since its last
dependency run; a failure starts nothing; a success is used once, also across restarts; the graph's
problems make only the jobs concerned invalid."""
from __future__ import annotations

import json
import os
import signal

import pytest

from jobsd_lib.rpc import jobsd_pb2 as pb
from tests.conftest import wait_for

pytestmark = pytest.mark.timeout(90)

OK = 'command = "true"\n'


def runs(daemon, job: str) -> list[pb.Run]:
    """The job's runs, oldest first."""
    return list(reversed(daemon.jobs.ListRuns(pb.ListRunsRequest(job=job, limit=1000), timeout=10).runs))


def finished_runs(daemon, job: str, count: int, timeout: float = 20) -> list[pb.Run]:
    done = {pb.RUN_STATE_SUCCEEDED, pb.RUN_STATE_FAILED, pb.RUN_STATE_SKIPPED}
    return wait_for(lambda: (rs := runs(daemon, job)) and len(rs) >= count and all(r.state in done for r in rs)
                    and rs, timeout, f"{count} finished run(s) of {job}")


def test_a_chain_runs_in_order_each_link_naming_its_upstream(daemon, home):
    env_file = os.path.join(home, "env.txt")
    daemon.write_job("extract", OK)
    daemon.write_job("load", f'command = ["sh", "-c", "env > {env_file}"]\nafter = ["extract"]\n')
    daemon.write_job("report", 'command = "true"\nafter = ["load"]\n')
    daemon.start()
    first = daemon.wait_finished(daemon.run("extract").ref)

    (report,) = finished_runs(daemon, "report", 1)
    (load,) = runs(daemon, "load")
    assert (load.trigger, load.upstream, load.state) == (pb.TRIGGER_DEPENDENCY, first.ref, pb.RUN_STATE_SUCCEEDED)
    assert (report.trigger, report.upstream, report.state) == (pb.TRIGGER_DEPENDENCY, load.ref, pb.RUN_STATE_SUCCEEDED)
    assert load.started_at.ToNanoseconds() >= first.finished_at.ToNanoseconds()
    assert report.started_at.ToNanoseconds() >= load.finished_at.ToNanoseconds()
    env = dict(line.split("=", 1) for line in open(env_file).read().splitlines() if "=" in line)
    assert (env["JOBSD_TRIGGER"], env["JOBSD_UPSTREAM_RUN"]) == ("dependency", "extract/1")
    receipt = json.load(open(os.path.join(load.artifacts, "run_receipt.json")))
    assert (receipt["trigger"], receipt["upstream"]) == ("dependency", "extract/1")
    shown = daemon.ctl("runs", "show", load.ref, "--json")
    assert json.loads(shown.stdout)["upstream"] == "extract/1", shown.stderr
    history = daemon.ctl("jobs", "history", "load")
    assert b"after extract/1" in history.stdout, history.stdout


def test_a_join_waits_for_every_upstream_and_a_failure_starts_nothing(daemon):
    daemon.write_job("a", OK)
    daemon.write_job("b", 'command = ["sh", "-c", "exit ${FAIL:-0}"]\n')
    daemon.write_job("bad", 'command = ["false"]\n')
    daemon.write_job("join", 'command = "true"\nafter = ["a", "b"]\n')
    daemon.write_job("after-bad", 'command = "true"\nafter = ["bad"]\n')
    daemon.start()
    daemon.wait_finished(daemon.run("a").ref)
    daemon.wait_finished(daemon.run("bad").ref)
    daemon.wait_finished(daemon.run("a").ref)  # a twice: still one run of join, once b succeeds
    assert runs(daemon, "join") == [] and runs(daemon, "after-bad") == []

    b1 = daemon.wait_finished(daemon.run("b").ref)
    (join,) = finished_runs(daemon, "join", 1)
    assert (join.upstream, join.state) == (b1.ref, pb.RUN_STATE_SUCCEEDED)  # the run that completed the set

    daemon.wait_finished(daemon.run("b").ref)  # b again, but a not since: nothing
    daemon.wait_finished(daemon.run("a").ref)  # now both again: a second run, after a/3
    assert [r.upstream for r in finished_runs(daemon, "join", 2)] == [b1.ref, "a/3"]
    assert runs(daemon, "after-bad") == []


def test_a_success_starts_its_downstream_once_across_restarts(daemon):
    """The start-up check: `down` is invalid while `up` succeeds (nothing can start it then), fixed
    while jobsd is down, and started by the next start, once; a kill right after a success neither
    loses nor repeats the downstream run."""
    daemon.write_job("up", OK)
    daemon.write_job("down", 'command = "true"\nafter = ["up"]\n')
    daemon.start()
    daemon.write_job("down", 'command = "true"\nafter = ["up"]\nbogus = 1\n')
    daemon.daemon.Reload(pb.ReloadRequest(), timeout=10)
    up1 = daemon.wait_finished(daemon.run("up").ref)
    assert daemon.stop(signal.SIGKILL) == -signal.SIGKILL
    daemon.write_job("down", 'command = "true"\nafter = ["up"]\n')
    daemon.start()
    (down,) = finished_runs(daemon, "down", 1)
    assert (down.trigger, down.upstream) == (pb.TRIGGER_DEPENDENCY, up1.ref)

    up2 = daemon.wait_finished(daemon.run("up").ref)
    wait_for(lambda: len(runs(daemon, "down")) == 2, 10, "the second run of down")
    assert daemon.stop(signal.SIGKILL) == -signal.SIGKILL
    daemon.start()
    daemon.stop()
    daemon.start()
    assert [r.upstream for r in finished_runs(daemon, "down", 2)] == [up1.ref, up2.ref]
    assert len(runs(daemon, "down")) == 2


def test_a_new_downstream_is_not_started_by_old_successes(daemon):
    daemon.write_job("up", OK)
    daemon.start()
    daemon.wait_finished(daemon.run("up").ref)
    daemon.write_job("down", 'command = "true"\nafter = ["up"]\n')
    daemon.daemon.Reload(pb.ReloadRequest(), timeout=10)
    daemon.stop()
    daemon.start()
    assert runs(daemon, "down") == []
    up2 = daemon.wait_finished(daemon.run("up").ref)
    assert [r.upstream for r in finished_runs(daemon, "down", 1)] == [up2.ref]


def test_cycles_and_unknown_upstreams_make_only_those_jobs_invalid(daemon):
    daemon.write_job("a", 'command = "true"\nafter = ["b"]\n')
    daemon.write_job("b", 'command = "true"\nafter = ["a"]\n')
    daemon.write_job("lost", 'command = "true"\nafter = ["nope"]\n')
    daemon.write_job("me", 'command = "true"\nafter = ["me"]\n')
    daemon.write_job("fine", 'command = "true"\nafter = ["a"]\n')  # points into the cycle: stays valid
    daemon.write_job("other", OK)
    daemon.start()
    listed = json.loads(daemon.ctl("jobs", "list", "--json").stdout)
    states = {j["id"]: j["state"] for j in listed["jobs"]}
    assert states == {"a": "invalid", "b": "invalid", "lost": "invalid", "me": "invalid", "fine": "active",
                      "other": "active"}
    shown = json.loads(daemon.ctl("jobs", "show", "a", "--json").stdout)
    assert "cycle: a -> b -> a" in json.dumps(shown), shown
    lost = daemon.ctl("jobs", "show", "lost", "--json")
    assert "no job 'nope'" in lost.stdout.decode() and "after.0" not in lost.stdout.decode()
    assert daemon.wait_finished(daemon.run("other").ref).state == pb.RUN_STATE_SUCCEEDED  # the rest runs

    validated = daemon.ctl("jobs", "validate", daemon.jobs_dir, "--json")
    assert validated.returncode != 0
    problems = {f["job"]: [(p["field"], p["message"]) for p in f["problems"]]
                for f in json.loads(validated.stdout)["files"]}
    assert problems["a"] == [("after[0]", "cycle: a -> b -> a")] and problems["b"] == [("after[0]", "cycle: b -> a -> b")]
    assert problems["lost"] == [("after[0]", "no job 'nope' in the jobs folder")]
    assert problems["me"] == [("after[0]", "'me' is this job itself")]
    assert problems["fine"] == [] and problems["other"] == []


def test_a_reload_that_makes_a_cycle_leaves_the_rest_running(daemon):
    daemon.write_job("a", OK)
    daemon.write_job("b", 'command = "true"\nafter = ["a"]\n')
    daemon.write_job("c", OK)
    daemon.start()
    daemon.write_job("a", 'command = "true"\nafter = ["b"]\n')
    daemon.daemon.Reload(pb.ReloadRequest(), timeout=10)
    states = {j.id: j.state for j in daemon.jobs.ListJobs(pb.ListJobsRequest(), timeout=10).jobs}
    assert (states["a"], states["b"], states["c"]) == (pb.JOB_STATE_INVALID, pb.JOB_STATE_INVALID, pb.JOB_STATE_ACTIVE)
    assert daemon.wait_finished(daemon.run("c").ref).state == pb.RUN_STATE_SUCCEEDED


def test_a_500_job_chain_starts_in_order(daemon):
    daemon.write_job("j0", OK)
    for i in range(1, 500):
        daemon.write_job(f"j{i}", f'command = "true"\nafter = ["j{i - 1}"]\n')
    daemon.start("--max-concurrent-runs", "4")
    daemon.run("j0")
    (last,) = finished_runs(daemon, "j499", 1, timeout=60)
    assert (last.upstream, last.state) == ("j498/1", pb.RUN_STATE_SUCCEEDED)


def test_bad_after_values_are_invalid_specs_naming_the_field(daemon):
    daemon.write_job("up", OK)
    daemon.write_job("ids", 'command = "true"\nafter = ["Bad Id"]\n')
    daemon.write_job("twice", 'command = "true"\nafter = ["up", "up"]\n')
    daemon.write_job("text", 'command = "true"\nafter = "up"\n')
    many = ", ".join(f'"u{i}"' for i in range(1000))
    daemon.write_job("many", f'command = "true"\nafter = [{many}]\n')
    daemon.start()
    for job, needle in (("ids", "not a valid job id"), ("twice", "listed twice"), ("text", "after"),
                        ("many", "at most 256")):
        shown = daemon.ctl("jobs", "show", job, "--json")
        assert json.loads(shown.stdout)["state"] == "invalid", job
        assert needle in shown.stdout.decode(), (job, shown.stdout)


def test_jobs_graph_shows_every_job_or_those_connected_to_one_as_text_dot_and_json(daemon):
    daemon.write_job("extract", OK)
    daemon.write_job("load", 'command = "true"\nafter = ["extract"]\n')
    daemon.write_job("report", 'command = "true"\nafter = ["load", "extract"]\n')
    daemon.write_job("alone", OK)
    daemon.write_job("broken", 'command = "true"\nafter = ["nope"]\n')
    daemon.start()
    everything = json.loads(daemon.ctl("jobs", "graph", "--json").stdout)
    assert everything == {"jobs": [
        {"id": "alone", "state": "active", "after": [], "requires": []},
        {"id": "broken", "state": "invalid", "after": [], "requires": []},
        {"id": "extract", "state": "active", "after": [], "requires": []},
        {"id": "load", "state": "active", "after": ["extract"], "requires": []},
        {"id": "report", "state": "active", "after": ["load", "extract"], "requires": []}]}
    one = json.loads(daemon.ctl("jobs", "graph", "load", "--json").stdout)
    assert [j["id"] for j in one["jobs"]] == ["extract", "load", "report"]  # upstreams and downstreams

    text = daemon.ctl("jobs", "graph", "report").stdout.decode().splitlines()
    assert text[0].split() == ["JOB", "STATE", "AFTER"]
    assert text[3].split() == ["report", "active", "load,", "extract"]
    dot = daemon.ctl("jobs", "graph", "--dot").stdout.decode()
    assert dot.startswith("digraph jobs {") and dot.rstrip().endswith("}")
    assert '"extract" -> "load";' in dot and '"load" -> "report";' in dot and '"extract" -> "report";' in dot
    assert '"broken" [style=dashed, label="broken (invalid)"];' in dot

    missing = daemon.ctl("jobs", "graph", "nope", "--json")
    assert missing.returncode != 0 and json.loads(missing.stdout)["error"]["code"] == "job_not_found"
    bad = daemon.ctl("jobs", "graph", "Bad Id")
    assert bad.returncode != 0 and b"not a valid job id" in bad.stderr
