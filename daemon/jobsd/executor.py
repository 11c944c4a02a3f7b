"""Runs one attempt of a job as a child process group, and stops it.

How it works: `loop.subprocess_exec` with our own protocol, so every pipe read arrives as a
callback with its stream (fd 1 or 2) and goes straight to the OutputWriter, then the run's
Channel is bumped. The child gets its own session (`start_new_session=True`: never
`preexec_fn`, which crashed children beside a gRPC server, PITFALLS 14), stdin from
/dev/null, an explicit environment, and resource limits through a `prlimit` exec wrapper.

Stopping: nothing of an attempt outlives it, whether it timed out, was stopped or exited on its
own (systemd's KillMode=control-group, without a cgroup). A process that calls setsid leaves
the group, so the attempt's environment also carries JOBSD_INVOCATION_ID, a random id per
attempt that descendants inherit (a ProcessTree): `kill_group` sends SIGTERM to the group and
to every process whose /proc/<pid>/environ holds that id, waits up to kill_grace, then SIGKILLs
whatever is left and sweeps again until none is found. Reading every environ costs ~3 us a
process (and ~10 us inside the busy daemon), so a sweep reads only pids handed out since the
attempt started (see ProcessTree). A process that clears its environment and leaves the group
still escapes; its hold on the output pipe is cut by the short drain after the end (PITFALLS 20).
"""
from __future__ import annotations

import asyncio
import fcntl
import functools
import logging
import os
import secrets
import shutil
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

from jobsd import clock
from jobsd_lib.identity import Identity
from jobsd_lib.kernel.decisions import AttemptResult
from jobsd.output import STDERR, STDOUT, OutputWriter
from jobsd.processes import (MARKER_VARIABLE, ProcessTree, _forks, attempt_tree, environ_has,  # noqa: F401
                             kill_group)

__all__ = ["Launch", "Attempt", "ProcessTree", "attempt_tree", "environ_has", "start_attempt", "kill_group"]
# ProcessTree, attempt_tree, environ_has and kill_group live in processes.py; named here too for callers

log = logging.getLogger("jobsd.executor")
_DRAIN_AFTER_EXIT = 1.0  # seconds to wait for EOF once the main process is gone
_PIPE_FULL = 64 * 1024  # a read this big found the pipe full (Linux's default pipe buffer)
PIPE_GROWN = 1 << 20  # a busy output pipe's buffer and read size (Linux's default pipe-max-size)
MAX_GROWN_PIPES = 16  # at most 16 MiB of pipe buffers at once (the user's soft limit is 64 MiB)


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
    program: str = ""  # the file argv[0] names (resolve_program); "": the child searches PATH
    identity: Identity | None = None  # switch to this user, group and groups in the child (None: stay jobsd's)
    umask: int | None = None


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


def resolve_program(argv0: str, cwd: str, path: str) -> tuple[str, str | None]:
    """(the file argv0 names, "" when it cannot be told; None) or ("", the error message when argv0
    cannot be executed). Checked before the spawn for a clear message, and the file is what the
    child then executes: without it, the child tries argv0 in every PATH folder in turn (`true`
    took 8 failed execve calls here, all while the daemon waits on vfork)."""
    if "/" in argv0:
        target = argv0 if os.path.isabs(argv0) else os.path.join(cwd, argv0)
        if not os.path.exists(target):
            return "", f"command not found: {argv0}"
        if os.path.isdir(target) or not os.access(target, os.X_OK):
            return "", f"command is not executable: {argv0}"
        return target, None
    found = shutil.which(argv0, path=path)
    if found is None:
        return "", f"command not found: {argv0!r} is not in PATH ({path})"
    return (found if os.path.isabs(found) else ""), None  # a relative PATH entry is the child's cwd's


