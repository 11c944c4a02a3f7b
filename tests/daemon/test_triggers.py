"""Cron triggers (jobsd.triggers) and the DST policy they apply (jobsd_lib.kernel.dst), checked
against croniter. The policy's maths alone is tested in tests/kernel/test_dst.py.

croniter is an independent cron implementation (test-only). It agrees with cron's meaning of
the fields (Sunday = 0 or 7, day-of-month OR day-of-week), so it catches translation
mistakes such as APScheduler's 0 = Monday. Its DST handling differs from ours in two
documented places, and only there do we assert our policy instead of comparing:

- fall-back: croniter returns both occurrences of a repeated wall time; jobsd runs the first
  only. `croniter_times` applies that rule on croniter's output independently (it drops a
  wall time it has already seen), so every other time is still compared.
- spring-forward: croniter runs a gap time at the first instant after the gap (03:00) and
  skips it for hourly schedules, while jobsd, like APScheduler 3.11.3, shifts it by the gap
  (02:30 -> 03:30). Those cases are pinned in SPRING_FORWARD below and left out of the
  comparison.

Stock APScheduler 3.11.3 behaviour that jobsd works around is pinned too
(test_stock_cron_trigger_*): when an upgrade changes it, those tests say so.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pickle

import pytest
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger
from croniter import croniter

from jobsd.triggers import WallClockCronTrigger, build_trigger, next_fire_times
from jobsd_lib.kernel.cron import CronError, parse_cron


def utc(text: str) -> datetime:
    """An aware UTC datetime from 'YYYY-MM-DDTHH:MM[:SS]'."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def fire_times(expr: str, zone: str, after: datetime, count: int) -> list[datetime]:
    return next_fire_times(build_trigger(parse_cron(expr), zone), after, count)


def croniter_times(expr: str, zone: str, after: datetime, count: int) -> list[datetime]:
    """croniter's next `count` times after `after` (UTC), minus repeated wall times."""
    seen: set[datetime] = set()
    times: list[datetime] = []
    for instant in _croniter_iter(expr, zone, after):
        wall = instant.astimezone(ZoneInfo(zone)).replace(tzinfo=None, fold=0)
        if wall not in seen:  # jobsd's fall-back rule: a wall time runs once
            seen.add(wall)
            times.append(instant.astimezone(UTC))
        if len(times) == count:
            return times
    raise AssertionError("unreachable")


def _croniter_iter(expr: str, zone: str, after: datetime) -> Iterator[datetime]:
    six_fields = len(expr.split()) == 6
    it = croniter(expr, after.astimezone(ZoneInfo(zone)), second_at_beginning=six_fields)
    for _ in range(100_000):  # a bound, so a croniter surprise fails instead of hanging
        yield it.get_next(datetime)


# Days with a DST change in 2026 (none for UTC and Asia/Kolkata: plain reference days).
DAYS: dict[str, list[date]] = {
    "UTC": [date(2026, 3, 29), date(2026, 10, 25)],
    "Asia/Kolkata": [date(2026, 3, 29)],
    "Europe/Berlin": [date(2026, 3, 29), date(2026, 10, 25)],  # 02:00 -> 03:00, 03:00 -> 02:00
    "America/New_York": [date(2026, 3, 8), date(2026, 11, 1)],  # 02:00 -> 03:00, 02:00 -> 01:00
    "Australia/Lord_Howe": [date(2026, 10, 4), date(2026, 4, 5)],  # 30-minute shifts at 02:00
}

# (expression, search start in hours from local midnight of the day, count): each window
# spans the DST change.
SCHEDULES: list[tuple[str, float, int]] = [
    ("0 9 * * 1-5", -72, 10),
    ("30 2 * * *", -24, 4),
    ("0 * * * *", -6, 30),
    ("*/15 * * * *", -2, 40),
    ("0 0 1 * 1", -240, 8),  # day-of-month OR day-of-week
    ("0 0 * * 0", -168, 3),
    ("0 0 * * 7", -168, 3),
    ("@daily", -48, 5),
    ("@weekly", -168, 3),
    ("*/10 * * * * *", 0.5, 1200),
    ("0 3 29 2 *", 0, 2),
]

