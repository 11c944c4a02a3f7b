"""The store contract (jobsd.ports.StorePort): the store itself, its transactions, events,
operator state and meta, for every store (store_subjects.py says which; runs are in
test_store_contract_runs.py).
"""
from __future__ import annotations

import inspect

import pytest

from jobsd.ports import StorePort
from jobsd.store import OperatorRow, StoreUnwritable
from jobsd_lib.errors import InternalError
from tests.daemon.store_subjects import S, T, add, change_everything, everything, seed, store, subject  # noqa: F401

def test_the_store_has_every_member_of_the_port_with_its_parameters(store):
    assert isinstance(store, StorePort)  # every member there, path and write_failure too
    methods = {name: member for name, member in vars(StorePort).items() if callable(member) and name[0] != "_"}
    assert {"write", "create_run", "list_runs", "finished_ends", "set_meta"} <= methods.keys()
    for name, member in methods.items():
        port = inspect.signature(member).parameters
        mine = inspect.signature(getattr(type(store), name)).parameters
        assert [(p.name, p.kind, p.default) for p in mine.values()] == \
               [(p.name, p.kind, p.default) for p in port.values()], name


def test_a_write_block_that_raises_changes_nothing(store):
    run = seed(store)
    before = everything(store)
    with pytest.raises(KeyError):
        with store.write():
            change_everything(store, run)
            assert store.get_run("a", 1).state is S.SUCCEEDED and store.get_meta("k") == "changed"
            raise KeyError("the block fails")
    assert everything(store) == before
    with pytest.raises(KeyError):
        with store.write(durable=False):
            store.update_run(run.id, state=S.FAILED, finished_at=T + 1)
            assert store.delete_runs([run.id]) == 1
            raise KeyError("the block fails")
    assert everything(store) == before
    (new,) = add(store, "new", S.QUEUED)
    assert new.n == 1  # the number the rolled-back block took is the next one


def test_a_nested_write_raises_and_changes_nothing(store):
    with pytest.raises(InternalError, match="nested store write"):
        with store.write():
            store.set_meta("k", "outer")
            with store.write():
                store.set_meta("k", "inner")
    assert store.get_meta("k") is None
    with store.write():  # the store writes on
        store.set_meta("k", "v")
    assert store.get_meta("k") == "v"


def test_durable_and_non_durable_writes_both_commit(store):
    with store.write(durable=False):
        store.set_meta("k", "fast")
    assert store.get_meta("k") == "fast"
    with store.write(durable=True):
        store.set_meta("k", "synced")
    assert store.get_meta("k") == "synced"


def test_a_refused_write_raises_store_unwritable_changes_nothing_and_the_store_recovers(subject):
    store = subject.store
    run = seed(store)
    before = everything(store)
    subject.refuse()
    with pytest.raises(StoreUnwritable) as refused:
        with store.write():
            change_everything(store, run)
    assert isinstance(refused.value, InternalError) and refused.value.cause
    assert "nothing was changed" in str(refused.value)
    failure = store.write_failure
    assert failure is not None and failure.cause == refused.value.cause and isinstance(failure.since, float)
    with pytest.raises(StoreUnwritable):
        with store.write(durable=False):
            store.set_meta("k", "again")
    assert store.write_failure == failure  # since the first failure
    assert everything(store) == before
    subject.accept()
    assert store.write_failure == failure  # until a write commits
    (new,) = add(store, "new", S.QUEUED)
    assert store.write_failure is None and new.n == 1 and store.latest_run("new") == new


# ---------------------------------------------------------------------- events
def test_events_get_growing_seqs_and_their_attributes_as_strings(store):
    assert store.events_after(0) == [] and store.last_event_seq() == 0 and store.last_event_seq(back=3) == 0
    with store.write():
        first = store.add_event(T, "daemon.started", attrs={"pid": 42, "clean": True, "gone": None})
        second = store.add_event(T + 1, "run.queued", "a", 1, {"trigger": "manual"})
    with store.write():
        third = store.add_event(T + 2, "job.paused", "a")
    assert first.seq < second.seq < third.seq
    assert (first.ts, first.type, first.job_id, first.run_n, first.attrs) == \
           (T, "daemon.started", "", None, {"pid": "42", "clean": "True"})
    assert (second.run_ref, third.run_ref, third.attrs) == ("a/1", "", {})
    assert store.events_after(0) == [first, second, third]
    with pytest.raises(RuntimeError):
        with store.write():
            store.add_event(T + 3, "lost", "a")
            raise RuntimeError("the block fails")
    with store.write():
        fourth = store.add_event(T + 4, "run.started", "b", 1)
    assert fourth.seq > third.seq and store.events_after(third.seq) == [fourth]


