"""`jobsd` command line: parse, configure logging, hand over to the composition root."""
from __future__ import annotations

import argparse
import logging
import os
import sys

__all__ = ["main"]


def _positive(text: str) -> int:
    value = int(text)
    if value < 1 or value > 1024:
        raise argparse.ArgumentTypeError("must be between 1 and 1024")
    return value


def _keep_last(text: str) -> int:
    from jobsd_lib.kernel.retention import MAX_KEEP_LAST

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= value <= MAX_KEEP_LAST:
        raise argparse.ArgumentTypeError(f"must be between 0 and {MAX_KEEP_LAST}")
    return value


def _age(text: str) -> float:
    from jobsd_lib.units import parse_duration

    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError("must be longer than 0s")
    return seconds


def _command(text: str) -> tuple[str, ...]:
    import shlex

    try:
        argv = tuple(shlex.split(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"cannot split {text!r}: {exc}") from None
    if not argv:
        raise argparse.ArgumentTypeError("the command is empty")
    return argv


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT (like 127.0.0.1:9464)")
    return host, int(port)


def _loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _store(value: str) -> str:
    """--store: a PostgreSQL URL (DESIGN 12). A SQLite store is the default and needs no option."""
    scheme, _, rest = value.partition("://") if "://" in value else ("", "", value)
    if scheme not in ("postgresql", "postgresql+psycopg"):
        shown = f"{scheme}://{rest.split('@')[-1]}" if scheme else value  # never a password
        raise argparse.ArgumentTypeError(f"{shown!r} is not a PostgreSQL URL: use "
                                         "postgresql+psycopg://USER@HOST/DB (without --store, runs stay in SQLite)")
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError
    try:
        make_url(value)
    except (ArgumentError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"{scheme}://{rest.split('@')[-1]!s}: not a valid URL ({exc})") from None
    return value


def _host_name(value: str) -> str:
    from jobsd.store_hosts import check_host_name
    if problem := check_host_name(value):
        raise argparse.ArgumentTypeError(problem)
    return value


def _labels(value: str) -> tuple[str, ...]:
    from jobsd.store_hosts import check_labels
    labels = tuple(sorted({part.strip() for part in value.split(",") if part.strip()}))
    if problem := check_labels(labels):
        raise argparse.ArgumentTypeError(problem)
    return labels


def _store_from_environ(value: str) -> str:
    if not value:
        return ""
    try:
        return _store(value)
    except argparse.ArgumentTypeError as exc:
        sys.exit(f"jobsd: JOBSD_STORE: {exc}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="jobsd", description="The jobsd daemon: runs job specs on schedule "
                                     "or on demand and serves the jobsd API on a Unix socket.",
                                     epilog="jobsd migrate-store --from PATH --to URL copies a stopped jobsd's "
                                     "SQLite store into an empty PostgreSQL database (jobsd migrate-store -h).")
    parser.add_argument("--home", help="jobs in HOME/jobs, state in HOME, socket HOME/jobsd.sock "
                        "(default $JOBSD_HOME, else ~/.local/state/jobsd)")
    parser.add_argument("--jobs-dir", help="folder of <job-id>.toml specs")
    parser.add_argument("--state-dir", help="folder for db/ (SQLite, lock) and runs/ (artifacts)")
    parser.add_argument("--socket", help="Unix socket path (default $JOBSD_SOCKET, else HOME/jobsd.sock)")
    parser.add_argument("--store", type=_store, metavar="URL",
                        help="keep runs in PostgreSQL, postgresql+psycopg://USER@HOST/DB (default $JOBSD_STORE, "
                        "else the SQLite file STATE/db/jobsd.sqlite3)")
    parser.add_argument("--socket-group", help="make the socket 0660 and owned by this group")
    parser.add_argument("--host-name", type=_host_name, metavar="NAME",
                        help="this host's name on a shared store (default: the machine's hostname)")
    parser.add_argument("--labels", type=_labels, default=(), metavar="A,B",
                        help="this host's labels on a shared store ([placement] labels, DESIGN 12)")
    parser.add_argument("--max-concurrent-runs", type=_positive, default=4, help="executor slots (default 4)")
    parser.add_argument("--retention-keep-last", type=_keep_last, metavar="N",
                        help="default retention: keep each job's N newest finished runs (a job's [retention] wins)")
    parser.add_argument("--retention-older-than", type=_age, metavar="DURATION",
                        help="default retention: remove only runs that finished longer ago (30d, 2w)")
    parser.add_argument("--notify-command", type=_command, default=(), metavar="COMMAND",
                        help="notify command for every job without [notify] command (split like a shell: "
                        "'/usr/local/bin/jobsd-mail ops@example.com'); it reads a JSON document on stdin")
    parser.add_argument("--metrics-listen", type=_address, metavar="HOST:PORT",
                        help="serve Prometheus metrics at http://HOST:PORT/metrics (loopback only unless "
                        "--metrics-listen-any)")
    parser.add_argument("--metrics-listen-any", action="store_true",
                        help="let --metrics-listen take a non-loopback address (the metrics name every job)")
    parser.add_argument("--metrics-textfile", metavar="PATH",
                        help="write the metrics to PATH every 15 s, atomically (node_exporter's textfile collector)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    args = parser.parse_args(argv)
    if args.metrics_listen and not args.metrics_listen_any and not _loopback(args.metrics_listen[0]):
        parser.error(f"--metrics-listen {args.metrics_listen[0]} is not a loopback address: the metrics name "
                     "every job; add --metrics-listen-any to serve them there anyway")
    return args


def configure_logging(level: str) -> None:
    # Under systemd, journald stamps each line; elsewhere we do.
    fmt = "%(levelname)s %(name)s: %(message)s" if os.environ.get("JOURNAL_STREAM") else \
        "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=level.upper(), format=fmt, stream=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["migrate-store"]:  # the one subcommand: copy a SQLite store into PostgreSQL
        from jobsd.migrate_store import main as migrate_store
        sys.exit(migrate_store(argv[1:]))
    args = parse_args(argv)
    if args.version:
        from jobsd_lib import __version__
        print(f"jobsd {__version__}")
        return
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")  # before grpc loads (PITFALLS 14)
    configure_logging(args.log_level)
    from jobsd.app import Options, run

    sys.exit(run(Options(home=args.home, jobs_dir=args.jobs_dir, state_dir=args.state_dir, socket=args.socket,
                         socket_group=args.socket_group, max_concurrent_runs=args.max_concurrent_runs,
                         retention=(args.retention_keep_last, args.retention_older_than),
                         notify_command=args.notify_command, metrics_listen=args.metrics_listen,
                         metrics_textfile=args.metrics_textfile,
                         store=args.store or _store_from_environ(os.environ.get("JOBSD_STORE", "")),
                         host_name=args.host_name or "", labels=args.labels)))


if __name__ == "__main__":
    main()
