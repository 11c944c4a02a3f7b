"""The hosts of a shared (PostgreSQL) store (DESIGN 12): one row per --host-name, saying which machine
and which start of jobsd holds the name, its labels, and when it was last seen.

Times are the database's clock (`now()`), so that hosts whose own clocks disagree still judge each
other's heartbeats alike. A name is held by the machine that joined with it; another machine may
take it only once that jobsd stopped cleanly or has not beaten for HOST_LEASE seconds (its heartbeat,
every scheduler.HEARTBEAT = 5 s, missed three times). Mixed into Store; the table exists only in
PostgreSQL stores (pg_migrations v2): a SQLite store knows one host, this one, and is not asked.
"""
from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass

from jobsd.store_rows import _ACTIVE_SQL, _RUN_COLUMNS
from jobsd_lib.kernel.drift import SHARED_STORE_LEASE

__all__ = ["HostRow", "HostQueries", "ThisHost", "HOST_LEASE", "check_host_name", "check_labels"]

HOST_LEASE = SHARED_STORE_LEASE  # seconds without a heartbeat after which a host's name is free again
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_NOW = "extract(epoch from now())"


def check_host_name(name: str) -> str:
    """Why `name` cannot be a --host-name ("" when it can)."""
    return "" if _NAME.match(name) else (f"{name!r}: a host name is 1-63 letters, digits, '.', '_' or '-', "
                                         "starting with a letter or digit")


def check_labels(labels: tuple[str, ...]) -> str:
    bad = [label for label in labels if not _NAME.match(label)]
    return f"{', '.join(map(repr, bad))}: a label is 1-63 letters, digits, '.', '_' or '-'" if bad else ""


def machine_id() -> str:
    """This machine's id (/etc/machine-id, systemd's), else the boot id (a reboot makes a new one)."""
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id", "/proc/sys/kernel/random/boot_id"):
        try:
            with open(path) as handle:
                if value := handle.read().strip():
                    return value
        except OSError:
            continue
    return ""


@dataclass(frozen=True)
class ThisHost:
    name: str
    labels: tuple[str, ...]
    machine_id: str
    instance: str  # this start of jobsd: a later start on the same machine takes the name over
    pid: int

    @classmethod
    def make(cls, name: str, labels: tuple[str, ...]) -> "ThisHost":
        return cls(name, tuple(labels), machine_id(), secrets.token_hex(8), os.getpid())


@dataclass(frozen=True)
class HostRow:
    name: str
    labels: tuple[str, ...]
    pid: int
    started_at: float
    heartbeat_at: float
    age: float  # seconds since heartbeat_at, by the database's clock
    stopped: bool
    machine_id: str
    instance: str


