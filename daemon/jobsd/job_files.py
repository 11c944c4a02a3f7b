"""What a job carries between runs and is handed for one run: its state directory and its credentials.

State (JOBSD_STATE_DIR): `<state>/job-state/<job>`, made on the job's first attempt, mode 0700 and
owned by the job's user, kept across runs, restarts and reloads; removed only by `jobs forget-state`
(handlers/jobs.py). The folder above it is 0711: a job's user can reach its own folder by name but
cannot list the others.

Credentials (JOBSD_CREDENTIALS_DIRECTORY), like systemd's LoadCredential=: before a run's first
attempt (or its condition) jobsd reads each file the spec's `[credentials]` names, with its own
rights, and writes it into `<socket's folder>/credentials/<job>.<n>/<name>` (on tmpfs under the
shipped unit: /run/jobsd), each file 0400 and the folder 0500, both owned by the job's user. The
folder is removed when the run ends, whatever the outcome; `clear_leftovers` removes those of runs
a killed jobsd left, at the next start. Values are only ever copied file to file: never logged,
recorded or sent.
"""
from __future__ import annotations

import logging
import os
import shutil
import stat

from jobsd_lib.identity import Identity
from jobsd_lib.spec import JobSpec

__all__ = ["JobFiles", "CredentialsError", "MAX_CREDENTIAL", "unreachable"]

log = logging.getLogger("jobsd.job_files")
MAX_CREDENTIAL = 1 << 20  # bytes a credential may hold (systemd's CREDENTIAL_SIZE_MAX)
_ROOT_MODE = 0o711        # the folders above a job's own: reachable by name, not listable


class CredentialsError(Exception):
    """A run's credentials could not be handed over; the message says which and why (no value)."""


class JobFiles:
    def __init__(self, state_dir: str, credentials_dir: str) -> None:
        self.state_root = os.path.join(state_dir, "job-state")
        self.credentials_root = credentials_dir

    def prepare(self, ref: str, spec: JobSpec) -> tuple[dict[str, str], str]:
        """Before a run's first process: (JOBSD_STATE_DIR and JOBSD_CREDENTIALS_DIRECTORY, a warning for
        the job's output or ""). Raises CredentialsError when the credentials cannot be handed over."""
        identity, warning = spec.identity, ""
        env = {"JOBSD_STATE_DIR": self.state_dir(spec.id)}
        try:
            self.ensure_state(spec.id, identity)
            warning = unreachable(env["JOBSD_STATE_DIR"], identity)
        except OSError as exc:
            warning = f"JOBSD_STATE_DIR {env['JOBSD_STATE_DIR']} could not be made: {exc.strerror or exc}"
        if spec.credentials:
            try:
                folder = self.hand_over(ref, dict(spec.credentials), identity)
            except OSError as exc:
                raise CredentialsError(f"credentials: cannot write them into {self.credentials_root}: "
                                       f"{exc.strerror or exc}") from None
            problem = unreachable(folder, identity)
            if problem:
                self.remove(ref)
                raise CredentialsError(f"credentials: {problem}")
            env["JOBSD_CREDENTIALS_DIRECTORY"] = folder
        return env, warning

    # ------------------------------------------------------------------ state
    def state_dir(self, job_id: str) -> str:
        return os.path.join(self.state_root, job_id)

    def ensure_state(self, job_id: str, identity: Identity | None) -> str:
        """The job's state folder, made (or handed to a new user) as needed; raises OSError."""
        _make_root(self.state_root)
        path = self.state_dir(job_id)
        try:
            os.mkdir(path, 0o700)
            made = True
        except FileExistsError:
            made = False
        info = os.lstat(path)
        if not stat.S_ISDIR(info.st_mode):
            raise OSError(f"{path} is not a folder")
        if identity is not None and (info.st_uid, info.st_gid) != (identity.uid, identity.gid):
            os.chown(path, identity.uid, identity.gid)
            if not made:  # a new user for the job: its folder follows (what is inside keeps its owner)
                log.warning("state folder of %s now owned by %s", job_id, identity.user)
        return path

    def forget_state(self, job_id: str) -> int:
        """Remove the job's state folder; the bytes it held (0 when there was none)."""
        path = self.state_dir(job_id)
        if not os.path.lexists(path):
            return 0
        size = _size(path)
        shutil.rmtree(path)
        return size

    # ------------------------------------------------------------------ credentials
    def credentials_dir(self, ref: str) -> str:
        return os.path.join(self.credentials_root, ref.replace("/", "."))

    def hand_over(self, ref: str, credentials: dict[str, str], identity: Identity | None) -> str:
        """Write the run's credentials into a fresh folder only the job's user can read; its path.
        Raises CredentialsError (nothing is left behind)."""
        _make_root(self.credentials_root)
        folder = self.credentials_dir(ref)
        self.remove(ref)
        os.mkdir(folder, 0o700)
        try:
            for name, source in credentials.items():
                _copy(name, source, os.path.join(folder, name), identity)
            if identity is not None:
                os.chown(folder, identity.uid, identity.gid)
            os.chmod(folder, 0o500)
        except BaseException:
            self.remove(ref)
            raise
        return folder

    def remove(self, ref: str) -> None:
        folder = self.credentials_dir(ref)
        if os.path.lexists(folder):
            os.chmod(folder, 0o700)  # 0500 (and owned by the job's user): root may delete anyway, jobsd itself not
            shutil.rmtree(folder, ignore_errors=True)

    def clear_leftovers(self) -> int:
        """At start-up, before any run: remove every credentials folder (runs a killed jobsd left)."""
        try:
            names = os.listdir(self.credentials_root)
        except FileNotFoundError:
            return 0
        for name in names:
            path = os.path.join(self.credentials_root, name)
            os.chmod(path, 0o700)
            shutil.rmtree(path, ignore_errors=True)
        if names:
            log.warning("removed the credentials of %d run(s) left by an earlier jobsd", len(names))
        return len(names)


