"""`jobsctl` entry point.

Start-up and shutdown are most of a short command's wall time (bench/cli_latency.py), so this
module trims both without changing what a command does:
- the cyclic garbage collector is off while the command runs: start-up imports allocate ~40,000
  tracked objects, and each collection they trigger walks them (~6 ms in all); the few cycles a
  short command leaves go when the process ends. The long-lived commands (streams) turn it back
  on (`Connection.stream`);
- `ssl` is never imported: jobsctl speaks gRPC over a Unix socket, never TLS, yet grpcio's import
  brings in asyncio, which imports `ssl` (OpenSSL's set-up, ~5 ms) in case a transport wants it;
- three modules that grpcio and protobuf import but a command never uses are deferred
  (`_DEFERRED`, ~20 ms of a ~95 ms command): `import NAME` gets a stand-in, and the first
  attribute anyone reads from it imports the real module. So they cost nothing unless used, and
  work as before when they are;
- once the command has exited, the process ends with `os._exit` after the atexit handlers and a
  flush of stdout/stderr: tearing down the interpreter (typer, grpc, protobuf modules, the gRPC
  core) costs ~25 ms and has no effect anyone can see. Whenever a plain exit could differ (an
  uncaught exception, a flush that fails, a non-integer exit code, a non-daemon thread still
  running) the normal interpreter exit runs instead.
"""
from __future__ import annotations

import gc
import os
import sys
import types

__all__ = ["main"]


def main() -> None:
    gc.disable()
    _without_tls()
    for name in _DEFERRED:
        _defer(name)
    from jobsctl.cli import app

    try:
        app(prog_name="jobsctl")
    except SystemExit as exc:
        _exit_now(exc)
        raise


def _without_tls() -> None:
    """Make `import ssl` fail the way asyncio (and the rest of the standard library) expect on a
    Python built without ssl: they set `ssl = None` and carry on. Only in the jobsctl process,
    and only when nothing has imported ssl yet."""
    sys.modules.setdefault("ssl", None)  # type: ignore[arg-type]


# What the sync gRPC client never touches, with what each costs at start-up on the bench machine:
# grpcio imports its asyncio API (grpc.aio, ~6.5 ms) and asyncio itself (~9 ms) for gRPC's aio
# flavour, which only the daemon uses; protobuf's descriptor_pool imports the pure-Python message
# implementation (and text_format with it, ~7 ms) for the case where the C one (upb) is missing.
_DEFERRED = ("asyncio", "grpc.aio", "google.protobuf.internal.python_message")


class _Deferred(types.ModuleType):
    """A stand-in for a module that has not been imported yet. It sits in sys.modules, so
    `import NAME` and `from PACKAGE import NAME` return it at once. The first attribute read
    that it does not have (anything but __name__, __doc__, __spec__, __loader__, __package__)
    imports the real module, which becomes sys.modules[NAME]; that read and every later one
    through the stand-in are answered by the real module."""

    def __getattr__(self, attr: str):  # noqa: ANN204 - whatever the real module holds
        real = self.__dict__.get("_jobsctl_real")
        if real is None:
            if sys.modules.get(self.__name__) is self:
                del sys.modules[self.__name__]
            __import__(self.__name__)
            real = sys.modules[self.__name__]
            self.__dict__["_jobsctl_real"] = real
        return getattr(real, attr)


def _defer(name: str) -> None:
    """Put a stand-in for `name` in sys.modules unless the real module is already there."""
    if name not in sys.modules:
        sys.modules[name] = _Deferred(name)


def _exit_now(exc: SystemExit) -> None:
    """End the process with exc's status the way the interpreter would, minus its teardown; return
    (so the caller re-raises) when that is not certain to look the same."""
    code = 0 if exc.code is None else exc.code
    if not isinstance(code, int) or not 0 <= code <= 255 or _other_threads():
        return
    import atexit

    try:
        atexit._run_exitfuncs()  # noqa: SLF001 - what a normal exit runs first
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            if stream is not None:
                stream.flush()
    except BaseException:  # noqa: BLE001 - the normal exit reports it exactly as before
        return
    os._exit(code)


def _other_threads() -> bool:
    """Is a non-daemon thread still running (a normal exit would wait for it)?"""
    threading = sys.modules.get("threading")
    if threading is None:
        return False
    main_thread = threading.main_thread()
    return any(t is not main_thread and not t.daemon for t in threading.enumerate())


if __name__ == "__main__":
    main()
