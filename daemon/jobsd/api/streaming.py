"""The server streams on the wire: Tail's messages and WatchEvents' events, each send bounded.

A client that stops reading (SIGSTOPped, stuck) has its stream ended after WRITE_TIMEOUT seconds
with DEADLINE_EXCEEDED instead of pinning anything (PITFALLS 12). Tail's output bounds its sends
itself, with one timer per stream (streams.WriteGuard); events use asyncio.timeout per message
(not asyncio.wait_for: no extra task per message).
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable

import grpc

from jobsd.api.convert import event_pb
from jobsd.context import Context
from jobsd.output import Chunk
from jobsd.store import EventRow, RunRow
from jobsd.streams import TailRequest, tail, watch_events
from jobsd_lib.rpc import jobsd_pb2 as pb

__all__ = ["WRITE_TIMEOUT", "stream_tail", "stream_events"]

WRITE_TIMEOUT = 30.0


async def stream_tail(ctx: Context, request: pb.TailRequest, context, run_pb: Callable[[RunRow], pb.Run]) -> None:  # noqa: ANN001
    """TailMessages for streams.tail: the run at the start, its output chunks (with the run where each later
    attempt begins), the run at the end."""
    start = request.WhichOneof("start")
    req = TailRequest(job=request.job, run=request.run, follow=request.follow,
                      last_lines=request.last_lines if start == "last_lines" else None,
                      offset=request.offset if start == "offset" else None)

    async def send_start(run: RunRow) -> None:
        await context.write(pb.TailMessage(start=pb.TailStart(run=run_pb(run))))

    async def send_chunk(chunk: Chunk) -> None:
        message = pb.TailMessage()  # filled in place: a nested constructor copies the data once more
        out = message.chunk
        out.data, out.stream, out.offset, out.attempt = chunk.data, chunk.stream, chunk.offset, chunk.attempt
        out.read_at.seconds, out.read_at.nanos = divmod(chunk.ts_ns, 1_000_000_000)  # exact, unlike a float
        await context.write(message)

    async def send_end(run: RunRow) -> None:
        await context.write(pb.TailMessage(end=pb.TailEnd(run=run_pb(run))))

    async def send_attempt(number: int, run: RunRow) -> None:
        await context.write(pb.TailMessage(attempt=pb.TailAttempt(number=number, run=run_pb(run))))

    try:
        await tail(ctx, req, send_start, send_chunk, send_end, send_attempt, WRITE_TIMEOUT)
    except TimeoutError as exc:  # streams.WriteTimeout: the client stopped reading
        await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, f"{exc}; stream ended")


async def stream_events(ctx: Context, request: pb.WatchEventsRequest, context) -> None:  # noqa: ANN001
    """Events for streams.watch_events, each send bounded by WRITE_TIMEOUT."""

    async def send(event: EventRow) -> None:
        try:
            async with asyncio.timeout(WRITE_TIMEOUT):
                await context.write(event_pb(event))
        except TimeoutError:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED,
                                f"the client did not read for {WRITE_TIMEOUT:g}s; stream ended")

    await watch_events(ctx, request.job, request.after_seq, request.follow, request.last, send)
