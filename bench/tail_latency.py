"""Line latency of following a run: the job writes a line, `jobsctl jobs tail -f` prints it.

The job is a one-line `python3 -c` program (the same for jobsd and supervisord). It prints
`ready`, waits until a "go" file exists, then prints LINES lines `<i> <time.time_ns()>`, flushing
after each, sleeping INTERVAL between lines:

    import os,sys,time; print('ready',flush=True); [time.sleep(0.001) for _ in
    iter(lambda: os.path.exists(sys.argv[1]), True)]; [(print(i,time.time_ns(),flush=True),
    time.sleep(INTERVAL)) for i in range(LINES)]

The reader is a real CLI subprocess whose stdout the bench reads line by line in a thread,
stamping each line's arrival with time.time_ns() (same machine, same CLOCK_REALTIME):
  jobsd:       RunJob, then `jobsctl --socket SOCK jobs tail JOB -f`
  supervisord: `supervisorctl -c CONF start PROG`, then `supervisorctl -c CONF tail -f PROG`
The go file is created only once the reader has printed `ready`, so every timed line is written
while the follower is attached and live (no catch-up from stored output).

latency = arrival stamp in the bench - the stamp the job put in the line. Milliseconds.
With --breakdown (default on) a third pass follows the same jobsd job with an in-process Python
gRPC Tail and splits the latency at the daemon's read_at stamp of each chunk (job write -> daemon
read of the pipe; daemon read -> chunk received by the client).

Usage: .venv/bin/python bench/tail_latency.py [--lines 500] [--interval-ms 5] [--no-breakdown]
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

from _common import Daemon, Deadline, percentile, repro_command, short_tmpdir, toml_str_list, venv_tool, write_jobs

BUDGET_SECONDS = 150
JOB = "lat"


def writer_program(lines: int, interval: float) -> str:
    # One line, no '%' (supervisord expands %(name)s in its config) and no double quotes.
    return ("import os,sys,time; print('ready',flush=True); "
            "[time.sleep(0.001) for _ in iter(lambda: os.path.exists(sys.argv[1]), True)]; "
            f"[(print(i,time.time_ns(),flush=True),time.sleep({interval!r})) for i in range({lines})]")


class LineReader(threading.Thread):
    """Reads a subprocess's stdout line by line, stamping each with time.time_ns() on arrival."""

    def __init__(self, proc: subprocess.Popen) -> None:
        super().__init__(daemon=True)
        self.proc = proc
        self.ready = threading.Event()
        self.samples: list[tuple[int, int, int]] = []  # (i, written_ns, arrived_ns)
        self.other: list[bytes] = []

    def run(self) -> None:
        for line in iter(self.proc.stdout.readline, b""):
            now = time.time_ns()
            parts = line.split()
            if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
                self.samples.append((int(parts[0]), int(parts[1]), now))
            elif line.strip() == b"ready":
                self.ready.set()
            else:
                self.other.append(line)


def wait_for(pred, timeout: float, what: str) -> None:  # noqa: ANN001
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.002)
    raise TimeoutError(what)


