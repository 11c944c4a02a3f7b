"""`jobsd migrate-store --from PATH --to URL`: move one host's SQLite store into an empty PostgreSQL
database (DESIGN 12, docs/operations.md), operator states, run numbers, history and events alike.

The SQLite store must not be in use: its folder's lock is taken as a starting jobsd takes it, so a
running jobsd refuses the copy. The target must be empty (a fresh database, or one whose tables
jobsd made and nothing wrote): the copy is one transaction, so it lands whole or not at all. Ids,
run numbers and event seqs are kept; the PostgreSQL counters then continue after them.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from sqlalchemy.exc import DatabaseError

from jobsd import lock as store_lock
from jobsd.store import Store, StoreCorrupt, StoreUnwritable, open_store
from jobsd_lib.errors import StoreLocked

__all__ = ["main", "copy_store"]

log = logging.getLogger("jobsd.migrate")

# In the order foreign keys need (attempts after runs); schema_version is each store's own.
TABLES = ("job_state", "job_counters", "runs", "attempts", "events", "daemon_meta", "gc_folders")
BOOLEANS = {("attempts", "timed_out")}  # SQLite's 0/1, PostgreSQL's BOOLEAN
BATCH = 5000


def copy_store(source: Store, target: Store) -> dict[str, int]:
    """Copy every row of `source` into the empty `target` in one transaction; rows per table.
    Raises StoreCorrupt when the target holds rows already (and changes nothing)."""
    held = {t: target._q(f"SELECT count(*) FROM {t}").scalar() for t in TABLES}
    if any(held.values()):
        rows = ", ".join(f"{n} in {t}" for t, n in held.items() if n)
        raise StoreCorrupt(f"{target.path} is not empty ({rows}): migrate-store copies into an empty database "
                           "only (create a new one: CREATE DATABASE ... OWNER ...)")
    copied = {}
    with target.write() as conn:
        for table in TABLES:
            columns = [row[1] for row in source._q(f"PRAGMA table_info({table})")]
            insert = (f"INSERT INTO {table} ({', '.join(columns)}) "
                      f"VALUES ({', '.join(':' + c for c in columns)})")
            cursor, copied[table] = source._q(f"SELECT {', '.join(columns)} FROM {table}"), 0
            while batch := cursor.fetchmany(BATCH):
                rows = [{c: (bool(v) if (table, c) in BOOLEANS else v) for c, v in zip(columns, row)} for row in batch]
                try:
                    target.dialect.execute(conn, insert, rows)
                except DatabaseError as exc:
                    raise StoreCorrupt(f"{target.path} refused a row of {table} (nothing was copied): "
                                       f"{target.dialect.cause(exc)}") from None
                copied[table] += len(rows)
        conn.exec_driver_sql("SELECT setval(pg_get_serial_sequence('runs', 'id'), coalesce(max(id), 0) + 1, false) "
                             "FROM runs")
        target._q("INSERT INTO counters (name, last) SELECT 'events', coalesce(max(seq), 0) FROM events "
                  "ON CONFLICT (name) DO UPDATE SET last = excluded.last")
    return copied


def _parse(argv: list[str]) -> argparse.Namespace:
    from jobsd.__main__ import _store
    parser = argparse.ArgumentParser(prog="jobsd migrate-store", description="Copy a stopped jobsd's SQLite "
                                     "store into an empty PostgreSQL database (then start jobsd with --store URL).")
    parser.add_argument("--from", dest="source", required=True, metavar="PATH",
                        help="the SQLite store, e.g. /var/lib/jobsd/db/jobsd.sqlite3")
    parser.add_argument("--to", dest="target", required=True, type=_store, metavar="URL",
                        help="postgresql+psycopg://USER@HOST/DB, an empty database")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = _parse(argv)
    logging.basicConfig(level="WARNING", format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    path = os.path.abspath(args.source)
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        print(f"jobsd migrate-store: no SQLite store at {path}", file=sys.stderr)
        return 1
    try:
        held = store_lock.acquire(os.path.join(os.path.dirname(path), "jobsd.lock"), "migrate-store")
    except StoreLocked as exc:
        print(f"jobsd migrate-store: {exc}", file=sys.stderr)
        return 1
    try:
        source = open_store(path)
        try:
            target = open_store(args.target)
            try:
                copied = copy_store(source, target)
            finally:
                target.close()
        finally:
            source.close()
    except (StoreCorrupt, StoreUnwritable) as exc:  # a row PostgreSQL refuses: nothing was copied
        print(f"jobsd migrate-store: {exc}", file=sys.stderr)
        return 1
    finally:
        held.release()
    print(f"copied {copied['runs']} runs, {copied['attempts']} attempts, {copied['events']} events and "
          f"{copied['job_state']} operator states from {path} to {target.path}; "
          f"now start jobsd with --store (docs/operations.md)")
    return 0
