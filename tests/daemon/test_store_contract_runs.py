"""The store contract (jobsd.ports.StorePort) for runs: numbering, fields, attempts, reads, listings
with cursors, failures in a row, retention, for every store (store_subjects.py says which).
"""
from __future__ import annotations

import math

import pytest

from jobsd.store import AttemptRow, RunRow
from tests.daemon.store_subjects import S, T, add, in_thread, store, subject  # noqa: F401

# ---------------------------------------------------------------------- creating and changing runs
def test_a_new_run_is_stored_as_create_run_returns_it(store):
    with store.write():
        run = store.create_run(job_id="a", state=S.QUEUED, trigger="cron", now=T, wait_reason="slot",
                               reason="why", scheduled_at=T - 5, spec_digest="d1", max_attempts=3)
        born_done = store.create_run(job_id="a", state=S.SKIPPED, trigger="cron", now=T + 1, finished=True)
        retry = store.create_run(job_id="a", state=S.QUEUED, trigger="retry", now=T + 2, retry_of="a/1")
        child = store.create_run(job_id="b", state=S.QUEUED, trigger="dependency", now=T + 3, upstream="a/1",
                                 host="web1")
    assert run == RunRow(run.id, "a", 1, S.QUEUED, "cron", "slot", "why", 0, 3, None, None, T - 5, T, None, None,
                         None, "d1", None, "", "", "", None, "", "", None, "", "", "", ())
    assert store.get_run("b", 1) == child and (child.upstream, child.retry_of, retry.upstream) == ("a/1", "", "")
    assert (child.host, run.host) == ("web1", "")
    assert store.get_run("a", 1) == run and run.ref == "a/1" and run.active
    assert (born_done.n, born_done.finished_at, born_done.reason, born_done.max_attempts) == (2, T + 1, "", 1)
    assert store.get_run("a", 2) == born_done and born_done.id > run.id
    assert store.get_run("a", 3) == retry and (retry.trigger, retry.retry_of, born_done.retry_of) == ("retry", "a/1", "")


def test_latest_outcome_passes_over_records_that_ran_nothing_to_its_own_end(store):
    assert store.latest_outcome("a") is None
    ok, failed, _skipped, _cancelled = add(store, "a", S.SUCCEEDED, S.FAILED, S.SKIPPED, S.CANCELLED)
    assert store.latest_outcome("a") == failed
    (_missed,) = add(store, "b", S.MISSED)
    assert store.latest_outcome("b") is None
    (running,) = add(store, "c", S.RUNNING)
    assert store.latest_outcome("c") is None


def test_last_success_is_the_position_of_the_newest_succeeded_finish_and_outlives_its_run(store):
    assert store.last_success("a") is None
    with store.write():
        store.add_event(T, "run.finished", "a", 1, {"state": "succeeded"})
        second = store.add_event(T + 1, "run.finished", "a", 2, {"state": "succeeded", "exit_code": 0})
        store.add_event(T + 2, "run.finished", "a", 3, {"state": "failed", "exit_code": 1})
        store.add_event(T + 3, "run.queued", "a", 4, {"trigger": "manual", "state": "succeeded"})
        store.add_event(T + 4, "run.finished", "b", 1, {"state": "succeeded"})
    assert store.last_success("a") == (second.seq, 2)  # a failure, another type or job: not a success
    assert store.last_success("b")[1] == 1 and store.last_success("b")[0] > second.seq
    assert store.last_success("c") is None


def test_a_missed_window_is_born_finished_with_its_window(store):
    with store.write():
        missed = store.create_missed_run("a", T, T - 60, "the daemon was down", "d1")
    assert (missed.state, missed.trigger, missed.scheduled_at, missed.queued_at, missed.finished_at) == \
           (S.MISSED, "cron", T - 60, T, T)
    assert (missed.reason, missed.spec_digest) == ("the daemon was down", "d1")
    assert store.get_run("a", missed.n) == missed