class _Protocol(asyncio.SubprocessProtocol):
    grown = 0  # output pipes grown to PIPE_GROWN, all attempts together

    def __init__(self, writer: OutputWriter, on_output: Callable[[], None]) -> None:
        self.writer, self.on_output = writer, on_output
        self.exited = asyncio.get_running_loop().create_future()
        self.pipes_closed = asyncio.get_running_loop().create_future()
        self._open_pipes = 2
        self._transport: asyncio.SubprocessTransport | None = None
        self._tried: set[int] = set()  # fds whose pipe we tried to grow
        self._grown: set[int] = set()  # fds whose pipe we grew (counted in `grown`)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if self.writer.write(STDOUT if fd == 1 else STDERR, data, clock.now_ns()):
            self.on_output()
        if len(data) >= _PIPE_FULL and fd not in self._tried:
            self._grow(fd)

    def _grow(self, fd: int) -> None:
        """The job fills its pipe faster than we read it: give the pipe a 1 MiB buffer and read it
        1 MiB at a time. The job then writes 16 times fewer times into a full pipe, and its output
        is stored (and sent to followers) in up to 16 times fewer, bigger chunks: a job writing
        as fast as it can runs at the speed it has writing to a file. Quiet pipes stay at 64 KiB;
        at most MAX_GROWN_PIPES are grown at once (the kernel counts pipe buffers per user, and past
        its soft limit gives that user's new pipes a small buffer)."""
        self._tried.add(fd)
        pipe = self._transport.get_pipe_transport(fd) if self._transport else None
        if pipe is None or _Protocol.grown >= MAX_GROWN_PIPES:
            return
        try:
            fcntl.fcntl(pipe.get_extra_info("pipe").fileno(), fcntl.F_SETPIPE_SZ, PIPE_GROWN)
        except (OSError, AttributeError):  # EPERM past the user's pipe-buffer limit: keep 64 KiB
            return
        pipe.max_size = PIPE_GROWN  # asyncio's read size for this pipe (256 KiB by default)
        _Protocol.grown += 1
        self._grown.add(fd)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd in self._grown:
            self._grown.discard(fd)
            _Protocol.grown -= 1
        self._open_pipes -= 1
        if self._open_pipes <= 0 and not self.pipes_closed.done():
            self.pipes_closed.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)


class Attempt:
    """A started attempt. `wait()` returns its AttemptResult; `stop(reason)` ends it early."""

    def __init__(self, launch: Launch, transport: asyncio.SubprocessTransport, protocol: _Protocol,
                 tree: ProcessTree | None = None) -> None:
        self.launch, self.transport, self.protocol = launch, transport, protocol
        self.pid = transport.get_pid()
        self.pgid = self.pid  # new session: the leader's pid is the group id
        self.tree = tree  # every process of the attempt, in the group or not
        self._stop_reason = ""
        self._stopper: asyncio.Task | None = None

    @property
    def invocation_id(self) -> str:
        """The attempt's JOBSD_INVOCATION_ID (stored, so a restart can find what a dead daemon left)."""
        return self.tree.marker.partition(b"=")[2].decode() if self.tree else ""

    def stop(self, reason: str) -> None:
        """Ask the attempt to end: SIGTERM to its group and escaped descendants, SIGKILL after kill_grace.

        reason: cancelled|interrupted|timed_out. The first call wins; `wait()` returns once all is gone."""
        if not self._stop_reason:
            self._stop_reason = reason
            self._stopper = asyncio.ensure_future(self._kill(self.protocol.exited))

    async def _kill(self, exited: asyncio.Future | None) -> None:
        label = f"run {self.launch.env.get('JOBSD_RUN', '?')} attempt {self.launch.env.get('JOBSD_ATTEMPT', '?')}"
        await kill_group(self.pgid, self.launch.kill_grace, exited, tree=self.tree, label=label)

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
        """The main process is gone: stop its leftovers (group and escaped), drain the pipes briefly, close."""
        if self._stopper is None:
            self._stopper = asyncio.ensure_future(self._kill(None))
        await self._stopper
        try:
            await asyncio.wait_for(asyncio.shield(self.protocol.pipes_closed), _DRAIN_AFTER_EXIT)
        except asyncio.TimeoutError:
            log.warning("pid %s: output pipe still open after the end (held by a process that left the group and "
                        "cleared its environment); closing it", self.pid)
        self.transport.close()


_watched_loop: asyncio.AbstractEventLoop | None = None


