"""The systemd notify protocol, spoken directly (stdlib only, no python-systemd).

How this works: systemd passes the address of its notification socket in ``$NOTIFY_SOCKET``.
Every message is one ``AF_UNIX``/``SOCK_DGRAM`` datagram of newline-separated ``KEY=VALUE``
assignments (``READY=1``, ``STATUS=...``). A leading ``@`` in the address names a socket in the
Linux abstract namespace (the ``@`` stands for a NUL byte). systemd learns the sender's pid from
the kernel (it turns ``SO_PASSCRED`` on for its end), so a plain ``sendto`` is enough; with
``NotifyAccess=main`` only datagrams from the main process count.

Each message opens its own close-on-exec socket, sends and closes it, as ``sd_notify(3)`` does:
nothing is kept open for a child process to inherit, and a watchdog thread and the main thread
never share a descriptor. Sending never raises into the caller: a daemon must not die because
its supervisor went away (the first failure is logged at WARNING, later ones at DEBUG, so a
watchdog loop cannot flood the journal).

The watchdog *loop* belongs to the daemon, which pings only while its scheduler and server are
healthy; this module only tells it the interval (``Notifier.watchdog_interval``) and sends the
ping. Job processes never inherit ``NOTIFY_SOCKET``, ``WATCHDOG_*`` or ``LISTEN_*``: their
environment is built from a short list of names (jobsd_lib.kernel.environment; PITFALLS 21, 24).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Mapping

__all__ = ["Notifier"]

log = logging.getLogger("jobsd.notify")

class Notifier:
    """Sends sd_notify messages to ``$NOTIFY_SOCKET``.

    A no-op (``enabled`` is False) when ``NOTIFY_SOCKET`` is unset or empty, or names an address
    this module cannot use (only absolute paths and ``@abstract`` names are supported). No method
    ever raises because of a send error. Safe to call from several threads.
    """

    #: Seconds a send may block when systemd's receive queue is full, before it is dropped.
    send_timeout: float = 2.0

    def __init__(
        self,
        address: str | None,
        *,
        pid: int | None = None,
        watchdog_usec: int | None = None,
    ) -> None:
        """``address`` is the value of ``NOTIFY_SOCKET`` (None: disabled); ``pid`` the pid sent
        as ``MAINPID=`` with ``ready()`` (default: ours); ``watchdog_usec`` the watchdog timeout
        already checked against ``WATCHDOG_PID`` (None: no watchdog). Prefer ``from_environ``."""
        self._address = _socket_address(address)
        self.pid = os.getpid() if pid is None else pid
        self.enabled = self._address is not None
        self._watchdog_usec = watchdog_usec if self.enabled else None
        self._lock = threading.Lock()
        self._failed_before = False

    @classmethod
    def from_environ(
        cls, environ: Mapping[str, str] | None = None, pid: int | None = None
    ) -> Notifier:
        """Build a notifier from ``environ`` (default ``os.environ``) for process ``pid``
        (default: ours). ``environ`` is only read."""
        env = os.environ if environ is None else environ
        pid = os.getpid() if pid is None else pid
        return cls(env.get("NOTIFY_SOCKET"), pid=pid, watchdog_usec=_watchdog_usec(env, pid))

    def __repr__(self) -> str:
        return (
            f"Notifier(enabled={self.enabled}, address={self._address!r}, "
            f"watchdog_interval={self.watchdog_interval})"
        )

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between watchdog pings: half of ``WATCHDOG_USEC``, as systemd recommends.

        None when notifications are disabled, ``WATCHDOG_USEC`` is unset or invalid, or
        ``WATCHDOG_PID`` is set to another process's pid (the watchdog is not ours to feed).
        """
        if self._watchdog_usec is None:
            return None
        return self._watchdog_usec / 2 / 1_000_000

    def ready(self, status: str = "") -> None:
        """``READY=1`` (+ ``STATUS=``) + ``MAINPID=``: start-up (or a reload) is complete.
        Send it only once the lock, store, scheduler and socket are all up."""
        self.send("READY=1", *_status_field(status), f"MAINPID={self.pid}")

    def stopping(self, status: str = "") -> None:
        """``STOPPING=1`` (+ ``STATUS=``): shutdown has begun (send it on SIGTERM)."""
        self.send("STOPPING=1", *_status_field(status))

    def reloading(self, monotonic_usec: int) -> None:
        """``RELOADING=1`` + ``MONOTONIC_USEC=``: a reload has begun; follow it with ``ready()``
        when the reload is done. ``monotonic_usec`` is ``CLOCK_MONOTONIC`` in microseconds
        (``time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000``), passed in so this module does
        not read the clock. systemd >= 253 uses it to match the reload; older ones ignore it."""
        self.send("RELOADING=1", f"MONOTONIC_USEC={int(monotonic_usec)}")

    def status(self, text: str) -> None:
        """``STATUS=text``: one line shown by ``systemctl status`` (newlines become spaces)."""
        self.send(*_status_field(text, always=True))

    def watchdog(self) -> None:
        """``WATCHDOG=1``: keep-alive ping. Call every ``watchdog_interval`` while healthy."""
        self.send("WATCHDOG=1")

    def send(self, *fields: str) -> bool:
        """Send ``fields`` as one datagram, joined by newlines. Returns True when the datagram
        was handed to the kernel, False when disabled or on error (logged, never raised)."""
        if self._address is None or not fields:
            return False
        data = "\n".join(fields).encode("utf-8", "surrogateescape")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.settimeout(self.send_timeout)
                sock.sendto(data, self._address)
        except OSError as exc:
            self._log_failure(fields, exc)
            return False
        return True

    def _log_failure(self, fields: tuple[str, ...], exc: OSError) -> None:
        with self._lock:
            first, self._failed_before = not self._failed_before, True
        level = logging.WARNING if first else logging.DEBUG
        log.log(level, "sd_notify %s to %r failed: %s", fields[0], self._display_address, exc)

    @property
    def _display_address(self) -> str | None:
        if self._address is None:
            return None
        return "@" + self._address[1:] if self._address.startswith("\0") else self._address


def _socket_address(value: str | None) -> str | None:
    """Map a ``NOTIFY_SOCKET`` value to a ``sendto`` address, or None if unusable."""
    if not value:
        return None
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    # e.g. "vsock:..." (systemd >= 254, for VMs): not something a host daemon is given.
    log.warning("NOTIFY_SOCKET=%r is not a path or @abstract name; notifications disabled", value)
    return None


def _watchdog_usec(environ: Mapping[str, str], pid: int) -> int | None:
    """``WATCHDOG_USEC`` if it is a positive integer meant for ``pid``, else None."""
    raw_usec = environ.get("WATCHDOG_USEC")
    if not raw_usec:
        return None
    raw_pid = environ.get("WATCHDOG_PID")
    try:
        usec = int(raw_usec)
        if raw_pid and int(raw_pid) != pid:
            return None
    except ValueError:
        log.debug("ignoring WATCHDOG_USEC=%r WATCHDOG_PID=%r: not integers", raw_usec, raw_pid)
        return None
    return usec if usec > 0 else None


def _status_field(text: str, *, always: bool = False) -> tuple[str, ...]:
    """``("STATUS=text",)`` with newlines flattened (a newline would start a new assignment);
    ``()`` for empty text unless ``always``."""
    if not text and not always:
        return ()
    return ("STATUS=" + " ".join(text.splitlines()),)
