"""Where Prometheus's reference PromQL test scripts are: ``../shared/promqltest`` beside the repository, or
where ``SHARDMON_PROMQLTEST_DIR`` says. A test that needs them skips when they are missing on a
developer's machine, and fails when ``CI`` is set (.ci/run sets it): CI always has them, so a run
without them must not pass by skipping."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def promqltest_dir() -> Path:
    """The folder of the reference scripts; skips the calling test (fails it under CI) when missing."""
    path = Path(os.environ.get("SHARDMON_PROMQLTEST_DIR") or ROOT.parent / "shared" / "promqltest")
    if not path.is_dir():
        message = f"no reference scripts at {path} (set SHARDMON_PROMQLTEST_DIR)"
        if os.environ.get("CI"):
            pytest.fail(message + "; CI is set, so this fails instead of skipping")
        pytest.skip(message)
    return path
