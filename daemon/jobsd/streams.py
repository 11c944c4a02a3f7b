"""The two server-streaming reads: a run's output (Tail) and the lifecycle events (WatchEvents).

Both follow the same pattern (see output.py): read from the durable source (output files,
events table) from the caller's position, send, and when nothing is new, wait on a Channel
for "more was written". Every send is bounded by a write timeout, so a client that stops
reading ends its own stream and pins nothing (PITFALLS 12): Tail bounds its sends here, with
one WriteGuard per stream (asyncio.wait_for on every write cost about as much as the write);
WatchEvents' sends are bounded by the API layer.

A Tail follower reads index records a block at a time and sends one message a chunk: a stored
record, or consecutive records of one stream read in the same millisecond, 1 MiB at most
(under gRPC's 4 MiB default message limit: PITFALLS 16; less with many followers, see
Hub.chunk_limit), each read with one pread just before it is sent (OutputReader.chunks): what a
follower holds is one chunk, whatever the records' sizes. In a burst it waits up to _CORK for
a fuller chunk rather than send every small pipe read as it comes (as Nagle's algorithm does).
While it keeps up with a live run it re-reads the run row only when the run may have moved on
(channel closed, next attempt's files present, an idle timeout), not after every catch-up.
"""
from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

from jobsd.output import Chunk, OutputReader, idx_path
from jobsd.context import Context
from jobsd.handlers.jobs import get_job
from jobsd.handlers.runs import get_run
from jobsd.store import EventRow, RunRow
from jobsd_lib.errors import InvalidArgument, RunNotFound, error_for_code
from jobsd_lib.refs import require_job_id

__all__ = ["TailRequest", "WriteGuard", "WriteTimeout", "tail", "watch_events"]

_IDLE_RECHECK = 1.0         # seconds: a waiting follower re-reads its sources at least this often
_INDEX_BLOCK = 256          # index records (24 bytes each) read per pass
_CORK = 0.001               # seconds: a follower that sent less than this ago waits out the rest for more


@dataclass(frozen=True)
class TailRequest:
    job: str
    run: int = 0              # 0: active run, else latest
    last_lines: int | None = None
    offset: int | None = None
    follow: bool = False


class WriteTimeout(TimeoutError):
    """The client read nothing for the write timeout: its stream ends (PITFALLS 12)."""


class WriteGuard:
    """Bounds every send of one stream to `limit` seconds, with one timer for the whole stream.

    asyncio.wait_for costs a task and a timer per write; here a send only notes when it began.
    A send arms the timer when none is armed. When the timer fires it looks at the send pending
    then: none, it lapses; one not yet `limit` old, it re-arms for that send's deadline; one
    older, it cancels the stream's task, which `send` turns into WriteTimeout. Must be created
    inside the task that sends.
    """

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._since: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._expired = False

    async def send(self, write: Awaitable[None]) -> None:
        """Await `write` (a send); raises WriteTimeout if it was still pending after `limit` seconds."""
        self._since = self._loop.time()
        if self._timer is None:
            self._timer = self._loop.call_at(self._since + self.limit, self._check)
        try:
            await write
        except asyncio.CancelledError:
            if self._expired and self._task.uncancel() == 0:  # our cancel, and nobody else's
                raise WriteTimeout(f"the client did not read for {self.limit:g}s") from None
            raise
        finally:
            self._since = None

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check(self) -> None:
        self._timer = None
        if self._since is None:
            return
        due = self._since + self.limit
        if self._loop.time() < due:
            self._timer = self._loop.call_at(due, self._check)
        else:
            self._expired = True
            self._task.cancel()


def resolve_run(ctx: Context, job_id: str, n: int) -> RunRow:
    get_job(ctx, job_id)  # job_not_found / invalid_argument
    if n:
        return get_run(ctx, f"{job_id}/{n}")
    run = ctx.store.active_run(job_id) or ctx.store.latest_run(job_id)
    if run is None:
        raise RunNotFound(job_id, f"job {job_id!r} has no runs yet: start one with `jobsctl jobs run {job_id}`")
    return run


def _start_position(run_dir: str, run: RunRow, req: TailRequest) -> tuple[int, int, int]:
    """(attempt, record index, skip_before offset) where the stream begins."""
    if req.offset is None and req.last_lines is None:
        return 1, 0, 0
    attempt = 1 if req.offset is not None else max(run.attempts, 1)
    reader = OutputReader(run_dir, attempt)
    try:
        offset = req.offset if req.offset is not None else reader.offset_of_last_lines(req.last_lines)
        return attempt, reader.record_at(offset), offset
    finally:
        reader.close()


