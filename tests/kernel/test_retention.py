"""The retention rules of `jobsctl gc` (pure)."""
from __future__ import annotations

import math

import pytest

from jobsd_lib.errors import InvalidArgument
from jobsd_lib.kernel.retention import MAX_KEEP_LAST, Retention, retention_policy


def test_rules_normalise_to_a_count_and_a_cutoff():
    assert retention_policy(3, None, 1000.0) == Retention(keep_last=3, cutoff=math.inf)
    assert retention_policy(None, 600.0, 1000.0) == Retention(keep_last=0, cutoff=400.0)
    assert retention_policy(0, 0.0, 1000.0) == Retention(keep_last=0, cutoff=1000.0)


@pytest.mark.parametrize("keep_last, older_than, message", [
    (None, None, "say what to keep"),
    (-1, None, "keep_last must be between 0"),
    (MAX_KEEP_LAST + 1, None, "keep_last must be between 0"),
    (None, -5.0, "older_than must be a finite number"),
    (None, math.nan, "older_than must be a finite number"),
    (None, math.inf, "older_than must be a finite number"),
])
def test_bad_rules_are_refused(keep_last, older_than, message):
    with pytest.raises(InvalidArgument, match=message):
        retention_policy(keep_last, older_than, 1000.0)


def test_a_jobs_own_retention_replaces_the_daemons_default_as_a_whole():
    from jobsd_lib.kernel.retention import rules_for

    assert rules_for(5, None, 100, 30 * 86400) == (5, None)       # not also cut by the default's age
    assert rules_for(None, 86400.0, 100, None) == (None, 86400.0)
    assert rules_for(None, None, 100, 30 * 86400) == (100, 30 * 86400)
    assert rules_for(None, None, None, None) is None               # no rule anywhere: keep everything
    assert rules_for(0, None, None, None) == (0, None)             # keep_last = 0 is a rule (with no age: all go)
