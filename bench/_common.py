"""Helpers shared by the bench/ scripts: paths, a throwaway jobsd daemon, percentiles.

Nothing here asserts timings; the scripts only print what they measured.
"""
from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# sys.prefix is the venv when the scripts are run as `.venv/bin/python bench/X.py`
VENV_BIN = Path(sys.prefix) / "bin"


def venv_tool(name: str) -> str:
    path = VENV_BIN / name
    if not path.exists():
        sys.exit(f"{path} not found: run this script with the project's venv python (.venv/bin/python)")
    return str(path)


def repro_command(script: str, argv: list[str]) -> str:
    """The exact command line that reproduces this run, from the repo root."""
    py = os.path.relpath(sys.executable, REPO) if sys.executable.startswith(str(REPO)) else sys.executable
    return f"cd {shlex.quote(str(REPO))} && {shlex.quote(py)} bench/{script} {' '.join(map(shlex.quote, argv))}".rstrip()


def short_tmpdir(prefix: str = "jb") -> str:
    """A short temp dir under /tmp (Unix socket paths are limited to 107 bytes)."""
    return tempfile.mkdtemp(prefix=prefix, dir="/tmp")


def percentile(values: list[float], p: float) -> float:
    """Linear-interpolation percentile (same as numpy's default), p in [0, 100]."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summary(values: list[float], ps: tuple[float, ...] = (50, 90, 99)) -> str:
    parts = [f"p{p:g}={percentile(values, p):8.2f}" for p in ps]
    return f"n={len(values):4d}  min={min(values):8.2f}  " + "  ".join(parts) + f"  max={max(values):8.2f}"


def write_jobs(home: str, specs: dict[str, str]) -> None:
    """specs: job id -> TOML text. Written to HOME/jobs/<id>.toml."""
    jobs = Path(home) / "jobs"
    jobs.mkdir(parents=True, exist_ok=True)
    for job_id, text in specs.items():
        (jobs / f"{job_id}.toml").write_text(text)


def toml_str_list(items: list[str]) -> str:
    """A TOML array of basic strings (JSON string escaping is valid TOML basic-string escaping)."""
    import json
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


class Daemon:
    """A jobsd started on HOME; stop() (call it in a finally) sends SIGTERM, then SIGKILL."""

    def __init__(self, home: str, max_concurrent: int | None = None, extra: list[str] | None = None) -> None:
        self.home = home
        self.sock = os.path.join(home, "jobsd.sock")
        self.log_path = os.path.join(home, "jobsd.log")
        self.argv = [venv_tool("jobsd"), "--home", home]
        if max_concurrent is not None:
            self.argv += ["--max-concurrent-runs", str(max_concurrent)]
        self.argv += extra or []
        self.proc: subprocess.Popen | None = None
        self.ready_seconds = float("nan")

    def start(self, timeout: float = 60.0, ready=None) -> "Daemon":  # noqa: ANN001
        """Spawn jobsd and wait until `ready(channel)` returns an answer (kept in `ready_answer`;
        default: ListJobs answers). Times spawn -> socket file (`socket_seconds`) -> ready
        (`ready_seconds`)."""
        import grpc

        self._log = open(self.log_path, "ab")
        self.stale_socket = os.path.exists(self.sock)  # left by a killed daemon: "socket" time is meaningless
        self.spawn_wall = time.time()
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)
        self.socket_seconds = float("nan")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jobsd exited with {self.proc.returncode}; log:\n{self.log_tail()}")
            if os.path.exists(self.sock):
                if self.socket_seconds != self.socket_seconds:  # nan: first sight
                    self.socket_seconds = time.perf_counter() - t0
                try:
                    with grpc.insecure_channel(f"unix:{self.sock}") as ch:
                        answer = (ready or _list_jobs)(ch)
                    if answer is not None:
                        self.ready_answer = answer
                        self.ready_seconds = time.perf_counter() - t0
                        return self
                except grpc.RpcError:
                    pass
            time.sleep(0.005)
        raise RuntimeError(f"jobsd not ready after {timeout}s; log:\n{self.log_tail()}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def proc_status(self, *keys: str) -> dict[str, str]:
        """Fields of /proc/<pid>/status, e.g. VmHWM (peak RSS) and VmRSS."""
        out = {}
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in keys:
                    out[k] = v.strip()
        return out

    def log_tail(self, n: int = 30) -> str:
        try:
            return "".join(Path(self.log_path).read_text(errors="replace").splitlines(True)[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()


def _list_jobs(channel):  # noqa: ANN001, ANN202
    from jobsd_lib.rpc import jobsd_pb2 as pb, jobsd_pb2_grpc as g

    return g.JobsStub(channel).ListJobs(pb.ListJobsRequest(), timeout=2)


def _grpc_health_serving(channel) -> object | None:  # noqa: ANN001
    """The standard grpc.health.v1 Check, when it answers SERVING (jobsd sets it right after
    server.start())."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    return answer if answer.status == health_pb2.HealthCheckResponse.SERVING else None