def test_run_numbers_count_per_job_and_are_never_reused_also_after_gc(store):
    a1, a2, a3 = add(store, "a", S.SUCCEEDED, S.FAILED, S.SUCCEEDED)
    (b1,) = add(store, "b", S.SUCCEEDED)
    assert [r.n for r in (a1, a2, a3, b1)] == [1, 2, 3, 1]
    with store.write():
        assert store.delete_runs([a1.id, a2.id, a3.id]) == 3
    (a4,) = add(store, "a", S.QUEUED)
    assert a4.n == 4 and store.latest_run("a") == a4 and store.get_run("a", 3) is None
    assert a4.id > b1.id  # larger than every existing run's id
    assert a4.attempt_list == () and store.get_run("a", 4).attempt_list == ()


def test_update_run_sets_only_the_fields_given(store):
    (run,) = add(store, "a", S.QUEUED, spec_digest="d1")
    with store.write():
        store.update_run(run.id, state=S.RUNNING, started_at=T + 1, attempts=1, pgid=4242, wait_reason=None)
    running = store.get_run("a", 1)
    assert running == RunRow(run.id, "a", 1, S.RUNNING, "manual", None, "", 1, 1, None, None, None, T, T + 1, None,
                             None, "d1", 4242, "", "", "", None, "", "", None, "", "", "", ())
    with store.write():
        store.update_run(run.id, state="failed", exit_code=3, signal=None, finished_at=T + 2, reason="exit 3")
        store.update_run(run.id + 1000, state=S.CANCELLED)  # no such run: nothing happens
    failed = store.get_run("a", 1)
    assert (failed.state, failed.exit_code, failed.finished_at, failed.reason, failed.pgid) == \
           (S.FAILED, 3, T + 2, "exit 3", 4242)
    assert failed.state is S.FAILED and not failed.active


def test_attempts_come_in_attempt_order_with_their_ends(store):
    (run,) = add(store, "a", S.RUNNING)
    with store.write():
        store.start_attempt(run.id, 2, T + 20, 102, "inv-2")
        store.start_attempt(run.id, 1, T + 10, None)
    with store.write():
        store.finish_attempt(run.id, 1, finished_at=T + 11, exit_code=1, signal=None, output_bytes=10,
                             dropped_bytes=2, error="boom", timed_out=1)
        store.finish_attempt(run.id, 9, finished_at=T)  # no such attempt: nothing happens
    first, second = store.get_run("a", 1).attempt_list
    assert first == AttemptRow(1, T + 10, T + 11, 1, None, None, 10, 2, "boom", True, "")
    assert first.timed_out is True
    assert second == AttemptRow(2, T + 20, None, None, None, 102, 0, 0, "", False, "inv-2")
    assert store.latest_run("a").attempt_list == store.active_run("a").attempt_list == (first, second)
    assert store.active_runs()[0].attempt_list == (first, second)
    assert store.list_runs("a", 5, None, [])[0].attempt_list == (first, second)


# ---------------------------------------------------------------------- reading runs
def test_latest_and_active_runs(store):
    assert store.get_run("a", 1) is None and store.latest_run("a") is None and store.active_run("a") is None
    assert store.active_runs() == [] and store.counts_by_state() == {}
    a1, a2, a3 = add(store, "a", S.RUNNING, S.QUEUED, S.SUCCEEDED, at=T + 10)
    b1, b2 = add(store, "b", S.RETRYING, S.QUEUED, at=T)
    (c1,) = add(store, "c", S.QUEUED, at=T + 10)  # queued at a1's time: then by id
    assert store.latest_run("a") == a3 and store.active_run("a") == a2 and store.active_run("b") == b2
    assert store.get_run("a", 1) == a1 and store.get_run("a", 4) is None and store.get_run("x", 1) is None
    assert store.active_runs() == [b1, b2, a1, c1, a2]
    assert store.counts_by_state() == {"queued": 3, "running": 1, "retrying": 1}


