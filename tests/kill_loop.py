"""The SIGKILL loop (issue 19, "keep what held"): a real jobsd under load, killed at random moments.

Each round starts jobsd, drives it (RunJob of a short job in a loop from a thread, now and then a
long one, and an every-second cron job) and SIGKILLs it after a random delay, then checks what a
user would: every run that RunJob acknowledged exists after the restart, with the same number
and queue time (numbers are never reused); no cron window is recorded twice; no process of a
killed daemon's runs is left once the next one serves; and at the end every finished run's
receipt parses and agrees with the store. `tests/api/test_kill_loop.py` runs a few rounds;
`bench/kill_loop.py` runs 100 and prints the figures.
"""
from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import grpc

from jobsd_lib.rpc import jobsd_pb2 as pb
from jobsd_lib.rpc import jobsd_pb2_grpc as pb_grpc
from tests.conftest import Daemon, wait_for

__all__ = ["KillLoop", "Report"]

TERMINAL = {pb.RUN_STATE_SUCCEEDED, pb.RUN_STATE_FAILED, pb.RUN_STATE_TIMED_OUT, pb.RUN_STATE_CANCELLED,
            pb.RUN_STATE_INTERRUPTED, pb.RUN_STATE_SKIPPED, pb.RUN_STATE_MISSED}
STATE_NAMES = {pb.RUN_STATE_SUCCEEDED: "succeeded", pb.RUN_STATE_FAILED: "failed", pb.RUN_STATE_TIMED_OUT: "timed_out",
               pb.RUN_STATE_CANCELLED: "cancelled", pb.RUN_STATE_INTERRUPTED: "interrupted",
               pb.RUN_STATE_SKIPPED: "skipped", pb.RUN_STATE_MISSED: "missed"}


@dataclass
class Report:
    rounds: int = 0
    acknowledged: dict[str, float] = field(default_factory=dict)  # ref -> queued_at as answered
    windows: int = 0
    receipts: int = 0
    orphans_stopped: int = 0


class KillLoop:
    def __init__(self, home: str, seed: int = 19) -> None:
        self.daemon = Daemon(home)
        self.rng = random.Random(seed)
        self.report = Report()
        marker = f'env = {{ KILL_LOOP = "{home}" }}\n'
        self.marker = f"KILL_LOOP={home}"
        self.daemon.write_job("work", 'command = ["sh", "-c", "echo ok"]\n' + marker)
        self.daemon.write_job("long", 'command = ["sleep", "60"]\n' + marker)
        self.daemon.write_job("tick", 'command = ["true"]\n' + marker + '[schedule]\ncron = "* * * * * *"\n'
                                      'timezone = "UTC"\nmisfire_grace = "0.5s"\ncoalesce = false\n')

    def run(self, rounds: int) -> Report:
        try:
            for _ in range(rounds):
                self.round()
            self.daemon.start()
            self.check_all()
            return self.report
        finally:
            if self.daemon.proc is not None:
                self.daemon.stop()

    def round(self) -> None:
        d = self.daemon
        d.start()
        wait_for(lambda: not self._processes(), 15, "no process of a killed daemon's runs left")
        self._check_acknowledged()
        stop = threading.Event()
        load = threading.Thread(target=self._load, args=(stop,), daemon=True)
        load.start()
        deadline = time.monotonic() + self.rng.uniform(0.3, 1.5)
        wait_for(lambda: time.monotonic() > deadline, 5, "the round's random moment")
        os.kill(d.proc.pid, signal.SIGKILL)
        d.proc.wait(timeout=10)
        stop.set()
        load.join(timeout=15)
        d.stop()  # closes the channel and the log of the killed process
        self.report.rounds += 1
        self.report.orphans_stopped += len(self._processes())  # left by the kill: the next start stops them

    def _load(self, stop: threading.Event) -> None:
        with grpc.insecure_channel(f"unix:{self.daemon.socket}") as channel:
            jobs = pb_grpc.JobsStub(channel)
            while not stop.is_set():
                job = "long" if self.rng.random() < 0.1 else "work"
                try:
                    run = jobs.RunJob(pb.RunJobRequest(job=job), timeout=5)
                except grpc.RpcError:
                    continue  # busy, or the daemon was just killed: not acknowledged
                self.report.acknowledged[run.ref] = run.queued_at.ToNanoseconds()

    def _processes(self) -> list[int]:
        found = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/environ", "rb") as f:
                    if self.marker.encode() in f.read().split(b"\0"):
                        found.append(int(pid))
            except OSError:
                pass
        return found

    def _runs(self) -> list[pb.Run]:
        runs, cursor = [], ""
        while True:
            page = self.daemon.jobs.ListRuns(pb.ListRunsRequest(limit=1000, cursor=cursor), timeout=10)
            runs += page.runs
            if not page.next_cursor:
                return runs
            cursor = page.next_cursor

    def _check_acknowledged(self) -> None:
        stored = {r.ref: r.queued_at.ToNanoseconds() for r in self._runs()}
        lost = sorted(set(self.report.acknowledged) - set(stored))
        assert not lost, f"acknowledged runs lost after a SIGKILL: {lost[:10]}"
        reused = [ref for ref, queued in self.report.acknowledged.items() if stored[ref] != queued]
        assert not reused, f"run numbers reused (another run under an acknowledged ref): {reused[:10]}"

    def check_all(self) -> None:
        self._check_acknowledged()
        runs = self._runs()
        windows = Counter(r.scheduled_at.ToNanoseconds() for r in runs if r.job == "tick" and r.HasField("scheduled_at"))
        twice = [w for w, n in windows.items() if n > 1]
        assert not twice, f"cron windows recorded twice: {twice[:10]}"
        self.report.windows = len(windows)
        for job in ("work", "long", "tick"):
            numbers = sorted(r.n for r in runs if r.job == job)
            assert len(numbers) == len(set(numbers)), f"{job}: a run number appears twice"
        finished = [r for r in runs if r.state in TERMINAL]
        wait_for(lambda: all(self._receipt_matches(r) for r in finished), 30,
                 "every finished run's receipt to agree with the store")
        self.report.receipts = len(finished)

    def _receipt_matches(self, run: pb.Run) -> bool:
        try:
            with open(os.path.join(run.artifacts, "run_receipt.json")) as f:
                receipt = json.load(f)
        except (OSError, ValueError):
            return False
        return receipt["run"] == run.ref and receipt["state"] == STATE_NAMES[run.state] \
            and receipt["attempts"] == run.attempts