def unreachable(path: str, identity: Identity | None) -> str:
    """Why the job's user cannot reach `path` (a folder above it it may not search), or ""."""
    if identity is None or identity.uid == 0:
        return ""
    groups = {identity.gid, *identity.groups}
    folder = os.path.dirname(path)
    while True:
        info = os.stat(folder)
        bit = (stat.S_IXUSR if info.st_uid == identity.uid else stat.S_IXGRP if info.st_gid in groups
               else stat.S_IXOTH)
        if not info.st_mode & bit:
            return (f"user {identity.user} cannot reach {path}: {folder} is mode {stat.S_IMODE(info.st_mode):04o} "
                    "(let others search it: chmod o+x, or StateDirectoryMode/RuntimeDirectoryMode=0711)")
        if folder == os.path.dirname(folder):
            return ""
        folder = os.path.dirname(folder)


def _copy(name: str, source: str, target: str, identity: Identity | None) -> None:
    try:
        fd = os.open(source, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise CredentialsError(f"credentials: {name}: {source} is not a regular file")
            data = f.read(MAX_CREDENTIAL + 1)
    except OSError as exc:
        raise CredentialsError(f"credentials: {name}: cannot read {source}: {exc.strerror}") from None
    if len(data) > MAX_CREDENTIAL:
        raise CredentialsError(f"credentials: {name}: {source} is larger than {MAX_CREDENTIAL} bytes")
    out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o400)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(out, view):]
        if identity is not None:
            os.fchown(out, identity.uid, identity.gid)
    finally:
        os.close(out)


def _make_root(path: str) -> None:
    """A folder of jobsd's (mode 0711); refused when it is a link or others own or may write it."""
    try:
        os.mkdir(path, _ROOT_MODE)
        os.chmod(path, _ROOT_MODE)  # not what the umask left
    except FileExistsError:
        pass
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise OSError(f"{path} is not a folder of jobsd's that only it may change")


def _size(path: str) -> int:
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                pass
    return total
