"""``shardmon check rules`` and ``shardmon test rules``: promtool's rule commands, same output and exit codes.

``check rules FILE...`` prints ``Checking FILE`` and ``  SUCCESS: N rules found`` (stdout), or ``  FAILED:`` and
rulefmt's errors (stderr); exit 1 when a file has errors. As promtool, the ``duplicate-rules`` lint is on by
default (``--lint=none`` turns it off): duplicates print as FAILED but exit 0, or 3 with ``--lint-fatal``.
``test rules FILE...`` runs promtool's unit-test files (:mod:`shardmon.querier.rules.unittest`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from shardmon.model.errors import RuleFileError
from shardmon.model.rule_config import RuleFile, load_rule_file

LINT_ERROR_EXIT = 3


def duplicate_rules(rule_file: RuleFile) -> list[tuple[str, dict[str, str]]]:
    """promtool's duplicate-rules lint: (name, labels) pairs that more than one rule of the file has, sorted."""
    keys = sorted((r.name, tuple(sorted(r.labels.items()))) for g in rule_file.groups for r in g.rules)
    out: list[tuple[str, tuple]] = []
    for prev, cur in zip(keys, keys[1:]):
        if prev == cur and (not out or out[-1] != cur):
            out.append(cur)
    return [(name, dict(labels)) for name, labels in out]


def check_rule_files(files: list[str], lint: str = "duplicate-rules", lint_fatal: bool = False) -> int:
    """What ``promtool check rules`` does with ``files``; returns the exit code."""
    failed = has_errors = False
    for name in files:
        print(f"Checking {name}")
        errors: list[str] = []
        lint_errors: list[str] = []
        try:
            if not Path(name).exists():
                raise RuleFileError([f"{name}: open {name}: no such file or directory"])
            rule_file = load_rule_file(name)
        except RuleFileError as exc:
            errors = exc.errors
        else:
            dups = duplicate_rules(rule_file) if lint in ("all", "duplicate-rules") else []
            if dups:
                text = f"lint error {len(dups)} duplicate rule(s) found.\n"
                for metric, labels in dups:
                    text += f"Metric: {metric}\nLabel(s):\n" + "".join(f"\t{k}: {v}\n" for k, v in labels.items())
                lint_errors = [text + "Might cause inconsistency while recording expressions"]
        if errors or lint_errors:
            print("  FAILED:", file=sys.stderr)
            for line in errors + lint_errors:
                print(line, file=sys.stderr)
            failed = True
            has_errors = has_errors or bool(errors)
        else:
            print(f"  SUCCESS: {rule_file.rule_count} rules found")
        print()
        sys.stdout.flush()
    if failed and has_errors:
        return 1
    if failed and lint_fatal:
        return LINT_ERROR_EXIT
    return 0


def cmd_check_rules(args, config=None) -> int:
    return check_rule_files(args.files, args.lint, args.lint_fatal)


def cmd_test_rules(args, config=None) -> int:
    from shardmon.querier.rules.unittest import run_test_files

    return run_test_files(args.files)
