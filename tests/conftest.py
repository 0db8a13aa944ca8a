"""Unit tests must not start Ray: they test pure logic and must stay fast."""

import sys

import pytest


def _ray_up() -> bool:
    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()


@pytest.fixture(autouse=True)
def _no_ray_in_unit_tests(request):
    before = _ray_up()
    yield
    if "tests/unit/" in str(request.node.fspath):
        assert before or not _ray_up(), "a unit test started Ray"
