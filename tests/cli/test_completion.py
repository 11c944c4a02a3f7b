"""Shell completion (typer's --install-completion / --show-completion): job ids and run references
come from the real daemon, as bash and zsh ask for them; with the daemon down nothing is completed
and nothing is printed."""
from __future__ import annotations

import os
import subprocess

import pytest

from tests.conftest import BIN

pytestmark = pytest.mark.timeout(60)


def _complete(words: str, socket: str, shell: str = "bash") -> subprocess.CompletedProcess:
    """What the shell's completion function runs for the command line `words` (the cursor at its end)."""
    env = {**os.environ, "_JOBSCTL_COMPLETE": f"complete_{shell}", "JOBSD_SOCKET": socket}
    if shell == "bash":
        env.update(COMP_WORDS=words, COMP_CWORD=str(len(words.split(" ")) - 1))
    else:
        env["_TYPER_COMPLETE_ARGS"] = words
    return subprocess.run([os.path.join(BIN, "jobsctl")], env=env, capture_output=True, timeout=20)


def _words(result: subprocess.CompletedProcess) -> list[str]:
    assert result.returncode == 0 and result.stderr == b"", result.stderr
    return result.stdout.decode().split()


@pytest.fixture
def served(daemon):
    for job in ("backup", "backup-db", "report"):
        daemon.write_job(job, 'command = ["true"]\n')
    daemon.start()
    for _ in range(3):
        assert daemon.ctl("jobs", "run", "backup", "--wait").returncode == 0
    assert daemon.ctl("jobs", "pause", "report").returncode == 0
    return daemon


def test_job_ids_and_run_references_complete_from_the_daemon(served):
    assert _words(_complete("jobsctl jobs show ba", served.socket)) == ["backup", "backup-db"]
    assert _words(_complete("jobsctl jobs run ", served.socket)) == ["backup", "backup-db", "report"]
    assert _words(_complete("jobsctl check back", served.socket)) == ["backup", "backup-db"]
    assert _words(_complete("jobsctl events --job re", served.socket)) == ["report"]
    assert _words(_complete("jobsctl runs show backup/", served.socket)) == ["backup/3", "backup/2", "backup/1"]
    assert _words(_complete("jobsctl runs retry backup/2", served.socket)) == ["backup/2"]
    assert _words(_complete("jobsctl runs show backup", served.socket)) == ["backup/3", "backup/2", "backup/1"]
    # --socket on the command line wins over the environment, as for any command
    elsewhere = _complete(f"jobsctl --socket {served.socket} jobs show rep", "/nonexistent/jobsd.sock")
    assert _words(elsewhere) == ["report"]
    zsh = _complete("jobsctl jobs resume ", served.socket, "zsh").stdout.decode()
    assert '"report":"paused"' in zsh and '"backup":"active"' in zsh


def test_with_the_daemon_down_nothing_is_completed_and_nothing_printed(served):
    socket = served.socket
    served.stop()
    assert _words(_complete("jobsctl jobs show ba", socket)) == []
    assert _words(_complete("jobsctl runs show backup/", socket)) == []


def test_show_completion_prints_a_script_that_asks_jobsctl(home):
    # the shell is found among jobsctl's parent processes (typer's rule; docs/cli.md): run it from bash
    # ("; exit $?": a lone command would be exec'd in bash's place, leaving the search to our own parents)
    result = subprocess.run(["bash", "-c", f"{os.path.join(BIN, 'jobsctl')} --show-completion; exit $?"],
                            capture_output=True, timeout=20)
    assert result.returncode == 0 and b"_JOBSCTL_COMPLETE=complete_bash" in result.stdout
