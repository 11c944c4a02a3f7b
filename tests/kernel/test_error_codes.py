"""The error catalogue (jobsd_lib.errors): DESIGN 6's codes, their statuses, and the round trip
an error makes over the wire (class, code, message and metadata survive it)."""
from __future__ import annotations

import pytest

from jobsd_lib.errors import (EXIT_REFUSED, EXIT_UNREACHABLE, ErrorCode, InternalError, JobBusy, JobNotFound,
                              JobsdError, RunNotFound, error_class, error_for_code, exit_code_for, grpc_status_name)

# DESIGN 6, "Errors": code -> gRPC status (None: it never travels).
DESIGN_6 = {
    "job_not_found": "NOT_FOUND", "run_not_found": "NOT_FOUND",
    "job_invalid_spec": "INVALID_ARGUMENT", "invalid_argument": "INVALID_ARGUMENT",
    "job_disabled": "FAILED_PRECONDITION", "run_not_active": "FAILED_PRECONDITION",
    "run_not_finished": "FAILED_PRECONDITION", "run_not_waiting": "FAILED_PRECONDITION",
    "run_elsewhere": "FAILED_PRECONDITION", "permission_denied": "PERMISSION_DENIED", "job_busy": "ABORTED",
    "store_locked": None, "internal": "INTERNAL",
}


def over_the_wire(error: JobsdError) -> JobsdError:
    """What the client rebuilds from what the interceptor sends (ErrorInfo reason, message, metadata)."""
    return error_for_code(error.code.value, error.message, dict(error.metadata))


@pytest.mark.parametrize("code, status", sorted(DESIGN_6.items()))
def test_every_code_of_design_6_has_its_status_and_class(code, status):
    cls = error_class(ErrorCode(code))
    assert cls.code is ErrorCode(code)
    if status is not None:
        assert grpc_status_name(ErrorCode(code)) == status
    assert exit_code_for(ErrorCode(code)) == EXIT_REFUSED


@pytest.mark.parametrize("code", sorted(DESIGN_6))
def test_every_code_of_design_6_survives_the_round_trip(code):
    sent = error_class(ErrorCode(code))(message=f"refused: {code}", job="nightly", run="nightly/3")
    received = over_the_wire(sent)
    assert type(received) is type(sent) and received.code is sent.code
    assert (received.message, received.metadata) == (f"refused: {code}", {"job": "nightly", "run": "nightly/3"})
    assert str(received) == received.message


def test_every_code_has_one_class_of_its_own():
    classes = {code: error_class(code) for code in ErrorCode}
    assert len(set(classes.values())) == len(ErrorCode)
    assert all(cls.code is code for code, cls in classes.items())
    assert exit_code_for(ErrorCode.UNAVAILABLE) == EXIT_UNREACHABLE


def test_not_found_errors_write_their_message_and_keep_it_over_the_wire():
    job = JobNotFound("nope")
    assert job.message.startswith("no job 'nope'") and job.metadata == {"job": "nope"}
    run = RunNotFound("ok", "job 'ok' has no runs yet")
    assert run.message == "job 'ok' has no runs yet" and run.metadata == {"run": "ok"}
    for sent in (job, run, RunNotFound("ok/9")):
        received = over_the_wire(sent)
        assert type(received) is type(sent)
        assert (received.message, received.metadata) == (sent.message, sent.metadata)


def test_a_not_found_error_without_its_subject_still_rebuilds():
    received = error_for_code("job_not_found", "no such job", {})
    assert isinstance(received, JobNotFound) and received.message == "no such job" and received.metadata == {}


def test_metadata_is_kept_as_strings_and_none_is_dropped():
    assert JobBusy("busy", job="a", count=3, gone=None).metadata == {"job": "a", "count": "3"}


@pytest.mark.parametrize("code", ["no_such_code", "", "JOB_NOT_FOUND"])
def test_an_unknown_code_becomes_internal_with_its_message(code):
    received = error_for_code(code, "from a newer daemon", {"job": "a"})
    assert type(received) is InternalError and received.code is ErrorCode.INTERNAL
    assert received.message == "from a newer daemon" and received.metadata == {"job": "a"}


def test_a_metadata_key_named_message_does_not_break_the_rebuild():
    received = error_for_code("job_busy", "busy", {"message": "x", "job": "a"})
    assert type(received) is JobBusy and received.message == "busy" and received.metadata == {"job": "a"}
