"""Loading the jobs directory into a Catalog: valid specs and the problems of invalid files.

An invalid file never stops the daemon: it becomes an entry with its problems, and every
other job goes on (DESIGN 2). Only `*.toml` files directly in the folder are jobs. Specs that are
valid alone can be invalid together (DESIGN 10): `after` naming no job, itself, and
cycles; only the jobs that name the missing job or sit on the cycle are invalid.

A spec is code run with jobsd's rights, so, as cron does with crontabs, a file or a jobs folder
that a user other than jobsd's own or root owns or can write is refused: its jobs are invalid
with the owner, mode and fix, and the problem is also a warning of `daemon status`. The folder's
parents are not checked. Files and the folder are judged by jobsd_lib.spec_file, which
`jobs validate` calls too.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from functools import cached_property

from jobsd_lib.kernel.graph import downstreams
from jobsd_lib.spec import UNSAFE_FILE, JobSpec, SpecInvalid, SpecProblem, catalog_problems
from jobsd_lib.spec_file import jobs_folder_unsafe, owner_name, private_group, read_spec_file

# owner_name and private_group: also what jobsd.folders judges the state folders with
__all__ = ["Catalog", "load_catalog", "read_spec_file", "owner_name", "private_group"]

log = logging.getLogger("jobsd.catalog")


@dataclass(frozen=True)
class Catalog:
    specs: dict[str, JobSpec] = field(default_factory=dict)
    invalid: dict[str, list[SpecProblem]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # unsafe files and folders, for GetHealth

    def ids(self) -> list[str]:
        return sorted({*self.specs, *self.invalid})

    @cached_property  # a catalog never changes once loaded (a reload makes a new one)
    def downstreams(self) -> dict[str, tuple[str, ...]]:
        """upstream job -> the valid jobs whose `after` names it, sorted."""
        return downstreams({job_id: spec.after for job_id, spec in self.specs.items()})


def load_catalog(jobs_dir: str) -> Catalog:
    catalog = Catalog()
    try:
        names = sorted(os.listdir(jobs_dir))
        folder = os.stat(jobs_dir)
    except FileNotFoundError:
        return catalog
    own_uid = os.geteuid()
    unsafe = jobs_folder_unsafe(jobs_dir, folder, own_uid)
    if unsafe:
        catalog.warnings.append(unsafe)
    for name in names:
        path = os.path.join(jobs_dir, name)
        if not name.endswith(".toml") or name.startswith(".") or not os.path.isfile(path):
            continue
        job_id = name.removesuffix(".toml")
        try:
            if unsafe:  # not even read: the folder's problem is every file's
                raise SpecInvalid([SpecProblem(path, "", unsafe, job_id)])
            spec = read_spec_file(path, own_uid)
            catalog.specs[spec.id] = spec
        except SpecInvalid as exc:
            catalog.invalid[job_id] = exc.problems
            catalog.warnings.extend(str(p) for p in exc.problems if p.message.startswith(UNSAFE_FILE))
        except Exception as exc:  # noqa: BLE001 - a bug in validation: that job is invalid, the daemon lives on
            log.exception("spec %s: internal error while validating it", path)
            catalog.invalid[job_id] = [SpecProblem(path, "", f"internal error while validating the spec ({exc!r}); "
                                                   "see the daemon's log", job_id)]
    for job_id, problems in catalog_problems(catalog.specs, set(catalog.ids())).items():
        del catalog.specs[job_id]  # the graph's problems (unknown upstreams, cycles) make it invalid too
        catalog.invalid[job_id] = problems
    return catalog
