"""Regenerate the Python stubs in shared/jobsd_lib/rpc from proto/jobsd/v1/jobsd.proto.

Usage: python proto/generate.py [OUT_ROOT]   (default: shared/)

The include mapping `-Ijobsd_lib/rpc=proto/jobsd/v1` makes the generated imports read
`from jobsd_lib.rpc import jobsd_pb2`, so the stubs work inside the package (PITFALLS 17).
tests/test_stubs.py runs this into a temporary folder and compares with what is committed.
"""
from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent


def generate(out_root: Path) -> None:
    out_root.mkdir(parents=True, exist_ok=True)
    import grpc_tools

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-Ijobsd_lib/rpc={ROOT / 'proto' / 'jobsd' / 'v1'}",
        f"-I{well_known}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        "jobsd_lib/rpc/jobsd.proto",
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "shared")
