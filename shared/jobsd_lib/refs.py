"""Run references `<job-id>/<n>` and cursors, parsed with errors a person can act on."""
from __future__ import annotations

import base64
import binascii

from jobsd_lib.errors import InvalidArgument
from jobsd_lib.spec import check_job_id

__all__ = ["parse_run_ref", "require_job_id", "encode_cursor", "decode_cursor"]


def require_job_id(job_id: str) -> str:
    if not job_id:
        raise InvalidArgument("a job id is required")
    problem = check_job_id(job_id)
    if problem:
        raise InvalidArgument(problem, job=job_id)
    return job_id


def parse_run_ref(ref: str) -> tuple[str, int]:
    """'backup/12' -> ('backup', 12). Raises InvalidArgument for anything else."""
    job_id, sep, number = ref.rpartition("/")
    if not sep or not number.isdigit() or int(number) < 1 or len(number) > 18:
        raise InvalidArgument(f"{ref!r} is not a run reference: write JOB/N, like backup/12", run=ref)
    return require_job_id(job_id), int(number)


def encode_cursor(before_id: int) -> str:
    return base64.urlsafe_b64encode(f"v1:{before_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int | None:
    if not cursor:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        version, value = text.split(":", 1)
        if version == "v1" and value.isdigit():
            return int(value)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise InvalidArgument(f"{cursor!r} is not a cursor this daemon gave out: pass next_cursor back unchanged")