def _watch_children_with_pidfds(loop: asyncio.AbstractEventLoop) -> None:
    """On Python 3.11, wait for children through pidfds on the loop instead of asyncio's default
    ThreadedChildWatcher, which starts (and waits for) one thread per child: ~1 ms of the
    loop's time per run. Python 3.12+ picks pidfds itself where the kernel has them."""
    global _watched_loop
    if _watched_loop is loop or sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open"):
        return
    _watched_loop = loop
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            os.close(os.pidfd_open(os.getpid()))  # the kernel (or a seccomp filter) may refuse pidfds
        except OSError:
            return
        watcher = asyncio.PidfdChildWatcher()
        watcher.attach_loop(loop)
        asyncio.set_child_watcher(watcher)


def as_user(identity: Identity | None, argv: list[str]) -> list[str]:
    """argv behind an exec wrapper that becomes `identity`'s user, group and groups (argv as it is for
    None). For a job's attempts (start_attempt) and its own notify command.

    Why a wrapper and not Popen's user=/group=/extra_groups= (which would switch in CPython's C code
    between fork and exec, also safe beside gRPC's threads): with any of those, _posixsubprocess
    cannot use vfork and forks the whole daemon, page tables and all, on the event loop's thread:
    RunJob -> exec took 1.70x as long (bench/run_as.py). The vfork'd child execs the wrapper instead,
    which switches and execs the job: one exec more. The wrapper is our own `run-as` (native/run_as.c,
    built by `make install`) where it is built, else util-linux's setpriv, which does the same for
    ~1.2 ms more per spawn (1.28x instead of ~1.05x). The umask needs no wrapper (Popen's umask= keeps
    vfork)."""
    if identity is None or os.geteuid() != 0:  # not root: the spec may name only jobsd's own user (catalog)
        return argv
    helper = run_as_helper()
    if helper:
        groups = ",".join(map(str, identity.groups)) or "-"
        return [helper, str(identity.uid), str(identity.gid), groups, "--", *argv]
    groups_opt = ["--groups", ",".join(map(str, identity.groups))] if identity.groups else ["--clear-groups"]
    return [_setpriv(), f"--reuid={identity.uid}", f"--regid={identity.gid}", *groups_opt, "--", *argv]


RUN_AS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "native", "run-as")


@functools.cache
def run_as_helper() -> str | None:
    """The built `run-as` helper, or None (then setpriv). Looked up once: building it while jobsd
    runs takes effect at the next start."""
    if os.access(RUN_AS, os.X_OK) and _safe(RUN_AS):
        return RUN_AS
    log.info("%s is not built: jobs with a user run through setpriv, ~1 ms later each "
             "(build it: docs/operations.md, 'Running jobs as other users')", RUN_AS)
    return None


def _safe(path: str) -> bool:
    """A program jobsd execs as root must be as safe as a spec file: owned by root or jobsd's own
    user, writable by no one else."""
    info = os.stat(path)
    if info.st_uid in (0, os.geteuid()) and not info.st_mode & 0o022:
        return True
    log.warning("%s is owned by uid %d or writable by others: not used (jobs with a user go through setpriv)",
                path, info.st_uid)
    return False


@functools.cache
def _setpriv() -> str:
    """Looked up once, not on the loop at every attempt (a PATH walk of stat calls)."""
    return shutil.which("setpriv") or "/usr/bin/setpriv"


async def start_attempt(launch: Launch, writer: OutputWriter, on_output: Callable[[], None]) -> Attempt:
    """Spawn the attempt. Raises OSError when the program cannot be started."""
    loop = asyncio.get_running_loop()
    _watch_children_with_pidfds(loop)
    invocation = secrets.token_hex(16)
    argv = as_user(launch.identity, wrap_limits(launch))
    executable = launch.program if launch.program and argv[0] == launch.argv[0] else None  # not a wrapper's
    transport, protocol = await loop.subprocess_exec(
        lambda: _Protocol(writer, on_output), *argv, executable=executable,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        cwd=launch.cwd, env={**launch.env, MARKER_VARIABLE: invocation}, start_new_session=True, close_fds=True,
        umask=-1 if launch.umask is None else launch.umask)
    tree = ProcessTree(f"{MARKER_VARIABLE}={invocation}".encode(), transport.get_pid(), _forks())
    return Attempt(launch, transport, protocol, tree)


