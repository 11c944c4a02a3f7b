"""`jobs validate`: the daemon's own spec parser on files or folders, no daemon needed.

Each file is read as the daemon reads it (jobsd/specs.py): opened without blocking and checked
by fstat before any read, so a FIFO is "not a regular file" at once and a file over 1 MiB is
refused, with the daemon's messages (jobsd_lib.spec). Ownership and mode are judged as if the
daemon ran as the user running this command: run it as jobsd's user (`sudo -u jobsd ...`, or as
root for a root daemon) to see exactly what the daemon will refuse. A folder given is judged as
the daemon judges its jobs folder; a file given alone is judged by itself (a draft in /tmp is
not refused for its folder).
"""
from __future__ import annotations

import grp
import os
import pwd
import stat

from jobsd_lib.perms import is_private_group
from jobsd_lib.spec import (MAX_SPEC_BYTES, TOO_LARGE, SpecInvalid, SpecProblem, jobs_folder_problem, parse_spec,
                            spec_file_problem)

__all__ = ["validate_paths"]


def _files(path: str) -> list[str]:
    if os.path.isdir(path):
        return [os.path.join(path, n) for n in sorted(os.listdir(path)) if n.endswith(".toml") and not n.startswith(".")]
    return [path]


def validate_paths(paths: list[str]) -> list[dict]:
    results = []
    for path in paths:
        files = _files(path)
        if not files:
            results.append({"file": path, "job": None, "problems": [
                {"field": None, "message": "no *.toml spec files in this folder"}]})
        unsafe = _folder_problem(path) if os.path.isdir(path) else None
        for file in files:
            results.append(_check(file, unsafe))
    return results


def _owner_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return ""


def _private_group(info: os.stat_result) -> bool:
    """The user-database lookup of the daemon's jobsd.specs.private_group (the rule is
    jobsd_lib.perms.is_private_group)."""
    if not info.st_mode & stat.S_IWGRP:
        return False
    try:
        user, group = pwd.getpwuid(info.st_uid), grp.getgrgid(info.st_gid)
    except KeyError:
        return False
    return is_private_group(user.pw_name, info.st_uid, group.gr_name, info.st_gid, group.gr_mem,
                            ((p.pw_uid, p.pw_gid) for p in pwd.getpwall()))


def _folder_problem(folder: str) -> str | None:
    folder = os.path.abspath(folder)
    info = os.stat(folder)
    return jobs_folder_problem(folder, info.st_uid, info.st_mode, os.geteuid(), _owner_name(info.st_uid),
                               _private_group(info))


def _read(file: str) -> bytes:
    """The file's bytes, as the daemon reads them; raises SpecInvalid or OSError."""
    job_id = os.path.basename(file).removesuffix(".toml")
    fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        problem = spec_file_problem(file, info.st_mode, info.st_size, info.st_uid, os.geteuid(),
                                    _owner_name(info.st_uid), _private_group(info))
        data = b"" if problem else f.read(MAX_SPEC_BYTES + 1)
    if not problem and len(data) > MAX_SPEC_BYTES:
        problem = TOO_LARGE
    if problem:
        raise SpecInvalid([SpecProblem(file, "", problem, job_id)])
    return data


def _check(file: str, unsafe: str | None) -> dict:
    job_id = os.path.basename(file).removesuffix(".toml")
    problems: list[SpecProblem] = []
    if not file.endswith(".toml"):
        problems.append(SpecProblem(file, "", "a spec file is named <job-id>.toml", job_id))
    elif unsafe:  # as in the daemon: not even read
        problems.append(SpecProblem(file, "", unsafe, job_id))
    else:
        try:
            parse_spec(job_id, _read(file), file)
        except OSError as exc:
            problems.append(SpecProblem(file, "", f"cannot read the file: {exc.strerror}", job_id))
        except SpecInvalid as exc:
            problems.extend(exc.problems)
    return {"file": file, "job": job_id, "problems": [{"field": p.field or None, "message": p.message}
                                                       for p in problems]}
