"""The gRPC server on the Unix socket: our services, standard health, reflection.

grpc.aio, because a stalled streaming client pins a thread of the sync server forever
(PITFALLS 12). The socket is bound only after the store lock is held (a second server on the
same path would silently take it over, PITFALLS 10), created under a tight umask and chmodded
before the server starts (PITFALLS 11), in a directory other users cannot write.

gRPC itself listens on a private socket beside the public one (mode 0600 whatever the group);
jobsd accepts on the public socket and relays each connection to it, so that every call's
caller is the uid the kernel reports for its connection (jobsd.peer).
"""
from __future__ import annotations

import grp
import os
import socket
import stat

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from jobsd.api.errors import ErrorInterceptor
from jobsd.api.servicers import DaemonServicer, JobsServicer
from jobsd.folders import make_folder
from jobsd.peer import PeerRelay, backend_path
from jobsd.context import Context
from jobsd_lib.rpc import jobsd_pb2 as pb
from jobsd_lib.rpc import jobsd_pb2_grpc as pb_grpc

__all__ = ["build_server", "prepare_socket_path", "RelayedServer", "SocketError"]

SERVICE_NAMES = tuple(pb.DESCRIPTOR.services_by_name[name].full_name for name in ("Jobs", "Daemon"))


class SocketError(Exception):
    """The socket cannot be placed where asked; the message says why and what to do."""


def prepare_socket_path(path: str) -> None:
    """Create the socket's folder (0700) if needed, refuse an unsafe one, remove stale sockets (the
    public one and gRPC's private one beside it).

    Called with the store lock held, so a socket file already there belongs to a dead daemon.
    """
    folder = os.path.dirname(os.path.abspath(path))
    make_folder(folder, 0o700)  # each missing level 0700, whatever the umask
    info = os.stat(folder)
    if info.st_mode & stat.S_IWOTH:
        raise SocketError(f"socket folder {folder} is writable by other users; put the socket in a private "
                          "folder (for example --socket /run/jobsd/jobsd.sock or under --home)")
    for stale in (path, backend_path(path)):
        if os.path.lexists(stale):
            if not stat.S_ISSOCK(os.lstat(stale).st_mode):
                raise SocketError(f"{stale} exists and is not a socket; refusing to replace it")
            os.unlink(stale)


class RelayedServer:
    """The gRPC server behind its PeerRelay, started and stopped as one (the aio server's start/stop)."""

    def __init__(self, grpc_server, relay: PeerRelay, public: str) -> None:  # noqa: ANN001
        self.grpc, self.relay, self.public = grpc_server, relay, public
        self._inode = os.stat(public).st_ino

    async def start(self) -> None:
        await self.grpc.start()
        await self.relay.start()

    async def stop(self, grace: float | None) -> None:
        """No new connections, then gRPC's stop (calls end within `grace`), then the relayed
        connections; the public socket file goes with it, as gRPC removes its own."""
        if self.relay.server is not None:
            self.relay.server.close()
        await self.grpc.stop(grace)
        await self.relay.stop()
        try:
            if os.stat(self.public).st_ino == self._inode:
                os.unlink(self.public)
        except FileNotFoundError:
            pass


def _bind_public(path: str, socket_group: str | None) -> socket.socket:
    """The public socket, bound under a tight umask and chmodded before anyone can connect (it listens
    only when the relay starts): 0600, or 0660 with `socket_group`."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        sock.bind(path)
    finally:
        os.umask(old_umask)
    if socket_group:
        os.chown(path, -1, grp.getgrnam(socket_group).gr_gid)
        os.chmod(path, 0o660)
    else:
        os.chmod(path, 0o600)
    return sock


def build_server(ctx: Context, socket_path: str, socket_group: str | None = None) -> tuple[RelayedServer, object]:
    server = grpc.aio.server(interceptors=[ErrorInterceptor()], options=[("grpc.so_reuseport", 0)])
    pb_grpc.add_JobsServicer_to_server(JobsServicer(ctx), server)
    pb_grpc.add_DaemonServicer_to_server(DaemonServicer(ctx), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    backend = backend_path(socket_path)
    old_umask = os.umask(0o177)
    try:
        server.add_insecure_port(f"unix:{backend}")
    finally:
        os.umask(old_umask)
    os.chmod(backend, 0o600)  # never the group's: only jobsd's user (and root) may skip the relay
    relay = PeerRelay(_bind_public(socket_path, socket_group), backend)
    return RelayedServer(server, relay, socket_path), health_servicer


async def set_serving(health_servicer, serving: bool) -> None:  # noqa: ANN001
    status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
    for name in ("", *SERVICE_NAMES):
        await health_servicer.set(name, status)
