"""Who a job's processes run as: the spec's `user`, `group`, `supplementary_groups` and `umask`,
resolved against the user and group databases when the spec is loaded (an unknown user or group
makes the spec invalid at load and reload, never a surprise at run time).

Only root can switch users. `run_as_problem` says why a job cannot run as its user when jobsd is
not root: then a job may only name jobsd's own user, group and groups (as cron's per-user crontab
runs as its owner). The daemon switches in the child between fork and exec (subprocess's user=,
group=, extra_groups= and umask=, C code: no Python runs there, PITFALLS 14).

This module reads the user database; it starts nothing.
"""
from __future__ import annotations

import grp
import os
import pwd
import re
from dataclasses import dataclass

__all__ = ["Identity", "lookup_user", "lookup_group", "resolve", "parse_umask", "run_as_problem", "user_environment"]

_UMASK = re.compile(r"^0?[0-7]{3}$")


@dataclass(frozen=True)
class Identity:
    """A job's user as the databases said at load: what the child switches to before exec."""
    user: str
    uid: int
    gid: int
    groups: tuple[int, ...]  # supplementary groups
    home: str
    shell: str


def lookup_user(value: str | int) -> pwd.struct_passwd:
    """The passwd entry of a user name or uid; ValueError naming it when there is none."""
    try:
        if isinstance(value, int) or value.isdigit():
            return pwd.getpwuid(int(value))
        return pwd.getpwnam(value)
    except (KeyError, OverflowError):
        raise ValueError(f"no user {value!r} on this host (getent passwd {value} finds none)") from None


def lookup_group(value: str | int) -> grp.struct_group:
    """The group entry of a group name or gid; ValueError naming it when there is none."""
    try:
        if isinstance(value, int) or value.isdigit():
            return grp.getgrgid(int(value))
        return grp.getgrnam(value)
    except (KeyError, OverflowError):
        raise ValueError(f"no group {value!r} on this host (getent group {value} finds none)") from None


def resolve(user: str | int, group: str | int | None = None,
            supplementary: tuple[str | int, ...] | None = None) -> Identity:
    """The identity of `user`: its primary group unless `group` names another, and its groups from
    the group database (getgrouplist) unless `supplementary` lists them. ValueError for a name or id
    that the databases do not know."""
    entry = lookup_user(user)
    gid = lookup_group(group).gr_gid if group is not None else entry.pw_gid
    if supplementary is None:
        groups = tuple(sorted(set(os.getgrouplist(entry.pw_name, gid)) - {gid}))
    else:
        groups = tuple(sorted({lookup_group(g).gr_gid for g in supplementary} - {gid}))
    return Identity(entry.pw_name, entry.pw_uid, gid, groups, entry.pw_dir or "/", entry.pw_shell or "/bin/sh")


def parse_umask(text: str) -> int:
    """`"0027"` or `"027"` -> 0o027; ValueError otherwise."""
    if not _UMASK.match(text):
        raise ValueError(f"umask is 3 or 4 octal digits, like \"0027\" (got {text!r})")
    return int(text, 8)


def run_as_problem(identity: Identity, own_uid: int, own_gid: int, own_groups: tuple[int, ...]) -> str | None:
    """Why a process running as `own_uid` cannot start a job as `identity` (None: it can)."""
    if own_uid == 0:
        return None
    name = _name(own_uid)
    me = f"{name} (uid {own_uid})" if name else f"uid {own_uid}"
    if identity.uid != own_uid:
        return (f"jobsd runs as {me}, not root, so it can run jobs only as itself: remove `user`"
                + (f" (or set user = {name!r})" if name else "") + f", or run jobsd as root to run jobs as {identity.user!r}")
    if identity.gid != own_gid or set(identity.groups) - set(own_groups) - {own_gid}:
        return (f"jobsd runs as {me}, not root, so it cannot switch groups: remove `group` and "
                "`supplementary_groups`, or run jobsd as root")
    return None


def user_environment(identity: Identity) -> dict[str, str]:
    """HOME, USER, LOGNAME and SHELL of the job's user (the spec's env still wins for those it sets)."""
    return {"HOME": identity.home, "USER": identity.user, "LOGNAME": identity.user, "SHELL": identity.shell}


def _name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return ""
