"""``shardmon check rules`` / ``test rules`` against Debian's promtool 2.42 on the same files: same output
for rule-file errors, same verdicts on the project's rule tests (tests/rules/), and Prometheus's own
promtool test file (../shared/promtool-rules) passes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.reference import ROOT, promtool_rules_dir

RULES = ROOT / "tests" / "rules"
TEST_FILES = sorted(RULES.glob("*_test.yml"))
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None and not os.environ.get("CI"), reason="no promtool")


def shardmon(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shardmon", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    assert PROMTOOL, "promtool is required (CI is set)"
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_prometheus_own_promtool_test_file_passes():
    done = shardmon("test", "rules", str(promtool_rules_dir() / "unittest.yml"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "  SUCCESS" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "21 passed, 0 failed"


@needs_promtool
@pytest.mark.parametrize("path", TEST_FILES, ids=[p.name for p in TEST_FILES])
def test_promtool_and_shardmon_agree_on_our_rule_tests(path):
    ours, theirs = shardmon("test", "rules", path.name, cwd=RULES), promtool("test", "rules", path.name, cwd=RULES)
    must_fail = "_fails_" in path.name
    assert theirs.returncode == (1 if must_fail else 0), theirs.stdout + theirs.stderr
    assert ours.returncode == theirs.returncode, ours.stdout + ours.stderr
    if must_fail:  # The same rule error, in promtool's words.
        assert [line for line in ours.stderr.splitlines() if "err:" in line] == \
            [line for line in theirs.stderr.splitlines() if "err:" in line]


@needs_promtool
@pytest.mark.parametrize("path", [p for p in TEST_FILES if "_fails_" not in p.name], ids=lambda p: p.name)
def test_both_fail_on_a_deliberately_wrong_copy(path, tmp_path):
    for rule_file in RULES.glob("*rules.yml"):
        shutil.copy(rule_file, tmp_path / rule_file.name)
    text = path.read_text()
    assert "value: 10\n" in text
    (tmp_path / path.name).write_text(text.replace("value: 10\n", "value: 11\n", 1).replace(
        "summary: \"x on a is 10\"", "summary: \"x on a is 12\"", 1))
    ours, theirs = shardmon("test", "rules", path.name, cwd=tmp_path), promtool("test", "rules", path.name, cwd=tmp_path)
    assert theirs.returncode == 1 and ours.returncode == 1, ours.stdout + ours.stderr
    assert "exp:" in ours.stderr and "got:" in ours.stderr
    assert ours.stdout.strip().splitlines()[-1].endswith(" failed") and " 0 failed" not in ours.stdout


BAD_RULES = {
    "unknown_field.yml": "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up\n        foo: 1\n",
    "bad_limit.yml": "groups:\n  - name: g\n    limit: abc\n    rules: []\n",
    "bad_duration.yml": "groups:\n  - name: g\n    interval: 5x\n    rules: []\n",
    "semantics.yml": (
        "groups:\n  - name: g\n    rules:\n      - alert: X\n        expr: up\n        annotations:\n"
        "          \"a-b\": x\n      - record: job:x\n        expr: 1\n        for: 5m\n        annotations:\n"
        "          a: b\n      - expr: up\n      - alert: A\n        record: b\n        expr: up\n"
        "      - record: bad-name\n        expr: up\n        labels:\n          __name__: x\n"
        "  - name: g\n    rules: []\n  - rules: []\n"),
    "duplicates.yml": ("groups:\n  - name: g\n    rules:\n      - record: job:x\n        expr: 1\n        labels: {a: b}\n"
                       "      - record: job:x\n        expr: 2\n        labels: {a: b}\n"),
}


@needs_promtool
@pytest.mark.parametrize("name", sorted(BAD_RULES))
def test_check_rules_answers_as_promtool(name, tmp_path):
    (tmp_path / name).write_text(BAD_RULES[name])
    ours, theirs = shardmon("check", "rules", name, cwd=tmp_path), promtool("check", "rules", name, cwd=tmp_path)
    assert (ours.returncode, ours.stdout, ours.stderr) == (theirs.returncode, theirs.stdout, theirs.stderr)


@needs_promtool
def test_check_rules_on_good_files_answers_as_promtool():
    files = [str(p) for p in sorted(RULES.glob("*rules.yml"))] + [str(promtool_rules_dir() / "rules.yml")]
    ours, theirs = shardmon("check", "rules", *files), promtool("check", "rules", *files)
    assert (ours.returncode, ours.stdout, ours.stderr) == (theirs.returncode, theirs.stdout, theirs.stderr)
    assert ours.returncode == 0


def test_a_parse_error_names_file_position_group_and_rule(tmp_path):
    (tmp_path / "r.yml").write_text("groups:\n  - name: g\n    rules:\n      - record: x\n        expr: sum(\n")
    done = shardmon("check", "rules", "r.yml", cwd=tmp_path)
    assert done.returncode == 1
    assert 'r.yml: 5:15: group "g", rule 1, "x": could not parse expression: ' in done.stderr


@needs_promtool
def test_query_offset_is_the_one_field_accepted_beyond_promtool_2_42(tmp_path):
    """Prometheus 2.53's group ``query_offset``: promtool 2.42 refuses it as an unknown field, Shardmon takes it
    (and answers for the file as promtool answers without it); any other unknown group field is refused alike."""
    with_offset = "groups:\n  - name: g\n    query_offset: 1m\n    rules:\n      - record: job:x\n        expr: '1'\n"
    (tmp_path / "offset.yml").write_text(with_offset)
    (tmp_path / "plain.yml").write_text(with_offset.replace("    query_offset: 1m\n", ""))
    theirs = promtool("check", "rules", "offset.yml", cwd=tmp_path)
    assert theirs.returncode == 1 and "field query_offset not found" in theirs.stderr
    ours = shardmon("check", "rules", "offset.yml", cwd=tmp_path)
    theirs = promtool("check", "rules", "plain.yml", cwd=tmp_path)
    assert (ours.returncode, ours.stderr) == (theirs.returncode, theirs.stderr) == (0, "")
    assert ours.stdout == theirs.stdout.replace("plain.yml", "offset.yml")
    (tmp_path / "other.yml").write_text(with_offset.replace("query_offset", "query_delay"))
    ours, theirs = shardmon("check", "rules", "other.yml", cwd=tmp_path), promtool("check", "rules", "other.yml",
                                                                                   cwd=tmp_path)
    assert (ours.returncode, ours.stdout, ours.stderr) == (theirs.returncode, theirs.stdout, theirs.stderr)
