"""What a request may hold: the range of each number and the length of each string, in one place.

Both sides read it. jobsd checks every request against it before a handler runs
(`check_request`: invalid_argument); jobsctl checks every integer option against the field it
fills before any RPC (`int_range`: a usage error). A number's range comes from its proto type
unless FIELD_RANGES narrows it; a string's length has a default unless STRING_MAX sets one. So a
field added to the proto is checked without anyone having to remember it.

Refusals quote at most a short prefix of a bad value (`quote`): a message echoing a 100,000-
character value does not fit gRPC's status trailer (16 KiB of metadata), and nobody reads it.
"""
from __future__ import annotations

import math

from google.protobuf.descriptor import FieldDescriptor as F

from jobsd_lib.errors import InvalidArgument
from jobsd_lib.kernel.retention import MAX_KEEP_LAST

__all__ = ["INT63", "MAX_LIST_LIMIT", "MAX_NEXT_COUNT", "FIELD_RANGES", "STRING_MAX", "DEFAULT_STRING_MAX",
           "quote", "int_range", "check_request", "one_line"]

INT63 = 2**63 - 1  # SQLite's largest integer: no sequence number, run number or offset is larger
MAX_LIST_LIMIT = 1000   # ListRuns.limit (0: 20)
MAX_NEXT_COUNT = 1000   # NextRunTimes.count (0: 5)

# By proto type. An unsigned 64-bit field stops at INT63: the store cannot hold more, and
# refusing it here beats an OverflowError deep in a query.
_TYPE_RANGES = {
    F.TYPE_INT32: (-2**31, 2**31 - 1), F.TYPE_SINT32: (-2**31, 2**31 - 1), F.TYPE_SFIXED32: (-2**31, 2**31 - 1),
    F.TYPE_INT64: (-2**63, INT63), F.TYPE_SINT64: (-2**63, INT63), F.TYPE_SFIXED64: (-2**63, INT63),
    F.TYPE_UINT32: (0, 2**32 - 1), F.TYPE_FIXED32: (0, 2**32 - 1),
    F.TYPE_UINT64: (0, INT63), F.TYPE_FIXED64: (0, INT63),
}

# "Message.field" -> (lowest, highest, what 0 means or ""): where a field's meaning is narrower than its type.
FIELD_RANGES: dict[str, tuple[int, int, str]] = {
    "ListRunsRequest.limit": (0, MAX_LIST_LIMIT, "0 means 20"),
    "NextRunTimesRequest.count": (0, MAX_NEXT_COUNT, "0 means 5"),
    "CollectGarbageRequest.keep_last": (0, MAX_KEEP_LAST, ""),
}

# Field name -> most characters. A job is a spec file's stem (an invalid spec's may be any file
# name, up to 255 bytes); a run reference is a job id, '/' and a number; a cursor is what
# refs.encode_cursor gives out.
STRING_MAX = {"job": 255, "run": 100, "cursor": 64, "reason": 500}
DEFAULT_STRING_MAX = 1024
_QUOTE_CHARS = 40
_TIMESTAMP_SECONDS = (-62135596800, 253402300799)  # 0001-01-01 .. 9999-12-31T23:59:59Z, as protobuf defines it


def quote(value: str, limit: int = _QUOTE_CHARS) -> str:
    """repr() of value, or of its first `limit` characters and its length when it is longer."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}... ({len(value)} characters)"


def one_line(value: str, name: str, most: int) -> str:
    """`value` if it is one line of text of at most `most` characters (an operator's comment or
    reason, shown in tables and events), else InvalidArgument naming `name`."""
    if len(value) > most:
        raise InvalidArgument(f"{name} has {len(value)} characters; at most {most}", field=name)
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise InvalidArgument(f"{name} must be one line of text, without control characters", field=name)
    return value


def int_range(message: str, field: str, type_: int) -> tuple[int, int, str]:
    """(lowest, highest, note) a number in `message.field` of proto type `type_` may take."""
    return FIELD_RANGES.get(f"{message}.{field}") or (*_TYPE_RANGES[type_], "")


def check_request(request) -> None:  # noqa: ANN001 - any protobuf message
    """Raise InvalidArgument for the first field of `request` (nested messages too) out of bounds."""
    for field, value in request.ListFields():
        for item in value if field.is_repeated else (value,):
            _check_value(request.DESCRIPTOR.name, field, item)


def _check_value(message: str, field, value) -> None:  # noqa: ANN001
    kind = field.type
    if kind in _TYPE_RANGES:
        low, high, note = int_range(message, field.name, kind)
        if not low <= value <= high:
            raise InvalidArgument(f"{field.name} must be between {low} and {high}{f' ({note})' if note else ''}, "
                                  f"got {value}", field=field.name)
    elif kind in (F.TYPE_DOUBLE, F.TYPE_FLOAT) and not math.isfinite(value):
        raise InvalidArgument(f"{field.name} must be a finite number, got {value}", field=field.name)
    elif kind == F.TYPE_ENUM and value not in field.enum_type.values_by_number:
        raise InvalidArgument(f"{field.name}: {value} is not a {field.enum_type.name} this daemon knows "
                              "(see jobsd.proto)", field=field.name)
    elif kind == F.TYPE_STRING:
        _check_string(field.name, value)
    elif kind == F.TYPE_MESSAGE and value.DESCRIPTOR.full_name == "google.protobuf.Timestamp":
        if not (_TIMESTAMP_SECONDS[0] <= value.seconds <= _TIMESTAMP_SECONDS[1] and 0 <= value.nanos < 10**9):
            raise InvalidArgument(f"{field.name} is no valid time (seconds {value.seconds}, nanos {value.nanos}): "
                                  "years 1-9999 only", field=field.name)
    elif kind == F.TYPE_MESSAGE:
        check_request(value)


def _check_string(name: str, value: str) -> None:
    most = STRING_MAX.get(name, DEFAULT_STRING_MAX)
    if len(value) > most:
        raise InvalidArgument(f"{name} is {len(value)} characters long; at most {most} are allowed "
                              f"(it starts {value[:20]!r})", field=name)
    if "\x00" in value:
        raise InvalidArgument(f"{name} {quote(value)} holds a NUL character", field=name)