# Where croniter and jobsd disagree at spring-forward (pinned in SPRING_FORWARD).
SPRING_FORWARD_DIFFERENT = {
    ("30 2 * * *", "Europe/Berlin", date(2026, 3, 29)),
    ("30 2 * * *", "America/New_York", date(2026, 3, 8)),
    ("0 * * * *", "Australia/Lord_Howe", date(2026, 10, 4)),
}

CASES = [
    pytest.param(expr, zone, day, hours, count, id=f"{expr}|{zone}|{day}")
    for expr, hours, count in SCHEDULES
    for zone, days in DAYS.items()
    for day in days
    if (expr, zone, day) not in SPRING_FORWARD_DIFFERENT
]


def local_start(zone: str, day: date, hours: float) -> datetime:
    """Local midnight of `day` plus `hours` of wall-clock time (all chosen times exist)."""
    return datetime.combine(day, time(), tzinfo=ZoneInfo(zone)) + timedelta(hours=hours)


@pytest.mark.parametrize(("expr", "zone", "day", "hours", "count"), CASES)
def test_fire_times_match_croniter(expr: str, zone: str, day: date, hours: float, count: int) -> None:
    after = local_start(zone, day, hours)
    assert fire_times(expr, zone, after, count) == croniter_times(expr, zone, after, count)


# --- DST policy, pinned -------------------------------------------------------------------


def test_fall_back_repeated_window_runs_once_at_first_occurrence() -> None:
    trigger = build_trigger(parse_cron("30 2 * * *"), "Europe/Berlin")
    times = next_fire_times(trigger, utc("2026-10-24T12:00"), 2)
    assert times == [utc("2026-10-25T00:30"), utc("2026-10-26T01:30")]  # 02:30 CEST, 02:30 CET
    # The trigger itself skips the second pass, so APScheduler never fires it.
    after_first = trigger.get_next_fire_time(utc("2026-10-25T00:30"), utc("2026-10-25T00:30:00.5"))
    assert after_first.astimezone(UTC) == utc("2026-10-26T01:30")


def test_fall_back_search_from_inside_the_repeated_hour_skips_the_second_pass() -> None:
    # 02:45 CEST: the 02:30 window already ran at 02:30 CEST.
    assert fire_times("30 2 * * *", "Europe/Berlin", utc("2026-10-25T00:45"), 1) == [
        utc("2026-10-26T01:30")
    ]


def test_fall_back_hourly_runs_the_repeated_hour_once() -> None:
    # New York repeats 01:00-01:59: 01:00 EDT runs (05:00Z), 01:00 EST (06:00Z) does not.
    times = fire_times("0 * * * *", "America/New_York", utc("2026-11-01T04:30"), 3)
    assert times == [utc("2026-11-01T05:00"), utc("2026-11-01T07:00"), utc("2026-11-01T08:00")]


def test_fall_back_new_york_0230_is_not_repeated() -> None:
    times = fire_times("30 2 * * *", "America/New_York", utc("2026-10-31T12:00"), 2)
    assert times == [utc("2026-11-01T07:30"), utc("2026-11-02T07:30")]  # 02:30 EST


