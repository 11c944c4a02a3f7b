"""Which jobsd of a shared (PostgreSQL) store fires cron windows (DESIGN 12): the holder of the
store's `scheduler` lease, renewed with every heartbeat (5 s) for LEASE_TTL seconds by the
database's clock. Only the holder's cron timer runs; every other jobsd keeps its timer paused.

A holder whose renewals fail steps down (pauses its timer) before its lease can have expired by its
own monotonic clock: LEASE_TTL - 1 s after the last renewal that committed, so two leaders never
fire at once by the lease alone (the window fence of DESIGN 12 makes that safe in any case). A
clean stop drops the lease, so another host can take it at its next heartbeat. A SQLite store has
one jobsd: it always leads and this module is not used.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

from jobsd.clock import Clock
from jobsd.store import Store, StoreUnwritable
from jobsd.store_hosts import HOST_LEASE, ThisHost
from jobsd.timer import Timer

__all__ = ["Leadership", "LEASE_TTL"]

log = logging.getLogger("jobsd.leader")

LEASE_TTL = HOST_LEASE  # seconds: three heartbeats, as a host's name and a heartbeat's freshness


class Leadership:
    def __init__(self, store: Store, timer: Timer, host: ThisHost, clock: Clock) -> None:
        self.store, self.timer, self.host, self.clock = store, timer, host, clock
        self.holding = False
        self.renewed_at = 0.0  # monotonic time of the last renewal that committed
        self.leader = ""  # the holder as last read
        self.steady_since: float | None = None  # monotonic start of this host's unbroken run of renewals
        self.on_change: list[Callable[[bool], None]] = []  # called with True on taking the lead, False on losing it

    def tick(self) -> None:
        """Take or renew the lease; resume the cron timer on taking it, pause it on losing it."""
        started = self.clock.monotonic()
        try:
            with self.store.write():
                held, self.leader, left = self.store.take_lease(self.host, LEASE_TTL)
        except StoreUnwritable as exc:
            self.steady_since = None
            if self.holding and started - self.renewed_at > LEASE_TTL - 1:
                self._step_down(f"its lease could not be renewed for {started - self.renewed_at:.0f} s ({exc.cause})")
            return
        if held:
            if self.steady_since is None or started - self.renewed_at > LEASE_TTL - 1:
                self.steady_since = started
            self.renewed_at = started
            if not self.holding:
                self.holding = True
                log.info("this host (%s) leads: its cron timer fires the windows", self.host.name)
                self.timer.resume()
                self._changed(True)
        elif self.holding:
            self._step_down(f"{self.leader} holds the lease")
        elif not self.leader or left == 0.0:
            log.debug("the lease is free: taken at the next heartbeat")

    def steady_for(self) -> float:
        """Seconds this host has held the lease without a gap (0 when it does not hold it)."""
        if not self.holding or self.steady_since is None:
            return 0.0
        return self.clock.monotonic() - self.steady_since

    def _changed(self, leads: bool) -> None:
        for callback in self.on_change:
            try:
                callback(leads)
            except Exception:  # noqa: BLE001 - a duty's wake-up must not stop the lease
                log.exception("a change of leadership could not be passed on")

    def release(self) -> None:
        """A clean stop: drop the lease so that another host may lead at once."""
        if not self.holding:
            return
        self.holding = False
        try:
            with self.store.write():
                self.store.drop_lease(self.host)
        except StoreUnwritable as exc:
            log.warning("could not drop the lease (%s): another host leads once it expires", exc.cause)

    def _step_down(self, why: str) -> None:
        self.holding = False
        self.steady_since = None
        self.timer.pause()
        self._changed(False)
        log.warning("this host (%s) no longer leads: %s; its cron timer is paused", self.host.name, why)
