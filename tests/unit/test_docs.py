"""The docs stay true to the tree.

- Every package README lists every module of its package, by its path inside the package
  (`engine.py`, `promql/engine.py`), and names no module that is not there.
- The ``shardmon`` command's docstring lists every subcommand the argument parser knows.
- A file path the docs name in backticks (``shards/FORMAT.md``, ``tests/unit/test_layers.py``) exists.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ["model", "shards", "ingest", "querier", "rules", "k8sapi", "shardmon", "bench"]
# Generated code, listed as a folder: `pb/` in model/README.md.
GENERATED = {"model": ["pb/"]}
DOCS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    *(ROOT / p / "README.md" for p in PACKAGES),
    ROOT / "shards" / "FORMAT.md",
]


def modules(package: str) -> list[str]:
    """The package's modules as paths relative to it, generated code left out."""
    base = ROOT / package
    skip = GENERATED.get(package, [])
    out = []
    for path in sorted(base.rglob("*.py")):
        rel = path.relative_to(base).as_posix()
        if path.name == "__init__.py" or any(rel.startswith(s) for s in skip) or "/results/" in f"/{rel}":
            continue
        out.append(rel)
    return out


def mentions(text: str, rel: str) -> bool:
    """`rel` appears as a path of its own: not as the tail of a longer path or name."""
    return re.search(rf"(?<![\w/.-]){re.escape(rel)}(?![\w])", text) is not None


@pytest.mark.parametrize("package", PACKAGES)
def test_package_readme_lists_every_module(package):
    text = (ROOT / package / "README.md").read_text()
    missing = [m for m in modules(package) if not mentions(text, m)]
    assert not missing, f"{package}/README.md does not list: {missing}"
    for folder in GENERATED.get(package, []):
        assert mentions(text, folder), f"{package}/README.md does not name the generated {folder}"


@pytest.mark.parametrize("package", PACKAGES)
def test_package_readme_names_no_missing_module(package):
    """A bare `x.py` in a package README is a module of that package (or of the repository's root)."""
    base = ROOT / package
    text = (base / "README.md").read_text()
    gone = []
    for name in re.findall(r"`([\w./-]+\.py)\b", text):
        if not ((base / name).exists() or (ROOT / name).exists()):
            gone.append(name)
    assert not gone, f"{package}/README.md names modules that do not exist: {gone}"


def test_docs_name_only_files_that_exist():
    gone = []
    for doc in DOCS:
        for name in re.findall(r"`([\w.-]+(?:/[\w.-]+)+\.(?:py|md|yml|yaml|proto|sh|toml))`", doc.read_text()):
            candidates = [ROOT / name, doc.parent / name] + [ROOT / p / name for p in PACKAGES]
            if not any(c.exists() for c in candidates):
                gone.append(f"{doc.relative_to(ROOT)}: {name}")
    assert not gone, "docs name files that do not exist:\n" + "\n".join(gone)


def subcommands(p: argparse.ArgumentParser, prefix: str = "") -> list[str]:
    out = []
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sp in action.choices.items():
                full = f"{prefix}{name}"
                nested = subcommands(sp, full + " ")
                out.extend(nested or [full])
    return out


def test_cli_docstring_lists_every_subcommand():
    from shardmon import cli

    names = subcommands(cli.parser())
    assert len(names) >= 10
    missing = [n for n in names if not re.search(rf"^\s*shardmon {re.escape(n)}\b", cli.__doc__, re.M)]
    assert not missing, f"shardmon/cli.py's docstring does not list: {missing}"


def test_readme_starts_with_the_two_commands():
    """A new user's first two commands: run the default cluster, run the tests."""
    text = (ROOT / "README.md").read_text()
    first_block = re.search(r"```(?:sh|bash|console)?\n(.*?)```", text, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in first_block.splitlines()]
    commands = [c for c in commands if c]
    assert commands == ["make up", "make test"], commands


def test_no_merge_conflict_markers_are_committed():
    import subprocess

    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    if not files:
        pytest.skip("not a git checkout")
    marked = []
    for name in files:
        path = ROOT / name
        if path.suffix not in (".py", ".md", ".yml", ".yaml", ".toml", ".proto", ".txt", ".sh") or not path.is_file():
            continue
        text = path.read_text(errors="replace")
        if re.search(r"(?m)^(<{7} |>{7} |={7}$)", text):
            marked.append(name)
    assert not marked, f"merge conflict markers in {marked}"