def follow_with_cli(argv: list[str], go_file: str, lines: int, timeout: float) -> tuple[LineReader, subprocess.Popen]:
    """Start the reader CLI, release the job once `ready` came through, collect `lines` lines."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    reader = LineReader(proc)
    reader.start()
    if not reader.ready.wait(timeout=30):
        proc.kill()
        raise RuntimeError(f"{argv[0]}: never printed 'ready'; stderr: {proc.stderr.read()[-2000:]!r}")
    open(go_file, "w").close()
    wait_for(lambda: len(reader.samples) >= lines or proc.poll() is not None, timeout, "lines did not all arrive")
    time.sleep(0.05)
    return reader, proc


def latencies_ms(samples: list[tuple[int, int, int]]) -> list[float]:
    return [(arrived - written) / 1e6 for _, written, arrived in samples]


def run_jobsd(python3: str, args, deadline: Deadline) -> tuple[list[float], dict]:  # noqa: ANN001
    import grpc
    from jobsd_lib.rpc import jobsd_pb2 as pb, jobsd_pb2_grpc as g

    home = short_tmpdir("jbl")
    go_file = os.path.join(home, "go")
    program = writer_program(args.lines, args.interval_ms / 1000)
    write_jobs(home, {JOB: f"command = {toml_str_list([python3, '-c', program, go_file])}\n"})
    daemon = Daemon(home)
    info: dict = {"home": home}
    proc = None
    try:
        daemon.start()
        with grpc.insecure_channel(f"unix:{daemon.sock}") as ch:
            jobs = g.JobsStub(ch)
            jobs.RunJob(pb.RunJobRequest(job=JOB), timeout=10)
            argv = [venv_tool("jobsctl"), "--socket", daemon.sock, "jobs", "tail", JOB, "-f"]
            info["argv"] = argv
            reader, proc = follow_with_cli(argv, go_file, args.lines, min(60, deadline.left()))
            proc.wait(timeout=30)  # tail -f ends with the run
            info["exit"] = proc.returncode
            info["other"] = reader.other
            samples = reader.samples
            run = jobs.GetRun(pb.GetRunRequest(run=f"{JOB}/1"), timeout=10)
            info["state"] = pb.RunState.Name(run.state)

            if args.breakdown:
                os.unlink(go_file)
                info["breakdown"] = grpc_breakdown(jobs, pb, go_file, args.lines, deadline)
        return latencies_ms(samples), info
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        daemon.stop()
        shutil.rmtree(home, ignore_errors=True)


def grpc_breakdown(jobs, pb, go_file: str, lines: int, deadline: Deadline) -> dict:  # noqa: ANN001
    """Second jobsd run followed in-process: split each line's latency at the chunk's read_at."""
    run = jobs.RunJob(pb.RunJobRequest(job=JOB), timeout=10)
    to_read, to_recv, whole_chunks = [], [], 0
    released = False
    buf = b""
    stream = jobs.Tail(pb.TailRequest(job=JOB, run=run.n, follow=True), timeout=max(10, min(60, deadline.left())))
    for m in stream:
        now = time.time_ns()
        if m.WhichOneof("kind") == "end":
            break
        if m.WhichOneof("kind") != "chunk":
            continue
        read_at = m.chunk.read_at.seconds * 10**9 + m.chunk.read_at.nanos
        buf += m.chunk.data
        *complete, buf = buf.split(b"\n")
        for line in complete:
            parts = line.split()
            if line.strip() == b"ready" and not released:
                open(go_file, "w").close()
                released = True
            elif len(parts) == 2:
                written = int(parts[1])
                to_read.append((read_at - written) / 1e6)
                to_recv.append((now - read_at) / 1e6)
        whole_chunks += 1
    return {"to_read": to_read, "to_recv": to_recv, "chunks": whole_chunks}


SUP_CONF = """\
[unix_http_server]
file={d}/s.sock

[supervisord]
logfile={d}/supervisord.log
pidfile={d}/supervisord.pid
childlogdir={d}
nodaemon=true

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{d}/s.sock

