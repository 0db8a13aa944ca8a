#!/usr/bin/env bash
# Regenerates model/pb/ from proto/. The generated code is committed; tests/unit/model/test_pb.py
# fails when it is stale. Needs grpcio-tools (pinned in pyproject.toml's test extra).
#
# The sources are laid out as proto/shardmon/model/pb/*.proto, the import path of the package they are
# generated for (shardmon.model.pb, installed from the folder model/pb/), so the generated code imports
# `from shardmon.model.pb import ...`. protoc writes shardmon/model/pb/ into a scratch folder; its files
# are moved to model/pb/. The proto `package` statements (shardmon.v1, prometheus) are the wire names.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
python -m grpc_tools.protoc -Iproto --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" \
    proto/shardmon/model/pb/*.proto
rm -f model/pb/*_pb2*.py model/pb/*_pb2*.pyi
mv "$out"/shardmon/model/pb/* model/pb/
