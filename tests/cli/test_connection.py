"""jobsctl.connection against a real daemon: a refusal arrives as its own error class, with the
daemon's code, message and metadata, from unary calls and streams alike."""
from __future__ import annotations

import pytest

from jobsctl.connection import Connection
from jobsd_lib.errors import ErrorCode, InvalidArgument, JobNotFound, RunNotFound
from jobsd_lib.rpc import jobsd_pb2 as pb

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def conn(daemon):
    daemon.write_job("ok", 'command = ["true"]\n')
    daemon.start()
    connection = Connection(daemon.socket)
    yield connection
    connection.close()


def test_a_unary_job_not_found_arrives_as_job_not_found(conn):
    with pytest.raises(JobNotFound) as err:
        conn.call(conn.jobs.GetJob, pb.GetJobRequest(job="nope"))
    assert err.value.code is ErrorCode.JOB_NOT_FOUND and err.value.metadata == {"job": "nope"}
    assert err.value.message == JobNotFound("nope").message  # the daemon's words, unchanged
    with pytest.raises(RunNotFound) as err:
        conn.call(conn.jobs.GetRun, pb.GetRunRequest(run="ok/99"))
    assert err.value.metadata == {"run": "ok/99"}


def test_a_stream_refusal_arrives_as_its_class_not_as_a_grpc_error(conn):
    with pytest.raises(JobNotFound) as err:
        list(conn.stream(conn.jobs.Tail, pb.TailRequest(job="nope")))
    assert err.value.metadata == {"job": "nope"}
    with pytest.raises(RunNotFound, match="no runs yet"):
        list(conn.stream(conn.jobs.Tail, pb.TailRequest(job="ok")))
    with pytest.raises(InvalidArgument):
        list(conn.stream(conn.jobs.WatchEvents, pb.WatchEventsRequest(job="../x")))


def test_a_stream_still_delivers_its_messages(conn):
    run = conn.call(conn.jobs.RunJob, pb.RunJobRequest(job="ok"))
    messages = list(conn.stream(conn.jobs.Tail, pb.TailRequest(job="ok", run=run.n, follow=True)))
    assert messages[0].WhichOneof("kind") == "start" and messages[-1].WhichOneof("kind") == "end"
    assert messages[-1].end.run.state == pb.RUN_STATE_SUCCEEDED
