"""DESIGN 1: client -> shared, daemon -> shared, shared -> nothing of ours and no I/O modules."""
import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "shared/jobsd_lib": {"jobsd", "jobsctl", "subprocess", "socket", "sqlalchemy", "apscheduler", "threading",
                         "asyncio", "grpc_status"},
    "client/jobsctl": {"jobsd", "sqlalchemy", "apscheduler"},
    "daemon/jobsd": {"jobsctl"},
}


def imports(path: pathlib.Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("root", sorted(FORBIDDEN))
def test_import_direction(root):
    bad = {}
    for path in (ROOT / root).rglob("*.py"):
        if path.name.endswith("_pb2.py") or path.name.endswith("_pb2_grpc.py"):
            continue  # generated stubs import grpc/protobuf only
        hits = imports(path) & FORBIDDEN[root]
        if hits:
            bad[str(path.relative_to(ROOT))] = sorted(hits)
    assert not bad, f"imports against DESIGN 1: {bad}"


def test_each_source_root_holds_only_its_package():
    for root, package in (("shared", "jobsd_lib"), ("daemon", "jobsd"), ("client", "jobsctl")):
        entries = {p.name for p in (ROOT / root).iterdir() if p.name != "__pycache__"}
        assert entries == {package}, f"{root}/ holds {entries}"
