"""Who is calling: the kernel's word for each connection (SO_PEERCRED), carried to every call.

How this works: grpcio never shows a handler its connection's socket (a Unix socket's
`context.peer()` is just "unix:", and grpc's local credentials record no uid), and it cannot serve a
socket we accepted ourselves. So jobsd accepts on the public socket itself (PeerRelay). For each
connection it reads SO_PEERCRED (the uid, gid and pid of the process that called connect(), fixed by
the kernel at that moment), connects to the gRPC server's private socket from a client socket bound
to a fresh random abstract name, and relays the bytes both ways without looking at them. gRPC
reports that name as every call's peer ("unix-abstract:jobsd-peer-<hex>"), and `actor_for` maps it
back to the credentials recorded for it.

Nobody can forge an entry: only the daemon's user (or root) can connect to the private socket (0600,
in the daemon's own socket folder), names are random and never reused, and a call that did not come
through the relay has no entry, so its caller is "unknown". The client's claimed name (metadata
`jobsd-client`) is kept beside the uid as information only.
"""
from __future__ import annotations

import asyncio
import grp
import hashlib
import logging
import os
import pwd
import secrets
import socket
import struct
from dataclasses import dataclass

from jobsd_lib.facts import Actor
from jobsd_lib.paths import check_socket_path

__all__ = ["Peer", "PeerRelay", "actor_for", "backend_path", "group_names"]

log = logging.getLogger(__name__)

NAME_PREFIX = b"\0jobsd-peer-"
PEER_PREFIX = "unix-abstract:jobsd-peer-"  # how grpc core names such a peer (getpeername, abstract)
MAX_CLAIM = 100  # characters of a client's claimed name that are kept
_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


@dataclass(frozen=True)
class Peer:
    """The kernel's credentials of a connection's client, as of its connect()."""

    pid: int
    uid: int
    gid: int
    user: str  # the uid's name on this host, "" when it has none

    @property
    def label(self) -> str:
        """`uid=1000(alice)`, like id(1); `uid=1234` for a uid with no name."""
        return f"uid={self.uid}({self.user})" if self.user else f"uid={self.uid}"


_PEERS: dict[str, Peer] = {}  # grpc peer string -> credentials; one map a process, names are unique


def actor_for(peer: str, claimed: str) -> Actor:
    """The actor of a call whose grpc `context.peer()` is `peer`; `unknown` when it did not come through
    a PeerRelay (a direct connection to the private socket, which only jobsd's user or root can make)."""
    found = _PEERS.get(peer)
    if found is None:
        return Actor("unknown", client=claimed[:MAX_CLAIM])
    return Actor(found.label, found.uid, found.user, claimed[:MAX_CLAIM])


def group_names(user: str) -> list[str]:
    """The names of the groups `user` is in on this host now: its primary group and the group
    database's (as id(1) lists them). Read at each decision, so a change of membership counts at once."""
    try:
        gid = pwd.getpwnam(user).pw_gid
        gids = os.getgrouplist(user, gid)
    except (KeyError, OSError):
        return []
    names = []
    for g in gids:
        try:
            names.append(grp.getgrgid(g).gr_name)
        except KeyError:
            pass
    return names


def backend_path(public: str) -> str:
    """Where gRPC itself listens: a hidden socket beside the public one (`.jobsd.sock.grpc`), or, when
    that would not fit a socket address, `.<8 hex digits of the name's hash>`."""
    folder, name = os.path.split(os.path.abspath(public))
    path = os.path.join(folder, f".{name}.grpc")
    if check_socket_path(path) is None:
        return path
    return os.path.join(folder, "." + hashlib.sha256(os.fsencode(name)).hexdigest()[:8])


def peer_of(sock: socket.socket) -> Peer:
    pid, uid, gid = _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = ""
    return Peer(pid, uid, gid, user)


