"""Fixtures for integration tests: one local Ray per test session (starting Ray costs seconds); and, when a
child process fails to start, the end of its log in the test's report."""

import pytest

from shardmon.procs import ChildFailed
from tests.integration.ui_browser import browser, ui_cluster  # noqa: F401 (the browser tests' session fixtures)


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    if call.excinfo is not None and isinstance(call.excinfo.value, ChildFailed):
        outcome.get_result().sections.append(("log of the child that failed", call.excinfo.value.log_tail))


@pytest.fixture(scope="session")
def ray_local():
    import ray

    from shardmon.ingest.ray_cluster import connect_ray

    connect_ray("local")
    yield ray
    ray.shutdown()
