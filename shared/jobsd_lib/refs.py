"""Run references `<job-id>/<n>` and cursors, parsed with errors a person can act on.

One parser for both sides: jobsctl checks a reference with it before calling, jobsd before
looking anything up, so both accept exactly the same text. A reference is canonical, the form
jobsd itself writes (`backup/12`): ASCII digits, no leading zero, sign or space. `backup/012`
would otherwise name backup/12, and `str.isdigit()` also takes digits of other scripts ('١').

A job id is checked here too (spec.py uses it for file names), so that checking a reference
needs no pydantic: jobsctl imports this module for `runs show` and `runs cancel`.
"""
from __future__ import annotations

import base64
import binascii
import re

from jobsd_lib.errors import InvalidArgument
from jobsd_lib.limits import INT63, quote

__all__ = ["JOB_ID_PATTERN", "check_job_id", "parse_run_ref", "require_job_id", "encode_cursor", "decode_cursor"]

# Use with fullmatch: a pattern ending in '$' matches before a final newline, so "ok\n" passed.
JOB_ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}", re.ASCII)

_RUN_NUMBER = re.compile(r"[1-9][0-9]{0,18}", re.ASCII)  # fullmatch: '$' would let a final newline through
_CURSOR_VALUE = re.compile(r"(?:0|[1-9][0-9]{0,18})", re.ASCII)


def check_job_id(job_id: str) -> str | None:
    """None when `job_id` is a valid id, else the reason it is not (quoting only a prefix of it)."""
    if JOB_ID_PATTERN.fullmatch(job_id):
        return None
    return (f"{quote(job_id)} is not a valid job id: use 1 to 63 characters, lowercase letters, digits, "
            "'-' and '_', starting with a letter or digit")


def require_job_id(job_id: str) -> str:
    if not job_id:
        raise InvalidArgument("a job id is required")
    problem = check_job_id(job_id)
    if problem:
        raise InvalidArgument(problem, job=job_id[:100])
    return job_id


def parse_run_ref(ref: str) -> tuple[str, int]:
    """'backup/12' -> ('backup', 12). Raises InvalidArgument for anything else."""
    job_id, sep, number = ref.rpartition("/")
    if not sep or not _RUN_NUMBER.fullmatch(number) or int(number) > INT63:
        raise InvalidArgument(f"{quote(ref)} is not a run reference: write JOB/N, like backup/12 "
                              f"(N from 1 to {INT63}, no leading zero)", run=ref[:100])
    return require_job_id(job_id), int(number)


def encode_cursor(before_id: int) -> str:
    return base64.urlsafe_b64encode(f"v1:{before_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int | None:
    if not cursor:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        version, value = text.split(":", 1)
        if version == "v1" and _CURSOR_VALUE.fullmatch(value) and int(value) <= INT63:
            return int(value)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise InvalidArgument(f"{quote(cursor)} is not a cursor this daemon gave out: pass next_cursor back unchanged")
