"""The store's reads of run history (list_runs, job_summaries, removable_runs, the repair's reads): statements tuned on
SQLite's (job_id, n) index (PostgreSQL runs the same text: store_dialect.py), as a part of Store
(store.py) kept in a module of its own."""
from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence

from jobsd.store_rows import (_ACTIVE_SQL, _ATTEMPT_COLUMNS, _FAILED_STATES, _OUTCOMES_SQL, _RUN_COLUMNS,
                              _RUN_COLUMNS_OF_R, AttemptRow, EventRow, RunRow)
from jobsd_lib.kernel.states import RunState

__all__ = ["RunQueries"]


class RunQueries:
    """Mixed into Store: needs its `_q`, `_memoized`, `dialect`, `engine`."""

    def list_runs(self, job_id: str, limit: int, before_id: int | None, states: Sequence[str]) -> list[RunRow]:
        """Newest first (by id, which only grows), `limit` rows with id < before_id."""
        clauses, params = [], {"l": limit}
        if job_id:
            clauses.append("job_id = :j")
            params["j"] = job_id
        by_number = bool(job_id) and not states  # walk the (job_id, n) index: deep pages stay fast
        if before_id is not None:
            params["b"] = before_id
            # n grows with id within a job; a cursor run removed by gc falls back to a scan for its place
            clauses.append("n < coalesce((SELECT n FROM runs WHERE id = :b AND job_id = :j), "
                           "(SELECT coalesce(max(n), 0) + 1 FROM runs WHERE job_id = :j AND id < :b))"
                           if by_number else "id < :b")
        if states:
            names = [f":s{i}" for i in range(len(states))]
            clauses.append(f"state IN ({', '.join(names)})")
            params.update({f"s{i}": s for i, s in enumerate(states)})
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        order = "ORDER BY job_id DESC, n DESC" if by_number else "ORDER BY id DESC"
        rows = self._q(f"SELECT {_RUN_COLUMNS} FROM runs {where} {order} LIMIT :l", **params)
        return [self._with_attempts(r) for r in rows]

    def consecutive_failures(self, job_id: str, window: int = 1000) -> int:
        """How many of the job's latest finished runs failed in a row (skipped/missed/cancelled ignored)."""
        rows = self._q(f"SELECT state FROM runs WHERE job_id = :j AND state IN {_OUTCOMES_SQL} "
                       "ORDER BY n DESC LIMIT :w", j=job_id, w=window)
        count = 0
        for (state,) in rows:
            if state not in _FAILED_STATES:
                break
            count += 1
        return count

    def job_summaries(self, job_ids: Sequence[str], window: int = 1000) -> dict[str, tuple[RunRow | None, int]]:
        """Each job's latest run (with its attempts) and consecutive_failures(job, window), for all of
        `job_ids` in two statements whatever their number (ListJobs: per-job queries made it cost
        ~3 statements a job, most of it SQLAlchemy's per-statement overhead).

        The answer is memoized until a row of the store changes (_memoized): callers must not
        change it. Per job, SQLite does what the per-job queries did: one seek on (job_id, n) for the latest
        run; for the failures, a walk down the job's finished runs that stops at the first success
        (the subquery in FROM is a co-routine, and its outer LIMIT 1 ends it), at most `window`
        rows, then a count of the failures above that success, also at most `window` rows.
        """
        if not job_ids:
            return {}
        key = ("job_summaries", tuple(job_ids), window)
        return self._memoized(key, lambda: self._read_job_summaries(job_ids, window))

    def _read_job_summaries(self, job_ids: Sequence[str], window: int) -> dict[str, tuple[RunRow | None, int]]:
        finished = _OUTCOMES_SQL
        rows = self._q(
            f"SELECT j.value, (SELECT count(*) FROM (SELECT 1 FROM runs AS f WHERE f.job_id = j.value "
            f"AND f.state IN {finished} AND f.n > coalesce((SELECT n FROM (SELECT w.n, w.state FROM runs AS w "
            f"WHERE w.job_id = j.value AND w.state IN {finished} ORDER BY w.n DESC LIMIT :w) AS w2 "
            "WHERE state = 'succeeded' LIMIT 1), 0) ORDER BY f.n DESC LIMIT :w) AS c), "
            f"{_RUN_COLUMNS_OF_R} FROM {self.dialect.each_text(':ids')} "
            "LEFT JOIN runs AS r ON r.id = (SELECT id FROM runs WHERE job_id = j.value ORDER BY n DESC LIMIT 1)",
            ids=self.dialect.array(job_ids), w=window).all()
        latest = [row[2:] for row in rows if row[2] is not None]
        attempts = self._attempts_of([row[0] for row in latest])
        summaries: dict[str, tuple[RunRow | None, int]] = {}
        for job_id, failures, *run in rows:
            summaries[job_id] = (self._run_row(run, attempts.get(run[0], ())) if run[0] is not None else None,
                                 failures)
        return summaries

    def _attempts_of(self, run_ids: Sequence[int]) -> dict[int, list[tuple]]:
        """The attempts of `run_ids` in one statement, by run id, in attempt order."""
        by_run: dict[int, list[tuple]] = {}
        if not run_ids:
            return by_run
        rows = self._q(f"SELECT run_id, {_ATTEMPT_COLUMNS} FROM attempts WHERE run_id IN "
                       f"{self.dialect.int_set(':ids')} ORDER BY run_id, number", ids=self.dialect.array(run_ids))
        for run_id, *attempt in rows:
            by_run.setdefault(run_id, []).append(attempt)
        return by_run

    @staticmethod
    def _run_row(row, attempts) -> RunRow:  # noqa: ANN001
        values = list(row)
        values[3] = RunState(values[3])
        return RunRow(*values, attempt_list=tuple(AttemptRow(*a[:9], bool(a[9]), a[10]) for a in attempts))

    def _with_attempts(self, row) -> RunRow:  # noqa: ANN001
        attempts = self._q(f"SELECT {_ATTEMPT_COLUMNS} FROM attempts WHERE run_id = :r ORDER BY number", r=row[0])
        return self._run_row(row, attempts)

    def removable_runs(self, job_id: str, keep_last: int, cutoff: float) -> list[tuple[int, str, int]]:
        """(id, job_id, n) of finished runs that a retention policy removes (kernel.retention.Retention):
        ranked newest first within each job, rank > keep_last and finished before `cutoff`. Read on
        a connection of its own, so that gc can select 100,000 runs in a worker thread (a WAL reader
        neither blocks nor waits for the loop's writes)."""
        where = f"state NOT IN {_ACTIVE_SQL}" + (" AND job_id = :j" if job_id else "")
        age = " AND finished < :c" if math.isfinite(cutoff) else ""
        with self.engine.connect() as conn:  # a connection of its own: safe from a worker thread
            rows = self.dialect.execute(
                conn, "SELECT id, job_id, n FROM (SELECT id, job_id, n, coalesce(finished_at, queued_at) AS finished, "
                f"row_number() OVER (PARTITION BY job_id ORDER BY n DESC) AS rank FROM runs WHERE {where}) AS ranked "
                f"WHERE rank > :k{age} ORDER BY job_id, n", {"j": job_id, "k": keep_last, "c": cutoff})
            doomed: list[tuple[int, str, int]] = []
            while batch := rows.fetchmany(2000):
                doomed += map(tuple, batch)
                time.sleep(0)  # hand the GIL to the event loop between batches (see Artifacts.sweep)
            return doomed

    # ------------------------------------------------------------------ repair of run folders (repair.py)
    def finished_ends(self, job_id: str) -> dict[int, float]:
        """n -> finished_at of a job's finished runs, on a connection of its own: safe to call from a
        worker thread (WAL readers do not block the loop's writes)."""
        with self.engine.connect() as conn:
            rows = self.dialect.execute(conn, "SELECT n, finished_at FROM runs WHERE job_id = :j AND finished_at IS NOT "
                                        f"NULL AND state NOT IN {_ACTIVE_SQL}", {"j": job_id})
            return dict(rows.all())

    def run_events(self, job_id: str, n: int) -> list[EventRow]:
        """Every stored event of one run, in order (what its events.jsonl holds)."""
        rows = self._q("SELECT seq, ts, type, job_id, run_n, attrs FROM events WHERE job_id = :j AND run_n = :n "
                       "ORDER BY seq", j=job_id, n=n)
        return [EventRow(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]
