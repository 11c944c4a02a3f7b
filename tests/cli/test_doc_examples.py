"""Every job a document's example names is shipped (jobs/ for the demo, docs/examples/jobs/ for the
rest), so a reader can reproduce each example; the examples validate, and the graph example prints
what docs/cli.md shows, on a real daemon."""
from __future__ import annotations

import glob
import os
import re
import shutil

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(ROOT, "docs", "examples", "jobs")
# `jobsctl jobs run hello`, `jobsctl runs retry backup/7`: the commands that name a job first
NAMED = re.compile(r"jobsctl (?:jobs (?:run|show|tail|history|next|pause|resume|disable|enable|graph)"
                   r"|runs (?:show|cancel|retry|approve|reject)) ([a-z][a-z0-9_-]*)")

pytestmark = pytest.mark.timeout(60)


def _shipped() -> set[str]:
    files = glob.glob(os.path.join(ROOT, "jobs", "*.toml")) + glob.glob(os.path.join(EXAMPLES, "*.toml"))
    return {os.path.basename(f).removesuffix(".toml") for f in files}


def test_every_job_a_document_names_is_shipped():
    named = {}
    for doc in [os.path.join(ROOT, "README.md"), *glob.glob(os.path.join(ROOT, "docs", "*.md"))]:
        for job in NAMED.findall(open(doc, encoding="utf-8").read()):
            named.setdefault(job, os.path.relpath(doc, ROOT))
    missing = {job: doc for job, doc in named.items() if job not in _shipped()}
    assert named and not missing, f"examples name jobs nobody can load: {missing}"


def test_the_example_jobs_validate_and_the_graph_is_the_documented_one(daemon):
    os.makedirs(daemon.jobs_dir, exist_ok=True)
    for path in glob.glob(os.path.join(EXAMPLES, "*.toml")):
        shutil.copy(path, daemon.jobs_dir)
    valid = daemon.ctl("jobs", "validate", daemon.jobs_dir)
    assert valid.returncode == 0, valid.stdout
    daemon.start()
    graph = daemon.ctl("jobs", "graph", "report")
    documented = open(os.path.join(ROOT, "docs", "cli.md"), encoding="utf-8").read()
    block = documented.split("$ jobsctl jobs graph report\n", 1)[1].split("$ ", 1)[0]
    assert graph.returncode == 0 and graph.stdout.decode() == block
    enabled = daemon.ctl("jobs", "enable", "off")
    assert enabled.returncode == 0 and enabled.stdout.decode() in documented
