"""The committed gRPC stubs are exactly what proto/ generates (grpcio-tools is pinned in [test])."""
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_stubs_match_proto(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "proto" / "generate.py"), str(tmp_path)], check=True)
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.py*"))
    assert generated, "protoc generated nothing"
    for rel in generated:
        committed = ROOT / "shared" / rel
        assert committed.read_bytes() == (tmp_path / rel).read_bytes(), \
            f"{committed} is stale: run `python proto/generate.py` and commit the result"
