"""Runs one attempt of a job as a child process group, and stops it.

How it works: `loop.subprocess_exec` with our own protocol, so every pipe read arrives as a
callback with its stream (fd 1 or 2) and goes straight to the OutputWriter, then the run's
Channel is bumped. The child gets its own session (`start_new_session=True`: never
`preexec_fn`, which crashed children beside a gRPC server, PITFALLS 14), stdin from
/dev/null, an explicit environment, and resource limits through a `prlimit` exec wrapper.

Stopping: SIGTERM to the whole group, SIGKILL after kill_grace. After the main process exits
we also stop what is left of its group, and stop waiting for EOF after a short drain: a
grandchild that escaped with setsid may hold the pipe open forever (PITFALLS 20).
"""
from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
from collections.abc import Callable
from dataclasses import dataclass, field

from jobsd import clock
from jobsd_lib.kernel.decisions import AttemptResult
from jobsd.output import STDERR, STDOUT, OutputWriter

__all__ = ["Launch", "Attempt", "start_attempt", "kill_group"]

log = logging.getLogger("jobsd.executor")
_DRAIN_AFTER_EXIT = 1.0  # seconds to wait for EOF once the main process is gone


@dataclass(frozen=True)
class Launch:
    argv: list[str]
    cwd: str
    env: dict[str, str] = field(repr=False)
    timeout: float | None
    kill_grace: float
    memory: int | None = None
    cpu_time: float | None = None
    open_files: int | None = None


def wrap_limits(launch: Launch) -> list[str]:
    """argv with a prlimit wrapper when any limit is set (PITFALLS 22)."""
    limits = []
    if launch.memory:
        limits.append(f"--as={launch.memory}")
    if launch.cpu_time:
        limits.append(f"--cpu={max(int(launch.cpu_time), 1)}")
    if launch.open_files:
        limits.append(f"--nofile={launch.open_files}")
    if not limits:
        return launch.argv
    prlimit = shutil.which("prlimit") or "/usr/bin/prlimit"
    return [prlimit, *limits, "--", *launch.argv]


def resolve_program(argv0: str, cwd: str, path: str) -> str | None:
    """The error message when argv0 cannot be executed, else None (checked before fork for a clear message)."""
    if "/" in argv0:
        target = argv0 if os.path.isabs(argv0) else os.path.join(cwd, argv0)
        if not os.path.exists(target):
            return f"command not found: {argv0}"
        if os.path.isdir(target) or not os.access(target, os.X_OK):
            return f"command is not executable: {argv0}"
        return None
    if shutil.which(argv0, path=path) is None:
        return f"command not found: {argv0!r} is not in PATH ({path})"
    return None


class _Protocol(asyncio.SubprocessProtocol):
    def __init__(self, writer: OutputWriter, on_output: Callable[[], None]) -> None:
        self.writer, self.on_output = writer, on_output
        self.exited = asyncio.get_running_loop().create_future()
        self.pipes_closed = asyncio.get_running_loop().create_future()
        self._open_pipes = 2

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if self.writer.write(STDOUT if fd == 1 else STDERR, data, clock.now_ns()):
            self.on_output()

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        self._open_pipes -= 1
        if self._open_pipes <= 0 and not self.pipes_closed.done():
            self.pipes_closed.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)


class Attempt:
    """A started attempt. `wait()` returns its AttemptResult; `stop(reason)` ends it early."""

    def __init__(self, launch: Launch, transport: asyncio.SubprocessTransport, protocol: _Protocol) -> None:
        self.launch, self.transport, self.protocol = launch, transport, protocol
        self.pid = transport.get_pid()
        self.pgid = self.pid  # new session: the leader's pid is the group id
        self._stop_reason = ""
        self._stopper: asyncio.Task | None = None

    def stop(self, reason: str) -> None:
        """Ask the group to end (SIGTERM, SIGKILL after kill_grace). reason: cancelled|interrupted|timed_out."""
        if not self._stop_reason:
            self._stop_reason = reason
            self._stopper = asyncio.ensure_future(kill_group(self.pgid, self.launch.kill_grace, self.protocol.exited))

    async def wait(self) -> AttemptResult:
        try:
            await asyncio.wait_for(asyncio.shield(self.protocol.exited), self.launch.timeout)
        except asyncio.TimeoutError:
            self.stop("timed_out")
            await self.protocol.exited
        code = self.transport.get_returncode()
        await self._reap_group()
        return AttemptResult(
            exit_code=code if code is not None and code >= 0 else None,
            signal=-code if code is not None and code < 0 else None,
            timed_out=self._stop_reason == "timed_out",
            cancelled=self._stop_reason == "cancelled",
            interrupted=self._stop_reason == "interrupted",
        )

    async def _reap_group(self) -> None:
        """The main process is gone: stop its leftovers, drain the pipes briefly, close."""
        if self._stopper is None and _group_alive(self.pgid):
            self._stopper = asyncio.ensure_future(kill_group(self.pgid, self.launch.kill_grace, None))
        if self._stopper is not None:
            await self._stopper
        try:
            await asyncio.wait_for(asyncio.shield(self.protocol.pipes_closed), _DRAIN_AFTER_EXIT)
        except asyncio.TimeoutError:
            log.warning("pid %s: output pipe still open after exit (a process escaped the group); closing it", self.pid)
        self.transport.close()


async def start_attempt(launch: Launch, writer: OutputWriter, on_output: Callable[[], None]) -> Attempt:
    """Spawn the attempt. Raises OSError when the program cannot be started."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.subprocess_exec(
        lambda: _Protocol(writer, on_output), *wrap_limits(launch),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        cwd=launch.cwd, env=launch.env, start_new_session=True, close_fds=True)
    return Attempt(launch, transport, protocol)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


async def kill_group(pgid: int, grace: float, exited: asyncio.Future | None) -> None:
    """SIGTERM the group; SIGKILL it if anything is left after `grace` seconds."""
    _signal_group(pgid, signal.SIGTERM)
    _signal_group(pgid, signal.SIGCONT)  # a stopped process cannot act on SIGTERM
    deadline = clock.monotonic() + grace
    while clock.monotonic() < deadline and _group_alive(pgid):
        if exited is not None and not exited.done():
            try:
                await asyncio.wait_for(asyncio.shield(exited), min(0.05, max(deadline - clock.monotonic(), 0)))
            except asyncio.TimeoutError:
                pass
        else:
            await asyncio.sleep(0.02)  # polling the group: no event tells us its last member died
    if _group_alive(pgid):
        _signal_group(pgid, signal.SIGKILL)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