class HostQueries:
    """Mixed into Store (needs `_q`, `dialect`); each call goes in the caller's write transaction, but
    `hosts` and `lease_holder`."""

    def join_host(self, host: ThisHost) -> HostRow | None:
        """Hold `host.name` from now on; None when joined, else the live row of the machine that
        holds the name (and nothing changed)."""
        joined = self._q(
            "INSERT INTO hosts (name, machine_id, instance, pid, labels, started_at, heartbeat_at, stopped) "
            f"VALUES (:n, :m, :i, :p, :l, {_NOW}, {_NOW}, false) ON CONFLICT (name) DO UPDATE SET "
            "machine_id = excluded.machine_id, instance = excluded.instance, pid = excluded.pid, "
            "labels = excluded.labels, started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at, "
            "stopped = false WHERE hosts.machine_id = excluded.machine_id OR hosts.stopped "
            f"OR hosts.heartbeat_at < {_NOW} - :lease RETURNING instance",
            n=host.name, m=host.machine_id, i=host.instance, p=host.pid, l=",".join(host.labels),
            lease=HOST_LEASE).first()
        if joined is not None:
            return None
        return next(row for row in self.hosts() if row.name == host.name)

    def beat_host(self, host: ThisHost, stopped: bool = False) -> bool:
        """This host is alive (or, `stopped`, has stopped cleanly); False when another start of jobsd
        took the name meanwhile (this one was taken for dead)."""
        return self._q(f"UPDATE hosts SET heartbeat_at = {_NOW}, stopped = :s WHERE name = :n AND instance = :i",
                       s=stopped, n=host.name, i=host.instance).rowcount == 1

    def take_lease(self, host: ThisHost, ttl: float, name: str = "scheduler") -> tuple[bool, str, float]:
        """Take or renew the lease `name` for `ttl` seconds from now (the database's clock): (held,
        its holder's host name, seconds it has left). Another start's lease is taken only once it
        expired; a renewal by the holder always succeeds (River's leader election, Oban's shape)."""
        took = self._q(
            f"INSERT INTO lease (name, holder, instance, expires_at) VALUES (:name, :h, :i, {_NOW} + :ttl) "
            "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, instance = excluded.instance, "
            f"expires_at = excluded.expires_at WHERE lease.instance = excluded.instance OR lease.expires_at < {_NOW} "
            "RETURNING instance", name=name, h=host.name, i=host.instance, ttl=ttl).first()
        holder, left = self._q(f"SELECT holder, expires_at - {_NOW} FROM lease WHERE name = :name", name=name).one()
        return took is not None, holder, max(left, 0.0)

    def drop_lease(self, host: ThisHost, name: str = "scheduler") -> None:
        """Give the lease up at once (a clean stop), if this start holds it."""
        self._q("DELETE FROM lease WHERE name = :name AND instance = :i", name=name, i=host.instance)

    def lease_holder(self, name: str = "scheduler") -> str:
        """The host name holding an unexpired lease `name`, or ""."""
        return self._q(f"SELECT holder FROM lease WHERE name = :name AND expires_at >= {_NOW}", name=name).scalar() or ""

    def claim_window(self, job_id: str, window: float) -> bool:
        """In the caller's transaction: False when another jobsd recorded this cron window of the job
        first (the fence); a store only this jobsd writes has no other leader and always says True."""
        if not self.dialect.shared:
            return True
        return self._q("INSERT INTO windows (job_id, at) VALUES (:j, :w) ON CONFLICT DO NOTHING RETURNING 1",
                       j=job_id, w=window).first() is not None

    def claim_job(self, job_id: str):  # noqa: ANN201 - RunRow | None
        """In the caller's transaction: the job's counter row locked until the commit (so admissions of
        one job on several hosts take turns), then its active run. READ COMMITTED: the statement after
        the lock sees a competitor's run that committed while this one waited for it."""
        if not self.dialect.shared:
            return None
        self._q("INSERT INTO job_counters (job_id, last_n) VALUES (:j, 0) ON CONFLICT (job_id) DO UPDATE SET "
                "last_n = job_counters.last_n", j=job_id)
        return self.active_run(job_id)

    def still_active(self, run_id: int) -> bool:
        """In the caller's transaction: whether run `run_id` is still active in the store (False: the
        leader recorded it interrupted for a host that had stopped renewing its heartbeat)."""
        if not self.dialect.shared:
            return True
        return self._q(f"SELECT 1 FROM runs WHERE id = :i AND state IN {_ACTIVE_SQL}", i=run_id).first() is not None

    def taken_over(self, host: str, since: float) -> list:  # list[RunRow]
        """Runs of `host` that ended `interrupted` at or after `since` (epoch): what the leader closed
        while that host was away, whose processes the host stops when it is back."""
        if not self.dialect.shared:
            return []
        rows = self._q(f"SELECT {_RUN_COLUMNS} FROM runs WHERE host = :h AND state = 'interrupted' AND "
                       "finished_at >= :s ORDER BY id", h=host, s=since)
        return [self._with_attempts(r) for r in rows]

    def hosts(self) -> list[HostRow]:
        rows = self._q(f"SELECT name, labels, pid, started_at, heartbeat_at, {_NOW} - heartbeat_at, stopped, "
                       "machine_id, instance FROM hosts ORDER BY name")
        return [HostRow(r[0], tuple(filter(None, r[1].split(","))), r[2], r[3], r[4], max(r[5], 0.0), r[6], r[7],
                        r[8]) for r in rows]
