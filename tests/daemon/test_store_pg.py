"""What only the PostgreSQL store needs beyond the store contract (which it passes with SQLite and the
memory store: test_store_contract*.py), on a real private server (tests/pg_server.py): the schema
the same as SQLite's, epoch seconds exact, event seqs in commit order with several writers, a
migration that two hosts start at once, reconnecting after the server restarts, and the errors
of a bad URL or a server that is not there."""
from __future__ import annotations

import shutil
import sqlite3
import tempfile
import threading

import pytest

from jobsd.store import StoreCorrupt, StoreUnwritable, open_store
from jobsd.pg_migrations import PG_SCHEMA_VERSION
from jobsd.store_hosts import HOST_LEASE, ThisHost
from jobsd_lib.kernel.states import RunState
from tests.conftest import wait_for

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def url(pg_server) -> str:  # noqa: ANN001
    return pg_server.new_database()


def _db(url: str) -> str:
    return url.split("@/", 1)[1].split("?")[0]


def test_the_schema_has_sqlites_tables_and_columns(pg_server, url, tmp_path):  # noqa: ANN001
    open_store(str(tmp_path / "s.sqlite3")).close()
    open_store(url).close()
    lite = sqlite3.connect(tmp_path / "s.sqlite3")
    tables = [t for (t,) in lite.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                          "AND name NOT LIKE 'sqlite_%'")]
    sqlite_columns = {(t, c[1]) for t in tables for c in lite.execute(f"PRAGMA table_info({t})")}
    pg_columns = set(pg_server.psql("SELECT table_name, column_name FROM information_schema.columns "
                                    "WHERE table_schema = 'public'", db=_db(url)))
    # PostgreSQL's own additions: the counter row that hands out event seqs in commit order, and
    # the hosts and the scheduler's lease of a shared store
    own = {t for t, _ in pg_columns - sqlite_columns}
    assert own == {"counters", "hosts", "lease", "windows"}
    assert sqlite_columns - pg_columns == set()
    epoch_types = set(pg_server.psql("SELECT DISTINCT data_type FROM information_schema.columns WHERE "
                                     "table_schema = 'public' AND column_name LIKE '%\\_at' ESCAPE '\\'", db=_db(url)))
    assert epoch_types == {("double precision",)}  # never REAL (a float4: seconds off)


def test_epoch_seconds_come_back_exact(url):  # noqa: ANN001
    store = open_store(url)
    at = 1796321554.609128
    with store.write():
        run = store.create_run(job_id="a", state=RunState.QUEUED, trigger="manual", now=at, scheduled_at=at)
    again = store.get_run("a", run.n)
    assert (again.queued_at, again.scheduled_at) == (at, at)
    store.close()