def test_add_events_appends_in_order_as_add_event_would_and_set_metas_as_set_meta(store):
    with store.write():
        one = store.add_event(T, "daemon.started", attrs={"pid": 1})
        store.add_events([(T + 1, "job.overdue", "a", None, {"since": 5.5, "gone": None}),
                          (T + 2, "run.queued", "b", 3, {})])
        store.add_events([])
        store.set_metas({"k1": "v1", "k2": "v2"})
        store.set_metas({"k1": "v3"})
    [first, second, third] = store.events_after(0)
    assert first == one and second.seq > one.seq and third.seq > second.seq
    assert (second.ts, second.type, second.job_id, second.run_n, second.attrs) == (T + 1, "job.overdue", "a", None,
                                                                                  {"since": "5.5"})
    assert (third.run_ref, third.attrs) == ("b/3", {})
    assert (store.get_meta("k1"), store.get_meta("k2")) == ("v3", "v2")
    with pytest.raises(RuntimeError), store.write():
        store.add_events([(T + 3, "lost", "a", None, {})])
        raise RuntimeError("rolled back")
    assert store.last_event_seq() == third.seq


def test_events_after_and_last_event_seq_follow_the_log_from_any_point(store):
    with store.write():
        events = [store.add_event(T + i, "e", job, 1) for i, job in enumerate("abab")]
        daemon = store.add_event(T + 9, "daemon.reloaded")
    every = [*events, daemon]
    assert store.events_after(0, limit=2) == every[:2] and store.events_after(events[1].seq) == every[2:]
    assert store.events_after(0, "a") == [events[0], events[2]] and store.events_after(events[0].seq, "a", 1) == \
           [events[2]]
    assert store.events_after(daemon.seq) == [] and store.events_after(0, "x") == []
    assert store.last_event_seq() == daemon.seq and store.last_event_seq(back=-1) == daemon.seq
    assert store.events_after(store.last_event_seq(back=2)) == every[-2:]
    assert store.last_event_seq("b") == events[3].seq and store.last_event_seq("b", back=1) == events[1].seq
    assert store.last_event_seq("b", back=2) == 0 and store.last_event_seq(back=5) == 0
    assert store.last_event_seq(back=4) == events[0].seq and store.last_event_seq("x") == 0


def test_run_events_are_one_runs_events_in_order(store):
    with store.write():
        mine = [store.add_event(T, "run.queued", "a", 2), store.add_event(T + 1, "run.started", "a", 2, {"pid": 9})]
        store.add_event(T + 2, "run.queued", "a", 3)
        store.add_event(T + 3, "run.queued", "b", 2)
        store.add_event(T + 4, "job.paused", "a")
        mine.append(store.add_event(T + 5, "run.finished", "a", 2, {"state": "succeeded"}))
    assert store.run_events("a", 2) == mine and store.run_events("a", 9) == []


# ---------------------------------------------------------------------- operator state and meta
def test_operator_states_are_set_replaced_and_read_back(store):
    assert store.operator_states() == {} and store.operator_state("a") is None
    with store.write():
        store.set_operator_state("a", "paused", T, "uid 0")
        store.set_operator_state("b", "disabled", T, "")
    with store.write():
        store.set_operator_state("a", "active", T + 1, "uid 1000")
    states = store.operator_states()
    assert states == {"a": "active", "b": "disabled"} and store.operator_state("a") == "active"
    states["a"] = "mangled"  # the caller's own dict
    assert store.operator_states() == {"a": "active", "b": "disabled"}


def test_a_pause_keeps_its_end_and_reason_until_the_state_is_replaced(store):
    with store.write():
        store.set_operator_state("a", "paused", T, "uid 0", until=T + 3600, reason="db migration")
    assert store.operator_rows() == {"a": OperatorRow("paused", T, "uid 0", T + 3600, "db migration")}
    with store.write():
        store.set_operator_state("a", "active", T + 1, "scheduler")
    rows = store.operator_rows()
    assert rows == {"a": OperatorRow("active", T + 1, "scheduler", None, "")}
    rows.clear()  # the caller's own dict
    assert store.operator_states() == {"a": "active"}


def test_meta_is_set_replaced_and_read_back(store):
    assert store.get_meta("heartbeat") is None
    with store.write():
        store.set_meta("heartbeat", "1")
        store.set_meta("heartbeat", "2")
        store.set_meta("other", "")
    assert (store.get_meta("heartbeat"), store.get_meta("other")) == ("2", "")


# ---------------------------------------------------------------------- upkeep
def test_size_grows_with_the_rows_and_migrate_and_checkpoint_keep_them(store):
    empty = store.size_bytes()
    assert isinstance(empty, int) and empty >= 0
    with store.write():
        for i in range(200):
            store.add_event(T, "filler", "a", 1, {"pad": "x" * 1000, "i": i})
    assert store.size_bytes() > empty
    before = everything(store)
    busy, pending, done = store.checkpoint()
    assert all(isinstance(v, int) for v in (busy, pending, done)) and busy in (0, 1)
    store.migrate()
    assert everything(store) == before and store.path


def test_the_reserve_is_given_up_once_and_kept_again(store):
    assert store.keep_reserve() is True
    assert store.release_reserve() is True and store.release_reserve() is False
    assert store.keep_reserve() is True and store.keep_reserve() is True
