"""Unit tests must not start Ray: they test pure logic and must stay fast."""

import pytest


@pytest.fixture(autouse=True)
def _no_ray_in_unit_tests(request):
    yield
    if "tests/unit/" in str(request.node.fspath):
        import sys

        ray = sys.modules.get("ray")
        assert ray is None or not ray.is_initialized(), "a unit test started Ray"
