"""Bad input through the API: a clear code, nothing changed, the daemon still serving."""
from __future__ import annotations

import grpc
import pytest

from jobsd_lib.rpc import jobsd_pb2 as pb
from tests.conftest import error_code

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def served(daemon):
    daemon.write_job("ok", 'command = ["true"]\n')
    daemon.write_job("broken", 'command = []\n')
    daemon.write_job("off", 'command = ["true"]\nenabled = false\n')
    return daemon.start()


@pytest.mark.parametrize("job, status, code", [
    ("", grpc.StatusCode.INVALID_ARGUMENT, "invalid_argument"),
    ("../x", grpc.StatusCode.INVALID_ARGUMENT, "invalid_argument"),
    ("A", grpc.StatusCode.INVALID_ARGUMENT, "invalid_argument"),
    ("a" * 70, grpc.StatusCode.INVALID_ARGUMENT, "invalid_argument"),
    ("nope", grpc.StatusCode.NOT_FOUND, "job_not_found"),
    ("broken", grpc.StatusCode.INVALID_ARGUMENT, "job_invalid_spec"),
    ("off", grpc.StatusCode.FAILED_PRECONDITION, "job_disabled"),
])
def test_run_job_refusals(served, job, status, code):
    with pytest.raises(grpc.RpcError) as err:
        served.run(job)
    assert err.value.code() == status and error_code(err.value) == code
    assert err.value.details()
    assert list(served.jobs.ListRuns(pb.ListRunsRequest()).runs) == []  # nothing recorded
    assert served.run("ok").ref == "ok/1"  # still serving


@pytest.mark.parametrize("ref, code", [
    ("", "invalid_argument"), ("ok", "invalid_argument"), ("ok/0", "invalid_argument"), ("ok/x", "invalid_argument"),
    ("../x/1", "invalid_argument"), ("ok/-1", "invalid_argument"), ("ok/99", "run_not_found"),
    ("nope/1", "run_not_found"),
])
def test_get_run_bad_references(served, ref, code):
    with pytest.raises(grpc.RpcError) as err:
        served.get_run(ref)
    assert error_code(err.value) == code


def test_get_job_reports_invalid_spec_with_field(served):
    job = served.jobs.GetJob(pb.GetJobRequest(job="broken"))
    assert job.state == pb.JOB_STATE_INVALID
    assert job.error.code == "job_invalid_spec" and job.error.field == "command" and "empty" in job.error.message
    assert job.error.file.endswith("broken.toml")


def test_list_runs_pagination_and_bad_cursor(served):
    refs = []
    for _ in range(5):
        refs.append(served.run("ok").ref)
        served.wait_finished(refs[-1])
    page1 = served.jobs.ListRuns(pb.ListRunsRequest(job="ok", limit=2))
    page2 = served.jobs.ListRuns(pb.ListRunsRequest(job="ok", limit=2, cursor=page1.next_cursor))
    page3 = served.jobs.ListRuns(pb.ListRunsRequest(job="ok", limit=2, cursor=page2.next_cursor))
    got = [r.ref for p in (page1, page2, page3) for r in p.runs]
    assert got == ["ok/5", "ok/4", "ok/3", "ok/2", "ok/1"] and page3.next_cursor == ""
    with pytest.raises(grpc.RpcError) as err:
        served.jobs.ListRuns(pb.ListRunsRequest(job="ok", cursor="garbage!"))
    assert error_code(err.value) == "invalid_argument"
    with pytest.raises(grpc.RpcError) as err:
        served.jobs.ListRuns(pb.ListRunsRequest(job="ok", limit=5000))
    assert error_code(err.value) == "invalid_argument"


def test_tail_refusals(served):
    with pytest.raises(grpc.RpcError) as err:
        list(served.jobs.Tail(pb.TailRequest(job="nope"), timeout=5))
    assert error_code(err.value) == "job_not_found"
    with pytest.raises(grpc.RpcError) as err:
        list(served.jobs.Tail(pb.TailRequest(job="ok"), timeout=5))
    assert error_code(err.value) == "run_not_found" and "no runs yet" in err.value.details()


def test_standard_health_and_reflection(served):
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    health = health_pb2_grpc.HealthStub(served.channel)
    assert health.Check(health_pb2.HealthCheckRequest(service="jobsd.v1.Jobs")).status == health_pb2.HealthCheckResponse.SERVING
    stub = reflection_pb2_grpc.ServerReflectionStub(served.channel)
    answer = next(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
    names = {s.name for s in answer.list_services_response.service}
    assert {"jobsd.v1.Jobs", "jobsd.v1.Daemon", "grpc.health.v1.Health"} <= names


def test_a_health_probe_of_an_unknown_service_is_not_found_and_no_fault(served):
    """A monitor probing a wrong name must not fill the journal with tracebacks (issue 16)."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    health = health_pb2_grpc.HealthStub(served.channel)
    for _ in range(3):
        with pytest.raises(grpc.RpcError) as err:
            health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=10)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10).status == \
        health_pb2.HealthCheckResponse.SERVING  # answered after them, so their log lines are written
    log = served.read_log()
    assert "Traceback" not in log and "internal error" not in log and "Abort already called" not in log


def test_an_rpc_this_version_does_not_know_answers_unimplemented(served):
    # what a client built from a newer proto sees when it calls an RPC this daemon does not have
    newer = served.channel.unary_unary("/jobsd.v1.Daemon/SomeFutureRpc", request_serializer=lambda m: b"",
                                       response_deserializer=lambda b: b)
    with pytest.raises(grpc.RpcError) as err:
        newer(object(), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert served.daemon.GetHealth(pb.GetHealthRequest(), timeout=10).pid  # and it keeps serving


def test_a_leftover_run_folder_is_moved_aside_not_appended_to(served):
    import os
    stale = os.path.join(served.home, "runs", "ok", "1")
    os.makedirs(stale)
    with open(os.path.join(stale, "attempt-1.log"), "wb") as f:
        f.write(b"old output from a store restored from backup\n")
    final = served.wait_finished(served.run("ok").ref)
    assert os.path.getsize(os.path.join(final.artifacts, "attempt-1.log")) == 0
    aside = [n for n in os.listdir(os.path.dirname(stale)) if n.startswith("1.orphan-")]
    assert len(aside) == 1


def test_a_file_whose_name_is_no_valid_id_is_listed_showable_and_not_runnable(daemon):
    daemon.write_job("Bad-Name", 'command = ["true"]\n')
    daemon.start()
    listed = daemon.jobs.ListJobs(pb.ListJobsRequest(), timeout=10)
    assert [j.id for j in listed.jobs] == ["Bad-Name"]
    shown = daemon.jobs.GetJob(pb.GetJobRequest(job="Bad-Name"), timeout=10)
    assert shown.state == pb.JOB_STATE_INVALID and "not a valid job id" in shown.error.message
    with pytest.raises(grpc.RpcError) as err:
        daemon.run("Bad-Name")
    assert error_code(err.value) == "job_invalid_spec"


def test_an_unknown_job_suggests_the_close_ids(daemon):
    daemon.write_job("backup", 'command = ["true"]\n')
    daemon.write_job("backup-db", 'command = ["true"]\n')
    daemon.start()
    typo = daemon.ctl("jobs", "run", "bakcup")
    assert typo.returncode == 4
    assert "no job 'bakcup': did you mean 'backup' or 'backup-db'?" in typo.stderr.decode()
    far = daemon.ctl("jobs", "show", "zzz")
    assert "did you mean" not in far.stderr.decode() and "no job 'zzz'" in far.stderr.decode()