# (expression, zone, after, expected UTC times, what they are in local time)
SPRING_FORWARD = [
    ("30 2 * * *", "Europe/Berlin", "2026-03-28T12:00",
     ["2026-03-29T01:30", "2026-03-30T00:30"], "03:30 CEST (shifted by the gap), then 02:30"),
    ("30 2 * * *", "America/New_York", "2026-03-07T17:00",
     ["2026-03-08T07:30", "2026-03-09T06:30"], "03:30 EDT (shifted by the gap), then 02:30"),
    ("0 2 * * *", "Europe/Berlin", "2026-03-28T12:00",
     ["2026-03-29T01:00", "2026-03-30T00:00"], "03:00 CEST, then 02:00"),
    ("15,45 2 * * *", "Europe/Berlin", "2026-03-28T12:00",
     ["2026-03-29T01:15", "2026-03-30T00:15", "2026-03-30T00:45"], "03:15 only, 02:45 lost"),
    ("0 * * * *", "Europe/Berlin", "2026-03-28T23:30",
     ["2026-03-29T00:00", "2026-03-29T01:00", "2026-03-29T02:00"], "01:00 CET, 03:00, 04:00 CEST"),
    ("0 2-4 * * *", "Europe/Berlin", "2026-03-28T12:00",
     ["2026-03-29T01:00", "2026-03-29T02:00", "2026-03-30T00:00"], "03:00 once, 04:00, then 02:00"),
    ("30 1-3 * * *", "Europe/Berlin", "2026-03-28T12:00",
     ["2026-03-29T00:30", "2026-03-29T01:30", "2026-03-29T23:30"], "01:30 CET, 03:30 CEST, 01:30"),
    ("0 * * * *", "Australia/Lord_Howe", "2026-10-03T14:00",
     ["2026-10-03T14:30", "2026-10-03T15:30", "2026-10-03T16:00"], "01:00, 02:30 (02:00 shifted), 03:00"),
    # The day after: stock APScheduler 3.11.3 skips it (test_stock_cron_trigger_skips_a_day).
    ("@daily", "Europe/Berlin", "2026-03-28T12:00",
     ["2026-03-28T23:00", "2026-03-29T22:00", "2026-03-30T22:00"], "00:00 on the 29th, 30th, 31st"),
    ("30 0 * * *", "America/New_York", "2026-03-07T12:00",
     ["2026-03-08T05:30", "2026-03-09T04:30", "2026-03-10T04:30"], "00:30 on the 8th, 9th, 10th"),
    ("0 0 * * *", "Australia/Lord_Howe", "2026-10-03T00:00",
     ["2026-10-03T13:30", "2026-10-04T13:00", "2026-10-05T13:00"], "00:00 on the 4th, 5th, 6th"),
]


@pytest.mark.parametrize(("expr", "zone", "after", "expected", "local"), SPRING_FORWARD)
def test_spring_forward_follows_apscheduler(
    expr: str, zone: str, after: str, expected: list[str], local: str
) -> None:
    """Pins APScheduler 3.11.3's spring-forward behaviour, documented in jobsd.triggers and kernel.dst."""
    times = fire_times(expr, zone, utc(after), len(expected))
    assert times == [utc(text) for text in expected], local


# --- next_fire_times contract ---------------------------------------------------------------


def test_weekdays_mean_monday_to_friday() -> None:
    """PITFALLS 5: from_crontab alone would run '1-5' Tuesday to Saturday."""
    times = fire_times("0 9 * * 1-5", "UTC", utc("2026-01-04T00:00"), 6)  # a Sunday
    assert [t.strftime("%a %d") for t in times] == [
        "Mon 05", "Tue 06", "Wed 07", "Thu 08", "Fri 09", "Mon 12",
    ]


@pytest.mark.parametrize("expr", ["0 0 * * 0", "0 0 * * 7", "0 0 * * sun", "@weekly"])
def test_sunday_spellings(expr: str) -> None:
    times = fire_times(expr, "Europe/Berlin", utc("2026-01-01T00:00"), 4)
    assert {t.astimezone(ZoneInfo("Europe/Berlin")).strftime("%a %H:%M") for t in times} == {"Sun 00:00"}


def test_day_of_month_or_day_of_week() -> None:
    times = fire_times("0 0 1 * 1", "UTC", utc("2026-01-31T00:00"), 3)
    assert times == [utc("2026-02-01T00:00"), utc("2026-02-02T00:00"), utc("2026-02-09T00:00")]


def test_strictly_after_and_utc() -> None:
    after = utc("2026-05-04T09:00")  # itself a fire time
    times = fire_times("0 9 * * *", "UTC", after, 2)
    assert times == [utc("2026-05-05T09:00"), utc("2026-05-06T09:00")]
    assert all(t.tzinfo is UTC for t in times)
    berlin_after = after.astimezone(ZoneInfo("Europe/Berlin")) + timedelta(microseconds=1)
    assert fire_times("0 9 * * *", "UTC", berlin_after, 1) == [utc("2026-05-05T09:00")]


def test_thousand_times_across_a_fold_advance_and_stay_unique() -> None:
    times = fire_times("* * * * * *", "Europe/Berlin", utc("2026-10-25T00:59"), 1000)
    assert len(times) == 1000
    assert all(a < b for a, b in zip(times, times[1:]))
    gaps = {b - a for a, b in zip(times, times[1:])}
    # 02:59:59 CEST is followed by 03:00:00 CET: the repeated hour (3600 s) is skipped.
    assert gaps == {timedelta(seconds=1), timedelta(seconds=3601)}


