"""The DST policy's maths (jobsd_lib.kernel.dst): pure, no APScheduler, no clock.

Triggers are stand-ins here: `hourly` fires at every UTC hour, shown in Europe/Berlin (whole-hour
offsets: every local hour, both passes of the repeated one, as stock CronTrigger does). What the
real trigger does with this maths is checked against croniter in tests/daemon/test_triggers.py.
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from jobsd_lib.kernel.dst import fire_times, first_instant_after, first_passes, is_second_pass, wall_clock_step

BERLIN = ZoneInfo("Europe/Berlin")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def hourly(at: datetime) -> datetime:
    """The first whole UTC hour at or after `at`, in Berlin time."""
    floor = at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return (floor if floor == at else floor + timedelta(hours=1)).astimezone(BERLIN)


# --- is_second_pass ---------------------------------------------------------------------------

@pytest.mark.parametrize(("instant", "zone", "second"), [
    ("2026-10-25T00:30", BERLIN, False),                        # 02:30 CEST: the first pass
    ("2026-10-25T01:30", BERLIN, True),                         # 02:30 CET: the second
    ("2026-10-25T02:30", BERLIN, False),                        # 03:30 CET: not repeated
    ("2026-11-01T06:30", ZoneInfo("America/New_York"), True),   # 01:30 EST
    ("2026-10-25T01:30", ZoneInfo("UTC"), False),
    ("2026-10-25T01:30", None, False),                          # no zone: never the host's
])
def test_is_second_pass(instant, zone, second):
    assert is_second_pass(utc(instant), zone) is second


def test_is_second_pass_refuses_naive():
    with pytest.raises(ValueError, match="aware"):
        is_second_pass(datetime(2026, 10, 25, 1, 30), BERLIN)


# --- first_instant_after ------------------------------------------------------------------------

def test_a_gap_time_is_shifted_by_the_gap():
    at = first_instant_after(datetime(2026, 3, 29, 2, 30), BERLIN, utc("2026-03-28T12:00"))
    assert at.astimezone(UTC) == utc("2026-03-29T01:30")  # 03:30 CEST


def test_a_repeated_time_is_its_first_pass_unless_that_is_not_after():
    wall = datetime(2026, 10, 25, 2, 30)
    assert first_instant_after(wall, BERLIN, utc("2026-10-24T12:00")).astimezone(UTC) == utc("2026-10-25T00:30")
    assert first_instant_after(wall, BERLIN, utc("2026-10-25T00:30")).astimezone(UTC) == utc("2026-10-25T01:30")
    assert first_instant_after(wall, BERLIN, utc("2026-10-25T01:30")) is None


# --- wall_clock_step ----------------------------------------------------------------------------

def test_a_day_step_over_a_spring_forward_lands_on_midnight():
    """Stock CronTrigger adds the day in UTC: 00:00 CET + 24 h = 01:00 CEST, an hour late."""
    before = datetime(2026, 3, 29, 0, 0, tzinfo=BERLIN)
    moved = (before.astimezone(UTC) + timedelta(days=1)).astimezone(BERLIN)
    assert wall_clock_step(before, moved, BERLIN) == datetime(2026, 3, 30, 0, 0, tzinfo=BERLIN)
    assert wall_clock_step(before, moved, BERLIN).astimezone(UTC) == utc("2026-03-29T22:00")


def test_a_step_with_no_daylight_change_is_unchanged():
    before = datetime(2026, 5, 1, 9, 0, tzinfo=BERLIN)
    moved = before + timedelta(hours=5)
    assert wall_clock_step(before, moved, BERLIN) == moved


# --- first_passes -----------------------------------------------------------------------------

def test_first_passes_passes_over_second_passes():
    assert first_passes(hourly(utc("2026-10-25T01:00")), BERLIN, hourly).astimezone(UTC) == utc("2026-10-25T02:00")
    assert first_passes(hourly(utc("2026-10-25T00:00")), BERLIN, hourly) == hourly(utc("2026-10-25T00:00"))
    assert first_passes(None, BERLIN, hourly) is None
    assert first_passes(utc("2026-10-25T01:30"), BERLIN, lambda at: None) is None  # the trigger ended


# --- fire_times -------------------------------------------------------------------------------

def test_fire_times_leave_out_second_passes_and_answer_utc():
    times = fire_times(hourly, utc("2026-10-24T23:30"), 4)
    assert times == [utc("2026-10-25T00:00"), utc("2026-10-25T02:00"), utc("2026-10-25T03:00"),
                     utc("2026-10-25T04:00")]  # 02:00 CEST, (02:00 CET left out), 03:00, 04:00 CET
    assert all(t.tzinfo is UTC for t in times)


def test_fire_times_are_strictly_after():
    assert fire_times(hourly, utc("2026-05-04T09:00"), 2) == [utc("2026-05-04T10:00"), utc("2026-05-04T11:00")]


def test_count_zero_and_bad_arguments():
    assert fire_times(hourly, utc("2026-01-01T00:00"), 0) == []
    with pytest.raises(ValueError, match="negative"):
        fire_times(hourly, utc("2026-01-01T00:00"), -1)
    with pytest.raises(ValueError, match="aware"):
        fire_times(hourly, datetime(2026, 1, 1), 1)


def test_fire_times_stop_when_the_trigger_ends():
    end = utc("2026-01-01T03:00")
    assert fire_times(lambda at: hourly(at) if hourly(at) <= end else None, utc("2026-01-01T00:30"), 5) == [
        utc("2026-01-01T01:00"), utc("2026-01-01T02:00"), utc("2026-01-01T03:00")]


def test_a_trigger_that_does_not_advance_is_an_error_not_a_hang():
    with pytest.raises(RuntimeError, match="did not advance"):
        fire_times(lambda at: utc("2026-01-01T00:00"), utc("2026-01-01T00:00"), 1)
