"""Loading the jobs directory into a Catalog: valid specs and the problems of invalid files.

An invalid file never stops the daemon: it becomes an entry with its problems, and every
other job goes on (DESIGN 2). Only `*.toml` files directly in the folder are jobs.

A spec is code run with jobsd's rights, so, as cron does with crontabs, a file or a jobs folder
that a user other than jobsd's own or root owns or can write is refused: its jobs are invalid
with the owner, mode and fix (jobsd_lib.spec.spec_file_problem, jobs_folder_problem), and the
problem is also a warning of `daemon status`. The folder's parents are not checked.
"""
from __future__ import annotations

import grp
import os
import pwd
import stat
from dataclasses import dataclass, field

from jobsd_lib.perms import is_private_group
from jobsd_lib.spec import (MAX_SPEC_BYTES, TOO_LARGE, UNSAFE_FILE, JobSpec, SpecInvalid, SpecProblem, jobs_folder_problem,
                            parse_spec, spec_file_problem)

__all__ = ["Catalog", "load_catalog", "read_spec_file", "owner_name"]


@dataclass(frozen=True)
class Catalog:
    specs: dict[str, JobSpec] = field(default_factory=dict)
    invalid: dict[str, list[SpecProblem]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # unsafe files and folders, for GetHealth

    def ids(self) -> list[str]:
        return sorted({*self.specs, *self.invalid})


def owner_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:  # a uid without a passwd entry: the number alone says it
        return ""


def private_group(info: os.stat_result) -> bool:
    """Is a group-writable file's group its owner's private group (the rule: jobsd_lib.perms.
    is_private_group)? The user database is read only for a file its group can write."""
    if not info.st_mode & stat.S_IWGRP:
        return False
    try:
        user, group = pwd.getpwuid(info.st_uid), grp.getgrgid(info.st_gid)
    except KeyError:
        return False
    return is_private_group(user.pw_name, info.st_uid, group.gr_name, info.st_gid, group.gr_mem,
                            ((p.pw_uid, p.pw_gid) for p in pwd.getpwall()))


def read_spec_file(path: str, own_uid: int | None = None) -> JobSpec:
    """Parse one file; raises SpecInvalid (unreadable, unsafe, not regular or too large files included).

    O_NONBLOCK, then fstat before any read: a FIFO swapped in after the listing must not hang the
    daemon, and the owner and mode judged are those of the file actually read."""
    job_id = os.path.basename(path).removesuffix(".toml")
    own_uid = os.geteuid() if own_uid is None else own_uid
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(fd)
            problem = spec_file_problem(path, info.st_mode, info.st_size, info.st_uid, own_uid,
                                        owner_name(info.st_uid), private_group(info))
            data = b"" if problem else f.read(MAX_SPEC_BYTES + 1)
    except OSError as exc:
        raise SpecInvalid([SpecProblem(path, "", f"cannot read the file: {exc.strerror}", job_id)]) from None
    if not problem and len(data) > MAX_SPEC_BYTES:  # it grew since the fstat
        problem = TOO_LARGE
    if problem:
        raise SpecInvalid([SpecProblem(path, "", problem, job_id)])
    return parse_spec(job_id, data, path)


def load_catalog(jobs_dir: str) -> Catalog:
    catalog = Catalog()
    try:
        names = sorted(os.listdir(jobs_dir))
        folder = os.stat(jobs_dir)
    except FileNotFoundError:
        return catalog
    own_uid = os.geteuid()
    unsafe = jobs_folder_problem(jobs_dir, folder.st_uid, folder.st_mode, own_uid, owner_name(folder.st_uid),
                                 private_group(folder))
    if unsafe:
        catalog.warnings.append(unsafe)
    for name in names:
        path = os.path.join(jobs_dir, name)
        if not name.endswith(".toml") or name.startswith(".") or not os.path.isfile(path):
            continue
        job_id = name.removesuffix(".toml")
        try:
            if unsafe:  # not even read: the folder's problem is every file's
                raise SpecInvalid([SpecProblem(path, "", unsafe, job_id)])
            spec = read_spec_file(path, own_uid)
            catalog.specs[spec.id] = spec
        except SpecInvalid as exc:
            catalog.invalid[job_id] = exc.problems
            catalog.warnings.extend(str(p) for p in exc.problems if p.message.startswith(UNSAFE_FILE))
    return catalog
