"""jobsd's own writer of the per-job metric families (jobsd.metrics.job_families) against
prometheus_client's generate_latest given the same values: the same bytes, so that anything that
reads prometheus_client's exposition reads ours (label escaping, Go float formatting, histogram
layout included)."""
from __future__ import annotations

import random

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from jobsd.metrics import BUCKETS, job_families


def reference(ids, last_success, next_run, failures, overdue, totals, durations, sums) -> str:
    """The families as prometheus_client's own objects, as jobsd built them before job_families."""
    last = GaugeMetricFamily("jobsd_job_last_success_timestamp_seconds", "When the job last succeeded", labels=["job"])
    nxt = GaugeMetricFamily("jobsd_job_next_run_timestamp_seconds", "The job's next cron window", labels=["job"])
    fails = GaugeMetricFamily("jobsd_job_consecutive_failures", "Failures in a row", labels=["job"])
    late = GaugeMetricFamily("jobsd_job_overdue", "1 while [expect] success_within is not met", labels=["job"])
    for j in ids:
        if j in last_success:
            last.add_metric([j], last_success[j])
        if j in next_run:
            nxt.add_metric([j], next_run[j])
        fails.add_metric([j], failures.get(j, 0))
        if j in overdue:
            late.add_metric([j], 1 if overdue[j] else 0)
    runs = CounterMetricFamily("jobsd_runs", "Runs recorded, by job and state", labels=["job", "state"])
    for (j, state), count in sorted(totals.items()):
        runs.add_metric([j, state], count)
    hist = HistogramMetricFamily("jobsd_run_duration_seconds", "Run durations (start to end) since jobsd started",
                                 labels=["job"])
    for j, counts in sorted(durations.items()):
        cumulative, buckets = 0, []
        for edge, count in zip(BUCKETS, counts):
            cumulative += count
            buckets.append(("+Inf" if edge == float("inf") else f"{edge:g}", cumulative))
        hist.add_metric([j], buckets, sums[j])

    class Families:
        def collect(self):
            yield from (last, nxt, fails, late, runs, hist)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Families())
    return generate_latest(registry).decode()


def sample_values(seed: int):
    rng = random.Random(seed)
    ids = [f"job-{i}" for i in range(300)] + ['odd"quote', "back\\slash", "new\nline", "ünï"]
    rng.shuffle(ids)
    gone = ["removed-since"]  # totals and durations of a job no longer in the catalog stay exported
    pick = lambda share: [j for j in ids if rng.random() < share]  # noqa: E731
    last_success = {j: rng.uniform(1.6e9, 1.8e9) for j in pick(0.7)}
    next_run = {j: float(rng.randrange(1_700_000_000, 1_800_000_000)) for j in pick(0.5)}
    failures = {j: rng.choice([1, 2, 7, 1_000_000, 12_345_678]) for j in pick(0.3)}
    overdue = {j: rng.random() < 0.5 for j in pick(0.4)}
    totals = {(j, s): rng.choice([1, 3, 999_999, 1_000_000, 123_456_789]) for j in pick(0.8) + gone
              for s in ("succeeded", "failed", "skipped") if rng.random() < 0.6}
    durations = {j: [rng.randrange(0, 5) for _ in BUCKETS] for j in pick(0.3) + gone}
    sums = {j: rng.choice([0.0, 0.5, 1e-7, 123456.789, 3.0e9]) for j in durations}
    return ids, last_success, next_run, failures, overdue, totals, durations, sums


def test_the_per_job_families_are_prometheus_clients_own_bytes():
    for seed in range(5):
        values = sample_values(seed)
        assert job_families(*values) == reference(*values)


def test_the_text_parses_back_to_the_values_it_was_given():
    ids, last_success, next_run, failures, overdue, totals, durations, sums = sample_values(7)
    text = job_families(ids, last_success, next_run, failures, overdue, totals, durations, sums)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert {s.labels["job"]: s.value for s in families["jobsd_job_last_success_timestamp_seconds"].samples} == \
        last_success
    assert {(s.labels["job"], s.labels["state"]): s.value for s in families["jobsd_runs"].samples} == totals
    counts = {s.labels["job"]: s.value for s in families["jobsd_run_duration_seconds"].samples
              if s.name.endswith("_count")}
    assert counts == {j: sum(c) for j, c in durations.items()}
    assert {s.labels["job"] for s in families["jobsd_job_consecutive_failures"].samples} == set(ids)
