"""The floors install under one package: model/, shards/, ingest/ and querier/ are imported as
shardmon.model, shardmon.shards, shardmon.ingest and shardmon.querier (pyproject.toml's package-dir, and
shardmon/__init__.py from a checkout), never as top-level packages that collide with anything else
called ``model``."""

import ast
import importlib
import os
import re
import subprocess
import sys
import tomllib

import pytest

from tests.unit.floors import FLOORS, GENERATED, ROOT, imports, module_name

BARE = tuple(folder for folder in FLOORS if folder != "shardmon")

#: This file, whose examples name modules bare on purpose.
SELF = "tests/unit/test_namespace.py"

#: Where Shardmon's Python lives: the floors and everything that imports them.
PYTHON_FOLDERS = (*FLOORS, "bench", "tests", "scripts", "dashboards", "proto")

#: Other files that may name a module (``python -m ...``, a module path in a command line).
OTHER_FILES = ("Makefile", "Dockerfile", "compose.yaml", "proto/generate.sh", "scripts/setup.sh")


def _python_files():
    for folder in PYTHON_FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if not rel.startswith(GENERATED) and rel != SELF:
                yield rel, path


def _modules() -> set[str]:
    return {module_name(p) for folder in BARE for p in (ROOT / folder).rglob("*.py")}


def _bare(name: str, modules: set[str]) -> bool:
    """Whether a dotted name names one of our modules (or something in one) without ``shardmon.``:
    ``model.config``, ``querier.promql.value.X``; not a config field path such as ``ingest.max_scrapers``."""
    parts = name.split(".")
    return parts[0] in BARE and (len(parts) == 1 or f"shardmon.{parts[0]}.{parts[1]}" in modules)


def test_the_bare_name_rule_tells_modules_from_config_fields():
    modules = _modules()
    assert _bare("model", modules) and _bare("model.config", modules) and _bare("querier.promql.value.X", modules)
    assert not _bare("ingest.max_scrapers", modules) and not _bare("shards.nodes", modules)
    assert not _bare("shardmon.model.config", modules) and not _bare("numpy", modules)


def test_every_module_is_imported_as_shardmon_star():
    """Every import of a floor, and every string that names one of its modules (a ``monkeypatch.setattr``
    target, ``importlib.import_module``'s argument, a ``python -m`` command line), says ``shardmon.``."""
    modules = _modules()
    # From a checkout, shardmon.__path__ holds the root, where bench/ and tests/ would import as
    # shardmon.bench and shardmon.tests: a name after "shardmon." must be a floor or a module of shardmon/.
    ours = {*BARE, *(p.stem for p in (ROOT / "shardmon").glob("*.py")), "__main__"}
    bad = []
    for rel, path in _python_files():
        bad += [f"{rel}: import {mod}" for mod in imports(path) if _bare(mod, modules)]
        bad += [f"{rel}: import {mod}" for mod in imports(path)
                if mod.startswith("shardmon.") and mod.split(".")[1] not in ours]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                for name in re.findall(r"(?:^|-m\s+)([a-z_]+(?:\.\w+)+)", node.value):
                    if _bare(name, modules):
                        bad.append(f"{rel}:{node.lineno}: {node.value[:80]!r}")
    for rel in OTHER_FILES:
        for name in re.findall(r"-m\s+([a-z_]+(?:\.\w+)*)", (ROOT / rel).read_text()):
            if _bare(name, modules):
                bad.append(f"{rel}: python -m {name}")
    assert not bad, "bare module names (import them as shardmon.model, ...):\n" + "\n".join(bad)


def test_pyproject_installs_every_package_under_shardmon():
    """The wheel's package list is explicit (package-dir maps the folders): every folder of the floors
    with an ``__init__.py`` is in it, as shardmon.*, and nothing else is."""
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    expected = {module_name(p) for folder in FLOORS for p in (ROOT / folder).rglob("__init__.py")}
    assert sorted(tool["packages"]) == sorted(expected)
    assert tool["package-dir"] == {package: folder for folder, package in FLOORS.items() if folder != "shardmon"}


def test_a_bare_floor_does_not_import_in_the_tests():
    """pytest puts the repository root on ``sys.path``; tests/conftest.py keeps model/ & co from
    importing from there as top-level packages."""
    for name in BARE:
        with pytest.raises(ModuleNotFoundError, match="shardmon"):
            importlib.import_module(name)
    assert importlib.import_module("shardmon.model").__file__ == str(ROOT / "model" / "__init__.py")


def test_the_installed_packages_are_shardmon_only(tmp_path):
    """Outside the checkout (no folder of it on ``sys.path``), the project's Python imports shardmon.model
    & co from this checkout, and nothing called model, shards, ingest or querier."""
    script = ("import shardmon.model.config, shardmon.querier.promql, shardmon.ingest.discovery, shardmon.shards.client\n"
              "import shardmon.model.pb.shard_pb2_grpc\n"
              "print(shardmon.model.config.__file__)\n"
              f"for name in {BARE!r}:\n"
              "    try:\n"
              "        __import__(name)\n"
              "    except ModuleNotFoundError:\n"
              "        continue\n"
              "    print('importable:', name)\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == [str(ROOT / "model" / "config.py"), ""], out.stdout