[program:{prog}]
command={cmd}
autostart=false
autorestart=false
startsecs=0
stdout_logfile={d}/{prog}.out
stdout_logfile_maxbytes=0
stderr_logfile={d}/{prog}.err
stderr_logfile_maxbytes=0
"""


def run_supervisord(python3: str, args, deadline: Deadline) -> tuple[list[float], dict]:  # noqa: ANN001
    import shlex

    d = short_tmpdir("jbs")
    go_file = os.path.join(d, "go")
    cmd = " ".join(shlex.quote(x) for x in [python3, "-c", writer_program(args.lines, args.interval_ms / 1000), go_file])
    conf = os.path.join(d, "supervisord.conf")
    with open(conf, "w") as f:
        f.write(SUP_CONF.format(d=d, prog=JOB, cmd=cmd))
    ctl = venv_tool("supervisorctl")
    info: dict = {"conf": conf}
    sup = subprocess.Popen([venv_tool("supervisord"), "-c", conf], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proc = None
    try:
        wait_for(lambda: subprocess.run([ctl, "-c", conf, "pid"], capture_output=True).returncode == 0
                 or sup.poll() is not None, 30, "supervisord did not come up")
        subprocess.run([ctl, "-c", conf, "start", JOB], check=True, capture_output=True, timeout=30)
        argv = [ctl, "-c", conf, "tail", "-f", JOB]
        info["argv"] = argv
        reader, proc = follow_with_cli(argv, go_file, args.lines, min(60, deadline.left()))
        info["other"] = reader.other
        return latencies_ms(reader.samples), info
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # supervisorctl tail -f runs until interrupted
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
        if sup.poll() is None:
            sup.terminate()
            try:
                sup.wait(timeout=15)
            except subprocess.TimeoutExpired:
                sup.kill()
        shutil.rmtree(d, ignore_errors=True)


def real_python3() -> str:
    """The interpreter `python3` runs (not a pyenv shim, whose bash wrapper would be in the timing)."""
    which = shutil.which("python3")
    if which:
        out = subprocess.run([which, "-c", "import sys; print(sys.executable)"], capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    return sys.executable


def row(name: str, v: list[float], expected: int) -> str:
    if not v:
        return f"  {name:52} no lines received"
    return (f"  {name:52} {len(v):4d}/{expected:<4d} {min(v):8.2f} {percentile(v, 50):8.2f} {percentile(v, 90):8.2f} "
            f"{percentile(v, 99):8.2f} {max(v):8.2f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=500)
    ap.add_argument("--interval-ms", type=float, default=5.0)
    ap.add_argument("--no-breakdown", dest="breakdown", action="store_false",
                    help="skip the in-process gRPC pass that splits jobsd's latency at read_at")
    args = ap.parse_args()
    deadline = Deadline(BUDGET_SECONDS)
    python3 = real_python3()
    venv_tool("supervisord")

    print(f"job: {python3} -c {writer_program(args.lines, args.interval_ms / 1000)!r} GOFILE")
    j_lat, j_info = run_jobsd(python3, args, deadline)
    s_lat, s_info = run_supervisord(python3, args, deadline)

    print()
    print(f"latency, job's time.time_ns() in the line -> line read from the reader's stdout (ms), "
          f"{args.lines} lines, {args.interval_ms:g} ms apart")
    print(f"  {'reader':52} {'lines':>9} {'min':>8} {'median':>8} {'p90':>8} {'p99':>8} {'max':>8}")
    print(row("jobsctl jobs tail JOB -f", j_lat, args.lines))
    print(row("supervisorctl tail -f PROG", s_lat, args.lines))
    if "breakdown" in j_info:
        b = j_info["breakdown"]
        print(row("jobsd, in-process gRPC Tail: job write -> read_at", b["to_read"], args.lines))
        print(row("jobsd, in-process gRPC Tail: read_at -> received", b["to_recv"], args.lines))
        tot = [a + c for a, c in zip(b["to_read"], b["to_recv"])]
        print(row("jobsd, in-process gRPC Tail: total", tot, args.lines))
    print()
    if j_lat and s_lat:
        jm, sm = percentile(j_lat, 50), percentile(s_lat, 50)
        print(f"median ratio supervisorctl / jobsctl: {sm / jm:.1f}x (goal in the issue: >= 10x, and jobsctl median < 5 ms;"
              f" here jobsctl median {jm:.2f} ms)")
    print(f"jobsctl exit status {j_info.get('exit')}, run state {j_info.get('state')}")
    for name, info in (("jobsctl", j_info), ("supervisorctl", s_info)):
        other = [x for x in info.get("other", []) if x.strip()]
        if other:
            print(f"{name}: other output lines (not timed): {other[:3]!r}{' ...' if len(other) > 3 else ''}")
    print(f"reader commands: {' '.join(j_info.get('argv', []))}\n                 {' '.join(s_info.get('argv', []))}")
    print()
    print("reproduce:", repro_command("tail_latency.py", sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
