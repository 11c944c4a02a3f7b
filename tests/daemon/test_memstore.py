"""What MemoryStore offers ops tests beyond the store contract (test_store_contract.py holds that):
a power cut that loses exactly what durable=False left unsynced, and a refusal of changes made
outside write() (SQLite would commit such a stray statement on its own)."""
from __future__ import annotations

import pytest

from jobsd.memstore import MemoryStore
from jobsd_lib.errors import InternalError
from jobsd_lib.kernel.states import RunState


def test_a_power_cut_loses_the_non_durable_commits_since_the_last_durable_one_or_checkpoint():
    store = MemoryStore()
    with store.write(durable=False):
        store.create_run(job_id="a", state=RunState.QUEUED, trigger="manual", now=1.0)
    with store.write():  # a durable commit syncs what came before it
        store.set_meta("k", "synced")
    with store.write(durable=False):
        run = store.create_run(job_id="a", state=RunState.QUEUED, trigger="manual", now=2.0)
    with store.write(durable=False):
        store.update_run(run.id, state=RunState.RUNNING)
        store.add_event(2.0, "run.started", "a", run.n)
        store.set_meta("k", "lost")
    store.power_cut()
    assert [r.n for r in store.list_runs("", 10, None, [])] == [1]
    assert store.get_meta("k") == "synced" and store.events_after(0) == []
    with store.write(durable=False):  # the lost number is handed out again, as SQLite would
        again = store.create_run(job_id="a", state=RunState.QUEUED, trigger="manual", now=3.0)
    assert again.n == 2
    store.checkpoint()  # like a WAL checkpoint: what was committed is durable now
    store.power_cut()
    assert store.get_run("a", 2) == again


def test_a_change_outside_write_is_refused():
    store = MemoryStore()
    with pytest.raises(InternalError, match="outside write"):
        store.set_meta("k", "v")
    assert store.get_meta("k") is None
