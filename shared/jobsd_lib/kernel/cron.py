"""Standard (Vixie) cron expressions: parse, validate, translate for APScheduler 3.x.

Pure: stdlib only, no clock reads, no threads. The one exception to "no I/O" is
`validate_timezone_name`, which asks `zoneinfo` whether a zone exists (it reads tzdata).

What is accepted (what users of cron expect):

- 5 fields ``minute hour day-of-month month day-of-week``, or 6 fields with a leading
  ``second``; 5-field expressions fire at second 0.
- Macros ``@yearly``/``@annually``, ``@monthly``, ``@weekly``, ``@daily``/``@midnight``,
  ``@hourly``. ``@reboot`` is refused (jobsd schedules by time only).
- Items ``*``, ``n``, ``a-b``, ``*/s``, ``a-b/s``, ``a/s`` (= ``a-max/s``), comma lists;
  month names ``jan``-``dec`` and weekday names ``sun``-``sat`` (any case).
- Day of week 0-7 where 0 and 7 are both Sunday.
- Vixie's day rule: when both day-of-month and day-of-week are restricted (neither field
  starts with ``*``) the job fires when EITHER matches.

Translation for APScheduler (which differs from cron, see PITFALLS 5): every field is
expanded to explicit values, weekdays are written as names (APScheduler counts 0 = Monday
and refuses 7), and the OR day rule becomes two alternatives that the daemon combines
with an ``OrTrigger`` (APScheduler ANDs day and day_of_week). Output never relies on
APScheduler's own step or range handling, which refuses steps that cron accepts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "CronError",
    "CronExpr",
    "CronFields",
    "parse_cron",
    "validate_timezone_name",
]


class CronError(ValueError):
    """An invalid cron expression or time zone; the message says what is wrong and how to fix it."""


@dataclass(frozen=True)
class CronFields:
    """Keyword arguments for one APScheduler ``CronTrigger``, with cron's meaning.

    ``day_of_week`` uses names only (``mon``..``sun``), never numbers.
    """

    second: str
    minute: str
    hour: str
    day: str
    month: str
    day_of_week: str


@dataclass(frozen=True)
class CronExpr:
    """A validated cron expression.

    ``alternatives`` holds one ``CronFields`` normally, and two when Vixie's
    day-of-month OR day-of-week rule applies: the schedule fires when any alternative does.
    """

    source: str
    alternatives: tuple[CronFields, ...]
    has_seconds: bool


@dataclass(frozen=True)
class _Field:
    """One cron field: its name in messages, its value range and its names (value = low + index)."""

    label: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    hint: str = ""


_SECOND = _Field("second", 0, 59)
_MINUTE = _Field("minute", 0, 59)
_HOUR = _Field("hour", 0, 23)
_DAY = _Field("day-of-month", 1, 31)
_MONTH = _Field(
    "month", 1, 12,
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
    " (or a name jan-dec)",
)
_WEEKDAY = _Field(
    "day-of-week", 0, 7,
    ("sun", "mon", "tue", "wed", "thu", "fri", "sat"),
    " (0 and 7 are both Sunday; names sun-sat also work)",
)
_FIELDS_6 = (_SECOND, _MINUTE, _HOUR, _DAY, _MONTH, _WEEKDAY)

# APScheduler's weekday names in its own order (0 = Monday).
_APS_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Longest length of each month in any year: February counts 29 (leap years).
_MONTH_MAX_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_EXPECTED = (
    "expected 5 fields (minute hour day-of-month month day-of-week), "
    "6 fields (second minute hour day-of-month month day-of-week) or a macro such as @daily"
)


def parse_cron(expr: str) -> CronExpr:
    """Parse and validate a cron expression; raise CronError saying what is wrong."""
    if not isinstance(expr, str):
        raise CronError(f"cron expression must be a string, got {type(expr).__name__}")
    source = expr.strip()
    if not source:
        raise CronError(f"cron expression is empty; {_EXPECTED}")
    texts = _expand_macro(source).split()
    if len(texts) not in (5, 6):
        raise CronError(f"cron expression '{source}' has {len(texts)} fields; {_EXPECTED}")
    has_seconds = len(texts) == 6
    if not has_seconds:
        texts = ["0", *texts]
    return CronExpr(source, _alternatives(texts), has_seconds)


def validate_timezone_name(name: str) -> str:
    """Return `name` if it is an IANA zone that zoneinfo knows; raise CronError otherwise.

    "local" and "localtime" are refused even where the system resolves them: jobs must
    name their zone explicitly so that a host's setting never changes when they run.
    """
    example = "use an IANA name such as 'Europe/Berlin', 'America/New_York' or 'UTC'"
    if not isinstance(name, str) or not name:
        raise CronError(f"timezone is empty; {example}")
    if name.lower() in ("local", "localtime"):
        raise CronError(f"timezone '{name}' is not allowed: implicit local time is ambiguous; {example}")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # OSError: a directory such as 'Europe'; ValueError: paths such as '../x' or '/x'.
        raise CronError(f"unknown timezone '{name}'; {example}") from None
    return name


def _expand_macro(source: str) -> str:
    """Replace an @macro by its 5-field meaning; other expressions pass through."""
    if not source.startswith("@"):
        return source
    word = source.lower()
    if word == "@reboot":
        raise CronError(
            "@reboot is not supported: jobsd fires jobs on time schedules only and a daemon "
            "restart is not a boot; use a systemd unit for jobs that must run at boot"
        )
    if word not in _MACROS:
        raise CronError(f"unknown cron macro '{source}'; use one of {', '.join(_MACROS)}")
    return _MACROS[word]


def _alternatives(texts: list[str]) -> tuple[CronFields, ...]:
    """Parse six field texts (second first) into one or two CronFields (Vixie's day rule)."""
    second, minute, hour, day, month, weekday = (
        _parse_field(text, field) for text, field in zip(texts, _FIELDS_6)
    )
    common = dict(
        second=_render(second, _SECOND),
        minute=_render(minute, _MINUTE),
        hour=_render(hour, _HOUR),
        month=_render(month, _MONTH),
    )
    day_text, weekday_text = _render(day, _DAY), _render_weekdays(weekday)
    day_can_match = _day_can_match(day, month)
    if texts[3].startswith("*") or texts[5].startswith("*"):
        # Vixie ANDs the two day fields when either starts with '*'.
        if not day_can_match:
            raise _never_fires(texts)
        return (CronFields(**common, day=day_text, day_of_week=weekday_text),)
    by_weekday = CronFields(**common, day="*", day_of_week=weekday_text)
    if not day_can_match:
        # Standard cron still fires on the weekdays; drop the half that never matches, or
        # APScheduler would search up to year 9999 for it on every call.
        return (by_weekday,)
    return (CronFields(**common, day=day_text, day_of_week="*"), by_weekday)


def _day_can_match(days: frozenset[int], months: frozenset[int]) -> bool:
    """True when some selected day of month exists in some selected month (Feb 29 counts)."""
    return min(days) <= max(_MONTH_MAX_DAYS[month - 1] for month in months)


def _never_fires(texts: list[str]) -> CronError:
    return CronError(
        f"day-of-month field '{texts[3]}' never occurs in month field '{texts[4]}', "
        "so the schedule would never fire; pick days that exist in those months"
    )


def _parse_field(text: str, field: _Field) -> frozenset[int]:
    """The set of values one field's text selects (weekday 7 is kept; see _render_weekdays)."""
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise CronError(
                f"{field.label} field '{text}' has an empty list item; "
                "separate values with single commas and no spaces, e.g. 1,15,30"
            )
        values.update(_parse_item(item, text, field))
    return frozenset(values)


def _parse_item(item: str, text: str, field: _Field) -> range:
    """One list item: '*', 'n', 'a-b', each optionally with '/step'; 'a/step' means a-max."""
    base, slash, step_text = item.partition("/")
    step = _parse_step(step_text, text, field) if slash else 1
    if base == "*":
        return range(field.low, field.high + 1, step)
    first_text, dash, last_text = base.partition("-")
    first = _parse_value(first_text, text, field)
    if not dash:
        return range(first, (field.high if slash else first) + 1, step)
    last = _parse_value(last_text, text, field)
    if first > last:
        raise CronError(
            f"{field.label} field '{text}': range '{base}' runs backwards; write the smaller "
            f"value first, and for a range that wraps use a list such as "
            f"'{_wrap_hint(first_text, last_text, field)}'"
        )
    return range(first, last + 1, step)


def _wrap_hint(first_text: str, last_text: str, field: _Field) -> str:
    """How to write a wrapping range a-b as two ranges: 'a-top,bottom-b'."""
    top_value = field.low + len(field.names) - 1 if field.names else field.high  # weekday: 6
    top = field.names[-1] if first_text.lower() in field.names else str(top_value)
    bottom = field.names[0] if last_text.lower() in field.names else str(field.low)
    return f"{first_text}-{top},{bottom}-{last_text}"


def _parse_step(step_text: str, text: str, field: _Field) -> int:
    """The step after '/': a whole number from 1 to the field's span."""
    span = field.high - field.low
    if not step_text.isdigit() or not step_text.isascii():
        raise CronError(f"{field.label} field '{text}': step '{step_text}' is not a whole number")
    step = int(step_text)
    if not 1 <= step <= span:
        raise CronError(f"{field.label} field '{text}': step {step} must be between 1 and {span}")
    return step


def _parse_value(token: str, text: str, field: _Field) -> int:
    """A number or name within the field's range."""
    if not token:
        raise CronError(
            f"{field.label} field '{text}' is missing a number next to a '-' or '/'"
        )
    subject = f"{field.label} field '{text}'" + ("" if token == text else f" value '{token}'")
    if token.lower() in field.names:
        return field.low + field.names.index(token.lower())
    if not token.isdigit() or not token.isascii():
        raise CronError(
            f"{subject} is not a number {field.low}-{field.high}{field.hint}{_quartz_hint(token)}"
        )
    value = int(token)
    if not field.low <= value <= field.high:
        raise CronError(f"{subject} is out of range {field.low}-{field.high}{field.hint}")
    return value


def _quartz_hint(token: str) -> str:
    """A hint when a token looks like Quartz/Spring syntax (?, L, W, #), which cron lacks."""
    upper = token.upper()
    looks_quartz = upper in ("?", "L", "LW") or "#" in upper or (
        upper[:-1].isdigit() and upper[-1:] in ("L", "W")
    )
    return "; ?, L, W and # are Quartz syntax, not standard cron" if looks_quartz else ""


def _render(values: frozenset[int], field: _Field) -> str:
    """APScheduler text for a numeric field: '*' when every value is selected, else a list."""
    if values == frozenset(range(field.low, field.high + 1)):
        return "*"
    return ",".join(_runs(sorted(values), str))


def _render_weekdays(values: frozenset[int]) -> str:
    """APScheduler text for cron weekdays (0/7 = Sunday) as names in APScheduler's order."""
    aps_days = sorted({(day - 1) % 7 for day in values})  # cron 1 = Monday -> APScheduler 0
    if len(aps_days) == 7:
        return "*"
    return ",".join(_runs(aps_days, _APS_WEEKDAYS.__getitem__))


def _runs(values: list[int], name: Callable[[int], str]) -> list[str]:
    """Sorted values as list items; runs of three or more consecutive values become 'a-b'."""
    items: list[str] = []
    start = 0
    for index in range(1, len(values) + 1):
        if index == len(values) or values[index] != values[index - 1] + 1:
            run = values[start:index]
            if len(run) >= 3:
                items.append(f"{name(run[0])}-{name(run[-1])}")
            else:
                items.extend(name(value) for value in run)
            start = index
    return items
