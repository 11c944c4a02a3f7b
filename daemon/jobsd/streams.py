"""The two server-streaming reads: a run's output (Tail) and the lifecycle events (WatchEvents).

Both follow the same pattern (see output.py): read from the durable source (output files,
events table) from the caller's position, send, and when nothing is new, wait on a Channel
for "more was written". Every send goes through `send`, which the API layer bounds with a
write timeout so a client that stops reading ends its own stream and pins nothing
(PITFALLS 12).
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from jobsd.output import Channel, Chunk, OutputReader
from jobsd.service import Service
from jobsd.store import EventRow, RunRow
from jobsd_lib.errors import InvalidArgument, RunNotFound
from jobsd_lib.refs import require_job_id

__all__ = ["TailRequest", "tail", "watch_events"]

_IDLE_RECHECK = 1.0     # seconds: a waiting follower re-reads its sources at least this often
_BATCH = 64             # records read per pass, so one follower never hogs the loop


@dataclass(frozen=True)
class TailRequest:
    job: str
    run: int = 0              # 0: active run, else latest
    last_lines: int | None = None
    offset: int | None = None
    follow: bool = False


def resolve_run(service: Service, job_id: str, n: int) -> RunRow:
    service.get_job(job_id)  # job_not_found / invalid_argument
    if n:
        return service.get_run(f"{job_id}/{n}")
    run = service.store.active_run(job_id) or service.store.latest_run(job_id)
    if run is None:
        raise RunNotFound(job_id, f"job {job_id!r} has no runs yet: start one with `jobsctl jobs run {job_id}`")
    return run


def _start_position(reader_for, run: RunRow, req: TailRequest) -> tuple[int, int, int]:  # noqa: ANN001
    """(attempt, record index, skip_before offset) where the stream begins."""
    if req.offset is not None:
        reader = reader_for(1)
        return 1, reader.record_at(req.offset), req.offset
    if req.last_lines is not None:
        attempt = max(run.attempts, 1)
        reader = reader_for(attempt)
        offset = reader.offset_of_last_lines(req.last_lines)
        return attempt, reader.record_at(offset), offset
    return 1, 0, 0


async def tail(service: Service, req: TailRequest, send_start: Callable[[RunRow], Awaitable[None]],
               send_chunk: Callable[[Chunk], Awaitable[None]], send_end: Callable[[RunRow], Awaitable[None]]) -> None:
    """Stream one run's output: stored from the start position, then live when following."""
    require_job_id(req.job)
    if req.offset is not None and req.offset < 0:
        raise InvalidArgument("offset must be >= 0")
    run = resolve_run(service, req.job, req.run)
    run_dir = service.run_dir(run)
    readers: dict[int, OutputReader] = {}

    def reader_for(attempt: int) -> OutputReader:
        return readers.setdefault(attempt, OutputReader(run_dir, attempt))

    await send_start(run)
    attempt, record, skip = _start_position(reader_for, run, req)
    service.hub.followers += 1
    try:
        while True:
            channel = service.hub.get(run.ref)
            version = channel.version if channel else -1
            reader = reader_for(attempt)
            stop = min(reader.count(), record + _BATCH)
            if stop > record:
                for chunk in reader.chunks(record, stop, skip):
                    await send_chunk(chunk)
                record = stop
                continue
            run = service.store.get_run(run.job_id, run.n) or run
            if attempt < run.attempts:
                attempt, record, skip = attempt + 1, 0, 0
                continue
            if not run.active or not req.follow or channel is None:
                if run.active and req.follow:  # the run is active but its channel is gone: re-check soon
                    await _pause(_IDLE_RECHECK / 10)
                    continue
                await send_end(run)
                return
            await channel.wait(version, _IDLE_RECHECK)
    finally:
        service.hub.followers -= 1


async def _pause(seconds: float) -> None:
    await asyncio.sleep(seconds)


async def watch_events(service: Service, job: str, after_seq: int, follow: bool, last: int,
                       send: Callable[[EventRow], Awaitable[None]]) -> None:
    """Events with seq > after_seq (or the last `last`), in order, each once; then live when following."""
    if job:
        require_job_id(job)
    position = after_seq
    if not after_seq and (last or follow):
        position = service.store.last_event_seq(job, back=last)  # events after it are the last `last`
    service.hub.followers += 1
    try:
        while True:
            version = service.events_changed.version
            events = service.store.events_after(position, job, 500)
            for event in events:
                await send(event)
                position = event.seq
            if events:
                continue
            if not follow or service.events_changed.closed:
                return
            await service.events_changed.wait(version, _IDLE_RECHECK)
    finally:
        service.hub.followers -= 1