class _Half(asyncio.Protocol):
    """One side of a relayed connection: what it reads goes to the other side's transport.

    Flow control is the other side's: when this side's transport cannot keep up (a client that
    stopped reading), the other stops reading, so the stall reaches gRPC's own flow control and
    write timeouts as it would on a direct connection.
    """

    def __init__(self, link: _Link) -> None:
        self.link = link
        self.transport: asyncio.Transport | None = None
        self.other: _Half | None = None

    def connection_made(self, transport) -> None:  # noqa: ANN001
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.other.transport.write(data)

    def eof_received(self) -> None:  # HTTP/2 never half-closes: the end of one side ends both
        return None

    def pause_writing(self) -> None:
        if self.other.transport is not None:
            self.other.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.other.transport is not None:
            self.other.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.link.close()


class _Front(_Half):
    """The client's side: its first callback reads SO_PEERCRED, before any byte is relayed."""

    def connection_made(self, transport) -> None:  # noqa: ANN001
        self.link.accepted(transport)


class _Link:
    """A client's connection on the public socket and jobsd's relayed connection to gRPC."""

    def __init__(self, relay: PeerRelay) -> None:
        self.relay = relay
        self.front, self.back = _Front(self), _Half(self)
        self.front.other, self.back.other = self.back, self.front
        self.key = ""
        self.task: asyncio.Task | None = None

    def accepted(self, transport: asyncio.Transport) -> None:
        """Read the client's credentials and connect it on; nothing is read from it until then."""
        self.front.transport = transport
        transport.pause_reading()
        try:
            peer = peer_of(transport.get_extra_info("socket"))
        except OSError as exc:
            log.warning("refused a connection whose credentials cannot be read: %s", exc)
            transport.abort()
            return
        self.task = asyncio.ensure_future(self._connect(peer))

    async def _connect(self, peer: Peer) -> None:
        loop = asyncio.get_running_loop()
        sock = None
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # may fail too: out of descriptors
            sock.setblocking(False)
            name = _bind_fresh(sock)
            self.key = PEER_PREFIX + name[len(NAME_PREFIX):].decode()
            _PEERS[self.key] = peer
            await loop.sock_connect(sock, self.relay.backend)
            await loop.create_unix_connection(lambda: self.back, sock=sock)
        except (OSError, asyncio.CancelledError) as exc:
            if sock is not None:
                sock.close()
            if not isinstance(exc, asyncio.CancelledError):
                log.warning("could not relay a connection of %s to the gRPC server: %s", peer.label, exc)
            self.close()
            return
        if self.front.transport.is_closing():
            self.close()
        else:
            self.front.transport.resume_reading()

    def close(self) -> None:
        """End both sides (each flushes what it still holds) and forget the name."""
        _PEERS.pop(self.key, None)
        self.relay.links.discard(self)
        for half in (self.front, self.back):
            if half.transport is not None and not half.transport.is_closing():
                half.transport.close()


def _bind_fresh(sock: socket.socket) -> bytes:
    """Bind to a random abstract name no other socket holds (another user may hold a name: try again)."""
    while True:
        name = NAME_PREFIX + secrets.token_hex(8).encode()
        try:
            sock.bind(name)
            return name
        except OSError as exc:
            if exc.errno != 98:  # EADDRINUSE
                raise


class PeerRelay:
    """Serves the public socket: every connection relayed to `backend` with its credentials known."""

    def __init__(self, listener: socket.socket, backend: str) -> None:
        self.listener = listener  # bound and chmodded by the caller, not yet listening
        self.backend = backend
        self.links: set[_Link] = set()
        self.server: asyncio.AbstractServer | None = None

    def _accept(self) -> _Half:
        link = _Link(self)
        self.links.add(link)
        return link.front

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_unix_server(self._accept, sock=self.listener,
                                                    backlog=socket.SOMAXCONN)  # as gRPC listens

    async def stop(self) -> None:
        """Stop accepting and end every relayed connection (gRPC's own stop ends the calls first)."""
        if self.server is not None:
            self.server.close()
        for link in list(self.links):
            if link.task is not None:
                link.task.cancel()
            link.close()
