"""Loading the jobs directory into a Catalog: valid specs and the problems of invalid files.

An invalid file never stops the daemon: it becomes an entry with its problems, and every
other job goes on (DESIGN 2). Only `*.toml` files directly in the folder are jobs.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from jobsd_lib.spec import JobSpec, SpecInvalid, SpecProblem, parse_spec

__all__ = ["Catalog", "load_catalog", "read_spec_file"]


@dataclass(frozen=True)
class Catalog:
    specs: dict[str, JobSpec] = field(default_factory=dict)
    invalid: dict[str, list[SpecProblem]] = field(default_factory=dict)

    def ids(self) -> list[str]:
        return sorted({*self.specs, *self.invalid})


def read_spec_file(path: str) -> JobSpec:
    """Parse one file; raises SpecInvalid (unreadable files included)."""
    job_id = os.path.basename(path).removesuffix(".toml")
    try:
        with open(path, "rb") as f:
            data = f.read((1 << 20) + 1)
    except OSError as exc:
        raise SpecInvalid([SpecProblem(path, "", f"cannot read the file: {exc.strerror}", job_id)]) from None
    if len(data) > 1 << 20:
        raise SpecInvalid([SpecProblem(path, "", "file is larger than 1 MiB; a spec is a small TOML file", job_id)])
    return parse_spec(job_id, data, path)


def load_catalog(jobs_dir: str) -> Catalog:
    catalog = Catalog()
    try:
        names = sorted(os.listdir(jobs_dir))
    except FileNotFoundError:
        return catalog
    for name in names:
        path = os.path.join(jobs_dir, name)
        if not name.endswith(".toml") or name.startswith(".") or not os.path.isfile(path):
            continue
        try:
            spec = read_spec_file(path)
            catalog.specs[spec.id] = spec
        except SpecInvalid as exc:
            catalog.invalid[name.removesuffix(".toml")] = exc.problems
    return catalog
