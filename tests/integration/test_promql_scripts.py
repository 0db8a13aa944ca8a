"""Prometheus's own PromQL test scripts over three real shards (data loaded through the shards'
Write, queries through the fan-out), and the project's own scripts in tests/promql/."""

from __future__ import annotations

import pytest

from shardmon.localshards import LocalShards
from shardmon.querier.promqltest import ScriptReport, memory_storage, run_file, sharded_storage
from tests.reference import ROOT, promqltest_dir

OWN = ROOT / "tests" / "promql"


@pytest.fixture(scope="module")
def three_shards():
    with LocalShards(3) as shards:
        clients = shards.clients()
        yield sharded_storage(clients)
        for c in clients:
            c.close()


def _run(paths, make) -> ScriptReport:
    total = ScriptReport()
    for path in paths:
        report = run_file(path, make)
        print(f"{path.name}: {report.summary()}")
        total.add(report)
    return total


def test_prometheus_scripts_pass_over_three_shards(three_shards):
    total = _run(sorted(promqltest_dir().glob("*.test")), three_shards)
    print(f"total over 3 shards: {total.summary()}")
    assert total.failed == 0, "\n".join(total.failures)
    assert total.unsupported == 0, "\n".join(total.unsupported_cases)
    assert total.passed >= 500


def test_own_scripts_pass_in_memory_and_over_three_shards(three_shards):
    paths = sorted(OWN.glob("*.test"))
    assert paths
    for make in (memory_storage, three_shards):
        total = _run(paths, make)
        assert total.failed == 0 and total.unsupported == 0, total.failures + total.unsupported_cases
        assert total.passed > 0
