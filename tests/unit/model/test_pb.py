"""The generated protobuf code in model/pb/ must be what proto/ generates (run proto/generate.sh)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def test_generated_code_is_up_to_date(tmp_path):
    pytest.importorskip("grpc_tools")
    protos = sorted((ROOT / "proto" / "model" / "pb").glob("*.proto"))
    assert protos
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{ROOT / 'proto'}", f"--python_out={tmp_path}",
         f"--pyi_out={tmp_path}", f"--grpc_python_out={tmp_path}", *map(str, protos)],
        check=True,
    )
    generated = sorted(p.relative_to(tmp_path) for p in (tmp_path / "model" / "pb").glob("*.py*"))
    committed = sorted(p.relative_to(ROOT) for p in (ROOT / "model" / "pb").glob("*_pb2*.py*"))
    assert [str(p) for p in generated] == [str(p) for p in committed], "run proto/generate.sh"
    stale = [str(p) for p in generated if (tmp_path / p).read_bytes() != (ROOT / p).read_bytes()]
    assert not stale, f"stale generated code, run proto/generate.sh: {stale}"
