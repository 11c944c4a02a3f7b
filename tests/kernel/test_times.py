"""Epoch seconds <-> aware datetimes <-> RFC 3339 (jobsd_lib.times)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from jobsd_lib.times import from_epoch, iso, parse_until, to_epoch

BERLIN_WINTER = timezone(timedelta(hours=1))


def test_epoch_and_datetime_round_trip_in_utc():
    moment = datetime(2026, 11, 23, 9, 27, 57, 123456, tzinfo=timezone.utc)
    assert to_epoch(moment) == 1795426077.123456
    assert from_epoch(to_epoch(moment)) == moment and from_epoch(0.0).tzinfo is timezone.utc
    assert to_epoch(moment.astimezone(BERLIN_WINTER)) == to_epoch(moment)  # the instant, not the wall time


@pytest.mark.parametrize("epoch, timespec, text", [
    (1795426077.123456, "auto", "2026-11-23T09:27:57.123456+00:00"),
    (1795426077.0, "auto", "2026-11-23T09:27:57+00:00"),
    (1795426077.0, "microseconds", "2026-11-23T09:27:57.000000+00:00"),
    (0, "auto", "1970-01-01T00:00:00+00:00"),
])
def test_iso_is_rfc_3339_in_utc(epoch, timespec, text):
    assert iso(epoch, timespec) == text


def test_none_passes_through():
    assert to_epoch(None) is None and from_epoch(None) is None and iso(None) is None


NOW = datetime(2026, 12, 3, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("text, until", [
    ("2h", NOW + timedelta(hours=2)), ("1w", NOW + timedelta(days=7)), ("90m", NOW + timedelta(minutes=90)),
    ("2026-12-04T09:00Z", datetime(2026, 12, 4, 9, 0, tzinfo=timezone.utc)),
    ("2026-12-04 09:00:00+01:00", datetime(2026, 12, 4, 8, 0, tzinfo=timezone.utc)),
])
def test_until_is_a_duration_from_now_or_a_time(text, until):
    assert parse_until(text, NOW) == until


def test_an_until_without_offset_is_local_time_and_bad_ones_say_what_is_wanted():
    local = parse_until("2026-12-04T09:00", NOW)
    assert local.tzinfo is not None and local.replace(tzinfo=None) == datetime(2026, 12, 4, 9, 0)
    for bad in ("tomorrow", "0s", "", "2026-13-01"):
        with pytest.raises(ValueError, match="duration|longer than 0s"):
            parse_until(bad, NOW)
