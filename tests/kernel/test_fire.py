"""decide_firing: table-driven, no clock, no sleeps."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from jobsd_lib.kernel.fire import CatchUp, Miss, Run, decide_firing, unrecorded

NOW = datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


@pytest.mark.parametrize(("windows", "grace", "coalesce", "runs", "missed"), [
    ([ago(0)], 60, True, [ago(0)], []),                                   # on time
    ([ago(0)], 60, False, [ago(0)], []),
    ([ago(59)], 60, True, [ago(59)], []),                                 # late but within grace
    ([ago(60)], 60, True, [ago(60)], []),                                 # exactly at grace: runs
    ([ago(61)], 60, True, [], [ago(61)]),                                 # beyond grace: missed
    ([ago(30), ago(20), ago(10)], 60, True, [ago(10)], [ago(30), ago(20)]),      # coalesce: latest runs
    ([ago(30), ago(20), ago(10)], 60, False, [ago(30), ago(20), ago(10)], []),   # no coalesce: all run
    ([ago(300), ago(120), ago(5)], 60, True, [ago(5)], [ago(300), ago(120)]),    # late + eligible
    ([ago(300), ago(120), ago(5)], 60, False, [ago(5)], [ago(300), ago(120)]),
    ([ago(300), ago(120)], 60, True, [], [ago(300), ago(120)]),                  # all late, coalesce or not
    ([ago(300), ago(120)], 60, False, [], [ago(300), ago(120)]),
    ([ago(1), ago(1)], 60, False, [ago(1)], []),                                 # duplicates merged
    ([], 60, True, [], []),
    ([ago(0.5)], 0, True, [ago(0.5)], []),                 # grace 0: dispatch lateness (<= 1 s) is on time
    ([ago(1.5)], 0, True, [], [ago(1.5)]),                 # ... but not more
])
def test_decide_firing(windows, grace, coalesce, runs, missed):
    decision = decide_firing(windows, NOW, grace, coalesce)
    assert decision.runs == runs
    assert decision.missed == missed
    assert decision.missed_unrecorded == 0
    assert [a.window for a in decision.actions] == sorted(a.window for a in decision.actions)


def test_reasons_say_why():
    decision = decide_firing([ago(300), ago(20), ago(10)], NOW, 60, True)
    late, coalesced, run = decision.actions
    assert isinstance(late, Miss) and "beyond misfire_grace 60s" in late.reason and late.reason.startswith("missed: ")
    assert isinstance(coalesced, Miss) and "coalesced" in coalesced.reason
    assert run == Run(ago(10))


def test_many_missed_windows_are_capped_keeping_the_latest():
    windows = [ago(10_000 - i) for i in range(1000)]
    decision = decide_firing(windows, NOW, 60, True, max_missed=100)
    assert decision.missed_unrecorded == 900
    assert decision.missed == windows[-100:]
    assert decision.runs == []


def test_windows_in_other_zones_compare_as_instants():
    berlin = timezone(timedelta(hours=1))
    window = ago(30).astimezone(berlin)
    assert decide_firing([window], NOW, 60, True).runs == [window]


def test_naive_times_are_refused():
    with pytest.raises(ValueError):
        decide_firing([datetime(2026, 1, 1)], NOW, 60, True)


@pytest.mark.parametrize(("windows", "coalesce", "runs", "catch_ups", "missed"), [
    ([ago(300), ago(120)], True, [], [ago(120)], [ago(300)]),       # all late: the latest catches up
    ([ago(300), ago(120)], False, [], [ago(120)], [ago(300)]),
    ([ago(300)], True, [], [ago(300)], []),
    ([ago(300), ago(5)], True, [ago(5)], [], [ago(300)]),           # a window on time: no catch-up needed
    ([ago(5)], True, [ago(5)], [], []),
])
def test_catch_up_runs_the_latest_late_window_once(windows, coalesce, runs, catch_ups, missed):
    decision = decide_firing(windows, NOW, 60, coalesce, catch_up=True)
    assert (decision.runs, decision.catch_ups, decision.missed) == (runs, catch_ups, missed)
    if catch_ups:
        assert CatchUp(catch_ups[0]) in decision.actions


def test_catch_up_with_many_missed_windows_still_caps_records():
    windows = [ago(10_000 - i) for i in range(500)]
    decision = decide_firing(windows, NOW, 60, True, catch_up=True, max_missed=10)
    assert decision.catch_ups == [windows[-1]]
    assert decision.missed == windows[-11:-1] and decision.missed_unrecorded == 489


def test_unrecorded_splits_off_exactly_the_windows_with_a_record():
    t0 = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
    windows = [t0 + timedelta(seconds=s) for s in (2, 0, 1, 3)]
    assert unrecorded(windows, set()) == (sorted(windows), [])
    recorded = {(t0 + timedelta(seconds=1)).timestamp(), (t0 + timedelta(seconds=3)).timestamp(), t0.timestamp() - 60}
    assert unrecorded(windows, recorded) == ([t0, t0 + timedelta(seconds=2)], [t0 + timedelta(seconds=1),
                                                                               t0 + timedelta(seconds=3)])


def test_unrecorded_compares_instants_across_zones():
    plus_one = timezone(timedelta(hours=1))
    windows = [datetime(2026, 11, 23, 13, 0, s, tzinfo=plus_one) for s in (0, 1, 2)]  # 12:00:0s UTC
    recorded = {datetime(2026, 11, 23, 12, 0, 1, tzinfo=UTC).timestamp()}
    assert unrecorded(windows, recorded) == ([windows[0], windows[2]], [windows[1]])
    with pytest.raises(ValueError):
        unrecorded([datetime(2026, 11, 23, 12, 0, 0)], set())
