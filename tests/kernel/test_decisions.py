"""Pure run decisions: admission, what follows an attempt, backoff."""
from datetime import datetime, timedelta, timezone

import pytest

from jobsd_lib.kernel.decisions import (Admit, AttemptResult, Drop, Finish, Refuse, Retry, Skip, admit_run, after_attempt,
                                        backoff_delay, job_state)
from jobsd_lib.kernel.states import JobState, RunState, Trigger

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("trigger, state, active, expected", [
    (Trigger.MANUAL, JobState.ACTIVE, None, Admit()),
    (Trigger.MANUAL, JobState.PAUSED, None, Admit()),
    (Trigger.RETRY, JobState.PAUSED, None, Admit()),                # a person asked, as for a manual run
    (Trigger.CRON, JobState.PAUSED, None, Drop("paused")),        # a window is not a run: nothing recorded
    (Trigger.CATCH_UP, JobState.PAUSED, None, Drop("paused")),
    (Trigger.CRON, JobState.DISABLED, None, Drop("disabled")),
    (Trigger.DEPENDENCY, JobState.PAUSED, None, Skip("paused")),  # recorded: it uses up its upstreams' successes
    (Trigger.DEPENDENCY, JobState.DISABLED, None, Skip("disabled")),
    (Trigger.CRON, JobState.ACTIVE, "j/1", Skip("overlap")),
    (Trigger.CRON, JobState.ACTIVE, None, Admit()),
    (Trigger.CRON, JobState.INVALID, None, Skip("invalid_spec")),   # recorded, never dropped
])
def test_admission(trigger, state, active, expected):
    assert admit_run("j", trigger, state, active) == expected


@pytest.mark.parametrize("state, active, code", [
    (JobState.DISABLED, None, "job_disabled"), (JobState.INVALID, None, "job_invalid_spec"),
    (JobState.ACTIVE, "j/4", "job_busy"),
])
def test_manual_refusals_name_the_way_out(state, active, code):
    for trigger in (Trigger.MANUAL, Trigger.RETRY):  # `runs retry` is refused as `jobs run` is, never skipped
        decision = admit_run("j", trigger, state, active)
        assert isinstance(decision, Refuse) and decision.code == code and "jobsctl" in decision.message


def test_only_what_a_person_asks_for_waits_for_an_answer():
    assert {t for t in Trigger if t.requested} == {Trigger.MANUAL, Trigger.RETRY}


def test_a_job_disabled_by_its_spec_is_not_told_to_run_jobs_enable():
    decision = admit_run("j", Trigger.MANUAL, JobState.DISABLED, None, disabled_by_spec=True)
    assert isinstance(decision, Refuse) and decision.code == "job_disabled"
    assert "enabled = true" in decision.message and "jobs enable" not in decision.message
    assert admit_run("j", Trigger.CRON, JobState.DISABLED, None, disabled_by_spec=True) == Drop("disabled")


@pytest.mark.parametrize("valid, enabled, operator, expected", [
    (False, True, "disabled", JobState.INVALID), (True, False, None, JobState.DISABLED),
    (True, True, "disabled", JobState.DISABLED), (True, True, "paused", JobState.PAUSED),
    (True, True, None, JobState.ACTIVE), (True, True, "active", JobState.ACTIVE),
])
def test_job_state(valid, enabled, operator, expected):
    assert job_state(valid, enabled, operator) is expected


@pytest.mark.parametrize("attempt, expected", [(1, 30), (2, 60), (3, 120), (4, 240), (5, 300), (50, 300)])
def test_backoff_grows_by_factor_and_is_capped(attempt, expected):
    assert backoff_delay(30, 2.0, 300, attempt) == expected


@pytest.mark.parametrize("result, attempt, expected", [
    (AttemptResult(exit_code=0), 1, Finish(RunState.SUCCEEDED)),
    (AttemptResult(exit_code=1), 3, Finish(RunState.FAILED)),
    (AttemptResult(exit_code=None, timed_out=True), 3, Finish(RunState.TIMED_OUT)),
    (AttemptResult(exit_code=1, cancelled=True), 1, Finish(RunState.CANCELLED)),
    (AttemptResult(exit_code=1, interrupted=True), 1, Finish(RunState.INTERRUPTED)),
    (AttemptResult(exit_code=1), 1, Retry(NOW + timedelta(seconds=10), 10)),
    (AttemptResult(start_error="command not found"), 2, Retry(NOW + timedelta(seconds=20), 20)),
    (AttemptResult(exit_code=0, timed_out=True), 1, Retry(NOW + timedelta(seconds=10), 10)),
])
def test_after_attempt(result, attempt, expected):
    assert after_attempt(result, attempt, 3, NOW, 10, 2.0, 600) == expected
