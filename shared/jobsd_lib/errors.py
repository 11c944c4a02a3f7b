"""The error catalogue: one hierarchy, one table from code to gRPC status and CLI exit code.

The daemon raises JobsdError subclasses; one interceptor turns them into a gRPC status with
a google.rpc.ErrorInfo detail (domain "jobsd", reason = code, metadata). The client turns that
back into the error's own class with the same code, message and metadata (error_for_code). The
status is named, not imported, so this module stays free of grpc.
"""
from __future__ import annotations

from enum import Enum
from typing import ClassVar

__all__ = [
    "ErrorCode", "JobsdError", "JobNotFound", "RunNotFound", "InvalidSpec", "InvalidArgument",
    "JobDisabled", "RunNotActive", "RunNotFinished", "RunNotWaiting", "RunElsewhere", "PermissionDenied",
    "JobBusy", "StoreLocked", "Unavailable", "InternalError", "DOMAIN", "grpc_status_name", "exit_code_for",
    "error_class", "error_for_code",
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
    RUN_NOT_FINISHED = "run_not_finished"  # DESIGN 10: `runs retry` of an active run
    RUN_NOT_WAITING = "run_not_waiting"    # DESIGN 10: approving a run that does not wait for approval
    RUN_ELSEWHERE = "run_elsewhere"        # DESIGN 12: another host's run (cancel, approve, reject)
    PERMISSION_DENIED = "permission_denied"  # DESIGN 10: a caller not among the job's approvers
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
    ErrorCode.RUN_NOT_FINISHED: ("FAILED_PRECONDITION", EXIT_REFUSED),
    ErrorCode.RUN_NOT_WAITING: ("FAILED_PRECONDITION", EXIT_REFUSED),
    ErrorCode.RUN_ELSEWHERE: ("FAILED_PRECONDITION", EXIT_REFUSED),
    ErrorCode.PERMISSION_DENIED: ("PERMISSION_DENIED", EXIT_REFUSED),
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
    """Base of every refusal. `message` tells the user what went wrong and what to do; `metadata`
    names its subject ({"job": "nope"}) and travels beside it (ErrorInfo.metadata).

    Every class is built the same way from what travels: `cls(message=..., **metadata)`, which
    is how error_for_code rebuilds the error on the other side. JobNotFound and RunNotFound also
    take their subject first and then write the message themselves (`JobNotFound("nope")`).
    """

    code: ClassVar[ErrorCode] = ErrorCode.INTERNAL

    def __init__(self, message: str, **metadata: str | None) -> None:
        super().__init__(message)
        self.message = message
        self.metadata = {k: str(v) for k, v in metadata.items() if v is not None}

    def __str__(self) -> str:
        return self.message


class JobNotFound(JobsdError):
    code = ErrorCode.JOB_NOT_FOUND

    def __init__(self, job: str | None = None, message: str = "", **metadata: str | None) -> None:
        super().__init__(message or f"no job {job!r}: `jobsctl jobs list` shows the jobs this daemon knows",
                         job=job, **metadata)


class RunNotFound(JobsdError):
    code = ErrorCode.RUN_NOT_FOUND

    def __init__(self, run: str | None = None, message: str = "", **metadata: str | None) -> None:
        super().__init__(message or f"no run {run!r}: `jobsctl jobs history JOB` lists a job's runs",
                         run=run, **metadata)


class InvalidSpec(JobsdError):
    code = ErrorCode.JOB_INVALID_SPEC


class InvalidArgument(JobsdError):
    code = ErrorCode.INVALID_ARGUMENT


class JobDisabled(JobsdError):
    code = ErrorCode.JOB_DISABLED


class RunNotActive(JobsdError):
    code = ErrorCode.RUN_NOT_ACTIVE


class RunNotFinished(JobsdError):
    code = ErrorCode.RUN_NOT_FINISHED


class RunNotWaiting(JobsdError):
    code = ErrorCode.RUN_NOT_WAITING


class RunElsewhere(JobsdError):
    code = ErrorCode.RUN_ELSEWHERE


class PermissionDenied(JobsdError):
    code = ErrorCode.PERMISSION_DENIED


class JobBusy(JobsdError):
    code = ErrorCode.JOB_BUSY


class StoreLocked(JobsdError):
    code = ErrorCode.STORE_LOCKED


class Unavailable(JobsdError):
    code = ErrorCode.UNAVAILABLE


class InternalError(JobsdError):
    code = ErrorCode.INTERNAL


_BY_CODE: dict[ErrorCode, type[JobsdError]] = {cls.code: cls for cls in (
    JobNotFound, RunNotFound, InvalidSpec, InvalidArgument, JobDisabled, RunNotActive, RunNotFinished,
    RunNotWaiting, RunElsewhere, PermissionDenied, JobBusy, StoreLocked, Unavailable, InternalError)}


def error_class(code: ErrorCode) -> type[JobsdError]:
    """The one class of each code (JobsdError subclasses defined elsewhere keep their parent's code)."""
    return _BY_CODE[code]


def error_for_code(code: str, message: str, metadata: dict[str, str] | None = None) -> JobsdError:
    """Rebuild an error received from the other side, as its own class. Unknown codes become
    `internal` (InternalError), keeping the message."""
    try:
        parsed = ErrorCode(code)
    except ValueError:
        parsed = ErrorCode.INTERNAL
    # a metadata key "message" would collide with the argument; jobsd never sends one
    subject = {k: v for k, v in (metadata or {}).items() if k != "message"}
    return _BY_CODE[parsed](message=message, **subject)
