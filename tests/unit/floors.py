"""The floors as the source-scanning tests see them: the repository's folders model/, shards/, ingest/,
querier/, rules/, k8sapi/ and shardmon/, the package each is imported as (shardmon.model, ..., shardmon itself), and the
absolute imports of a source file (test_layers, test_import_cycles, test_namespace)."""

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: folder -> the package it is imported as (pyproject.toml's package-dir; shardmon/__init__.py from a checkout).
FLOORS = {"model": "shardmon.model", "shards": "shardmon.shards", "ingest": "shardmon.ingest",
          "querier": "shardmon.querier", "rules": "shardmon.rules",
          "k8sapi": "shardmon.k8sapi", "shardmon": "shardmon"}

#: Generated code (proto/generate.sh), left out of the scans.
GENERATED = "model/pb/"


def module_name(path: Path) -> str:
    """``<root>/model/config.py`` -> ``shardmon.model.config``; a package is its ``__init__``'s folder."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([FLOORS[parts[0]], *parts[1:]]) if parts[0] != "shardmon" else ".".join(parts)


def floor_of(module: str) -> str | None:
    """The floor package a dotted module name belongs to (``shardmon.cli`` -> ``shardmon``,
    ``shardmon.shards.client`` -> ``shardmon.shards``); None for anything not ours."""
    found = [p for p in FLOORS.values() if module == p or module.startswith(p + ".")]
    return max(found, key=len) if found else None


def sources() -> Iterator[tuple[str, str, Path]]:
    """(floor package, path relative to the root, path) of every hand-written module of the floors."""
    for folder, package in FLOORS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if not rel.startswith(GENERATED):
                yield package, rel, path


def imports(path: Path) -> Iterator[str]:
    """The absolute imports of a source file, wherever they are (also inside a function or under
    ``TYPE_CHECKING``): ``import a.b`` gives ``a.b``, ``from a import b`` gives ``a``."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