def test_list_runs_pages_every_job_newest_first_with_cursors(store):
    runs = []
    for i in range(5):
        runs += add(store, "a", S.SUCCEEDED) + add(store, "b", S.FAILED)
    newest_first = sorted(runs, key=lambda r: r.id, reverse=True)
    assert store.list_runs("", 100, None, []) == newest_first
    pages, cursor = [], None
    for _ in range(len(runs)):  # a cursor that does not move on ends the loop too
        page = store.list_runs("", 3, cursor, [])
        if not page:
            break
        assert len(page) <= 3
        pages += page
        cursor = page[-1].id
    assert pages == newest_first
    assert store.list_runs("", 0, None, []) == []


def test_list_runs_of_one_job_and_by_state(store):
    a = add(store, "a", S.SUCCEEDED, S.FAILED, S.RUNNING, S.FAILED, S.SKIPPED)
    b = add(store, "b", S.FAILED, S.QUEUED)
    assert store.list_runs("a", 10, None, []) == a[::-1]
    assert store.list_runs("a", 2, None, []) == [a[4], a[3]]
    assert store.list_runs("a", 10, a[3].id, []) == [a[2], a[1], a[0]]
    assert store.list_runs("a", 10, None, ["failed"]) == [a[3], a[1]]
    assert store.list_runs("a", 1, a[3].id, ["failed", "skipped"]) == [a[1]]
    assert store.list_runs("", 10, None, ["failed", "queued"]) == [b[1], b[0], a[3], a[1]]
    assert store.list_runs("", 10, b[0].id, ["failed"]) == [a[3], a[1]]
    assert store.list_runs("a", 10, b[0].id, []) == a[::-1]  # a cursor of another job: by id
    assert store.list_runs("x", 10, None, []) == []


@pytest.mark.parametrize("job", ["a", ""])
def test_a_cursor_whose_run_was_deleted_pages_on_from_its_place(store, job):
    runs = add(store, "a", *[S.SUCCEEDED] * 6)
    first = store.list_runs(job, 2, None, [])
    assert first == [runs[5], runs[4]]
    with store.write():
        store.delete_runs([runs[4].id, runs[3].id])  # gc between two pages: the cursor's run and the next
    assert store.list_runs(job, 2, first[-1].id, []) == [runs[2], runs[1]]
    assert store.list_runs(job, 10, first[-1].id, ["succeeded"]) == [runs[2], runs[1], runs[0]]


# ---------------------------------------------------------------------- failures in a row
HISTORIES = {  # oldest first: (states, failures in a row)
    "none": ([], 0),
    "ok": ([S.SUCCEEDED], 0),
    "one": ([S.FAILED], 1),
    "mixed": ([S.SUCCEEDED, S.FAILED, S.SKIPPED, S.TIMED_OUT, S.CANCELLED, S.INTERRUPTED], 3),
    "recovered": ([S.FAILED, S.FAILED, S.SUCCEEDED, S.MISSED], 0),
    "running": ([S.SUCCEEDED, S.FAILED, S.RUNNING], 1),
    "queued": ([S.INTERRUPTED, S.FAILED, S.CANCELLED, S.QUEUED], 2),
}


def test_job_summaries_and_consecutive_failures_count_finished_runs_down_to_a_success(store):
    for job, (states, _) in HISTORIES.items():
        if states:
            add(store, job, *states)
    summaries = store.job_summaries([*HISTORIES, "unknown"])
    assert set(summaries) == {*HISTORIES, "unknown"} and summaries["unknown"] == (None, 0)
    for job, (states, failures) in HISTORIES.items():
        latest = store.latest_run(job)
        assert summaries[job] == (latest, failures), job
        assert store.consecutive_failures(job) == failures, job
        assert (latest.state if latest else None) == (states[-1] if states else None)
    assert store.job_summaries([]) == {}
    assert store.job_summaries(["one"]) == {"one": (store.latest_run("one"), 1)}


