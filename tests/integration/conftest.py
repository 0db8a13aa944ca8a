"""Fixtures for integration tests: one local Ray per test session (starting Ray costs seconds)."""

import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def ray_local():
    import ray

    from ingest.ray_cluster import connect_ray

    connect_ray("local")
    yield ray
    ray.shutdown()
