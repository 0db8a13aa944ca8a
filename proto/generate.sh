#!/usr/bin/env bash
# Regenerates model/pb/ from proto/. The generated code is committed; tests/unit/model/test_pb.py
# fails when it is stale. Needs grpcio-tools (pinned in pyproject.toml's test extra).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m grpc_tools.protoc -Iproto --python_out=. --pyi_out=. --grpc_python_out=. proto/model/pb/*.proto
