"""A run's result text (jobsd_lib.kernel.results): the one `describe_result` for the CLI and summary.md."""
import pytest

from jobsd_lib.kernel import decisions
from jobsd_lib.kernel.results import describe_result
from jobsd_lib.kernel.states import RunState

S = RunState


@pytest.mark.parametrize("state, code, sig, text", [
    (S.SUCCEEDED, 0, None, "ok"), (S.FAILED, 3, None, "exit 3"), (S.FAILED, None, 9, "signal 9"),
    (S.FAILED, None, 64, "signal 64"),          # a number this host has no name for
    (S.FAILED, 0, 15, "signal 15"),             # the signal says more than the code
    (S.FAILED, None, None, "failed"),           # it never started (command not found)
    (S.TIMED_OUT, None, 15, "timed out"), (S.INTERRUPTED, None, None, "interrupted"),
    (S.CANCELLED, None, 9, "cancelled"), (S.SKIPPED, None, None, "skipped"), (S.MISSED, None, None, "missed"),
    (S.QUEUED, None, None, "queued"), (S.RUNNING, None, None, "running"), (S.RETRYING, 1, None, "retrying"),
])
def test_describe_result(state, code, sig, text):
    assert describe_result(state, code, sig) == text


def test_every_state_has_a_text_and_decisions_offers_the_same_function():
    assert all(describe_result(state, None, None) for state in RunState)
    assert decisions.describe_result is describe_result


def test_check_names_each_problem_of_a_job_in_order():
    from jobsd_lib.kernel.check import Problem, job_problems

    assert job_problems("ok", None, 0, "ok", None) == []
    assert job_problems("b", "schedule.cron: bad", 2, "b/7: exit 3", "overdue since x") == [
        Problem("b", "invalid", "schedule.cron: bad"),
        Problem("b", "failing", "failed 2 times in a row (latest run b/7: exit 3)"),
        Problem("b", "overdue", "overdue since x")]
    assert job_problems("c", None, 1, "c/2: timed out", None)[0].message == "failed once (latest run c/2: timed out)"
