"""Prometheus metrics (DESIGN 11): a private registry whose one collector reads the daemon's state at
scrape time. Per-job labels only, never per run.

What a scrape reads costs no store query but the timer's one `all_next_run_times`: run totals are
read from the store once at start-up (`Metrics.load`) and kept current by a RunFinished
subscriber, as are the last successes (Context.last_success) and the failures in a row
(handlers/notifications.py). Durations are observed from runs that ended since the start (a histogram restarts
with the process, as Prometheus expects of counters and histograms).

Two writers of one text. The daemon-wide families (jobsd_up, jobsd_runs_waiting, the scheduler's
last tick) are a prometheus_client collector in a private registry, formatted by its
generate_latest. The per-job families are written by `job_families` below, in the same text format
0.0.4, byte for byte what generate_latest writes for them (tests/daemon/test_exposition.py holds
the two side by side): with 10,000 jobs and their run totals a scrape is ~36,000 samples, and
prometheus_client's Metric and Sample objects and per-sample formatting cost ~0.55 s of CPU on the
event loop for them, where plain f-strings over our own dicts take ~0.03 s (bench/metrics_scrape.py).

Served three ways: the GetMetrics RPC (`jobsctl metrics`), `jobsd --metrics-listen 127.0.0.1:PORT`
(`serve_http`: a minimal HTTP/1.1 responder on the event loop, GET /metrics only, so that the
collector never runs beside the loop on another thread) and `jobsd --metrics-textfile PATH`
(`write_textfile` every TEXTFILE_EVERY seconds, atomically: a temporary file renamed over PATH).
"""
from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable, Mapping
from datetime import timedelta

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.utils import floatToGoString

from jobsd.context import Context
from jobsd_lib.facts import RunFinished

__all__ = ["Metrics", "serve_http", "write_textfile", "job_families", "TEXTFILE_EVERY", "BUCKETS"]

log = logging.getLogger("jobsd.metrics")
TEXTFILE_EVERY = 15.0
BUCKETS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, float("inf"))  # run durations, seconds
_LE = tuple("+Inf" if edge == float("inf") else f"{edge:g}" for edge in BUCKETS)  # le="1", ..., le="+Inf"


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
        ctx = self.ctx
        next_runs = ctx.timer.all_next_run_times() if ctx.timer is not None else {}
        per_job = job_families(ctx.catalog.ids(), ctx.last_success,
                               {j: at.timestamp() for j, at in next_runs.items() if at is not None},
                               ctx.notify_failures, {j: j in ctx.overdue.since for j in ctx.overdue.within},
                               self.totals, self.durations, self.duration_sums)
        return generate_latest(self.registry) + per_job.encode()

    def collect(self):  # noqa: ANN201 - prometheus_client's Collector protocol: the daemon-wide families
        ctx = self.ctx
        yield GaugeMetricFamily("jobsd_up", "1 while jobsd serves", value=1)
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


def job_families(ids: Iterable[str], last_success: Mapping[str, float], next_run: Mapping[str, float],
                 failures: Mapping[str, int], overdue: Mapping[str, bool], totals: Mapping[tuple[str, str], int],
                 durations: Mapping[str, list[int]], duration_sums: Mapping[str, float]) -> str:
    """The per-job families as text format 0.0.4, in generate_latest's own layout (see the module's
    docstring): `ids` in the order given, totals and histograms sorted by job."""
    ids = list(ids)
    go = floatToGoString
    label = {j: _escape(j) for j in {*ids, *(j for j, _s in totals), *durations}}
    out = []
    for name, doc, values in (
            ("jobsd_job_last_success_timestamp_seconds", "When the job last succeeded", last_success),
            ("jobsd_job_next_run_timestamp_seconds", "The job's next cron window", next_run),
            ("jobsd_job_consecutive_failures", "Failures in a row", None),
            ("jobsd_job_overdue", "1 while [expect] success_within is not met", overdue)):
        out.append(f"# HELP {name} {doc}\n# TYPE {name} gauge\n")
        if values is None:  # every job has a count of failures in a row, 0 included
            out += [f'{name}{{job="{label[j]}"}} {go(failures.get(j, 0))}\n' for j in ids]
        else:
            out += [f'{name}{{job="{label[j]}"}} {go(values[j])}\n' for j in ids if j in values]
    out.append("# HELP jobsd_runs_total Runs recorded, by job and state\n# TYPE jobsd_runs_total counter\n")
    out += [f'jobsd_runs_total{{job="{label[j]}",state="{_escape(state)}"}} {go(count)}\n'
            for (j, state), count in sorted(totals.items())]
    name = "jobsd_run_duration_seconds"
    out.append(f"# HELP {name} Run durations (start to end) since jobsd started\n# TYPE {name} histogram\n")
    for j, counts in sorted(durations.items()):
        cumulative = 0
        for le, count in zip(_LE, counts):
            cumulative += count
            out.append(f'{name}_bucket{{job="{label[j]}",le="{le}"}} {go(cumulative)}\n')
        out.append(f'{name}_count{{job="{label[j]}"}} {go(cumulative)}\n'
                   f'{name}_sum{{job="{label[j]}"}} {go(duration_sums[j])}\n')
    return "".join(out)


def _escape(value: str) -> str:
    """A label value as the text format writes it (prometheus_client's openmetrics._escape)."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')


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
            _write_atomically(path, metrics.text())
        except OSError as exc:
            log.warning("cannot write the metrics textfile %s: %s", path, exc)
        clock = metrics.ctx.clock
        await clock.wait_until(clock.now() + timedelta(seconds=TEXTFILE_EVERY), asyncio.Event())


def _write_atomically(path: str, data: bytes) -> None:
    """A reader (node_exporter's textfile collector) sees the old file or the new one, never half of
    one: written beside PATH, then renamed over it."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
