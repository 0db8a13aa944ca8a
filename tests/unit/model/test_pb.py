"""The generated protobuf code in model/pb/ must be what proto/ generates (run proto/generate.sh).

The sources are proto/shardmon/model/pb/*.proto, so protoc writes shardmon/model/pb/ (the package they are
imported as); generate.sh moves those files to model/pb/, the folder installed as shardmon.model.pb."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def test_generated_code_is_up_to_date(tmp_path):
    pytest.importorskip("grpc_tools")
    protos = sorted((ROOT / "proto" / "shardmon" / "model" / "pb").glob("*.proto"))
    assert protos
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{ROOT / 'proto'}", f"--python_out={tmp_path}",
         f"--pyi_out={tmp_path}", f"--grpc_python_out={tmp_path}", *map(str, protos)],
        check=True,
    )
    out, committed = tmp_path / "shardmon" / "model" / "pb", ROOT / "model" / "pb"
    generated = sorted(p.name for p in out.glob("*.py*"))
    assert generated == sorted(p.name for p in committed.glob("*_pb2*.py*")), "run proto/generate.sh"
    stale = [name for name in generated if (out / name).read_bytes() != (committed / name).read_bytes()]
    assert not stale, f"stale generated code, run proto/generate.sh: {stale}"
