"""`jobsctl` entry point.

Start-up and shutdown are most of a short command's wall time (bench/cli_latency.py), so this
module trims both without changing what a command does:
- the cyclic garbage collector is off while the command runs: start-up imports allocate ~40,000
  tracked objects, and each collection they trigger walks them (~6 ms in all); the few cycles a
  short command leaves go when the process ends. The long-lived commands (streams) turn it back
  on (`Connection.stream`);
- `ssl` is never imported: jobsctl speaks gRPC over a Unix socket, never TLS, yet grpcio's import
  brings in asyncio, which imports `ssl` (OpenSSL's set-up, ~5 ms) in case a transport wants it;
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

__all__ = ["main"]


def main() -> None:
    gc.disable()
    _without_tls()
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
