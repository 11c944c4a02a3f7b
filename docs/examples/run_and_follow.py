#!/usr/bin/env python3
"""Run a jobsd job, stream its output while it runs, then print its outcome.

    python run_and_follow.py JOB [SOCKET]

SOCKET defaults to $JOBSD_SOCKET, else ~/.local/state/jobsd/jobsd.sock. Needs grpcio,
grpcio-status and the jobsd stubs (`jobsd_lib.rpc`, installed with jobsd; or generate your
own from proto/jobsd/v1/jobsd.proto). Exit status: 0 succeeded, 1 ended otherwise,
4 refused (the jobsd error code is printed), 3 daemon unreachable.
"""
import os
import sys

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from jobsd_lib.rpc import jobsd_pb2 as pb
from jobsd_lib.rpc import jobsd_pb2_grpc as pb_grpc


def jobsd_error(err: grpc.RpcError) -> tuple[str, dict]:
    """The stable jobsd code (ErrorInfo.reason) and metadata of a refusal."""
    status = rpc_status.from_call(err)  # None when the status carries no details
    for detail in status.details if status else ():
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info) and info.domain == "jobsd":
            return info.reason, dict(info.metadata)
    return err.code().name, {}  # e.g. UNAVAILABLE: nobody listens on the socket


def main() -> int:
    job = sys.argv[1]
    socket = (sys.argv[2] if len(sys.argv) > 2 else os.environ.get("JOBSD_SOCKET")
              or os.path.expanduser("~/.local/state/jobsd/jobsd.sock"))
    with grpc.insecure_channel(f"unix:{socket}") as channel:
        jobs = pb_grpc.JobsStub(channel)
        try:
            run = jobs.RunJob(pb.RunJobRequest(job=job), timeout=10)
            print(f"accepted {run.ref} ({pb.RunState.Name(run.state)})", file=sys.stderr)

            # Stored output from the start, then live output until the run ends.
            request = pb.TailRequest(job=job, run=run.n, from_start=True, follow=True)
            for message in jobs.Tail(request):
                kind = message.WhichOneof("kind")
                if kind == "chunk":  # raw bytes, tagged with their stream
                    out = sys.stdout.buffer if message.chunk.stream == pb.STREAM_STDOUT else sys.stderr.buffer
                    out.write(message.chunk.data)
                    out.flush()
                elif kind == "end":
                    break

            final = jobs.GetRun(pb.GetRunRequest(run=run.ref), timeout=10)
        except grpc.RpcError as err:
            code, metadata = jobsd_error(err)
            print(f"refused: {code}: {err.details()} {metadata}", file=sys.stderr)
            return 3 if err.code() == grpc.StatusCode.UNAVAILABLE else 4

    exit_code = final.exit_code if final.HasField("exit_code") else None
    print(f"{final.ref}: {pb.RunState.Name(final.state)} after {final.attempts} attempt(s), "
          f"exit code {exit_code}, artifacts {final.artifacts}", file=sys.stderr)
    return 0 if final.state == pb.RUN_STATE_SUCCEEDED else 1


if __name__ == "__main__":
    sys.exit(main())
