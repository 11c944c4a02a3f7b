"""A private PostgreSQL server for the tests (DESIGN 12), never a mock: Debian's server binaries
(`.ci/run` installs the `postgresql` package when they are missing), a cluster made by initdb as
the `postgres` user in a short temporary folder, listening on a Unix socket only, fsync off.

One server per test process (the `pg_server` session fixture in tests/conftest.py; each xdist worker
starts its own, ~1.5 s), a new database per test (`new_database`, ~60 ms).
Traps, measured: pg_ctl must always get `-l LOGFILE`, or the postmaster inherits a captured pipe
and the call never returns; the socket path must stay under 107 bytes (not under pytest's tmp_path).
"""
from __future__ import annotations

import glob
import itertools
import os
import shutil
import subprocess
import tempfile

__all__ = ["PgServer", "pg_bindir"]

_databases = itertools.count(1)


def pg_bindir() -> str | None:
    """The newest installed server's bin folder (/usr/lib/postgresql/N/bin), else initdb on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    return os.path.dirname(os.path.realpath(initdb)) if initdb else None


def _as_postgres() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []  # initdb refuses root


class PgServer:
    def __init__(self, bindir: str) -> None:
        self.bindir = bindir
        self.dir = tempfile.mkdtemp(prefix="pg.", dir="/tmp")
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        os.chmod(self.dir, 0o700)
        self.data, self.log = os.path.join(self.dir, "data"), os.path.join(self.dir, "log")
        self._run("initdb", "-D", self.data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8",
                  "--no-sync")
        self.start()

    def _run(self, tool: str, *args: str) -> None:
        done = subprocess.run([*_as_postgres(), os.path.join(self.bindir, tool), *args], capture_output=True,
                              text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args)}: {done.stderr or done.stdout}\n{self.log_tail()}")

    def start(self) -> None:
        self._run("pg_ctl", "-D", self.data, "-l", self.log, "-w", "-s", "-o",
                  f"-c listen_addresses= -k {self.dir} -c fsync=off -c full_page_writes=off "
                  "-c max_connections=200", "start")

    def halt(self, mode: str = "fast") -> None:
        """Stop the server (`start()` brings it back): `immediate` is a crash."""
        self._run("pg_ctl", "-D", self.data, "-m", mode, "-w", "-s", "stop")

    def restart(self, mode: str = "fast") -> None:
        """`fast`: a clean restart; `immediate`: the server crashes and recovers."""
        self.halt(mode)
        self.start()

    def url(self, db: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@/{db}?host={self.dir}"

    def psql(self, sql: str, db: str = "postgres") -> list[tuple]:
        import psycopg
        with psycopg.connect(host=self.dir, user="postgres", dbname=db, autocommit=True) as conn:
            cursor = conn.execute(sql)
            return cursor.fetchall() if cursor.description else []

    def new_database(self) -> str:
        """A fresh, empty database of its own; its URL."""
        name = f"t{os.getpid()}_{next(_databases)}"
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def log_tail(self, lines: int = 20) -> str:
        try:
            with open(self.log, errors="replace") as handle:
                return "".join(handle.readlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        subprocess.run([*_as_postgres(), os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-m", "immediate",
                        "-w", "-s", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)