class _Cursor:
    """One follower's position: attempt, next record, bytes to skip in the first one."""

    def __init__(self, run_dir: str) -> None:
        self.run_dir = run_dir
        self.attempt, self.record, self.skip = 1, 0, 0
        self._reader = OutputReader(run_dir, 1)
        self._end: int | None = None  # log offset just past what read() returned; None: not known yet

    def seek(self, attempt: int, record: int, skip: int) -> None:
        if attempt != self._reader.attempt:
            self._reader.close()
            self._reader = OutputReader(self.run_dir, attempt)
        self.attempt, self.record, self.skip = attempt, record, skip
        self._end = None

    def read(self, limit: int) -> Iterator[Chunk] | None:
        """The chunks (at most `limit` bytes each) of the next block of stored records, read one by one
        as the iteration goes (moves past the whole block); None when nothing new is stored."""
        records = self._reader.records(self.record, self.record + _INDEX_BLOCK)
        if not records:
            return None
        self.record += len(records)
        self._end = records[-1][0] + records[-1][2]
        return self._reader.chunks(records, self.skip, limit)

    def unread(self) -> int:
        """Bytes stored past the position (0 when the position's offset is not known yet)."""
        return self._reader.size() - self._end if self._end is not None else 0

    def next_attempt_started(self) -> bool:
        return os.path.exists(idx_path(self.run_dir, self.attempt + 1))

    def close(self) -> None:
        """Release open files (they reopen on the next read)."""
        self._reader.close()


async def tail(ctx: Context, req: TailRequest, send_start: Callable[[RunRow], Awaitable[None]],
               send_chunk: Callable[[Chunk], Awaitable[None]], send_end: Callable[[RunRow], Awaitable[None]],
               send_attempt: Callable[[int, RunRow], Awaitable[None]], write_timeout: float) -> None:
    """Stream one run's output: stored from the start position, then live when following.
    `send_attempt(number, run)` is awaited where the stream moves on to the next attempt.

    Raises WriteTimeout when one send waits more than `write_timeout` seconds for the client.
    """
    require_job_id(req.job)
    if req.offset is not None and req.offset < 0:
        raise InvalidArgument("offset must be >= 0")
    run = resolve_run(ctx, req.job, req.run)
    here = ctx.own_host()
    if here is not None and run.host and run.host != here:  # its output is in that host's run folder
        raise error_for_code("run_elsewhere", f"run {run.ref} ran on host {run.host}: its output is there; tail it "
                             f"through that host's socket (this is host {here})", {"run": run.ref, "host": run.host})
    run_dir = ctx.run_dir(run)
    guard, cursor = WriteGuard(write_timeout), _Cursor(run_dir)
    try:
        await guard.send(send_start(run))
        cursor.seek(*_start_position(run_dir, run, req))
        ctx.hub.followers += 1
        try:
            run = await _follow(ctx, run, req.follow, cursor, lambda chunk: guard.send(send_chunk(chunk)),
                                lambda n, row: guard.send(send_attempt(n, row)))
            await guard.send(send_end(run))
        finally:
            ctx.hub.followers -= 1
    finally:
        guard.close()
        cursor.close()


async def _follow(ctx: Context, run: RunRow, follow: bool, cursor: _Cursor,
                  send: Callable[[Chunk], Awaitable[None]], moved_on: Callable[[int, RunRow], Awaitable[None]]) -> RunRow:
    """Send stored chunks until there are no more and, when following, the run has ended.

    Returns the run as last read from the store.
    """
    loop = asyncio.get_running_loop()
    recheck = True  # re-read the run before the next wait
    sent_at = -_CORK
    while True:
        channel = ctx.hub.get(run.ref)
        version = channel.version if channel else -1
        limit = ctx.hub.chunk_limit()
        chunks = cursor.read(limit)
        if chunks is not None:
            for chunk in chunks:
                await send(chunk)
            sent_at = loop.time()
            continue
        if recheck or not follow or channel is None or channel.closed or cursor.next_attempt_started():
            run = ctx.store.get_run(run.job_id, run.n) or run
            if cursor.attempt < run.attempts:
                cursor.seek(cursor.attempt + 1, 0, 0)
                await moved_on(cursor.attempt, run)
                continue
            if not run.active or not follow:
                return run
            if channel is None:  # the run is active but its channel is not open (yet): re-check soon
                await _pause(_IDLE_RECHECK / 10)
                continue
        recheck = not await channel.wait(version, _IDLE_RECHECK)
        if recheck:
            cursor.close()  # nothing new for a while: hold no files while idle
        elif loop.time() - sent_at < _CORK and cursor.unread() < limit:
            # In a burst (as Nagle does): gather a fuller chunk rather than send each small read at once.
            await _pause(sent_at + _CORK - loop.time())


async def _pause(seconds: float) -> None:
    await asyncio.sleep(seconds)


async def watch_events(ctx: Context, job: str, after_seq: int, follow: bool, last: int,
                       send: Callable[[EventRow], Awaitable[None]]) -> None:
    """Events with seq > after_seq (or the last `last`), in order, each once; then live when following."""
    if job:
        require_job_id(job)
    position = after_seq
    if not after_seq and (last or follow):
        position = ctx.store.last_event_seq(job, back=last)  # events after it are the last `last`
    ctx.hub.followers += 1
    try:
        while True:
            version = ctx.events.version
            events = ctx.store.events_after(position, job, 500)
            for event in events:
                await send(event)
                position = event.seq
            if events:
                continue
            if not follow or ctx.events.closed:
                return
            await ctx.events.wait(version, _IDLE_RECHECK)
    finally:
        ctx.hub.followers -= 1
