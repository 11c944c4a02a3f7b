"""What the SQL store (store.py) does differently on SQLite and on PostgreSQL (DESIGN 12): one object
per store, so that Store's statements are written once.

Store's SQL is written in SQLAlchemy's neutral `:name` parameter style, with the few constructs
the two engines spell differently taken from here (`succeeded`, `each_text`, `int_set`). Everything
else that differs is a method: opening, BEGIN and how durable a commit is, errors, the memo's
"unchanged" test, checkpoints, size, the disk reserve, migrations and event sequence numbers.

SQLite statements go straight to sqlite3 (which takes `:name` itself: no compile step, the hot
path of every RPC). PostgreSQL statements go through `text()`, compiled once per statement text
(lru_cache) into psycopg's `%(name)s`.
"""
from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping, Sequence

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DatabaseError, InvalidRequestError

from jobsd.migrations import MIGRATIONS, SCHEMA_VERSION
from jobsd.pg_migrations import PG_MIGRATIONS, PG_SCHEMA_VERSION
from jobsd.reserve import Reserve
from jobsd.sqlite import sqlite_engine
from jobsd.store_rows import StoreCorrupt

__all__ = ["SqliteDialect", "PostgresDialect", "dialect_for", "is_url"]

WAL_AUTOCHECKPOINT = 10_000  # pages (~40 MB): the backstop; the heartbeat checkpoints every few seconds
_MIGRATE_LOCK = 0x6A6F6273  # 'jobs': the transaction-level advisory lock two starting hosts migrate under


def is_url(target: str) -> bool:
    return "://" in target


def dialect_for(target: str) -> "SqliteDialect | PostgresDialect":
    """A path is a SQLite file; `postgresql+psycopg://...` (or postgresql://) a PostgreSQL database."""
    if not is_url(target):
        return SqliteDialect(target)
    scheme = target.split("://", 1)[0]
    if scheme not in ("postgresql", "postgresql+psycopg"):
        raise StoreCorrupt(f"{target.split('://', 1)[0]}://...: jobsd stores runs in a SQLite file (a path) or "
                           "in PostgreSQL (postgresql+psycopg://USER@HOST/DB)")
    return PostgresDialect("postgresql+psycopg://" + target.split("://", 1)[1])