def test_the_failures_in_a_row_are_counted_within_the_window(store):
    add(store, "a", S.SUCCEEDED, *[S.FAILED] * 5)
    add(store, "b", S.FAILED, S.SUCCEEDED, S.SKIPPED, S.FAILED)
    assert store.consecutive_failures("a", window=3) == 3 and store.consecutive_failures("a", window=10) == 5
    assert store.job_summaries(["a", "b"], window=3) == {"a": (store.latest_run("a"), 3),
                                                         "b": (store.latest_run("b"), 1)}
    assert store.consecutive_failures("b", window=1) == 1


def test_job_summaries_show_every_committed_change_and_no_rolled_back_one(store):
    add(store, "a", S.SUCCEEDED)
    before = store.job_summaries(["a", "b"])
    assert store.job_summaries(["a", "b"]) == before
    (run,) = add(store, "a", S.RUNNING)
    assert store.job_summaries(["a", "b"])["a"] == (run, 0)
    with store.write():
        store.update_run(run.id, state=S.FAILED, finished_at=T + 5)
    assert store.job_summaries(["a", "b"])["a"] == (store.get_run("a", 2), 1)
    with pytest.raises(RuntimeError):
        with store.write():
            store.create_run(job_id="b", state=S.QUEUED, trigger="manual", now=T)
            assert store.job_summaries(["a", "b"])["b"][0].n == 1  # the block sees its own run
            raise RuntimeError("the block fails")
    assert store.job_summaries(["a", "b"])["b"] == (None, 0)
    with store.write():
        store.delete_runs([run.id])
    assert store.job_summaries(["a", "b"]) == before


# ---------------------------------------------------------------------- retention
def test_removable_runs_rank_finished_runs_by_count_and_age_and_never_active_ones(store):
    a = add(store, "a", S.SUCCEEDED, S.FAILED, S.RUNNING, S.SUCCEEDED, S.SKIPPED, at=100)  # finished at 100..104
    b = add(store, "b", S.SUCCEEDED, S.QUEUED, at=50)
    with store.write():
        (c,) = [store.create_run(job_id="c", state=S.CANCELLED, trigger="manual", now=10)]  # no finished_at
        store.update_run(a[3].id, finished_at=400)
    assert store.removable_runs("", 2, math.inf) == [(a[0].id, "a", 1), (a[1].id, "a", 2)]
    assert store.removable_runs("", 0, 101.5) == [(a[0].id, "a", 1), (a[1].id, "a", 2), (b[0].id, "b", 1),
                                                  (c.id, "c", 1)]
    assert store.removable_runs("a", 1, 450) == [(a[0].id, "a", 1), (a[1].id, "a", 2), (a[3].id, "a", 4)]
    assert store.removable_runs("a", 0, math.inf) == [(r.id, "a", r.n) for r in (a[0], a[1], a[3], a[4])]
    assert store.removable_runs("c", 0, 10) == [] and store.removable_runs("c", 0, 10.5) == [(c.id, "c", 1)]
    assert store.removable_runs("b", 1, math.inf) == [] and store.removable_runs("x", 0, math.inf) == []


def test_delete_runs_removes_finished_runs_with_their_attempts_keeps_active_ones_and_every_event(store):
    active, done = add(store, "a", S.RUNNING, S.FAILED)
    with store.write():
        store.start_attempt(done.id, 1, T, 7)
        event = store.add_event(T, "run.finished", "a", 2, {"state": "failed"})
        gone = store.delete_runs([done.id, active.id, done.id, done.id + 1000])
    assert gone == 1
    assert store.get_run("a", 2) is None and store.get_run("a", 1) == active
    assert store.run_events("a", 2) == [event] and store.events_after(0) == [event]
    assert store.finished_ends("a") == {} and store.removable_runs("a", 0, math.inf) == []
    (after,) = add(store, "a", S.QUEUED)  # may take the deleted run's id: not its attempts
    assert after.n == 3 and store.get_run("a", 3).attempt_list == ()
    with store.write():
        assert store.delete_runs([]) == 0