def test_stops_when_the_trigger_ends() -> None:
    trigger = CronTrigger(hour=0, timezone=ZoneInfo("UTC"), end_date=utc("2026-01-03T12:00"))
    assert next_fire_times(trigger, utc("2026-01-01T12:00"), 5) == [
        utc("2026-01-02T00:00"), utc("2026-01-03T00:00"),
    ]


# --- build_trigger --------------------------------------------------------------------------


def test_build_trigger_kinds() -> None:
    assert isinstance(build_trigger(parse_cron("0 9 * * 1-5"), "UTC"), CronTrigger)
    assert isinstance(build_trigger(parse_cron("*/10 * * * * *"), "UTC"), CronTrigger)
    assert isinstance(build_trigger(parse_cron("0 0 1 * 1"), "UTC"), OrTrigger)


@pytest.mark.parametrize("macro", ["@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"])
def test_macros_build(macro: str) -> None:
    """PITFALLS 5: from_crontab refuses macros; the translation expands them first."""
    times = fire_times(macro, "Asia/Kolkata", utc("2026-01-01T00:00"), 2)
    assert times == croniter_times(macro, "Asia/Kolkata", utc("2026-01-01T00:00"), 2)


@pytest.mark.parametrize("zone", ["", "local", "Mars/Olympus"])
def test_build_trigger_rejects_bad_zones(zone: str) -> None:
    with pytest.raises(CronError):
        build_trigger(parse_cron("@daily"), zone)


# --- WallClockCronTrigger and the stock CronTrigger it corrects ----------------------------


def test_stock_cron_trigger_fires_both_passes_of_a_fold() -> None:
    """APScheduler 3.11.3 fires 02:30 CEST and again 02:30 CET (PITFALLS 6)."""
    stock = CronTrigger.from_crontab("30 2 * * *", timezone=ZoneInfo("Europe/Berlin"))
    second = stock.get_next_fire_time(None, utc("2026-10-25T00:30:01"))
    assert second.astimezone(UTC) == utc("2026-10-25T01:30")


def test_stock_cron_trigger_skips_a_day_after_spring_forward() -> None:
    """APScheduler 3.11.3: after 00:00 on 2026-03-29 comes 00:00 on the 31st (issues #529, #606)."""
    stock = CronTrigger.from_crontab("0 0 * * *", timezone=ZoneInfo("Europe/Berlin"))
    after_run = stock.get_next_fire_time(None, utc("2026-03-28T23:00:00.5"))
    assert after_run.astimezone(UTC) == utc("2026-03-30T22:00")  # 00:00 CEST on the 31st


def test_wall_clock_trigger_pickles() -> None:
    """APScheduler's job store pickles triggers, OrTrigger stores its parts by class path."""
    for expr in ("30 2 * * *", "0 0 1 * 1", "*/10 * * * * *"):
        trigger = build_trigger(parse_cron(expr), "Europe/Berlin")
        copy = pickle.loads(pickle.dumps(trigger))
        after = utc("2026-03-27T00:00")
        assert next_fire_times(copy, after, 50) == next_fire_times(trigger, after, 50)
    assert isinstance(build_trigger(parse_cron("@daily"), "UTC"), WallClockCronTrigger)


def test_the_pickled_class_path_stays_jobsd_triggers() -> None:
    """Every job in schedule.sqlite3 names its trigger's class: a job stored by an earlier jobsd must
    load, and one stored now must load in it."""
    data = pickle.dumps(build_trigger(parse_cron("30 2 * * *"), "Europe/Berlin"), pickle.HIGHEST_PROTOCOL)
    assert b"jobsd.triggers" in data and b"WallClockCronTrigger" in data
    assert b"apscheduler_private" not in data and b"WallClockStep" not in data


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/Santiago"])
def test_daily_schedules_run_once_on_every_day_of_2026(zone: str) -> None:
    """Whatever the DST changes (Santiago's happen at midnight), a daily time runs once a day."""
    local = ZoneInfo(zone)
    start = datetime(2026, 1, 1, tzinfo=local) - timedelta(seconds=1)
    for hour, minute in [(0, 0), (0, 30), (1, 0), (2, 30), (3, 0), (23, 30)]:
        times = fire_times(f"{minute} {hour} * * *", zone, start, 365)
        assert [t.astimezone(local).date() for t in times] == [
            date(2026, 1, 1) + timedelta(days=n) for n in range(365)
        ], f"{hour:02}:{minute:02}"
