"""heartbeat.py: the daemon's heartbeat against a real SQLite store that refuses writes."""

from __future__ import annotations

import os


from jobsd.store import open_store


def test_a_heartbeat_the_store_refuses_is_logged_once_and_the_daemon_beats_on(home, caplog):
    """A store that refuses writes (full disk, read-only) must not turn every 5 s heartbeat into a
    traceback: one error line, then one line when the heartbeat is saved again."""
    import logging

    from jobsd.app import build_context
    from jobsd.context import Paths
    from jobsd.heartbeat import Heartbeat

    caplog.set_level(logging.INFO, logger="jobsd.health")
    store = open_store(os.path.join(home, "jobsd.sqlite3"))
    try:
        ctx = build_context(Paths(home, home, home, os.path.join(home, "runs"), "", "", store.path), store)
        beat = Heartbeat(ctx.journal, ctx.clock, None)
        beat.start()
        store.conn.exec_driver_sql("PRAGMA query_only = ON")  # every write now fails, like a full disk
        beat.beat()
        beat.beat()
        assert caplog.text.count("cannot save the heartbeat in the store") == 1
        assert "Traceback" not in caplog.text
        store.conn.exec_driver_sql("PRAGMA query_only = OFF")
        beat.beat()
        assert "heartbeat saved in the store again" in caplog.text
    finally:
        store.close()
