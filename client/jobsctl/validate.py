"""`jobs validate`: the daemon's own spec parser on files or folders, no daemon needed."""
from __future__ import annotations

import os

from jobsd_lib.spec import SpecInvalid, SpecProblem, parse_spec

__all__ = ["validate_paths"]


def _files(path: str) -> list[str]:
    if os.path.isdir(path):
        return [os.path.join(path, n) for n in sorted(os.listdir(path)) if n.endswith(".toml") and not n.startswith(".")]
    return [path]


def validate_paths(paths: list[str]) -> list[dict]:
    results = []
    for path in paths:
        files = _files(path)
        if not files:
            results.append({"file": path, "job": None, "problems": [
                {"field": None, "message": "no *.toml spec files in this folder"}]})
        for file in files:
            results.append(_check(file))
    return results


def _check(file: str) -> dict:
    job_id = os.path.basename(file).removesuffix(".toml")
    problems: list[SpecProblem] = []
    if not file.endswith(".toml"):
        problems.append(SpecProblem(file, "", "a spec file is named <job-id>.toml", job_id))
    else:
        try:
            with open(file, "rb") as f:
                parse_spec(job_id, f.read(), file)
        except OSError as exc:
            problems.append(SpecProblem(file, "", f"cannot read the file: {exc.strerror}", job_id))
        except SpecInvalid as exc:
            problems.extend(exc.problems)
    return {"file": file, "job": job_id, "problems": [{"field": p.field or None, "message": p.message}
                                                       for p in problems]}
