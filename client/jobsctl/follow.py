"""Following a run's output (Tail), for `jobs tail` and `jobs run --wait/--follow`."""
from __future__ import annotations

import sys

from jobsctl import render, render_runs
from jobsctl.connection import Connection

__all__ = ["follow_run"]


def follow_run(conn: Connection, job: str, run: int, *, print_output: bool, from_start: bool = True,
               last_lines: int | None = None, follow: bool = True, timestamps: bool = False,
               markers: bool = True) -> dict:
    """Stream the run; write stdout chunks to stdout and stderr chunks to stderr as raw bytes, and
    (with `markers`) a line on stderr where a later attempt begins: `--- attempt 2 of 3 (after exit 3) ---`.

    Returns the run (JSON shape) from the stream's final message. Ctrl-C detaches: the run goes
    on, and how to re-attach is printed. Errors come as JobsdError (Connection.stream).
    """
    from jobsd_lib.rpc import jobsd_pb2 as pb

    request = pb.TailRequest(job=job, run=run, follow=follow)
    if last_lines is not None:
        request.last_lines = last_lines
    else:
        request.from_start = from_start
    stream = conn.stream(conn.jobs.Tail, request)
    ref = f"{job}/{run}" if run else job
    outs = {pb.STREAM_STDOUT: sys.stdout.buffer, pb.STREAM_STDERR: sys.stderr.buffer}
    try:
        for message in stream:
            kind = message.WhichOneof("kind")
            if kind == "start":
                ref = message.start.run.ref
            elif kind == "chunk" and print_output:
                _write(outs[message.chunk.stream], message.chunk, timestamps)
            elif kind == "attempt" and print_output and markers:
                sys.stdout.flush()
                print(render_runs.attempt_marker(message.attempt.number, render.run_json(message.attempt.run)),
                      file=sys.stderr, flush=True)
            elif kind == "end":
                return render.run_json(message.end.run)
    except KeyboardInterrupt:
        stream.cancel()
        print(render.detached_text(ref), file=sys.stderr)
        raise SystemExit(130) from None
    from jobsd_lib.errors import Unavailable

    raise Unavailable(f"the stream from jobsd ended before {ref} did (the daemon stopped?); "
                      f"re-attach with `jobsctl jobs tail {job} -f`")


def _write(out, chunk, timestamps: bool) -> None:  # noqa: ANN001
    data = chunk.data
    if timestamps:
        data = render.timestamped(data, chunk.read_at.seconds + chunk.read_at.nanos / 1e9)
    out.write(data)
    out.flush()
