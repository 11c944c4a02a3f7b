"""Cron parsing, validation and translation for APScheduler (jobsd_lib.kernel.cron).

Pure tests. Whether the translation *means* the same as cron is checked end to end against
croniter in tests/daemon/test_triggers.py; here we pin the exact translated fields.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from jobsd_lib.kernel import cron
from jobsd_lib.kernel.cron import CronError, CronExpr, CronFields, parse_cron, validate_timezone_name


def fields(minute: str = "*", hour: str = "*", day: str = "*", month: str = "*",
           day_of_week: str = "*", second: str = "0") -> CronFields:
    """CronFields with '*' defaults, second 0 (what a 5-field expression gets)."""
    return CronFields(second, minute, hour, day, month, day_of_week)


# (expression, expected alternatives)
VALID: list[tuple[str, tuple[CronFields, ...]]] = [
    ("* * * * *", (fields(),)),
    ("0 9 * * 1-5", (fields("0", "9", day_of_week="mon-fri"),)),  # cron 1-5 = Monday-Friday
    ("0 0 * * 0", (fields("0", "0", day_of_week="sun"),)),
    ("0 0 * * 7", (fields("0", "0", day_of_week="sun"),)),  # 7 is Sunday too
    ("0 0 * * 0,7", (fields("0", "0", day_of_week="sun"),)),
    ("0 0 * * SUN", (fields("0", "0", day_of_week="sun"),)),
    ("0 0 * * Mon-Fri", (fields("0", "0", day_of_week="mon-fri"),)),
    ("0 0 * * 5-7", (fields("0", "0", day_of_week="fri-sun"),)),  # range through 7
    ("0 0 * * 0-2", (fields("0", "0", day_of_week="mon,tue,sun"),)),  # Sunday first in cron
    ("0 0 * * 6,0", (fields("0", "0", day_of_week="sat,sun"),)),
    ("0 0 * * 1,3,5", (fields("0", "0", day_of_week="mon,wed,fri"),)),
    ("0 0 * * */2", (fields("0", "0", day_of_week="tue,thu,sat,sun"),)),  # 0,2,4,6
    ("0 0 * * 1-7/2", (fields("0", "0", day_of_week="mon,wed,fri,sun"),)),
    ("0 0 * * mon/2", (fields("0", "0", day_of_week="mon,wed,fri,sun"),)),  # a/n = a-max/n
    ("0 0 * * 0-7", (fields("0", "0"),)),  # every day
    ("*/15 * * * *", (fields("0,15,30,45"),)),
    ("5/15 * * * *", (fields("5,20,35,50"),)),
    ("0-59/20 0-23/6 * * *", (fields("0,20,40", "0,6,12,18"),)),
    ("0-5,30 * * * *", (fields("0-5,30"),)),
    ("1,2 * * * *", (fields("1,2"),)),
    ("05 07 * * *", (fields("5", "7"),)),  # leading zeros
    ("0 0 1 jan,JUL *", (fields("0", "0", "1", "1,7"),)),
    ("0 0 1 jan-mar *", (fields("0", "0", "1", "1-3"),)),
    ("0 3 29 2 *", (fields("0", "3", "29", "2"),)),  # leap days exist
    ("0 0 31 1-12/2 *", (fields("0", "0", "31", "1,3,5,7,9,11"),)),
    ("  0\t9 * * 1-5  ", (fields("0", "9", day_of_week="mon-fri"),)),
    # Vixie day rule: both day fields restricted -> day-of-month OR day-of-week.
    ("0 0 1 * 1", (fields("0", "0", "1"), fields("0", "0", day_of_week="mon"))),
    ("0 0 1,15 * mon-fri", (fields("0", "0", "1,15"), fields("0", "0", day_of_week="mon-fri"))),
    ("0 0 1-31 * 1", (fields("0", "0"), fields("0", "0", day_of_week="mon"))),  # every day
    # A field starting with '*' is unrestricted for the rule: the fields are ANDed.
    ("0 0 */10 * 1", (fields("0", "0", "1,11,21,31", day_of_week="mon"),)),
    ("0 0 1 * */2", (fields("0", "0", "1", day_of_week="tue,thu,sat,sun"),)),
    # Day 31 never occurs in February: cron still fires on the weekdays, so only they remain.
    ("0 0 31 2 1", (fields("0", "0", month="2", day_of_week="mon"),)),
    # Macros.
    ("@yearly", (fields("0", "0", "1", "1"),)),
    ("@annually", (fields("0", "0", "1", "1"),)),
    ("@monthly", (fields("0", "0", "1"),)),
    ("@weekly", (fields("0", "0", day_of_week="sun"),)),
    ("@daily", (fields("0", "0"),)),
    ("@midnight", (fields("0", "0"),)),
    ("@DAILY", (fields("0", "0"),)),
    ("@hourly", (fields("0"),)),
]

# (6-field expression, expected alternatives)
VALID_SECONDS: list[tuple[str, tuple[CronFields, ...]]] = [
    ("*/10 * * * * *", (fields(second="0,10,20,30,40,50"),)),
    ("* * * * * *", (fields(second="*"),)),
    ("30 0 9 * * 1-5", (fields("0", "9", day_of_week="mon-fri", second="30"),)),
    ("0 0 0 1 * 7", (fields("0", "0", "1", second="0"), fields("0", "0", day_of_week="sun", second="0"))),
]


@pytest.mark.parametrize(("expr", "expected"), VALID)
def test_valid_five_field_expressions_translate(expr: str, expected: tuple[CronFields, ...]) -> None:
    parsed = parse_cron(expr)
    assert parsed == CronExpr(expr.strip(), expected, has_seconds=False)


@pytest.mark.parametrize(("expr", "expected"), VALID_SECONDS)
def test_valid_six_field_expressions_translate(expr: str, expected: tuple[CronFields, ...]) -> None:
    assert parse_cron(expr) == CronExpr(expr, expected, has_seconds=True)


def test_weekday_output_never_uses_numbers() -> None:
    """APScheduler reads numbers as 0 = Monday, so any digit would shift the day."""
    for expr, _ in VALID + VALID_SECONDS:
        for alternative in parse_cron(expr).alternatives:
            assert not any(ch.isdigit() for ch in alternative.day_of_week), expr


# (expression, substrings the message must contain: the field and the offending text)
INVALID: list[tuple[object, tuple[str, ...]]] = [
    ("61 * * * *", ("minute field '61' is out of range 0-59",)),
    ("* * *", ("3 fields", "expected 5")),
    ("* * * *", ("4 fields", "expected 5")),
    ("* * * * * * *", ("7 fields", "expected 5")),
    ("", ("empty",)),
    ("   ", ("empty",)),
    (None, ("must be a string",)),
    ("*/0 * * * *", ("minute", "'*/0'", "step 0")),
    ("*/60 * * * *", ("minute", "step 60")),
    ("*/x * * * *", ("minute", "step 'x'")),
    ("*/2/3 * * * *", ("minute", "'*/2/3'")),
    ("5-1 * * * *", ("minute", "'5-1'", "backwards", "5-59,0-1")),
    ("0 0 * * fri-mon", ("day-of-week", "'fri-mon'", "fri-sat,sun-mon")),
    ("@reboot", ("@reboot", "not supported")),
    ("@every 5m", ("unknown cron macro", "@daily")),
    ("* * * * 8", ("day-of-week field '8'", "0-7")),
    ("a b c d e", ("minute field 'a'",)),
    ("60 * * * * *", ("second field '60'", "0-59")),
    ("* 24 * * *", ("hour field '24'", "0-23")),
    ("* * 0 * *", ("day-of-month field '0'", "1-31")),
    ("* * 32 * *", ("day-of-month field '32'",)),
    ("* * * 0 *", ("month field '0'", "1-12")),
    ("* * * 13 *", ("month field '13'",)),
    ("* * * foo *", ("month field 'foo'", "jan-dec")),
    ("* * * * funday", ("day-of-week field 'funday'", "sun-sat")),
    ("1,,2 * * * *", ("minute", "empty list item")),
    ("1, * * * *", ("minute", "empty list item")),
    ("-1 * * * *", ("minute", "missing a number")),
    ("1-2-3 * * * *", ("minute", "'1-2-3'")),
    ("1,61 * * * *", ("minute field '1,61' value '61' is out of range 0-59",)),
    ("? * * * *", ("minute", "Quartz")),
    ("0 0 L * *", ("day-of-month", "Quartz")),
    ("0 0 * * 1#2", ("day-of-week", "Quartz")),
    ("0 0 30 2 *", ("never", "day-of-month", "'30'", "month", "'2'")),
    ("0 0 31 4,6,9,11 *", ("never",)),
    ("٣ * * * *", ("minute",)),  # a non-ASCII digit is not a cron number
]


@pytest.mark.parametrize(("expr", "needles"), INVALID)
def test_invalid_expressions_say_what_is_wrong(expr: str, needles: tuple[str, ...]) -> None:
    with pytest.raises(CronError) as caught:
        parse_cron(expr)
    for needle in needles:
        assert needle in str(caught.value)


def test_cron_error_is_a_value_error() -> None:
    assert issubclass(CronError, ValueError)


@pytest.mark.parametrize("name", ["Europe/Berlin", "UTC", "America/New_York", "Asia/Kolkata"])
def test_known_timezones_pass(name: str) -> None:
    assert validate_timezone_name(name) == name


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("", "empty"),
        ("local", "not allowed"),
        ("localtime", "not allowed"),  # resolves on many systems; still refused
        ("Mars/Olympus", "unknown timezone 'Mars/Olympus'"),
        ("Europe", "unknown timezone"),  # a tzdata directory, not a zone
        ("../etc/passwd", "unknown timezone"),
        ("/etc/localtime", "unknown timezone"),
        (" UTC", "unknown timezone"),
    ],
)
def test_bad_timezones_fail(name: str, needle: str) -> None:
    with pytest.raises(CronError, match="IANA") as caught:
        validate_timezone_name(name)
    assert needle in str(caught.value)


def test_module_is_pure_stdlib() -> None:
    """The kernel must not import APScheduler (or anything outside the standard library)."""
    tree = ast.parse(Path(cron.__file__).read_text(encoding="utf-8"))
    imported = {
        (node.module or "") if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    top_level = {name.split(".")[0] for name in imported}
    assert top_level <= set(sys.stdlib_module_names) | {"__future__"}


def test_public_api() -> None:
    assert set(cron.__all__) == {"CronError", "CronFields", "CronExpr", "parse_cron", "validate_timezone_name"}
