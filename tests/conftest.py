"""For every test: the floors import only as shardmon.* (below), unit tests must not start Ray
(they test pure logic and must stay fast), and property tests have no time limit per example."""

import importlib.abc
import sys

import pytest
from hypothesis import settings

# Hypothesis fails an example that takes longer than its deadline (200 ms by default): a timing
# assertion, which fails on a loaded CI machine and says nothing a user would check.
settings.register_profile("shardmon", deadline=None)
settings.load_profile("shardmon")


class _FloorsOnlyAsShardmon(importlib.abc.MetaPathFinder):
    """pytest puts the repository root on ``sys.path`` (tests/ is a package), where model/, shards/,
    ingest/, querier/, rules/ and k8sapi/ would import as top-level packages; they are shardmon.model, ... (see
    shardmon/__init__.py). A bare ``import model`` fails in the tests as it does in an installed Shardmon."""

    FLOORS = ("model", "shards", "ingest", "querier", "rules", "k8sapi")

    def find_spec(self, name, path=None, target=None):
        if name in self.FLOORS:
            raise ModuleNotFoundError(f"No module named {name!r}: import shardmon.{name}", name=name)
        return None


sys.meta_path.insert(0, _FloorsOnlyAsShardmon())


def _ray_up() -> bool:
    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()


@pytest.fixture(autouse=True)
def _no_ray_in_unit_tests(request):
    before = _ray_up()
    yield
    if "tests/unit/" in str(request.node.fspath):
        assert before or not _ray_up(), "a unit test started Ray"
