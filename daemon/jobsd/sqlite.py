"""The one way jobsd opens a SQLite file with SQLAlchemy: an engine whose every new connection runs
the given PRAGMAs first (WAL and synchronous for both of jobsd's files, more for the store)."""
from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine

__all__ = ["sqlite_engine"]


def sqlite_engine(path: str, pragmas: Sequence[str], *, own_begin: bool = False, **options: object) -> Engine:
    """own_begin: the caller emits BEGIN itself (sqlite3's own implicit transactions are turned off)."""
    engine = create_engine(f"sqlite:///{path}", **options)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # noqa: ANN001
        if own_begin:
            dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in pragmas:
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    return engine
