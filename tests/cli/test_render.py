"""jobsctl.render, pure: the proto's enums name the kernel's, results are the kernel's text, and
texts come from the JSON shapes (the real commands are in test_cli.py)."""
from __future__ import annotations

import json

import pytest

from jobsctl import render, render_runs
from jobsd_lib.kernel.results import describe_result
from jobsd_lib.kernel.states import JobState, RunState, Trigger, WaitReason
from jobsd_lib.rpc import jobsd_pb2 as pb

ENUMS = [(RunState, pb.RunState, "RUN_STATE_"), (JobState, pb.JobState, "JOB_STATE_"),
         (Trigger, pb.Trigger, "TRIGGER_"), (WaitReason, pb.WaitReason, "WAIT_REASON_")]


@pytest.mark.parametrize("kernel, proto, prefix", ENUMS)
def test_every_proto_value_is_a_kernel_member_and_back(kernel, proto, prefix):
    names = render._names(kernel)  # noqa: SLF001 - the table the renderers read
    assert names[0] is None  # *_UNSPECIFIED
    assert sorted(name for name in names.values() if name) == sorted(member.value for member in kernel)
    for member in kernel:
        assert names[proto.Value(prefix + member.value.upper())] == member.value
        assert type(names[proto.Value(prefix + member.value.upper())]) is str  # plain text in JSON and tables


@pytest.mark.parametrize("state", list(RunState))
def test_a_runs_result_is_the_kernels_text(state):
    number = pb.RunState.Value("RUN_STATE_" + state.value.upper())
    data = render.run_json(pb.Run(ref="a/1", job="a", n=1, state=number, exit_code=3, signal=9))
    assert render.result_text(data) == describe_result(state, 3, 9)
    assert render.outcome_text(data) == f"a/1: {state.value} ({describe_result(state, 3, 9)})"


def test_no_run_or_an_unspecified_state_reads_as_a_dash():
    assert render.result_text(None) == "-"
    assert render.result_text(render.run_json(pb.Run(ref="a/1"))) == "-"


def test_a_failed_runs_signal_is_its_number_in_every_text():
    data = render.run_json(pb.Run(ref="a/2", job="a", n=2, state=pb.RUN_STATE_FAILED, signal=9))
    assert render.result_text(data) == "signal 9"
    assert render_runs.run_text(data).splitlines()[0] == "run:             a/2 (signal 9)"
    job = render.job_json(pb.Job(id="a", state=pb.JOB_STATE_ACTIVE, last_run=pb.Run(ref="a/2", state=pb.RUN_STATE_FAILED,
                                                                                   signal=9)))
    assert "last run:     a/2 signal 9" in render.job_text(job).splitlines()
    assert render.jobs_table({"jobs": [job]}).splitlines()[1].split()[-2:] == ["9", "-"]


def test_json_shapes_hold_plain_values():
    run = pb.Run(ref="a/1", job="a", n=1, state=pb.RUN_STATE_QUEUED, trigger=pb.TRIGGER_CATCH_UP,
                 wait_reason=pb.WAIT_REASON_SLOT)
    run.queued_at.FromSeconds(1795426077)
    data = render.run_json(run)
    assert (data["state"], data["trigger"], data["wait_reason"]) == ("queued", "catch_up", "slot")
    assert data["queued_at"] == "2026-11-23T09:27:57+00:00"
    assert json.loads(render.dumps(data)) == data


def test_timestamped_prefixes_every_line_with_the_read_time():
    assert render.timestamped(b"a\nb\n", 1795426077.5) == (b"2026-11-23T09:27:57.500000+00:00 a\n"
                                                           b"2026-11-23T09:27:57.500000+00:00 b\n")
    assert render.timestamped(b"no newline", 0) == b"1970-01-01T00:00:00.000000+00:00 no newline"


def test_detaching_says_how_to_come_back():
    assert render.detached_text("a/3").endswith("Re-attach: jobsctl jobs tail a --run 3 -f")
    assert render.detached_text("a").endswith("Re-attach: jobsctl jobs tail a -f")


def test_an_attempt_line_says_only_what_is_known():
    """`runs show` printed `exit None signal None pid None` for an attempt that never started (issue 16)."""
    never = {"number": 1, "exit_code": None, "signal": None, "pid": None, "output_bytes": 0, "dropped_bytes": 0,
             "error": "command not found: 'nope'", "timed_out": False, "finished_at": "2026-12-03T12:00:00+00:00"}
    assert render_runs.attempt_text(never) == "command not found: 'nope'"
    ran = {**never, "exit_code": 3, "pid": 4158, "output_bytes": 2048, "dropped_bytes": 10, "error": None}
    assert render_runs.attempt_text(ran) == "exit 3, pid 4158, 2.0 KiB of output, 10 B dropped"
    run = {"run": "x/1", "state": "failed", "exit_code": None, "signal": None, "reason": None, "attempt_list": [never]}
    assert render.outcome_text(run) == "x/1: failed (failed): command not found: 'nope'"  # jobs run --wait says why
