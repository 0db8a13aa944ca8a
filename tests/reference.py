"""Where Prometheus's reference data is: its PromQL test scripts (``../shared/promqltest`` beside the
repository, or where ``SHARDMON_PROMQLTEST_DIR`` says) and its promtool rule tests
(``../shared/promtool-rules``, or ``SHARDMON_PROMTOOL_RULES_DIR``). A test that needs them skips when they are missing on a
developer's machine, and fails when ``CI`` is set (.ci/run sets it): CI always has them, so a run
without them must not pass by skipping."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _reference_dir(env: str, name: str, what: str) -> Path:
    path = Path(os.environ.get(env) or ROOT.parent / "shared" / name)
    if not path.is_dir():
        message = f"no {what} at {path} (set {env})"
        if os.environ.get("CI"):
            pytest.fail(message + "; CI is set, so this fails instead of skipping")
        pytest.skip(message)
    return path


def promqltest_dir() -> Path:
    """The folder of the reference scripts; skips the calling test (fails it under CI) when missing."""
    return _reference_dir("SHARDMON_PROMQLTEST_DIR", "promqltest", "reference scripts")


def promtool_rules_dir() -> Path:
    """The folder of Prometheus's promtool rule tests; skips (fails under CI) when missing."""
    return _reference_dir("SHARDMON_PROMTOOL_RULES_DIR", "promtool-rules", "promtool rule tests")
