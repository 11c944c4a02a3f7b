"""The run state table: legal steps pass, illegal ones raise and change nothing."""
import pytest

from jobsd_lib.kernel.states import ACTIVE, TERMINAL, TRANSITIONS, IllegalTransition, RunState, advance

S = RunState


@pytest.mark.parametrize("current, target", [(c, t) for c, ts in TRANSITIONS.items() for t in sorted(ts, key=str)])
def test_legal_steps(current, target):
    assert advance(current, target) is target


@pytest.mark.parametrize("current, target", [
    (S.SUCCEEDED, S.RUNNING), (S.FAILED, S.RETRYING), (S.QUEUED, S.SUCCEEDED), (S.QUEUED, S.RETRYING),
    (S.RETRYING, S.SUCCEEDED), (S.SKIPPED, S.QUEUED), (S.MISSED, S.RUNNING), (S.INTERRUPTED, S.RUNNING),
])
def test_illegal_steps_raise_with_the_allowed_ones(current, target):
    before = dict(TRANSITIONS)
    with pytest.raises(IllegalTransition) as err:
        advance(current, target)
    assert current.value in str(err.value) and target.value in str(err.value)
    assert TRANSITIONS == before


def test_every_state_is_active_or_terminal():
    assert ACTIVE | TERMINAL == set(RunState) and not ACTIVE & TERMINAL
