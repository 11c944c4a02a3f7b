"""Every field of every request, at its edges: a short, coded refusal (or a normal answer), never
`internal`, never a status too big to send, and the daemon still serving afterwards.

The cases come from the proto itself (pb.DESCRIPTOR), so a field or RPC added later is tried
here without anyone having to list it.
"""
from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor as F
from google.protobuf.timestamp_pb2 import Timestamp

from jobsd_lib.errors import ErrorCode
from jobsd_lib.rpc import jobsd_pb2 as pb
from tests.conftest import error_code

pytestmark = pytest.mark.timeout(60)

# Well-formed values for string fields, so that a case varies one field and the others pass.
# A field not named here starts empty (which every optional filter accepts).
BASELINE = {"job": "ok", "run": "ok/1"}
SHORT = 300  # a refusal's message a person reads: no echo of a huge value
ACCEPTED = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND}
# The baseline run ok/1 has ended: deciding it is refused as run_not_waiting whatever the comment.
PRECONDITION = {"ApproveRun": "run_not_waiting", "RejectRun": "run_not_waiting"}
HUGE = "x" * 100_000

SIGNED32 = (-1, -2**31, 2**31 - 1)
SIGNED64 = (-1, -2**63, 2**63 - 1)
INT_VALUES = {
    F.TYPE_INT32: SIGNED32, F.TYPE_SINT32: SIGNED32, F.TYPE_SFIXED32: SIGNED32,
    F.TYPE_INT64: SIGNED64, F.TYPE_SINT64: SIGNED64, F.TYPE_SFIXED64: SIGNED64,
    F.TYPE_UINT32: (2**31, 2**32 - 1), F.TYPE_FIXED32: (2**31, 2**32 - 1),
    F.TYPE_UINT64: (2**63 - 1, 2**63, 2**64 - 1), F.TYPE_FIXED64: (2**63 - 1, 2**63, 2**64 - 1),
}
FLOAT_VALUES = (math.nan, math.inf, -math.inf, -1.0, 1e308)


@dataclass
class Case:
    method: str          # /jobsd.v1.Jobs/GetRun
    streaming: bool
    what: str            # field=value, for the report
    body: bytes          # the serialized request
    must_refuse: bool    # a value no RPC can accept (beyond what SQLite or a person can use)


def _methods() -> Iterator[tuple[str, object]]:
    for service in pb.DESCRIPTOR.services_by_name.values():
        for method in service.methods:
            yield f"/{service.full_name}/{method.name}", method


def _baseline(message_type) -> object:  # noqa: ANN001
    request = getattr(pb, message_type.name)()
    for field in message_type.fields:
        if field.type == F.TYPE_STRING and not field.is_repeated and field.name in BASELINE:
            setattr(request, field.name, BASELINE[field.name])
    return request


def _values(field) -> Iterator[tuple[object, bool]]:  # noqa: ANN001
    """(value, must be refused) pairs the field's type can carry."""
    if field.type in INT_VALUES:
        for value in INT_VALUES[field.type]:
            yield value, value >= 2**63  # no SQLite integer holds it
    elif field.type in (F.TYPE_DOUBLE, F.TYPE_FLOAT):
        for value in FLOAT_VALUES:
            yield value, not math.isfinite(value)
    elif field.type == F.TYPE_STRING:
        yield HUGE, True
        yield "", False
        yield "ok\x00", True
        yield "ok\x00/1", True
    elif field.type == F.TYPE_BYTES:
        yield HUGE.encode(), False
    elif field.type == F.TYPE_ENUM:
        yield 99, True  # a number this proto does not define
        yield -1, True
        yield 0, False
    elif field.type == F.TYPE_MESSAGE and field.message_type.full_name == "google.protobuf.Timestamp":
        yield Timestamp(seconds=2**62), True      # beyond year 9999: no datetime holds it
        yield Timestamp(seconds=-2**62), True
        yield Timestamp(seconds=1, nanos=-1), True
        yield Timestamp(seconds=int(time.time()) + 3600), False
    elif field.type == F.TYPE_MESSAGE:
        raise AssertionError(f"{field.full_name}: a message-typed request field needs cases here")
    # bool: both values are meaningful


def _set(request, field, value) -> None:  # noqa: ANN001
    if field.is_repeated:
        getattr(request, field.name).append(value)
    elif field.type == F.TYPE_MESSAGE:
        getattr(request, field.name).CopyFrom(value)
    else:
        setattr(request, field.name, value)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _cases() -> Iterator[Case]:
    for path, method in _methods():
        streaming = method.server_streaming
        message_type = method.input_type
        # Bytes that are no message at all: a length running past the end.
        yield Case(path, streaming, "undecodable bytes", b"\x0a\xff\xff\x03ab", True)
        for field in message_type.fields:
            for value, must_refuse in _values(field):
                request = _baseline(message_type)
                _set(request, field, value)
                shown = repr(value)[:40]
                yield Case(path, streaming, f"{field.name}={shown}", request.SerializeToString(), must_refuse)
            if field.type == F.TYPE_STRING:  # not UTF-8: protobuf will not build it, so write the wire form
                raw = b"\xff\xfeok"
                body = _baseline(message_type).SerializeToString() + \
                    _varint(field.number << 3 | 2) + _varint(len(raw)) + raw
                yield Case(path, streaming, f"{field.name}=<not UTF-8>", body, True)