def test_a_deleted_runs_folder_is_owed_until_reported_removed_and_a_rolled_back_delete_owes_nothing(store):
    runs = add(store, "a", S.SUCCEEDED, S.RUNNING, S.FAILED) + add(store, "b", S.SKIPPED)
    with pytest.raises(RuntimeError), store.write():
        store.delete_runs([runs[0].id])
        raise RuntimeError("rolled back")
    assert store.owed_folders() == [] and store.get_run("a", 1) is not None
    with store.write():
        assert store.delete_runs([runs[3].id, runs[2].id, runs[1].id, runs[0].id]) == 3
    assert store.owed_folders() == [("a", 1), ("a", 3), ("b", 1)]  # the active a/2 is neither deleted nor owed
    with store.write():
        store.folders_removed([("a", 3), ("zz", 9)])
    assert store.owed_folders() == [("a", 1), ("b", 1)]
    with store.write():
        store.folders_removed([("a", 1), ("b", 1)])
    assert store.owed_folders() == []


def test_removable_runs_from_a_worker_thread_sees_committed_runs_only(store):
    a = add(store, "a", S.SUCCEEDED, S.FAILED, S.RUNNING)
    committed = [(a[0].id, "a", 1), (a[1].id, "a", 2)]
    assert in_thread(lambda: store.removable_runs("", 0, math.inf)) == committed
    with store.write():  # the loop writes on while the worker reads
        store.update_run(a[2].id, state=S.SUCCEEDED, finished_at=T + 3)
        store.delete_runs([a[0].id])
        assert in_thread(lambda: store.removable_runs("a", 0, math.inf)) == committed
    assert in_thread(lambda: store.removable_runs("a", 1, math.inf)) == [(a[1].id, "a", 2)]


def test_recent_windows_are_the_newest_scheduled_runs_windows(store):
    with store.write():
        for window in (10.0, None, 30.0, 40.0, None):
            store.create_run(job_id="a", state=S.SUCCEEDED, trigger="cron", now=T, scheduled_at=window)
        store.create_run(job_id="b", state=S.SUCCEEDED, trigger="cron", now=T, scheduled_at=99.0)
    assert store.recent_windows("a", 2) == {30.0, 40.0} and store.recent_windows("a") == {10.0, 30.0, 40.0}
    assert store.recent_windows("x") == set()


def test_finished_ends_are_read_in_a_worker_thread_and_show_committed_runs_only(store):
    a = add(store, "a", S.SUCCEEDED, S.RUNNING, S.FAILED)
    add(store, "b", S.SUCCEEDED)
    committed = {1: T, 3: T + 2}
    assert in_thread(lambda: store.finished_ends("a")) == committed
    with store.write():  # the loop writes on while the worker reads
        store.create_run(job_id="a", state=S.SKIPPED, trigger="cron", now=T + 9, finished=True)
        store.update_run(a[0].id, finished_at=T + 5)
        store.update_run(a[1].id, state=S.FAILED, finished_at=T + 6)
        assert in_thread(lambda: store.finished_ends("a")) == committed
        assert len(in_thread(store.checkpoint)) == 3
    assert in_thread(lambda: store.finished_ends("a")) == {1: T + 5, 2: T + 6, 3: T + 2, 4: T + 9}


def test_run_totals_and_last_success_times_cover_every_job_at_once(store):
    add(store, "a", S.SUCCEEDED, S.FAILED, S.FAILED)
    add(store, "b", S.SKIPPED)
    assert store.run_totals() == {("a", "succeeded"): 1, ("a", "failed"): 2, ("b", "skipped"): 1}
    with store.write():
        store.add_event(T, "run.finished", "a", 1, {"state": "succeeded"})
        store.add_event(T + 5, "run.finished", "a", 4, {"state": "succeeded"})
        store.add_event(T + 9, "run.finished", "a", 5, {"state": "failed"})
        store.add_event(T + 2, "run.finished", "c", 1, {"state": "succeeded"})
    assert store.last_success_times() == {"a": T + 5, "c": T + 2}
