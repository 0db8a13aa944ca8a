"""Imports run one way, down the floors (docs/architecture.md), and only named edge modules import
grpc, ray or redis."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("model", "shards", "ingest", "querier", "shardmon")

# package -> the packages of ours it may import ("shardmon.shards.client" is the shards' one public door).
ALLOWED = {
    "model": set(),
    "shards": {"model"},
    "ingest": {"model", "shardmon.shards.client"},
    "querier": {"model", "shardmon.shards.client"},
    "shardmon": {"model", "shards", "ingest", "querier"},
}
EDGE = {
    "grpc": {"model/grpcstatus.py", "model/grpcauth.py", "shards/server.py", "shards/client.py", "querier/server.py",
             "querier/grpc_api.py", "shardmon/client.py"},
    "grpc_health": {"shards/server.py", "querier/server.py"},
    "grpc_reflection": {"querier/server.py"},
    "ray": {"ingest/ray_cluster.py", "ingest/coordinator.py", "ingest/coordinator_checkpoint.py", "ingest/service.py"},
    "redis": {"shards/redis_store.py"},
}


def _imports(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def _sources():
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith("model/pb/"):
                continue  # Generated code.
            yield pkg, rel, path


def test_imports_run_down_the_floors():
    bad = []
    for pkg, rel, path in _sources():
        for mod in _imports(path):
            top = mod.split(".")[0]
            if top not in PACKAGES or top == pkg:
                continue
            if not any(mod == a or mod.startswith(a + ".") for a in ALLOWED[pkg]):
                bad.append(f"{rel} imports {mod}")
    assert not bad, "\n".join(bad)


def test_only_edge_modules_import_grpc_ray_or_redis():
    bad = []
    for _, rel, path in _sources():
        for mod in _imports(path):
            top = mod.split(".")[0]
            if top in EDGE and rel not in EDGE[top]:
                bad.append(f"{rel} imports {mod}")
    assert not bad, "\n".join(bad)


def test_no_module_imports_another_modules_private_names():
    """What a module shares it names publicly: ``from x import _y`` across modules means ``_y`` is not
    private after all (and that a change to it breaks a module its author did not look at)."""
    bad = []
    for _, rel, path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                if private:
                    bad.append(f"{rel} imports {', '.join(private)} from {node.module}")
    assert not bad, "\n".join(bad)


def test_the_promql_engine_stands_apart_from_the_serving_code():
    """querier/promql/ is the engine; of the rest of querier it uses only the metrics (the guard counts
    the queries it refuses). The serving code (APIs, fan-out, lookups, server) imports it, not back,
    and only through its public surface, ``shardmon.querier.promql`` (tests may reach inside)."""
    bad = []
    for _, rel, path in _sources():
        if not rel.startswith("querier/promql/"):
            bad += [f"{rel} imports {mod}" for mod in _imports(path) if mod.startswith("shardmon.querier.promql.")]
    for path in (ROOT / "querier" / "promql").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for name in names:
                ours = name.split(".")[:2]
                if ours[0] == "querier" and ours[1:] not in (["promql"], ["metrics"]):
                    bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, "\n".join(bad)