class SqliteDialect:
    """One file, one writing connection (the store lock): WAL, busy_timeout, foreign keys, and
    synchronous=FULL unless a write asks for less (store.py's docstring)."""

    name = "sqlite"
    shared = False  # only this jobsd opens it (the store lock)
    hint = "free disk space if it is full"  # what a refused write's message tells the operator
    migrations, schema_version = MIGRATIONS, SCHEMA_VERSION
    succeeded = "json_extract(attrs, '$.state') = 'succeeded'"  # an event of a run that succeeded

    def __init__(self, path: str) -> None:
        self.path = self.label = path
        self.existed = os.path.exists(path) and os.path.getsize(path) > 0
        self._durable = True  # synchronous=FULL, set when the connection opened

    def create_engine(self) -> Engine:
        return sqlite_engine(self.path, ("journal_mode=WAL", "busy_timeout=5000", "foreign_keys=ON",
                                         "synchronous=FULL", f"wal_autocheckpoint={WAL_AUTOCHECKPOINT}"),
                             own_begin=True, poolclass=None)

    def connect(self, engine: Engine) -> Connection:
        # AUTOCOMMIT: reads take no lock; writes open BEGIN IMMEDIATE themselves (Store.write)
        conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        if self.existed:
            check = conn.exec_driver_sql("PRAGMA quick_check").scalar()
            if check != "ok":
                raise StoreCorrupt(f"{self.path}: integrity check failed: {check}")
        return conn

    def revive(self, engine: Engine, conn: Connection) -> Connection:
        return conn  # a file does not go away

    def begin(self, engine: Engine, conn: Connection, durable: bool) -> Connection:
        """Open the write transaction; the connection it is open on."""
        if durable != self._durable:
            conn.exec_driver_sql(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            self._durable = durable
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        return conn

    @staticmethod
    def rollback(conn: Connection) -> None:
        """End the transaction a statement of the write failed in (its error goes on up)."""
        conn.exec_driver_sql("ROLLBACK")

    def rollback_if_open(self, conn: Connection) -> None:
        try:  # a failed COMMIT leaves the transaction open
            if conn.connection.dbapi_connection.in_transaction:
                conn.exec_driver_sql("ROLLBACK")
        except DatabaseError:
            pass

    @staticmethod
    def cause(exc: DatabaseError) -> str:
        return str(exc.orig or exc)

    @staticmethod
    def execute(conn: Connection, sql: str, params: Mapping[str, object] | Sequence[Mapping[str, object]]):  # noqa: ANN205
        return conn.exec_driver_sql(sql, params)  # straight to sqlite3 (:name style): no compile step

    @staticmethod
    def changes(conn: Connection) -> object:
        """A token that is equal only while the store is unchanged (Store._memoized): sqlite3's
        total_changes on the only connection that writes, and the connection (a reconnect starts a
        new count)."""
        sqlite = conn.connection.dbapi_connection
        return sqlite, sqlite.total_changes

    def checkpoint(self, engine: Engine) -> tuple[int, int, int]:
        with engine.connect() as conn:
            busy, frames, done = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
        return busy, frames, done

    def migrate_lock(self, conn: Connection) -> None:
        pass  # BEGIN IMMEDIATE already excludes every other writer

    lock_exclusive = migrate_lock  # the transaction excludes every other writer already

    @staticmethod
    def take_seqs(conn: Connection, count: int) -> int | None:
        return None  # events.seq is AUTOINCREMENT: the single writer commits in seq order

    def size_bytes(self, store) -> int:  # noqa: ANN001
        return sum(os.path.getsize(p) for p in (self.path, self.path + "-wal") if os.path.exists(p))

    def keep_reserve(self) -> bool:
        return Reserve(self.path + ".reserve").keep()

    def release_reserve(self) -> bool:
        return Reserve(self.path + ".reserve").release()

    # the SQL the two spell differently
    @staticmethod
    def each_text(param: str) -> str:
        """A FROM item with one row per string of the list `param`, its column j.value."""
        return f"json_each({param}) AS j"

    @staticmethod
    def int_set(param: str) -> str:
        """A subquery of the integers of the list `param` (for IN)."""
        return f"(SELECT value FROM json_each({param}))"

    @staticmethod
    def array(values: Sequence[object]) -> object:
        return json.dumps(list(values))


class PostgresDialect:
    """A database several jobsd may share (DESIGN 12), through psycopg 3.

    Each write is BEGIN .. COMMIT at READ COMMITTED on the store's own connection; durable=False is
    `SET LOCAL synchronous_commit = off` (a kill of jobsd loses nothing, a crash of the server at
    most the last few such commits, always a suffix, which the next durable commit or checkpoint
    makes durable). Lock waits end after 5 s (lock_timeout) as a refused write. After the server
    dropped the connection (a restart, a failover), SQLAlchemy refuses it until it is replaced:
    begin() and Store._q take a new one, so the first write or read after a restart goes through;
    one cut short by the drop is refused."""

    name = "postgresql"
    shared = True  # other jobsd could open the same database
    hint = "is the PostgreSQL server up, reachable and not out of disk?"
    migrations, schema_version = PG_MIGRATIONS, PG_SCHEMA_VERSION
    succeeded = "attrs::jsonb ->> 'state' = 'succeeded'"

    def __init__(self, url: str) -> None:
        self.url = url
        self.label = _redacted(url)
        self.existed = True
        self._reserve = True  # the server's disk is not ours: a flag, as MemoryStore keeps

    def create_engine(self) -> Engine:
        try:
            import psycopg  # noqa: F401  (the driver is a dependency; imported only by PostgreSQL stores)
        except ImportError:
            raise StoreCorrupt(f"{self.label}: the PostgreSQL driver is not installed: "
                               "pip install 'jobsd[postgresql]' (psycopg 3)") from None
        # A server that stops answering must not hold the event loop (store calls run on it): libpq
        # gives up connecting after 5 s, and on TCP the kernel ends a silent connection after 15 s
        # (keepalives, tcp_user_timeout); the server itself ends lock waits after 5 s.
        return create_engine(self.url, pool_pre_ping=True, pool_size=4, connect_args={
            "options": "-c lock_timeout=5s -c statement_timeout=120s", "application_name": "jobsd",
            "connect_timeout": 5, "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5,
            "keepalives_count": 3, "tcp_user_timeout": 15000})

    def connect(self, engine: Engine) -> Connection:
        return engine.connect().execution_options(isolation_level="AUTOCOMMIT")

    def revive(self, engine: Engine, conn: Connection) -> Connection:
        if not (conn.invalidated or conn.closed):
            return conn
        try:
            conn.close()
        except DatabaseError:
            pass
        return self.connect(engine)

    def begin(self, engine: Engine, conn: Connection, durable: bool) -> Connection:
        """BEGIN on a live connection: one the server dropped since the last write is replaced, and
        when BEGIN finds it dropped (nothing of the write was sent yet) once more, so the first
        write after a server restart commits rather than fails."""
        conn = self.revive(engine, conn)
        try:
            conn.exec_driver_sql("BEGIN")
        except DatabaseError as exc:
            if not exc.connection_invalidated:
                raise
            conn = self.revive(engine, conn)
            conn.exec_driver_sql("BEGIN")
        if not durable:
            conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
        return conn

    def rollback(self, conn: Connection) -> None:
        """As SqliteDialect.rollback, but a connection the server dropped has no transaction left to
        end, and SQLAlchemy refuses any statement on it (PendingRollbackError, which would hide
        the error that matters): revive() replaces it at the next write."""
        self.rollback_if_open(conn)

    def rollback_if_open(self, conn: Connection) -> None:
        from psycopg.pq import TransactionStatus
        if conn.invalidated or conn.closed:
            return
        try:
            raw = conn.connection.dbapi_connection
            if raw is not None and raw.info.transaction_status != TransactionStatus.IDLE:
                conn.exec_driver_sql("ROLLBACK")
        except (DatabaseError, InvalidRequestError):  # PendingRollbackError is one
            pass

    @staticmethod
    def cause(exc: DatabaseError) -> str:
        diag = getattr(exc.orig, "diag", None)
        return (diag.message_primary if diag is not None and diag.message_primary else str(exc.orig or exc)).strip()

    @staticmethod
    def execute(conn: Connection, sql: str, params: Mapping[str, object] | Sequence[Mapping[str, object]]):  # noqa: ANN205
        return conn.execute(_text(sql), params)

    @staticmethod
    def changes(conn: Connection) -> object:
        return None  # other hosts write too: no cheap "unchanged" test, so no memo

    def checkpoint(self, engine: Engine) -> tuple[int, int, int]:
        """Make earlier asynchronous commits durable: a transaction that has an xid, committed with
        synchronous_commit on, waits for the WAL up to it (CHECKPOINT itself needs a privileged role)."""
        with engine.connect() as conn, conn.begin():
            conn.exec_driver_sql("SELECT pg_current_xact_id()")
        return 0, 0, 0

    def migrate_lock(self, conn: Connection) -> None:
        # two hosts starting together migrate once; released at COMMIT (safe with pools and PgBouncer)
        conn.execute(_text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATE_LOCK})

    def lock_exclusive(self, conn: Connection) -> None:
        """Until this transaction ends, no other jobsd's lock_exclusive (or migration) goes on."""
        self.migrate_lock(conn)

    @staticmethod
    def take_seqs(conn: Connection, count: int) -> int:
        """The first of `count` new event seqs. Not a sequence: with several writers nextval order is
        not commit order, and a follower reading events after its cursor would skip an event that
        commits late with a lower seq. The counter row stays locked to COMMIT, so seqs are handed
        out in commit order, without gaps, and a rolled-back one is handed out again (as SQLite does)."""
        last = conn.execute(_text("INSERT INTO counters (name, last) VALUES ('events', :k) ON CONFLICT (name) "
                                  "DO UPDATE SET last = counters.last + :k RETURNING last"), {"k": count}).scalar_one()
        return last - count + 1

    def size_bytes(self, store) -> int:  # noqa: ANN001
        return int(store._q("SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class AS c "
                            "JOIN pg_namespace AS s ON s.oid = c.relnamespace "
                            "WHERE s.nspname = current_schema() AND c.relkind = 'r'").scalar())

    def keep_reserve(self) -> bool:
        self._reserve = True
        return True

    def release_reserve(self) -> bool:
        had, self._reserve = self._reserve, False
        return had

    @staticmethod
    def each_text(param: str) -> str:
        return f"unnest(CAST({param} AS text[])) AS j(value)"

    @staticmethod
    def int_set(param: str) -> str:
        return f"(SELECT unnest(CAST({param} AS bigint[])))"

    @staticmethod
    def array(values: Sequence[object]) -> object:
        return list(values)


@functools.lru_cache(maxsize=1024)
def _text(sql: str):  # noqa: ANN202
    return text(sql)


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url
    return make_url(url).render_as_string(hide_password=True)
