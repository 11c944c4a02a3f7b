"""The error catalogue: one hierarchy, one table from code to gRPC status and CLI exit code.

The daemon raises JobsdError subclasses; one interceptor turns them into a gRPC status with
a google.rpc.ErrorInfo detail (domain "jobsd", reason = code). The client turns that back
into a JobsdError with the same code and message. The status is named, not imported, so this
module stays free of grpc.
"""
from __future__ import annotations

from enum import Enum

__all__ = [
    "ErrorCode", "JobsdError", "JobNotFound", "RunNotFound", "InvalidSpec", "InvalidArgument",
    "JobDisabled", "RunNotActive", "JobBusy", "StoreLocked", "InternalError", "DOMAIN",
    "grpc_status_name", "exit_code_for", "error_for_code",
]

DOMAIN = "jobsd"

# CLI exit codes (DESIGN 7).
EXIT_OK, EXIT_RUN_FAILED, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_REFUSED, EXIT_NOT_STARTED = 0, 1, 2, 3, 4, 5


class ErrorCode(str, Enum):
    JOB_NOT_FOUND = "job_not_found"
    RUN_NOT_FOUND = "run_not_found"
    JOB_INVALID_SPEC = "job_invalid_spec"
    INVALID_ARGUMENT = "invalid_argument"
    JOB_DISABLED = "job_disabled"
    RUN_NOT_ACTIVE = "run_not_active"
    JOB_BUSY = "job_busy"
    STORE_LOCKED = "store_locked"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"


# code -> (grpc.StatusCode name, CLI exit code). The one place this mapping lives.
_TABLE: dict[ErrorCode, tuple[str, int]] = {
    ErrorCode.JOB_NOT_FOUND: ("NOT_FOUND", EXIT_REFUSED),
    ErrorCode.RUN_NOT_FOUND: ("NOT_FOUND", EXIT_REFUSED),
    ErrorCode.JOB_INVALID_SPEC: ("INVALID_ARGUMENT", EXIT_REFUSED),
    ErrorCode.INVALID_ARGUMENT: ("INVALID_ARGUMENT", EXIT_REFUSED),
    ErrorCode.JOB_DISABLED: ("FAILED_PRECONDITION", EXIT_REFUSED),
    ErrorCode.RUN_NOT_ACTIVE: ("FAILED_PRECONDITION", EXIT_REFUSED),
    ErrorCode.JOB_BUSY: ("ABORTED", EXIT_REFUSED),
    ErrorCode.STORE_LOCKED: ("UNAVAILABLE", EXIT_REFUSED),
    ErrorCode.UNAVAILABLE: ("UNAVAILABLE", EXIT_UNREACHABLE),
    ErrorCode.INTERNAL: ("INTERNAL", EXIT_REFUSED),
}


def grpc_status_name(code: ErrorCode) -> str:
    return _TABLE[code][0]


def exit_code_for(code: ErrorCode) -> int:
    return _TABLE[code][1]


class JobsdError(Exception):
    """Base of every refusal. `message` tells the user what went wrong and what to do."""

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, message: str, **metadata: str) -> None:
        super().__init__(message)
        self.message = message
        self.metadata = {k: str(v) for k, v in metadata.items() if v is not None}

    def __str__(self) -> str:
        return self.message


class JobNotFound(JobsdError):
    code = ErrorCode.JOB_NOT_FOUND

    def __init__(self, job: str) -> None:
        super().__init__(f"no job {job!r}: `jobsctl jobs list` shows the jobs this daemon knows", job=job)


class RunNotFound(JobsdError):
    code = ErrorCode.RUN_NOT_FOUND

    def __init__(self, ref: str, message: str = "") -> None:
        super().__init__(message or f"no run {ref!r}: `jobsctl jobs history JOB` lists a job's runs", run=ref)


class InvalidSpec(JobsdError):
    code = ErrorCode.JOB_INVALID_SPEC


class InvalidArgument(JobsdError):
    code = ErrorCode.INVALID_ARGUMENT


class JobDisabled(JobsdError):
    code = ErrorCode.JOB_DISABLED


class RunNotActive(JobsdError):
    code = ErrorCode.RUN_NOT_ACTIVE


class JobBusy(JobsdError):
    code = ErrorCode.JOB_BUSY


class StoreLocked(JobsdError):
    code = ErrorCode.STORE_LOCKED


class Unavailable(JobsdError):
    code = ErrorCode.UNAVAILABLE


class InternalError(JobsdError):
    code = ErrorCode.INTERNAL


_BY_CODE = {cls.code: cls for cls in (InvalidSpec, InvalidArgument, JobDisabled, RunNotActive,
                                      JobBusy, StoreLocked, Unavailable, InternalError)}


def error_for_code(code: str, message: str, metadata: dict[str, str] | None = None) -> JobsdError:
    """Rebuild an error received from the other side. Unknown codes become `internal`."""
    try:
        parsed = ErrorCode(code)
    except ValueError:
        parsed = ErrorCode.INTERNAL
    error = JobsdError.__new__(_BY_CODE.get(parsed, JobsdError))
    JobsdError.__init__(error, message, **(metadata or {}))
    error.code = parsed
    return error
