"""The home and state folders at start-up: made with explicit modes, refused when others can change them.

Folders are made one level at a time with mode 0750 (os.makedirs gives the levels above the last
one 0777 less the umask: 0777 under umask 000). The process umask is never changed to get there:
jobs inherit it. What is refused or warned about is decided in jobsd_lib.perms; the parents of
these folders are not checked (an operator puts the home where only they can change it).
"""
from __future__ import annotations

import os

from jobsd.catalog import owner_name, private_group
from jobsd_lib.perms import state_folder_verdict

__all__ = ["FOLDER_MODE", "UnsafeFolder", "make_folder", "check_folders"]

FOLDER_MODE = 0o750


class UnsafeFolder(Exception):
    """A home or state folder other users can change; the message names it, its mode and the fix."""


def make_folder(path: str, mode: int = FOLDER_MODE) -> None:
    """Create `path` and any missing parent, each with `mode` (less what the umask takes away)."""
    if os.path.isdir(path):
        return
    parent = os.path.dirname(path)
    if parent and parent != path:
        make_folder(parent, mode)
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        pass


def check_folders(folders: list[tuple[str, str, bool]]) -> list[str]:
    """Judge each existing (label, path, group_may_write) folder; raise UnsafeFolder on the first
    refusal, else return the warnings."""
    warnings, seen, own_uid = [], set(), os.geteuid()
    for label, path, group_may_write in folders:
        if path in seen or not os.path.isdir(path):
            continue
        seen.add(path)
        info = os.stat(path)
        refusal, warning = state_folder_verdict(label, path, info.st_uid, info.st_mode, own_uid,
                                                owner_name(info.st_uid), group_may_write,
                                                private_group(info))
        if refusal:
            raise UnsafeFolder(refusal)
        if warning:
            warnings.append(warning)
    return warnings
