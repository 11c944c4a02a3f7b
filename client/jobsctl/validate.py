"""`jobs validate`: the daemon's own spec reading on files or folders, no daemon needed.

Each file is read by the function the daemon reads it with (jobsd_lib.spec_file.read_spec_file):
opened without blocking and checked by fstat before any read, so a FIFO is "not a regular file"
at once and a file over 1 MiB is refused, with the daemon's messages. Ownership and mode are
judged as if the daemon ran as the user running this command: run it as jobsd's user
(`sudo -u jobsd ...`, or as root for a root daemon) to see exactly what the daemon will refuse.
A folder given is judged as the daemon judges its jobs folder (jobs_folder_unsafe); a file given
alone is judged by itself (a draft in /tmp is not refused for its folder's mode).
The job graph (DESIGN 10: `after` naming no job or itself, cycles) is judged as the
daemon judges it, over the folder: every *.toml file in it, or, for a file given alone, the files
beside it.
"""
from __future__ import annotations

import os

from jobsd_lib.spec import JobSpec, SpecInvalid, SpecProblem, catalog_problems
from jobsd_lib.spec_file import jobs_folder_unsafe, read_spec_file

__all__ = ["validate_paths"]


def _files(path: str) -> list[str]:
    if os.path.isdir(path):
        return [os.path.join(path, n) for n in sorted(os.listdir(path)) if n.endswith(".toml") and not n.startswith(".")]
    return [path]


def validate_paths(paths: list[str]) -> list[dict]:
    """One result per file: {"file", "job", "problems": [{"field", "message"}]} (docs/cli.md)."""
    results = []
    for path in paths:
        files = _files(path)
        if not files:
            results.append({"file": path, "job": None, "problems": [
                {"field": None, "message": "no *.toml spec files in this folder"}]})
        unsafe = _folder_problem(path) if os.path.isdir(path) else None
        checked = {file: _check(file, unsafe) for file in files}
        graph = _graph_problems(path, {file: spec for file, (_, spec) in checked.items() if spec})
        for file, (result, _) in checked.items():
            result["problems"].extend({"field": p.field, "message": p.message} for p in graph.get(file, ()))
            results.append(result)
    return results


def _graph_problems(path: str, specs: dict[str, JobSpec]) -> dict[str, list[SpecProblem]]:
    """The graph's problems of `specs` (file -> spec), judged over the folder they are in."""
    folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    siblings = [os.path.join(folder, n) for n in sorted(os.listdir(folder))
                if n.endswith(".toml") and not n.startswith(".")]
    everything: dict[str, JobSpec] = {}
    for file in siblings:
        spec = specs.get(file) or _quiet_read(file)
        if spec is not None:
            everything[spec.id] = spec
    known = {os.path.basename(f).removesuffix(".toml") for f in siblings}
    found = catalog_problems(everything, known)
    return {spec.file: found[spec.id] for spec in specs.values() if spec.id in found}


def _quiet_read(file: str) -> JobSpec | None:
    try:
        return read_spec_file(file)
    except (SpecInvalid, OSError):
        return None


def _folder_problem(folder: str) -> str | None:
    folder = os.path.abspath(folder)
    return jobs_folder_unsafe(folder, os.stat(folder))


def _check(file: str, unsafe: str | None) -> tuple[dict, JobSpec | None]:
    job_id = os.path.basename(file).removesuffix(".toml")
    problems: list[SpecProblem] = []
    spec = None
    if not file.endswith(".toml"):
        problems.append(SpecProblem(file, "", "a spec file is named <job-id>.toml", job_id))
    elif unsafe:  # as in the daemon: not even read
        problems.append(SpecProblem(file, "", unsafe, job_id))
    else:
        try:
            spec = read_spec_file(file)
        except SpecInvalid as exc:
            problems.extend(exc.problems)
    return {"file": file, "job": job_id, "problems": [{"field": p.field or None, "message": p.message}
                                                       for p in problems]}, spec
