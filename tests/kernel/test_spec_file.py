"""Reading one spec file (jobsd_lib.spec_file): what the daemon and `jobs validate` both call."""
from __future__ import annotations

import os

import pytest

from jobsd_lib.spec import MAX_SPEC_BYTES, TOO_LARGE, SpecInvalid
from jobsd_lib.spec_file import jobs_folder_unsafe, read_spec_file

pytestmark = pytest.mark.timeout(10)  # a FIFO read by mistake would block: fail instead of hanging
ME = os.geteuid()


def theirs(path) -> int:
    """Make `path` someone else's as seen by the uid returned (root may own specs, so as root
    the path goes to nobody; otherwise it is judged as another uid would judge it)."""
    if ME == 0:
        os.chown(path, 65534, 65534)
        return ME
    return ME + 1


def write(folder, name: str, data: bytes, mode: int = 0o644) -> str:
    path = os.path.join(folder, name)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)
    return path


def refusal(path: str, own_uid: int | None = None) -> list[tuple[str, str, str]]:
    with pytest.raises(SpecInvalid) as err:
        read_spec_file(path, own_uid)
    return [(p.file, p.field, p.message) for p in err.value.problems]


def test_a_good_file_parses_as_the_job_its_name_says(tmp_path):
    spec = read_spec_file(write(tmp_path, "hello.toml", b'command = ["true"]\n'))
    assert spec.id == "hello" and spec.argv == ["true"]


def test_up_to_the_limit_is_read_and_one_byte_more_is_refused_unread(tmp_path):
    body = b'command = ["true"]\n'
    exact = write(tmp_path, "exact.toml", body + b"#" * (MAX_SPEC_BYTES - len(body)))
    assert read_spec_file(exact).id == "exact"
    big = write(tmp_path, "big.toml", body + b"#" * (MAX_SPEC_BYTES - len(body) + 1))
    assert refusal(big) == [(big, "", TOO_LARGE)]


def test_a_fifo_a_folder_and_a_missing_file_are_refused_without_a_read(tmp_path):
    fifo = os.path.join(tmp_path, "fifo.toml")
    os.mkfifo(fifo)
    assert refusal(fifo)[0][2].startswith("not a regular file (a FIFO)")
    folder = os.path.join(tmp_path, "dir.toml")
    os.mkdir(folder)
    assert refusal(folder) == [(folder, "", "cannot read the file: Is a directory")]  # open() says so first
    missing = os.path.join(tmp_path, "gone.toml")
    assert refusal(missing) == [(missing, "", "cannot read the file: No such file or directory")]


def test_others_may_not_write_or_own_it(tmp_path):
    writable = write(tmp_path, "w.toml", b'command = ["true"]\n', 0o666)
    assert refusal(writable)[0][2].startswith("unsafe file, writable by other users")
    other = write(tmp_path, "theirs.toml", b'command = ["true"]\n')
    assert refusal(other, own_uid=theirs(other))[0][2].startswith("unsafe file, owned by another user")


def test_decoding_and_validation_problems_name_the_file(tmp_path):
    latin = write(tmp_path, "latin.toml", b'command = ["caf\xe9"]\n')
    assert "not UTF-8" in refusal(latin)[0][2]
    empty = write(tmp_path, "empty.toml", b"command = []\n")
    assert [(f, field) for f, field, _ in refusal(empty)] == [(empty, "command")]


def test_a_folder_others_can_write_refuses_its_specs(tmp_path):
    os.chmod(tmp_path, 0o755)
    assert jobs_folder_unsafe(str(tmp_path), os.stat(tmp_path)) is None
    os.chmod(tmp_path, 0o777)
    assert jobs_folder_unsafe(str(tmp_path), os.stat(tmp_path)).startswith(f"unsafe jobs folder {tmp_path}")
    os.chmod(tmp_path, 0o755)
    reader = theirs(tmp_path)
    assert "owned by another user" in jobs_folder_unsafe(str(tmp_path), os.stat(tmp_path), own_uid=reader)
