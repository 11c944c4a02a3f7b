"""Spec parsing (jobsd_lib.spec): every field, and bad input with file, field path and reason.

Durations and sizes alone: test_units.py; reading a file: test_spec_file.py."""
import stat

import pytest

from jobsd_lib.spec import MAX_SPEC_BYTES, TOO_LARGE, SpecInvalid, jobs_folder_problem, parse_spec, spec_file_problem

REG, DIR = stat.S_IFREG, stat.S_IFDIR
FULL = b'''
description = "Nightly"
command = ["/usr/local/bin/backup", "--full"]
cwd = "/var/backups"
env = { PGHOST = "localhost" }
timeout = "30m"
kill_grace = "10s"
enabled = true
[schedule]
cron = "0 3 * * *"
timezone = "Europe/Berlin"
misfire_grace = "5m"
coalesce = true
catch_up = false
[retry]
attempts = 3
backoff = "30s"
factor = 2.0
max = "10m"
[limits]
memory = "512M"
cpu_time = "10m"
open_files = 1024
output = "256M"
'''


def problems(text: bytes, job_id: str = "job") -> list[tuple[str, str]]:
    with pytest.raises(SpecInvalid) as err:
        parse_spec(job_id, text, f"/jobs/{job_id}.toml")
    assert all(p.file == f"/jobs/{job_id}.toml" for p in err.value.problems)
    return [(p.field, p.message) for p in err.value.problems]


def test_full_spec_parses_every_field():
    spec = parse_spec("backup", FULL, "/jobs/backup.toml")
    assert spec.argv == ["/usr/local/bin/backup", "--full"] and spec.timeout == 1800 and spec.kill_grace == 10
    assert spec.schedule.misfire_grace == 300 and spec.schedule.timezone == "Europe/Berlin"
    assert (spec.retry.attempts, spec.retry.backoff, spec.retry.max) == (3, 30, 600)
    assert (spec.limits.memory, spec.limits.cpu_time, spec.limits.open_files, spec.limits.output) == (512 << 20, 600, 1024, 256 << 20)
    assert "PGHOST" not in repr(spec)  # the environment may hold secrets


def test_string_command_is_split_without_a_shell_and_shell_jobs_keep_it_whole():
    assert parse_spec("a", b'command = "echo \'a b\' c"', "f").argv == ["echo", "a b", "c"]
    assert parse_spec("a", b'command = "echo $HOME | wc"\nshell = true', "f").argv == ["/bin/sh", "-c", "echo $HOME | wc"]