def _call(channel: grpc.Channel, case: Case) -> tuple[grpc.StatusCode, grpc.RpcError | None]:
    """Send the raw request; the answer's status (a stream: its first message, or its error)."""
    try:
        if case.streaming:
            call = channel.unary_stream(case.method)(case.body, timeout=10)
            next(iter(call), None)
            call.cancel()
        else:
            channel.unary_unary(case.method)(case.body, timeout=10)
        return grpc.StatusCode.OK, None
    except grpc.RpcError as err:
        return err.code(), err


def _problem(case: Case, code: grpc.StatusCode, err: grpc.RpcError | None) -> str | None:
    method = case.method.rsplit("/", 1)[-1]
    if code is grpc.StatusCode.FAILED_PRECONDITION and method in PRECONDITION and not case.must_refuse:
        return None if error_code(err) == PRECONDITION[method] else f"code {error_code(err)!r}"
    if code not in ACCEPTED:
        return f"{code.name}: {(err.details() or '')[:120]!r}"
    if case.must_refuse and code != grpc.StatusCode.INVALID_ARGUMENT:
        return f"{code.name}, not INVALID_ARGUMENT"
    if err is None:
        return None
    try:
        reason = error_code(err)
    except AssertionError as exc:
        return f"{code.name} without a jobsd code ({exc})"
    if reason not in {c.value for c in ErrorCode} or reason == ErrorCode.INTERNAL.value:
        return f"code {reason!r}"
    if len(err.details() or "") >= SHORT:
        return f"a {len(err.details())}-character message"
    return None


@pytest.fixture
def served(daemon):
    daemon.write_job("ok", 'command = ["true"]\n')
    daemon.start()
    daemon.wait_finished(daemon.run("ok").ref)  # ok/1 exists and has ended: Tail and offsets have a run
    return daemon


def test_every_field_of_every_request_is_refused_shortly_or_accepted(served):
    cases = list(_cases())
    assert len({c.method for c in cases}) == sum(1 for _ in _methods())
    problems = []
    for case in cases:
        code, err = _call(served.channel, case)
        problem = _problem(case, code, err)
        if problem:
            problems.append(f"{case.method.rsplit('/', 1)[1]}({case.what}): {problem}")
    assert served.proc.poll() is None, "jobsd died"
    assert served.daemon.GetHealth(pb.GetHealthRequest(), timeout=10).pid == served.proc.pid
    served.jobs.EnableJob(pb.ResumeJobRequest(job="ok"), timeout=10)  # undo the accepted DisableJob(ok, reason="")
    assert served.run("ok").ref == "ok/2"  # still serving, and nothing above started a run
    assert not problems, f"{len(problems)} of {len(cases)} cases:\n" + "\n".join(problems)


NOT_CANONICAL = ["ok/01", "ok/001", "ok/+1", "ok/ 1", "ok/1 ", "ok/\u0661", "ok/\uff11", "ok/1\n", "ok/1_0",
                 f"ok/{2**63}", "ok/" + "1" * 30]


def test_a_run_reference_is_canonical(served):
    """Only the form jobsd writes names a run: no leading zero, sign, space or non-ASCII digit."""
    for ref in NOT_CANONICAL:
        with pytest.raises(grpc.RpcError) as err:
            served.get_run(ref)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, ref
        assert error_code(err.value) == "invalid_argument", ref
        assert "JOB/N" in err.value.details() and len(err.value.details()) < SHORT, ref
    assert served.get_run("ok/1").ref == "ok/1"
    for ref in ("ok\n/1", "ok/1/1", "/1"):  # the job part is checked as strictly
        with pytest.raises(grpc.RpcError) as err:
            served.get_run(ref)
        assert error_code(err.value) == "invalid_argument", ref
    with pytest.raises(grpc.RpcError) as err:
        served.jobs.GetJob(pb.GetJobRequest(job="ok\n"), timeout=10)
    assert error_code(err.value) == "invalid_argument"
    with pytest.raises(grpc.RpcError) as err:  # the largest number is well formed and names nothing
        served.get_run(f"ok/{2**63 - 1}")
    assert error_code(err.value) == "run_not_found"


def test_a_50_mb_request_is_refused_by_the_receive_limit_and_the_daemon_goes_on(served):
    """gRPC's default receive limit (4 MiB, docs/api.md "Limits on requests") stops it before any
    handler sees it."""
    with pytest.raises(grpc.RpcError) as err:
        served.jobs.GetJob(pb.GetJobRequest(job="x" * 50_000_000), timeout=30)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.value
    assert served.proc.poll() is None
    assert served.jobs.GetJob(pb.GetJobRequest(job="ok"), timeout=10).id == "ok"
