"""The SQL store (SQLAlchemy 2 Core) for runs, attempts, events and operator state: a SQLite file
(the embedded default, described here) or a PostgreSQL database (DESIGN 12); what the two do
differently is store_dialect.py's, so every statement here is written once.

How it works: one connection, used only from the daemon's event-loop thread. Every write is
one `BEGIN IMMEDIATE` transaction (PITFALLS 27: Python's default deferred BEGIN lost updates
and hit "database is locked"), so a run, its number and its first event commit together.
Per connection: WAL, busy_timeout, foreign keys, synchronous=FULL: an acknowledged write
(a new run, a finished run, an operator's change) survives a power cut too. The steps in
between (an attempt started or ended, a run waiting) commit with `write(durable=False)`,
i.e. synchronous=NORMAL: safe against a crash of jobsd, and made durable by the next FULL
commit, which syncs the whole WAL before it; a power cut can lose them, and the start-up
reconciliation then finds the run active and marks it interrupted. Times are UTC epoch seconds.

Checkpoints: SQLite's automatic checkpoint runs inside the COMMIT that fills the WAL past its
threshold, on the event loop, with two fsyncs (~5-15 ms here: it showed as the p99 of a cron
window's latency). The daemon's heartbeat runs a passive checkpoint in a worker thread instead
(`checkpoint()`, on a connection of its own), and the automatic one stays as a backstop at
WAL_AUTOCHECKPOINT pages for a WAL filled faster than the heartbeat empties it.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DatabaseError

from jobsd import clock
from jobsd.store_dialect import PostgresDialect, SqliteDialect, dialect_for
from jobsd.store_hosts import HostQueries
from jobsd.store_queries import RunQueries
from jobsd.store_rows import (_ACTIVE_SQL, _OUTCOMES_SQL, _RUN_COLUMNS, AttemptRow, EventRow, OperatorRow, RunRow,  # noqa: F401
                              StoreCorrupt, StoreUnwritable, WriteFailure)
from jobsd_lib.errors import InternalError
from jobsd_lib.facts import RunFinished
from jobsd_lib.kernel.states import RunState

__all__ = ["Store", "RunRow", "AttemptRow", "EventRow", "OperatorRow", "StoreCorrupt", "StoreUnwritable", "WriteFailure", "open_store"]

log = logging.getLogger("jobsd.store")
_MEMO_ENTRIES = 16  # memoized answers kept (Store._memoized): the job list, single jobs' GetJob


def open_store(target: str) -> "Store":
    """Open (creating if new) and migrate the SQLite file at `target`, or the PostgreSQL database
    its URL names. Raises StoreCorrupt with the reason and the path (a URL without its password)."""
    dialect = dialect_for(target)
    try:
        engine = dialect.create_engine()
        store = Store(engine, dialect.connect(engine), dialect)
        store.migrate()
        store.keep_reserve()
        return store
    except DatabaseError as exc:
        raise StoreCorrupt(f"{dialect.label}: {dialect.cause(exc)}") from None


class Store(RunQueries, HostQueries):
    def __init__(self, engine: Engine, conn: Connection, dialect: SqliteDialect | PostgresDialect) -> None:
        self.engine, self.conn, self.dialect, self.path = engine, conn, dialect, dialect.label
        self._in_write = False
        self.write_failure: WriteFailure | None = None  # set while writes fail; GetHealth says so
        self._memo: dict[tuple, tuple[object, object]] = {}  # (what, args) -> ((connection, changes), answer)

    # ------------------------------------------------------------------ plumbing
    @contextmanager
    def write(self, durable: bool = True) -> Iterator[Connection]:
        """One transaction (SQLite: BEGIN IMMEDIATE); commits on success, rolls back on any error.

        durable=False commits without an fsync (synchronous=NORMAL; see the module's docstring).
        """
        if self._in_write:
            raise InternalError("nested store write")
        self._in_write = True
        try:
            self.conn = self.dialect.begin(self.engine, self.conn, durable)
            try:
                yield self.conn
            except BaseException:
                self.dialect.rollback(self.conn)
                raise
            else:
                self.conn.exec_driver_sql("COMMIT")
                if self.write_failure is not None:
                    log.warning("store writes work again (they failed from %s: %s)",
                                clock.from_epoch(self.write_failure.since).isoformat(), self.write_failure.cause)
                    self.write_failure = None
        except DatabaseError as exc:  # full disk, I/O error, corruption found while running, server gone
            cause = self.dialect.cause(exc)
            log.error("store write failed: %s", cause)
            if self.write_failure is None:
                self.write_failure = WriteFailure(clock.to_epoch(clock.now()), cause)
            self.dialect.rollback_if_open(self.conn)
            raise StoreUnwritable(f"jobsd cannot write its store {self.path}: {cause}; nothing was "
                                  f"changed ({self.dialect.hint}; the daemon log has details)", cause) from exc
        finally:
            self._in_write = False

    # ------------------------------------------------------------------ the reserve (reserve.py)
    def keep_reserve(self) -> bool:
        """Make the reserve if it is missing and the disk has room to spare (True: it is there)."""
        return self.dialect.keep_reserve()

    def release_reserve(self) -> bool:
        """Free the reserve's space for the store (True: there was one to free)."""
        return self.dialect.release_reserve()

    def _q(self, sql: str, **params: object):
        if self._in_write:
            return self.dialect.execute(self.conn, sql, params)
        self.conn = self.dialect.revive(self.engine, self.conn)
        try:
            return self.dialect.execute(self.conn, sql, params)
        except DatabaseError as exc:  # a read on a connection the server dropped: once more on a new one
            if not exc.connection_invalidated:
                raise
            self.conn = self.dialect.revive(self.engine, self.conn)
            return self.dialect.execute(self.conn, sql, params)

    def _many(self, sql: str, rows: Sequence[Mapping[str, object]]) -> None:
        """One statement for every row (executemany: prepared once)."""
        self.dialect.execute(self.conn, sql, list(rows))

    def _memoized(self, key: tuple, compute):  # noqa: ANN001, ANN202
        """compute()'s answer, read again only once a row of the store changed since it was read.

        SQLite's total_changes counts every row this connection inserted, updated or deleted
        (rolled back ones too), and this connection is the only one that writes (the store lock):
        an unchanged count means an unchanged store, whatever code path wrote. The answers kept
        must not be changed by callers. 200 clients listing jobs ask the same question between
        two writes (a heartbeat's every 5 s, or a run's steps)."""
        if self._in_write:  # it could see rows that are rolled back later, with the count unchanged
            return compute()
        changes = self.dialect.changes(self.conn)  # asked each time: a reconnect starts a new count
        if changes is None:  # PostgreSQL: other hosts write too
            return compute()
        kept = self._memo.get(key)
        if kept is not None and kept[0] == changes:
            return kept[1]
        answer = compute()
        if key not in self._memo and len(self._memo) >= _MEMO_ENTRIES:
            del self._memo[next(iter(self._memo))]
        self._memo[key] = (changes, answer)
        return answer

    def checkpoint(self) -> tuple[int, int, int]:
        """A passive WAL checkpoint on a connection of its own (call it off the event loop): copies
        what it can into the database file without waiting for, or blocking, the loop's writes.
        Returns SQLite's (busy, frames in the WAL, frames checkpointed)."""
        return self.dialect.checkpoint(self.engine)

    def close(self) -> None:
        self.conn.close()
        self.engine.dispose()

    def migrate(self) -> None:
        dialect = self.dialect
        with self.write() as conn:
            dialect.migrate_lock(conn)
            conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            version = conn.exec_driver_sql("SELECT max(version) FROM schema_version").scalar() or 0
            if version > dialect.schema_version:
                raise StoreCorrupt(f"{self.path}: schema version {version} is newer than this jobsd "
                                   f"understands ({dialect.schema_version}); upgrade jobsd")
            for step in range(version, dialect.schema_version):
                for statement in dialect.migrations[step]:
                    conn.exec_driver_sql(statement)
                self._q("INSERT INTO schema_version (version) VALUES (:v)", v=step + 1)

    def size_bytes(self) -> int:
        return self.dialect.size_bytes(self)

    # ------------------------------------------------------------------ events
    def add_event(self, ts: float, type_: str, job_id: str = "", run_n: int | None = None,
                  attrs: dict[str, object] | None = None) -> EventRow:
        """Append an event inside the caller's write transaction."""
        clean = _clean_attrs(attrs)
        row = {"ts": ts, "t": type_, "j": job_id, "n": run_n, "a": json.dumps(clean, sort_keys=True)}
        seq = self.dialect.take_seqs(self.conn, 1)
        if seq is None:
            seq = self._q(f"{_EVENT_INSERT} RETURNING seq", **row).scalar_one()
        else:
            self._q(_EVENT_INSERT_SEQ, q=seq, **row)
        return EventRow(seq, ts, type_, job_id, run_n, clean)

    def add_events(self, events: Sequence[tuple[float, str, str, int | None, dict[str, object]]]) -> None:
        rows = [{"ts": ts, "t": type_, "j": job_id, "n": run_n, "a": json.dumps(_clean_attrs(attrs), sort_keys=True)}
                for ts, type_, job_id, run_n, attrs in events]
        if not rows:
            return
        first = self.dialect.take_seqs(self.conn, len(rows))
        if first is None:
            self._many(_EVENT_INSERT, rows)
        else:
            self._many(_EVENT_INSERT_SEQ, [{"q": first + i, **row} for i, row in enumerate(rows)])

    def events_after(self, seq: int, job_id: str = "", limit: int = 500) -> list[EventRow]:
        where = "seq > :s" + (" AND job_id = :j" if job_id else "")
        rows = self._q(f"SELECT seq, ts, type, job_id, run_n, attrs FROM events WHERE {where} ORDER BY seq LIMIT :l",
                       s=seq, j=job_id, l=limit)
        return [EventRow(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]

    def last_event_seq(self, job_id: str = "", back: int = 0) -> int:
        """The seq from which the last `back` events (of `job_id`, or all) follow."""
        where = "WHERE job_id = :j" if job_id else ""
        seq = self._q(f"SELECT seq FROM events {where} ORDER BY seq DESC LIMIT 1 OFFSET :o",
                      j=job_id, o=max(back, 0)).scalar()
        if seq is None and back:
            return 0
        return seq or 0

    # ------------------------------------------------------------------ runs
    def create_run(self, *, job_id: str, state: RunState, trigger: str, now: float, wait_reason: str | None = None,
                   reason: str = "", scheduled_at: float | None = None, spec_digest: str = "",
                   max_attempts: int = 1, finished: bool = False, retry_of: str = "",
                   upstream: str = "", host: str = "") -> RunRow:
        """Insert the next run of `job_id` (n = last n + 1, never reused) in the caller's transaction."""
        n = self._q("INSERT INTO job_counters (job_id, last_n) VALUES (:j, 1) "
                    "ON CONFLICT (job_id) DO UPDATE SET last_n = job_counters.last_n + 1 RETURNING last_n", j=job_id).scalar_one()
        run_id = self._q(
            "INSERT INTO runs (job_id, n, state, trigger, wait_reason, reason, max_attempts, scheduled_at, queued_at, "
            "finished_at, spec_digest, retry_of, upstream, host) "
            "VALUES (:j, :n, :s, :t, :w, :r, :m, :sa, :q, :f, :d, :ro, :up, :h) RETURNING id",
            j=job_id, n=n, s=state.value, t=trigger, w=wait_reason, r=reason, m=max_attempts, sa=scheduled_at,
            q=now, f=now if finished else None, d=spec_digest, ro=retry_of, up=upstream, h=host).scalar_one()
        return RunRow(run_id, job_id, n, state, trigger, wait_reason, reason, 0, max_attempts, None, None, scheduled_at,
                      now, None, now if finished else None, None, spec_digest, None, retry_of, upstream, host=host)

    def last_success(self, job_id: str) -> tuple[int, int] | None:
        row = self._q(f"SELECT seq, run_n FROM events WHERE job_id = :j AND type = '{RunFinished.TYPE}' "
                      f"AND {self.dialect.succeeded} ORDER BY seq DESC LIMIT 1", j=job_id).first()
        return (row[0], row[1]) if row else None

    def recent_windows(self, job_id: str, limit: int = 500) -> set[float]:
        """The cron windows (scheduled_at) of the job's newest `limit` records that have one: what a
        job store left behind by a power cut (seconds) or far behind (then its listing starts near
        now: scheduler.BACKLOG) can hand over again. One seek on (job_id, n)."""
        rows = self._q("SELECT scheduled_at FROM runs WHERE job_id = :j AND scheduled_at IS NOT NULL "
                       "ORDER BY n DESC LIMIT :l", j=job_id, l=limit)
        return {row[0] for row in rows}

    def create_missed_run(self, job_id: str, now: float, scheduled_at: float, reason: str,
                          spec_digest: str = "", host: str = "") -> RunRow:
        """A `missed` cron window (terminal at birth, trigger cron) in the caller's transaction."""
        return self.create_run(job_id=job_id, state=RunState.MISSED, trigger="cron", now=now, reason=reason,
                               scheduled_at=scheduled_at, spec_digest=spec_digest, finished=True, host=host)

    def update_run(self, run_id: int, **fields: object) -> None:
        """Set columns of one run in the caller's transaction (state given as RunState)."""
        if "state" in fields and isinstance(fields["state"], RunState):
            fields["state"] = fields["state"].value
        sets = ", ".join(f"{name} = :{name}" for name in fields)
        self._q(f"UPDATE runs SET {sets} WHERE id = :id", id=run_id, **fields)

    def start_attempt(self, run_id: int, number: int, started_at: float, pid: int | None,
                      invocation_id: str = "") -> None:
        self._q("INSERT INTO attempts (run_id, number, started_at, pid, invocation_id) VALUES (:r, :n, :s, :p, :i)",
                r=run_id, n=number, s=started_at, p=pid, i=invocation_id)

    def finish_attempt(self, run_id: int, number: int, **fields: object) -> None:
        if "timed_out" in fields:  # callers pass bool or int; PostgreSQL's column is a BOOLEAN
            fields["timed_out"] = bool(fields["timed_out"])
        sets = ", ".join(f"{name} = :{name}" for name in fields)
        self._q(f"UPDATE attempts SET {sets} WHERE run_id = :r AND number = :n", r=run_id, n=number, **fields)

    def get_run(self, job_id: str, n: int) -> RunRow | None:
        row = self._q(f"SELECT {_RUN_COLUMNS} FROM runs WHERE job_id = :j AND n = :n", j=job_id, n=n).first()
        return self._with_attempts(row) if row else None

    def latest_run(self, job_id: str) -> RunRow | None:
        row = self._q(f"SELECT {_RUN_COLUMNS} FROM runs WHERE job_id = :j ORDER BY n DESC LIMIT 1", j=job_id).first()
        return self._with_attempts(row) if row else None

    def latest_outcome(self, job_id: str) -> RunRow | None:
        row = self._q(f"SELECT {_RUN_COLUMNS} FROM runs WHERE job_id = :j AND state IN {_OUTCOMES_SQL} "
                      "ORDER BY n DESC LIMIT 1", j=job_id).first()
        return self._with_attempts(row) if row else None

    def active_run(self, job_id: str) -> RunRow | None:
        row = self._q(f"SELECT {_RUN_COLUMNS} FROM runs WHERE job_id = :j AND state IN {_ACTIVE_SQL} "
                      "ORDER BY n DESC LIMIT 1", j=job_id).first()
        return self._with_attempts(row) if row else None

    def active_runs(self, host: str | None = None) -> list[RunRow]:
        mine = "" if host is None else " AND host = :h"
        rows = self._q(f"SELECT {_RUN_COLUMNS} FROM runs WHERE state IN {_ACTIVE_SQL}{mine} ORDER BY queued_at, id",
                       h=host)
        return [self._with_attempts(r) for r in rows]

    def delete_runs(self, run_ids: Sequence[int]) -> int:
        """Delete finished runs (and their attempts) in the caller's transaction; active ones are never
        touched. Returns how many rows went. Events stay: they are the audit log. Each deleted
        run's folder is owed (gc_folders) until `folders_removed`."""
        deleted = 0
        for start in range(0, len(run_ids), 500):
            batch = run_ids[start:start + 500]
            marks = ", ".join(f":r{i}" for i in range(len(batch)))
            ids = {f"r{i}": run_id for i, run_id in enumerate(batch)}
            finished = f"id IN ({marks}) AND state NOT IN {_ACTIVE_SQL}"
            self._q(f"INSERT INTO gc_folders (job_id, n, host) SELECT job_id, n, host FROM runs WHERE {finished} "
                    "ON CONFLICT DO NOTHING", **ids)
            deleted += self._q(f"DELETE FROM runs WHERE {finished}", **ids).rowcount
        return deleted

    def owed_folders(self, host: str | None = None) -> list[tuple[str, int]]:
        """(job_id, n) of deleted runs whose folders gc has not yet reported removed, in order."""
        mine = "" if host is None else " WHERE host = :h"
        return [tuple(r) for r in self._q(f"SELECT job_id, n FROM gc_folders{mine} ORDER BY job_id, n", h=host)]

    def folders_removed(self, keys: Sequence[tuple[str, int]]) -> None:
        """In the caller's transaction: these folders are gone (or were never there)."""
        if keys:  # executemany: one primary-key seek each (a row-value IN list scanned the table)
            self._many("DELETE FROM gc_folders WHERE job_id = :j AND n = :n", [{"j": j, "n": n} for j, n in keys])

    # ------------------------------------------------------------------ operator state and meta
    def operator_states(self) -> dict[str, str]:
        """Every job's operator state (from the memoized rows: see _memoized)."""
        return {j: row.state for j, row in self.operator_rows().items()}

    def operator_rows(self) -> dict[str, OperatorRow]:
        """Every job's operator state row (a copy of the memoized answer)."""
        return dict(self._memoized(("operator_rows",), lambda: {
            j: OperatorRow(s, t, by or "", until, reason or "") for j, s, t, by, until, reason in self._q(
                "SELECT job_id, operator_state, changed_at, changed_by, paused_until, state_reason FROM job_state")}))

    def operator_state(self, job_id: str) -> str | None:
        return self._q("SELECT operator_state FROM job_state WHERE job_id = :j", j=job_id).scalar()

    def set_operator_state(self, job_id: str, state: str, now: float, actor: str, until: float | None = None,
                           reason: str = "") -> None:
        self._q("INSERT INTO job_state (job_id, operator_state, changed_at, changed_by, paused_until, state_reason) "
                "VALUES (:j, :s, :t, :a, :u, :r) ON CONFLICT (job_id) DO UPDATE SET operator_state = :s, "
                "changed_at = :t, changed_by = :a, paused_until = :u, state_reason = :r",
                j=job_id, s=state, t=now, a=actor, u=until, r=reason)

    def get_meta(self, key: str) -> str | None:
        return self._q("SELECT value FROM daemon_meta WHERE key = :k", k=key).scalar()

    def set_meta(self, key: str, value: str) -> None:
        self.set_metas({key: value})

    def set_metas(self, values: Mapping[str, str]) -> None:
        if values:
            self._many("INSERT INTO daemon_meta (key, value) VALUES (:k, :v) "
                       "ON CONFLICT (key) DO UPDATE SET value = excluded.value", [{"k": k, "v": v} for k, v in values.items()])

    def run_totals(self) -> dict[tuple[str, str], int]:
        return {(j, s): c for j, s, c in self._q("SELECT job_id, state, count(*) FROM runs GROUP BY job_id, state")}

    def last_success_times(self) -> dict[str, float]:
        rows = self._q(f"SELECT job_id, max(ts) FROM events WHERE type = '{RunFinished.TYPE}' "
                       f"AND {self.dialect.succeeded} GROUP BY job_id")
        return {j: ts for j, ts in rows}

    def counts_by_state(self) -> dict[str, int]:
        return {s: c for s, c in self._q(f"SELECT state, count(*) FROM runs WHERE state IN {_ACTIVE_SQL} GROUP BY state")}


_EVENT_INSERT = "INSERT INTO events (ts, type, job_id, run_n, attrs) VALUES (:ts, :t, :j, :n, :a)"
_EVENT_INSERT_SEQ = "INSERT INTO events (seq, ts, type, job_id, run_n, attrs) VALUES (:q, :ts, :t, :j, :n, :a)"


def _clean_attrs(attrs: dict[str, object] | None) -> dict[str, str]:
    """An event's attributes as stored: values that are not None, as str."""
    return {k: str(v) for k, v in (attrs or {}).items() if v is not None}