@pytest.mark.parametrize("text, field, words", [
    (b'command = ["x"]\ncolour = "red"', "colour", "unknown key"),
    (b'command = ["x"]\n[retry]\ncount = 2', "retry.count", "unknown key"),
    (b'command = []', "command", "empty"),
    (b'command = ""', "command", "empty"),
    (b'command = 5', "command", "must be a string or an array of strings (got 5)"),
    (b'command = ["x"]\nschedule = "0 3 * * *"', "schedule", "must be a table (got '0 3 * * *')"),
    (b'command = ["x"]\nenv = ["A"]', "env", "must be a table"),
    (b'description = "x"', "command", "required"),
    (b'command = ["x"]\ntimeout = "soon"', "timeout", "not a duration"),
    (b'command = ["x"]\ntimeout = -1', "timeout", ">= 0"),
    (b'command = ["x"]\nenabled = "yes"', "enabled", "must be true or false (got 'yes')"),
    (b'command = ["x"]\n[retry]\nattempts = 0', "retry.attempts", "must be at least 1 (got 0)"),
    (b'command = ["x"]\n[retry]\nattempts = 101', "retry.attempts", "must be at most 100 (got 101)"),
    (b'command = ["x"]\n[retry]\nbackoff = "-5s"', "retry.backoff", "not a duration"),
    (b'command = ["x"]\n[retry]\nfactor = 0.5', "retry.factor", "must be at least 1.0 (got 0.5)"),
    (b'command = ["x"]\n[limits]\nmemory = "lots"', "limits.memory", "not a size"),
    (b'command = ["x"]\n[schedule]\ncron = "61 * * * *"\ntimezone = "UTC"', "schedule.cron", "61"),
    (b'command = ["x"]\n[schedule]\ncron = "* * *"\ntimezone = "UTC"', "schedule.cron", ""),
    (b'command = ["x"]\n[schedule]\ncron = "0 3 * * *"\ntimezone = "Mars/Olympus"', "schedule.timezone", "Mars/Olympus"),
    (b'command = ["x"]\n[schedule]\ncron = "0 3 * * *"', "schedule.timezone", "required"),
    (b'command = ["x"]\nenv = { "A-B" = "1" }', "env", "not a valid environment variable name"),
    (b'command = ["x"]\nenv = { JOBSD_RUN = "1" }', "env", "set by jobsd"),
    (b'command = ["x"]\nid = "other"', "id", "unknown key"),
    (b'command = ["x"]\n[gates]\napproval = "yes"', "gates.approval", "must be true or false (got 'yes')"),
    (b'command = ["x"]\n[gates]\napprovers = ["root"]', "gates", "add approval = true"),
    (b'command = ["x"]\n[gates]\napproval = true\napprovers = ["no-such-user-here"]', "gates.approvers",
     "no user 'no-such-user-here' on this host (approvers[0])"),
    (b'command = ["x"]\n[gates]\napproval = true\napprovers = ["@no-such-group-here"]', "gates.approvers",
     "no group 'no-such-group-here'"),
    (b'command = ["x"]\n[gates]\napproval = true\napprovers = ["root", "root"]', "gates.approvers", "listed twice"),
    (b'command = ["x"]\n[gates]\napproval = true\napprovers = ["a b"]', "gates.approvers", "neither a user name nor @group"),
    (b'command = ["x"]\n[gates]\napproval = true\napprovers = "root"', "gates.approvers", "must be an array (got 'root')"),
    (b'command = ["x"]\n[gates]\napproval = true\nwait = "-1h"', "gates.wait", "not a duration"),
])
def test_bad_fields_name_field_and_reason(text, field, words):
    found = problems(text)
    assert any(f == field and words in m for f, m in found), found
    assert not [m for _, m in found if "Input should" in m or "instance of" in m or m.count("(got ") > 1], found


@pytest.mark.parametrize("text, words", [
    (b'command = [', "not valid TOML"),
    (b'\xff\xfecommand = ["x"]', "not UTF-8"),
])
def test_bad_files(text, words):
    assert any(words in m for _, m in problems(text))


@pytest.mark.parametrize("job_id", ["../x", "A", "a" * 70, "-x", "", "x.y", "a b"])
def test_bad_job_ids(job_id):
    assert any("not a valid job id" in m for _, m in problems(b'command = ["x"]', job_id))



def test_spec_files_must_be_regular_and_small():
    assert spec_file_problem("/j/x.toml", stat.S_IFIFO | 0o644, 0, 0, 0).startswith("not a regular file (a FIFO)")
    assert spec_file_problem("/j/x.toml", REG | 0o644, MAX_SPEC_BYTES + 1, 0, 0) == TOO_LARGE
    assert spec_file_problem("/j/x.toml", REG | 0o644, MAX_SPEC_BYTES, 0, 0) is None
    assert spec_file_problem("/j/x.toml", REG | 0o666, 10, 0, 0).startswith("unsafe file, writable by other users")
    assert jobs_folder_problem("/j", 0, DIR | 0o775, 0).startswith("unsafe jobs folder /j, writable by its group")


def test_approval_keys_and_the_default_approval_wait():
    from jobsd_lib.spec import DEFAULT_APPROVAL_WAIT
    spec = parse_spec("deploy", b'command = ["x"]\n[gates]\napproval = true\napprovers = ["root", "@root"]\n', "f")
    assert spec.gates.approval and spec.gates.approvers == ("root", "@root")
    assert spec.gates.approval_wait == DEFAULT_APPROVAL_WAIT == 86400 and spec.gates.requires_wait == 0
    timed = parse_spec("deploy", b'command = ["x"]\n[gates]\napproval = true\nwait = "2h"\n', "f")
    assert timed.gates.approval_wait == timed.gates.requires_wait == 7200
