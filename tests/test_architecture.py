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


def test_only_the_wire_layer_imports_the_generated_code():
    """Daemon records become protobuf messages in api/ only (server.py registers the servicers): the
    handlers, journal and store never see the wire format."""
    allowed = {"daemon/jobsd/server.py"}
    bad = []
    for path in (ROOT / "daemon/jobsd").rglob("*.py"):
        name = str(path.relative_to(ROOT))
        if name.startswith("daemon/jobsd/api/") or name in allowed:
            continue
        if "jobsd_pb2" in path.read_text():
            bad.append(name)
    assert not bad, f"import the generated code only in daemon/jobsd/api/: {bad}"


KERNEL_FORBIDDEN = {"time", "os", "random", "secrets"}
CLOCK_READS = {"now", "utcnow", "today", "time", "time_ns", "monotonic", "perf_counter"}


def test_the_kernel_reads_no_clock_and_touches_no_os():
    """DESIGN 1 and 9: kernel decisions take `now` as an argument; randomness and the OS are the daemon's."""
    bad = {}
    for path in (ROOT / "shared/jobsd_lib/kernel").rglob("*.py"):
        tree = ast.parse(path.read_text())
        hits = sorted(imports(path) & KERNEL_FORBIDDEN)
        hits += sorted(f"{node.value.id}.{node.attr}()" for node in ast.walk(tree)
                       if isinstance(node, ast.Attribute) and node.attr in CLOCK_READS
                       and isinstance(node.value, ast.Name) and node.value.id in {"datetime", "date", "time"})
        if hits:
            bad[str(path.relative_to(ROOT))] = hits
    assert not bad, f"the kernel must stay pure: {bad}"


MAX_MODULE, MAX_CLASS, MAX_FUNCTION = 400, 300, 60


def _sources() -> list[pathlib.Path]:
    return [p for root in ("shared/jobsd_lib", "daemon/jobsd", "client/jobsctl") for p in (ROOT / root).rglob("*.py")
            if not p.name.endswith(("_pb2.py", "_pb2_grpc.py"))]


def test_modules_classes_and_functions_stay_small():
    """Issue 14: modules under 400 lines, classes under 300, no function over 60."""
    too_big = []
    for path in _sources():
        text = path.read_text()
        name = str(path.relative_to(ROOT))
        if text.count("\n") > MAX_MODULE:
            too_big.append(f"{name}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            size = (node.end_lineno or node.lineno) - node.lineno + 1 if hasattr(node, "end_lineno") else 0
            if isinstance(node, ast.ClassDef) and size > MAX_CLASS:
                too_big.append(f"{name}: class {node.name}: {size} lines")
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and size > MAX_FUNCTION:
                too_big.append(f"{name}: {node.name}(): {size} lines")
    assert not too_big, "\n".join(too_big)