class TimedDaemon(Daemon):
    """A Daemon ready when the standard health service says SERVING (unless told otherwise), with
    the daemon's own 'jobsd ready' log time, a timed stop and /proc figures in kB."""

    def start(self, timeout: float = 150.0, ready=None) -> "TimedDaemon":  # type: ignore[override]  # noqa: ANN001
        super().start(timeout, ready or _grpc_health_serving)
        return self

    def log_ready_seconds(self) -> float:
        """Spawn -> the daemon's own 'jobsd ready' log line (its asctime has ms resolution)."""
        import datetime as dt
        import re

        text = open(self.log_path, errors="replace").read()
        stamps = re.findall(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO jobsd: jobsd ready", text, re.M)
        if not stamps:
            return float("nan")
        return dt.datetime.strptime(stamps[-1], "%Y-%m-%d %H:%M:%S,%f").timestamp() - self.spawn_wall

    def stop_timed(self) -> float:
        t = time.perf_counter()
        self.stop()
        return time.perf_counter() - t

    def kb(self, key: str) -> int:
        return int(self.proc_status(key)[key].split()[0])


class Deadline:
    """A wall-clock budget so every script stays well under 3 minutes."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()

    def passed(self) -> bool:
        return self.left() <= 0


def processes_with_env(*entries: str) -> list[int]:
    """Pids of live processes whose environment holds every NAME=value entry (zombies have an
    empty environ; processes we may not read are left out)."""
    wanted = [b"\0" + e.encode() + b"\0" for e in entries]
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                env = b"\0" + f.read()
        except OSError:
            continue
        if all(w in env for w in wanted):
            found.append(int(name))
    return found


def load_average() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def print_reproduce(script: str, argv: list[str]) -> None:
    """The command that reproduces this run, with PYTHONPATH when one was set (it decides which
    jobsd is measured)."""
    print("reproduce:", repro_command(script, argv))
    if os.environ.get("PYTHONPATH"):
        print(f"  with PYTHONPATH={os.environ['PYTHONPATH']} in the environment")


def print_footer(script: str, argv: list[str], version: str) -> None:
    """The end of a long run: load average, whether the code changed meanwhile, how to reproduce."""
    print(f"load average after: {load_average()}")
    if code_version() != version:
        print(f"!! the code changed during the run: now {code_version()}")
    print()
    print_reproduce(script, argv)


def code_version() -> str:
    """Where jobsd is imported from (the daemon inherits this environment), its commit, and a digest
    of the uncommitted changes to tracked files (compare the lines printed at start and end)."""
    import hashlib
    import importlib.util

    spec = importlib.util.find_spec("jobsd")
    origin = os.path.dirname(os.path.dirname(spec.origin)) if spec and spec.origin else "?"
    root = os.path.dirname(origin)
    try:
        git = lambda *a: subprocess.run(["git", "-C", root, *a], capture_output=True, timeout=30).stdout  # noqa: E731
        head = git("rev-parse", "--short", "HEAD").decode().strip()
        diff = git("diff", "HEAD")
    except (OSError, subprocess.SubprocessError):
        head = ""
    if not head:
        return f"jobsd from {origin} (not a git work tree)"
    changes = f"uncommitted changes {hashlib.sha1(diff).hexdigest()[:10]}" if diff else "no uncommitted changes"
    return f"jobsd from {origin}, {head}, {changes}"


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads, not its reaped children), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_kb(pid: int, key: str) -> int:
    """A kB field of /proc/<pid>/status (VmHWM, VmRSS, ...); -1 when absent."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return -1
