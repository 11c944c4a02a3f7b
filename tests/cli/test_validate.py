"""`jobs validate` (jobsctl.validate) and the daemon's loading of the jobs folder (jobsd.catalog) give
every file the same verdict, in the same words: validate cannot pass a file the daemon refuses."""
from __future__ import annotations

import os

import pytest

from jobsctl.validate import validate_paths
from jobsd.catalog import load_catalog
from jobsd_lib.spec import MAX_SPEC_BYTES

pytestmark = pytest.mark.timeout(30)

FILES = {
    "good": (b'command = ["true"]\n', 0o644),
    "exact": (b'command = ["true"]\n'.ljust(MAX_SPEC_BYTES, b"#"), 0o644),
    "big": (b'command = ["true"]\n'.ljust(MAX_SPEC_BYTES + 1, b"#"), 0o644),
    "latin": (b'command = ["caf\xe9"]\n', 0o644),
    "toml": (b'command = [\n', 0o644),
    "fields": (b'command = []\n[retry]\nattempts = 0\n', 0o644),
    "Bad-Name": (b'command = ["true"]\n', 0o644),
    "writable": (b'command = ["true"]\n', 0o646),
}


def verdicts_of_validate(folder: str) -> dict[str, list[tuple[str, str]]]:
    return {r["job"]: [(p["field"] or "", p["message"]) for p in r["problems"]] for r in validate_paths([folder])}


def verdicts_of_the_daemon(folder: str) -> dict[str, list[tuple[str, str]]]:
    catalog = load_catalog(folder)
    found = {job_id: [(p.field, p.message) for p in problems] for job_id, problems in catalog.invalid.items()}
    return {**found, **{job_id: [] for job_id in catalog.specs}}


@pytest.fixture
def folder(tmp_path) -> str:
    jobs = tmp_path / "jobs"
    jobs.mkdir(mode=0o755)
    for job_id, (data, mode) in FILES.items():
        path = jobs / f"{job_id}.toml"
        path.write_bytes(data)
        os.chmod(path, mode)
    (jobs / ".hidden.toml").write_bytes(b"command = []\n")  # neither reads these
    (jobs / "notes.txt").write_bytes(b"command = []\n")
    return str(jobs)


def test_every_file_gets_the_daemons_verdict(folder):
    daemon = verdicts_of_the_daemon(folder)
    assert set(daemon) == set(FILES)
    assert sorted(job for job, problems in daemon.items() if not problems) == ["exact", "good"]
    assert verdicts_of_validate(folder) == daemon


def test_a_folder_others_can_write_refuses_every_file_in_both(folder):
    os.chmod(folder, 0o777)
    daemon = verdicts_of_the_daemon(folder)
    assert all(problems and problems[0][1].startswith("unsafe jobs folder") for problems in daemon.values())
    assert verdicts_of_validate(folder) == daemon
