"""Durations and sizes as job specs write them.

Durations: a number of seconds (int or float, >= 0) or a string "<number><unit>" with unit
s, m, h, d or w ("0.5s", "90s", "15m", "2h", "1d", "2w"); a bare numeric string is seconds.
Sizes: integer bytes or "<integer><unit>" with K, M, G or T (powers of 1024), an optional
trailing "B"/"iB" accepted ("64K", "512M", "2G", "1GiB").
"""
from __future__ import annotations

import math
import re

__all__ = ["parse_duration", "parse_size"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*(s|m|h|d|w)?\s*$")
_DURATION_UNITS = {None: 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}
_SIZE = re.compile(r"^\s*(\d+)\s*(?:(K|M|G|T)(?:I?B)?|B)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {None: 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_duration(value: object) -> float:
    """Seconds as a float >= 0. Raises ValueError with a message fit for a person."""
    if isinstance(value, bool):
        raise ValueError("a duration must be a number of seconds or a string like '90s', not a boolean")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError(f"{value!r} is not a duration: use seconds or a number with s, m, h, d or w, like '90s' or '15m'")
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    else:
        raise ValueError(f"a duration must be a number or a string like '90s', not {type(value).__name__}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"a duration must be a finite number of seconds >= 0, got {value!r}")
    return seconds


def parse_size(value: object) -> int:
    """Bytes as an int >= 0. Raises ValueError with a message fit for a person."""
    if isinstance(value, bool):
        raise ValueError("a size must be bytes or a string like '512M', not a boolean")
    if isinstance(value, int):
        size = value
    elif isinstance(value, str):
        match = _SIZE.match(value)
        if not match:
            raise ValueError(f"{value!r} is not a size: use bytes or a whole number with K, M, G or T, like '512M'")
        unit = match.group(2).upper() if match.group(2) else None
        size = int(match.group(1)) * _SIZE_UNITS[unit]
    else:
        raise ValueError(f"a size must be an integer number of bytes or a string like '512M', not {type(value).__name__}")
    if size < 0:
        raise ValueError(f"a size must be >= 0, got {value!r}")
    return size
