"""What happens to due cron windows (jobsd_lib.kernel.fire): table-driven, no clock, no sleeps."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from jobsd_lib.kernel.fire import (BACKLOG, FAR_BEHIND, MAX_MISSED, CatchUp, Held, Miss, NextFire, Run, SkipInvalid,
                                   catch_up_start, decide_firing, latest_window, new_windows, plan_firing, unrecorded)

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


def test_decide_firing_orders_and_merges_windows_as_instants_not_wall_times():
    """Aware datetimes of one zone compare by wall time and ignore the fold (PITFALLS 6): 02:45 CEST
    comes before 02:15 CET, and 02:30 CEST and 02:30 CET are two windows, not one."""
    berlin = ZoneInfo("Europe/Berlin")
    cest, cet = datetime(2026, 10, 25, 2, 45, tzinfo=berlin), datetime(2026, 10, 25, 2, 15, fold=1, tzinfo=berlin)
    now = datetime(2026, 10, 25, 1, 15, 30, tzinfo=UTC)
    assert decide_firing([cet, cest], now, 3600, False).runs == [cest, cet]
    first, second = datetime(2026, 10, 25, 2, 30, tzinfo=berlin), datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=berlin)
    assert decide_firing([second, first], now, 3600, False).runs == [first, second]


# --- new_windows: what the adapter has already handed over ----------------------------------

def test_new_windows_splits_at_the_latest_window_handed_over():
    windows = [ago(10), ago(30), ago(20)]
    assert new_windows(windows, None) == ([ago(30), ago(20), ago(10)], [])
    assert new_windows(windows, ago(20)) == ([ago(10)], [ago(30), ago(20)])
    assert new_windows(windows, ago(5)) == ([], [ago(30), ago(20), ago(10)])
    assert new_windows([], ago(5)) == ([], [])


def test_new_windows_compares_instants_across_a_fold():
    berlin = ZoneInfo("Europe/Berlin")
    handed = datetime(2026, 10, 25, 2, 45, tzinfo=berlin)            # 00:45Z, CEST
    later = datetime(2026, 10, 25, 2, 15, fold=1, tzinfo=berlin)     # 01:15Z, CET: a smaller wall time
    assert new_windows([later, handed], handed.astimezone(UTC)) == ([later], [handed])
    with pytest.raises(ValueError):
        new_windows([datetime(2026, 1, 1)], None)
    with pytest.raises(ValueError):
        new_windows([NOW], datetime(2026, 1, 1))


# --- catch_up_start: where a job far behind starts its listing -------------------------------

def every(step: timedelta) -> NextFire:
    """A trigger firing at every multiple of `step` since 2026-01-01, answering as APScheduler's
    CronTrigger.get_next_fire_time does: the earliest fire time at or after `now`, or after `previous`
    when there is one (then possibly before `now`)."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)

    def next_fire(previous: datetime | None, now: datetime) -> datetime:
        after = now
        if previous is not None:
            after = min(now, previous + timedelta(microseconds=1))
            after += timedelta(microseconds=1) if after == previous else timedelta(0)
        k = -((t0 - after) // step)  # ceil((after - t0) / step)
        return t0 + k * step
    return next_fire


def test_a_job_not_far_behind_lists_every_window():
    assert catch_up_start(None, NOW, every(timedelta(seconds=1))) is None
    assert catch_up_start(NOW - FAR_BEHIND, NOW, every(timedelta(seconds=1))) is None
    assert catch_up_start(NOW + timedelta(days=1), NOW, every(timedelta(seconds=1))) is None


def test_a_job_far_behind_starts_at_the_shortest_span_holding_a_backlog():
    """Every second, two days behind: 1 min back holds 61 windows (< BACKLOG), 4 min holds 241."""
    next_fire = every(timedelta(seconds=1))
    start = catch_up_start(NOW - timedelta(days=2), NOW, next_fire)
    assert start == NOW - timedelta(minutes=4)
    assert catch_up_start(NOW - timedelta(days=2), NOW, next_fire, backlog=61) == NOW - timedelta(minutes=1)


def test_a_sparse_job_far_behind_keeps_all_its_windows():
    """Hourly, a day behind: even the span back to its next run time holds fewer than BACKLOG."""
    assert catch_up_start(NOW - timedelta(days=1), NOW, every(timedelta(hours=1))) is None
    assert BACKLOG == MAX_MISSED + 1


def test_a_job_far_behind_with_a_trigger_that_ended_lists_from_its_next_run_time():
    assert catch_up_start(NOW - timedelta(days=2), NOW, lambda previous, now: None) is None


# --- plan_firing: every path of one firing -----------------------------------------------------

@dataclass(frozen=True)
class Rules:
    misfire_grace: float = 60
    coalesce: bool = True
    catch_up: bool = False


def kinds(plan):
    return [(type(a).__name__, a.window) for a in plan.actions]


@pytest.mark.parametrize(("windows", "rules", "first", "recorded", "valid", "expected", "unrecorded_count"), [
    # on time: runs
    ([ago(0)], Rules(), False, set(), True, [("Run", ago(0))], 0),
    # late: missed; coalesce: only the latest on time runs
    ([ago(300), ago(20), ago(10)], Rules(), False, set(), True,
     [("Miss", ago(300)), ("Miss", ago(20)), ("Run", ago(10))], 0),
    # catch-up only on the first firing
    ([ago(300), ago(120)], Rules(catch_up=True), True, set(), True, [("Miss", ago(300)), ("CatchUp", ago(120))], 0),
    ([ago(300), ago(120)], Rules(catch_up=True), False, set(), True, [("Miss", ago(300)), ("Miss", ago(120))], 0),
    # recorded windows are dropped on the first firing only; the others are decided as usual
    ([ago(300), ago(120)], Rules(catch_up=True), True, {ago(120).timestamp()}, True,
     [("CatchUp", ago(300)), ("AlreadyRecorded", ago(120))], 0),
    ([ago(5)], Rules(), False, {ago(5).timestamp()}, True, [("Run", ago(5))], 0),
    ([ago(5), ago(4)], Rules(), True, {ago(5).timestamp(), ago(4).timestamp()}, True,
     [("AlreadyRecorded", ago(5)), ("AlreadyRecorded", ago(4))], 0),
    # an invalid spec: every window to admission (skipped invalid_spec), late or not, whatever the rules
    ([ago(300), ago(5)], Rules(), False, set(), False, [("SkipInvalid", ago(300)), ("SkipInvalid", ago(5))], 0),
    ([ago(300), ago(5)], None, True, {ago(300).timestamp()}, False,
     [("AlreadyRecorded", ago(300)), ("SkipInvalid", ago(5))], 0),
    # no scheduled spec: dropped
    ([ago(5), ago(1)], None, False, set(), True, [("Unscheduled", ago(5)), ("Unscheduled", ago(1))], 0),
    ([], Rules(), True, set(), True, [], 0),
])
def test_plan_firing(windows, rules, first, recorded, valid, expected, unrecorded_count):
    plan = plan_firing(windows, NOW, rules, first=first, recorded=recorded, valid=valid)
    assert kinds(plan) == expected
    assert plan.missed_unrecorded == unrecorded_count


def test_plan_firing_keeps_what_decide_firing_says():
    windows = [ago(10_000 - i) for i in range(300)]
    plan = plan_firing(windows, NOW, Rules(misfire_grace=5, coalesce=False), first=False, recorded=set(),
                       max_missed=10)
    assert plan == decide_firing(windows, NOW, 5, False, max_missed=10)
    assert plan.missed == windows[-10:] and plan.missed_unrecorded == 290


def test_plan_firing_caps_invalid_spec_windows_keeping_the_latest():
    windows = [ago(1000 - i) for i in range(250)]
    plan = plan_firing(windows, NOW, None, first=False, recorded=set(), valid=False, max_missed=100)
    assert plan.windows(SkipInvalid) == windows[-100:] and plan.missed_unrecorded == 150
    assert plan_firing(windows, NOW, None, first=False, recorded=set(), valid=False, max_missed=0).actions == ()


def test_plan_firing_refuses_naive_times():
    with pytest.raises(ValueError):
        plan_firing([ago(1)], datetime(2026, 1, 1), Rules(), first=False, recorded=set())
    with pytest.raises(ValueError):
        plan_firing([datetime(2026, 1, 1)], NOW, None, first=True, recorded=set(), valid=False)


def test_plan_firing_reads_a_spec_schedule():
    """jobsd_lib.spec.ScheduleSpec is what the daemon passes."""
    from jobsd_lib.spec import ScheduleSpec

    rules = ScheduleSpec(cron="* * * * *", timezone="UTC", misfire_grace=30, coalesce=False, catch_up=True)
    plan = plan_firing([ago(60), ago(45)], NOW, rules, first=True, recorded=set())
    assert kinds(plan) == [("Miss", ago(60)), ("CatchUp", ago(45))]


def multiples_of(seconds: int):  # noqa: ANN201 - a Search: the first multiple of `seconds` (epoch) at or after `at`
    def search(at: datetime) -> datetime:
        epoch = at.timestamp()
        step = -(-epoch // seconds) * seconds
        return datetime.fromtimestamp(step, UTC)
    return search


def test_latest_window_finds_the_last_one_missed_while_paused_cheaply():
    now = datetime(2026, 12, 3, 12, 0, 30, 500000, tzinfo=UTC)
    week_ago = now - timedelta(days=7)
    calls = []

    def counted(at: datetime) -> datetime:
        calls.append(at)
        return multiples_of(1)(at)

    assert latest_window(counted, week_ago, now) == datetime(2026, 12, 3, 12, 0, 30, tzinfo=UTC)
    assert len(calls) < 200  # not one a window of the week (604,800)
    daily = multiples_of(86400)
    assert latest_window(daily, week_ago, now) == datetime(2026, 12, 3, tzinfo=UTC)
    assert latest_window(daily, now - timedelta(hours=1), now) is None  # none since the pause
    exactly = datetime(2026, 12, 3, 11, 0, tzinfo=UTC)
    assert latest_window(multiples_of(3600), exactly, now) == datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    assert latest_window(multiples_of(7200), exactly, exactly + timedelta(minutes=5)) is None
    assert latest_window(multiples_of(3600), exactly, exactly + timedelta(minutes=5)) == exactly  # at the pause: missed too


def test_a_paused_or_disabled_jobs_windows_are_held_never_missed_or_coalesced():
    """DESIGN 11: not a run and no record, even when late or several at once (a busy loop)."""
    windows = [ago(120), ago(2), ago(1)]  # one beyond grace, two to coalesce
    rules = Rules(misfire_grace=5, coalesce=True)
    plan = plan_firing(windows, NOW, rules, first=False, recorded=set(), held=True)
    assert plan.windows(Held) == windows and plan.missed == [] and plan.runs == []
    assert plan_firing(windows, NOW, rules, first=False, recorded=set(), valid=False, held=True).windows(SkipInvalid) \
        == windows  # an invalid spec wins: recorded skipped, as before
