"""systemd/jobsd.service checked by systemd's own tools (PITFALLS 25): `systemd-analyze verify`
for typos and bad values, `systemd-analyze security --offline=yes` for the hardening score, and
systemd/jobsd.sysusers.conf applied by `systemd-sysusers` to a scratch root."""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "systemd" / "jobsd.service"
SYSUSERS = REPO / "systemd" / "jobsd.sysusers.conf"

# Measured 3.9 ("OK") with systemd 252. The margin absorbs re-weighting by other systemd versions;
# dropping one of the big items (ProtectSystem, NoNewPrivileges, PrivateTmp, the user) exceeds it.
MAX_EXPOSURE = 4.5

INSTALL_HINT = (
    "{tool} not found: install the 'systemd' Debian package (apt-get install systemd), which "
    "provides systemd-analyze and systemd-sysusers; the unit file cannot be checked without it"
)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(INSTALL_HINT.format(tool=name))
    return path


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def _installed_jobsd() -> str:
    """The jobsd entry point installed for this interpreter, else on PATH, else the interpreter
    itself (only `verify` sees it: it checks that ExecStart names an executable file)."""
    beside = Path(sys.executable).parent / "jobsd"
    if os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("jobsd") or sys.executable


def _exists(kind: str, name: str) -> bool:
    import grp
    import pwd

    try:
        (pwd.getpwnam if kind == "user" else grp.getgrnam)(name)
    except KeyError:
        return False
    return True


def _verify_copy(tmp_path: Path, unit_text: str) -> Path:
    """Write `unit_text` as tmp_path/jobsd.service with only machine-specific values replaced.

    Substituted, because they describe the target host rather than the unit:
    - ExecStart's /usr/bin/jobsd -> the jobsd installed here (verify fails on a missing
      executable; the arguments stay exactly as written);
    - User=/Group=jobsd -> root, only if this machine has no jobsd user/group (the sysusers
      file creates them on a real host). systemd 252's verify does not resolve users, but a
      version that does would otherwise fail here for a reason that is not the unit's fault.
    Everything else is verified as written.
    """
    text = unit_text.replace("ExecStart=/usr/bin/jobsd ", f"ExecStart={_installed_jobsd()} ", 1)
    if not _exists("user", "jobsd"):
        text = re.sub(r"(?m)^User=jobsd$", "User=root", text)
    if not _exists("group", "jobsd"):
        text = re.sub(r"(?m)^Group=jobsd$", "Group=root", text)
    copy = tmp_path / "jobsd.service"
    copy.write_text(text)
    return copy


def _verify(unit: Path) -> subprocess.CompletedProcess[str]:
    return _run(_tool("systemd-analyze"), "verify", "--man=no", str(unit))


def test_unit_verifies_cleanly(tmp_path: Path) -> None:
    unit_text = UNIT.read_text()
    assert unit_text.count("ExecStart=/usr/bin/jobsd ") == 1
    result = _verify(_verify_copy(tmp_path, unit_text))
    # verify exits 0 on unknown keys and unparsable values and only prints warnings, so any
    # output at all is a failure.
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), (
        f"systemd-analyze verify (exit {result.returncode}):\n{result.stdout}{result.stderr}"
    )


def test_verify_would_catch_a_typo(tmp_path: Path) -> None:
    """The clean result above means something: the same check reports a misspelt key."""
    broken = UNIT.read_text().replace("WatchdogSec=30", "WatchdogSec=30\nWatchdgSec=5", 1)
    result = _verify(_verify_copy(tmp_path, broken))
    assert "WatchdgSec" in result.stdout + result.stderr


def test_security_exposure_is_low() -> None:
    result = _run(_tool("systemd-analyze"), "security", "--offline=yes", "--no-pager", str(UNIT))
    output = result.stdout + result.stderr
    match = re.search(r"Overall exposure level for jobsd\.service:\s*([0-9]+(?:\.[0-9]+)?)", output)
    assert result.returncode == 0 and match, f"systemd-analyze security failed:\n{output}"
    score = float(match.group(1))
    print(f"systemd-analyze security exposure for jobsd.service: {score}")
    assert score < MAX_EXPOSURE, output


def _service_section() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=True, empty_lines_in_values=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read_string(UNIT.read_text())
    return parser["Service"]


def test_unit_contract() -> None:
    """What the daemon and docs/operations.md rely on (DESIGN 5, PITFALLS 14, 24, 26)."""
    service = _service_section()
    assert service["Type"] == "notify"
    assert service["NotifyAccess"] == "main"
    assert service["ExecStart"].split() == [
        "/usr/bin/jobsd",
        "--home", "/var/lib/jobsd",
        "--jobs-dir", "/etc/jobsd/jobs",
        "--socket", "/run/jobsd/jobsd.sock",
    ]
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["KillMode"] == "mixed"
    assert service["WatchdogSec"] == "30"
    assert (service["User"], service["Group"]) == ("jobsd", "jobsd")
    assert service["StateDirectory"] == "jobsd"
    assert service["RuntimeDirectory"] == "jobsd"
    assert service["RuntimeDirectoryMode"] == "0750"
    assert service["Environment"] == "GRPC_ENABLE_FORK_SUPPORT=0"
    assert service["UMask"] == "0077"
    assert "MemoryDenyWriteExecute" not in service  # JIT runtimes in jobs need W+X memory
    assert service["RestrictAddressFamilies"].split() == [
        "AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"
    ]


def test_sysusers_creates_the_service_user(tmp_path: Path) -> None:
    """Applied to a scratch root (never this machine's /etc): one system user and group."""
    (tmp_path / "etc").mkdir()
    with SYSUSERS.open() as config:
        result = subprocess.run(
            [_tool("systemd-sysusers"), f"--root={tmp_path}", "-"],
            stdin=config, capture_output=True, text=True, timeout=60, check=False,
        )
    # It reports what it creates on stderr; anything else (parse warnings) is a failure.
    complaints = [line for line in result.stderr.splitlines() if not line.startswith("Creating ")]
    assert result.returncode == 0 and not complaints, result.stderr
    passwd = [line.split(":") for line in (tmp_path / "etc/passwd").read_text().splitlines()]
    group = [line.split(":") for line in (tmp_path / "etc/group").read_text().splitlines()]
    (user,) = [entry for entry in passwd if entry[0] == "jobsd"]
    (gentry,) = [entry for entry in group if entry[0] == "jobsd"]
    assert int(user[2]) < 1000 and user[3] == gentry[2]  # a system uid, primary group jobsd
    assert user[5] == "/var/lib/jobsd"
    assert user[6].endswith("nologin")
