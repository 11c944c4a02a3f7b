"""The stores under the store contract (jobsd.ports.StorePort), and the helpers of its suite.

The `subject` fixture is the only place that knows which store a contract test gets: the SQLite
store on a file (jobsd.store.open_store), the same Store on a database of a private PostgreSQL
server (tests/pg_server.py), or the in-memory one for ops tests (jobsd.memstore.MemoryStore). The suite: test_store_contract.py (the
store, its transactions, events, operator state and meta) and test_store_contract_runs.py (runs).
SQLite-only matters (WAL, pragmas, checkpoints, quick_check, migrations, the reserve file,
statement counts) stay in test_store.py and test_list_jobs.py.
"""
from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from jobsd.memstore import MemoryStore
from jobsd.ports import StorePort
from jobsd.store import RunRow, open_store
from jobsd_lib.kernel.states import RunState

__all__ = ["S", "T", "Subject", "subject", "store", "add", "in_thread", "everything", "seed", "change_everything"]

S = RunState
T = 1000.0  # epoch seconds the tests hand the store as `now`


@dataclass
class Subject:
    store: StorePort
    refuse: Callable[[], None]  # from now on the store cannot take writes (like a full disk)
    accept: Callable[[], None]  # it can again


@pytest.fixture(params=["sqlite", "postgresql", "memory"])
def subject(request: pytest.FixtureRequest, tmp_path) -> Iterator[Subject]:  # noqa: ANN001
    if request.param == "sqlite":
        store = open_store(str(tmp_path / "jobsd.sqlite3"))
        # query_only: SQLite itself refuses every write ("attempt to write a readonly database"),
        # as it refuses them on a full or failing disk (test_store.py fills a database for real)
        pragma = store.conn.exec_driver_sql
        yield Subject(store, lambda: pragma("PRAGMA query_only = ON"), lambda: pragma("PRAGMA query_only = OFF"))
        store.close()
    elif request.param == "postgresql":
        store = open_store(request.getfixturevalue("pg_server").new_database())
        # a read-only session: the server refuses every write ("cannot execute INSERT in a read-only
        # transaction"), as it would one on a full disk
        run = store.conn.exec_driver_sql
        yield Subject(store, lambda: run("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY"),
                      lambda: run("SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE"))
        store.close()
    else:
        ticks = itertools.count(5000.0)
        memory = MemoryStore(now=lambda: next(ticks))
        yield Subject(memory, lambda: memory.fail_writes("disk I/O error"), lambda: memory.fail_writes(None))


@pytest.fixture
def store(subject: Subject) -> StorePort:
    return subject.store


def add(store: StorePort, job: str, *states: RunState, at: float = T, **fields: object) -> list[RunRow]:
    """Runs of `job` in `states`, one second apart from `at`; terminal ones finished at birth."""
    with store.write():
        return [store.create_run(job_id=job, state=state, trigger="manual", now=at + i,
                                 finished=state not in (S.QUEUED, S.RUNNING, S.RETRYING), **fields)
                for i, state in enumerate(states)]


def in_thread(call: Callable[[], object]) -> object:
    """call() in a worker thread; its answer."""
    answers: list[object] = []
    worker = threading.Thread(target=lambda: answers.append(call()))
    worker.start()
    worker.join(10)
    assert answers, "the call in the worker thread did not return"
    return answers[0]


def everything(store: StorePort) -> tuple:
    """What the port can read back, for 'nothing changed' comparisons."""
    return (store.list_runs("", 1000, None, []), store.events_after(0), store.operator_states(),
            store.get_meta("k"), store.latest_run("a"), store.latest_run("new"), store.last_event_seq())


def seed(store: StorePort) -> RunRow:
    """A running run a/1 with an attempt and an event, job a paused, meta k = v; the run."""
    (run,) = add(store, "a", S.RUNNING)
    with store.write():
        store.start_attempt(run.id, 1, T, 7)
        store.add_event(T, "run.started", "a", 1)
        store.set_operator_state("a", "paused", T, "")
        store.set_meta("k", "v")
    return run


def change_everything(store: StorePort, run: RunRow) -> None:
    """Inside a write: one change of every kind the port has, to what seed() made."""
    store.create_run(job_id="new", state=S.QUEUED, trigger="manual", now=T)
    store.update_run(run.id, state=S.SUCCEEDED, finished_at=T + 1)
    store.finish_attempt(run.id, 1, finished_at=T + 1, exit_code=0)
    store.start_attempt(run.id, 2, T + 2, 8)
    store.add_event(T + 1, "run.finished", "a", 1)
    store.set_operator_state("a", "active", T + 1, "")
    store.set_operator_state("b", "disabled", T + 1, "")
    store.set_meta("k", "changed")
