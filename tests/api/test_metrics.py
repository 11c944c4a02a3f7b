"""Metrics (DESIGN 11) on a real daemon: `jobsctl metrics` (GetMetrics), `--metrics-listen` over
real HTTP on loopback (a non-loopback address refused without --metrics-listen-any) and
`--metrics-textfile`, each with the per-job series of the design."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from tests.conftest import wait_for

pytestmark = pytest.mark.timeout(60)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def series(text: str) -> dict[str, float]:
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line and not line.startswith("#")}


def test_metrics_by_rpc_http_and_textfile(daemon, home):
    port, textfile = free_port(), os.path.join(home, "jobsd.prom")
    daemon.write_job("ok", 'command = ["true"]\n[schedule]\ncron = "0 3 * * *"\ntimezone = "UTC"\n')
    daemon.write_job("bad", 'command = ["false"]\n[expect]\nsuccess_within = "1h"\n')
    daemon.start("--metrics-listen", f"127.0.0.1:{port}", "--metrics-textfile", textfile)
    for job in ("ok", "bad", "bad"):
        daemon.wait_finished(daemon.run(job).ref)
    shown = daemon.ctl("metrics")
    assert shown.returncode == 0, shown.stderr
    values = series(shown.stdout.decode())
    assert values["jobsd_up"] == 1
    assert values['jobsd_runs_total{job="bad",state="failed"}'] == 2
    assert values['jobsd_runs_total{job="ok",state="succeeded"}'] == 1
    assert values['jobsd_job_consecutive_failures{job="bad"}'] == 2
    assert values['jobsd_job_overdue{job="bad"}'] == 0
    assert 'jobsd_job_last_success_timestamp_seconds{job="ok"}' in values
    assert values['jobsd_job_next_run_timestamp_seconds{job="ok"}'] % 86400 == 3 * 3600
    assert values['jobsd_run_duration_seconds_count{job="bad"}'] == 2
    wait_for(lambda: "jobsd_scheduler_last_tick_timestamp_seconds " in daemon.ctl("metrics").stdout.decode(), 15,
             "the scheduler's first tick")
    assert all("run=" not in key for key in values)  # per-job labels only

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        assert answer.status == 200 and "text/plain" in answer.headers["Content-Type"]
        assert series(answer.read().decode())['jobsd_runs_total{job="bad",state="failed"}'] == 2
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10)
    assert err.value.code == 404
    wait_for(lambda: os.path.exists(textfile), 20, "the textfile")  # written at the start, then every 15 s
    assert "jobsd_up 1.0" in open(textfile).read()


def test_a_non_loopback_metrics_address_is_refused(home):
    refused = subprocess.run([sys.executable, "-m", "jobsd", "--home", home, "--metrics-listen", "0.0.0.0:9464"],
                             capture_output=True, timeout=30)
    assert refused.returncode == 2 and b"is not a loopback address" in refused.stderr
    bad = subprocess.run([sys.executable, "-m", "jobsd", "--home", home, "--metrics-listen", "9464"],
                         capture_output=True, timeout=30)
    assert bad.returncode == 2 and b"is not HOST:PORT" in bad.stderr
