"""Which ended runs a notify command hears about (kernel.hooks)."""
from jobsd_lib.kernel.hooks import DEFAULT_ON, KINDS, chosen, run_kinds
from jobsd_lib.kernel.states import RunState as S


def test_the_kinds_of_an_ended_run():
    assert run_kinds(S.FAILED, 1, 0) == ["first_failure", "failure"]
    assert run_kinds(S.TIMED_OUT, 3, 2) == ["failure"]
    assert run_kinds(S.INTERRUPTED, 1, 0) == ["first_failure", "failure"]
    assert run_kinds(S.SUCCEEDED, 0, 2) == ["recovery", "success"]
    assert run_kinds(S.SUCCEEDED, 0, 0) == ["success"]
    for quiet in (S.SKIPPED, S.MISSED, S.CANCELLED, S.REJECTED):
        assert run_kinds(quiet, 0, 0) == []


def test_the_default_hears_first_failures_recoveries_and_overdue_not_every_failure_or_success():
    assert chosen(run_kinds(S.FAILED, 1, 0), DEFAULT_ON) == ["first_failure"]
    assert chosen(run_kinds(S.FAILED, 2, 1), DEFAULT_ON) == []
    assert chosen(run_kinds(S.SUCCEEDED, 0, 1), DEFAULT_ON) == ["recovery"]
    assert chosen(run_kinds(S.SUCCEEDED, 0, 0), DEFAULT_ON) == []
    assert chosen(run_kinds(S.FAILED, 2, 1), ["failure"]) == ["failure"]
    assert chosen(run_kinds(S.SUCCEEDED, 0, 1), KINDS) == ["recovery", "success"]
