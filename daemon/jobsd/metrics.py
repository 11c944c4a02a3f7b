"""Prometheus metrics (DESIGN 11): a private registry whose one collector reads the daemon's state at
scrape time. Per-job labels only, never per run.

What a scrape reads costs no store query but the timer's one `all_next_run_times`: run totals are
read from the store once at start-up (`Metrics.load`) and kept current by a RunFinished
subscriber, as are the last successes (Context.last_success) and the failures in a row
(handlers/notifications.py). Durations are observed from runs that ended since the start (a histogram restarts
with the process, as Prometheus expects of counters and histograms).

Served three ways: the GetMetrics RPC (`jobsctl metrics`), `jobsd --metrics-listen 127.0.0.1:PORT`
(`serve_http`: a minimal HTTP/1.1 responder on the event loop, GET /metrics only, so that the
collector never runs beside the loop on another thread) and `jobsd --metrics-textfile PATH`
(`write_textfile` every TEXTFILE_EVERY seconds, atomically: prometheus_client writes a temporary
file and renames it).
"""
from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from prometheus_client import CollectorRegistry, generate_latest, write_to_textfile
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from jobsd.context import Context
from jobsd_lib.facts import RunFinished

__all__ = ["Metrics", "serve_http", "write_textfile", "TEXTFILE_EVERY", "BUCKETS"]

log = logging.getLogger("jobsd.metrics")
TEXTFILE_EVERY = 15.0
BUCKETS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, float("inf"))  # run durations, seconds


class Metrics:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.totals: dict[tuple[str, str], int] = {}
        self.durations: dict[str, list[int]] = {}  # job -> count per bucket (not cumulative)
        self.duration_sums: dict[str, float] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def load(self) -> None:
        self.totals = self.ctx.store.run_totals()

    def on_finished(self, fact: RunFinished) -> None:
        key = (fact.job_id, fact.state.value)
        self.totals[key] = self.totals.get(key, 0) + 1
        run = self.ctx.store.get_run(fact.job_id, fact.run_n)
        if run is not None and run.started_at is not None:
            seconds = max(fact.ts - run.started_at, 0.0)
            counts = self.durations.setdefault(fact.job_id, [0] * len(BUCKETS))
            counts[next(i for i, edge in enumerate(BUCKETS) if seconds <= edge)] += 1
            self.duration_sums[fact.job_id] = self.duration_sums.get(fact.job_id, 0.0) + seconds

    def text(self) -> bytes:
        return generate_latest(self.registry)

    def collect(self):  # noqa: ANN201 - prometheus_client's Collector protocol
        ctx = self.ctx
        yield GaugeMetricFamily("jobsd_up", "1 while jobsd serves", value=1)
        ids = ctx.catalog.ids()
        last = GaugeMetricFamily("jobsd_job_last_success_timestamp_seconds", "When the job last succeeded",
                                 labels=["job"])
        nxt = GaugeMetricFamily("jobsd_job_next_run_timestamp_seconds", "The job's next cron window", labels=["job"])
        fails = GaugeMetricFamily("jobsd_job_consecutive_failures", "Failures in a row", labels=["job"])
        late = GaugeMetricFamily("jobsd_job_overdue", "1 while [expect] success_within is not met", labels=["job"])
        next_runs = ctx.timer.all_next_run_times() if ctx.timer is not None else {}
        for job_id in ids:
            if job_id in ctx.last_success:
                last.add_metric([job_id], ctx.last_success[job_id])
            if next_runs.get(job_id) is not None:
                nxt.add_metric([job_id], next_runs[job_id].timestamp())
            fails.add_metric([job_id], ctx.notify_failures.get(job_id, 0))
            if job_id in ctx.overdue.within:
                late.add_metric([job_id], 1 if job_id in ctx.overdue.since else 0)
        yield from (last, nxt, fails, late)
        runs = CounterMetricFamily("jobsd_runs", "Runs recorded, by job and state", labels=["job", "state"])
        for (job_id, state), count in sorted(self.totals.items()):
            runs.add_metric([job_id, state], count)
        yield runs
        hist = HistogramMetricFamily("jobsd_run_duration_seconds", "Run durations (start to end) since jobsd started",
                                     labels=["job"])
        for job_id, counts in sorted(self.durations.items()):
            cumulative, buckets = 0, []
            for edge, count in zip(BUCKETS, counts):
                cumulative += count
                buckets.append(("+Inf" if edge == float("inf") else f"{edge:g}", cumulative))
            hist.add_metric([job_id], buckets, self.duration_sums[job_id])
        yield hist
        waiting = GaugeMetricFamily("jobsd_runs_waiting", "Queued or retrying runs, by what they wait for",
                                    labels=["wait_reason"])
        reasons: dict[str, int] = {}
        for act in ctx.runs.active.values():
            reason = act.machine.wait_reason
            if reason is not None and act.attempt is None:
                reasons[reason.value] = reasons.get(reason.value, 0) + 1
        for reason, count in sorted(reasons.items()):
            waiting.add_metric([reason], count)
        yield waiting
        tick = ctx.timer.last_tick if ctx.timer is not None else None
        if tick is not None:
            yield GaugeMetricFamily("jobsd_scheduler_last_tick_timestamp_seconds", "The scheduler's last tick",
                                    value=tick.timestamp())


async def serve_http(metrics: Metrics, host: str, port: int) -> asyncio.AbstractServer:
    """GET /metrics on host:port (HTTP/1.1, one request a connection); anything else is 404/405."""
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            method, path = (request.split(b"\r\n", 1)[0].split(b" ") + [b"", b""])[:2]
            if method != b"GET":
                status, body = b"405 Method Not Allowed", b"GET only\n"
            elif path.split(b"?", 1)[0] != b"/metrics":
                status, body = b"404 Not Found", b"see /metrics\n"
            else:
                status, body = b"200 OK", metrics.text()
            writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                         b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
            await asyncio.wait_for(writer.drain(), 10)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
    return await asyncio.start_server(answer, host, port, limit=16384)


async def write_textfile(metrics: Metrics, path: str) -> None:
    """Every TEXTFILE_EVERY seconds, until cancelled; a failed write is logged and tried again."""
    while True:
        try:
            write_to_textfile(path, metrics.registry)
        except OSError as exc:
            log.warning("cannot write the metrics textfile %s: %s", path, exc)
        clock = metrics.ctx.clock
        await clock.wait_until(clock.now() + timedelta(seconds=TEXTFILE_EVERY), asyncio.Event())
