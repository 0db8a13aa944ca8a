"""The ``backend`` the engine tests run on here: the in-memory store (see enginekit.py)."""

import pytest

from tests.unit.shards.enginekit import MemoryBackend


@pytest.fixture()
def backend() -> MemoryBackend:
    return MemoryBackend()