def test_event_seqs_follow_commit_order_with_two_writers(pg_server, url):  # noqa: ANN001
    """A follower reads events after its cursor: a seq taken early but committed late would be skipped.
    The second writer waits for the first one's commit and gets the next seq."""
    first, second = open_store(url), open_store(url)
    seqs: dict[str, int] = {}
    with first.write():
        seqs["first"] = first.add_event(1.0, "job.paused", "a").seq
        worker = threading.Thread(target=lambda: _add(second, seqs))
        worker.start()
        wait_for(lambda: pg_server.psql("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                        f"AND datname = '{_db(url)}'")[0][0] == 1, 10, "the second writer to wait")
    worker.join(10)
    assert seqs == {"first": 1, "second": 2}
    assert [e.seq for e in first.events_after(0)] == [1, 2]
    with first.write():
        first.add_events([(3.0, "job.resumed", "a", None, {}), (4.0, "job.paused", "a", None, {"by": "x"})])
    assert [(e.seq, e.type) for e in second.events_after(2)] == [(3, "job.resumed"), (4, "job.paused")]
    first.close()
    second.close()


def _add(store, seqs: dict[str, int]) -> None:  # noqa: ANN001
    with store.write():
        seqs["second"] = store.add_event(2.0, "job.resumed", "a").seq


def test_two_hosts_starting_together_migrate_once(pg_server, url):  # noqa: ANN001
    stores, errors = [], []

    def start() -> None:
        try:
            stores.append(open_store(url))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == [] and len(stores) == 4
    assert pg_server.psql("SELECT version FROM schema_version ORDER BY version", db=_db(url)) == \
        [(v,) for v in range(1, PG_SCHEMA_VERSION + 1)]
    for store in stores:
        store.close()


def test_after_the_server_restarts_the_next_write_reconnects_and_commits_and_nothing_is_lost(pg_server, url):  # noqa: ANN001
    store = open_store(url)
    with store.write():
        kept = store.create_run(job_id="a", state=RunState.QUEUED, trigger="manual", now=1.0)
    pg_server.restart("immediate")  # the server crashes and recovers: this connection is gone
    outcomes = []
    for _ in range(3):
        try:
            with store.write():
                store.create_run(job_id="a", state=RunState.QUEUED, trigger="manual", now=2.0)
            outcomes.append("ok")
        except StoreUnwritable as exc:
            outcomes.append("refused")
            assert "jobsd cannot write its store postgresql+psycopg://postgres@/" in str(exc)
    assert outcomes == ["ok", "ok", "ok"]  # BEGIN found the connection dropped: a new one, nothing was sent
    assert store.write_failure is None
    assert store.get_run("a", kept.n) is not None
    assert [r.n for r in store.list_runs("a", 10, None, ())] == [kept.n + i for i in range(outcomes.count("ok"), -1, -1)]
    store.close()


def test_reads_after_a_restart_reconnect(pg_server, url):  # noqa: ANN001
    store = open_store(url)
    with store.write():
        store.set_meta("k", "v")
    pg_server.restart("fast")
    answers = []
    for _ in range(2):
        try:
            answers.append(store.get_meta("k"))
        except Exception as exc:  # noqa: BLE001  (what the first read after the restart may raise)
            answers.append(type(exc).__name__)
    assert answers[-1] == "v"
    store.close()


@pytest.mark.parametrize("target, says", [
    ("mysql://root@localhost/jobs", "mysql://...: jobsd stores runs in a SQLite file (a path) or in PostgreSQL"),
    ("postgresql+psycopg://postgres@/nosuchdb?host=/tmp/no-such-dir", "postgresql+psycopg://postgres@/nosuchdb"),
])
def test_a_bad_url_or_a_missing_server_is_refused_with_the_reason(target, says):  # noqa: ANN001
    with pytest.raises(StoreCorrupt) as caught:
        open_store(target)
    assert says in str(caught.value)


def test_a_password_in_the_url_is_never_shown(pg_server, url):  # noqa: ANN001
    secret = url.replace("postgres@", "postgres:hunter2@")
    store = open_store(secret)  # trust authentication: the password is not checked, only carried
    assert "hunter2" not in store.path and "***" in store.path
    store.close()
    with pytest.raises(StoreCorrupt) as caught:
        open_store(secret.replace(_db(url), "nosuchdb"))
    assert "hunter2" not in str(caught.value)


def test_a_host_name_is_held_by_one_machine_until_it_stops_or_its_heartbeat_is_stale(pg_server, url):  # noqa: ANN001
    store = open_store(url)
    db = _db(url)
    a = ThisHost("web1", ("gpu", "eu"), "machine-a", "i1", 100)
    b = ThisHost("web1", (), "machine-b", "i2", 200)
    with store.write():
        assert store.join_host(a) is None
    with store.write():
        holder = store.join_host(b)  # another machine, while a beats: refused, nothing changed
    assert (holder.machine_id, holder.pid, holder.labels, holder.stopped) == ("machine-a", 100, ("gpu", "eu"), False)
    assert holder.age < HOST_LEASE
    with store.write():
        assert store.beat_host(a)
    again = ThisHost("web1", ("gpu",), "machine-a", "i3", 101)  # the same machine restarted: takes it over
    with store.write():
        assert store.join_host(again) is None
    with store.write():
        assert not store.beat_host(a)  # the old start is no longer the holder
    with store.write():
        assert store.beat_host(again, stopped=True)  # a clean stop frees the name at once
    with store.write():
        assert store.join_host(b) is None
    pg_server.psql(f"UPDATE hosts SET heartbeat_at = heartbeat_at - {HOST_LEASE + 1}", db=db)  # b went silent
    with store.write():
        assert store.join_host(again) is None
    (row,) = store.hosts()
    assert (row.name, row.machine_id, row.instance, row.labels) == ("web1", "machine-a", "i3", ("gpu",))
    store.close()


class _Timer:
    """What Leadership drives of the cron timer: resume on taking the lease, pause on losing it."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def resume(self) -> None:
        self.calls.append("resume")

    def pause(self) -> None:
        self.calls.append("pause")


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now


def test_one_host_leads_at_a_time_and_a_clean_stop_hands_over_at_once(pg_server, url):  # noqa: ANN001
    from jobsd.leadership import LEASE_TTL, Leadership
    stores = open_store(url), open_store(url)
    timers, clock = (_Timer(), _Timer()), _Clock()
    a, b = (Leadership(s, t, ThisHost(n, (), "m-" + n, "i-" + n, 1), clock)
            for s, t, n in zip(stores, timers, ("web1", "web2")))
    a.tick()
    b.tick()
    assert (a.holding, b.holding, a.leader, b.leader) == (True, False, "web1", "web1")
    assert (timers[0].calls, timers[1].calls) == (["resume"], [])
    a.tick()  # a renewal changes nothing
    assert (timers[0].calls, stores[0].lease_holder()) == (["resume"], "web1")
    a.release()
    assert stores[1].lease_holder() == ""
    b.tick()
    assert (b.holding, timers[1].calls, stores[0].lease_holder()) == (True, ["resume"], "web2")
    pg_server.psql("UPDATE lease SET expires_at = expires_at - 100", db=_db(url))  # web2 went silent
    a.tick()
    assert a.holding and stores[1].lease_holder() == "web1"
    b.tick()  # web2 comes back: it sees web1 holds the lease and pauses its timer
    assert (b.holding, timers[1].calls) == (False, ["resume", "pause"])
    pg_server.halt()  # renewals fail: web1 steps down once its lease may have run out by its own clock
    try:
        clock.now += LEASE_TTL - 2
        a.tick()
        assert a.holding
        clock.now += 2
        a.tick()
        assert not a.holding and timers[0].calls == ["resume", "resume", "pause"]
    finally:
        pg_server.start()
    for store in stores:
        store.close()


def test_the_fence_records_a_cron_window_once_whichever_leader_gets_there_first(url):  # noqa: ANN001
    """Two journals on one database (two leaders that overlap): the window becomes one run; the
    second is refused before anything of it is written. A retry keeps its window and is not fenced."""
    from datetime import UTC, datetime

    from jobsd.artifacts import Artifacts
    from jobsd.bus import Bus
    from jobsd.clock import SYSTEM
    from jobsd.journal import Journal
    from jobsd.store_rows import JobActive, WindowTaken
    from jobsd_lib.facts import Actor
    from jobsd_lib.kernel.states import Trigger

    stores = open_store(url), open_store(url)
    folders = [tempfile.mkdtemp(prefix="jfence") for _ in stores]
    artifacts = [Artifacts(folder) for folder in folders]
    try:
        journals = [Journal(s, a, Bus(), SYSTEM, host) for s, a, host in zip(stores, artifacts, ("web1", "web2"))]
        window = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
        first = journals[0].create_run("tick", RunState.QUEUED, Trigger.CRON, None, Actor(), window)
        with pytest.raises(WindowTaken):
            journals[1].create_run("tick", RunState.QUEUED, Trigger.CRON, None, Actor(), window)
        with pytest.raises(WindowTaken):
            journals[1].missed("tick", window, "late", None)
        with pytest.raises(JobActive):  # one active run per job across hosts: tick/1 is web1's
            journals[1].create_run("tick", RunState.QUEUED, Trigger.MANUAL, None, Actor())
        journals[1].create_run("tick", RunState.SKIPPED, Trigger.RETRY, None, Actor(), window, retry_of=first.ref)
        runs = stores[1].list_runs("tick", 10, None, ())
        assert [(r.n, r.trigger, r.host) for r in runs] == [(2, "retry", "web2"), (1, "cron", "web1")]
        later = datetime(2026, 12, 4, 12, 1, tzinfo=UTC)
        assert journals[1].missed("tick", later, "late", None).n == 3  # a window nobody had: recorded
    finally:
        for a in artifacts:
            a.close()
        for store in stores:
            store.close()
        for folder in folders:
            shutil.rmtree(folder)
