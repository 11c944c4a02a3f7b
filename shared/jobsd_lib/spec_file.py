"""Reading spec files: the functions the daemon (jobsd.catalog) and `jobs validate` both call.

So `validate` can never pass a file the daemon refuses: the same open, the same checks in the
same order, the same messages. A jobs folder that others can write is judged by
jobs_folder_unsafe (its files are then refused unread). The file is opened with O_NONBLOCK and judged by fstat before any
read (a FIFO swapped in after a listing must not hang anyone, and the owner and mode judged are
those of the file actually read): not a regular file, over MAX_SPEC_BYTES, or owned or writable
by someone other than the reader or root (jobsd_lib.spec.spec_file_problem) is refused unread;
then at most MAX_SPEC_BYTES + 1 bytes are read (a file that grew since the fstat is still too
large) and parsed (decoding and validation: jobsd_lib.spec.parse_spec).

This module reads the file system and the user database; it starts nothing and opens no socket.
"""
from __future__ import annotations

import grp
import os
import pwd
import stat

from jobsd_lib.identity import run_as_problem
from jobsd_lib.perms import is_private_group
from jobsd_lib.spec import (MAX_SPEC_BYTES, TOO_LARGE, JobSpec, SpecInvalid, SpecProblem, jobs_folder_problem, parse_spec,
                            spec_file_problem)

__all__ = ["read_spec_file", "jobs_folder_unsafe", "owner_name", "private_group"]


def owner_name(uid: int) -> str:
    """The user name of `uid`, "" for a uid without a passwd entry (the number alone says it)."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
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


def jobs_folder_unsafe(folder: str, info: os.stat_result, own_uid: int | None = None) -> str | None:
    """Why the specs in `folder` (whose stat is `info`) are refused unread, or None when only the
    user `own_uid` (default: the effective uid) or root can add files to it."""
    own_uid = os.geteuid() if own_uid is None else own_uid
    return jobs_folder_problem(folder, info.st_uid, info.st_mode, own_uid, owner_name(info.st_uid),
                               private_group(info))


def read_spec_file(path: str, own_uid: int | None = None) -> JobSpec:
    """Parse one file as the user `own_uid` (default: the effective uid) reads it.

    The job id is the file's name without `.toml`. Raises SpecInvalid, with one problem naming
    the file, for a file that cannot be opened or read, is unsafe, not regular or too large, and
    with parse_spec's problems for one that does not decode or validate, or that names a user
    `own_uid` cannot run jobs as (identity.run_as_problem)."""
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
    spec = parse_spec(job_id, data, path)
    if spec.identity is not None:
        refused = run_as_problem(spec.identity, own_uid, os.getegid(), tuple(os.getgroups()))
        if refused:
            raise SpecInvalid([SpecProblem(path, "user", refused, job_id)])
    return spec
