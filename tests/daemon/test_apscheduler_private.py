"""APScheduler's private API is used in one module (jobsd.apscheduler_private), checked against one version."""
from __future__ import annotations

import ast
import pathlib

import apscheduler

from jobsd import apscheduler_private

DAEMON = pathlib.Path(__file__).resolve().parents[2] / "daemon" / "jobsd"
# What apscheduler_private touches (its docstring says why), and APScheduler modules that hold only
# undocumented helpers or base classes whose use means overriding private methods. (`_scheduler` is left
# out: CronScheduler names its own BackgroundScheduler so.)
PRIVATE_NAMES = {"_jobstores_lock", "_do_submit_job", "_run_job_success", "_reconstitute_job", "_modify",
                 "_increment_field_value", "_logger", "_jobstore_alias", "_get_jobs",
                 "_process_jobs", "_create_lock", "_lookup_job", "_real_add_job", "_dispatch_event"}
PRIVATE_MODULES = {"apscheduler.util", "apscheduler.executors.base", "apscheduler.jobstores.sqlalchemy",
                   "apscheduler.job"}
PUBLIC_TYPE_ONLY = {("scheduler.py", "apscheduler.job")}  # Job as an annotation


def test_the_apscheduler_installed_is_the_one_checked() -> None:
    assert apscheduler.__version__ == apscheduler_private.CHECKED_AGAINST, (
        f"APScheduler {apscheduler.__version__} is installed; jobsd.apscheduler_private was checked against "
        f"{apscheduler_private.CHECKED_AGAINST}: re-read each private use it lists against the new source, "
        "run tests/daemon/test_job_store.py and test_triggers.py, then update CHECKED_AGAINST")


def _private_uses(path: pathlib.Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr in PRIVATE_NAMES:
            found.add(node.attr)
        elif isinstance(node, ast.FunctionDef) and node.name in PRIVATE_NAMES:
            found.add(node.name)
        elif isinstance(node, ast.ImportFrom) and node.module in PRIVATE_MODULES \
                and (path.name, node.module) not in PUBLIC_TYPE_ONLY:
            found.add(node.module)
    return found


def test_no_other_daemon_module_uses_apscheduler_private_api() -> None:
    uses = {str(p.relative_to(DAEMON)): _private_uses(p) for p in DAEMON.rglob("*.py")
            if p.name != "apscheduler_private.py"}
    assert {name: found for name, found in uses.items() if found} == {}
    assert _private_uses(DAEMON / "apscheduler_private.py") >= {"_jobstores_lock", "_do_submit_job",
                                                                 "_increment_field_value", "_modify"}
