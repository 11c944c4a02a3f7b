"""The channel to jobsd and the one place RpcErrors become JobsdErrors with a code, for unary
calls and streams alike: nothing outside this module sees a grpc error.

grpc is imported here only, and only when a command talks to the daemon.
"""
from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator

from jobsd_lib.errors import ErrorCode, JobsdError, Unavailable, error_for_code
from jobsd_lib.paths import check_socket_path, default_socket

__all__ = ["Connection", "Stream", "resolve_socket"]

UNARY_TIMEOUT = 30.0
# gRPC refuses answers over 4 MiB by default; GetMetrics with thousands of jobs and their run-time
# histograms is larger (10,000 jobs, each with a histogram: ~13 MB). The daemon sends any size.
CHANNEL_OPTIONS = (("grpc.max_receive_message_length", 64 * 1024 * 1024),)


def resolve_socket(option: str | None) -> str:
    return option or default_socket(os.environ, os.path.expanduser("~"))


def _unreachable(path: str, why: str) -> Unavailable:
    return Unavailable(f"cannot reach jobsd at {path}: {why}. Is the daemon running? "
                       "(start it with `jobsd --home DIR`, or pass --socket / set JOBSD_SOCKET)", socket=path)


def _denied(path: str, info: os.stat_result | None) -> Unavailable:
    """The socket (or a folder on its way) does not let this user in: say who may connect, not
    "is the daemon running?"."""
    if info is None:
        return Unavailable(f"cannot reach jobsd at {path}: permission denied on a folder on the way to the socket "
                           f"(uid {os.getuid()} may not search it)", socket=path)
    import grp
    import pwd

    try:
        owner = pwd.getpwuid(info.st_uid).pw_name
    except KeyError:
        owner = str(info.st_uid)
    try:
        group = grp.getgrgid(info.st_gid).gr_name
    except KeyError:
        group = str(info.st_gid)
    return Unavailable(f"cannot reach jobsd at {path}: permission denied. The socket is {owner}:{group}, mode "
                       f"{stat.S_IMODE(info.st_mode):04o}: only {owner} and members of group {group} (if the mode "
                       f"lets the group write) may connect. Run as one of them, or start jobsd with "
                       f"--socket-group GROUP for a group of yours (docs/operations.md)", socket=path)


class Connection:
    def __init__(self, socket_path: str) -> None:
        self.path = socket_path
        problem = check_socket_path(socket_path)
        if problem:
            raise _unreachable(socket_path, problem)
        try:
            info = os.stat(socket_path)
        except FileNotFoundError:
            raise _unreachable(socket_path, "no such socket") from None
        except PermissionError:
            raise _denied(socket_path, None) from None
        if not stat.S_ISSOCK(info.st_mode):
            raise _unreachable(socket_path, "that path is not a socket")
        if not os.access(socket_path, os.W_OK):  # connect(2) needs write permission on the socket
            raise _denied(socket_path, info)
        import grpc

        from jobsd_lib.rpc import jobsd_pb2_grpc

        self._grpc = grpc
        self.channel = grpc.insecure_channel(f"unix:{socket_path}", options=CHANNEL_OPTIONS)
        self.jobs = jobsd_pb2_grpc.JobsStub(self.channel)
        self.daemon = jobsd_pb2_grpc.DaemonStub(self.channel)
        self.metadata = (("jobsd-client", f"{_user()} uid={os.getuid()} jobsctl"),)

    def call(self, method, request, timeout: float | None = UNARY_TIMEOUT):  # noqa: ANN001, ANN201
        """A unary call; RpcErrors come back as JobsdError."""
        try:
            return method(request, timeout=timeout, metadata=self.metadata)
        except self._grpc.RpcError as err:
            raise self._translate(err) from None

    def stream(self, method, request) -> Stream:  # noqa: ANN001
        """A server stream as an iterator; errors come back as JobsdError, as a call's do."""
        import gc

        gc.enable()  # jobsctl.__main__ turns it off for start-up; a stream may run for days
        return Stream(method(request, metadata=self.metadata), self._grpc.RpcError, self._translate)

    def _translate(self, err) -> JobsdError:  # noqa: ANN001
        code = err.code()
        if code == self._grpc.StatusCode.UNAVAILABLE:
            return _unreachable(self.path, err.details() or "unavailable")
        if code == self._grpc.StatusCode.CANCELLED:
            return JobsdError("the request was cancelled")
        from google.rpc import error_details_pb2

        status = _rich_status(err)
        for detail in status.details if status else ():
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info) and info.domain == "jobsd":
                return error_for_code(info.reason, status.message, dict(info.metadata))
        return error_for_code(ErrorCode.INTERNAL.value, f"{code.name}: {err.details()}")

    def close(self) -> None:
        self.channel.close()


class Stream:
    """A server stream's messages, in order. Iterating raises JobsdError where gRPC would raise
    an RpcError (the daemon's refusal, or the connection lost); cancel() ends the call."""

    def __init__(self, call, rpc_error: type[Exception], translate: Callable[[Exception], JobsdError]) -> None:  # noqa: ANN001
        self._call, self._rpc_error, self._translate = call, rpc_error, translate

    def __iter__(self) -> Iterator:
        try:
            yield from self._call
        except self._rpc_error as err:
            raise self._translate(err) from None

    def cancel(self) -> None:
        self._call.cancel()


def _rich_status(err):  # noqa: ANN001, ANN202 - a grpc.Call; a google.rpc.Status or None
    """The google.rpc.Status the daemon sent in the call's trailers, if its code is the call's.

    What `grpc_status.rpc_status.from_call` reads, without importing grpc_status: its import
    loads grpc.aio and asyncio (~15 ms of a refused command's time), which jobsctl never uses."""
    from google.rpc import status_pb2

    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            return status if status.code == err.code().value[0] else None
    return None


def _user() -> str:
    """getpass.getuser(), without importing getpass (and termios with it: ~0.5 ms)."""
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        user = os.environ.get(name)
        if user:
            return user
    try:
        import pwd

        return pwd.getpwuid(os.getuid())[0]
    except Exception:  # noqa: BLE001 - no user name is fine: the uid is sent too
        return "?"
