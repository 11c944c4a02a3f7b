"""Who may change what jobsd trusts: the pure decision about a file's or a folder's owner and mode.

As cron does with crontabs: a spec is code that runs with jobsd's rights, and the state folders
hold what jobsd writes as its user, so a file or folder that another user could change is refused.
The caller does the stat (for a file, the fstat of what it opened, so the verdict is about the very
file it reads, a symlink's target included) and looks up the owner's name; this module only decides
and words the problem, so the daemon and `jobsctl jobs validate` say the same.
"""
from __future__ import annotations

import shlex
import stat
from collections.abc import Iterable

__all__ = ["ROOT_UID", "write_access_problem", "state_folder_verdict", "is_private_group"]

ROOT_UID = 0


def is_private_group(user: str, uid: int, group: str, gid: int, members: Iterable[str],
                     primary_groups: Iterable[tuple[int, int]]) -> bool:
    """Is group `gid` user `uid`'s private group: named after the user, with no other member, and
    no other user's primary group (`primary_groups`: every user's (uid, gid))? Then its write
    access is the owner's alone (write_access_problem's `group_private`)."""
    return (group == user and set(members) <= {user}
            and all(other_gid != gid or other_uid == uid for other_uid, other_gid in primary_groups))


def write_access_problem(path: str, st_uid: int, st_mode: int, own_uid: int, owner_name: str = "",
                         group_ok: bool = False, group_private: bool = False) -> str | None:
    """None when only `own_uid` (jobsd's user) or root can change `path`, else what is wrong and the fix.

    Owned by anyone else, or writable by other users (by its group too, unless `group_ok`), is
    wrong. The sticky bit does not help: it stops others renaming entries, not adding them.
    `group_private`: the group is the owner's private group (named after the user, with no other
    member, as `adduser` makes them): under umask 002, the default of such systems, every file is
    group-writable, and nobody else is in that group, so its write bit is no risk either. The fix
    offered still removes the group's write bit unless `group_ok` (a group shared on purpose).
    """
    owner = f"{owner_name} (uid {st_uid})" if owner_name else f"uid {st_uid}"
    facts = f"owner {owner}, mode {stat.S_IMODE(st_mode):04o}"
    quoted = shlex.quote(path)
    if st_uid not in (own_uid, ROOT_UID):
        return (f"owned by another user ({facts}); only jobsd's user (uid {own_uid}) or root may own it: "
                f"fix with `chown {own_uid} {quoted}` (or chown root)")
    bits = st_mode & (stat.S_IWOTH if group_ok or group_private else stat.S_IWOTH | stat.S_IWGRP)
    if not bits:
        return None
    who = "other users" if bits & stat.S_IWOTH else "its group"
    return f"writable by {who} ({facts}): fix with `chmod {'o' if group_ok else 'go'}-w {quoted}`"


def state_folder_verdict(label: str, path: str, st_uid: int, st_mode: int, own_uid: int, owner_name: str = "",
                         group_may_write: bool = False, group_private: bool = False) -> tuple[str | None, str | None]:
    """(refusal, warning) for a folder jobsd keeps its state in: jobsd does not start on a refusal,
    and starts but warns (log and `daemon status`) on a warning.

    Another owner, or writable by other users, is refused: they could swap the store or plant
    symlinks where jobsd writes run files with its user's rights. Writable by the group is refused
    too unless `group_may_write` (the home and the state folder, which an operator may share with
    an admin group on purpose; then it is a warning) or `group_private` (the owner's own group).
    """
    refusal = write_access_problem(path, st_uid, st_mode, own_uid, owner_name, group_ok=group_may_write,
                                   group_private=group_private)
    if refusal:
        return (f"{label} {path} is unsafe, {refusal}; jobsd does not start while another user can change "
                "what it keeps there"), None
    warning = group_may_write and write_access_problem(path, st_uid, st_mode, own_uid, owner_name,
                                                       group_private=group_private)
    if warning:
        return None, f"{label} {path} is {warning}, unless every member of that group may act as jobsd's user"
    return None, None
