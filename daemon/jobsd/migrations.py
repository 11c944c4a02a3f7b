"""Versioned schema migrations for our own tables (never pickles: columns we can read back).

MIGRATIONS[i] takes the schema from version i to i+1. Append, never edit a released step.
APScheduler keeps its own table (apscheduler_jobs) with its own engine (PITFALLS 9).
"""
from __future__ import annotations

__all__ = ["MIGRATIONS", "SCHEMA_VERSION"]

_V1 = [
    """CREATE TABLE job_state (
        job_id TEXT PRIMARY KEY,
        operator_state TEXT NOT NULL,        -- active | paused | disabled
        changed_at REAL NOT NULL,
        changed_by TEXT NOT NULL DEFAULT ''
    )""",
    """CREATE TABLE job_counters (job_id TEXT PRIMARY KEY, last_n INTEGER NOT NULL)""",
    """CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        job_id TEXT NOT NULL,
        n INTEGER NOT NULL,
        state TEXT NOT NULL,
        trigger TEXT NOT NULL,
        wait_reason TEXT,
        reason TEXT NOT NULL DEFAULT '',
        attempts INTEGER NOT NULL DEFAULT 0,
        max_attempts INTEGER NOT NULL DEFAULT 1,
        exit_code INTEGER,
        signal INTEGER,
        scheduled_at REAL,
        queued_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL,
        next_attempt_at REAL,
        spec_digest TEXT NOT NULL DEFAULT '',
        pgid INTEGER,
        UNIQUE (job_id, n)
    )""",
    "CREATE INDEX runs_by_job ON runs (job_id, n DESC)",
    "CREATE INDEX runs_active ON runs (state) WHERE state IN ('queued', 'running', 'retrying')",
    """CREATE TABLE attempts (
        run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        number INTEGER NOT NULL,
        started_at REAL,
        finished_at REAL,
        exit_code INTEGER,
        signal INTEGER,
        pid INTEGER,
        output_bytes INTEGER NOT NULL DEFAULT 0,
        dropped_bytes INTEGER NOT NULL DEFAULT 0,
        error TEXT NOT NULL DEFAULT '',
        timed_out INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (run_id, number)
    )""",
    """CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        ts REAL NOT NULL,
        type TEXT NOT NULL,
        job_id TEXT NOT NULL DEFAULT '',
        run_n INTEGER,
        attrs TEXT NOT NULL DEFAULT '{}'
    )""",
    "CREATE INDEX events_by_job ON events (job_id, seq)",
    "CREATE TABLE daemon_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
]

# v2: each attempt's JOBSD_INVOCATION_ID, so a restart can find the processes of an attempt that a
# dead daemon left behind even when they left its process group.
_V2 = ["ALTER TABLE attempts ADD COLUMN invocation_id TEXT NOT NULL DEFAULT ''"]

# v3 (DESIGN 10): the run a `runs retry` run repeats, the upstream run that started a dependency run
# ('' for every other run), what a run waiting for its gates waits for and since when; events of one job by type, for "the job's latest success" (the job
# graph's positions).
_V3 = ["ALTER TABLE runs ADD COLUMN retry_of TEXT NOT NULL DEFAULT ''",
       "ALTER TABLE runs ADD COLUMN upstream TEXT NOT NULL DEFAULT ''",
       "ALTER TABLE runs ADD COLUMN wait_detail TEXT NOT NULL DEFAULT ''",
       "ALTER TABLE runs ADD COLUMN waiting_since REAL",
       "CREATE INDEX events_by_job_type ON events (job_id, type, seq)"]

# v4 (DESIGN 10): a run's approval or rejection ([gates] approval): which, who, when, the comment and
# the deciding client's claimed name.
_V4 = ["ALTER TABLE runs ADD COLUMN decision TEXT NOT NULL DEFAULT ''",
       "ALTER TABLE runs ADD COLUMN decided_by TEXT NOT NULL DEFAULT ''",
       "ALTER TABLE runs ADD COLUMN decided_at REAL",
       "ALTER TABLE runs ADD COLUMN decision_comment TEXT NOT NULL DEFAULT ''",
       "ALTER TABLE runs ADD COLUMN decision_client TEXT NOT NULL DEFAULT ''"]

# v5 (DESIGN 11): a pause that ends by itself (`jobs pause --until`) and the operator's reason.
_V5 = ["ALTER TABLE job_state ADD COLUMN paused_until REAL",
       "ALTER TABLE job_state ADD COLUMN state_reason TEXT NOT NULL DEFAULT ''"]

# v6 (DESIGN 11): run folders that gc still owes. A run's row and its folder cannot go in one
# transaction: the row goes with a line here, the line once the folder is gone, so a gc stopped by
# SIGTERM or SIGKILL between the two leaves a list, not folders that nothing names.
_V6 = ["CREATE TABLE gc_folders (job_id TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (job_id, n))"]

# v7 (DESIGN 12): the host that recorded a run and runs it (--host-name), for `runs show` and, on a
# shared store, for telling this host's runs from the others'.
_V7 = ["ALTER TABLE runs ADD COLUMN host TEXT NOT NULL DEFAULT ''"]

# v8 (DESIGN 12): the host of each folder gc owes: on a shared store each host removes its own.
_V8 = ["ALTER TABLE gc_folders ADD COLUMN host TEXT NOT NULL DEFAULT ''"]

MIGRATIONS: list[list[str]] = [_V1, _V2, _V3, _V4, _V5, _V6, _V7, _V8]
SCHEMA_VERSION = len(MIGRATIONS)
