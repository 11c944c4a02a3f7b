"""`pip install .` (not only editable) gives working commands from the installed wheel.

The wheel is built and unpacked into a folder put first on PYTHONPATH, so the code that runs is
the installed copy, not the editable source tree (the test asserts which one ran).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from tests.conftest import wait_for

pytestmark = pytest.mark.timeout(240)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> str:
    wheels, target = tmp_path_factory.mktemp("wheel"), tmp_path_factory.mktemp("site")
    # From a copy without build/: setuptools reuses the files a previous build left there, which
    # would hide a package missing from pyproject's list.
    source = tmp_path_factory.mktemp("source") / "jobsd"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "*.egg-info", "__pycache__", "db", "bench", "tests", "docs"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(source)],
                   check=True, timeout=200)
    (wheel,) = [os.path.join(wheels, n) for n in os.listdir(wheels) if n.endswith(".whl")]
    with zipfile.ZipFile(wheel) as zf:
        tops = {name.split("/")[0] for name in zf.namelist() if not name.split("/")[0].endswith(".dist-info")}
        assert tops == {"jobsd", "jobsctl", "jobsd_lib"}, tops
        zf.extractall(target)
    return str(target)


def run(site: str, *args: str, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": site}
    return subprocess.run([sys.executable, *args], capture_output=True, env=env, timeout=60, **kw)


def test_the_wheel_holds_every_module_of_the_source_tree(installed):
    """The venv's editable finder would still find a package the wheel left out, so the commands
    below cannot tell: compare the files."""
    wanted = set()
    for root, package in (("daemon", "jobsd"), ("client", "jobsctl"), ("shared", "jobsd_lib")):
        base = os.path.join(ROOT, root)
        for folder, _, files in os.walk(base):
            wanted |= {os.path.relpath(os.path.join(folder, f), base) for f in files
                       if f.endswith((".py", ".c", "py.typed"))}
    got = {os.path.relpath(os.path.join(folder, f), installed) for folder, _, files in os.walk(installed)
           for f in files}
    assert not wanted - got, f"missing from the wheel: {sorted(wanted - got)}"


def test_installed_packages_are_the_ones_that_run(installed):
    result = run(installed, "-c", "import jobsd, jobsctl, jobsd_lib.rpc.jobsd_pb2 as p; print(jobsd.__file__, jobsctl.__file__)")
    assert result.returncode == 0, result.stderr
    assert all(path.startswith(installed) for path in result.stdout.decode().split())


def test_installed_daemon_and_client_run_a_job(installed, home):
    os.makedirs(os.path.join(home, "jobs"))
    with open(os.path.join(home, "jobs", "hello.toml"), "w") as f:
        f.write('command = ["echo", "hi"]\n')
    env = {**os.environ, "PYTHONPATH": installed}
    daemon = subprocess.Popen([sys.executable, "-m", "jobsd", "--home", home], env=env, stderr=subprocess.PIPE)
    try:
        sock = os.path.join(home, "jobsd.sock")
        wait_for(lambda: os.path.exists(sock), timeout=20, what="the socket")
        result = run(installed, "-m", "jobsctl", "--socket", sock, "jobs", "run", "hello", "--follow")
        assert result.returncode == 0 and result.stdout == b"hi\n", result.stderr
        assert run(installed, "-m", "jobsctl", "jobs", "validate", os.path.join(home, "jobs")).returncode == 0
    finally:
        daemon.terminate()
        assert daemon.wait(timeout=20) == 0
