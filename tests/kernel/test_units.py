"""Durations and sizes as specs write them (jobsd_lib.units)."""
import pytest

from jobsd_lib.units import parse_duration, parse_size


@pytest.mark.parametrize("value, seconds", [(5, 5), (0.5, 0.5), ("0.5s", 0.5), ("90s", 90), ("15m", 900),
                                            ("2h", 7200), ("1d", 86400), ("2w", 14 * 86400), ("30", 30)])
def test_durations(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["", "5 minutes", "-1s", True, None, "1y", float("inf")])
def test_bad_durations(value):
    with pytest.raises(ValueError):
        parse_duration(value)


@pytest.mark.parametrize("value, size", [(1024, 1024), ("64K", 65536), ("512M", 512 << 20), ("2G", 2 << 30), ("1GiB", 1 << 30)])
def test_sizes(value, size):
    assert parse_size(value) == size


@pytest.mark.parametrize("value", ["", "1.5G", "-1", "lots", True, 1.5])
def test_bad_sizes(value):
    with pytest.raises(ValueError):
        parse_size(value)
