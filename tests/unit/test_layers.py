"""Imports run one way, down the floors (docs/architecture.md), and only named edge modules import
grpc, ray or redis."""

import ast

from tests.unit.floors import ROOT, floor_of, imports, sources

# floor -> the packages of ours it may import ("shardmon.shards.client" is the shards' one public door).
ALLOWED = {
    "shardmon.model": set(),
    "shardmon.shards": {"shardmon.model"},
    "shardmon.ingest": {"shardmon.model", "shardmon.shards.client"},
    "shardmon.querier": {"shardmon.model", "shardmon.shards.client"},
    "shardmon.rules": {"shardmon.model", "shardmon.shards.client", "shardmon.ingest", "shardmon.querier"},
    "shardmon.k8sapi": {"shardmon.model", "shardmon.shards.client", "shardmon.ingest", "shardmon.querier"},
    "shardmon": {"shardmon.model", "shardmon.shards", "shardmon.ingest", "shardmon.querier", "shardmon.rules",
                 "shardmon.k8sapi"},
}
EDGE = {
    "grpc": {"model/grpcstatus.py", "model/grpcauth.py", "shards/server.py", "shards/client.py", "querier/server.py",
             "querier/grpc_api.py", "shardmon/client.py"},
    "grpc_health": {"shards/server.py", "querier/server.py"},
    "grpc_reflection": {"querier/server.py"},
    "ray": {"ingest/ray_cluster.py", "ingest/coordinator.py", "ingest/coordinator_checkpoint.py", "ingest/service.py",
            "rules/ruler_actor.py", "rules/checkpoint.py", "rules/service.py"},
    "redis": {"shards/redis_store.py"},
}


def _upward(floor: str, mods) -> list[str]:
    """The imports of a module of ``floor`` that its floor may not make: another floor's module, not
    one of ALLOWED's."""
    bad = []
    for mod in mods:
        other = floor_of(mod)
        if other is None or other == floor:
            continue
        if not any(mod == a or mod.startswith(a + ".") for a in ALLOWED[floor]):
            bad.append(mod)
    return bad


def test_the_floor_rule_finds_an_upward_import():
    assert _upward("shardmon.model", ["shardmon.shards.engine"]) == ["shardmon.shards.engine"]
    assert _upward("shardmon.ingest", ["shardmon.shards.engine", "shardmon.cli", "shardmon"]) == \
        ["shardmon.shards.engine", "shardmon.cli", "shardmon"]
    assert _upward("shardmon.querier", ["shardmon.querier.promql", "shardmon.model.labels", "shardmon.shards.client",
                                        "numpy", "grpc"]) == []
    assert _upward("shardmon", ["shardmon.ingest.service", "shardmon.procs"]) == []


def test_imports_run_down_the_floors():
    bad = [f"{rel} imports {mod}" for floor, rel, path in sources() for mod in _upward(floor, imports(path))]
    assert not bad, "\n".join(bad)


def test_only_edge_modules_import_grpc_ray_or_redis():
    bad = []
    for _, rel, path in sources():
        for mod in imports(path):
            top = mod.split(".")[0]
            if top in EDGE and rel not in EDGE[top]:
                bad.append(f"{rel} imports {mod}")
    assert not bad, "\n".join(bad)


def test_no_module_imports_another_modules_private_names():
    """What a module shares it names publicly: ``from x import _y`` across modules means ``_y`` is not
    private after all (and that a change to it breaks a module its author did not look at)."""
    bad = []
    for _, rel, path in sources():
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
    for _, rel, path in sources():
        if not rel.startswith("querier/promql/"):
            bad += [f"{rel} imports {mod}" for mod in imports(path) if mod.startswith("shardmon.querier.promql.")]
    for path in sorted((ROOT / "querier" / "promql").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for name in names:
                ours = name.split(".")[:3]
                if ours[:2] == ["shardmon", "querier"] and ours[2:] not in (["promql"], ["metrics"]):
                    bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, "\n".join(bad)
