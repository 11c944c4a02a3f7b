"""The gRPC server on the Unix socket: our services, standard health, reflection.

grpc.aio, because a stalled streaming client pins a thread of the sync server forever
(PITFALLS 12). The socket is bound only after the store lock is held (a second server on the
same path would silently take it over, PITFALLS 10), created under a tight umask and chmodded
before the server starts (PITFALLS 11), in a directory other users cannot write.
"""
from __future__ import annotations

import grp
import os
import stat

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from jobsd.api.errors import ErrorInterceptor
from jobsd.api.servicers import DaemonServicer, JobsServicer
from jobsd.service import Service
from jobsd_lib.rpc import jobsd_pb2 as pb
from jobsd_lib.rpc import jobsd_pb2_grpc as pb_grpc

__all__ = ["build_server", "prepare_socket_path", "SocketError"]

SERVICE_NAMES = tuple(pb.DESCRIPTOR.services_by_name[name].full_name for name in ("Jobs", "Daemon"))


class SocketError(Exception):
    """The socket cannot be placed where asked; the message says why and what to do."""


def prepare_socket_path(path: str) -> None:
    """Create the socket's folder (0700) if needed, refuse an unsafe one, remove a stale socket.

    Called with the store lock held, so a socket file already there belongs to a dead daemon.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, mode=0o700, exist_ok=True)
    info = os.stat(folder)
    if info.st_mode & stat.S_IWOTH:
        raise SocketError(f"socket folder {folder} is writable by other users; put the socket in a private "
                          "folder (for example --socket /run/jobsd/jobsd.sock or under --home)")
    if os.path.lexists(path):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise SocketError(f"{path} exists and is not a socket; refusing to replace it")
        os.unlink(path)


def build_server(service: Service, socket_path: str, health_fn, socket_group: str | None = None):  # noqa: ANN001, ANN201
    server = grpc.aio.server(interceptors=[ErrorInterceptor()], options=[("grpc.so_reuseport", 0)])
    pb_grpc.add_JobsServicer_to_server(JobsServicer(service), server)
    pb_grpc.add_DaemonServicer_to_server(DaemonServicer(service, health_fn), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    old_umask = os.umask(0o177)
    try:
        server.add_insecure_port(f"unix:{socket_path}")
    finally:
        os.umask(old_umask)
    if socket_group:
        os.chown(socket_path, -1, grp.getgrnam(socket_group).gr_gid)
        os.chmod(socket_path, 0o660)
    else:
        os.chmod(socket_path, 0o600)
    return server, health_servicer


async def set_serving(health_servicer, serving: bool) -> None:  # noqa: ANN001
    status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
    for name in ("", *SERVICE_NAMES):
        await health_servicer.set(name, status)
