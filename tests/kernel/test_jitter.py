"""kernel.jitter and the firing plan of a jittered job: one stable offset per job id, in range,
and windows that are judged late against their fire time but recorded as the nominal window."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from jobsd_lib.kernel.fire import CatchUp, Miss, Run, plan_firing
from jobsd_lib.kernel.jitter import MAX_JITTER, offset
from jobsd_lib.spec import SpecInvalid, parse_spec


def test_the_offset_depends_on_the_job_id_only_and_lies_in_range():
    assert offset("backup", 300) == offset("backup", 300) and offset("backup", 300) % timedelta(milliseconds=1) == timedelta(0)
    spread = {offset(f"job-{i}", 300) for i in range(2000)}
    assert all(timedelta(0) <= o < timedelta(seconds=300) for o in spread)
    assert len(spread) > 1900  # ids spread, they do not bunch
    thirds = [sum(1 for o in spread if timedelta(seconds=100 * k) <= o < timedelta(seconds=100 * (k + 1))) for k in range(3)]
    assert min(thirds) > 550  # about a third in each third of the range
    assert offset("backup", 0) == timedelta(0) and offset("backup", 0.0005) == timedelta(0)


def test_a_known_offset_never_changes_between_versions():
    """Hosts and restarts agree only while the function stays the same: two values pinned."""
    assert offset("backup", 300) == timedelta(minutes=2, seconds=10, milliseconds=239)
    assert offset("nightly-report", 3600) == timedelta(minutes=27, seconds=47, milliseconds=289)


def _rules(grace: float = 5.0, coalesce: bool = True, catch_up: bool = False) -> SimpleNamespace:
    return SimpleNamespace(misfire_grace=grace, coalesce=coalesce, catch_up=catch_up)


def test_a_jittered_window_runs_as_its_nominal_window_and_lateness_counts_from_its_fire_time():
    shift = timedelta(seconds=137)
    window = datetime(2026, 12, 3, 3, 0, tzinfo=UTC)
    fired = window + shift
    on_time = plan_firing([fired], fired + timedelta(seconds=2), _rules(), first=False, recorded=frozenset(), offset=shift)
    assert on_time.actions == (Run(window),)
    late = plan_firing([fired], fired + timedelta(seconds=60), _rules(), first=False, recorded=frozenset(), offset=shift)
    assert late.windows(Miss) == [window]
    assert f"due {fired.isoformat()}, 60s late" in late.actions[0].reason
    caught = plan_firing([fired], fired + timedelta(seconds=60), _rules(catch_up=True), first=True,
                         recorded=frozenset(), offset=shift)
    assert caught.actions == (CatchUp(window),)
    again = plan_firing([fired], fired + timedelta(seconds=1), _rules(), first=True,
                        recorded={window.timestamp()}, offset=shift)
    assert again.windows(Run) == []  # recorded under its nominal window: not run twice after a restart


def test_jitter_in_a_spec_is_a_duration_of_at_most_a_day():
    spec = parse_spec("j", b'command = ["true"]\n[schedule]\ncron = "0 3 * * *"\ntimezone = "UTC"\njitter = "5m"\n', "j.toml")
    assert spec.schedule.jitter == 300
    with pytest.raises(SpecInvalid) as bad:
        parse_spec("j", b'command = ["true"]\n[schedule]\ncron = "0 3 * * *"\ntimezone = "UTC"\njitter = "2d"\n', "j.toml")
    assert "jitter is at most 24h" in str(bad.value.problems[0].message) and MAX_JITTER == 86400
